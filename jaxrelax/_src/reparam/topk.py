"""Random k-subsets by Gumbel-top-k: the exact sample (the ``k`` largest
Gumbel-perturbed logits, with the exact log-probability of the unordered set) and its
successive-softmax relaxation (Xie & Ermon 2019)."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics, _random
from jaxrelax._src.reparam.base import (
    Family,
    Params,
    Reparam,
    check_logits,
    float_params,
    logits_shapes,
    support_where,
)

__all__ = ["gumbel_topk", "relaxed_topk"]

_LOG_HALF = -0.6931471805599453

# log_prob of an unordered k-subset sums over its k! orderings with an O(2^k k) dynamic
# programme; past this size it raises NotImplementedError instead of allocating 2^k terms.
MAX_LOG_PROB_K = 12


# ---------------------------------------------------------------------------------
# Shared pieces: the perturbed keys, the exact k-hot mask
# ---------------------------------------------------------------------------------
def _perturbed(p: Params, g: jax.Array) -> jax.Array:
    logits = p["logits"]
    return logits + g.astype(logits.dtype)


@functools.partial(jax.jit, static_argnums=1)
def _k_hot(scores: jax.Array, k: int) -> jax.Array:
    """Exact k-hot mask of the ``k`` largest entries of the last axis (``-inf`` never set)."""
    idx = _numerics.top_k_indices(scores, k)
    mask = jnp.put_along_axis(jnp.zeros(scores.shape, bool), idx, True, axis=-1, inplace=False)
    return (mask & (scores > -jnp.inf)).astype(scores.dtype)


def _check_logits_and_k(logits: ArrayLike, k: int) -> tuple[jax.Array, int]:
    # The event axis is checked before k, so an empty one names `logits`, not `k`.
    arr = check_logits(logits)
    return arr, _checks.check_int(k, "k", maximum=arr.shape[-1])


# ---------------------------------------------------------------------------------
# Exact log-probability of an unordered k-subset of the Plackett–Luce model
# ---------------------------------------------------------------------------------
@functools.cache
def _subset_tables(k: int):
    """Static tables of the subset DP over the ``2^k`` subsets (bit masks) of k slots.

    Returns ``not_in`` ([2^k, k] bool: slot j is not in mask A) and, for each size
    L = 1..k, ``(masks [C], preds [C, L], bits [C, L])``: the masks of size L, each with
    its L predecessors ``mask ^ (1 << bit)``.
    """
    size = 1 << k
    not_in = np.array([[not (a >> j) & 1 for j in range(k)] for a in range(size)], bool)
    levels = []
    for L in range(1, k + 1):
        masks, preds, bits = [], [], []
        for combo in itertools.combinations(range(k), L):
            m = sum(1 << j for j in combo)
            masks.append(m)
            preds.append([m ^ (1 << j) for j in combo])
            bits.append(list(combo))
        levels.append((np.array(masks), np.array(preds), np.array(bits)))
    return not_in, levels


def _subset_log_prob(p: Params, x: jax.Array, k: int) -> jax.Array:
    r"""``log P(S)`` for the k-hot mask ``x`` of the Gumbel-top-k (Plackett–Luce) model.

    ``P(S)`` sums the Plackett–Luce probabilities of the ``|S|!`` orderings of ``S``:

    $$
    P(S) = \sum_{\sigma} \prod_{j} \frac{w_{\sigma_j}}
    {Z - \sum_{l < j} w_{\sigma_l}}, \qquad w = \exp(\mathrm{logits}),
    $$

    whose denominators depend only on the *set* already drawn, so
    ``f(T) = Σ_{i ∈ T} f(T \ i) w_i / (Z − w(T \ i))`` over the ``2^k`` subsets ``T`` of
    ``S`` (Kool et al. 2020, sec. 2) gives it exactly with positive terms only: no
    cancellation, unlike the alternating inclusion–exclusion form. ``Z − w(A)`` is
    summed from the remaining weights, never subtracted; all in log space.
    """
    logits = p["logits"]
    shape = jnp.broadcast_shapes(x.shape, logits.shape)
    x = jnp.broadcast_to(x, shape)
    phi = jnp.broadcast_to(logits, shape)
    # Only -inf is a mask (-inf log_prob means only "outside the support"). A NaN logit
    # (also a traced invalid temperature, which poisons the logits) makes its row's
    # log_prob and gradient NaN: the row is multiplied by NaN on the way in and out, as
    # the masks below would otherwise turn NaN into -inf and its cotangent into 0.
    factor = _numerics.nan_rows(phi)
    phi = phi * factor
    masked = jnp.isneginf(phi)
    sel = x > 0.5
    m = jnp.sum(sel, axis=-1)
    n_finite = jnp.sum(~masked, axis=-1)
    inside = (
        jnp.all((x == 0) | (x == 1), axis=-1)
        & (m == jnp.minimum(k, n_finite))
        & ~jnp.any(sel & masked, axis=-1)
    )
    a = phi - _numerics.finite_max(phi, -1)  # exact shift: P(S) is shift-invariant
    # Slots: the selected entries first (top_k of a 0/1 mask), then padding.
    idx = _numerics.top_k_indices(sel, k)
    a_sel = jnp.take_along_axis(a, idx, axis=-1)  # [..., k]
    active = (jnp.arange(k) < m[..., None]) & jnp.isfinite(a_sel)
    a_safe = jnp.where(active, a_sel, 0.0)
    a_act = jnp.where(active, a_sel, -jnp.inf)
    log_out = _numerics.safe_logsumexp(
        jnp.where(sel | masked, -jnp.inf, a), axis=-1, empty=-jnp.inf
    )  # [..., 1]: mass outside S

    not_in, levels = _subset_tables(k)
    # log(Z − w(A)) for every subset A of the slots: the outside mass plus the slots not in A.
    rem_terms = jnp.where(not_in, a_act[..., None, :], -jnp.inf)  # [..., 2^k, k]
    rem_terms = jnp.concatenate(
        [rem_terms, jnp.broadcast_to(log_out[..., None, :], (*rem_terms.shape[:-1], 1))], -1
    )
    rem = _numerics.safe_logsumexp(rem_terms, axis=-1, empty=-jnp.inf)[..., 0]  # [..., 2^k]
    rem_safe = jnp.where(jnp.isfinite(rem), rem, 0.0)

    log_f = jnp.full((*a.shape[:-1], 1 << k), -jnp.inf, a.dtype).at[..., 0].set(0.0)
    for masks, preds, bits in levels:
        terms = log_f[..., preds] + a_safe[..., bits] - rem_safe[..., preds]
        terms = jnp.where(active[..., bits], terms, -jnp.inf)
        log_f = log_f.at[..., masks].set(
            _numerics.safe_logsumexp(terms, axis=-1, empty=-jnp.inf)[..., 0]
        )
    full = (2 ** jnp.minimum(m, k) - 1).astype(jnp.int32)  # the mask of the first m slots
    lp = jnp.take_along_axis(log_f, full[..., None], axis=-1)[..., 0]
    return support_where(inside, lp) * factor[..., 0]


def _subset_log_prob_rule(k: int):
    if k > MAX_LOG_PROB_K:

        def unavailable(p: Params, x: jax.Array) -> jax.Array:
            raise NotImplementedError(
                f"gumbel_topk log_prob with k={k}: the probability of an unordered k-subset "
                f"sums over its k! orderings; the exact O(2^k k) dynamic programme used "
                f"here is limited to k <= {MAX_LOG_PROB_K}."
            )

        return unavailable
    return functools.partial(_subset_log_prob, k=k)


# ---------------------------------------------------------------------------------
# Gumbel-top-k: exact k-subsets
# ---------------------------------------------------------------------------------
@functools.cache
def _gumbel_topk_family(k: int) -> Family:
    # One Family object per k (families are static and hashed by identity, so the
    # jitted noise / transform / log_prob compile once per k and shape).
    return Family(
        name="gumbel_topk",
        param_names=("logits",),
        event_ndim=1,
        shapes=logits_shapes,
        noise=_random.gumbel,
        transform=lambda p, g: _k_hot(_perturbed(p, g), k),
        log_prob=_subset_log_prob_rule(k),
        noise_doc="g ~ Gumbel(0, 1) i.i.d., [..., n]",
    )


def gumbel_topk(logits: ArrayLike, k: int) -> Reparam:
    r"""Exact k-subset without replacement (Gumbel-top-k), as a k-hot mask.

    $$
    g_i \sim \mathrm{Gumbel}(0, 1), \qquad
    x = \mathrm{k\_hot}\bigl(\mathrm{top}_k(\mathrm{logits} + g)\bigr)
    $$

    The indices of the ``k`` largest perturbed logits are an exact sample of ``k``
    draws without replacement from ``Categorical(softmax(logits))`` (the first ``k``
    draws of a Plackett–Luce permutation); the sample is their *unordered* set, as a
    k-hot mask. Its top-1 entry (the arg max) is a ``gumbel_max`` sample.

    ``log_prob(x)`` is exact: the probability of the set sums the Plackett–Luce
    probabilities of its ``k!`` orderings, computed with an ``O(2^k k)`` dynamic
    programme of positive terms (no cancellation), for ``k <= 12``; larger ``k`` raise
    ``NotImplementedError``. It is differentiable in ``logits`` (use it for
    score-function estimators, e.g. ``jr.estimators.reinforce``).

    ``-inf`` logits are masks and are never selected; if fewer than ``k`` entries are
    finite, the mask selects all of them (with probability 1).

    Args:
      logits: [..., n] unnormalised log-probabilities (the event axis is last); any
        float dtype (kept).
      k: subset size, a static int with ``1 ≤ k ≤ n``.

    Returns:
      A `Reparam` with ``event_ndim = 1``: Gumbel noise of ``logits``' shape, and
      samples that are [..., n] k-hot masks in ``logits``' dtype.

    Examples:
      >>> d = jr.reparam.gumbel_topk(jnp.array([0.1, 2.0, -1.0, 1.5]), 2)
      >>> m = d.sample(jax.random.key(0))
      >>> float(m.sum()), sorted(set(m.tolist()))
      (2.0, [0.0, 1.0])
      >>> d = jr.reparam.gumbel_topk(jnp.log(jnp.array([0.5, 0.3, 0.2])), 2)
      >>> # P({0, 1}) = 0.5 · 0.3 / 0.5 + 0.3 · 0.5 / 0.7
      >>> round(float(jnp.exp(d.log_prob(jnp.array([1.0, 1.0, 0.0])))), 4)
      0.5143

    Note:
      ``transform`` is **not differentiable** (piecewise constant, zero
      gradient); see `relaxed_topk`.

    References:
      Kool, van Hoof & Welling, [Stochastic Beams and Where to Find Them: The
      Gumbel-Top-k Trick for Sampling Sequences Without
      Replacement](https://arxiv.org/abs/1903.06059), 2019. Kool, van Hoof & Welling, [Estimating
      Gradients for Discrete Random Variables by Sampling without
      Replacement](https://arxiv.org/abs/2002.06043), 2020.
    """
    arr, k = _check_logits_and_k(logits, k)
    params, _ = float_params(arr.dtype, logits=arr)
    return Reparam(_gumbel_topk_family(k), params)


# ---------------------------------------------------------------------------------
# Relaxed top-k (Xie & Ermon 2019)
# ---------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnums=2)
def _successive_softmax(scores: jax.Array, temperature: ArrayLike, k: int) -> jax.Array:
    """Σ of ``k`` rounds of softmax(α / T), each followed by ``α ← α + log(1 − p)``.

    Works in ``s = α / T`` (shifted by its maximum every round, which changes nothing),
    so the update is ``s ← s + log(1 − p) / T``. ``log(1 − p)`` is computed as
    ``log1p(−p)`` where ``p ≤ 1/2`` and exactly, as ``logsumexp_{j≠i} s_j − logsumexp s``,
    for the arg max entry (the only one that can have ``p`` near 1), so a selected
    entry becomes an exact ``-inf`` mask when ``p`` rounds to 1.
    """
    t = jnp.asarray(temperature, scores.dtype)

    def body(_, carry):
        s, khot = carry
        s = s - _numerics.finite_max(s, -1)
        lse = _numerics.safe_logsumexp(s, axis=-1)
        log_p = s - lse
        p = jnp.exp(log_p)
        is_max = jax.nn.one_hot(jnp.argmax(s, axis=-1), s.shape[-1], dtype=bool)
        lse_others = _numerics.safe_logsumexp(
            jnp.where(is_max, -jnp.inf, s), axis=-1, empty=-jnp.inf
        )
        log1m_max = lse_others - lse
        log1m_rest = jnp.log1p(-jnp.exp(jnp.minimum(log_p, _LOG_HALF)))
        s = s + jnp.where(is_max, log1m_max, log1m_rest) / t
        return s, khot + p

    s0 = _numerics.scale_and_shift(scores, t, -1)
    _, khot = jax.lax.fori_loop(0, k, body, (s0, jnp.zeros_like(scores)))
    return khot


def _relaxed_topk_transform(p: Params, g: jax.Array, k: int, hard: bool) -> jax.Array:
    scores = _perturbed(p, g)
    y = _successive_softmax(scores, p["temperature"], k)
    if hard:
        y = _numerics.straight_through(_k_hot(scores, k), y)
    return y


def _no_relaxed_topk_log_prob(p: Params, x: jax.Array) -> jax.Array:
    raise NotImplementedError(
        "relaxed_topk has no closed-form log_prob: the successive-softmax map sends the "
        "n Gumbel keys onto the (n-1)-dimensional set {y : Σ y = k} and is not invertible "
        "in closed form, so its density has no tractable expression (Xie & Ermon 2019). "
        "With hard=True the sample is an exact Gumbel-top-k mask and log_prob is exact."
    )


@functools.cache
def _relaxed_topk_family(k: int, hard: bool) -> Family:
    return Family(
        name="relaxed_topk",
        param_names=("logits", "temperature"),
        event_ndim=1,
        shapes=logits_shapes,
        noise=_random.gumbel,
        transform=functools.partial(_relaxed_topk_transform, k=k, hard=hard),
        # hard=True: the forward value is exactly gumbel_topk's sample, with its law.
        log_prob=_subset_log_prob_rule(k) if hard else _no_relaxed_topk_log_prob,
        noise_doc="g ~ Gumbel(0, 1) i.i.d., [..., n]",
    )


def relaxed_topk(
    logits: ArrayLike, k: int, *, temperature: ArrayLike = 1.0, hard: bool = False
) -> Reparam:
    r"""Relaxed k-subset: ``k`` rounds of softmax with a soft mask (Xie & Ermon 2019).

    With Gumbel-perturbed keys ``α¹ = logits + g``, ``g_i ~ Gumbel(0, 1)``, for
    ``j = 1..k``:

    $$
    p^j = \mathrm{softmax}(\alpha^j / T), \qquad
    \alpha^{j+1} = \alpha^j + \log(1 - p^j),
    $$

    and the sample is ``Σ_j p^j`` (non-negative entries summing to ``k``; at high
    temperatures an entry can exceed 1, as in the paper's algorithm). As T → 0 it tends
    to the exact Gumbel-top-k mask of the same noise (`gumbel_topk`). With
    ``hard=True`` the forward value is that exact k-hot mask and the backward pass is
    the gradient of the relaxation (straight-through). ``k = 1`` is the Concrete
    (Gumbel-softmax) sample.

    ``-inf`` logits are masks (never selected, zero gradient). If fewer than ``k``
    entries are finite, the relaxation still sums to ``k`` (all on the finite entries),
    while the exact mask (``hard=True``) has one 1 per finite entry.

    ``log_prob`` raises ``NotImplementedError`` for the relaxed sample (its density has
    no closed form); with ``hard=True`` it is `gumbel_topk`'s exact log-probability.

    Args:
      logits: [..., n] unnormalised log-probabilities (the event axis is last); any
        float dtype (kept).
      k: subset size, a static int with ``1 ≤ k ≤ n``.
      temperature: T > 0; a scalar, one per row (``[..., 1]``) or one per entry: it
        broadcasts to ``logits``' shape without enlarging it (unlike ``concrete``, whose
        temperature is one per distribution). Concrete values ``<= 0`` raise; a traced
        invalid value makes the parameters, so every sample and gradient, NaN.
      hard: exact k-hot forward value with the relaxed gradient.

    Returns:
      A `Reparam` with ``event_ndim = 1``: Gumbel noise of ``logits``' shape, and
      [..., n] samples in ``logits``' dtype.

    Examples:
      >>> logits = jnp.array([0.1, 2.0, -1.0, 1.5])
      >>> d = jr.reparam.relaxed_topk(logits, 2, temperature=0.5)
      >>> eps = d.noise(jax.random.key(0))
      >>> round(float(d.transform(eps).sum()), 4)
      2.0
      >>> hard = jr.reparam.relaxed_topk(logits, 2, temperature=0.5, hard=True)
      >>> bool((hard.transform(eps) == jr.reparam.gumbel_topk(logits, 2).transform(eps)).all())
      True

    References:
      Xie & Ermon, [Reparameterizable Subset Sampling via Continuous
      Relaxations](https://arxiv.org/abs/1901.10517), 2019.

    Note:
      Biased as a gradient estimator of ``E[f(k-hot)]``, like Gumbel-softmax.
    """
    _checks.check_temperature(temperature)
    arr, k = _check_logits_and_k(logits, k)
    _checks.check_broadcasts_to(temperature, arr.shape, "temperature", "logits")
    params, _ = float_params(arr.dtype, logits=arr, temperature=temperature)
    d = Reparam(_relaxed_topk_family(k, bool(hard)), params)
    return _checks.poison(d, _checks.traced_valid(temperature))
