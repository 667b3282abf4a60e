"""Shared numerics: the one home of the stable kernels every subpackage uses.

* :func:`finite_max` — the "subtract the finite maximum" shift (stop-gradient'ed; 0 for a
  row of only ``-inf``), which keeps huge logits and tiny temperatures finite;
* :func:`scale_and_shift` — ``x / T`` shifted by its finite maximum along an axis: the
  one place every shift-invariant map (softmax, Sinkhorn, successive softmax) divides by
  its temperature, exact for any ``T`` that broadcasts to ``x``;
* :func:`softmax` / :func:`masked_log_softmax` / :func:`safe_logsumexp` — masked
  (``-inf`` = probability 0) softmax, log-softmax and log-sum-exp with no NaN in values or
  gradients, also for a fully masked row;
* :func:`one_hot_argmax` — exact one-hot arg max that never selects a masked entry;
* :func:`sinkhorn_log` — log-domain Sinkhorn iterations;
* :func:`hungarian` — the exact linear assignment (``optax.assignment``) with ``-inf``
  scores as forbidden pairs, for ``jr.st.assignment`` and hard Gumbel-Sinkhorn.

Functions here do no input checking (that is ``_checks.py``); they take arrays already in
the compute dtype.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

__all__ = [
    "finite_max",
    "hungarian",
    "masked_log_softmax",
    "nan_rows",
    "one_hot_argmax",
    "safe_logsumexp",
    "scale_and_shift",
    "sg",
    "sinkhorn_log",
    "softmax",
]

sg = jax.lax.stop_gradient


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


def one_hot_argmax(x: jax.Array, axis: int) -> jax.Array:
    """Exact one-hot arg max along ``axis`` (zeros for a fully masked row).

    A ``-inf`` entry is never selected: a row with a finite entry picks a finite one,
    and a row of only ``-inf`` gives all zeros.
    """
    idx = jnp.argmax(x, axis=axis)
    hard = jax.nn.one_hot(idx, x.shape[axis], dtype=x.dtype, axis=axis)
    all_masked = jnp.all(jnp.isneginf(x), axis=axis, keepdims=True)
    return jnp.where(all_masked, 0.0, hard).astype(x.dtype)


@functools.partial(jax.jit, static_argnums=2)
def sinkhorn_log(log_alpha: jax.Array, temperature: ArrayLike, num_iters: int) -> jax.Array:
    """``num_iters`` row-then-column normalisations of ``log_alpha / T`` in the log domain.

    Works on the last two axes; leading axes are batch axes carried through the loop, so
    batching never wraps a loop in ``vmap``.
    """
    # Row normalisation is invariant to a per-row shift of log_alpha / T.
    x = scale_and_shift(log_alpha, temperature, -1)

    def body(_, x):
        x = x - safe_logsumexp(x, axis=-1)
        return x - safe_logsumexp(x, axis=-2)

    return jax.lax.fori_loop(0, num_iters, body, x)


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
