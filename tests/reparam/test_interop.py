"""Tests for jr.reparam.from_distribution (distrax and TFP-on-JAX are optional)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

TRIL = jnp.array([[1.0, 0.0], [0.5, 2.0]])
COV = jnp.array([[2.0, 0.5], [0.5, 1.0]])


def _tfp_cases(tfd):
    p = jnp.array([0.2, 0.3, 0.5])
    return [
        (tfd.Normal(jnp.array([0.0, 1.0]), 2.0), "normal"),
        (tfd.LogNormal(0.2, 0.7), "lognormal"),
        (tfd.Exponential(jnp.array([0.5, 2.0])), "exponential"),
        (tfd.Gamma(2.0, 3.0), "gamma"),
        (tfd.Gamma(2.0, log_rate=0.5), "gamma"),
        (tfd.Beta(2.0, 3.0), "beta"),
        (tfd.Dirichlet(jnp.array([1.0, 2.0, 0.5])), "dirichlet"),
        (tfd.Uniform(-1.0, 2.0), "uniform"),
        (tfd.Laplace(0.3, 1.5), "laplace"),
        (tfd.Logistic(0.3, 1.5), "logistic"),
        (tfd.Gumbel(0.3, 1.5), "gumbel"),
        (tfd.Cauchy(0.3, 1.5), "cauchy"),
        (tfd.Kumaraswamy(2.0, 3.0), "kumaraswamy"),
        (tfd.RelaxedOneHotCategorical(0.5, probs=p), "concrete"),
        (tfd.RelaxedOneHotCategorical(0.05, logits=jnp.log(p)), "concrete"),
        (tfd.RelaxedBernoulli(0.4, logits=jnp.array([0.3, -1.0])), "binary_concrete"),
        (tfd.OneHotCategorical(probs=p, dtype=jnp.float32), "gumbel_max"),
        (tfd.MultivariateNormalTriL(jnp.zeros(2), TRIL), "multivariate_normal"),
        (tfd.MultivariateNormalDiag(jnp.ones(2), jnp.array([1.0, 3.0])), "multivariate_normal"),
        (tfd.MultivariateNormalFullCovariance(jnp.zeros(2), COV), "multivariate_normal"),
    ]


def _distrax_cases(distrax):
    return [
        (distrax.Normal(jnp.array([0.0, 1.0]), 2.0), "normal"),
        (distrax.LogStddevNormal(0.3, -0.5), "normal"),
        (distrax.Laplace(0.3, 1.5), "laplace"),
        (distrax.Logistic(0.3, 1.5), "logistic"),
        (distrax.Gumbel(0.3, 1.5), "gumbel"),
        (distrax.Uniform(-1.0, 2.0), "uniform"),
        (distrax.Gamma(2.0, 3.0), "gamma"),
        (distrax.Beta(2.0, 3.0), "beta"),
        (distrax.Dirichlet(jnp.array([1.0, 2.0, 0.5])), "dirichlet"),
        (distrax.MultivariateNormalTri(jnp.zeros(2), TRIL), "multivariate_normal"),
        (
            distrax.MultivariateNormalTri(jnp.zeros(2), TRIL.T, is_lower=False),
            "multivariate_normal",
        ),
        (distrax.MultivariateNormalDiag(jnp.ones(2), jnp.array([1.0, 3.0])), "multivariate_normal"),
        (distrax.MultivariateNormalFullCovariance(jnp.zeros(2), COV), "multivariate_normal"),
        (distrax.OneHotCategorical(probs=jnp.array([0.2, 0.8]), dtype=jnp.float32), "gumbel_max"),
    ]


def _check_same_law(d, family):
    r = jr.reparam.from_distribution(d)
    assert r.name == family
    assert r.batch_shape == tuple(d.batch_shape)
    assert r.event_shape == tuple(d.event_shape)
    # log densities agree at the library's own samples...
    x = jnp.asarray(d.sample(seed=jax.random.key(0), sample_shape=(6,)), jnp.float32)
    if family == "concrete":
        # Low-temperature samples have entries below float32's normal range, where the
        # density is evaluated at max(x, tiny) (documented); compare the other rows.
        x = x[jnp.min(x, -1) > 1e-30]
        assert x.shape[0] >= 1
    np.testing.assert_allclose(r.log_prob(x), d.log_prob(x), rtol=2e-4, atol=2e-4)
    # ...and at ours.
    y = r.sample(jax.random.key(1), (6,))
    if family == "concrete":
        y = y[jnp.min(y, -1) > 1e-30]
    np.testing.assert_allclose(r.log_prob(y), d.log_prob(y), rtol=2e-4, atol=2e-4)


# A few representative families run by default; the full catalogue is slow (TFP and
# distrax dispatch many small eager ops) and runs with -m slow.
_TFP_QUICK = ("Normal", "Gamma", "RelaxedOneHotCategorical", "MultivariateNormalTriL")
_DISTRAX_QUICK = ("Beta", "MultivariateNormalTri")
_IGNORE_TFP_WARNINGS = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore:Explicitly requested dtype:UserWarning"
)


@_IGNORE_TFP_WARNINGS
@pytest.mark.parametrize("full", [False, True])
def test_from_tfp(full):
    tfp = pytest.importorskip("tensorflow_probability.substrates.jax")
    for d, family in _tfp_cases(tfp.distributions):
        if full or type(d).__name__ in _TFP_QUICK:
            _check_same_law(d, family)


@_IGNORE_TFP_WARNINGS
@pytest.mark.parametrize("full", [False, True])
def test_from_distrax(full):
    distrax = pytest.importorskip("distrax")
    for d, family in _distrax_cases(distrax):
        if full or type(d).__name__ in _DISTRAX_QUICK:
            _check_same_law(d, family)


@_IGNORE_TFP_WARNINGS
def test_gradient_flows_through_converted_distribution():
    tfp = pytest.importorskip("tensorflow_probability.substrates.jax")
    eps = jr.reparam.normal(0.0, 1.0).noise(jax.random.key(2), (1000,))

    def mean_sq(loc, scale):
        r = jr.reparam.from_distribution(tfp.distributions.Normal(loc, scale))
        return jnp.mean(r.transform(eps) ** 2)

    gl, gs = jax.grad(mean_sq, argnums=(0, 1))(0.5, 1.5)
    z = np.asarray(eps)
    # Exact pathwise gradient for this fixed noise: d/dloc mean((loc + s z)²) etc.
    np.testing.assert_allclose(gl, np.mean(2 * (0.5 + 1.5 * z)), rtol=1e-5)
    np.testing.assert_allclose(gs, np.mean(2 * (0.5 + 1.5 * z) * z), rtol=1e-5)


def test_unsupported_raise_type_error():
    with pytest.raises(TypeError, match="distrax or TFP"):
        jr.reparam.from_distribution(jr.reparam.normal(0.0, 1.0))
    distrax = pytest.importorskip("distrax")
    with pytest.raises(TypeError, match="Categorical is not supported"):
        jr.reparam.from_distribution(distrax.Categorical(logits=jnp.zeros(3)))


def test_optional_libraries_not_imported():
    import subprocess
    import sys

    code = (
        "import sys, jaxrelax as jr; jr.reparam.normal(0.0, 1.0);"
        "print(any(m.split('.')[0] in ('distrax', 'tensorflow_probability') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
