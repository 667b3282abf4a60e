"""Isotonic regression by pool-adjacent-violators (PAV), written for XLA.

Solves, row by row, the decreasing isotonic problems behind projections onto the
permutahedron (Blondel et al., 2020):

* ``"l2"``: ``v = argmin_{v_1 >= ... >= v_n} ½‖v − (s − w)‖²``; on each block B of the
  solution ``v_B = mean(s_B) − mean(w_B)``;
* ``"kl"``: ``v = argmin_{v_1 >= ... >= v_n} ⟨exp(s − v), 1⟩ + ⟨exp(w), v⟩``; on each
  block ``v_B = logsumexp(s_B) − logsumexp(w_B)``;

and returns ``u = s − v`` (the projection, in sorted coordinates).

The solver is the textbook stack PAV, run as one ``lax.while_loop`` in which every step
advances all the rows of the flattened batch at once: each row either pools its top two
blocks or pushes its next entry (pooling it at once with the top block if these
violate), so the loop ends after at most ``2n − 1`` steps, and after ``n − 1`` when
nothing pools. The per-row stack updates and reads are one dynamic slice per row, which
XLA performs in place, so a step costs O(batch) and not O(n). A user ``vmap`` would turn
the loop predicate into a per-step ``select`` over the stacks; a ``custom_vmap`` rule
folds the mapped axis into the batch instead.

Block statistics (sums of ``s`` and ``w`` for l2, their log-sum-exps for kl) are kept
separately, each as an unevaluated sum ``hi + lo`` updated with error-free
transformations, so that a block built from ``10⁵`` entries one at a time keeps its
float precision, and ``u = (s − mean s_B) + mean w_B`` stays exact for singleton blocks
even when ``s`` is huge (``ρ / ε`` with a tiny ``ε``).

Gradients never go through the loop: ``project`` is a ``jax.custom_jvp`` whose rule
rebuilds ``u`` from the (locally constant) block partition with segment sums, which
gives the closed-form derivatives (block means for l2, block softmax weights for kl)
to every order, in forward and reverse mode.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from jaxrelax._src.soft import _isotonic_chunked

__all__ = ["project"]

#: Above this many rows the per-row-slice loop below compiles too slowly (R slices per
#: step: [256, 64] took 43 s to compile, [1024, 16] over 2 minutes); use the chunked
#: solver, whose program size does not depend on R.
_MAX_UNROLLED_ROWS = 16


def _row_get(x, idx):
    """``x[b, idx[b]]`` for every row ``b`` of ``x`` [R, n, ...] (one slice per row)."""
    tail = x.shape[2:]
    zeros = (jnp.int32(0),) * len(tail)
    idx = idx.astype(jnp.int32)
    return jnp.concatenate(
        [
            lax.dynamic_slice(x, (jnp.int32(b), idx[b], *zeros), (1, 1, *tail))[:, 0]
            for b in range(x.shape[0])
        ]
    )


def _row_set(x, idx, v):
    """``x`` with ``x[b, idx[b]] = v[b]`` for every row ``b`` (in-place updates)."""
    tail = x.shape[2:]
    zeros = (jnp.int32(0),) * len(tail)
    idx = idx.astype(jnp.int32)
    for b in range(x.shape[0]):
        start = (jnp.int32(b), idx[b], *zeros)
        x = lax.dynamic_update_slice(x, v[b].reshape(1, 1, *tail), start)
    return x


def _two_sum(a, b):
    """``(a + b, error)``: the rounded sum and its exact rounding error."""
    t = a + b
    bp = t - a
    return t, (a - (t - bp)) + (b - bp)


def _add(x, y):
    """``x + y`` for unevaluated sums ``(hi, lo)`` stacked on the last axis."""
    hi, err = _two_sum(x[..., 0], y[..., 0])
    return jnp.stack(_two_sum(hi, err + x[..., 1] + y[..., 1]), axis=-1)


def _logaddexp(x, y):
    """``log(exp(x) + exp(y))`` for unevaluated sums ``(hi, lo)`` on the last axis."""
    m = jnp.maximum(x[..., 0], y[..., 0])
    r = jnp.logaddexp((x[..., 0] - m) + x[..., 1], (y[..., 0] - m) + y[..., 1])
    return jnp.stack(_two_sum(m, r), axis=-1)


def _merge(x, y, kl: bool):
    """Statistics [..., 2 (s, w), 2 (hi, lo)] of the union of two blocks."""
    return _logaddexp(x, y) if kl else _add(x, y)


def _total(stat):
    """The statistics of ``s`` and of ``w``, rounded: [..., 2, 2] -> [..., 2]."""
    return stat[..., 0] + stat[..., 1]


def _value(stat, cnt, kl: bool):
    """The isotonic solution on a block: mean(s) − mean(w), or lse(s) − lse(w)."""
    v = (stat[:, 0, 0] - stat[:, 1, 0]) + (stat[:, 0, 1] - stat[:, 1, 1])
    return v if kl else v / cnt.astype(v.dtype)


def _pav(s, w, kl: bool):
    """Stack PAV on the rows of s, w: [R, n], all rows advanced by the same loop.

    Returns the block stack (statistics [R, n, 2, 2], counts [R, n]) and the number of
    blocks of each row [R]."""
    r, n = s.shape
    sw = jnp.stack([s, w], axis=-1)
    sw = jnp.stack([sw, jnp.zeros_like(sw)], axis=-1)  # entries as (hi, lo) sums
    ones = jnp.ones((r,), jnp.int32)

    def body(carry):
        stats, counts, cur, ccur, top, nxt, _ = carry
        # Store the current block, then read the one below it.
        stats = _row_set(stats, top - 1, cur)
        counts = _row_set(counts, top - 1, ccur)
        below = jnp.maximum(top - 2, 0)
        prev, cprev = _row_get(stats, below), _row_get(counts, below)
        viol = (top >= 2) & (_value(prev, cprev, kl) < _value(cur, ccur, kl))
        # The other rows push their next entry, pooled at once with the current block
        # if these two violate.
        push = ~viol & (nxt < n)
        elem = _row_get(sw, jnp.minimum(nxt, n - 1))
        pool = push & (_value(cur, ccur, kl) < _value(elem, ones, kl))
        v3 = viol[:, None, None]
        lo, clo = jnp.where(v3, prev, cur), jnp.where(viol, cprev, ccur)
        hi, chi = jnp.where(v3, cur, elem), jnp.where(viol, ccur, ones)
        merged = viol | pool
        cur = jnp.where(
            merged[:, None, None], _merge(lo, hi, kl), jnp.where(push[:, None, None], elem, cur)
        )
        ccur = jnp.where(merged, clo + chi, jnp.where(push, ones, ccur))
        top = top - viol + (push & ~pool)
        nxt = nxt + push
        # A row is done once all its entries are pushed and its last check passed.
        return stats, counts, cur, ccur, top, nxt, jnp.any(merged | (nxt < n))

    init = (
        jnp.zeros_like(sw),
        jnp.zeros((r, n), jnp.int32),
        sw[:, 0],
        ones,
        ones,
        ones,
        jnp.asarray(n > 1),
    )
    stats, counts, cur, ccur, top, _, _ = lax.while_loop(lambda c: c[-1], body, init)
    return _row_set(stats, top - 1, cur), _row_set(counts, top - 1, ccur), top


@functools.partial(jax.jit, static_argnames="kl")
def _blocks_2d(s, w, kl: bool):
    """PAV on rows of s, w: [R, n]. Returns (bid [R, n] block index of each entry,
    stat of s [R, n], stat of w [R, n], count [R, n]) gathered per entry."""
    r, n = s.shape
    if r > _MAX_UNROLLED_ROWS:
        return _isotonic_chunked.blocks(s, w, kl)
    stats, cnt, nb = _pav(s, w, kl)
    # Expand the blocks of each row to its entries.
    k = jnp.arange(n)[None, :]
    cnt = jnp.where(k < nb[:, None], cnt, 0)
    starts = jnp.cumsum(cnt, axis=1) - cnt
    starts = jnp.where(k < nb[:, None], starts, n)
    rows = jnp.arange(r)[:, None]
    flags = jnp.zeros((r, n), jnp.int32).at[rows, starts].add(1, mode="drop")
    bid = jnp.cumsum(flags, axis=1) - 1
    tot = _total(stats)
    take = functools.partial(jnp.take_along_axis, indices=bid, axis=1)
    return bid, take(tot[..., 0]), take(tot[..., 1]), take(cnt)


def _blocks(s, w, kl: bool):
    """``_blocks_2d`` whose ``vmap`` folds the mapped axis into the rows."""

    @jax.custom_batching.custom_vmap
    def solve(s, w):
        return _blocks_2d(s, w, kl)

    @solve.def_vmap
    def _solve_vmap(axis_size, in_batched, s, w):
        s, w = (
            x if b else jnp.broadcast_to(x, (axis_size, *x.shape))
            for x, b in zip((s, w), in_batched)
        )
        r, n = s.shape[1:]
        out = solve(s.reshape(axis_size * r, n), w.reshape(axis_size * r, n))
        return tuple(o.reshape(axis_size, r, n) for o in out), (True,) * 4

    return solve(s, w)


def _segment_sum(x, bid):
    """Per-entry sum of ``x`` over its block: [R, n] -> [R, n]."""
    r, n = x.shape
    seg = (bid + n * jnp.arange(r)[:, None]).reshape(-1)
    tot = jax.ops.segment_sum(x.reshape(-1), seg, num_segments=r * n, indices_are_sorted=True)
    return tot[seg].reshape(r, n)


def _rebuild(s, w, bid, sa, sb, cnt, kl: bool):
    """``u`` as a differentiable function of s, w for a fixed block partition.

    The block statistics ``sa, sb`` enter through ``stop_gradient`` as shifts only, so
    the value equals the solver's and the derivatives are the exact ones."""
    sa, sb = lax.stop_gradient(sa), lax.stop_gradient(sb)
    if kl:
        # lse_B(x) = c + log Σ_B exp(x − c) for the constant c = lse_B(x) at the solution.
        ls = sa + jnp.log(_segment_sum(jnp.exp(s - sa), bid))
        lw = sb + jnp.log(_segment_sum(jnp.exp(w - sb), bid))
        return (s - ls) + lw
    c = cnt.astype(s.dtype)
    # mean_B(x) = c + mean_B(x − c) for the constant c = mean_B(x) at the solution.
    ms = sa / c + _segment_sum(s - lax.stop_gradient(s), bid) / c
    mw = sb / c + _segment_sum(w - lax.stop_gradient(w), bid) / c
    return (s - ms) + mw


