"""Soft sorting, soft ranking and a soft top-k mask by projection onto permutahedra.

Blondel et al. (2020) write soft sorting and ranking as Euclidean (``"l2"``) or
entropic (``"kl"``) projections onto the permutahedron ``P(w)``, the convex hull of the
permutations of a vector ``w``:

* soft sort: the projection of ``ρ / ε`` onto ``P(x)``;
* soft rank: the projection of ``x / ε`` onto ``P(ρ)``;

with ``ρ = (n, n−1, ..., 1)`` and ``ε`` the regularization strength. Each projection is a
sort followed by an isotonic regression, solved exactly by pool-adjacent-violators
(``_isotonic.py``) in O(n log n) time and O(n) memory, in pure JAX. Derivatives are in
closed form (block means for l2, block softmax weights for kl), never through the
solver's loops.
"""

from __future__ import annotations

import operator
from typing import Literal

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics
from jaxrelax._src.soft import _isotonic

__all__ = ["rank", "sort", "topk_mask"]

#: The ``regularization`` of the soft sort and rank: Euclidean or entropic projection.
Regularization = Literal["l2", "kl"]
_REGULARIZATIONS = ("l2", "kl")


def _prepare(x, regularization_strength, regularization, axis):
    if regularization not in _REGULARIZATIONS:
        raise ValueError(
            f"`regularization` must be one of {_REGULARIZATIONS}, got {regularization!r}."
        )
    _checks.check_positive(regularization_strength, "regularization_strength")
    if jnp.ndim(regularization_strength) != 0:
        raise ValueError(
            "`regularization_strength` must be a scalar, got shape "
            f"{jnp.shape(regularization_strength)}."
        )
    arr = _checks.as_float_array(x)
    axis = _checks.check_axis(axis, arr.ndim)
    _checks.check_event_nonempty(arr.shape, axis, "x")
    xc = jnp.moveaxis(arr.astype(_checks.compute_dtype(arr.dtype)), axis, -1)
    if xc.dtype == jnp.float32 and xc.shape[-1] > 2**24:
        raise ValueError(
            f"`x` has {xc.shape[-1]} entries along `axis`; float32 supports at most 2**24 "
            "(block sizes are counted in float32). Pass float64 input with x64 enabled."
        )
    eps = jnp.asarray(regularization_strength, xc.dtype)
    # A traced ε <= 0 (or NaN) poisons the output; a concrete one was refused above.
    valid = _checks.traced_valid(regularization_strength)
    return arr, xc, axis, eps, valid


def _finish(y, arr, axis, valid):
    return _checks.poison(jnp.moveaxis(y, -1, axis).astype(arr.dtype), valid)


def _centre(xc):
    """``xc`` minus the mid-range of each row (a constant: the ops are shift-invariant).

    Entries that are equal stay bitwise equal, and the row's largest magnitude can only
    shrink (no overflow), so that ``x / ε`` keeps the resolution of the gaps within the
    row when ``x`` is large: five equal entries of ``1e7`` give equal ranks.
    """
    hi = jnp.max(xc, axis=-1, keepdims=True)
    lo = jnp.min(xc, axis=-1, keepdims=True)
    return xc - _numerics.sg(hi * 0.5 + lo * 0.5)


def _within(y, lo, hi):
    """``y`` clipped to ``[lo, hi]``, the range the exact projection lies in, in value
    only (the derivative stays that of ``y``). It moves only outputs that rounding put
    an ulp or two outside, e.g. ``exp(log n)`` above ``n`` for the entropic ranks, so
    that the bounds hold exactly in every dtype."""
    return y + _numerics.sg(jnp.clip(y, lo, hi) - y)


def _project_onto(z, w, kl):
    """Projection of ``z`` [..., n] onto the permutahedron of the decreasing ``w`` [n]."""
    perm = _numerics.argsort(_numerics.sg(z), descending=True)  # stable, one operand
    s = jnp.take_along_axis(z, perm, axis=-1)
    u = _isotonic.project(s, jnp.broadcast_to(w, s.shape), kl)
    return jnp.put_along_axis(jnp.zeros_like(u), perm, u, axis=-1, inplace=False)


