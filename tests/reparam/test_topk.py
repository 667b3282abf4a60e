"""Tests for jr.reparam.gumbel_topk and relaxed_topk (Reparam families)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxrelax as jr

LOGITS = jnp.array([0.5, -1.0, 1.2, 0.0, -0.3])


def _subset_probs(logits, k):
    """Exact Plackett–Luce probabilities of every unordered k-subset, by enumeration of
    the ordered draws without replacement (float64 NumPy, independent of the library)."""
    w = np.exp(np.asarray(logits, np.float64))
    w /= w.sum()
    probs = {}
    for seq in itertools.permutations(range(len(w)), k):
        p, left = 1.0, 1.0
        for i in seq:
            p *= w[i] / left
            left -= w[i]
        key = tuple(sorted(seq))
        probs[key] = probs.get(key, 0.0) + p
    return probs


def _masks(subsets, n):
    return np.array([[1.0 if i in s else 0.0 for i in range(n)] for s in subsets])


# ---------------------------------------------------------------------------------
# gumbel_topk
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 2, 3])
def test_gumbel_topk_matches_plackett_luce(k):
    # k = 1: the top-1 follows softmax(logits) (a chi-square over the 5 categories).
    n_samples = 20_000
    masks = np.asarray(jr.reparam.gumbel_topk(LOGITS, k).sample(jax.random.key(k), n_samples))
    assert np.all(masks.sum(-1) == k)
    probs = _subset_probs(LOGITS, k)
    subsets = sorted(probs)
    index = {s: i for i, s in enumerate(subsets)}
    counts = np.bincount([index[tuple(np.flatnonzero(m))] for m in masks], minlength=len(subsets))
    expected = np.array([probs[s] for s in subsets]) * n_samples
    # Chi-square goodness of fit of the subset frequencies (fixed key): p-value > 1e-3.
    assert stats.chisquare(counts, expected).pvalue > 1e-3
    # Inclusion frequencies within 4 standard errors sqrt(p (1 - p) / N).
    incl = np.array([sum(p for s, p in probs.items() if i in s) for i in range(5)])
    se = np.sqrt(incl * (1 - incl) / n_samples)
    assert np.all(np.abs(masks.mean(0) - incl) < 4 * se + 1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_gumbel_topk_log_prob_is_exact(k):
    # Every k-subset at once (one compile per k) against the enumeration above.
    probs = _subset_probs(LOGITS, k)
    subsets = sorted(probs)
    d = jr.reparam.gumbel_topk(LOGITS, k)
    lp = np.asarray(d.log_prob(_masks(subsets, 5)), np.float64)
    np.testing.assert_allclose(np.exp(lp), [probs[s] for s in subsets], rtol=2e-5)
    if k == 1:
        np.testing.assert_allclose(lp, jax.nn.log_softmax(LOGITS), rtol=1e-5)


def test_gumbel_topk_log_prob_gradient_and_no_cancellation():
    # d/dlogits log P({0, 2}) against central differences of the float64 enumeration.
    def ref(logits):
        return np.log(_subset_probs(logits, 2)[(0, 2)])

    g = jax.grad(lambda lg: jr.reparam.gumbel_topk(lg, 2).log_prob(_masks([(0, 2)], 5)[0]))(LOGITS)
    x0, h = np.asarray(LOGITS, np.float64), 1e-6
    fd = [(ref(x0 + h * np.eye(5)[i]) - ref(x0 - h * np.eye(5)[i])) / (2 * h) for i in range(5)]
    np.testing.assert_allclose(g, fd, atol=1e-5)
    # An unlikely set: P ≈ e^-40 · e^-40 (a sum of positive terms, so float32 keeps it;
    # the alternating inclusion–exclusion form would lose it to cancellation).
    logits = jnp.array([-40.0, -40.0, 0.0, 0.0])
    lp = jr.reparam.gumbel_topk(logits, 2).log_prob(jnp.array([1.0, 1.0, 0.0, 0.0]))
    expected = np.log(_subset_probs(np.array([-40.0, -40.0, 0.0, 0.0]), 2)[(0, 1)])
    np.testing.assert_allclose(lp, expected, rtol=1e-5)


def test_gumbel_topk_log_prob_support_and_masks():
    inf = jnp.inf
    d = jr.reparam.gumbel_topk(jnp.array([0.3, -inf, 2.0, 0.1]), 2)
    xs = jnp.array(
        [
            [1.0, 0.0, 1.0, 0.0],  # valid
            [1.0, 1.0, 0.0, 0.0],  # selects a masked entry
            [1.0, 0.0, 0.0, 0.0],  # wrong size
            [1.0, 0.0, 1.0, 1.0],  # wrong size
            [0.5, 0.0, 1.0, 0.5],  # not 0/1
        ]
    )
    lp = np.asarray(d.log_prob(xs))
    probs = _subset_probs(np.array([0.3, 2.0, 0.1]), 2)
    np.testing.assert_allclose(np.exp(lp[0]), probs[(0, 1)], rtol=1e-5)
    np.testing.assert_array_equal(lp[1:], -np.inf)
    g = jax.grad(lambda lg: jr.reparam.gumbel_topk(lg, 2).log_prob(xs[0]))(
        jnp.array([0.3, -inf, 2.0, 0.1])
    )
    assert np.all(np.isfinite(g)) and g[1] == 0
    # Fewer than k finite entries: the sample selects all of them, with probability 1.
    d3 = jr.reparam.gumbel_topk(jnp.array([0.3, -inf, 2.0, -inf]), 3)
    np.testing.assert_array_equal(d3.sample(jax.random.key(0)), [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(
        d3.log_prob(jnp.array([[1.0, 0, 1, 0], [1.0, 1, 1, 0]])), [0, -inf], atol=1e-6
    )
    # k beyond the dynamic programme's size: a clear NotImplementedError.
    big = jr.reparam.gumbel_topk(jnp.zeros(14), 13)
    with pytest.raises(NotImplementedError, match="k! orderings"):
        big.log_prob(jnp.ones(14).at[0].set(0.0))


def test_gumbel_topk_masks_and_edge_cases():
    key = jax.random.key(0)
    logits = jnp.array([0.3, -jnp.inf, 2.0, -jnp.inf])
    m = jr.reparam.gumbel_topk(logits, 2).sample(key, 200)
    np.testing.assert_array_equal(m, np.broadcast_to([1.0, 0.0, 1.0, 0.0], (200, 4)))
    np.testing.assert_array_equal(jr.reparam.gumbel_topk(jnp.zeros(4), 4).sample(key), np.ones(4))
    big = jnp.array([1e30, -1e30, 0.0])
    np.testing.assert_array_equal(jr.reparam.gumbel_topk(big, 1).sample(key), [1.0, 0.0, 0.0])
    # transform is piecewise constant: only the explicit x factor has a gradient.
    eps = jr.reparam.gumbel_topk(LOGITS, 2).noise(key)
    g = jax.grad(lambda x: jnp.sum(jr.reparam.gumbel_topk(x, 2).transform(eps) * x))(LOGITS)
    np.testing.assert_array_equal(g, jr.reparam.gumbel_topk(LOGITS, 2).transform(eps))


# ---------------------------------------------------------------------------------
# relaxed_topk
# ---------------------------------------------------------------------------------
def test_relaxed_topk_sums_to_k_and_matches_hard_at_low_temperature():
    key = jax.random.key(1)
    x = jax.random.normal(jax.random.key(2), (6, 10)) * 2
    eps = jr.reparam.gumbel_topk(x, 3).noise(key)
    hard = jr.reparam.gumbel_topk(x, 3).transform(eps)

    def soft(x, t):
        return jr.reparam.relaxed_topk(x, 3, temperature=t).transform(eps)

    for t in (5.0, 1.0, 0.1):
        y = soft(x, t)
        np.testing.assert_allclose(y.sum(-1), 3.0, rtol=1e-5)
        assert np.all(np.asarray(y) >= 0)
    errs = [float(jnp.abs(soft(x, t) - hard).max()) for t in (1.0, 0.1, 1e-3)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-3
    tiny = soft(x * 1e30, 1e-6)
    np.testing.assert_array_equal(tiny, jr.reparam.gumbel_topk(x * 1e30, 3).transform(eps))


def test_relaxed_topk_k1_is_concrete_and_gumbel_softmax():
    key = jax.random.key(3)
    y = jr.reparam.relaxed_topk(LOGITS, 1, temperature=0.7).sample(key)
    np.testing.assert_allclose(y, jr.reparam.concrete(LOGITS, 0.7).sample(key), rtol=1e-6)
    np.testing.assert_allclose(y, jr.gumbel_softmax(key, LOGITS, temperature=0.7), rtol=1e-6)


def test_relaxed_topk_reference_loop():
    # Independent float64 NumPy transcription of Xie & Ermon's loop on the same noise.
    t = 0.8
    d = jr.reparam.relaxed_topk(LOGITS, 3, temperature=t)
    eps = d.noise(jax.random.key(4))
    y = np.asarray(d.transform(eps))
    alpha = np.asarray(LOGITS, np.float64) + np.asarray(eps, np.float64)
    total = np.zeros(5)
    for _ in range(3):
        p = np.exp(alpha / t - np.max(alpha / t))
        p /= p.sum()
        total += p
        alpha = alpha + np.log1p(-p)
    np.testing.assert_allclose(y, total, rtol=1e-4, atol=1e-6)


def test_relaxed_topk_gradients_hard_and_log_prob():
    key = jax.random.key(5)
    w = jax.random.normal(jax.random.key(6), (5,))

    def loss(x, hard, t=0.5):
        return jnp.sum(jr.reparam.relaxed_topk(x, 2, temperature=t, hard=hard).sample(key) * w)

    g_soft = jax.grad(loss)(LOGITS, False)
    g_hard = jax.grad(loss)(LOGITS, True)
    np.testing.assert_allclose(g_hard, g_soft, rtol=1e-6)  # straight-through
    assert np.any(np.asarray(g_soft) != 0)
    d_hard = jr.reparam.relaxed_topk(LOGITS, 2, temperature=0.5, hard=True)
    y_hard = d_hard.sample(key)
    np.testing.assert_array_equal(y_hard, jr.reparam.gumbel_topk(LOGITS, 2).sample(key))
    # Central finite differences of the relaxation (float32: 1e-2 step, 2e-2 tolerance).
    eps = 1e-2
    fd = [
        (loss(LOGITS.at[i].add(eps), False) - loss(LOGITS.at[i].add(-eps), False)) / (2 * eps)
        for i in range(5)
    ]
    np.testing.assert_allclose(g_soft, fd, atol=2e-2)
    # Tiny temperatures: finite gradients (saturated, so zero).
    assert np.all(np.isfinite(jax.grad(loss)(LOGITS, False, 1e-6)))
    # log_prob: exact for the hard sample (gumbel_topk's law), unavailable for the soft one.
    np.testing.assert_allclose(
        d_hard.log_prob(y_hard), jr.reparam.gumbel_topk(LOGITS, 2).log_prob(y_hard), rtol=1e-6
    )
    with pytest.raises(NotImplementedError, match="relaxed_topk has no closed-form log_prob"):
        jr.reparam.relaxed_topk(LOGITS, 2).log_prob(y_hard)


def test_relaxed_topk_masks():
    key = jax.random.key(7)
    x = jnp.array([0.3, -jnp.inf, 2.0, 0.1, -jnp.inf])
    y = jr.reparam.relaxed_topk(x, 2, temperature=0.5).sample(key)
    assert y[1] == 0 and y[4] == 0
    np.testing.assert_allclose(y.sum(), 2.0, rtol=1e-6)
    # Only 3 finite entries: the relaxation still sums to k, all on the finite entries;
    # the exact (hard) mask has 3 ones.
    y4 = jr.reparam.relaxed_topk(x, 4).sample(key)
    np.testing.assert_allclose(y4.sum(), 4.0, rtol=1e-6)
    assert y4[1] == 0 and y4[4] == 0
    y4_hard = jr.reparam.relaxed_topk(x, 4, hard=True).sample(key)
    np.testing.assert_array_equal(y4_hard, [1.0, 0.0, 1.0, 1.0, 0.0])

    def first(x, k, t):
        return jr.reparam.relaxed_topk(x, k, temperature=t).sample(key)[0]

    for k, t in ((2, 0.5), (4, 1.0), (3, 1e-6)):
        g = jax.grad(first)(x, k, t)
        assert np.all(np.isfinite(g)) and g[1] == 0 and g[4] == 0
    all_masked = jnp.full(3, -jnp.inf)
    np.testing.assert_array_equal(jr.reparam.relaxed_topk(all_masked, 2).sample(key), 0.0)
    np.testing.assert_array_equal(jr.reparam.gumbel_topk(all_masked, 2).sample(key), 0.0)


# ---------------------------------------------------------------------------------
# Both: jit, vmap, dtypes, bad input
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", ["gumbel_topk", "relaxed_topk"])
def test_jit_vmap_same_key(fn):
    f = getattr(jr.reparam, fn)
    key = jax.random.key(8)
    x = jax.random.normal(jax.random.key(9), (4, 7))
    y = f(x, 3).sample(key)
    np.testing.assert_allclose(jax.jit(lambda k, x: f(x, 3).sample(k))(key, x), y, rtol=1e-6)
    keys = jax.random.split(key, 4)
    yv = jax.vmap(lambda kk, r: f(r, 3).sample(kk))(keys, x)
    np.testing.assert_allclose(yv[2], f(x[2], 3).sample(keys[2]), rtol=1e-6)
    np.testing.assert_allclose(yv.sum(-1), 3.0, rtol=1e-5)
    assert f(x, 3).sample(jax.random.PRNGKey(0)).shape == x.shape


@pytest.mark.parametrize("fn", ["gumbel_topk", "relaxed_topk"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtypes(fn, dtype):
    d = getattr(jr.reparam, fn)(LOGITS.astype(dtype), 2)
    assert d.dtype == dtype and d.noise(jax.random.key(0)).dtype == dtype
    y = d.sample(jax.random.key(0))
    assert y.dtype == dtype
    np.testing.assert_allclose(np.asarray(y, np.float32).sum(), 2.0, rtol=1e-2)
    # A float32 temperature does not promote bfloat16 logits.
    if fn == "relaxed_topk":
        assert (
            jr.reparam.relaxed_topk(LOGITS.astype(dtype), 2, temperature=jnp.float32(0.5)).dtype
            == dtype
        )


@pytest.mark.parametrize("fn", ["gumbel_topk", "relaxed_topk"])
def test_bad_inputs(fn):
    f = getattr(jr.reparam, fn)
    with pytest.raises(ValueError, match="`k`"):
        f(LOGITS, 6)
    with pytest.raises(ValueError, match="`k`"):
        f(LOGITS, 0)
    with pytest.raises(TypeError, match="`k`"):
        f(LOGITS, 2.0)
    with pytest.raises(ValueError, match="`logits`"):
        f(jnp.array(1.0), 1)
    if fn == "relaxed_topk":
        with pytest.raises(ValueError, match="`temperature`"):
            f(LOGITS, 2, temperature=0.0)


@pytest.mark.parametrize("fn", ["gumbel_topk", "relaxed_topk"])
def test_empty_event_raises_and_empty_batch_is_empty(fn):
    f = getattr(jr.reparam, fn)
    # The event axis is checked before k, so the error names `logits`, not `k`.
    with pytest.raises(ValueError, match="`logits` must have a non-empty event axis"):
        f(jnp.zeros((2, 0)), 1)
    assert f(jnp.zeros((0, 3)), 2).sample(jax.random.key(0)).shape == (0, 3)


def test_relaxed_topk_temperature_shape_and_traced_invalid():
    key = jax.random.key(1)
    x = jnp.array([[0.1, 2.0, -1.0], [1.5, 0.3, 0.0]])
    with pytest.raises(ValueError, match=r"`temperature` with shape \(3, 1\).*`logits`"):
        jr.reparam.relaxed_topk(x, 2, temperature=jnp.ones((3, 1)))
    # A per-row temperature [2, 1]: row 1 equals the scalar temperature 2.
    y = jr.reparam.relaxed_topk(x, 2, temperature=jnp.array([[0.5], [2.0]])).sample(key)
    y2 = jr.reparam.relaxed_topk(x, 2, temperature=2.0).sample(key)
    np.testing.assert_allclose(y[1], y2[1], rtol=1e-6)

    # Traced temperature: NaN (values and gradients) when <= 0, also with hard=True.
    @jax.jit
    def run(t):
        def f(lg):
            return jr.reparam.relaxed_topk(lg, 2, temperature=t, hard=True).sample(key)

        return f(x), jax.grad(lambda lg: f(lg)[0, 0])(x)

    for out in run(-0.5):
        assert np.all(np.isnan(out))
    for out in run(0.5):
        assert np.all(np.isfinite(out))