def _flat(x):
    return x.reshape(-1, x.shape[-1])


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def project(s: jax.Array, w: jax.Array, kl: bool) -> jax.Array:
    """``s − v`` where v solves the decreasing isotonic problem of ``(s, w)`` (last axis).

    ``s`` and ``w`` have the same shape [..., n]; for the projection onto a
    permutahedron ``s`` is sorted in decreasing order and ``w`` too.
    """
    shape = s.shape
    s2, w2 = _flat(s), _flat(w)
    _, sa, sb, cnt = _blocks(s2, w2, kl)
    if kl:
        u = (s2 - sa) + sb
    else:
        c = cnt.astype(s2.dtype)
        u = (s2 - sa / c) + sb / c
    return u.reshape(shape)


@project.defjvp
def _project_jvp(kl, primals, tangents):
    s, w = primals
    shape = s.shape
    s2, w2 = _flat(s), _flat(w)
    blocks = _blocks(lax.stop_gradient(s2), lax.stop_gradient(w2), kl)
    blocks = jax.tree.map(lax.stop_gradient, blocks)

    def f(s2, w2):
        return _rebuild(s2, w2, *blocks, kl)

    ds, dw = tangents
    u, du = jax.jvp(f, (s2, w2), (_flat(ds), _flat(dw)))
    return u.reshape(shape), du.reshape(shape)
