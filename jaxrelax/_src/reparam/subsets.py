"""Random k-subsets: exact Gumbel-top-k samples and their successive-softmax relaxation."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _random
from jaxrelax._src.soft.permutation import _safe_logsumexp
from jaxrelax._src.st.basic import straight_through

__all__ = ["gumbel_topk", "relaxed_topk"]

_LOG_HALF = -0.6931471805599453


def _prepare(key, logits, k, axis):
    key = _checks.check_key(key)
    arr = _checks.as_float_array(logits, "logits")
    axis = _checks.check_axis(axis, arr.ndim, arg="logits")
    _checks.check_event_nonempty(arr.shape, axis, "logits")
    k = _checks.check_int(k, "k", maximum=arr.shape[axis])
    cdt = _checks.compute_dtype(arr.dtype)
    x = jnp.moveaxis(arr.astype(cdt), axis, -1)
    perturbed = x + _random.gumbel(key, x.shape, cdt)
    return arr, axis, k, perturbed


@functools.partial(jax.jit, static_argnums=1)
def _k_hot(scores: jax.Array, k: int) -> jax.Array:
    """Exact k-hot mask of the ``k`` largest entries of the last axis (``-inf`` never set)."""
    _, idx = jax.lax.top_k(jax.lax.stop_gradient(scores), k)
    mask = jnp.put_along_axis(jnp.zeros(scores.shape, bool), idx, True, axis=-1, inplace=False)
    return (mask & (scores > -jnp.inf)).astype(scores.dtype)


def gumbel_topk(key: ArrayLike, logits: ArrayLike, k: int, *, axis: int = -1) -> jax.Array:
    r"""Exact k-subset sample without replacement (Gumbel-top-k), as a k-hot mask.

    Forward: the indices of the ``k`` largest ``logits_i + g_i`` with ``g_i ~ Gumbel(0, 1)``
    i.i.d. This is an exact sample of ``k`` draws without replacement from
    ``Categorical(softmax(logits))`` (the Plackett–Luce model), returned as an unordered
    k-hot mask. Not differentiable (zero gradient); see :func:`relaxed_topk`.

    ``-inf`` logits are masks and are never selected; if fewer than ``k`` entries are
    finite, the mask has fewer than ``k`` ones.

    Args:
      key: a ``jax.random.key`` or legacy ``jax.random.PRNGKey``.
      logits: [..., n] unnormalised log-probabilities; any float dtype (kept).
      k: subset size, a static int with ``1 ≤ k ≤ n``.
      axis: the event axis.
    Returns:
      [..., n] k-hot mask (exactly ``k`` ones per row), same dtype as ``logits``.
    Examples:
      >>> m = jr.reparam.gumbel_topk(jax.random.key(0), jnp.array([0.1, 2.0, -1.0, 1.5]), 2)
      >>> float(m.sum()), sorted(set(m.tolist()))
      (2.0, [0.0, 1.0])

    References:
      Kool, van Hoof & Welling, `Stochastic Beams and Where to Find Them: The
      Gumbel-Top-k Trick for Sampling Sequences Without Replacement
      <https://arxiv.org/abs/1903.06059>`_, 2019.
    """
    arr, axis, k, perturbed = _prepare(key, logits, k, axis)
    return jnp.moveaxis(_k_hot(perturbed, k), -1, axis).astype(arr.dtype)


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

    def shift(s):
        m = jnp.max(s, axis=-1, keepdims=True)
        return s - jax.lax.stop_gradient(jnp.where(jnp.isfinite(m), m, 0.0))

    def body(_, carry):
        s, khot = carry
        s = shift(s)
        lse = _safe_logsumexp(s, axis=-1)
        log_p = s - lse
        p = jnp.exp(log_p)
        is_max = jax.nn.one_hot(jnp.argmax(s, axis=-1), s.shape[-1], dtype=bool)
        lse_others = _safe_logsumexp(jnp.where(is_max, -jnp.inf, s), axis=-1, empty=-jnp.inf)
        log1m_max = lse_others - lse
        log1m_rest = jnp.log1p(-jnp.exp(jnp.minimum(log_p, _LOG_HALF)))
        s = s + jnp.where(is_max, log1m_max, log1m_rest) / t
        return s, khot + p

    s0 = shift(scores) / t
    _, khot = jax.lax.fori_loop(0, k, body, (s0, jnp.zeros_like(scores)))
    return khot


def relaxed_topk(
    key: ArrayLike,
    logits: ArrayLike,
    k: int,
    *,
    temperature: ArrayLike = 1.0,
    hard: bool = False,
    axis: int = -1,
) -> jax.Array:
    r"""Relaxed k-subset sample: ``k`` rounds of softmax with a soft mask (Xie & Ermon 2019).

    With Gumbel-perturbed keys ``α¹ = logits + g``, for ``j = 1..k``:

    .. math:: p^j = \mathrm{softmax}(\alpha^j / T), \qquad
              \alpha^{j+1} = \alpha^j + \log(1 - p^j),

    and the relaxed k-hot vector is ``Σ_j p^j`` (non-negative entries summing to ``k``;
    at high temperatures an entry can exceed 1, as in the paper's algorithm). As
    T → 0 it tends to the exact Gumbel-top-k mask of the same keys (:func:`gumbel_topk`
    with the same ``key``). With ``hard=True`` the forward value is that exact k-hot
    mask and the backward pass is the gradient of the relaxation (straight-through).

    ``-inf`` logits are masks (never selected, zero gradient). If fewer than ``k``
    entries are finite, the relaxation still sums to ``k`` (all on the finite entries),
    while the exact mask (``hard=True``) has one 1 per finite entry.

    Args:
      key: a ``jax.random.key`` or legacy ``jax.random.PRNGKey``.
      logits: [..., n] unnormalised log-probabilities; any float dtype (kept).
      k: subset size, a static int with ``1 ≤ k ≤ n``.
      temperature: T > 0; a scalar or an array that broadcasts to ``logits``' shape.
        Concrete values ``<= 0`` raise; a traced invalid value makes the output NaN.
      hard: return the exact k-hot sample with the relaxed gradient.
      axis: the event axis.
    Returns:
      [..., n] relaxed (or exact, if ``hard``) k-hot vector, same dtype as ``logits``.
    Examples:
      >>> key, logits = jax.random.key(0), jnp.array([0.1, 2.0, -1.0, 1.5])
      >>> y = jr.reparam.relaxed_topk(key, logits, 2, temperature=0.5)
      >>> round(float(y.sum()), 4)
      2.0
      >>> bool((jr.reparam.relaxed_topk(key, logits, 2, hard=True)
      ...       == jr.reparam.gumbel_topk(key, logits, 2)).all())
      True

    References:
      Xie & Ermon, `Reparameterizable Subset Sampling via Continuous Relaxations
      <https://arxiv.org/abs/1901.10517>`_, 2019.

    .. note:: Biased as a gradient estimator of ``E[f(k-hot)]``, like Gumbel-softmax
      (which is the ``k = 1`` case).
    """
    _checks.check_temperature(temperature)
    arr, axis, k, perturbed = _prepare(key, logits, k, axis)
    _checks.check_broadcasts_to(temperature, arr.shape, "temperature", "logits")
    t = temperature
    if jnp.ndim(t) > 0:  # elementwise temperatures follow the event axis to the end
        t = jnp.moveaxis(jnp.broadcast_to(jnp.asarray(t), arr.shape), axis, -1)
    y = _successive_softmax(perturbed, t, k)
    if hard:
        y = straight_through(_k_hot(perturbed, k), y)
    out = jnp.moveaxis(y, -1, axis).astype(arr.dtype)
    return _checks.poison(out, _checks.traced_valid(temperature))
