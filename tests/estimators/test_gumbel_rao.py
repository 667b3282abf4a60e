"""Tests for jr.estimators.gumbel_rao."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

N = 20_000


def test_forward_values_exact_and_rao_blackwellises_st_gumbel_softmax(
    categorical_problem, estimates, assert_unbiased
):
    p = categorical_problem
    E = jr.estimators.gumbel_rao(p.f, dist="categorical", temperature=0.5, num_mc=8)
    values, grads = estimates(E, p.params, N, 41)
    assert_unbiased(values, p.value)  # exact forward samples; 5 standard errors
    E_st = jr.estimators.st_gumbel_softmax(p.f, dist="categorical", temperature=0.5)
    _, grads_st = estimates(E_st, p.params, N, 42)
    # Same expectation as ST Gumbel-softmax (5 s.e. of the difference), lower variance.
    se = np.sqrt(grads.var(0) / N + grads_st.var(0) / N)
    assert np.all(np.abs(grads.mean(0) - grads_st.mean(0)) < 5 * se)
    assert grads.var(0).sum() < 0.7 * grads_st.var(0).sum()


def test_bernoulli_and_masks():
    f = lambda x: jnp.sum(x * jnp.arange(4.0))
    logits = jnp.array([0.0, -jnp.inf, 1.0, 0.5])
    E = jr.estimators.gumbel_rao(f, dist="categorical", num_mc=4)
    v, g = jax.jit(jax.value_and_grad(E))(logits, jax.random.key(0))
    assert np.isfinite(v) and np.all(np.isfinite(g)) and float(g[1]) == 0.0
    E = jr.estimators.gumbel_rao(lambda b: jnp.sum(b**2), dist="bernoulli", num_mc=4)
    assert np.all(np.isfinite(jax.jit(jax.grad(E))(jnp.array([0.5, -2.0]), jax.random.key(0))))


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_mc"):
        jr.estimators.gumbel_rao(jnp.sum, "categorical", num_mc=0)
    with pytest.raises(ValueError, match="temperature"):
        jr.estimators.gumbel_rao(jnp.sum, "categorical", temperature=0.0)
