"""Sparse relaxations of arg max: sparsemax and 1.5-entmax (exact, sort-based).

Both map scores to the probability simplex with exact zeros. They are computed by
sorting the (shifted) scores and finding the threshold ``τ`` in closed form, and are
differentiated with their closed-form Jacobians through ``jax.custom_jvp`` (so
``jax.jvp``, ``jax.grad`` and ``jax.jacfwd`` all work).

Numerics. Both maps are shift-invariant, and the threshold always satisfies
``τ ≥ max − 1`` (on the scale where the map is ``[z − τ]_+`` or ``[z − τ]_+²``), so an
entry more than 1 below the maximum can never be in the support. The scores are
shifted by their maximum and clipped at −2 before the sort: the result is unchanged,
but ``|x| = 1e30`` and ``-inf`` entries become harmless (no overflow in the cumulative
sums, no ``inf − inf``). ``-inf`` entries are masks (probability 0, gradient 0); a row
whose entries are all ``-inf`` gives all zeros (and zero gradient), never NaN.
Half-precision inputs are computed in float32 and cast back. An empty event axis is a
``ValueError`` naming ``x``; an empty batch axis gives an empty result.

Higher derivatives. Each JVP rule is written in terms of the primal map itself (``p``
and its support), so differentiating the rule again goes back through the same
``custom_jvp``: the Hessian is exact. Sparsemax is piecewise linear, so its second
derivative is 0 away from the kinks (a support change); 1.5-entmax has a non-zero one,
``d(diag(g) − g gᵀ / Σg)`` with ``dg = dp / (2 g)`` on the support.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks

__all__ = ["entmax15", "sparsemax"]

# Entries this far below the maximum (after scaling) are outside any support; see above.
_CLIP = -2.0


def _shift_and_clip(z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Shifts the last axis by its maximum and clips at ``_CLIP``; flags all-masked rows."""
    m = jnp.max(z, axis=-1, keepdims=True)
    all_masked = m == -jnp.inf
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    return jnp.maximum(z - m, _CLIP), all_masked


def _support_threshold(z_sorted: jax.Array, tau_k: jax.Array) -> jax.Array:
    """Picks ``τ = τ_{k*}`` with ``k* = #{k : τ_k < z_(k)}`` (the support size)."""
    support = jnp.sum(tau_k < z_sorted, axis=-1, keepdims=True)
    support = jnp.maximum(support, 1)  # k = 1 always qualifies; guard rounding anyway
    return jnp.take_along_axis(tau_k, support - 1, axis=-1)


@jax.custom_jvp
def _sparsemax_last(x: jax.Array) -> jax.Array:
    z, all_masked = _shift_and_clip(x)
    z_sorted = -jnp.sort(-z, axis=-1)  # descending
    k = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    # Candidate thresholds: τ_k = (Σ_{i≤k} z_(i) − 1) / k.
    tau_k = (jnp.cumsum(z_sorted, axis=-1) - 1.0) / k
    tau = _support_threshold(z_sorted, tau_k)
    p = jnp.maximum(z - tau, 0.0)
    return jnp.where(all_masked, 0.0, p)


@_sparsemax_last.defjvp
def _sparsemax_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    p = _sparsemax_last(x)
    s = p > 0
    t = jnp.where(s, t, 0.0)
    size = jnp.maximum(jnp.sum(s, axis=-1, keepdims=True), 1).astype(p.dtype)
    # J = diag(s) − s sᵀ / |S|: centre the tangent on the support.
    dp = jnp.where(s, t - jnp.sum(t, axis=-1, keepdims=True) / size, 0.0)
    return p, dp


@jax.custom_jvp
def _entmax15_last(x: jax.Array) -> jax.Array:
    z, all_masked = _shift_and_clip(x / 2.0)
    z_sorted = -jnp.sort(-z, axis=-1)
    k = jnp.arange(1, z.shape[-1] + 1, dtype=z.dtype)
    # For a support made of the top k entries, Σ_{i≤k} (z_(i) − τ)² = 1 gives
    # τ_k = mean_k − sqrt((1 − ss_k) / k), ss_k = Σ_{i≤k} (z_(i) − mean_k)².
    mean = jnp.cumsum(z_sorted, axis=-1) / k
    mean_sq = jnp.cumsum(z_sorted * z_sorted, axis=-1) / k
    ss = jnp.maximum(k * (mean_sq - mean * mean), 0.0)
    delta = jnp.maximum((1.0 - ss) / k, 0.0)
    tau_k = mean - jnp.sqrt(delta)
    tau = _support_threshold(z_sorted, tau_k)
    p = jnp.square(jnp.maximum(z - tau, 0.0))
    return jnp.where(all_masked, 0.0, p)


