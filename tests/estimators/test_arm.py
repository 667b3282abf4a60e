"""Tests for jr.estimators.arm and jr.estimators.disarm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

N = 20_000


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_unbiased(bernoulli_problem, estimates, assert_unbiased, name):
    p = bernoulli_problem
    E = getattr(jr.estimators, name)(p.f, dist="bernoulli", num_samples=2)
    values, grads = estimates(E, p.params, N, 11)
    assert_unbiased(grads, p.grad)  # 5 standard errors
    assert_unbiased(values, p.value)


def test_toy_variances(estimates):
    f = lambda b: jnp.sum((b - 0.45) ** 2)
    _, g = estimates(jr.estimators.arm(f, "bernoulli"), jnp.zeros(1), 50_000, 12)
    # ARM = 0.1 |u - 1/2|: relative s.e. of the sample variance ~0.4%; allow 3%.
    np.testing.assert_allclose(g.var(), 2.083e-4, rtol=0.03)
    np.testing.assert_allclose(g.mean(), 0.025, rtol=0.01)
    _, g = estimates(jr.estimators.disarm(f, "bernoulli"), jnp.zeros(1), 50_000, 13)
    np.testing.assert_allclose(g, 0.025, rtol=1e-5)  # DisARM is exact here
    assert g.var() < 1e-12


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_never_differentiates_f(name):
    @jax.custom_jvp
    def f(x):
        return jnp.sum((x - 0.3) ** 2)

    @f.defjvp
    def _jvp(primals, tangents):
        raise AssertionError("f was differentiated")

    E = getattr(jr.estimators, name)(f, "bernoulli", num_samples=3)
    assert np.all(np.isfinite(jax.jit(jax.grad(E))(jnp.ones(4), jax.random.key(0))))


def test_disarm_matches_formula_one_pair():
    # One coordinate: b and its antithetic differ, DisARM = 0.5 (f(b) - f(b~)) (-1)^b~ sigma(|phi|).
    f = lambda b: jnp.sum(3.0 * b)
    phi = jnp.array([0.4])
    g = jax.jit(jax.vmap(jax.grad(jr.estimators.disarm(f, "bernoulli")), (None, 0)))(
        phi, jax.random.split(jax.random.key(1), 200)
    )
    s = float(jax.nn.sigmoid(0.4))
    # b != b~ gives |g| = 0.5 * 3 * s; b == b~ gives 0; the sign is always +.
    assert set(np.round(np.asarray(g[:, 0]) / (1.5 * s), 5).tolist()) <= {0.0, 1.0}


def test_bad_arguments():
    f = lambda b: jnp.sum(b)
    with pytest.raises(ValueError, match="dist"):
        jr.estimators.arm(f, dist="categorical")
    with pytest.raises(ValueError, match="num_samples"):
        jr.estimators.disarm(f, "bernoulli", num_samples=0)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="num_pairs"):
        jr.estimators.disarm(f, "bernoulli", num_pairs=0)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="num_pairs"):
        jr.estimators.disarm(f, "bernoulli", num_samples=2, num_pairs=2)


@pytest.mark.parametrize("name", ["arm", "disarm"])
def test_num_pairs_is_a_deprecated_alias_of_num_samples(name):
    # Kept for one release (issue #11): same estimator, a DeprecationWarning at the caller.
    f = lambda b: jnp.sum((b - 0.45) ** 2)
    make = getattr(jr.estimators, name)
    with pytest.warns(DeprecationWarning, match=r"num_pairs=\.\.\.\) is deprecated") as w:
        old = make(f, "bernoulli", num_pairs=3)
    assert w[0].filename == __file__  # points at the caller, not at jaxrelax
    new = make(f, "bernoulli", num_samples=3)
    assert old.num_samples == new.num_samples == 3
    key, phi = jax.random.key(4), jnp.array([0.3, -0.2])
    np.testing.assert_array_equal(jax.grad(old)(phi, key), jax.grad(new)(phi, key))
