"""Tests for concrete and binary_concrete."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import jaxrelax as jr

N = 6000  # samples per statistical test; chi-square / KS p-values must exceed 1e-3.
PROBS = np.array([0.2, 0.3, 0.5])


def _concrete_log_prob_ref(x, logits, t):
    """Maddison et al. (2017) eq. 1 in float64, written directly from the paper."""
    x, logits = np.asarray(x, np.float64), np.asarray(logits, np.float64)
    n = logits.shape[-1]
    alpha = np.exp(logits)
    num = np.prod(alpha * x ** (-t - 1.0), axis=-1)
    den = np.sum(alpha * x ** (-t), axis=-1) ** n
    return special.gammaln(n) + (n - 1) * np.log(t) + np.log(num / den)


def _binary_concrete_cdf(logits, t):
    return lambda y: special.expit(t * special.logit(np.clip(y, 1e-300, 1 - 1e-16)) - logits)


def test_concrete_argmax_frequencies_match_categorical():
    # argmax(softmax((l + g) / T)) = argmax(l + g): exactly Categorical(softmax(l)).
    d = jr.reparam.concrete(jnp.log(jnp.asarray(PROBS, jnp.float32)), 0.5)
    x = d.sample(jax.random.key(0), (N,))
    np.testing.assert_allclose(x.sum(-1), 1.0, atol=1e-5)
    counts = np.bincount(np.asarray(jnp.argmax(x, -1)), minlength=3)
    assert stats.chisquare(counts, N * PROBS).pvalue > 1e-3


def test_concrete_two_categories_is_binary_concrete_ks():
    # For K = 2, x_0 = sigmoid((l_0 - l_1 + L) / T) with L logistic: compare CDFs.
    logits, t = np.array([0.4, -0.3]), 0.7
    x0 = np.asarray(jr.reparam.concrete(logits, t).sample(jax.random.key(1), (N,))[:, 0])
    assert stats.kstest(x0, _binary_concrete_cdf(0.7, t)).pvalue > 1e-3


@pytest.mark.parametrize("t", [0.3, 1.0, 2.5])
def test_concrete_log_prob_matches_reference_formula(t):
    logits = jnp.array([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, -3.0, 0.2]])
    d = jr.reparam.concrete(logits, t)
    x = d.sample(jax.random.key(2), (5,))
    np.testing.assert_allclose(
        d.log_prob(x), _concrete_log_prob_ref(x, logits, t), rtol=2e-4, atol=2e-4
    )
    # Shift invariance of the logits (the density depends on softmax(logits) only).
    np.testing.assert_allclose(
        jr.reparam.concrete(logits + 100.0, t).log_prob(x), d.log_prob(x), rtol=1e-5, atol=1e-4
    )


def test_concrete_density_integrates_to_one():
    # K = 2: the density w.r.t. x_0 on (0, 1) (x_1 = 1 - x_0) integrates to 1.
    d = jr.reparam.concrete(jnp.array([0.3, -0.5]), 1.5)
    x0 = np.linspace(1e-6, 1 - 1e-6, 40001)
    pts = np.stack([x0, 1 - x0], -1).astype(np.float32)
    total = np.trapezoid(np.exp(np.asarray(d.log_prob(pts), np.float64)), x0)
    np.testing.assert_allclose(total, 1.0, atol=2e-3)  # trapezoid error, smooth density


@pytest.mark.parametrize("t", [1e-2, 1e-4])
@pytest.mark.parametrize("big", [False, True])
def test_concrete_low_temperature_and_huge_logits_finite(t, big):
    logits = jnp.array([1e30, -1e30, 0.0]) if big else jnp.array([0.1, 2.0, -1.0])

    @jax.jit
    def run(lg):
        d = jr.reparam.concrete(lg, t)
        eps = d.noise(jax.random.key(3), (20,))
        x = d.transform(eps)
        g_lp = jax.grad(lambda lg: jr.reparam.concrete(lg, t).log_prob(x).sum())(lg)
        g_x = jax.grad(lambda lg: jr.reparam.concrete(lg, t).transform(eps)[:, 0].sum())(lg)
        return x, d.log_prob(x), g_lp, g_x

    for out in run(logits):
        assert np.all(np.isfinite(out))


def test_concrete_masks():
    logits = jnp.array([0.5, -jnp.inf, -0.2])
    d = jr.reparam.concrete(logits, 0.6)
    x = d.sample(jax.random.key(4), (50,))
    assert np.all(x[:, 1] == 0)
    # The density is that of the 2-category distribution on the unmasked entries.
    reduced = jr.reparam.concrete(logits[jnp.array([0, 2])], 0.6)
    np.testing.assert_allclose(d.log_prob(x), reduced.log_prob(x[:, jnp.array([0, 2])]), rtol=1e-5)
    g = jax.jit(jax.grad(lambda lg: jr.reparam.concrete(lg, 0.6).log_prob(x).sum()))(logits)
    assert np.all(np.isfinite(g)) and g[1] == 0


def test_binary_concrete_ks_thresholds_and_log_prob():
    logits, t = 0.8, 0.6
    d = jr.reparam.binary_concrete(logits, t)
    y = np.asarray(d.sample(jax.random.key(5), (N,)), np.float64)
    assert stats.kstest(y, _binary_concrete_cdf(logits, t)).pvalue > 1e-3
    # P(y > 1/2) = sigmoid(logits); binomial SE = sqrt(p(1-p)/N) ≈ 0.006; 4 SE.
    np.testing.assert_allclose((y > 0.5).mean(), special.expit(logits), atol=0.025)
    grid = np.linspace(0.02, 0.98, 25)
    # Reference: derivative of the CDF sigmoid(T logit(y) - l).
    s = special.expit(t * special.logit(grid) - logits)
    ref = np.log(t * s * (1 - s) / (grid * (1 - grid)))
    np.testing.assert_allclose(d.log_prob(grid.astype(np.float32)), ref, rtol=1e-4, atol=1e-4)


def test_binary_concrete_density_integrates_to_one():
    d = jr.reparam.binary_concrete(-0.4, 1.3)
    y = np.linspace(1e-7, 1 - 1e-7, 40001)
    total = np.trapezoid(np.exp(np.asarray(d.log_prob(y.astype(np.float32)), np.float64)), y)
    np.testing.assert_allclose(total, 1.0, atol=2e-3)


def test_binary_concrete_low_temperature_finite():
    for logits in (jnp.array([0.3, -2.0]), jnp.array([1e30, -1e30]), jnp.array([jnp.inf, 0.0])):
        d = jr.reparam.binary_concrete(logits, 1e-4)
        y = d.sample(jax.random.key(6), (20,))
        assert np.all(np.isfinite(y)) and np.all((y >= 0) & (y <= 1))
        assert not np.any(np.isnan(d.log_prob(y)))
    g = jax.jit(jax.grad(lambda lg: jr.reparam.binary_concrete(lg, 1e-4).log_prob(y).sum()))(
        jnp.array([0.3, -2.0])
    )
    assert np.all(np.isfinite(g))


def test_concrete_temperature_batch_broadcast():
    d = jr.reparam.concrete(jnp.zeros((2, 3)), jnp.array([0.5, 2.0]))
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    x = d.sample(jax.random.key(10), (4,))
    assert x.shape == (4, 2, 3)
    assert d.log_prob(x).shape == (4, 2)


@pytest.mark.parametrize(
    "make, arg",
    [
        (lambda: jr.reparam.concrete(jnp.zeros(3), 0.0), "temperature"),
        (lambda: jr.reparam.concrete(jnp.zeros(3), -1.0), "temperature"),
        (lambda: jr.reparam.concrete(0.0, 1.0), "logits"),
        (lambda: jr.reparam.binary_concrete(0.0, 0.0), "temperature"),
    ],
)
def test_bad_parameters_raise_naming_the_argument(make, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        make()


# ---------------------------------------------------------------------------------
# Ported from the peers' own test suites (published values and tolerances).
# ---------------------------------------------------------------------------------
def _tfp_relaxed_categorical_pdf(x, temperature, logits):
    # TFP relaxed_onehot_categorical_test.py::analytical_pdf (Maddison et al. 2016).
    temperature = np.reshape(temperature, (-1, 1))
    x = np.atleast_2d(np.asarray(x, np.float64))
    k = logits.shape[-1]
    p = np.exp(logits) / np.sum(np.exp(logits), axis=-1, keepdims=True)
    term1 = special.gamma(k) * np.power(temperature, k - 1)
    term2 = np.sum(p / np.power(x, temperature), axis=-1, keepdims=True)
    term3 = np.prod(p / np.power(x, temperature + 1), axis=-1, keepdims=True)
    return term1 * np.power(term2, -k) * term3


def test_tfp_relaxed_onehot_categorical_pdf():
    # TFP relaxed_onehot_categorical_test.py::RelaxedOneHotCategoricalTest::testPdf
    # (rtol=1e-4 as there): single, batched temperatures, logits broadcast over them.
    cases = [
        (np.float32(0.4), np.array([[0.3, 0.1, 0.4]], np.float32)),
        (
            np.array([0.4, 2.3], np.float32),
            np.array([[0.3, 0.1, 0.4], [0.6, -0.1, 2.0]], np.float32),
        ),
        (np.array([0.4, 2.3], np.float32), np.array([0.3, 0.1, 0.4], np.float32)),
    ]
    for i, (t, logits) in enumerate(cases):
        d = jr.reparam.concrete(logits, t)
        x = d.sample(jax.random.key(20 + i))
        pdf = np.exp(np.asarray(d.log_prob(x), np.float64))
        expected = _tfp_relaxed_categorical_pdf(x, t, logits.astype(np.float64))
        np.testing.assert_allclose(pdf.flatten(), expected.flatten(), rtol=1e-4)


def test_tfp_relaxed_onehot_categorical_shapes():
    # TFP ...::testParamBroadcasting: temperature [1., 1.4] with logits [2., 3., -4.]
    # is a batch of 2 (the temperature enlarges the batch).
    d = jr.reparam.concrete(jnp.array([2.0, 3.0, -4.0]), jnp.array([1.0, 1.4]))
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    # ...::testSample: logits [4, 1, 3] give samples [4, 1, 3] and [5, 4, 1, 3].
    d = jr.reparam.concrete(jnp.ones((4, 1, 3)) * 0.3, 1.4)
    assert d.sample(jax.random.key(0)).shape == (4, 1, 3)
    assert d.sample(jax.random.key(0), 5).shape == (5, 4, 1, 3)
    # ...::testUnknownAndInvalidShape: rank-0 logits and a zero-width final axis.
    with pytest.raises(ValueError, match="`logits`"):
        jr.reparam.concrete(19.84, 0.75)
    with pytest.raises(ValueError, match="`logits` must have a non-empty event axis"):
        jr.reparam.concrete(jnp.zeros((2, 0)), 12.0)


def test_tfp_relaxed_onehot_categorical_event_size_one():
    # TFP ...::testEventSizeOfOne (ExpRelaxed: log-samples 0, prob 1): with K = 1 every
    # sample is [1.] and its density (w.r.t. the 0-dimensional simplex) is 1.
    d = jr.reparam.concrete(jnp.array([0.0]), 0.1337)
    np.testing.assert_array_equal(d.sample(jax.random.key(1), (5, 3)), np.ones((5, 3, 1)))
    np.testing.assert_allclose(np.exp(d.log_prob(jnp.ones((5, 1)))), np.ones(5), rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.float32])
def test_tfp_relaxed_onehot_categorical_dtypes(dtype):
    # TFP ...::testDTypes (float64 in test_float64.py): sample and log_prob work, finite.
    logits = jax.random.uniform(jax.random.key(2), (3, 3), dtype)
    d = jr.reparam.concrete(logits, 0.5)
    x = d.sample(jax.random.key(3))
    lp = d.log_prob(x)
    assert x.dtype == dtype and lp.dtype == dtype
    assert np.all(np.isfinite(np.asarray(lp, np.float32)))


def test_tfp_relaxed_bernoulli_log_prob_closed_form():
    # TFP relaxed_bernoulli_test.py::testLogProb: t = 1, probs = 0.1, analytical density
    # of Maddison et al. 2016. TFP checks float64 at rtol 1e-6; here float32, rtol 1e-5.
    t, p = 1.0, 0.1
    xs = np.array([0.1, 0.3, 0.5, 0.9])
    alpha = p / (1 - p)
    expected = (
        np.log(t)
        + np.log(alpha)
        + (-t - 1) * (np.log(xs) + np.log(1 - xs))
        - 2 * np.log(alpha * np.power(xs, -t) + np.power(1 - xs, -t))
    )
    d = jr.reparam.binary_concrete(np.float32(special.logit(p)), t)
    np.testing.assert_allclose(d.log_prob(xs.astype(np.float32)), expected, rtol=1e-5)


def test_tfp_relaxed_bernoulli_boundary_conditions():
    # TFP relaxed_bernoulli_test.py::testBoundaryConditions expects NaN at x = 0 and 1 for
    # probs = 1 (its TODO b/144948687 wants no NaN). Deliberate difference: jaxrelax never
    # returns NaN there. With logits = +inf the law is the point mass at 1 (no density):
    # -inf at both ends.
    d = jr.reparam.binary_concrete(jnp.inf, 1e-2)
    np.testing.assert_array_equal(d.log_prob(jnp.array([0.0, 1.0])), [-np.inf, -np.inf])
    # TFP's intended testPdfAtBoundary (t = 0.1, logits 3): the density diverges at 0;
    # jaxrelax evaluates it at the nearest representable point (the float32 tiny), where
    # the closed form of testLogProb gives a large finite value.
    t, logits = 0.1, 3.0
    y = np.float64(np.finfo(np.float32).tiny)
    alpha = np.exp(logits)
    ref = (
        np.log(t)
        + np.log(alpha)
        + (-t - 1) * (np.log(y) + np.log1p(-y))
        - 2 * np.logaddexp(np.log(alpha) - t * np.log(y), -t * np.log1p(-y))
    )
    lp0 = jr.reparam.binary_concrete(logits, t).log_prob(0.0)
    np.testing.assert_allclose(lp0, ref, rtol=1e-5)


def test_tfp_relaxed_bernoulli_sample_n():
    # TFP relaxed_bernoulli_test.py::testSampleN: t = 1e-2, probs [0.2, 0.6, 0.5],
    # n = 10000: samples in [0, 1], float32, P(y >= 0.5) = probs within atol 1e-2 (TFP's
    # tolerance: about 2 binomial standard errors, 0.005 at p = 0.5).
    p = np.array([0.2, 0.6, 0.5])
    d = jr.reparam.binary_concrete(special.logit(p).astype(np.float32), 1e-2)
    y = d.sample(jax.random.key(4), 10_000)
    assert y.dtype == jnp.float32
    assert np.all((y >= 0) & (y <= 1))
    np.testing.assert_allclose(np.mean(np.asarray(y) >= 0.5, axis=0), p, atol=1e-2)


def test_tfp_relaxed_bernoulli_shapes_dtype_and_temperature():
    # TFP relaxed_bernoulli_test.py::testShapes, ::testDtype, ::testZeroTemperature,
    # ::testAssertionsTemperature (there an op error; here ValueError when concrete,
    # NaN when traced).
    for batch_shape in [(), (1,), (2, 3, 4)]:
        d = jr.reparam.binary_concrete(jnp.zeros(batch_shape), 1.0)
        assert d.batch_shape == batch_shape and d.event_shape == ()
    d = jr.reparam.binary_concrete(jnp.zeros(2), 1.0)
    assert d.sample(jax.random.key(0), 5).dtype == jnp.float32
    assert d.log_prob(jnp.array([0.0])).dtype == jnp.float32
    for t in (0.0, -1.2):
        with pytest.raises(ValueError, match="`temperature`"):
            jr.reparam.binary_concrete(jnp.zeros(2), t)
    out = jax.jit(lambda t: jr.reparam.binary_concrete(jnp.zeros(2), t).sample(jax.random.key(0)))
    assert np.all(np.isnan(out(-1.2))) and np.all(np.isfinite(out(0.8)))


def test_tfp_relaxed_bernoulli_gradients_at_the_ends():
    # TFP relaxed_bernoulli_test.py::testGradientLogits: -log_prob([0, 1]) at t = 0.5,
    # logits [-1, 1] has a gradient (TFP: not None); here also finite.
    g = jax.grad(
        lambda lg: -jr.reparam.binary_concrete(lg, 0.5).log_prob(jnp.array([0.0, 1.0])).sum()
    )(jnp.array([-1.0, 1.0]))
    assert np.all(np.isfinite(g))


def test_torch_rounded_relaxed_bernoulli_and_infinite_temperature():
    # PyTorch test/distributions/test_distributions.py::test_rounded_relaxed_bernoulli:
    # round(RelaxedBernoulli(temp, probs)) ~ Bernoulli(probs) for probs {0.1, 0.2, 0.8} x
    # temp {0.1, 1, 10} (there a chi-square at failure rate 1e-3; here the same, one
    # batched draw), and RelaxedBernoulli(1e10, probs) samples exactly 0.5.
    probs = np.repeat([0.1, 0.2, 0.8], 3)
    temps = np.tile([0.1, 1.0, 10.0], 3).astype(np.float32)
    d = jr.reparam.binary_concrete(special.logit(probs).astype(np.float32), temps)
    ones = np.sum(np.round(np.asarray(d.sample(jax.random.key(5), N))), axis=0)
    for k, p in zip(ones, probs):
        assert stats.chisquare([N - k, k], [N * (1 - p), N * p]).pvalue > 1e-3
    for p in (0.001, 0.2, 0.999):
        y = jr.reparam.binary_concrete(np.float32(special.logit(p)), 1e10).sample(jax.random.key(6))
        assert y == 0.5


def test_torch_argmax_relaxed_categorical_and_infinite_temperature():
    # PyTorch ...::test_argmax_relaxed_categorical: argmax of RelaxedOneHotCategorical
    # ~ Categorical(probs) for probs {[0.1, 0.9], [0.2, 0.2, 0.6]} x temp {0.1, 1, 10}
    # (chi-square, failure rate 1e-3), and temperature 1e10 samples exactly 1 / K.
    temps = jnp.array([0.1, 1.0, 10.0])
    for i, probs in enumerate((np.array([0.1, 0.9]), np.array([0.2, 0.2, 0.6]))):
        d = jr.reparam.concrete(np.log(probs).astype(np.float32), temps)  # batch of 3
        idx = np.asarray(jnp.argmax(d.sample(jax.random.key(7 + i), N), -1))
        for j in range(3):
            counts = np.bincount(idx[:, j], minlength=len(probs))
            assert stats.chisquare(counts, N * probs).pvalue > 1e-3
        x = jr.reparam.concrete(np.log(probs).astype(np.float32), 1e10).sample(jax.random.key(9))
        np.testing.assert_allclose(x, np.full(len(probs), 1 / len(probs)), rtol=1e-6)


def test_torch_relaxed_shapes():
    # PyTorch ...::test_relaxed_bernoulli and ::test_relaxed_one_hot_categorical_1d/2d.
    logits_p = jnp.log(jnp.array([0.7, 0.2, 0.4]) / jnp.array([0.3, 0.8, 0.6]))
    assert jr.reparam.binary_concrete(logits_p, 0.67).sample(jax.random.key(0), 8).shape == (8, 3)
    r = jr.reparam.binary_concrete(0.3, 0.67)
    assert r.sample(jax.random.key(0), 8).shape == (8,)
    assert r.sample(jax.random.key(0)).shape == ()
    assert r.sample(jax.random.key(0), (3, 2)).shape == (3, 2)
    c = jr.reparam.concrete(jnp.log(jnp.array([0.1, 0.2, 0.3])), 0.67)
    assert c.sample(jax.random.key(0), (2, 2)).shape == (2, 2, 3)
    c2 = jr.reparam.concrete(
        jnp.log(jnp.array([[0.1, 0.2, 0.3], [0.5, 0.3, 0.2]])), jnp.array([3.0])
    )
    assert c2.sample(jax.random.key(0)).shape == (2, 3)
    assert c2.sample(jax.random.key(0), (3, 4)).shape == (3, 4, 2, 3)
    assert c2.sample(jax.random.key(0), (6,)).shape == (6, 2, 3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: jr.reparam.concrete(jnp.zeros((2, 3)), jnp.ones(5)),
        lambda: jr.reparam.binary_concrete(jnp.zeros(3), jnp.ones(2)),
    ],
)
def test_mismatched_temperature_names_both_arguments(make):
    with pytest.raises(ValueError, match=r"`temperature`.*\(\d,\)") as e:
        make()
    assert "`logits`" in str(e.value)
