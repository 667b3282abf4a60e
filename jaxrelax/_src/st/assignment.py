"""Straight-through linear assignment (Git Re-Basin's permutation trick)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics
from jaxrelax._src.st.straight_through import straight_through

__all__ = ["assignment"]


def assignment(scores: ArrayLike) -> jax.Array:
    r"""Exact maximum-score assignment forward, identity backward.

    Forward: the 0/1 matrix ``P`` maximising ``Σ_ij P_ij scores_ij`` subject to at most
    one 1 per row and column and ``min(n, m)`` ones in total (a permutation matrix
    when square), solved exactly by `optax.assignment.hungarian_algorithm`
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
      Ainsworth et al., [Git Re-Basin: Merging Models modulo Permutation
      Symmetries](https://arxiv.org/abs/2209.04836), 2023.
    """
    arr = _checks.as_float_array(scores, "scores")
    if arr.ndim != 2:
        raise ValueError(
            f"`scores` must be a 2-D [n, m] matrix (use jax.vmap for batches), got shape "
            f"{arr.shape}."
        )
    cdt = _checks.compute_dtype(arr.dtype)
    sc = arr.astype(cdt)
    hard = _numerics.hungarian(sc)
    # The surrogate is the identity on finite scores; a -inf (forbidden) score would
    # make ``soft - stop_gradient(soft)`` NaN, so it enters as 0 with zero gradient.
    soft = jnp.where(jnp.isfinite(sc), sc, 0.0)
    return straight_through(hard, soft).astype(arr.dtype)
