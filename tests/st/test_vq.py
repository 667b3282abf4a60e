"""Tests for the VQ-VAE vector quantiser."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr


def test_nearest_code_and_losses():
    z = jax.random.normal(jax.random.key(0), (6, 3))
    cb = jax.random.normal(jax.random.key(1), (5, 3))
    zq, idx, cl, ml = jr.st.vector_quantize(z, cb)
    d = jnp.sum((z[:, None, :] - cb[None]) ** 2, -1)
    np.testing.assert_array_equal(idx, jnp.argmin(d, -1))
    np.testing.assert_array_equal(zq, cb[idx])
    want = jnp.mean((z - cb[idx]) ** 2)
    np.testing.assert_allclose(cl, want, rtol=1e-6)
    np.testing.assert_allclose(ml, want, rtol=1e-6)


def test_gradients_straight_through_and_losses():
    z = jax.random.normal(jax.random.key(0), (6, 3))
    cb = jax.random.normal(jax.random.key(1), (5, 3))
    w = jax.random.normal(jax.random.key(2), (6, 3))
    # Straight-through: gradient of w . z_q w.r.t. z is w; the codebook gets none from z_q.
    gz, gcb = jax.grad(lambda a, b: jnp.sum(w * jr.st.vector_quantize(a, b)[0]), (0, 1))(z, cb)
    np.testing.assert_array_equal(gz, w)
    np.testing.assert_array_equal(gcb, jnp.zeros_like(cb))
    # Codebook loss moves only codes; commitment loss moves only encodings.
    gz, gcb = jax.grad(lambda a, b: jr.st.vector_quantize(a, b)[2], (0, 1))(z, cb)
    assert float(jnp.abs(gz).max()) == 0.0 and float(jnp.abs(gcb).max()) > 0
    gz, gcb = jax.grad(lambda a, b: jr.st.vector_quantize(a, b)[3], (0, 1))(z, cb)
    assert float(jnp.abs(gz).max()) > 0 and float(jnp.abs(gcb).max()) == 0.0


def test_jit_vmap_shapes_errors():
    z = jax.random.normal(jax.random.key(0), (2, 4, 3))
    cb = jax.random.normal(jax.random.key(1), (5, 3))
    out = jax.jit(jr.st.vector_quantize)(z, cb)
    assert out[0].shape == (2, 4, 3) and out[1].shape == (2, 4)
    vm = jax.vmap(jr.st.vector_quantize, in_axes=(0, None))(z, cb)
    np.testing.assert_array_equal(vm[0], out[0])
    with pytest.raises(ValueError, match="z"):
        jr.st.vector_quantize(jnp.ones((2, 4)), cb)
    with pytest.raises(ValueError, match="codebook"):
        jr.st.vector_quantize(z, jnp.ones(3))


def test_float16_picks_the_nearest_code():
    # Scale 100, D = 4: ||e||^2 ~ 4e4 and products overflow or round in float16 (max 65504,
    # 11-bit mantissa); float16 distances picked a farther code for most rows here.
    rng = np.random.default_rng(0)
    cb = jnp.asarray(rng.normal(size=(64, 4)) * 100, jnp.float16)
    z = jnp.asarray(rng.normal(size=(64, 4)) * 100, jnp.float16)
    zq, idx, cl, ml = jax.jit(jr.st.vector_quantize)(z, cb)
    # Reference: exact float64 distances of the same (float16-rounded) values.
    d = ((np.asarray(z, np.float64)[:, None] - np.asarray(cb, np.float64)[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(idx, d.argmin(-1))
    assert zq.dtype == cl.dtype == ml.dtype == jnp.float16
    np.testing.assert_array_equal(zq, cb[idx])
    want = d.min(-1).mean() / 4  # mean over all elements, computed in float64
    np.testing.assert_allclose(float(cl), want, rtol=2e-3)  # float16 output rounding
    np.testing.assert_allclose(float(ml), want, rtol=2e-3)


def test_empty_codebook_and_empty_batch():
    with pytest.raises(ValueError, match="`codebook` must have a non-empty event axis"):
        jr.st.vector_quantize(jnp.ones((2, 3)), jnp.ones((0, 3)))
    with pytest.raises(ValueError, match="codebook"):
        jr.st.vector_quantize(jnp.ones((2, 0)), jnp.ones((4, 0)))
    cb = jnp.arange(12.0).reshape(4, 3)

    def f(z, c):
        zq, idx, cl, ml = jr.st.vector_quantize(z, c)
        return zq, idx, cl, ml, jax.grad(lambda a, b: jr.st.vector_quantize(a, b)[3], (0, 1))(z, c)

    zq, idx, cl, ml, (gz, gc) = jax.jit(f)(jnp.ones((0, 3)), cb)
    assert zq.shape == (0, 3) and idx.shape == (0,) and idx.dtype == jnp.int32
    assert float(cl) == 0.0 and float(ml) == 0.0
    assert gz.shape == (0, 3) and bool(jnp.all(gc == 0))
    zq, idx, *_ = jr.st.vector_quantize(jnp.ones((2, 0, 3)), cb)
    assert zq.shape == (2, 0, 3) and idx.shape == (2, 0)


def test_higher_derivatives():
    # z_q is the identity in z (Hessian 0); commitment loss mean((z - e)^2) has Hessian
    # 2 / (N D) I in z (closed form).
    z = jnp.array([[0.9, 0.1], [-0.3, 0.8], [0.2, -1.0]])
    cb = jnp.eye(2)
    w = jnp.array([[1.0, -2.0], [0.5, 3.0], [2.0, 1.0]])
    hz = jax.jit(jax.hessian(lambda a: jnp.sum(w * jr.st.vector_quantize(a, cb)[0])))(z)
    np.testing.assert_array_equal(hz, jnp.zeros((3, 2, 3, 2)))
    hm = jax.jit(jax.hessian(lambda a: jr.st.vector_quantize(a, cb)[3]))(z)
    np.testing.assert_allclose(hm.reshape(6, 6), 2 / 6 * jnp.eye(6), rtol=1e-6)