@_entmax15_last.defjvp
def _entmax15_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    p = _entmax15_last(x)
    # J = diag(g) − g gᵀ / Σg with g = sqrt(p) (zero off the support).
    on = p > 0
    g = jnp.where(on, jnp.sqrt(jnp.where(on, p, 1.0)), 0.0)  # safe for higher orders
    gt = jnp.where(on, g * t, 0.0)
    g_sum = jnp.sum(g, axis=-1, keepdims=True)
    q = jnp.sum(gt, axis=-1, keepdims=True) / jnp.where(g_sum > 0, g_sum, 1.0)
    return p, gt - q * g


@functools.partial(jax.jit, static_argnums=(0, 2))
def _apply_jit(fn, x: jax.Array, axis: int) -> jax.Array:
    xc = jnp.moveaxis(x.astype(_checks.compute_dtype(x.dtype)), axis, -1)
    return jnp.moveaxis(fn(xc), -1, axis).astype(x.dtype)


def _apply(fn, x: ArrayLike, axis: int) -> jax.Array:
    arr = _checks.as_float_array(x, "x")
    axis = _checks.check_axis(axis, arr.ndim, arg="x")
    _checks.check_event_nonempty(arr.shape, axis, "x")
    return _apply_jit(fn, arr, axis)


def sparsemax(x: ArrayLike, axis: int = -1) -> jax.Array:
    r"""Sparsemax: Euclidean projection of ``x`` onto the probability simplex.

    .. math:: \mathrm{sparsemax}(x) = \arg\min_{p \in \Delta} \|p - x\|^2
              = [x - \tau]_+, \qquad \textstyle\sum_i [x_i - \tau]_+ = 1.

    Exact sort-based algorithm, O(n log n): with ``x`` sorted in decreasing order, the
    support size is ``k* = max{k : 1 + k x_(k) > Σ_{i≤k} x_(i)}`` and
    ``τ = (Σ_{i≤k*} x_(i) − 1) / k*``. Backward (closed form): on the support ``S``,
    ``J = diag(s) − s sᵀ / |S|`` with ``s`` the indicator of ``S``.

    ``-inf`` entries are masks (probability 0, gradient 0); a fully masked row gives
    all zeros. Unlike softmax, sparsemax has no temperature: scale ``x`` instead
    (``sparsemax(x / T)``).

    Args:
      x: [..., K] scores; any float dtype (kept).
      axis: the event axis.
    Returns:
      Probabilities with the shape and dtype of ``x``, with exact zeros.
    Examples:
      >>> jr.soft.sparsemax(jnp.array([1.1, 4.0, -0.1, 3.5]))
      Array([0.  , 0.75, 0.  , 0.25], dtype=float32)

    References:
      Martins & Astudillo, `From Softmax to Sparsemax: A Sparse Model of Attention and
      Multi-Label Classification <https://arxiv.org/abs/1602.02068>`_, 2016.
    """
    return _apply(_sparsemax_last, x, axis)


def entmax15(x: ArrayLike, axis: int = -1) -> jax.Array:
    r"""1.5-entmax: the sparse map between softmax and sparsemax (Tsallis α = 1.5).

    .. math:: \mathrm{entmax}_{1.5}(x) = \arg\max_{p \in \Delta}\; p^\top x
              + \tfrac{4}{3}\big(1 - \textstyle\sum_i p_i^{3/2}\big)
              = \big[\tfrac{x}{2} - \tau\big]_+^2, \qquad \textstyle\sum_i p_i = 1.

    Exact sort-based algorithm (Peters et al. 2019), O(n log n): for each candidate
    support of the top ``k`` entries of ``z = x / 2``, the threshold solving
    ``Σ_{i≤k} (z_(i) − τ)² = 1`` is ``τ_k = mean_k − sqrt((1 − ss_k) / k)``; the support
    size is ``#{k : τ_k < z_(k)}``. Backward (closed form): with ``g = sqrt(p)``,
    ``J = diag(g) − g gᵀ / Σ g``.

    ``-inf`` entries are masks (probability 0, gradient 0); a fully masked row gives
    all zeros.

    Args:
      x: [..., K] scores; any float dtype (kept).
      axis: the event axis.
    Returns:
      Probabilities with the shape and dtype of ``x``, with exact zeros.
    Examples:
      >>> jr.soft.entmax15(jnp.array([1.1, 4.0, -0.1, 3.5])).round(3)
      Array([0.   , 0.674, 0.   , 0.326], dtype=float32)

    References:
      Peters, Niculae & Martins, `Sparse Sequence-to-Sequence Models
      <https://arxiv.org/abs/1905.05702>`_, 2019.
    """
    return _apply(_entmax15_last, x, axis)
