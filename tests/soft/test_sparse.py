"""Tests for jr.soft.sparsemax and jr.soft.entmax15."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxrelax as jr

FUNCS = {"sparsemax": jr.soft.sparsemax, "entmax15": jr.soft.entmax15}


def _reference(x: np.ndarray, name: str) -> np.ndarray:
    """Independent reference along the last axis: bisection for the threshold in float64."""
    x = np.asarray(x, np.float64)
    z = x / 2.0 if name == "entmax15" else x
    power = 2.0 if name == "entmax15" else 1.0
    flat = z.reshape(-1, z.shape[-1])
    out = np.zeros_like(flat)
    for r, row in enumerate(flat):
        lo, hi = row.max() - 1.0, row.max()  # Σ [row - τ]_+^power is 1 somewhere in here
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if np.sum(np.maximum(row - mid, 0.0) ** power) > 1.0:
                lo = mid
            else:
                hi = mid
        out[r] = np.maximum(row - 0.5 * (lo + hi), 0.0) ** power
    return out.reshape(x.shape)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("n", [1, 2, 5, 37, 300])
def test_matches_bisection_reference(name, n):
    x = jax.random.normal(jax.random.key(n), (4, n)) * 2.0
    p = FUNCS[name](x)
    np.testing.assert_allclose(p, _reference(np.asarray(x), name), atol=2e-6)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.asarray(p) >= 0)


def test_known_values():
    # Two entries more than 1 apart: sparsemax is one-hot; within 1 it is linear.
    np.testing.assert_allclose(jr.soft.sparsemax(jnp.array([0.0, 1.5])), [0.0, 1.0])
    np.testing.assert_allclose(jr.soft.sparsemax(jnp.array([0.0, 0.5])), [0.25, 0.75])
    # entmax15([t, 0]) with 0 < t < 2: (1 + t/2 ... ) closed form from (u)² + (u − t/2)² = 1.
    t = 1.0
    u = (t / 2 + np.sqrt(2 - t**2 / 4)) / 2
    np.testing.assert_allclose(jr.soft.entmax15(jnp.array([t, 0.0])), [u**2, 1 - u**2], rtol=1e-6)
    # Uniform input gives the uniform distribution.
    np.testing.assert_allclose(jr.soft.entmax15(jnp.zeros(7)), np.full(7, 1 / 7), rtol=1e-6)


@pytest.mark.parametrize("name", FUNCS)
def test_sparsity_between_softmax_and_sparsemax(name):
    x = jax.random.normal(jax.random.key(1), (200,)) * 3
    nnz = int(jnp.sum(FUNCS[name](x) > 0))
    nnz_sparsemax = int(jnp.sum(jr.soft.sparsemax(x) > 0))
    assert 1 <= nnz < 200
    assert nnz >= nnz_sparsemax


@pytest.mark.parametrize("name", FUNCS)
def test_check_grads_away_from_support_changes(name):
    # Scores spaced so that no entry is within the finite-difference step of the threshold.
    x = jnp.array([0.3, -1.7, 1.1, 0.8, -0.2, 2.4])
    check_grads(FUNCS[name], (x,), order=2, modes=["fwd", "rev"], eps=1e-3, atol=2e-2, rtol=2e-2)
    check_grads(FUNCS[name], (x.reshape(2, 3),), order=1, eps=1e-3, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("name", FUNCS)
def test_jacobian_closed_form(name):
    x = jnp.array([0.3, -1.7, 1.1, 0.8, -0.2, 2.4])
    p = np.asarray(FUNCS[name](x), np.float64)
    g = (p > 0).astype(float) if name == "sparsemax" else np.sqrt(p)
    expected = np.diag(g) - np.outer(g, g) / g.sum()
    np.testing.assert_allclose(jax.jacrev(FUNCS[name])(x), expected, atol=1e-6)
    np.testing.assert_allclose(jax.jacfwd(FUNCS[name])(x), expected, atol=1e-6)


@pytest.mark.parametrize("name", FUNCS)
def test_masks_and_fully_masked_rows(name):
    f = FUNCS[name]
    x = jnp.array([[0.5, -jnp.inf, 0.2, -jnp.inf], [-jnp.inf] * 4, [1e30, -1e30, 0.0, -jnp.inf]])
    p = f(x)
    assert np.all(np.isfinite(p))
    expected = np.zeros(4)
    expected[[0, 2]] = f(jnp.array([0.5, 0.2]))
    np.testing.assert_allclose(p[0], expected)
    np.testing.assert_array_equal(p[1], 0.0)  # documented: an all -inf row gives zeros
    np.testing.assert_array_equal(p[2], [1.0, 0.0, 0.0, 0.0])
    w = jnp.arange(4.0)
    grad = jax.grad(lambda x: jnp.sum(f(x) * w))(x)
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[:, 1], 0.0)
    np.testing.assert_array_equal(grad[1], 0.0)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_any_axis(name, axis):
    x = jax.random.normal(jax.random.key(3), (3, 4, 5))
    p = FUNCS[name](x, axis=axis)
    expected = jnp.moveaxis(FUNCS[name](jnp.moveaxis(x, axis, -1)), -1, axis)
    np.testing.assert_array_equal(p, expected)
    np.testing.assert_allclose(p.sum(axis), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", FUNCS)
def test_jit_vmap(name):
    f = FUNCS[name]
    x = jax.random.normal(jax.random.key(4), (6, 9))
    np.testing.assert_allclose(jax.jit(f)(x), f(x), atol=1e-7)
    np.testing.assert_allclose(jax.vmap(f)(x), f(x), atol=1e-7)
    np.testing.assert_allclose(jax.vmap(f, in_axes=1, out_axes=1)(x), f(x, axis=0), atol=1e-7)
    gv = jax.vmap(jax.grad(lambda r: f(r)[0]))(x)
    np.testing.assert_allclose(gv, jax.grad(lambda x: f(x)[:, 0].sum())(x), atol=1e-6)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtypes(name, dtype):
    x = jnp.array([1.1, 4.0, -0.1, 3.5], dtype)
    p = FUNCS[name](x)
    assert p.dtype == dtype
    np.testing.assert_allclose(
        np.asarray(p, np.float32), FUNCS[name](x.astype(jnp.float32)), atol=1e-2
    )
    assert jax.grad(lambda x: FUNCS[name](x)[1].astype(jnp.float32))(x).dtype == dtype
    assert jr.soft.sparsemax(jnp.array([1, 2, 3])).dtype == jnp.float32  # ints promoted


@pytest.mark.parametrize("name", FUNCS)
def test_bad_inputs(name):
    with pytest.raises(ValueError, match="`x`"):
        FUNCS[name](jnp.array(1.0))
    with pytest.raises(ValueError, match="`axis`"):
        FUNCS[name](jnp.ones(3), axis=1)
    with pytest.raises(TypeError, match="`x`"):
        FUNCS[name](jnp.ones(3, jnp.complex64))
