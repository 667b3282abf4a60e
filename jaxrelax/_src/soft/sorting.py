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

Variable-length rows (``where=``) are solved as the lists of their valid entries alone:
the valid entries are compacted to the front of the row, and the tail is given values that
pool-adjacent-violators never merges with the front, so that the isotonic problem splits
exactly into the front's (with the target of an m-vector) and the tail's (discarded).
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


def _prepare(x, regularization_strength, regularization, axis, where=None):
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
    arr, axis, mask = _checks.event_input(x, axis, where)
    xc = jnp.moveaxis(arr.astype(_checks.compute_dtype(arr.dtype)), axis, -1)
    if xc.dtype == jnp.float32 and xc.shape[-1] > 2**24:
        raise ValueError(
            f"`x` has {xc.shape[-1]} entries along `axis`; float32 supports at most 2**24 "
            "(block sizes are counted in float32). Pass float64 input with x64 enabled."
        )
    eps = jnp.asarray(regularization_strength, xc.dtype)
    # A traced ε <= 0 (or NaN) poisons the output; a concrete one was refused above.
    valid = _checks.traced_valid(regularization_strength)
    return arr, xc, axis, eps, valid, mask


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
    s = _numerics.take_last(z, perm)
    u = _isotonic.project(s, jnp.broadcast_to(w, s.shape), kl)
    return _numerics.unpermute_last(u, perm)


# ---------------------------------------------------------------------------------
# Variable-length rows (``where=``): every op runs on the m valid entries of a row alone.
#
# The valid entries are compacted to the front of the row in sorted order (one stable
# argsort of a key that is NaN, so last, at the padded entries), and the isotonic problem
# of the front is solved with the target of an m-vector (``ρ = (m, ..., 1)``, ``k`` ones
# among m). The n − m tail entries are given values that PAV never pools with the front:
# the isotonic problem then splits exactly into the front's and the tail's, whatever the
# tail (the solution is decreasing across the seam), so the front's solution is that of
# the unpadded row and the tail's is discarded. Padded inputs enter no arithmetic (they
# are replaced by 0 before anything is computed: no NaN from a NaN or inf pad, in values
# or gradients), and every output at a padded position is the fill value 0 with exactly
# zero gradient.


def _front(mask):
    """The number m [..., 1] (int32) of valid entries of each row, and the flags
    [..., n] of the first m positions (where the compacted valid entries lie)."""
    m = jnp.sum(mask, axis=-1, keepdims=True, dtype=jnp.int32)
    return m, jnp.arange(mask.shape[-1], dtype=jnp.int32) < m


def _compact(x, mask, descending):
    """The stable permutation [..., n] that lists the valid entries of ``x`` first, sorted
    (decreasing with ``descending``; ties in index order), then the padded ones."""
    key = jnp.where(mask, -x if descending else x, jnp.nan)  # NaN sorts last
    return _numerics.argsort(_numerics.sg(key))


def _masked_centre(xc, mask):
    """``_centre`` over the valid entries (padded ones, and the rows of none, give 0)."""
    hi = jnp.max(jnp.where(mask, xc, -jnp.inf), axis=-1, keepdims=True)
    lo = jnp.min(jnp.where(mask, xc, jnp.inf), axis=-1, keepdims=True)
    mid = hi * 0.5 + lo * 0.5
    mid = jnp.where(jnp.isfinite(mid), mid, 0.0)
    return jnp.where(mask, xc - _numerics.sg(mid), 0.0)


def _separate(s, w, front, m):
    """``(s, w)`` [..., n] with the entries past the front replaced by the last front
    entry's ``w`` and an ``s`` far below: PAV never pools them with the front.

    The front's block values lie in ``[min(s − w), max(s − w)]`` over the front, which is
    at least ``−(S + W)`` with ``S, W`` the front's largest ``|s|``, ``|w|``; the tail's
    value ``s_last − G − w_last`` with ``G = 1 + 4 (S + W)`` is at most ``−1 − 3 (S + W)``:
    below by ``1 + 2 (S + W)``, far more than any rounding of the comparisons."""
    s0, w0 = _numerics.sg(s), _numerics.sg(w)
    last = jnp.maximum(m - 1, 0)
    s_last = jnp.take_along_axis(s0, last, axis=-1)
    w_last = jnp.take_along_axis(w0, last, axis=-1)
    big = jnp.max(jnp.where(front, jnp.abs(s0), 0.0), axis=-1, keepdims=True) + jnp.max(
        jnp.where(front, jnp.abs(w0), 0.0), axis=-1, keepdims=True
    )
    top = jnp.finfo(s0.dtype).max / 4
    tail = jnp.clip(s_last - jnp.minimum(1.0 + 4.0 * big, top), -top, top)
    return jnp.where(front, s, tail), jnp.where(front, w, w_last)


