"""Soft permutation matrices (soft argsort): SoftSort, NeuralSort and optimal transport;
and ``sort_with``, values carried by the optimal-transport soft permutation.

Each method returns a row-stochastic ``[..., n, n]`` matrix ``P`` whose row ``i`` is a soft
one-hot of the element that is the ``i``-th smallest (largest with ``descending``), so that
``P @ x`` tends to the sorted ``x`` as the temperature goes to 0:

* ``"softsort"`` (Prillo & Eisenschlos, 2020): ``P_i = softmax(−|sort(x)_i − x| / T)``;
* ``"neuralsort"`` (Grover et al., 2019): ``P_i = softmax(((n + 1 − 2i) x − A_x 1) / T)``
  with ``A_x = |x_j − x_k|``, the relaxation of ``tfp.math.soft_sorting_matrix``;
* ``"sinkhorn"`` (Cuturi et al., 2019): the entropic optimal transport plan between the
  squashed ``x`` and ``n`` evenly spaced sorted anchors, by ``jr.soft.sinkhorn``.

All three build the ``n × n`` matrix, so time and memory are O(n²) per row by construction
(the sort-free projections ``jr.soft.sort`` / ``jr.soft.rank`` are O(n log n)).
"""

from __future__ import annotations

import warnings
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxrelax._src import _checks, _numerics
from jaxrelax._src.soft.sinkhorn import sinkhorn

__all__ = ["permutation_matrix", "sort_with"]

Method = Literal["softsort", "neuralsort", "sinkhorn"]
_METHODS = ("softsort", "neuralsort", "sinkhorn")

#: Estimated temporaries (bytes) above which building the matrices warns at trace time.
#: Measured on CPU (float32, one row, forward + backward of ``sum(w * (P @ x))``, XLA's
#: ``memory_analysis``): SoftSort / NeuralSort ~16 n² bytes (269 / 336 MB at n = 4096,
#: 1.3 / 18 s on a loaded 2-core machine); Sinkhorn ~9 n² bytes per round, all rounds kept
#: for the reverse pass (2.95 GB at n = 4096 with 20 rounds). The limit is 256 MiB:
#: n > 4096 for SoftSort / NeuralSort, n² · num_iters > 3·10⁷ for Sinkhorn (n > ~550 at
#: 100 rounds).
LARGE_BYTES = 2**28


def _estimated_bytes(n: int, method: str, num_iters: int) -> int:
    return 9 * n * n * num_iters if method == "sinkhorn" else 16 * n * n


