"""Soft quantiles and the soft sort of one array by another.

* `quantile` / `median`: the soft sort of ``jr.soft.sort`` (projection onto the
  permutahedron, Blondel et al. 2020; O(n log n)) read at the level ``q`` by linear
  interpolation between order statistics, as ``jnp.quantile``'s default ``"linear"``
  method reads the hard sort.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics
from jaxrelax._src.soft import sorting

__all__ = ["median", "quantile"]


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
    *,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Soft quantile: the soft sort of `x` read at level `q` by linear interpolation.

    With `s = jr.soft.sort(x, ε)` (ascending; the projection of `ρ / ε` onto the
    permutahedron of `x`), `h = q (n − 1)` and `l = ⌊h⌋`,

    $$
    Q_\varepsilon(x, q) = s_l + (h - l)\,(s_{l+1} - s_l),
    $$

    the `"linear"` rule of `jnp.quantile` (numpy's default) applied to the soft sort.
    Once `ε` is below the gaps between the sorted entries the soft sort is exact, so
    `Q_ε` equals `jnp.quantile(x, q)` (and tends to it as `ε → 0`); as `ε → ∞` it tends
    to the mean of `x`. It is piecewise linear in `x` (the soft sort's gradient is a block
    average, also at ties) and in `q`; `Q(x + c) = Q(x) + c`. Inputs must be finite.

    Variable-length lists: with `where`, each row's quantile is that of its `m` valid
    entries alone (the soft sort of `jr.soft.sort(..., where=where)`, read with
    `h = q (m − 1)`); padded inputs (NaN and inf included) get exactly zero gradient, and
    a row with no valid entry gives the fill value 0.

    Args:
      x: [..., n] values; any float dtype (kept).
      q: a level in `[0, 1]`, or a 1-D array of levels. A concrete level outside
        `[0, 1]` or a wrong shape is a `ValueError`; a traced invalid level makes the
        whole output NaN.
      regularization_strength: `ε > 0`, a scalar; it may be traced (a traced `ε <= 0`
        makes the whole output NaN).
      axis: the axis to take quantiles along.
      where: optional boolean mask of the valid entries, with the shape of `x`.

    Returns:
      The soft quantiles, shaped as `jnp.quantile(x, q, axis=axis)`: `x` without `axis`,
      with a leading axis of the levels when `q` is 1-D; dtype of `x`.

    Examples:
      >>> x = jnp.array([5.0, 1.0, 2.0, 4.0])
      >>> jr.soft.quantile(x, jnp.array([0.25, 0.5]), regularization_strength=1e-3)
      Array([1.75, 3.  ], dtype=float32)
      >>> jr.soft.quantile(x, 0.5, regularization_strength=10.0)
      Array(3., dtype=float32)
      >>> jr.soft.quantile(x, 0.5, 1e-3, where=jnp.array([True, True, True, False]))
      Array(2., dtype=float32)

    References:
      Blondel et al., [Fast Differentiable Sorting and Ranking](https://arxiv.org/abs/2002.08871),
      ICML 2020. Cuturi, Teboul & Vert, [Differentiable Ranks and Sorting using Optimal
      Transport](https://arxiv.org/abs/1905.11885), NeurIPS 2019.

    Note:
      Deterministic and biased towards the mean for large `ε`; O(n log n) time and O(n)
      memory per row (one soft sort), forward and backward.
    """
    qa, q_ok = _check_q(q)
    arr = _checks.as_float_array(x)
    axis = _checks.check_axis(axis, arr.ndim)
    _checks.check_event_nonempty(arr.shape, axis, "x")
    mask = _checks.check_where(where, arr.shape)
    s = sorting.sort(arr, regularization_strength, axis=axis, where=mask)
    s = jnp.moveaxis(s, axis, -1).astype(_checks.compute_dtype(arr.dtype))
    n = s.shape[-1]
    if mask is None:
        h = qa.astype(s.dtype).reshape(-1) * (n - 1)  # [m]
        lo = jnp.clip(jnp.floor(_numerics.sg(h)), 0, n - 1)
        frac = h - lo
        lo = lo.astype(jnp.int32)
        hi = jnp.minimum(lo + 1, n - 1)
        s_lo, s_hi = jnp.take(s, lo, axis=-1), jnp.take(s, hi, axis=-1)  # [..., m]
    else:  # per row, read at h = q (m - 1) (0 for a row of none, whose sort is all 0)
        count = jnp.sum(jnp.moveaxis(mask, axis, -1), axis=-1, keepdims=True, dtype=jnp.int32)
        top = jnp.maximum(count - 1, 0)  # [..., 1]
        h = qa.astype(s.dtype).reshape(-1) * top.astype(s.dtype)  # [..., m]
        lo = jnp.clip(jnp.floor(_numerics.sg(h)), 0, top.astype(s.dtype))
        frac = h - lo
        lo = lo.astype(jnp.int32)
        hi = jnp.minimum(lo + 1, top)
        s_lo = jnp.take_along_axis(s, lo, axis=-1)
        s_hi = jnp.take_along_axis(s, hi, axis=-1)
    out = s_lo + frac * (s_hi - s_lo)
    out = out[..., 0] if qa.ndim == 0 else jnp.moveaxis(out, -1, 0)
    return _checks.poison(out.astype(arr.dtype), q_ok)


def median(
    x: ArrayLike,
    regularization_strength: ArrayLike = 1.0,
    axis: int = -1,
    *,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Soft median: `jr.soft.quantile` at `q = 0.5`.

    The middle entry of the soft sort (the mean of the two middle entries for even `n`,
    as `jnp.median`); equal to `jnp.median(x)` once `ε` is below the gaps between the
    sorted entries, and the mean of `x` as `ε → ∞`. With `where`, the soft median of each
    row's valid entries alone (0 for a row of none; padded inputs get zero gradient).

    Args:
      x: [..., n] values; any float dtype (kept).
      regularization_strength: `ε > 0`, a scalar (may be traced; `<= 0` gives NaN).
      axis: the axis to take the median along.
      where: optional boolean mask of the valid entries, with the shape of `x`.

    Returns:
      `x` without `axis`, dtype of `x`.

    Examples:
      >>> jr.soft.median(jnp.array([5.0, 1.0, 2.0]), regularization_strength=1.0).round(4)
      Array(2.6667, dtype=float32)
      >>> x = jnp.array([5.0, 1.0, 2.0, jnp.inf])  # the inf is padding
      >>> jr.soft.median(x, 1.0, where=jnp.array([True, True, True, False])).round(4)
      Array(2.6667, dtype=float32)

    References:
      Blondel et al., [Fast Differentiable Sorting and Ranking](https://arxiv.org/abs/2002.08871),
      ICML 2020.

    Note:
      Deterministic, biased towards the mean for large `ε`; O(n log n).
    """
    return quantile(x, 0.5, regularization_strength, axis, where=where)
