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

    Args:
      scores: [n, m] score matrix (batch with ``jax.vmap``).
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
    sc = jax.lax.stop_gradient(arr.astype(cdt))
    rows, cols = optax.assignment.hungarian_algorithm(-sc)
    hard = jnp.zeros(arr.shape, cdt).at[rows, cols].set(1.0)
    return straight_through(hard, arr.astype(cdt)).astype(arr.dtype)