def permutation_matrix(
    x: ArrayLike,
    temperature: ArrayLike = 1.0,
    method: Method = "softsort",
    descending: bool = False,
    hard: bool = False,
    axis: int = -1,
    *,
    num_iters: int = 100,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Soft argsort: a row-stochastic relaxation of the matrix that sorts `x`.

    Row `i` of `P` is a soft one-hot vector over the elements of `x`, putting its mass on
    the element that is the `i`-th smallest (the `i`-th largest with `descending=True`);
    `P @ x` is a soft sort, and `P` tends to the exact sorting permutation as `T → 0`.
    With `s = sort(x)` and `A_jk = |x_j − x_k|`:

    $$
    \text{softsort:}\quad P_{ij} = \mathrm{softmax}_j\big(-|s_i - x_j| / T\big),
    \qquad
    \text{neuralsort:}\quad P_{ij} = \mathrm{softmax}_j\big(((n + 1 - 2i)\,x_j
    - (A 1)_j) / T\big)
    $$

    (NeuralSort's rows are written for the descending order, `i = 1..n`; the ascending
    matrix reverses them). `"sinkhorn"` is the entropic optimal transport plan (Cuturi et
    al. 2019) between `z = sigmoid((x − mean x) / std x)` and the anchors
    `y_i = i / (n − 1)`, with cost `(y_i − z_j)²` and entropic strength `T`, by
    `num_iters` rounds of `jr.soft.sinkhorn` (whose last, exact, normalisation is put on
    the rows); it is also nearly column-stochastic. Its costs lie in `[0, 1]` with gaps of
    order `1 / n²`, so it needs a much lower `T` (e.g. `1e-3`) than the other two, and
    more iterations as `T` falls. SoftSort and NeuralSort need no iterations and put, in
    every row, the largest weight on the exact answer at any `T` (unimodal rows, as
    `tfp.math.soft_sorting_matrix` promises).

    `hard=True` returns the exact permutation matrix (stable argsort) in the forward pass
    with the gradient of the relaxed one (straight-through, as `jr.st.straight_through`:
    the forward value is the exact matrix bit for bit).

    Ties: tied elements get equal columns, so each row that selects one of them splits its
    mass equally between them (`P @ x` is still the sorted value); the hard matrix follows
    the stable order (lower index first, also when descending). `-inf` entries are masks:
    they come first in ascending order (last in descending), as in `jnp.sort`; their rows
    are exact one-hots in index order, they get no weight in any other row, and the
    relaxation runs on the finite entries alone, with zero (finite) gradient for the
    masked ones. Other entries must be finite.

    Variable-length lists: with `where`, each row is the matrix of its `m` valid entries
    alone (`n` replaced by `m` in every formula, nothing depending on the padded length):
    its first `m` rows sort the valid entries, which stay in their own columns, and the
    padded rows (the last `n − m`) and the padded columns are 0, so that `P @ x` is the
    soft sort of the valid entries compacted to the front with 0 behind, the layout of
    `jr.soft.sort(..., where=where)`. Padded inputs (NaN and inf included) get exactly
    zero gradient; a row with no valid entry gives a zero matrix.

    Args:
      x: [..., n] values to sort along `axis`; any float dtype (kept).
      temperature: `T > 0`, a scalar; it may be traced (a traced `T <= 0` makes the
        whole output NaN).
      method: `"softsort"`, `"neuralsort"` or `"sinkhorn"`.
      descending: row 1 for the largest element instead of the smallest.
      hard: exact permutation matrix forward, relaxed gradient backward.
      axis: the axis of `x` to sort along.
      num_iters: Sinkhorn rounds (`method="sinkhorn"` only), a static int `>= 1`.
      where: optional boolean mask of the valid entries, with the shape of `x`.

    Returns:
      [..., n, n] row-stochastic matrices (rows of padded positions 0 with `where`), with
      the other axes of `x` leading in order, and the dtype of `x`.

    Examples:
      >>> x = jnp.array([2.0, -1.0, 0.5])
      >>> P = jr.soft.permutation_matrix(x, temperature=0.1)
      >>> P.round(3)
      Array([[0., 1., 0.],
             [0., 0., 1.],
             [1., 0., 0.]], dtype=float32)
      >>> (P @ x).round(3)
      Array([-1. ,  0.5,  2. ], dtype=float32)
      >>> P2 = jr.soft.permutation_matrix(x, 2.0, method="neuralsort", descending=True)
      >>> print(P2.round(2))
      [[0.66 0.03 0.31]
       [0.24 0.24 0.51]
       [0.03 0.66 0.31]]
      >>> mask = jnp.array([True, False, True])
      >>> print(jr.soft.permutation_matrix(x, 0.1, where=mask).round(3))
      [[0. 0. 1.]
       [1. 0. 0.]
       [0. 0. 0.]]

    References:
      Prillo & Eisenschlos, [SoftSort: A Continuous Relaxation for the argsort
      Operator](https://arxiv.org/abs/2006.16038), ICML 2020. Grover et al., [Stochastic
      Optimization of Sorting Networks via Continuous
      Relaxations](https://arxiv.org/abs/1903.08850), ICLR 2019. Cuturi, Teboul & Vert,
      [Differentiable Ranks and Sorting using Optimal
      Transport](https://arxiv.org/abs/1905.11885), NeurIPS 2019.

    Note:
      A deterministic relaxation: biased towards the mean of `x` as `T` grows, exact in
      the limit `T → 0` (where its gradient vanishes). Time and memory are O(n²) per row
      for every method (the output itself is `n × n`; Sinkhorn's reverse pass keeps
      `num_iters` such matrices). A warning is issued at trace time when the temporaries
      would pass 256 MiB per row (measured: ~16 n² bytes for SoftSort and NeuralSort, so
      n > 4096; ~9 n² bytes per Sinkhorn round, so n > ~550 at 100 rounds). For soft
      sorted values or ranks of long rows use `jr.soft.sort` / `jr.soft.rank`
      (O(n log n)); for quantiles `jr.soft.quantile`.
    """
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {_METHODS}, got {method!r}.")
    num_iters = _checks.check_int(num_iters, "num_iters")
    _checks.check_positive(temperature, "temperature")
    if jnp.ndim(temperature) != 0:
        raise ValueError(f"`temperature` must be a scalar, got shape {jnp.shape(temperature)}.")
    arr, axis, where_mask = _checks.event_input(x, axis, where)
    valid = _checks.traced_valid(temperature)
    xc = jnp.moveaxis(arr.astype(_checks.compute_dtype(arr.dtype)), axis, -1)
    n = xc.shape[-1]
    if _estimated_bytes(n, method, num_iters) > LARGE_BYTES:
        warnings.warn(
            f"jr.soft.permutation_matrix(method={method!r}) builds an {n} x {n} matrix per "
            "row: O(n²) time and memory (about "
            f"{_estimated_bytes(n, method, num_iters) / 2**20:.0f} MiB per row here). For soft "
            "sorted values or ranks use jr.soft.sort / jr.soft.rank (O(n log n)); for "
            "quantiles jr.soft.quantile.",
            stacklevel=2,
        )
    out_shape = (*xc.shape, n)
    if xc.size == 0:  # an empty batch
        return jnp.zeros(out_shape, arr.dtype)
    t = jnp.asarray(temperature, xc.dtype)

    if where_mask is None:
        pad = None
        masked = jnp.isneginf(xc)  # [..., n] columns
        count = n  # valid entries per row
    else:
        pad = ~where_mask
        xc = jnp.where(where_mask, xc, 0.0)  # padded inputs enter no arithmetic
        masked = jnp.isneginf(xc)
        count = jnp.sum(where_mask, axis=-1, keepdims=True, dtype=jnp.int32)
    num_masked = jnp.sum(masked, axis=-1, keepdims=True)  # k
    nf = (count - num_masked).astype(xc.dtype)[..., None]  # finite count, [..., 1, 1]
    rows = jnp.arange(n)
    # Rows that select a masked element: the first k ascending, the last k (of the valid
    # ones) descending.
    if descending:
        row_masked = rows >= count - num_masked  # [..., n]
        if pad is not None:
            row_masked = row_masked & (rows < count)
    else:
        row_masked = rows < num_masked
    r = (rows - (0 if descending else num_masked)).astype(xc.dtype)[..., None]  # finite rank
    # Columns out of the relaxation: the -inf masks, and the padded entries.
    out = masked if pad is None else masked | pad
    # Masked entries are replaced by the finite mid-range (no inf in any arithmetic; their
    # columns are masked below), and rows are centred (all methods are shift-invariant).
    lo = jnp.min(jnp.where(out, jnp.inf, xc), axis=-1, keepdims=True)
    hi = jnp.max(jnp.where(out, -jnp.inf, xc), axis=-1, keepdims=True)
    mid = _numerics.sg(jnp.where(jnp.isfinite(lo), 0.5 * lo + 0.5 * hi, 0.0))
    z = jnp.where(out, 0.0, xc - mid)
    zj = z[..., None, :]  # columns
    col_mask = out[..., None, :]
    # Rows that select nothing: the padded positions (the last n − m rows).
    row_out = row_masked if pad is None else row_masked | (rows >= count)

    if method == "softsort":
        # The sorted finite values, in row order (the r-th smallest, or largest).
        fin_sorted = _numerics.sort(jnp.where(out, jnp.inf, z))  # finite first
        ri = r[..., 0]
        idx = (nf[..., 0] - 1 - ri) if descending else ri
        idx = jnp.clip(idx.astype(jnp.int32), 0, n - 1)
        s = jnp.where(row_out, 0.0, jnp.take_along_axis(fin_sorted, idx, axis=-1))
        logits = -jnp.abs(s[..., :, None] - zj)
    elif method == "neuralsort":
        b = jnp.sum(jnp.where(col_mask, 0.0, jnp.abs(z[..., :, None] - zj)), axis=-1)
        # Row of the r-th (0-based) finite element: ascending (2r + 1 − n_f) x − A1,
        # descending (n_f − 1 − 2r) x − A1 (Grover et al.'s n + 1 − 2i with i = r + 1).
        coef = nf - 1 - 2 * r if descending else 2 * r + 1 - nf
        logits = coef * zj - b[..., None, :]
    else:
        cnt = jnp.maximum(nf[..., 0], 1)  # a fully masked row: all rows are exact
        mean = jnp.sum(z, axis=-1, keepdims=True) / cnt
        var = jnp.sum(jnp.where(out, 0.0, (z - mean) ** 2), axis=-1, keepdims=True) / cnt
        # A row whose finite entries are all equal has no scale to standardise by: its
        # squashed values are all 1/2, and the standardisation passes no gradient there.
        # The map is scale-invariant, so its derivative along every ray into the tie is
        # 0 (for n = 2 it is 0 on both sides); dividing by sqrt(var + tiny) instead gave
        # 1/sqrt(tiny) ~ 1e19. Double `where`: no inf or NaN in either branch.
        spread = var > 0
        std = jnp.sqrt(jnp.where(spread, var, 1.0))
        zs = jax.nn.sigmoid(jnp.where(spread, (z - mean) / std, 0.0))
        y = r / jnp.maximum(nf - 1, 1)
        y = 1.0 - y if descending else y
        logits = -((y - zs[..., None, :]) ** 2)

    mask = col_mask | row_out[..., :, None]
    if method == "sinkhorn":
        # Masked (and padded) rows are matched to masked (and padded) columns, a square
        # block apart from the finite one (then made exact, or zero, below).
        both = col_mask & row_out[..., :, None]
        la = jnp.where(both, 0.0, jnp.where(mask, -jnp.inf, logits))
        # jr.soft.sinkhorn ends on an exact column normalisation: transpose in and out,
        # so that it is the rows of P that sum to one exactly.
        p = jnp.swapaxes(sinkhorn(jnp.swapaxes(la, -1, -2), t, num_iters), -1, -2)
        # Exactly row-stochastic, whatever the rounding of the last normalisation.
        tot = jnp.sum(p, axis=-1, keepdims=True)
        p = p / jnp.where(tot > 0, tot, 1.0)
    else:
        p = _numerics.softmax(jnp.where(col_mask, -jnp.inf, logits), t, axis=-1)

    if pad is None:
        perm = _numerics.argsort(xc, descending=descending)  # stable: ties in index order
    else:  # the valid entries first, in the same order; the padded ones last
        key = jnp.where(pad, jnp.nan, -xc if descending else xc)
        perm = _numerics.argsort(key)
    p_hard = jax.nn.one_hot(perm, n, dtype=xc.dtype)
    p = jnp.where(row_masked[..., :, None], p_hard, p)
    if pad is not None:  # padded rows and columns are 0
        zero = (rows >= count)[..., :, None] | pad[..., None, :]
        p_hard = jnp.where(zero, 0.0, p_hard)
        p = jnp.where(zero, 0.0, p)
    if hard:
        p = _numerics.straight_through(p_hard, p)
    return _checks.poison(p.astype(arr.dtype), valid)


def sort_with(
    x: ArrayLike,
    values: ArrayLike,
    regularization_strength: ArrayLike = 1.0,
    descending: bool = False,
    axis: int = -1,
    *,
    num_iters: int = 100,
) -> jax.Array:
    r"""Sorts `values` by the soft ranks of `x`: `P @ values` with an OT soft permutation.

    `P = jr.soft.permutation_matrix(x, ε, method="sinkhorn")` is the entropic optimal
    transport plan between the squashed `x` and `n` sorted anchors (Cuturi, Teboul & Vert
    2019), scaled to be row-stochastic; output `i` is the convex combination
    `Σ_j P_ij values_j` of the values whose keys `x_j` are softly the `i`-th smallest
    (largest with `descending`) -- the semantics of `ott.tools.soft_sort.sort_with`
    (inputs sorted by a criterion). As `ε → 0` it tends to `values[argsort(x)]`; as
    `ε → ∞` every output tends to the mean of `values`. Ties in `x` average the tied
    values; `-inf` keys are masks, placed first (last when descending) with their values
    carried exactly.

    Args:
      x: [..., n] sort keys; any float dtype.
      values: the values to sort, shaped `x.shape` followed by any number of feature axes
        (`x.shape + (d, ...)`); their dtype is kept.
      regularization_strength: the entropic strength `ε > 0` of the transport, on costs
        in `[0, 1]`: `1e-3` is nearly hard for a few dozen entries. A scalar; it may be
        traced (`<= 0` gives NaN).
      descending: sort by decreasing `x`.
      axis: the axis of `x` (and of `values`) to sort along.
      num_iters: Sinkhorn rounds, a static int `>= 1` (more are needed as `ε` falls).

    Returns:
      `values` softly sorted along `axis`, with its shape and dtype.

    Examples:
      >>> x = jnp.array([0.3, -2.0, 1.5])
      >>> v = jnp.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
      >>> jr.soft.sort_with(x, v, regularization_strength=1e-3).round(1)
      Array([[ 2. , 20. ],
             [ 1. , 10.1],
             [ 3. , 30. ]], dtype=float32)

    References:
      Cuturi, Teboul & Vert, [Differentiable Ranks and Sorting using Optimal
      Transport](https://arxiv.org/abs/1905.11885), NeurIPS 2019.

    Note:
      Deterministic, biased towards the mean for large `ε`. O(n²) time and memory per row
      (the transport plan), times `num_iters` in the reverse pass; see
      `jr.soft.permutation_matrix` for the size above which it warns.
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