def sort(
    x: ArrayLike,
    regularization_strength: ArrayLike = 1.0,
    regularization: Regularization = "l2",
    descending: bool = False,
    axis: int = -1,
) -> jax.Array:
    r"""Soft sort: the projection of ``ρ / ε`` onto the permutahedron of ``x``.

    For ``descending=True``, with ``ρ = (n, n−1, ..., 1)`` and ``ε`` the
    regularization strength,

    .. math:: s_\varepsilon(x) = \arg\min_{y \in \mathcal P(x)} \tfrac12 \|y - \rho/\varepsilon\|^2

    (``"l2"``), or, with ``"kl"``, the log of the KL projection of ``exp(ρ / ε)`` onto
    ``P(exp(x))``. The ascending sort is ``−s_ε(−x)``. As ``ε → 0`` the result tends to
    the hard sort; as ``ε → ∞`` every entry tends to the mean of ``x`` (``"l2"``) or,
    with ``"kl"``, to ``log mean exp(x)`` (descending) or ``−log mean exp(−x)``
    (ascending). The ``"l2"`` result is piecewise linear in ``x`` and its gradient is
    the block average of the sorted positions; at a tie (a vertex of the
    permutahedron) it is that of the pooled block, as in Blondel et al.'s reference
    solver. ``sort(x + c) = sort(x) + c``. Inputs must be finite; an empty event axis is
    a ``ValueError``.

    Args:
      x: [..., n] values; any float dtype (kept).
      regularization_strength: ``ε > 0``, a scalar; it may be traced (a traced
        ``ε <= 0`` makes the whole output NaN).
      regularization: ``"l2"`` (Euclidean projection) or ``"kl"`` (entropic).
      descending: sort in decreasing order.
      axis: the axis to sort along.
    Returns:
      Soft-sorted values with the shape and dtype of ``x``.
    Examples:
      >>> x = jnp.array([5.0, 1.0, 2.0])
      >>> jr.soft.sort(x, regularization_strength=1.0).round(4)
      Array([1.6667, 2.6667, 3.6667], dtype=float32)
      >>> jr.soft.sort(x, regularization_strength=0.1)
      Array([1., 2., 5.], dtype=float32)

    References:
      Blondel et al., `Fast Differentiable Sorting and Ranking
      <https://arxiv.org/abs/2002.08871>`_, ICML 2020.
    """
    arr, xc, axis, eps, valid = _prepare(x, regularization_strength, regularization, axis)
    if xc.size == 0:  # an empty batch
        return _finish(xc, arr, axis, valid)
    n = xc.shape[-1]
    kl = regularization == "kl"
    # x is not centred (unlike in rank): it is never divided by ε, and uncentred the
    # hard limit returns the entries of x bit for bit ((x − c) + c need not be x).
    rho = jnp.broadcast_to(jnp.arange(n, 0, -1, dtype=xc.dtype) / eps, xc.shape)
    xs = _numerics.sort(xc, axis=-1)
    if descending:
        y = _isotonic.project(rho, jnp.flip(xs, axis=-1), kl)
    else:
        y = -_isotonic.project(rho, -xs, kl)
    y = _within(y, xs[..., :1], xs[..., -1:])
    return _finish(y, arr, axis, valid)


