"""Shared numerics: the one home of the stable kernels and autodiff idioms every
subpackage uses.

* `sg` — ``jax.lax.stop_gradient`` under one name; `straight_through` —
  forward ``hard``, derivatives of ``soft``, bit-exact; `magic_box_minus_one` —
  the DiCE magic box; `first_order_only` / `no_derivative` — a second
  derivative (or any derivative) raises ``NotImplementedError`` with the caller's message;

* `finite_max` — the "subtract the finite maximum" shift (stop-gradient'ed; 0 for a
  row of only ``-inf``), which keeps huge logits and tiny temperatures finite;
* `scale_and_shift` — ``x / T`` shifted by its finite maximum along an axis: the
  one place every shift-invariant map (softmax, Sinkhorn, successive softmax) divides by
  its temperature, exact for any ``T`` that broadcasts to ``x``;
* `softmax` / `masked_log_softmax` / `safe_logsumexp` — masked
  (``-inf`` = probability 0) softmax, log-softmax and log-sum-exp with no NaN in values or
  gradients, also for a fully masked row; `log_add`, the elementwise pair version;
* `one_hot_argmax` — exact one-hot arg max that never selects a masked entry;
* `hungarian` — the exact linear assignment (``optax.assignment``) with ``-inf``
  scores as forbidden pairs, for ``jr.st.assignment`` and hard Gumbel-Sinkhorn;
* `sort` / `argsort` — ``jnp.sort`` / stable ``jnp.argsort`` (same order, bits
  and gradient), on CPU as one sort of order-preserving integer keys (~5x faster);
  `top_k_indices` — the first ``k`` of the descending `argsort`, by ``lax.top_k``'s
  partial selection where that is faster.

Functions here do no input checking (that is ``_checks.py``); they take arrays already in
the compute dtype.
"""

from __future__ import annotations

import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.typing import ArrayLike

__all__ = [
    "argsort",
    "finite_max",
    "first_order_only",
    "hungarian",
    "log_add",
    "magic_box_minus_one",
    "masked_log_softmax",
    "nan_rows",
    "no_derivative",
    "one_hot_argmax",
    "safe_logsumexp",
    "scale_and_shift",
    "sg",
    "softmax",
    "sort",
    "straight_through",
    "top_k_indices",
]

sg = jax.lax.stop_gradient


def straight_through(hard: jax.Array, soft: jax.Array) -> jax.Array:
    """Forward value ``hard`` (in ``soft``'s dtype), derivatives of every order those of
    ``soft``.

    Written ``(soft − sg(soft)) + sg(hard)``, which is bit-exact (``soft − soft`` is
    exactly 0 for finite ``soft``), unlike the textbook ``soft + sg(hard − soft)`` that
    rounds. A non-finite ``soft`` makes the value NaN: callers replace it first (a
    ``-inf`` mask enters as 0). ``hard`` and ``soft`` have the same shape (unchecked;
    ``jr.st.straight_through`` checks it).
    """
    return (soft - sg(soft)) + sg(hard).astype(soft.dtype)


def magic_box_minus_one(logp: jax.Array) -> jax.Array:
    """``exp(logp − stop_gradient(logp)) − 1``: exactly 0, first derivative ``∇logp``
    and second ``∇logp ∇logpᵀ + ∇²logp`` (DiCE, Foerster et al. 2018).

    ``Σ w · magic_box_minus_one(log p(x))`` with a live weight ``w`` (``f(x, *args)``,
    ``x`` stop-gradient'ed) is a surrogate whose derivatives of every order w.r.t. the
    parameters, and mixed with ``args``, are unbiased score-function estimates, and whose
    first derivative w.r.t. ``args`` is 0 (``value`` already carries ``E[∂f/∂args]``).
    """
    return jnp.expm1(logp - sg(logp))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def no_derivative(value: jax.Array, inputs: tuple[jax.Array, ...], message: str) -> jax.Array:
    """``value`` itself; differentiating it, in ``value`` or in any of ``inputs`` (what
    it was computed from), raises ``NotImplementedError(message)``.

    For a quantity that already is a derivative and has none of its own (a backward
    pass by finite differences of solver outputs): without the guard, autodiff through
    it would return a silent 0. The rule is called only for a tangent that is not a
    symbolic zero, so a first derivative that does not reach it is unaffected.
    """
    del inputs, message
    return value


