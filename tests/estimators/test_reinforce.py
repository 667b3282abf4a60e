"""Tests for jr.estimators.reinforce."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

N = 20_000


def _callable_baseline(params, key):
    # Any function of params and an independent key keeps REINFORCE unbiased.
    return 1.0 + 0.1 * jax.random.normal(key) + 0.0 * jnp.sum(params)


@pytest.mark.parametrize(
    "baseline, num_samples",
    [(None, 1), (0.7, 1), ("loo", 3), (_callable_baseline, 2)],
    ids=["none", "float", "loo", "callable"],
)
def test_unbiased(problem, estimates, assert_unbiased, baseline, num_samples):
    E = jr.estimators.reinforce(
        problem.f, dist=problem.dist, num_samples=num_samples, baseline=baseline
    )
    values, grads = estimates(E, problem.params, N, 1)
    assert_unbiased(grads, problem.grad)  # 5 standard errors
    assert_unbiased(values, problem.value)


def test_control_variate_unbiased_and_reduces_variance(
    bernoulli_problem, estimates, assert_unbiased
):
    p = bernoulli_problem
    # h(b) = a · b with E[h] = a · sigmoid(phi): a linear control variate.
    a = jnp.array([1.0, 2.5, -0.5])
    cv = (lambda b: jnp.dot(a, b), lambda logits: jnp.dot(a, jax.nn.sigmoid(logits)))
    E_cv = jr.estimators.reinforce(p.f, dist="bernoulli", control_variate=cv)
    E = jr.estimators.reinforce(p.f, dist="bernoulli")
    _, g_cv = estimates(E_cv, p.params, N, 2)
    _, g = estimates(E, p.params, N, 2)
    assert_unbiased(g_cv, p.grad)  # 5 standard errors
    assert g_cv.var(0).sum() < g.var(0).sum()


def test_toy_variances(estimates):
    # min E_{b ~ Bern(sigmoid(phi))}[(b - 0.45)^2] at phi = 0 (closed-form variances).
    f = lambda b: jnp.sum((b - 0.45) ** 2)
    _, g = estimates(jr.estimators.reinforce(f, "bernoulli"), jnp.zeros(1), 50_000, 3)
    # Two-point estimates: the sample variance is within ~1% of the truth; allow 3%.
    np.testing.assert_allclose(g.var(), 1.594e-2, rtol=0.03)
    E = jr.estimators.reinforce(f, "bernoulli", num_samples=2, baseline="loo")
    _, g = estimates(E, jnp.zeros(1), 50_000, 4)
    np.testing.assert_allclose(g.var(), 6.25e-4, rtol=0.03)


def test_never_differentiates_f(problem):
    @jax.custom_jvp
    def f(x):
        return problem.f(x)

    @f.defjvp
    def _jvp(primals, tangents):
        raise AssertionError("f was differentiated")

    for baseline, n in [(None, 1), ("loo", 2)]:
        E = jr.estimators.reinforce(f, dist=problem.dist, num_samples=n, baseline=baseline)
        g = jax.jit(jax.grad(E))(problem.params, jax.random.key(0))
        assert np.all(np.isfinite(g))


def test_reparam_dist_unbiased(estimates, assert_unbiased):
    # E_{x ~ N(mu, 1)}[x^2] = mu^2 + 1, gradient 2 mu, with the score function only.
    E = jr.estimators.reinforce(
        lambda x: jnp.sum(x**2), dist=lambda mu: jr.reparam.normal(mu, 1.0), num_samples=4
    )
    mu = jnp.array([0.5, -1.0])
    values, grads = estimates(E, mu, N, 5)
    assert_unbiased(grads, 2 * np.asarray(mu))  # 5 standard errors
    assert_unbiased(values, float(jnp.sum(mu**2) + 2))


def test_bad_arguments():
    f = lambda b: jnp.sum(b)
    with pytest.raises(ValueError, match="num_samples"):
        jr.estimators.reinforce(f, "bernoulli", baseline="loo", num_samples=1)
    with pytest.raises(ValueError, match="baseline"):
        jr.estimators.reinforce(f, "bernoulli", baseline="mean", num_samples=2)
    with pytest.raises(TypeError, match="baseline"):
        jr.estimators.reinforce(f, "bernoulli", baseline=object())
    with pytest.raises(TypeError, match="control_variate"):
        jr.estimators.reinforce(f, "bernoulli", control_variate=lambda b: b)
    for bad in [float("nan"), float("inf"), np.float32(np.nan)]:
        with pytest.raises(ValueError, match="`baseline` must be finite"):
            jr.estimators.reinforce(f, "bernoulli", baseline=bad)
