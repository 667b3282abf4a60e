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