def _project_front(s, w, front, m, kl):
    """``_isotonic.project`` of the front of each row alone (the tail's output is garbage)."""
    s, w = _separate(s, w, front, m)
    return _isotonic.project(s, w, kl)


def _masked_project_onto(z, mask, w, kl):
    """``_project_onto`` of the valid entries of each row alone; ``w(m, front)`` gives the
    decreasing target on the front. Outputs at padded positions are garbage."""
    m, front = _front(mask)
    perm = _compact(z, mask, descending=True)
    s = _numerics.take_last(z, perm)
    u = _project_front(s, w(m, front).astype(s.dtype), front, m, kl)
    return _numerics.unpermute_last(u, perm), m


def sort(
    x: ArrayLike,
    regularization_strength: ArrayLike = 1.0,
    regularization: Regularization = "l2",
    descending: bool = False,
    axis: int = -1,
    *,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Soft sort: the projection of `ρ / ε` onto the permutahedron of `x`.

    For `descending=True`, with `ρ = (n, n−1, ..., 1)` and `ε` the regularization
    strength,

    $$
    s_\varepsilon(x) = \arg\min_{y \in \mathcal P(x)} \tfrac12 \|y - \rho/\varepsilon\|^2
    $$

    (`"l2"`), or, with `"kl"`, the log of the KL projection of `exp(ρ / ε)` onto
    `P(exp(x))`. The ascending sort is `−s_ε(−x)`. As `ε → 0` the result tends to the
    hard sort; as `ε → ∞` every entry tends to the mean of `x` (`"l2"`) or, with `"kl"`,
    to `log mean exp(x)` (descending) or `−log mean exp(−x)` (ascending). The `"l2"`
    result is piecewise linear in `x` and its gradient is the block average of the
    sorted positions; at a tie (a vertex of the permutahedron) it is that of the pooled
    block, as in Blondel et al.'s reference solver. `sort(x + c) = sort(x) + c`. Inputs
    must be finite; an empty event axis is a `ValueError`.

    Variable-length lists: with `where`, each row is sorted as the list of its `m`
    valid entries alone (`ρ = (m, ..., 1)`, so nothing depends on the padded length).
    The `m` soft-sorted values are compacted to the front of the row, in sorted order
    (Rax's layout), and the last `n − m` positions hold the fill value 0, with zero
    gradient; padded inputs (NaN and inf included) get exactly zero gradient. A row with
    no valid entry is all 0.

    Args:
      x: [..., n] values; any float dtype (kept).
      regularization_strength: `ε > 0`, a scalar; it may be traced (a traced `ε <= 0`
        makes the whole output NaN).
      regularization: `"l2"` (Euclidean projection) or `"kl"` (entropic).
      descending: sort in decreasing order.
      axis: the axis to sort along.
      where: optional boolean mask of the valid entries, with the shape of `x`.

    Returns:
      Soft-sorted values with the shape and dtype of `x`.

    Examples:
      >>> x = jnp.array([5.0, 1.0, 2.0])
      >>> jr.soft.sort(x, regularization_strength=1.0).round(4)
      Array([1.6667, 2.6667, 3.6667], dtype=float32)
      >>> jr.soft.sort(x, regularization_strength=0.1)
      Array([1., 2., 5.], dtype=float32)
      >>> xp = jnp.array([5.0, jnp.nan, 1.0, 2.0])  # a padded list
      >>> jr.soft.sort(xp, where=jnp.array([True, False, True, True])).round(4)
      Array([1.6667, 2.6667, 3.6667, 0.    ], dtype=float32)

    References:
      Blondel et al., [Fast Differentiable Sorting and Ranking](https://arxiv.org/abs/2002.08871),
      ICML 2020.
    """
    arr, xc, axis, eps, valid, mask = _prepare(
        x, regularization_strength, regularization, axis, where
    )
    if xc.size == 0:  # an empty batch
        return _finish(xc, arr, axis, valid)
    n = xc.shape[-1]
    kl = regularization == "kl"
    if mask is not None:
        return _finish(_masked_sort(xc, mask, eps, kl, descending), arr, axis, valid)
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


def _masked_sort(xc, mask, eps, kl, descending):
    """``sort`` of the valid entries of each row, compacted to the front; 0 behind."""
    m, front = _front(mask)
    xv = jnp.where(mask, xc, 0.0)
    # The valid entries first, in output order: w = the front sorted decreasingly.
    xs = jnp.take_along_axis(xv, _compact(xv, mask, descending), axis=-1)
    w = xs if descending else -xs
    pos = jnp.arange(xc.shape[-1], dtype=jnp.int32)
    rho = (m - pos).astype(xc.dtype) / eps  # (m, ..., 1) on the front
    y = _project_front(rho, w, front, m, kl)
    y = y if descending else -y
    first = xs[..., :1]
    last = jnp.take_along_axis(xs, jnp.maximum(m - 1, 0), axis=-1)
    y = _within(y, last, first) if descending else _within(y, first, last)
    return jnp.where(front, y, 0.0)


def rank(
    x: ArrayLike,
    regularization_strength: ArrayLike = 1.0,
    regularization: Regularization = "l2",
    descending: bool = False,
    axis: int = -1,
    *,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Soft ranks (1-based): the projection of `x / ε` onto the permutahedron of `ρ`.

    With `ρ = (n, n−1, ..., 1)` and `ε` the regularization strength,

    $$
    r_\varepsilon(x) = \arg\min_{y \in \mathcal P(\rho)} \tfrac12 \|y - x/\varepsilon\|^2
    $$

    (`"l2"`), or, with `"kl"`, the KL projection of `exp(x / ε)` onto `P(ρ)` (positive
    ranks). Rank 1 is the smallest entry, or the largest with `descending=True` (`x`
    replaced by `−x`). The ranks always sum to `n (n + 1) / 2`; as `ε → 0` they tend to
    the hard ranks, as `ε → ∞` to `(n + 1) / 2`. Ranks are shift-invariant
    (`rank(x + c) = rank(x)`): each row is centred before it is divided by `ε`, so equal
    entries get equal ranks at any magnitude. At ties (e.g. evenly spaced `x` with `ε`
    equal to the spacing) the derivative is that of the pooled block, as in the
    reference solver. Inputs must be finite; an empty event axis is a `ValueError`.

    Variable-length lists: with `where`, each valid entry gets its soft rank among the
    `m` valid entries of its row only (in `[1, m]`, summing to `m (m + 1) / 2`, nothing
    depending on the padded length), at its own position; padded positions hold the fill
    value 0, and padded inputs (NaN and inf included) get exactly zero gradient. A row
    with no valid entry is all 0.

    Args:
      x: [..., n] values; any float dtype (kept).
      regularization_strength: `ε > 0`, a scalar; it may be traced (a traced `ε <= 0`
        makes the whole output NaN).
      regularization: `"l2"` (Euclidean projection) or `"kl"` (entropic).
      descending: rank 1 for the largest entry instead of the smallest.
      axis: the axis to rank along.
      where: optional boolean mask of the valid entries, with the shape of `x`.

    Returns:
      Soft ranks with the shape and dtype of `x`.

    Examples:
      >>> x = jnp.array([5.0, 1.0, 2.0])
      >>> jr.soft.rank(x, regularization_strength=2.0)
      Array([3.  , 1.25, 1.75], dtype=float32)
      >>> jr.soft.rank(x, regularization_strength=0.1, descending=True)
      Array([1., 3., 2.], dtype=float32)
      >>> xp = jnp.array([5.0, 1.0, 0.0, 2.0])  # padded at index 2
      >>> jr.soft.rank(xp, 2.0, where=jnp.array([True, True, False, True]))
      Array([3.  , 1.25, 0.  , 1.75], dtype=float32)

    References:
      Blondel et al., [Fast Differentiable Sorting and Ranking](https://arxiv.org/abs/2002.08871),
      ICML 2020.
    """
    arr, xc, axis, eps, valid, mask = _prepare(
        x, regularization_strength, regularization, axis, where
    )
    if xc.size == 0:  # an empty batch
        return _finish(xc, arr, axis, valid)
    n = xc.shape[-1]
    kl = regularization == "kl"
    if mask is not None:
        z = _masked_centre(-xc if descending else xc, mask) / eps
        pos = jnp.arange(n, dtype=jnp.int32)

        def target(m, front):  # ρ = (m, ..., 1) on the front (1 behind: log-safe)
            r = jnp.where(front, m - pos, 1).astype(xc.dtype)
            return jnp.log(r) if kl else r

        y, m = _masked_project_onto(z, mask, target, kl)
        y = jnp.exp(y) if kl else y
        y = _within(y, 1.0, m.astype(xc.dtype))
        return _finish(jnp.where(mask, y, 0.0), arr, axis, valid)
    z = _centre(-xc if descending else xc) / eps
    rho = jnp.arange(n, 0, -1, dtype=xc.dtype)
    if kl:
        y = jnp.exp(_project_onto(z, jnp.log(rho), True))
    else:
        y = _project_onto(z, rho, False)
    return _finish(_within(y, 1.0, float(n)), arr, axis, valid)


def topk_mask(
    x: ArrayLike,
    k: int,
    regularization_strength: ArrayLike = 1.0,
    axis: int = -1,
    *,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Relaxed k-hot mask of the `k` largest entries: a projection onto the hypersimplex.

    $$
    m_\varepsilon(x) = \arg\min_{y \in [0, 1]^n,\ \sum_i y_i = k}
        \tfrac12 \|y - x/\varepsilon\|^2,
    $$

    the Euclidean projection of `x / ε` onto the permutahedron of `(1, ..., 1, 0, ..., 0)`
    (`k` ones), solved exactly by sorting and isotonic regression. The mask sums to `k`,
    has entries in `[0, 1]`, equals the hard top-k mask once `ε` is below the gap between
    the k-th and (k+1)-th largest entries (and tends to it as `ε → 0`), and tends to
    `k / n` everywhere as `ε → ∞`. It is shift-invariant (rows are centred before they
    are divided by `ε`): equal entries get equal mask values at any magnitude.

    Variable-length lists: with `where`, the `k` entries are chosen among the `m` valid
    entries of each row only (the mask of the unpadded row, at the entries' own
    positions; all valid entries get 1 where `m <= k`); padded positions hold the fill
    value 0, and padded inputs (NaN and inf included) get exactly zero gradient. A row
    with no valid entry is all 0.

    Args:
      x: [..., n] scores; any float dtype (kept).
      k: the number of entries to select, a Python int with `1 <= k <= n`.
      regularization_strength: `ε > 0`, a scalar; it may be traced (a traced `ε <= 0`
        makes the whole output NaN).
      axis: the axis to select along.
      where: optional boolean mask of the valid entries, with the shape of `x`.

    Returns:
      The relaxed mask, with the shape and dtype of `x`.

    Examples:
      >>> x = jnp.array([0.1, 2.0, -1.0, 1.5])
      >>> jr.soft.topk_mask(x, 2, regularization_strength=2.0).round(4)
      Array([0.15, 1.  , 0.  , 0.85], dtype=float32)
      >>> jr.soft.topk_mask(x, 2, regularization_strength=0.1)
      Array([0., 1., 0., 1.], dtype=float32)
      >>> jr.soft.topk_mask(x, 2, 0.1, where=jnp.array([True, False, True, True]))
      Array([1., 0., 0., 1.], dtype=float32)

    References:
      Blondel et al., [Fast Differentiable Sorting and Ranking](https://arxiv.org/abs/2002.08871),
      ICML 2020.
    """
    try:
        if isinstance(k, bool):
            raise TypeError
        k = operator.index(k)
    except TypeError:
        raise TypeError(f"`k` must be a Python int, got {k!r}.") from None
    arr, xc, axis, eps, valid, mask = _prepare(x, regularization_strength, "l2", axis, where)
    n = xc.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"`k` must satisfy 1 <= k <= n = {n}, got k={k}.")
    if k == n:
        ones = jnp.ones_like(xc) if mask is None else mask.astype(xc.dtype)
        return _finish(ones, arr, axis, valid)
    if xc.size == 0:  # an empty batch
        return _finish(xc, arr, axis, valid)
    if mask is not None:
        pos = jnp.arange(n, dtype=jnp.int32)

        def target(m, front):  # min(k, m) ones on the front
            return pos < jnp.minimum(m, k)

        y, _ = _masked_project_onto(_masked_centre(xc, mask) / eps, mask, target, False)
        return _finish(jnp.where(mask, _within(y, 0.0, 1.0), 0.0), arr, axis, valid)
    w = (jnp.arange(n) < k).astype(xc.dtype)
    y = _project_onto(_centre(xc) / eps, w, False)
    return _finish(_within(y, 0.0, 1.0), arr, axis, valid)
