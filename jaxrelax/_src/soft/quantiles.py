"""Soft quantiles and the soft sort of one array by another.

* :func:`quantile` / :func:`median`: the soft sort of ``jr.soft.sort`` (projection onto the
  permutahedron, Blondel et al. 2020; O(n log n)) read at the level ``q`` by linear
  interpolation between order statistics, as ``jnp.quantile``'s default ``"linear"``
  method reads the hard sort.
* :func:`sort_with`: ``values`` carried by the entropic optimal transport plan that softly
  sorts ``x`` (Cuturi, Teboul & Vert 2019; ``ott.tools.soft_sort.sort_with``), the
  ``"sinkhorn"`` soft permutation of ``jr.soft.permutation_matrix``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrelax._src import _checks
from jaxrelax._src.soft import sorting
from jaxrelax._src.soft.argsort import permutation_matrix

__all__ = ["median", "quantile", "sort_with"]


def _check_q(q: ArrayLike) -> tuple[jax.Array, jax.Array | None]:
    """``q`` as an array (0-d or 1-d) and its traced validity flag (``0 <= q <= 1``)."""
    try:
        qa = jnp.asarray(q)
    except TypeError as e:
        raise TypeError(f"`q` must be a real number or a 1-D array: {e}") from None
    if not (jnp.issubdtype(qa.dtype, jnp.floating) or jnp.issubdtype(qa.dtype, jnp.integer)):
        raise TypeError(f"`q` must be real-valued, got dtype {qa.dtype}.")
    if qa.ndim > 1:
        raise ValueError(f"`q` must be a scalar or a 1-D array, got shape {qa.shape}.")
    v = _checks.concrete_value(q)
    if v is not None:
        v = v.astype(np.float64)
        if np.any(~((v >= 0) & (v <= 1))):
            raise ValueError(f"`q` must lie in [0, 1] (and not be NaN), got {q!r}.")
        return qa, None
    return qa, jnp.all((qa >= 0) & (qa <= 1))


def quantile(
    x: ArrayLike,
    q: ArrayLike,
    regularization_strength: ArrayLike = 1.0,
    axis: int = -1,
) -> jax.Array:
    r"""Soft quantile: the soft sort of ``x`` read at level ``q`` by linear interpolation.

    With ``s = jr.soft.sort(x, ε)`` (ascending; the projection of ``ρ / ε`` onto the
    permutahedron of ``x``), ``h = q (n − 1)`` and ``l = ⌊h⌋``,

    .. math:: Q_\varepsilon(x, q) = s_l + (h - l)\,(s_{l+1} - s_l),

    the ``"linear"`` rule of ``jnp.quantile`` (numpy's default) applied to the soft sort.
    Once ``ε`` is below the gaps between the sorted entries the soft sort is exact, so
    ``Q_ε`` equals ``jnp.quantile(x, q)`` (and tends to it as ``ε → 0``); as ``ε → ∞`` it
    tends to the mean of ``x``. It is piecewise linear in ``x`` (the soft sort's gradient
    is a block average, also at ties) and in ``q``; ``Q(x + c) = Q(x) + c``. Inputs must
    be finite.

    Args:
      x: [..., n] values; any float dtype (kept).
      q: a level in ``[0, 1]``, or a 1-D array of levels. A concrete level outside
        ``[0, 1]`` or a wrong shape is a ``ValueError``; a traced invalid level makes the
        whole output NaN.
      regularization_strength: ``ε > 0``, a scalar; it may be traced (a traced
        ``ε <= 0`` makes the whole output NaN).
      axis: the axis to take quantiles along.
    Returns:
      The soft quantiles, shaped as ``jnp.quantile(x, q, axis=axis)``: ``x`` without
      ``axis``, with a leading axis of the levels when ``q`` is 1-D; dtype of ``x``.
    Examples:
      >>> x = jnp.array([5.0, 1.0, 2.0, 4.0])
      >>> jr.soft.quantile(x, jnp.array([0.25, 0.5]), regularization_strength=1e-3)
      Array([1.75, 3.  ], dtype=float32)
      >>> jr.soft.quantile(x, 0.5, regularization_strength=10.0)
      Array(3., dtype=float32)

    References:
      Blondel et al., `Fast Differentiable Sorting and Ranking
      <https://arxiv.org/abs/2002.08871>`_, ICML 2020. Cuturi, Teboul & Vert,
      `Differentiable Ranks and Sorting using Optimal Transport
      <https://arxiv.org/abs/1905.11885>`_, NeurIPS 2019.

    .. note:: Deterministic and biased towards the mean for large ``ε``; O(n log n) time
       and O(n) memory per row (one soft sort), forward and backward.
    """
    qa, q_ok = _check_q(q)
    arr = _checks.as_float_array(x)
    axis = _checks.check_axis(axis, arr.ndim)
    _checks.check_event_nonempty(arr.shape, axis, "x")
    s = jnp.moveaxis(sorting.sort(arr, regularization_strength, axis=axis), axis, -1)
    s = s.astype(_checks.compute_dtype(arr.dtype))
    n = s.shape[-1]
    h = qa.astype(s.dtype).reshape(-1) * (n - 1)  # [m]
    lo = jnp.clip(jnp.floor(jax.lax.stop_gradient(h)), 0, n - 1)
    frac = h - lo
    lo = lo.astype(jnp.int32)
    hi = jnp.minimum(lo + 1, n - 1)
    s_lo, s_hi = jnp.take(s, lo, axis=-1), jnp.take(s, hi, axis=-1)  # [..., m]
    out = s_lo + frac * (s_hi - s_lo)
    out = out[..., 0] if qa.ndim == 0 else jnp.moveaxis(out, -1, 0)
    return _checks.poison(out.astype(arr.dtype), q_ok)


def median(
    x: ArrayLike,
    regularization_strength: ArrayLike = 1.0,
    axis: int = -1,
) -> jax.Array:
    r"""Soft median: :func:`quantile` at ``q = 0.5``.

    The middle entry of the soft sort (the mean of the two middle entries for even
    ``n``, as ``jnp.median``); equal to ``jnp.median(x)`` once ``ε`` is below the gaps
    between the sorted entries, and the mean of ``x`` as ``ε → ∞``.

    Args:
      x: [..., n] values; any float dtype (kept).
      regularization_strength: ``ε > 0``, a scalar (may be traced; ``<= 0`` gives NaN).
      axis: the axis to take the median along.
    Returns:
      ``x`` without ``axis``, dtype of ``x``.
    Examples:
      >>> jr.soft.median(jnp.array([5.0, 1.0, 2.0]), regularization_strength=1.0).round(4)
      Array(2.6667, dtype=float32)

    References:
      Blondel et al., `Fast Differentiable Sorting and Ranking
      <https://arxiv.org/abs/2002.08871>`_, ICML 2020.

    .. note:: Deterministic, biased towards the mean for large ``ε``; O(n log n).
    """
    return quantile(x, 0.5, regularization_strength, axis)


def sort_with(
    x: ArrayLike,
    values: ArrayLike,
    regularization_strength: ArrayLike = 1.0,
    descending: bool = False,
    axis: int = -1,
    *,
    num_iters: int = 100,
) -> jax.Array:
    r"""Sorts ``values`` by the soft ranks of ``x``: ``P @ values`` with an OT soft permutation.

    ``P = jr.soft.permutation_matrix(x, ε, method="sinkhorn")`` is the entropic optimal
    transport plan between the squashed ``x`` and ``n`` sorted anchors (Cuturi, Teboul &
    Vert 2019), scaled to be row-stochastic; output ``i`` is the convex combination
    ``Σ_j P_ij values_j`` of the values whose keys ``x_j`` are softly the ``i``-th smallest
    (largest with ``descending``) -- the semantics of ``ott.tools.soft_sort.sort_with``
    (inputs sorted by a criterion). As ``ε → 0`` it tends to
    ``values[argsort(x)]``; as ``ε → ∞`` every output tends to the mean of ``values``.
    Ties in ``x`` average the tied values; ``-inf`` keys are masks, placed first (last
    when descending) with their values carried exactly.

    Args:
      x: [..., n] sort keys; any float dtype.
      values: the values to sort, shaped ``x.shape`` followed by any number of feature
        axes (``x.shape + (d, ...)``); their dtype is kept.
      regularization_strength: the entropic strength ``ε > 0`` of the transport, on costs
        in ``[0, 1]``: ``1e-3`` is nearly hard for a few dozen entries. A scalar; it may be
        traced (``<= 0`` gives NaN).
      descending: sort by decreasing ``x``.
      axis: the axis of ``x`` (and of ``values``) to sort along.
      num_iters: Sinkhorn rounds, a static int ``>= 1`` (more are needed as ``ε`` falls).
    Returns:
      ``values`` softly sorted along ``axis``, with its shape and dtype.
    Examples:
      >>> x = jnp.array([0.3, -2.0, 1.5])
      >>> v = jnp.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
      >>> jr.soft.sort_with(x, v, regularization_strength=1e-3).round(1)
      Array([[ 2. , 20. ],
             [ 1. , 10.1],
             [ 3. , 30. ]], dtype=float32)

    References:
      Cuturi, Teboul & Vert, `Differentiable Ranks and Sorting using Optimal Transport
      <https://arxiv.org/abs/1905.11885>`_, NeurIPS 2019.

    .. note:: Deterministic, biased towards the mean for large ``ε``. O(n²) time and
       memory per row (the transport plan), times ``num_iters`` in the reverse pass; see
       ``jr.soft.permutation_matrix`` for the size above which it warns.
    """
    arr = _checks.as_float_array(x)
    vals = jnp.asarray(values)
    if not jnp.issubdtype(vals.dtype, jnp.floating):
        vals = _checks.as_float_array(vals, "values")
    axis = _checks.check_axis(axis, arr.ndim)
    if vals.shape[: arr.ndim] != arr.shape:
        raise ValueError(
            f"`values` with shape {vals.shape} must have the shape of `x` {arr.shape} "
            "followed by optional feature axes."
        )
    # Checked here, so that errors name this function's own arguments.
    _checks.check_positive(regularization_strength, "regularization_strength")
    if jnp.ndim(regularization_strength) != 0:
        raise ValueError(
            "`regularization_strength` must be a scalar, got shape "
            f"{jnp.shape(regularization_strength)}."
        )
    num_iters = _checks.check_int(num_iters, "num_iters")
    p = permutation_matrix(
        arr, regularization_strength, "sinkhorn", descending, axis=axis, num_iters=num_iters
    )  # [..., n, n], the other axes of x leading
    features = vals.shape[arr.ndim :]
    v = jnp.moveaxis(vals, axis, arr.ndim - 1)  # [..., n, *features]
    cdt = max(
        (_checks.compute_dtype(vals.dtype), _checks.compute_dtype(p.dtype)),
        key=lambda d: jnp.dtype(d).itemsize,
    )
    v = v.reshape((*v.shape[: arr.ndim], int(np.prod(features)))).astype(cdt)  # [..., n, d]
    out = jnp.einsum("...ij,...jd->...id", p.astype(cdt), v)
    out = out.reshape((*out.shape[:-1], *features))
    return jnp.moveaxis(out, arr.ndim - 1, axis).astype(vals.dtype)
