"""Doubly-stochastic relaxation of permutation matrices: log-domain Sinkhorn."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics

__all__ = ["sinkhorn"]


def sinkhorn(log_alpha: ArrayLike, temperature: ArrayLike = 1.0, num_iters: int = 20) -> jax.Array:
    r"""Sinkhorn normalisation: a doubly-stochastic relaxation of a permutation matrix.

    Starting from ``X = log_alpha / T``, alternately normalise the rows and the columns
    in the log domain,

    .. math:: X \leftarrow X - \mathrm{logsumexp}_{\text{row}}(X), \qquad
              X \leftarrow X - \mathrm{logsumexp}_{\text{col}}(X),

    ``num_iters`` times, and return ``exp(X)``. After the last (column) step the columns
    sum to 1 exactly and the rows approximately; the row error shrinks with
    ``num_iters`` (Sinkhorn's theorem). As T → 0 (with enough iterations) the result
    tends to the permutation matrix maximising ``Σ_ij P_ij log_alpha_ij`` (the linear
    assignment); as T → ∞ it tends to the uniform matrix ``1/n``. Differentiable by
    automatic differentiation through the fixed number of iterations.

    ``-inf`` entries of ``log_alpha`` are masks (forbidden assignments: exactly 0, zero
    gradient). A row or column with no allowed entry cannot be normalised: it stays 0
    (no NaN), and the matrix is then only sub-stochastic.

    Args:
      log_alpha: [..., n, n] scores (leading axes are batch axes); any float dtype (kept).
        ``n = 0`` is a ``ValueError``; an empty batch axis gives an empty result.
      temperature: T > 0; a float or an array broadcasting to ``log_alpha`` without
        enlarging it (e.g. one per matrix, shape [..., 1, 1]). A traced T <= 0 (inside
        ``jit``) makes the output NaN.
      num_iters: number of row-and-column normalisation rounds (a static int ≥ 1).
    Returns:
      [..., n, n] doubly-stochastic matrices, same dtype as ``log_alpha``.
    Examples:
      >>> P = jr.soft.sinkhorn(jnp.array([[2.0, 0.0], [1.0, 3.0]]), temperature=0.5)
      >>> P.round(3)
      Array([[0.982, 0.018],
             [0.018, 0.982]], dtype=float32)

    References:
      Adams & Zemel, `Ranking via Sinkhorn Propagation
      <https://arxiv.org/abs/1106.1925>`_, 2011. Mena et al., `Learning Latent
      Permutations with Gumbel-Sinkhorn Networks <https://arxiv.org/abs/1802.08665>`_,
      2018.
    """
    num_iters = _checks.check_int(num_iters, "num_iters")
    arr = _checks.as_float_array(log_alpha, "log_alpha")
    _checks.check_square(arr, "log_alpha")
    _checks.check_event_nonempty(arr.shape, arr.ndim - 1, "log_alpha")
    ok = _checks.check_param(temperature, arr.shape, "temperature", "log_alpha")
    cdt = _checks.compute_dtype(arr.dtype)
    x = _numerics.sinkhorn_log(arr.astype(cdt), temperature, num_iters)
    return _checks.poison(jnp.exp(x).astype(arr.dtype), ok)
