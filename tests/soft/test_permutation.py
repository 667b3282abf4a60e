"""Tests for jr.soft.sinkhorn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.optimize import linear_sum_assignment

import jaxrelax as jr


def _reference(log_alpha, temperature, num_iters):
    """Independent reference: Sinkhorn in the probability domain, float64."""
    p = np.exp(np.asarray(log_alpha, np.float64) / temperature)
    for _ in range(num_iters):
        p = p / p.sum(-1, keepdims=True)
        p = p / p.sum(-2, keepdims=True)
    return p


def test_matches_reference():
    x = jax.random.normal(jax.random.key(0), (3, 6, 6))
    np.testing.assert_allclose(jr.soft.sinkhorn(x, 0.7, 5), _reference(x, 0.7, 5), atol=1e-5)


@pytest.mark.parametrize("n", [1, 3, 8])
def test_doubly_stochastic(n):
    x = jax.random.normal(jax.random.key(n), (2, n, n))
    p = jr.soft.sinkhorn(x, temperature=0.5, num_iters=100)
    np.testing.assert_allclose(p.sum(-2), 1.0, atol=1e-5)  # exact after the column step
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-4)  # converged after 100 rounds
    assert np.all(np.asarray(p) >= 0)


def test_rows_converge_with_iterations():
    x = jax.random.normal(jax.random.key(1), (6, 6)) * 3
    errs = [float(jnp.abs(jr.soft.sinkhorn(x, num_iters=i).sum(-1) - 1).max()) for i in (1, 5, 50)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-5


def test_low_temperature_gives_assignment():
    x = np.asarray(jax.random.normal(jax.random.key(2), (7, 7)))
    rows, cols = linear_sum_assignment(x, maximize=True)
    perm = np.zeros((7, 7))
    perm[rows, cols] = 1.0
    # The distance to the assignment shrinks like exp(-margin / T); this draw has a small
    # margin (~0.02) between the best and second-best assignments, so T must go low.
    errs = [
        float(np.abs(jr.soft.sinkhorn(jnp.asarray(x), t, num_iters=1000) - perm).max())
        for t in (0.1, 0.01, 0.003)
    ]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.03
    assert np.all(np.isfinite(jr.soft.sinkhorn(jnp.asarray(x) * 1e30, temperature=1e-6)))


def test_high_temperature_gives_uniform():
    x = jax.random.normal(jax.random.key(3), (5, 5))
    np.testing.assert_allclose(jr.soft.sinkhorn(x, temperature=1e4), 0.2, atol=1e-4)


def test_gradients():
    x = jax.random.normal(jax.random.key(4), (4, 4))
    check_grads(
        lambda a: jr.soft.sinkhorn(a, 0.8, 3), (x,), order=2, modes=["rev"], atol=2e-2, rtol=2e-2
    )
    # Invariance: adding a constant to a row or a column changes nothing, so the gradient
    # of any loss sums to 0 along rows and along columns.
    w = jax.random.normal(jax.random.key(5), (4, 4))
    g = jax.grad(lambda a: jnp.sum(jr.soft.sinkhorn(a, 0.8, 200) * w))(x)
    np.testing.assert_allclose(g.sum(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(g.sum(-2), 0.0, atol=1e-5)


def test_masks():
    x = jax.random.normal(jax.random.key(6), (4, 4))
    x = x.at[0, 1].set(-jnp.inf).at[2, 3].set(-jnp.inf)
    p = jr.soft.sinkhorn(x, num_iters=200)
    assert p[0, 1] == 0 and p[2, 3] == 0
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-4)
    w = jax.random.normal(jax.random.key(7), (4, 4))
    g = jax.grad(lambda a: jnp.sum(jr.soft.sinkhorn(a) * w))(x)
    assert np.all(np.isfinite(g)) and g[0, 1] == 0 and g[2, 3] == 0
    # A fully masked row cannot be normalised: it stays 0, with no NaN anywhere.
    y = x.at[1].set(-jnp.inf)
    p = jr.soft.sinkhorn(y)
    np.testing.assert_array_equal(p[1], 0.0)
    assert np.all(np.isfinite(p))
    assert np.all(np.isfinite(jax.grad(lambda a: jnp.sum(jr.soft.sinkhorn(a) * w))(y)))


def test_jit_vmap_batch():
    x = jax.random.normal(jax.random.key(8), (3, 2, 5, 5))
    p = jr.soft.sinkhorn(x, 0.5)
    np.testing.assert_allclose(jax.jit(jr.soft.sinkhorn)(x, 0.5), p, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(lambda a: jr.soft.sinkhorn(a, 0.5))(x), p, atol=1e-6)
    np.testing.assert_allclose(jr.soft.sinkhorn(x[1, 0], 0.5), p[1, 0], atol=1e-6)
    # A traced, per-matrix temperature broadcasts over the batch axes.
    t = jnp.array([0.5, 1.0, 2.0])[:, None, None, None]
    np.testing.assert_allclose(jax.jit(jr.soft.sinkhorn)(x, t)[0], p[0], atol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtypes(dtype):
    x = jax.random.normal(jax.random.key(9), (4, 4)).astype(dtype)
    p = jr.soft.sinkhorn(x)
    assert p.dtype == dtype
    np.testing.assert_allclose(
        np.asarray(p, np.float32), jr.soft.sinkhorn(x.astype(jnp.float32)), atol=1e-2
    )


def test_bad_inputs():
    with pytest.raises(ValueError, match="`log_alpha`"):
        jr.soft.sinkhorn(jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="`log_alpha`"):
        jr.soft.sinkhorn(jnp.ones(3))
    with pytest.raises(ValueError, match="`temperature`"):
        jr.soft.sinkhorn(jnp.ones((3, 3)), temperature=0.0)
    with pytest.raises(ValueError, match="`num_iters`"):
        jr.soft.sinkhorn(jnp.ones((3, 3)), num_iters=0)
    with pytest.raises(TypeError, match="`num_iters`"):
        jr.soft.sinkhorn(jnp.ones((3, 3)), num_iters=2.5)
