"""Tests for jr.soft.quantile, jr.soft.median and jr.soft.sort_with."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrelax as jr

X = np.array([0.3, -1.2, 2.5, 0.9, -0.4, 1.7, 0.05])


def test_published_soft_sort_values():
    # fast-soft-sort's README (Blondel et al.): soft_sort([5, 1, 2], ε=1) =
    # [1.6667, 2.6667, 3.6667]; read by jnp.quantile's linear rule.
    x = jnp.array([5.0, 1.0, 2.0])
    np.testing.assert_allclose(jr.soft.median(x, 1.0), 8 / 3, rtol=1e-6)
    q = jr.soft.quantile(x, jnp.array([0.0, 0.25, 1.0]), 1.0)
    np.testing.assert_allclose(q, [5 / 3, 5 / 3 + 0.5, 11 / 3], rtol=1e-6)


@pytest.mark.parametrize("q", [0.0, 0.1, 0.5, 0.77, 1.0])
def test_tends_to_jnp_quantile(q):
    x = jax.random.normal(jax.random.key(0), (3, 11))
    for eps in (1e-3, 1e-4):
        np.testing.assert_allclose(
            jr.soft.quantile(x, q, eps), jnp.quantile(x, q, axis=-1), atol=1e-4
        )
    # ... and moves away from it (towards the mean) as ε grows.
    far = jr.soft.quantile(x, q, 1e3)
    np.testing.assert_allclose(far, x.mean(-1), atol=1e-2)


def test_vector_q_shape_axis_and_median():
    x = jax.random.normal(jax.random.key(1), (4, 9, 2))
    qs = jnp.array([0.2, 0.5, 0.9])
    out = jr.soft.quantile(x, qs, 1e-4, axis=1)
    ref = jnp.quantile(x, qs, axis=1)
    assert out.shape == ref.shape == (3, 4, 2)
    np.testing.assert_allclose(out, ref, atol=1e-4)
    np.testing.assert_allclose(jr.soft.median(x, 1e-4, axis=1), jnp.median(x, axis=1), atol=1e-4)
    # Even n: the mean of the two middle entries, as jnp.median.
    x8 = jnp.asarray(X[:6])
    np.testing.assert_allclose(jr.soft.median(x8, 1e-4), np.median(X[:6]), atol=1e-6)


def test_grads():
    x = jnp.asarray(X, jnp.float32)  # distinct gaps: away from ties at ε = 0.3

    def f(x, q):
        return jnp.sum(jr.soft.quantile(x, q, 0.3) * jnp.array([1.0, -2.0]))

    check_grads(lambda x: f(x, jnp.array([0.3, 0.62])), (x,), order=2, modes=["rev"], atol=1e-2)
    check_grads(
        lambda q: f(x, q), (jnp.array([0.3, 0.62]),), order=1, modes=["rev", "fwd"], atol=1e-2
    )
    # The gradient in x sums to dq/dc = 1 per level (shift equivariance).
    g = jax.grad(lambda x: jr.soft.quantile(x, 0.4, 0.3))(x)
    np.testing.assert_allclose(g.sum(), 1.0, atol=1e-5)


def test_jit_vmap_traced_q():
    x = jax.random.normal(jax.random.key(2), (5, 7))
    f = jax.jit(lambda x, q: jr.soft.quantile(x, q, 0.5))
    np.testing.assert_allclose(f(x, 0.3), jr.soft.quantile(x, 0.3, 0.5), atol=1e-6)
    v = jax.vmap(lambda r: jr.soft.quantile(r, 0.3, 0.5))(x)
    np.testing.assert_allclose(v, jr.soft.quantile(x, 0.3, 0.5), atol=1e-6)
    # A traced invalid level or strength poisons the output and its gradient.
    assert np.all(np.isnan(f(x, 1.5))) and np.all(np.isnan(f(x, jnp.nan)))
    assert np.isnan(jax.grad(lambda q: f(x, q)[0])(-0.1))
    g = jax.jit(lambda e: jr.soft.median(x, e))
    assert np.all(np.isfinite(g(0.5))) and np.all(np.isnan(g(-0.5)))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
def test_dtypes(dtype):
    x = jnp.asarray(X, dtype)
    out = jr.soft.quantile(x, jnp.array([0.25, 0.75], jnp.float32), 0.5)
    assert out.dtype == dtype and np.all(np.isfinite(np.asarray(out, np.float32)))
    g = jax.grad(lambda x: jr.soft.median(x, 0.5).astype(jnp.float32))(x)
    assert g.dtype == dtype and np.all(np.isfinite(np.asarray(g, np.float32)))


def test_bad_inputs():
    x = jnp.asarray(X)
    for q in (1.5, -0.1, jnp.array([0.5, 2.0]), float("nan")):
        with pytest.raises(ValueError, match="`q`"):
            jr.soft.quantile(x, q)
    with pytest.raises(ValueError, match="`q`"):
        jr.soft.quantile(x, jnp.full((2, 2), 0.5))
    with pytest.raises(TypeError, match="`q`"):
        jr.soft.quantile(x, "median")
    with pytest.raises(ValueError, match="`regularization_strength`"):
        jr.soft.median(x, 0.0)
    with pytest.raises(ValueError, match="non-empty event axis"):
        jr.soft.median(jnp.zeros((3, 0)))
    assert jr.soft.median(jnp.zeros((0, 3))).shape == (0,)


# --------------------------------------------------------------------------------------
# sort_with


def test_sort_with_hard_limit_and_features():
    x = jnp.asarray(X, jnp.float32)
    v = jax.random.normal(jax.random.key(3), (7, 3))
    perm = np.argsort(X)
    out = jr.soft.sort_with(x, v, 1e-4, num_iters=300)
    np.testing.assert_allclose(out, np.asarray(v)[perm], atol=3e-2)
    desc = jr.soft.sort_with(x, v[:, 0], 1e-4, descending=True, num_iters=300)
    np.testing.assert_allclose(desc, np.asarray(v)[perm[::-1], 0], atol=3e-2)
    # Large ε: every output tends to the mean of the values.
    np.testing.assert_allclose(
        jr.soft.sort_with(x, v, 1e3), np.broadcast_to(v.mean(0), (7, 3)), atol=1e-3
    )


def test_sort_with_is_permutation_matrix_times_values():
    # OTT's sort_with semantics: the (row-stochastic) transport plan applied to the values.
    x = jax.random.normal(jax.random.key(4), (2, 5))
    v = jax.random.normal(jax.random.key(5), (2, 5, 4))
    p = jr.soft.permutation_matrix(x, 0.05, method="sinkhorn", num_iters=50)
    out = jr.soft.sort_with(x, v, 0.05, num_iters=50)
    np.testing.assert_allclose(out, jnp.einsum("bij,bjd->bid", p, v), atol=1e-5)
    # Any axis: sort along axis 0 of the transposed problem.
    out0 = jr.soft.sort_with(x.T, jnp.moveaxis(v, 1, 0), 0.05, axis=0, num_iters=50)
    np.testing.assert_allclose(out0, jnp.moveaxis(out, 1, 0), atol=1e-5)
    f = jax.jit(lambda x, v: jr.soft.sort_with(x, v, 0.05, num_iters=50))
    np.testing.assert_allclose(f(x, v), out, atol=1e-5)
    np.testing.assert_allclose(jax.vmap(f)(x, v), out, atol=1e-5)


def test_sort_with_grads_dtypes_and_errors():
    x = jnp.asarray(X[:4], jnp.float32)
    v = jnp.array([1.0, -2.0, 0.5, 3.0])
    w = jnp.arange(4.0)
    check_grads(
        lambda x, v: jnp.sum(w * jr.soft.sort_with(x, v, 0.05, num_iters=10)),
        (x, v),
        order=1,
        modes=["rev"],
        atol=1e-2,
    )
    out = jr.soft.sort_with(x.astype(jnp.bfloat16), v.astype(jnp.bfloat16), 0.05)
    assert out.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(out, np.float32)))
    with pytest.raises(ValueError, match="`values`"):
        jr.soft.sort_with(x, jnp.ones(5))
    with pytest.raises(ValueError, match="`regularization_strength`"):
        jr.soft.sort_with(x, v, -1.0)