def rank(
    x: ArrayLike,
    regularization_strength: ArrayLike = 1.0,
    regularization: Regularization = "l2",
    descending: bool = False,
    axis: int = -1,
) -> jax.Array:
    r"""Soft ranks (1-based): the projection of ``x / ε`` onto the permutahedron of ``ρ``.

    With ``ρ = (n, n−1, ..., 1)`` and ``ε`` the regularization strength,

    .. math:: r_\varepsilon(x) = \arg\min_{y \in \mathcal P(\rho)} \tfrac12 \|y - x/\varepsilon\|^2

    (``"l2"``), or, with ``"kl"``, the KL projection of ``exp(x / ε)`` onto ``P(ρ)``
    (positive ranks). Rank 1 is the smallest entry, or the largest with
    ``descending=True`` (``x`` replaced by ``−x``). The ranks always sum to
    ``n (n + 1) / 2``; as ``ε → 0`` they tend to the hard ranks, as ``ε → ∞`` to
    ``(n + 1) / 2``. Ranks are shift-invariant (``rank(x + c) = rank(x)``): each row is
    centred before it is divided by ``ε``, so equal entries get equal ranks at any
    magnitude. At ties (e.g. evenly spaced ``x`` with ``ε`` equal to the spacing) the
    derivative is that of the pooled block, as in the reference solver. Inputs must be
    finite; an empty event axis is a ``ValueError``.

    Args:
      x: [..., n] values; any float dtype (kept).
      regularization_strength: ``ε > 0``, a scalar; it may be traced (a traced
        ``ε <= 0`` makes the whole output NaN).
      regularization: ``"l2"`` (Euclidean projection) or ``"kl"`` (entropic).
      descending: rank 1 for the largest entry instead of the smallest.
      axis: the axis to rank along.
    Returns:
      Soft ranks with the shape and dtype of ``x``.
    Examples:
      >>> x = jnp.array([5.0, 1.0, 2.0])
      >>> jr.soft.rank(x, regularization_strength=2.0)
      Array([3.  , 1.25, 1.75], dtype=float32)
      >>> jr.soft.rank(x, regularization_strength=0.1, descending=True)
      Array([1., 3., 2.], dtype=float32)

    References:
      Blondel et al., `Fast Differentiable Sorting and Ranking
      <https://arxiv.org/abs/2002.08871>`_, ICML 2020.
    """
    arr, xc, axis, eps, valid = _prepare(x, regularization_strength, regularization, axis)
    if xc.size == 0:  # an empty batch
        return _finish(xc, arr, axis, valid)
    n = xc.shape[-1]
    z = _centre(-xc if descending else xc) / eps
    rho = jnp.arange(n, 0, -1, dtype=xc.dtype)
    if regularization == "kl":
        y = jnp.exp(_project_onto(z, jnp.log(rho), True))
    else:
        y = _project_onto(z, rho, False)
    return _finish(_within(y, 1.0, float(n)), arr, axis, valid)


def topk_mask(
    x: ArrayLike,
    k: int,
    regularization_strength: ArrayLike = 1.0,
    axis: int = -1,
) -> jax.Array:
    r"""Relaxed k-hot mask of the ``k`` largest entries: a projection onto the hypersimplex.

    .. math:: m_\varepsilon(x) = \arg\min_{y \in [0, 1]^n,\ \sum_i y_i = k}
        \tfrac12 \|y - x/\varepsilon\|^2,

    the Euclidean projection of ``x / ε`` onto the permutahedron of
    ``(1, ..., 1, 0, ..., 0)`` (``k`` ones), solved exactly by sorting and isotonic
    regression. The mask sums to ``k``, has entries in ``[0, 1]``, equals the hard
    top-k mask once ``ε`` is below the gap between the k-th and (k+1)-th largest
    entries (and tends to it as ``ε → 0``), and tends to ``k / n`` everywhere as
    ``ε → ∞``. It is shift-invariant (rows are centred before they are divided by
    ``ε``): equal entries get equal mask values at any magnitude.

    Args:
      x: [..., n] scores; any float dtype (kept).
      k: the number of entries to select, a Python int with ``1 <= k <= n``.
      regularization_strength: ``ε > 0``, a scalar; it may be traced (a traced
        ``ε <= 0`` makes the whole output NaN).
      axis: the axis to select along.
    Returns:
      The relaxed mask, with the shape and dtype of ``x``.
    Examples:
      >>> x = jnp.array([0.1, 2.0, -1.0, 1.5])
      >>> jr.soft.topk_mask(x, 2, regularization_strength=2.0).round(4)
      Array([0.15, 1.  , 0.  , 0.85], dtype=float32)
      >>> jr.soft.topk_mask(x, 2, regularization_strength=0.1)
      Array([0., 1., 0., 1.], dtype=float32)

    References:
      Blondel et al., `Fast Differentiable Sorting and Ranking
      <https://arxiv.org/abs/2002.08871>`_, ICML 2020.
    """
    try:
        if isinstance(k, bool):
            raise TypeError
        k = operator.index(k)
    except TypeError:
        raise TypeError(f"`k` must be a Python int, got {k!r}.") from None
    arr, xc, axis, eps, valid = _prepare(x, regularization_strength, "l2", axis)
    n = xc.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"`k` must satisfy 1 <= k <= n = {n}, got k={k}.")
    if k == n:
        return _finish(jnp.ones_like(xc), arr, axis, valid)
    if xc.size == 0:  # an empty batch
        return _finish(xc, arr, axis, valid)
    w = (jnp.arange(n) < k).astype(xc.dtype)
    y = _project_onto(_centre(xc) / eps, w, False)
    return _finish(_within(y, 0.0, 1.0), arr, axis, valid)
