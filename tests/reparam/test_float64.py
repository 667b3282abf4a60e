"""float64 behaviour of jr.reparam (x64 enabled only inside this module)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import stats

import jaxrelax as jr

# x64 is enabled for this module only (fixture in the root conftest.py).
pytestmark = pytest.mark.usefixtures("x64_module")


def _f64(*xs):
    return tuple(jnp.asarray(x, jnp.float64) for x in xs)


CASES = [
    (jr.reparam.normal, (0.3, 1.2), stats.norm(0.3, 1.2)),
    (jr.reparam.lognormal, (0.3, 0.6), stats.lognorm(0.6, scale=np.exp(0.3))),
    (jr.reparam.exponential, (2.5,), stats.expon(scale=0.4)),
    (jr.reparam.gamma, (0.7, 2.0), stats.gamma(0.7, scale=0.5)),
    (jr.reparam.beta, (0.5, 3.0), stats.beta(0.5, 3.0)),
    (jr.reparam.uniform, (-1.0, 3.0), stats.uniform(-1.0, 4.0)),
    (jr.reparam.laplace, (0.5, 1.5), stats.laplace(0.5, 1.5)),
    (jr.reparam.logistic, (0.5, 1.5), stats.logistic(0.5, 1.5)),
    (jr.reparam.gumbel, (0.5, 1.5), stats.gumbel_r(0.5, 1.5)),
    (jr.reparam.cauchy, (0.5, 1.5), stats.cauchy(0.5, 1.5)),
]


@pytest.mark.parametrize("ctor, params, ref", CASES, ids=[c[0].__name__ for c in CASES])
def test_float64_kept_and_log_prob_tight(ctor, params, ref):
    d = ctor(*_f64(*params))
    x = d.sample(jax.random.key(0), (5,))
    assert x.dtype == jnp.float64 and d.log_prob(x).dtype == jnp.float64
    np.testing.assert_allclose(d.log_prob(x), ref.logpdf(np.asarray(x)), rtol=1e-10)


def test_float64_multivariate_families():
    tril = jnp.array([[1.0, 0.0], [0.5, 2.0]], jnp.float64)
    d = jr.reparam.multivariate_normal(jnp.zeros(2, jnp.float64), tril)
    x = d.sample(jax.random.key(1), (3,))
    assert x.dtype == jnp.float64
    ref = stats.multivariate_normal(np.zeros(2), np.asarray(tril @ tril.T)).logpdf(np.asarray(x))
    np.testing.assert_allclose(d.log_prob(x), ref, rtol=1e-10)
    c = jnp.array([0.5, 2.0, 3.5], jnp.float64)
    y = jr.reparam.dirichlet(c).sample(jax.random.key(2), (3,))
    assert y.dtype == jnp.float64
    ref = [stats.dirichlet(np.asarray(c)).logpdf(v) for v in np.asarray(y)]
    np.testing.assert_allclose(jr.reparam.dirichlet(c).log_prob(y), ref, rtol=1e-9)
    for d in (
        jr.reparam.concrete(jnp.zeros(3, jnp.float64), 0.5),
        jr.reparam.binary_concrete(jnp.float64(0.3), 0.5),
        jr.reparam.gumbel_max(jnp.zeros(3, jnp.float64)),
    ):
        z = d.sample(jax.random.key(3), (2,))
        assert z.dtype == jnp.float64 and d.log_prob(z).dtype == jnp.float64


def test_float64_transform_gradients_second_order():
    # The two least trivial transforms / densities (first-order checks of the others are
    # in test_continuous.py).
    eps = jr.reparam.kumaraswamy(1.0, 1.0).noise(jax.random.key(4), (4,))
    check_grads(
        lambda a, b: jr.reparam.kumaraswamy(a, b).transform(eps),
        _f64(0.7, 2.0),
        order=2,
        eps=1e-6,
        rtol=1e-6,
    )
    logits = jnp.array([0.2, -0.4, 1.0], jnp.float64)
    g = jr.reparam.concrete(logits, 0.7).noise(jax.random.key(5), (3,))
    x = jr.reparam.concrete(logits, 0.7).transform(g)
    check_grads(
        lambda lg, t: jr.reparam.concrete(lg, t).log_prob(x),
        (logits, jnp.float64(0.7)),
        order=2,
        eps=1e-6,
        rtol=1e-6,
    )


def test_float64_tfp_relaxed_bernoulli_log_prob():
    # TFP relaxed_bernoulli_test.py::testLogProb in float64 with TFP's tolerance
    # (assertAllClose: rtol = atol = 1e-6): t = 1, probs = 0.1, Maddison et al. 2016.
    t, p = 1.0, 0.1
    xs = np.array([0.1, 0.3, 0.5, 0.9])
    alpha = p / (1 - p)
    expected = (
        np.log(t)
        + np.log(alpha)
        + (-t - 1) * (np.log(xs) + np.log(1 - xs))
        - 2 * np.log(alpha * np.power(xs, -t) + np.power(1 - xs, -t))
    )
    d = jr.reparam.binary_concrete(jnp.float64(np.log(alpha)), jnp.float64(t))
    lp = d.log_prob(jnp.asarray(xs))
    assert lp.dtype == jnp.float64  # TFP ...::testDtype (float64 half)
    np.testing.assert_allclose(lp, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("t", [3.0, 0.25])
def test_float64_torch_gradcheck_concrete_log_prob(t):
    # PyTorch test/distributions/test_distributions.py::test_relaxed_one_hot_categorical_2d:
    # _gradcheck_log_prob (double; gradcheck eps 1e-6, atol 1e-5, rtol 1e-3) in the
    # temperature, the probabilities and the sample, at temperatures 3 and 0.25.
    probs = np.array([[0.1, 0.2, 0.3], [0.5, 0.3, 0.2]])
    logits = jnp.asarray(np.log(probs / probs.sum(-1, keepdims=True)))
    temp = jnp.array([t], jnp.float64)
    x = jr.reparam.concrete(logits, temp).sample(jax.random.key(6))
    check_grads(
        lambda lg, tt, xx: jr.reparam.concrete(lg, tt).log_prob(xx),
        (logits, temp, x),
        order=1,
        modes=["rev"],
        eps=1e-6,
        atol=1e-5,
        rtol=1e-3,
    )


def test_float64_torch_gradcheck_binary_concrete_log_prob():
    # PyTorch ...::test_relaxed_bernoulli: _gradcheck_log_prob at temp 0.67 for probs
    # [0.7, 0.2, 0.4] (PyTorch's gradcheck tolerances, as above).
    probs = np.array([0.7, 0.2, 0.4])
    logits = jnp.asarray(np.log(probs / (1 - probs)))
    temp = jnp.float64(0.67)
    x = jr.reparam.binary_concrete(logits, temp).sample(jax.random.key(7))
    check_grads(
        lambda lg, tt, xx: jr.reparam.binary_concrete(lg, tt).log_prob(xx),
        (logits, temp, x),
        order=1,
        modes=["rev"],
        eps=1e-6,
        atol=1e-5,
        rtol=1e-3,
    )
