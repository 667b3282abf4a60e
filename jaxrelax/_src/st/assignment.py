"""Straight-through linear assignment (Git Re-Basin's permutation trick)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxrelax._src import _checks
from jaxrelax._src.st.basic import straight_through

__all__ = ["assignment"]


def assignment(scores: ArrayLike) -> jax.Array:
    r"""Exact maximum-score assignment forward, identity backward.

    Forward: the 0/1 matrix ``P`` maximising ``Σ_ij P_ij scores_ij`` subject to at most
    one 1 per row and column and ``min(n, m)`` ones in total (a permutation matrix
    when square), solved exactly by :func:`optax.assignment.hungarian_algorithm`
    (jit-able). Backward: identity, ``∂P/∂scores = I`` (Ainsworth et al. 2023).

    A ``-inf`` score is a forbidden pair: it is never used when an assignment avoiding
    every forbidden pair exists (otherwise the fewest possible are used), and it gets
    zero gradient; no NaN in values or gradients. Higher derivatives are those of the
    identity: exactly 0.

    Args:
      scores: [n, m] score matrix (batch with ``jax.vmap``); an empty matrix gives an
        empty result.
    Returns:
      [n, m] assignment matrix, same dtype as ``scores``.
    Examples:
      >>> import jax.numpy as jnp, jaxrelax as jr
      >>> jr.st.assignment(jnp.array([[0.1, 0.9], [0.8, 0.7]]))
      Array([[0., 1.],
             [1., 0.]], dtype=float32)

    References:
      Ainsworth et al., `Git Re-Basin: Merging Models modulo Permutation Symmetries
      <https://arxiv.org/abs/2209.04836>`_, 2023.
    """
    arr = _checks.as_float_array(scores, "scores")
    if arr.ndim != 2:
        raise ValueError(
            f"`scores` must be a 2-D [n, m] matrix (use jax.vmap for batches), got shape "
            f"{arr.shape}."
        )
    cdt = _checks.compute_dtype(arr.dtype)
    sc = arr.astype(cdt)
    hard = _hard_assignment(sc)
    # The surrogate is the identity on finite scores; a -inf (forbidden) score would
    # make ``soft - stop_gradient(soft)`` NaN, so it enters as 0 with zero gradient.
    soft = jnp.where(jnp.isfinite(sc), sc, 0.0)
    return straight_through(hard, soft).astype(arr.dtype)


@jax.jit
def _hard_assignment(scores: jax.Array) -> jax.Array:
    """The exact 0/1 assignment matrix of 2-D ``scores`` (jitted: one compile per shape
    and dtype, also for eager callers)."""
    scores = jax.lax.stop_gradient(scores)
    rows, cols = optax.assignment.hungarian_algorithm(-_mask_forbidden(scores))
    return jnp.zeros(scores.shape, scores.dtype).at[rows, cols].set(1.0)


def _mask_forbidden(scores: jax.Array) -> jax.Array:
    """``scores`` with non-finite entries replaced by finite stand-ins.

    ``-inf`` (and NaN) become a penalty low enough that an assignment with fewer such
    entries always scores more than one with more, so one avoiding them all is chosen
    whenever it exists; ties are then broken by the finite scores. ``+inf`` becomes the
    mirror-image bonus (as many as possible are used). The rule of the Hungarian wrapper
    of ``jr.reparam.gumbel_sinkhorn(hard=True)`` (``_src/reparam/permutations.py``),
    here for a rectangular 2-D matrix.
    """
    finite = jnp.isfinite(scores)
    k = max(min(scores.shape), 1)
    lo = jnp.min(jnp.where(finite, scores, jnp.inf), initial=jnp.inf)
    hi = jnp.max(jnp.where(finite, scores, -jnp.inf), initial=-jnp.inf)
    lo = jnp.where(jnp.isfinite(lo), lo, 0.0)
    hi = jnp.where(jnp.isfinite(hi), hi, 0.0)
    # An assignment has k entries, so one more forbidden entry must cost more than the
    # whole spread k (hi - lo) of the finite ones. Clamped to the dtype's range: past
    # it (scores near the float maximum) the order among forbidden entries is lost, but
    # the result is still a valid assignment, never NaN.
    big = jnp.finfo(scores.dtype).max / 4
    spread = (hi - lo + 1.0) * (k + 1)
    penalty = jnp.maximum(lo - spread, -big)
    bonus = jnp.minimum(hi + spread, big)
    return jnp.where(finite, scores, jnp.where(scores == jnp.inf, bonus, penalty))
