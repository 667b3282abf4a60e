"""Tests for gamma, beta and dirichlet (implicit reparameterisation, key noise)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxrelax as jr

# Every statistical test draws M gamma variates in total (e.g. 12000 gammas, 6000 betas,
# 4000 three-way Dirichlets) so they share one compiled rejection sampler (slow to build).
# KS p-values are ~U(0, 1) for a correct sampler at a fixed key; we require p > 1e-3.
M = 12_000


@pytest.mark.parametrize("conc", [0.3, 4.0])
def test_gamma_ks_and_log_prob(conc):
    rate = 2.0
    d = jr.reparam.gamma(conc, rate)
    ref = stats.gamma(conc, scale=1 / rate)
    x = np.asarray(d.sample(jax.random.key(0), (M,)), np.float64)
    assert np.all(x > 0)
    assert stats.kstest(x, ref.cdf).pvalue > 1e-3
    grid = np.asarray(ref.ppf(np.linspace(0.02, 0.98, 9)), np.float32)
    np.testing.assert_allclose(d.log_prob(grid), ref.logpdf(grid), rtol=1e-4, atol=1e-5)
    assert d.log_prob(-1.0) == -jnp.inf


def test_beta_ks_and_log_prob():
    d = jr.reparam.beta(0.5, 3.0)
    ref = stats.beta(0.5, 3.0)
    x = np.asarray(d.sample(jax.random.key(1), (M // 2,)), np.float64)
    assert stats.kstest(x, ref.cdf).pvalue > 1e-3
    grid = np.linspace(0.05, 0.95, 7).astype(np.float32)
    np.testing.assert_allclose(d.log_prob(grid), ref.logpdf(grid), rtol=1e-4, atol=1e-5)


def test_dirichlet_marginals_and_log_prob():
    c = np.array([0.5, 2.0, 3.5])
    d = jr.reparam.dirichlet(jnp.asarray(c, jnp.float32))
    assert d.event_shape == (3,) and d.event_ndim == 1
    x = np.asarray(d.sample(jax.random.key(2), (M // 3,)), np.float64)
    np.testing.assert_allclose(x.sum(-1), 1.0, atol=1e-5)
    for k in range(3):  # marginal x_k ~ Beta(c_k, sum(c) - c_k)
        assert stats.kstest(x[:, k], stats.beta(c[k], c.sum() - c[k]).cdf).pvalue > 1e-3
    pts = np.array([[0.2, 0.3, 0.5], [0.1, 0.6, 0.3]])
    ref = [stats.dirichlet(c).logpdf(p) for p in pts]
    np.testing.assert_allclose(d.log_prob(pts.astype(np.float32)), ref, rtol=1e-4)


def test_noise_is_keys_one_per_gamma_variate():
    key = jax.random.key(3)
    g = jr.reparam.gamma(jnp.ones(4), 1.0).noise(key, (2,))
    assert jnp.issubdtype(g.dtype, jax.dtypes.prng_key) and g.shape == (2, 4)
    b = jr.reparam.beta(jnp.ones(4), 2.0).noise(key, (2,))
    assert b.shape == (2, 4, 2)
    dd = jr.reparam.dirichlet(jnp.ones((4, 3))).noise(key, (2,))
    assert dd.shape == (2, 4, 3)
    # Parameter-free: same keys for any concentration / dtype.
    g2 = jr.reparam.gamma(jnp.full(4, 9.0, jnp.bfloat16), 3.0).noise(key, (2,))
    np.testing.assert_array_equal(jax.random.key_data(g), jax.random.key_data(g2))


def test_gamma_pathwise_gradients_closed_form():
    # E[x] = α / β: d/dα = 1/β, d/dβ = -α/β². Measured per-sample sd: 0.21 (dx/dα) and
    # 0.62 (dx/dβ); n = 12000 gives SE 0.3% and 0.6% of the values: tolerances ≥ 5 SE.
    a, r = 2.5, 1.6
    eps = jr.reparam.gamma(1.0, 1.0).noise(jax.random.key(4), (M,))

    def mean(a, r):
        return jr.reparam.gamma(a, r).transform(eps).mean()

    ga, gr = jax.grad(mean, argnums=(0, 1))(a, r)
    np.testing.assert_allclose(ga, 1 / r, rtol=0.015)
    np.testing.assert_allclose(gr, -a / r**2, rtol=0.03)


def test_beta_and_dirichlet_pathwise_gradients_closed_form():
    # Dirichlet: E[x_0] = c_0 / S, d/dc_0 = (S - c_0) / S², d/dc_j = -c_0 / S² (j > 0).
    c = jnp.array([1.5, 2.0, 0.5])
    s = float(c.sum())
    eps = jr.reparam.dirichlet(c).noise(jax.random.key(5), (M // 3,))
    g = jax.grad(lambda c: jr.reparam.dirichlet(c).transform(eps)[:, 0].mean())(c)
    ref = np.array([(s - 1.5) / s**2, -1.5 / s**2, -1.5 / s**2])
    # Measured per-sample sd <= 0.09; SE <= 0.0014 at n = 4000; 5 SE.
    np.testing.assert_allclose(g, ref, atol=7e-3)
    # Beta: E[x] = a / (a + b), d/da = b / (a + b)².
    epsb = jr.reparam.beta(1.0, 1.0).noise(jax.random.key(6), (M // 2,))
    gb = jax.grad(lambda a: jr.reparam.beta(a, 3.0).transform(epsb).mean())(2.0)
    np.testing.assert_allclose(gb, 3.0 / 25.0, atol=5e-3)


def test_small_concentrations_stay_finite():
    x = jr.reparam.dirichlet(jnp.full(4, 1e-3)).sample(jax.random.key(7), (M // 4,))
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(x.sum(-1), 1.0, atol=1e-5)
    y = jr.reparam.beta(1e-3, 1e-3).sample(jax.random.key(8), (M // 2,))
    assert np.all(np.isfinite(y)) and np.all((y >= 0) & (y <= 1))


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: jr.reparam.gamma(0.0, 1.0), "concentration"),
        (lambda: jr.reparam.gamma(1.0, -1.0), "rate"),
        (lambda: jr.reparam.beta(-1.0, 1.0), "a"),
        (lambda: jr.reparam.beta(1.0, 0.0), "b"),
        (lambda: jr.reparam.dirichlet(jnp.array([1.0, 0.0])), "concentration"),
        (lambda: jr.reparam.dirichlet(1.0), "concentration"),
    ],
)
def test_bad_parameters_raise_naming_the_argument(make, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        make()
