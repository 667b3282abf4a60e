"""Tests for jr.perturb.perturbed (Berthet et al. 2020)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxrelax as jr

X = jnp.array([0.3, -0.2, 0.5, 0.1])
SIGMA = 0.5


def one_hot_argmax(x):
    return jax.nn.one_hot(jnp.argmax(x), x.shape[-1], dtype=x.dtype)


def step(x):
    return (x > 0).astype(x.dtype)


def _replicates(g, x, n_rep, fn=jax.jacrev):
    """Values and Jacobians from ``n_rep`` independent keys."""
    keys = jax.random.split(jax.random.key(0), n_rep)
    values = jax.vmap(g, in_axes=(0, None))(keys, x)
    jacs = jax.vmap(fn(g, argnums=1), in_axes=(0, None))(keys, x)
    return np.asarray(values), np.asarray(jacs)


def test_gumbel_argmax_is_softmax():
    n_rep, n = 40, 1000
    g = jr.perturb.perturbed(one_hot_argmax, num_samples=n, sigma=SIGMA)
    values, jacs = _replicates(g, X, n_rep)
    p = np.asarray(jax.nn.softmax(X / SIGMA))
    # Value: mean of N = n_rep * n one-hots; 4 standard errors sqrt(p (1 - p) / N).
    assert np.all(np.abs(values.mean(0) - p) < 4 * np.sqrt(p * (1 - p) / (n_rep * n)))
    # Jacobian of softmax(x / σ); 4 standard errors estimated from the replicates.
    expected = (np.diag(p) - np.outer(p, p)) / SIGMA
    se = jacs.std(0, ddof=1) / np.sqrt(n_rep)
    assert np.all(np.abs(jacs.mean(0) - expected) < 4 * se + 1e-6)
    assert np.abs(jacs.mean(0) - expected).max() < 0.02  # and the error is small


def test_normal_step_function_closed_form():
    n_rep, n = 40, 1000
    x = jnp.array([-0.1, 0.05, 0.2])
    sigma = 0.2
    g = jr.perturb.perturbed(step, num_samples=n, sigma=sigma, noise="normal")
    values, jacs = _replicates(g, x, n_rep, fn=jax.jacfwd)
    phi = stats.norm.cdf(np.asarray(x) / sigma)
    assert np.all(np.abs(values.mean(0) - phi) < 4 * np.sqrt(phi * (1 - phi) / (n_rep * n)))
    # E[1(x + σZ > 0)] = Φ(x / σ): derivative φ(x / σ) / σ on the diagonal, 0 elsewhere.
    expected = np.diag(stats.norm.pdf(np.asarray(x) / sigma) / sigma)
    se = jacs.std(0, ddof=1) / np.sqrt(n_rep)
    assert np.all(np.abs(jacs.mean(0) - expected) < 4 * se + 1e-6)


def test_control_variate_reduces_variance_not_mean():
    # The baseline fn(x) helps when most perturbed solutions equal fn(x) (small σ:
    # here the unperturbed arg max keeps ~86% of the mass).
    n_rep, sigma = 40, 0.1
    with_cv = jr.perturb.perturbed(one_hot_argmax, num_samples=200, sigma=sigma)
    no_cv = jr.perturb.perturbed(
        one_hot_argmax, num_samples=200, sigma=sigma, control_variate=False
    )
    v1, j1 = _replicates(with_cv, X, n_rep)
    v2, j2 = _replicates(no_cv, X, n_rep)
    np.testing.assert_array_equal(v1, v2)  # same noise, same value
    assert j1.var(0).sum() < 0.5 * j2.var(0).sum()
    se = np.sqrt(j1.var(0, ddof=1) / n_rep + j2.var(0, ddof=1) / n_rep)
    assert np.all(np.abs(j1.mean(0) - j2.mean(0)) < 4 * se + 1e-6)


def test_jvp_and_vjp_agree():
    g = jr.perturb.perturbed(one_hot_argmax, num_samples=50, sigma=SIGMA)
    key = jax.random.key(1)
    np.testing.assert_allclose(
        jax.jacfwd(g, argnums=1)(key, X), jax.jacrev(g, argnums=1)(key, X), rtol=1e-5, atol=1e-6
    )


def test_fn_is_never_differentiated():
    @jax.custom_jvp
    def solver(x):
        return one_hot_argmax(x)

    @solver.defjvp
    def _(primals, tangents):
        raise AssertionError("fn must not be differentiated")

    g = jr.perturb.perturbed(solver, num_samples=10)
    grad = jax.grad(lambda x: g(jax.random.key(0), x)[0])(X)
    assert np.all(np.isfinite(grad))
    jax.jvp(lambda x: g(jax.random.key(0), x), (X,), (jnp.ones(4),))


def test_jit_vmap_same_key_and_batches():
    g = jr.perturb.perturbed(one_hot_argmax, num_samples=30)
    key = jax.random.key(2)
    np.testing.assert_array_equal(jax.jit(g)(key, X), g(key, X))
    np.testing.assert_allclose(
        jax.jit(jax.grad(lambda x: g(key, x)[1]))(X), jax.grad(lambda x: g(key, x)[1])(X)
    )
    xs = jax.random.normal(jax.random.key(3), (5, 4))
    batched = jax.vmap(g, in_axes=(None, 0))(key, xs)
    np.testing.assert_array_equal(batched[3], g(key, xs[3]))
    gb = jax.vmap(jax.grad(lambda x: g(key, x)[0]))(xs)
    np.testing.assert_allclose(gb[2], jax.grad(lambda x: g(key, x)[0])(xs[2]), rtol=1e-6)
    np.testing.assert_array_equal(g(jax.random.PRNGKey(0), X).shape, (4,))


def test_other_output_shapes():
    # A ranking solver: output [n, n] permutation matrix from an [n] input.
    def sort_matrix(x):
        return jax.nn.one_hot(jnp.argsort(x), x.shape[0], dtype=x.dtype)

    g = jr.perturb.perturbed(sort_matrix, num_samples=64, noise="normal")
    y = g(jax.random.key(4), X)
    assert y.shape == (4, 4)
    np.testing.assert_allclose(y.sum(0), 1.0, rtol=1e-6)
    assert jax.jacrev(g, argnums=1)(jax.random.key(4), X).shape == (4, 4, 4)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtypes(dtype):
    g = jr.perturb.perturbed(one_hot_argmax, num_samples=20)
    x = X.astype(dtype)
    assert g(jax.random.key(0), x).dtype == dtype
    assert jax.grad(lambda x: g(jax.random.key(0), x)[0].astype(jnp.float32))(x).dtype == dtype


def test_bad_inputs():
    with pytest.raises(ValueError, match="`num_samples`"):
        jr.perturb.perturbed(one_hot_argmax, num_samples=0)
    with pytest.raises(ValueError, match="`sigma`"):
        jr.perturb.perturbed(one_hot_argmax, sigma=0.0)
    with pytest.raises(ValueError, match="`noise`"):
        jr.perturb.perturbed(one_hot_argmax, noise="laplace")
    with pytest.raises(TypeError, match="`fn`"):
        jr.perturb.perturbed(3)
    g = jr.perturb.perturbed(one_hot_argmax)
    with pytest.raises(TypeError, match="`key`"):
        g(0, X)