@no_derivative.defjvp
def _no_derivative_jvp(message, primals, tangents):
    del primals, tangents
    raise NotImplementedError(message)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def first_order_only(x: jax.Array, message: str) -> jax.Array:
    """The identity, with a first derivative and no second one: differentiating it twice
    raises ``NotImplementedError(message)`` (instead of the silent 0 of a surrogate that
    is linear in ``x``)."""
    return x


@first_order_only.defjvp
def _first_order_only_jvp(message, primals, tangents):
    (x,), (t,) = primals, tangents
    return first_order_only(x, message), t * no_derivative(jnp.ones_like(x), (x,), message)


def finite_max(x: jax.Array, axis: int | tuple[int, ...] = -1) -> jax.Array:
    """The maximum of ``x`` along ``axis`` (kept), stop-gradient'ed; 0 where it is not
    finite (a row of only ``-inf``), so that ``x − finite_max(x)`` is exact and safe."""
    m = jnp.max(x, axis=axis, keepdims=True)
    return sg(jnp.where(jnp.isfinite(m), m, 0.0))


def scale_and_shift(
    x: jax.Array, temperature: ArrayLike, axis: int | tuple[int, ...] = -1
) -> jax.Array:
    """``x / T − c``, with ``c`` the (stop-gradient'ed) finite maximum of ``x / T`` along
    ``axis``: the input of any map invariant to a shift along ``axis`` (softmax, a
    Sinkhorn row normalisation), exact for every ``T`` that broadcasts to ``x``.

    When ``T`` is constant along ``axis`` (a scalar, or size 1 there) the shift is taken
    before dividing, ``(x − max x) / T``, which is the same number and keeps huge ``x``
    with tiny ``T`` finite. When ``T`` varies along ``axis``, shifting first would change
    the result (``(x − m) / T_i`` is not ``x / T_i`` plus a constant), so ``x / T`` is
    formed first and then shifted; a ratio past the dtype's range is clamped to it
    (finite, zero gradient there). ``-inf`` entries (masks) stay ``-inf``.
    """
    t = jnp.asarray(temperature, x.dtype)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(a % x.ndim for a in axes)
    tshape = (1,) * (x.ndim - t.ndim) + t.shape
    if all(tshape[a] == 1 for a in axes):
        return (x - finite_max(x, axes)) / t
    big = jnp.finfo(x.dtype).max
    z = jnp.where(jnp.isneginf(x), -jnp.inf, jnp.clip(x / t, -big, big))
    return z - finite_max(z, axes)


def nan_rows(x: jax.Array, axis: int = -1) -> jax.Array:
    """A factor, NaN for the slices of ``x`` along ``axis`` (kept) holding a NaN, else 1.

    For kernels that treat non-finite entries as masks: ``x * f`` on the way in makes a
    NaN slice's gradient NaN (the product's transpose multiplies by NaN, whatever the
    masks do after it), ``out * f`` on the way out makes its value NaN, never ``-inf``.
    """
    bad = jnp.any(jnp.isnan(sg(x)), axis=axis, keepdims=True)
    return jnp.where(bad, jnp.nan, 1.0).astype(x.dtype)


def softmax(x: jax.Array, temperature: ArrayLike, axis: int) -> jax.Array:
    """Stable softmax(x / T) along ``axis``; all-masked rows give 0 (zero gradient)."""
    all_masked = jnp.max(x, axis=axis, keepdims=True) == -jnp.inf
    z = scale_and_shift(x, temperature, axis)
    # A row of only -inf (fully masked) has no distribution: we return zeros there,
    # with zero gradient, instead of NaN. Replace its entries before the softmax so
    # that no NaN appears in either branch of the `where` (or in its gradient).
    z = jnp.where(all_masked, 0.0, z)
    p = jax.nn.softmax(z, axis=axis)
    return jnp.where(all_masked, 0.0, p)


def masked_log_softmax(logits: jax.Array, axis: int = -1) -> jax.Array:
    """``log_softmax(logits)`` along ``axis``; ``-inf`` logits are masks, kept at ``-inf``
    with no NaN in the gradient (a fully masked row is all ``-inf``)."""
    mask = jnp.isneginf(logits)
    z = jnp.where(mask, -jnp.inf, logits - finite_max(logits, axis))
    lse = jax.nn.logsumexp(z, axis=axis, keepdims=True)
    lse = jnp.where(jnp.isfinite(lse), lse, 0.0)
    return jnp.where(mask, -jnp.inf, z - lse)


