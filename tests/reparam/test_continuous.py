"""Tests for the location-scale / inverse-CDF families (normal among them) and the
multivariate normal."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import stats

import jaxrelax as jr

N = 4000  # KS sample size: p-value ~ U(0, 1) for a correct sampler at this fixed key.

SCALAR = {
    "lognormal": (jr.reparam.lognormal, (0.3, 0.6), stats.lognorm(0.6, scale=np.exp(0.3))),
    "exponential": (jr.reparam.exponential, (2.5,), stats.expon(scale=1 / 2.5)),
    "uniform": (jr.reparam.uniform, (-1.0, 3.0), stats.uniform(-1.0, 4.0)),
    "laplace": (jr.reparam.laplace, (0.5, 1.5), stats.laplace(0.5, 1.5)),
    "logistic": (jr.reparam.logistic, (0.5, 1.5), stats.logistic(0.5, 1.5)),
    "gumbel": (jr.reparam.gumbel, (0.5, 1.5), stats.gumbel_r(0.5, 1.5)),
    "cauchy": (jr.reparam.cauchy, (0.5, 1.5), stats.cauchy(0.5, 1.5)),
}


def test_normal_ks_and_log_prob():
    d = jr.reparam.normal(1.5, 0.7)
    x = np.asarray(d.sample(jax.random.key(0), (4000,)), np.float64)
    # KS at fixed key: a correct sampler has p ~ U(0,1); 1e-3 leaves ample margin.
    assert stats.kstest(x, stats.norm(1.5, 0.7).cdf).pvalue > 1e-3
    xs = jnp.linspace(-2.0, 4.0, 7)
    np.testing.assert_allclose(d.log_prob(xs), stats.norm(1.5, 0.7).logpdf(xs), rtol=1e-5)


def test_normal_pathwise_gradient_closed_form():
    # E[x²] = loc² + scale²: d/dloc = 2 loc, d/dscale = 2 scale. Common noise, n = 2e5.
    eps = jr.reparam.normal(0.0, 1.0).noise(jax.random.key(1), (200_000,))

    def m2(loc, scale):
        return jnp.mean(jr.reparam.normal(loc, scale).transform(eps) ** 2)

    gl, gs = jax.grad(m2, argnums=(0, 1))(0.8, 1.3)
    # Std of the per-sample gradient 2x (loc) ~ 2·sqrt(loc²+scale²) ≈ 3; SE ≈ 0.007: 5 SE.
    np.testing.assert_allclose(gl, 1.6, atol=0.035)
    np.testing.assert_allclose(gs, 2.6, atol=0.05)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_normal_dtype_kept(dtype):
    d = jr.reparam.normal(jnp.zeros(3, dtype), jnp.ones(3, dtype))
    assert d.dtype == dtype
    eps = d.noise(jax.random.key(0), (2,))
    assert eps.dtype == dtype
    assert d.sample(jax.random.key(0), (2,)).dtype == dtype
    assert d.log_prob(jnp.zeros(3, dtype)).dtype == dtype


@pytest.mark.parametrize("name", sorted(SCALAR))
def test_samples_ks_and_log_prob_match_scipy(name):
    ctor, params, ref = SCALAR[name]
    d = ctor(*params)
    x = np.asarray(d.sample(jax.random.key(0), (N,)), np.float64)
    assert stats.kstest(x, ref.cdf).pvalue > 1e-3  # fails only 0.1% of keys if correct
    grid = np.asarray(ref.ppf(np.linspace(0.01, 0.99, 11)), np.float32)
    np.testing.assert_allclose(d.log_prob(grid), ref.logpdf(grid), rtol=1e-5, atol=1e-5)


def test_log_prob_outside_support_is_minus_inf():
    assert jr.reparam.exponential(1.0).log_prob(-0.5) == -jnp.inf
    assert jr.reparam.lognormal(0.0, 1.0).log_prob(0.0) == -jnp.inf
    assert jr.reparam.uniform(0.0, 1.0).log_prob(1.5) == -jnp.inf
    assert jr.reparam.kumaraswamy(2.0, 2.0).log_prob(1.0) == -jnp.inf
    # ...with finite gradients w.r.t. the parameters (no NaN from the masked branch).
    g = jax.grad(lambda r: jr.reparam.exponential(r).log_prob(jnp.array([-1.0, 1.0])).sum())
    assert np.isfinite(g(2.0))


def _kumaraswamy_cdf(a, b):
    return lambda x: 1.0 - (1.0 - np.clip(x, 0, 1) ** a) ** b


def test_kumaraswamy_ks_log_prob_and_normalisation():
    a, b = 2.0, 5.0
    d = jr.reparam.kumaraswamy(a, b)
    x = np.asarray(d.sample(jax.random.key(1), (N,)), np.float64)
    assert stats.kstest(x, _kumaraswamy_cdf(a, b)).pvalue > 1e-3
    grid = np.linspace(0.01, 0.99, 99)
    ref = np.log(a * b) + (a - 1) * np.log(grid) + (b - 1) * np.log1p(-(grid**a))
    np.testing.assert_allclose(d.log_prob(grid.astype(np.float32)), ref, rtol=1e-5, atol=1e-5)
    fine = np.linspace(1e-6, 1 - 1e-6, 20001)
    total = np.trapezoid(np.exp(np.asarray(d.log_prob(fine.astype(np.float32)), np.float64)), fine)
    np.testing.assert_allclose(total, 1.0, atol=1e-3)  # trapezoid error on a smooth density


def test_exponential_pathwise_gradient_closed_form():
    # E[x] = 1/rate, d/drate = -1/rate². Per-sample gradient -e/rate² has sd 1/rate²:
    # with n = 1e5 the SE is 0.3% of the value; 5 SE tolerance.
    rate = 1.7
    eps = jr.reparam.exponential(1.0).noise(jax.random.key(2), (100_000,))
    g = jax.grad(lambda r: jr.reparam.exponential(r).transform(eps).mean())(rate)
    np.testing.assert_allclose(g, -1.0 / rate**2, rtol=0.016)


@pytest.mark.parametrize(
    "ctor, params",
    [
        (jr.reparam.lognormal, (0.3, 0.6)),
        (jr.reparam.laplace, (0.3, 0.6)),
        (jr.reparam.logistic, (0.3, 0.6)),
        (jr.reparam.gumbel, (0.3, 0.6)),
        (jr.reparam.cauchy, (0.3, 0.6)),
        (jr.reparam.uniform, (0.3, 0.6)),
        (jr.reparam.kumaraswamy, (0.7, 2.0)),
    ],
)
def test_transform_and_log_prob_gradients_match_finite_differences(ctor, params):
    eps = ctor(*params).noise(jax.random.key(3), (5,))
    x = ctor(*params).sample(jax.random.key(4), (5,))
    check_grads(lambda *p: ctor(*p).transform(eps), params, order=1, modes=["rev"], atol=1e-2)
    check_grads(lambda *p: ctor(*p).log_prob(x), params, order=1, modes=["rev"], atol=1e-2)


def test_multivariate_normal_moments_and_log_prob():
    loc = jnp.array([1.0, -2.0, 0.5])
    tril = jnp.array([[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [-0.3, 0.4, 0.7]])
    cov = np.asarray(tril @ tril.T, np.float64)
    d = jr.reparam.multivariate_normal(loc, tril)
    assert d.event_ndim == 1 and d.event_shape == (3,) and d.batch_shape == ()
    n = 20_000
    x = np.asarray(d.sample(jax.random.key(5), (n,)), np.float64)
    # Mean SE = sqrt(var / n) <= 0.015; 5 SE.
    np.testing.assert_allclose(x.mean(0), loc, atol=5 * np.sqrt(cov.diagonal().max() / n))
    # Covariance entries: SE ≈ sqrt((Σii Σjj + Σij²) / n) <= 0.04; 5 SE = 0.2.
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.2)
    # Marginals: KS against the exact normal marginal.
    for i in range(3):
        ref = stats.norm(float(loc[i]), np.sqrt(cov[i, i]))
        assert stats.kstest(x[:2000, i], ref.cdf).pvalue > 1e-3
    pts = x[:7].astype(np.float32)
    ref = stats.multivariate_normal(np.asarray(loc), cov).logpdf(pts)
    np.testing.assert_allclose(d.log_prob(pts), ref, rtol=1e-5)


def test_multivariate_normal_batch_broadcasting():
    tril = jnp.stack([jnp.eye(2), 2 * jnp.eye(2)])  # batch 2
    d = jr.reparam.multivariate_normal(jnp.zeros(2), tril)
    assert d.batch_shape == (2,) and d.event_shape == (2,)
    x = d.sample(jax.random.key(0), (4,))
    assert x.shape == (4, 2, 2)
    lp = d.log_prob(jnp.ones(2))
    ref = [stats.multivariate_normal(np.zeros(2), s * np.eye(2)).logpdf(np.ones(2)) for s in (1, 4)]
    np.testing.assert_allclose(lp, ref, rtol=1e-5)


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: jr.reparam.lognormal(0.0, -1.0), "scale"),
        (lambda: jr.reparam.exponential(0.0), "rate"),
        (lambda: jr.reparam.exponential(jnp.array([1.0, jnp.nan])), "rate"),
        (lambda: jr.reparam.laplace(0.0, 0.0), "scale"),
        (lambda: jr.reparam.logistic(0.0, -2.0), "scale"),
        (lambda: jr.reparam.gumbel(0.0, 0.0), "scale"),
        (lambda: jr.reparam.cauchy(0.0, -1.0), "scale"),
        (lambda: jr.reparam.uniform(1.0, 1.0), "low"),
        (lambda: jr.reparam.uniform(jnp.array([0.0, 2.0]), 1.0), "high"),
        (lambda: jr.reparam.kumaraswamy(0.0, 1.0), "a"),
        (lambda: jr.reparam.kumaraswamy(1.0, -1.0), "b"),
        (lambda: jr.reparam.multivariate_normal(jnp.zeros(2), jnp.ones((2, 2))), "scale_tril"),
        (
            lambda: jr.reparam.multivariate_normal(jnp.zeros(2), jnp.diag(jnp.array([1.0, 0.0]))),
            "scale_tril",
        ),
        (lambda: jr.reparam.multivariate_normal(jnp.zeros(3), jnp.eye(2)), "scale_tril"),
        (lambda: jr.reparam.multivariate_normal(0.0, jnp.eye(1)), "loc"),
    ],
)
def test_bad_parameters_raise_naming_the_argument(make, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        make()


def test_traced_parameters_are_not_checked():
    # Under jit the values are unknown: construction must trace without raising.
    out = jax.jit(lambda s: jr.reparam.laplace(0.0, s).sample(jax.random.key(0)))(1.0)
    assert np.isfinite(out)
