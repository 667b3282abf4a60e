"""Tests for concrete, binary_concrete and gumbel_max."""

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


def test_gumbel_max_exact_categorical_frequencies():
    logits = jnp.log(jnp.asarray(PROBS, jnp.float32))
    x = np.asarray(jr.reparam.gumbel_max(logits).sample(jax.random.key(7), (N,)))
    assert set(np.unique(x)) == {0.0, 1.0}
    np.testing.assert_array_equal(x.sum(-1), 1.0)
    assert stats.chisquare(x.sum(0), N * PROBS).pvalue > 1e-3


def test_gumbel_max_log_prob_masks_and_zero_gradient():
    logits = jnp.array([1.0, -jnp.inf, 0.0, 2.0])
    d = jr.reparam.gumbel_max(logits)
    eye = jnp.eye(4)
    lp = d.log_prob(eye)
    ref = np.asarray(jax.nn.log_softmax(logits))
    np.testing.assert_allclose(lp[jnp.array([0, 2, 3])], ref[[0, 2, 3]], rtol=1e-6)
    assert lp[1] == -jnp.inf
    x = d.sample(jax.random.key(8), (500,))
    assert np.all(x[:, 1] == 0)
    # The transform is piecewise constant: its gradient is exactly zero.
    g = d.noise(jax.random.key(9))
    grad = jax.jit(
        jax.grad(lambda lg: jnp.sum(jr.reparam.gumbel_max(lg).transform(g) * jnp.arange(4.0)))
    )
    np.testing.assert_array_equal(grad(jnp.array([1.0, 0.5, 0.0, 2.0])), 0.0)
    # ...but log_prob is differentiable (for score-function estimators).
    gl = jax.jit(jax.grad(lambda lg: jr.reparam.gumbel_max(lg).log_prob(eye[0])))(jnp.zeros(4))
    np.testing.assert_allclose(gl, [0.75, -0.25, -0.25, -0.25], rtol=1e-6)


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
        (lambda: jr.reparam.gumbel_max(1.0), "logits"),
    ],
)
def test_bad_parameters_raise_naming_the_argument(make, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        make()