def safe_logsumexp(x: jax.Array, axis: int, empty: float = 0.0) -> jax.Array:
    """``logsumexp`` along ``axis`` (kept); an all ``-inf`` slice gives ``empty``.

    The gradient stays finite (zero) for an empty slice. ``empty=0`` (the default) keeps
    ``x − lse`` at ``-inf`` there instead of NaN; ``empty=-inf`` is the exact value.
    """
    m = finite_max(x, axis)
    s = jnp.sum(jnp.exp(x - m), axis=axis, keepdims=True)
    ok = s > 0
    return jnp.where(ok, jnp.log(jnp.where(ok, s, 1.0)) + m, empty)


def log_add(a: jax.Array, b: jax.Array) -> jax.Array:
    """``log(exp(a) + exp(b))`` elementwise, exact at ``-inf`` with a NaN-free gradient.

    ``jnp.logaddexp(-inf, -inf)`` has a NaN derivative; here the shift is the
    stop-gradient'ed finite maximum and the log is guarded, so a pair of ``-inf`` gives
    ``-inf`` with zero gradient, at every order. Associative, so it can drive a
    ``lax.associative_scan`` (a cumulative log-sum-exp).
    """
    m = sg(jnp.maximum(a, b))
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    s = jnp.exp(a - m) + jnp.exp(b - m)
    ok = s > 0
    return jnp.where(ok, jnp.log(jnp.where(ok, s, 1.0)) + m, -jnp.inf)


def one_hot_argmax(x: jax.Array, axis: int) -> jax.Array:
    """Exact one-hot arg max along ``axis`` (zeros for a fully masked row).

    A ``-inf`` entry is never selected: a row with a finite entry picks a finite one,
    and a row of only ``-inf`` gives all zeros.
    """
    idx = jnp.argmax(x, axis=axis)
    hard = jax.nn.one_hot(idx, x.shape[axis], dtype=x.dtype, axis=axis)
    all_masked = jnp.all(jnp.isneginf(x), axis=axis, keepdims=True)
    return jnp.where(all_masked, 0.0, hard).astype(x.dtype)


