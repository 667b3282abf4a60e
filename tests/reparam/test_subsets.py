"""Tests for jr.reparam.gumbel_topk and jr.reparam.relaxed_topk."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxrelax as jr

LOGITS = jnp.array([0.5, -1.0, 1.2, 0.0, -0.3])


def _subset_probs(logits, k):
    """Exact Plackett–Luce probabilities of every unordered k-subset, by enumeration."""
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


@pytest.mark.parametrize("k", [1, 2, 3])
def test_gumbel_topk_matches_plackett_luce(k):
    n_samples = 20_000
    masks = jr.reparam.gumbel_topk(jax.random.key(k), jnp.broadcast_to(LOGITS, (n_samples, 5)), k)
    masks = np.asarray(masks)
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


def test_gumbel_topk_masks_and_edge_cases():
    key = jax.random.key(0)
    logits = jnp.array([0.3, -jnp.inf, 2.0, -jnp.inf])
    m = jax.vmap(lambda k: jr.reparam.gumbel_topk(k, logits, 2))(jax.random.split(key, 200))
    np.testing.assert_array_equal(m, np.broadcast_to([1.0, 0.0, 1.0, 0.0], (200, 4)))
    # Fewer than k finite entries: only those are selected.
    np.testing.assert_array_equal(jr.reparam.gumbel_topk(key, logits, 3), [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(jr.reparam.gumbel_topk(key, jnp.zeros(4), 4), np.ones(4))
    big = jnp.array([1e30, -1e30, 0.0])
    np.testing.assert_array_equal(jr.reparam.gumbel_topk(key, big, 1), [1.0, 0.0, 0.0])
    g = jax.grad(lambda x: jnp.sum(jr.reparam.gumbel_topk(key, x, 2) * x))(LOGITS)
    np.testing.assert_array_equal(g, jr.reparam.gumbel_topk(key, LOGITS, 2))  # only the x factor


def test_relaxed_topk_sums_to_k_and_matches_hard_at_low_temperature():
    key = jax.random.key(1)
    x = jax.random.normal(jax.random.key(2), (6, 10)) * 2
    hard = jr.reparam.gumbel_topk(key, x, 3)
    for t in (5.0, 1.0, 0.1):
        y = jr.reparam.relaxed_topk(key, x, 3, temperature=t)
        np.testing.assert_allclose(y.sum(-1), 3.0, rtol=1e-5)
        assert np.all(np.asarray(y) >= 0)
    errs = [
        float(jnp.abs(jr.reparam.relaxed_topk(key, x, 3, temperature=t) - hard).max())
        for t in (1.0, 0.1, 1e-3)
    ]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 1e-3
    tiny = jr.reparam.relaxed_topk(key, x * 1e30, 3, temperature=1e-6)
    np.testing.assert_array_equal(tiny, jr.reparam.gumbel_topk(key, x * 1e30, 3))


def test_relaxed_topk_k1_is_gumbel_softmax():
    key = jax.random.key(3)
    y = jr.reparam.relaxed_topk(key, LOGITS, 1, temperature=0.7)
    np.testing.assert_allclose(y, jr.gumbel_softmax(key, LOGITS, temperature=0.7), rtol=1e-6)


def test_relaxed_topk_reference_loop():
    # Independent float64 NumPy transcription of Xie & Ermon's loop.
    key, t = jax.random.key(4), 0.8
    y = np.asarray(jr.reparam.relaxed_topk(key, LOGITS, 3, temperature=t))
    # The k = 1 output is softmax((logits + g) / T), so T · log of it recovers the perturbed
    # keys up to a constant shift, to which the loop is invariant.
    p1 = np.asarray(jr.reparam.relaxed_topk(key, LOGITS, 1, temperature=t), np.float64)
    alpha = t * np.log(p1)
    total = np.zeros(5)
    for _ in range(3):
        p = np.exp(alpha / t - np.max(alpha / t))
        p /= p.sum()
        total += p
        alpha = alpha + np.log1p(-p)
    np.testing.assert_allclose(y, total, rtol=1e-4, atol=1e-6)


def test_relaxed_topk_gradients_and_hard():
    key = jax.random.key(5)
    w = jax.random.normal(jax.random.key(6), (5,))

    def loss(x, hard, t=0.5):
        return jnp.sum(jr.reparam.relaxed_topk(key, x, 2, temperature=t, hard=hard) * w)

    g_soft = jax.grad(loss)(LOGITS, False)
    g_hard = jax.grad(loss)(LOGITS, True)
    np.testing.assert_allclose(g_hard, g_soft, rtol=1e-6)  # straight-through
    assert np.any(np.asarray(g_soft) != 0)
    y_hard = jr.reparam.relaxed_topk(key, LOGITS, 2, temperature=0.5, hard=True)
    np.testing.assert_array_equal(y_hard, jr.reparam.gumbel_topk(key, LOGITS, 2))
    # Central finite differences of the relaxation (float32: 1e-2 step, 2e-2 tolerance).
    eps = 1e-2
    fd = [
        (loss(LOGITS.at[i].add(eps), False) - loss(LOGITS.at[i].add(-eps), False)) / (2 * eps)
        for i in range(5)
    ]
    np.testing.assert_allclose(g_soft, fd, atol=2e-2)
    # Tiny temperatures: finite gradients (saturated, so zero).
    assert np.all(np.isfinite(jax.grad(loss)(LOGITS, False, 1e-6)))


def test_relaxed_topk_masks():
    key = jax.random.key(7)
    x = jnp.array([0.3, -jnp.inf, 2.0, 0.1, -jnp.inf])
    y = jr.reparam.relaxed_topk(key, x, 2, temperature=0.5)
    assert y[1] == 0 and y[4] == 0
    np.testing.assert_allclose(y.sum(), 2.0, rtol=1e-6)
    # Only 3 finite entries: the relaxation still sums to k, all on the finite entries;
    # the exact (hard) mask has 3 ones.
    y4 = jr.reparam.relaxed_topk(key, x, 4)
    np.testing.assert_allclose(y4.sum(), 4.0, rtol=1e-6)
    assert y4[1] == 0 and y4[4] == 0
    y4_hard = jr.reparam.relaxed_topk(key, x, 4, hard=True)
    np.testing.assert_array_equal(y4_hard, [1.0, 0.0, 1.0, 1.0, 0.0])

    def first(x, k, t):
        return jr.reparam.relaxed_topk(key, x, k, temperature=t)[0]

    for k, t in ((2, 0.5), (4, 1.0), (3, 1e-6)):
        g = jax.grad(first)(x, k, t)
        assert np.all(np.isfinite(g)) and g[1] == 0 and g[4] == 0
    all_masked = jnp.full(3, -jnp.inf)
    np.testing.assert_array_equal(jr.reparam.relaxed_topk(key, all_masked, 2), 0.0)
    np.testing.assert_array_equal(jr.reparam.gumbel_topk(key, all_masked, 2), 0.0)


@pytest.mark.parametrize("fn", ["gumbel_topk", "relaxed_topk"])
def test_jit_vmap_axis_same_key(fn):
    f = getattr(jr.reparam, fn)
    key = jax.random.key(8)
    x = jax.random.normal(jax.random.key(9), (4, 7))
    y = f(key, x, 3)
    np.testing.assert_allclose(jax.jit(f, static_argnums=2)(key, x, 3), y, rtol=1e-6)
    keys = jax.random.split(key, 4)
    yv = jax.vmap(lambda kk, r: f(kk, r, 3))(keys, x)
    np.testing.assert_allclose(yv[2], f(keys[2], x[2], 3), rtol=1e-6)
    np.testing.assert_allclose(yv.sum(-1), 3.0, rtol=1e-5)
    y0 = f(key, x.T, 3, axis=0)
    np.testing.assert_allclose(y0, y.T, rtol=1e-6)  # same noise layout along the event axis
    assert f(jax.random.PRNGKey(0), x, 3).shape == x.shape


@pytest.mark.parametrize("fn", ["gumbel_topk", "relaxed_topk"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtypes(fn, dtype):
    y = getattr(jr.reparam, fn)(jax.random.key(0), LOGITS.astype(dtype), 2)
    assert y.dtype == dtype
    np.testing.assert_allclose(np.asarray(y, np.float32).sum(), 2.0, rtol=1e-2)


@pytest.mark.parametrize("fn", ["gumbel_topk", "relaxed_topk"])
def test_bad_inputs(fn):
    f = getattr(jr.reparam, fn)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="`k`"):
        f(key, LOGITS, 6)
    with pytest.raises(ValueError, match="`k`"):
        f(key, LOGITS, 0)
    with pytest.raises(TypeError, match="`k`"):
        f(key, LOGITS, 2.0)
    with pytest.raises(ValueError, match="`logits`"):
        f(key, jnp.array(1.0), 1)
    with pytest.raises(ValueError, match="`axis`"):
        f(key, LOGITS, 1, axis=1)
    with pytest.raises(TypeError, match="`key`"):
        f(0, LOGITS, 1)
    if fn == "relaxed_topk":
        with pytest.raises(ValueError, match="`temperature`"):
            f(key, LOGITS, 2, temperature=0.0)


@pytest.mark.parametrize("fn", ["gumbel_topk", "relaxed_topk"])
def test_empty_event_raises_and_empty_batch_is_empty(fn):
    f = getattr(jr.reparam, fn)
    key = jax.random.key(0)
    # The event axis is checked before k, so the error names `logits`, not `k`.
    with pytest.raises(ValueError, match="`logits` must have a non-empty event axis"):
        f(key, jnp.zeros((2, 0)), 1)
    with pytest.raises(ValueError, match="`logits` must have a non-empty event axis"):
        f(key, jnp.zeros((0, 3)), 1, axis=0)
    assert f(key, jnp.zeros((0, 3)), 2).shape == (0, 3)


def test_relaxed_topk_temperature_shape_and_traced_invalid():
    key = jax.random.key(1)
    x = jnp.array([[0.1, 2.0, -1.0], [1.5, 0.3, 0.0]])
    with pytest.raises(ValueError, match=r"`temperature` with shape \(3, 1\).*`logits`"):
        jr.reparam.relaxed_topk(key, x, 2, temperature=jnp.ones((3, 1)))
    # A per-row temperature [2, 1] follows the event axis when it is not the last one:
    # the result along axis 0 of x.T equals the result along axis -1 of x.
    t = jnp.array([[0.5], [2.0]])
    y = jr.reparam.relaxed_topk(key, x, 2, temperature=t)
    np.testing.assert_allclose(
        jr.reparam.relaxed_topk(key, x.T, 2, temperature=t.T, axis=0), y.T, rtol=1e-6
    )
    np.testing.assert_allclose(
        y[1], jr.reparam.relaxed_topk(key, x, 2, temperature=2.0)[1], rtol=1e-6
    )

    # Traced temperature: NaN (values and gradients) when <= 0, also with hard=True.
    @jax.jit
    def run(t):
        def f(lg):
            return jr.reparam.relaxed_topk(key, lg, 2, temperature=t, hard=True)

        return f(x), jax.grad(lambda lg: f(lg)[0, 0])(x)

    for out in run(-0.5):
        assert np.all(np.isnan(out))
    for out in run(0.5):
        assert np.all(np.isfinite(out))