def _mask_forbidden(scores: jax.Array) -> jax.Array:
    """2-D ``scores`` with non-finite entries replaced by finite stand-ins.

    ``-inf`` (and NaN) become a penalty low enough that an assignment with fewer such
    entries always scores more than one with more, so one avoiding them all is chosen
    whenever it exists; ties are then broken by the finite scores. ``+inf`` becomes the
    mirror-image bonus (as many as possible are used).
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


@jax.jit
def hungarian(scores: jax.Array) -> jax.Array:
    """Exact max-score 0/1 assignment matrices of [..., n, m] ``scores`` (no gradient).

    ``-inf`` scores are forbidden pairs (used only when no assignment avoids them), by
    ``optax.assignment.hungarian_algorithm``; leading axes are mapped with ``vmap``.
    Jitted: one compile per shape and dtype, also for eager callers.
    """
    scores = sg(scores)
    if scores.size == 0:
        return jnp.zeros(scores.shape, scores.dtype)

    def solve(sc):
        rows, cols = optax.assignment.hungarian_algorithm(-_mask_forbidden(sc))
        return jnp.zeros(sc.shape, sc.dtype).at[rows, cols].set(1.0)

    flat = scores.reshape((-1, *scores.shape[-2:]))
    return jax.vmap(solve)(flat).reshape(scores.shape)


# --------------------------------------------------------------------------------------
# Sorting. XLA's CPU sort is fast only for ONE operand of integer type: float keys go
# through a NaN-aware comparator and a second operand (an index payload, ``num_keys=1``)
# through its generic comparator, both ~5x slower. On CPU, keys are therefore mapped to
# order-preserving unsigned integers and the argsort sorts one integer per element, the
# key in the high bits and the position in the low bits. Other platforms use
# ``jnp.sort`` / ``jnp.argsort`` (``lax.platform_dependent``; the branch not taken is
# not compiled).

# Unsigned integer dtype of each key width, in bytes.
_UINT = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint64}


def _enable_x64():
    """``jax.enable_x64(True)`` (``jax.experimental.enable_x64()`` before jax 0.8)."""
    ctx = getattr(jax, "enable_x64", None)
    if ctx is None:  # pragma: no cover - jax < 0.8
        ctx = importlib.import_module("jax.experimental").enable_x64
    return ctx(True)


def _canonical_ties(x: jax.Array) -> jax.Array:
    """Float ``x`` with ``-0.0`` made ``+0.0`` and every NaN one positive NaN: the values
    ``jnp.sort`` ties, made equal bit for bit."""
    x = jnp.where(x == 0, jnp.zeros_like(x), x)
    return jnp.where(jnp.isnan(x), jnp.full_like(x, jnp.nan), x)


def _sort_key(x: jax.Array) -> jax.Array:
    """Unsigned integer keys of ``x`` whose order is ``jnp.sort``'s order of ``x``.

    Floats: ``-0.0`` is mapped to ``+0.0`` and every NaN to one positive NaN (so both are
    ties, as in ``jnp.sort``), then the bits are read as an unsigned integer with negative
    values' bits flipped and non-negative values' sign bit set: integer order equals float
    order, ``-inf`` lowest, ``+inf`` then NaN highest. Signed integers flip the sign bit.
    """
    if jnp.issubdtype(x.dtype, jnp.floating):
        if x.dtype.itemsize == 1:  # float8 / float4: exact in float32
            x = x.astype(jnp.float32)
        u = lax.bitcast_convert_type(_canonical_ties(x), _UINT[x.dtype.itemsize])
        sign = np.array(1 << (8 * u.dtype.itemsize - 1), u.dtype)
        return jnp.where(u >= sign, ~u, u | sign)
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint8)
    if jnp.issubdtype(x.dtype, jnp.signedinteger):
        u = lax.bitcast_convert_type(x, _UINT[x.dtype.itemsize])
        return u ^ np.array(1 << (8 * u.dtype.itemsize - 1), u.dtype)
    return x  # unsigned


def _packed_argsort(u: jax.Array, width: int) -> jax.Array:
    """Stable argsort of unsigned keys ``u`` along the last axis, by single-operand sorts
    of ``width``-bit integers ``(digit << b) | position`` (``b`` bits for a position).

    A key that fits beside the position (``bits(u) + b <= width``) takes one sort: the
    positions come out in key order, ties in index order. A wider key (64-bit keys) is
    sorted least significant digit first (LSD radix), ``width − b`` bits per pass, each
    pass stable by construction; two passes for 64-bit keys up to 2³² elements.
    """
    n = u.shape[-1]
    b = max(1, (n - 1).bit_length())
    packed_dtype = _UINT[width // 8]
    key_bits = 8 * u.dtype.itemsize
    digit_bits = width - b
    iota = lax.broadcasted_iota(packed_dtype, u.shape, u.ndim - 1)
    low = np.array((1 << b) - 1, packed_dtype)
    perm = None
    for shift in range(0, key_bits, digit_bits):
        digit = u >> np.array(shift, u.dtype) if shift else u
        if shift + digit_bits < key_bits:
            digit = digit & np.array((1 << digit_bits) - 1, u.dtype)
        digit = digit.astype(packed_dtype)
        if perm is not None:  # the digits in the order of the previous passes
            digit = jnp.take_along_axis(digit, perm, axis=-1, mode="promise_in_bounds")
        packed = lax.sort((digit << np.array(b, packed_dtype)) | iota, dimension=u.ndim - 1)
        pos = (packed & low).astype(jnp.int32)
        perm = (
            pos
            if perm is None
            else jnp.take_along_axis(perm, pos, axis=-1, mode="promise_in_bounds")
        )
    assert perm is not None
    return perm


def _flat_index(idx: jax.Array, n: int) -> jax.Array | None:
    """Indices ``idx`` [..., k] into rows of length ``n`` as indices into the flattened
    rows (None where they would overflow int32)."""
    rows = int(np.prod(idx.shape[:-1], dtype=np.int64))
    if rows * max(n, idx.shape[-1]) >= 2**31:
        return None
    offsets = lax.broadcasted_iota(jnp.int32, (rows, 1), 0) * n
    return (idx.reshape(rows, -1) + offsets).reshape(-1)


def take_last(x: jax.Array, idx: jax.Array) -> jax.Array:
    """``jnp.take_along_axis(x, idx, axis=-1)`` for in-bounds ``idx`` [..., k], as one
    gather from the flattened rows (``take_along_axis`` builds its index pairs, and its
    transpose's, in kernels of their own: compile time on XLA's CPU)."""
    flat_idx = _flat_index(idx, x.shape[-1])
    if flat_idx is None:
        return jnp.take_along_axis(x, idx, axis=-1, mode="promise_in_bounds")
    out = x.reshape(-1).at[flat_idx].get(mode="promise_in_bounds")
    return out.reshape(idx.shape)


def unpermute_last(u: jax.Array, perm: jax.Array) -> jax.Array:
    """``y`` with ``y[..., perm[..., j]] = u[..., j]``, for ``perm`` a permutation of each
    row (the inverse of ``take_last(y, perm)``): a scatter told that its indices are
    unique, so that its derivative is one scatter and its transpose one gather
    (``jnp.put_along_axis`` does not say so, and its derivative scatters ids to find
    which update wins: about five more kernels), from the flattened rows as
    `take_last`."""
    flat_idx = _flat_index(perm, u.shape[-1])
    if flat_idx is None:
        idx = (*jnp.indices(perm.shape, sparse=True)[:-1], perm)
        return jnp.zeros_like(u).at[idx].set(u, unique_indices=True, mode="promise_in_bounds")
    out = (
        jnp.zeros((u.size,), u.dtype)
        .at[flat_idx]
        .set(u.reshape(-1), unique_indices=True, mode="promise_in_bounds")
    )
    return out.reshape(u.shape)


def _argsort_cpu(x: jax.Array, descending: bool) -> jax.Array:
    u = _sort_key(x)
    if descending:
        u = ~u  # reverses the order; positions still break ties in index order
    b = max(1, (x.shape[-1] - 1).bit_length())
    if 8 * u.dtype.itemsize + b <= 32:
        return _packed_argsort(u, 32)
    # 64-bit packing needs 64-bit integers; enabled for this computation only (a no-op
    # when jax_enable_x64 is on). The packed integers never leave it: the positions are
    # int32 and the jaxpr keeps its int64 types under any later transformation.
    with _enable_x64():
        return _packed_argsort(u, 64)


def _last_axis(x: ArrayLike, axis: int) -> tuple[jax.Array, int]:
    arr = jnp.asarray(x)
    if arr.ndim == 0:
        raise ValueError("sort and argsort need an array with at least one axis.")
    return jnp.moveaxis(arr, axis, -1), axis % arr.ndim


def argsort(
    x: ArrayLike, axis: int = -1, descending: bool = False, stable: bool = True
) -> jax.Array:
    """The indices that sort ``x`` along ``axis``: ``jnp.argsort(x, axis, stable=True,
    descending=descending)`` as ``int32``, several times faster on CPU.

    Order (``jnp.sort``'s): ``-inf < … < -0.0 = +0.0 < … < +inf < NaN``, with ``-0.0`` and
    ``+0.0`` tied, all NaNs (of either sign) tied and last; ``descending`` is the reverse
    order (NaNs first). Ties keep their index order in both directions. Subnormals tie
    with zero where the platform flushes them (XLA's CPU), as in ``jnp.sort``. Integer
    and bool keys are accepted too.

    On CPU the keys are order-preserving unsigned integers, each packed with its position
    into one 32- or 64-bit integer (one single-operand sort; 64-bit keys take two LSD
    radix passes): the result is stable whatever ``stable`` says. Elsewhere
    ``jnp.argsort`` (unstable when ``stable=False``).

    Args:
      x: [..., n, ...] keys (no gradient flows through indices).
      axis: the axis to sort along.
      descending: largest first.
      stable: ``False`` allows an unstable sort where it is faster (not on CPU).

    Returns:
      ``int32`` indices with the shape of ``x``.

    Examples:
      >>> argsort(jnp.array([2.0, jnp.nan, -0.0, 1.0, 0.0]))
      Array([2, 4, 3, 0, 1], dtype=int32)
      >>> argsort(jnp.array([2.0, jnp.nan, -0.0, 1.0, 0.0]), descending=True)
      Array([1, 0, 3, 2, 4], dtype=int32)
    """
    xl, axis = _last_axis(x, axis)
    xl = sg(xl)
    if xl.size == 0 or jnp.issubdtype(xl.dtype, jnp.complexfloating):
        perm = jnp.argsort(xl, axis=-1, stable=stable, descending=descending)
        return jnp.moveaxis(perm.astype(jnp.int32), -1, axis)

    def portable(v):
        return jnp.argsort(v, axis=-1, stable=stable, descending=descending).astype(jnp.int32)

    perm = lax.platform_dependent(
        xl, cpu=functools.partial(_argsort_cpu, descending=descending), default=portable
    )
    return jnp.moveaxis(perm, -1, axis)


def sort(x: ArrayLike, axis: int = -1, descending: bool = False) -> jax.Array:
    """``x`` sorted along ``axis``: ``jnp.sort(x, axis, descending=descending)``, the same
    bits and the same gradient, several times faster on CPU.

    Order as `argsort` (NaNs last, first when ``descending``); every entry keeps its
    bits (``-0.0`` and NaN payloads included), tied entries in index order (in reverse
    index order when ``descending``: ``jnp.sort`` reverses the ascending sort, where
    ``jnp.argsort`` keeps ties in index order). The gradient is ``jnp.sort``'s: the
    cotangent scattered back through the sorting permutation.

    On CPU: floats are gathered by `argsort` (a stop-gradient'ed permutation);
    integer and bool keys are sorted as one order-preserving unsigned operand and mapped
    back. Elsewhere ``jnp.sort``.

    Args:
      x: [..., n, ...] values.
      axis: the axis to sort along.
      descending: largest first.

    Returns:
      The sorted values, shape and dtype of ``x``.

    Examples:
      >>> sort(jnp.array([2.0, jnp.nan, -jnp.inf, 1.0]))
      Array([-inf,   1.,   2.,  nan], dtype=float32)
    """
    xl, axis = _last_axis(x, axis)
    if xl.size == 0 or jnp.issubdtype(xl.dtype, jnp.complexfloating):
        return jnp.moveaxis(jnp.sort(xl, axis=-1, descending=descending), -1, axis)

    def cpu(v):
        if jnp.issubdtype(v.dtype, jnp.floating):
            perm = _argsort_cpu(sg(v), False)
            out = take_last(v, perm)
        else:
            u = lax.sort(_sort_key(v), dimension=v.ndim - 1)
            if v.dtype == jnp.bool_:
                out = u.astype(jnp.bool_)
            else:
                if jnp.issubdtype(v.dtype, jnp.signedinteger):
                    u = u ^ np.array(1 << (8 * u.dtype.itemsize - 1), u.dtype)
                out = lax.bitcast_convert_type(u, v.dtype)
        # jnp.sort's descending order is the ascending one reversed (tied entries, such
        # as -0.0 and +0.0, in reverse index order), unlike jnp.argsort's.
        return lax.rev(out, (v.ndim - 1,)) if descending else out

    def portable(v):
        return jnp.sort(v, axis=-1, descending=descending)

    out = lax.platform_dependent(xl, cpu=cpu, default=portable)
    return jnp.moveaxis(out, -1, axis)


#: `top_k_indices` takes the first k of the fast `argsort` on CPU where ``6·k >= n`` and
#: ``n >= 128``, ``lax.top_k``'s partial selection below. Measured (float32, time of
#: ``lax.top_k`` over the fast argsort, jax 0.10.2, 2 cores): [256, 1024]: 0.26 at
#: k = n/32, 1.11 at n/8, 1.16 at n/6, 1.58 at n/4; [8, 10⁵]: 0.39, 1.12, 1.35, 2.47;
#: [4096, 64]: 0.22, 0.90, 0.79, 1.22; [64, 16]: below 0.6 at every k.
_TOP_K_BY_SORT = (6, 128)


def top_k_indices(x: jax.Array, k: int) -> jax.Array:
    """The indices of the ``k`` largest entries along the last axis, largest first:
    ``argsort(x, descending=True)[..., :k]``, the same order (ties in index order, NaNs
    first, ``-0.0`` tied with ``+0.0``).

    ``lax.top_k`` selects without sorting the rest, several times faster than a sort
    for small ``k``; its order is made `argsort`'s by giving it keys where ``-0.0`` is
    ``+0.0`` and every NaN one positive NaN (``lax.top_k`` alone puts ``+0.0`` above
    ``-0.0`` and a negative NaN last). On CPU, where ``k`` is a large part of the row,
    the fast `argsort` is faster (see ``_TOP_K_BY_SORT``).

    Args:
      x: [..., n] keys, ``1 <= k <= n`` (no gradient flows through indices).
      k: how many (static).

    Returns:
      ``int32`` indices [..., k].

    Examples:
      >>> top_k_indices(jnp.array([2.0, jnp.nan, -0.0, 1.0, 0.0]), 3)
      Array([1, 0, 3], dtype=int32)
    """
    x = sg(x)
    n = x.shape[-1]
    ratio, min_n = _TOP_K_BY_SORT

    def select(v):
        if jnp.issubdtype(v.dtype, jnp.floating):
            v = _canonical_ties(v)
        return lax.top_k(v, k)[1].astype(jnp.int32)

    if ratio * k < n or n < min_n:
        return select(x)
    return lax.platform_dependent(x, cpu=lambda v: _argsort_cpu(v, True)[..., :k], default=select)
