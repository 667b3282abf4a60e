"""Chunked pool-adjacent-violators (PAV) for many short rows.

The solver of ``_isotonic`` keeps one dynamic slice per row inside its loop, which is
fastest for a few long rows (e.g. [8, 1e5]) but unrolls R slices per step, so its
compile time grows with the number of rows R. For R > 16 rows ``_isotonic`` calls this
solver instead: rows are cut into chunks of 64 solved by a stack PAV with a fixed trip
count (batch inside the loop), and solved chunks are merged pairwise in log2(n / 64)
rounds. Same outputs: per entry, the block index, the block statistics of ``s`` and
``w`` (sums for l2, log-sum-exps for kl) and the block size.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["blocks"]

# Entries per chunk of the first, sequential phase.
_CHUNK = 64


def _merge(a, b, kl: bool):
    """Statistics of the union of two blocks: (stat of s, stat of w, count)."""
    if kl:
        return (jnp.logaddexp(a[0], b[0]), jnp.logaddexp(a[1], b[1]), a[2] + b[2])
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _value(blk, kl: bool):
    """The isotonic solution on a block: mean(s) − mean(w), or lse(s) − lse(w)."""
    if kl:
        return blk[0] - blk[1]
    return (blk[0] - blk[1]) / blk[2].astype(blk[0].dtype)


def _where(c, a, b):
    return tuple(jnp.where(c, x, y) for x, y in zip(a, b))


def _take(stack, idx):
    """``stack[p, idx[p]]`` for each of the (a, b, count) arrays of shape [P, m]."""
    return tuple(jnp.take_along_axis(x, idx[:, None], axis=1)[:, 0] for x in stack)


def _solve_chunks(s, w, length, kl: bool):
    """Stack PAV on each row of s, w: [P, L] (only the first ``length[p]`` entries).

    Returns the block stack (a, b, count), each [P, L], and the number of blocks [P].
    """
    p, m = s.shape
    rows = jnp.arange(p)
    ones = jnp.ones((p,), jnp.int32)
    first = (s[:, 0], w[:, 0], ones)
    stack = (jnp.zeros_like(s), jnp.zeros_like(w), jnp.zeros((p, m), jnp.int32))
    top = jnp.minimum(length, 1)  # blocks on the stack, the current one included
    nxt = ones  # next entry to push

    def step(_, carry):
        stack, cur, top, nxt = carry
        # Store the current block first, then read the one below it: writing before
        # reading lets XLA update the stack in place.
        slot = jnp.maximum(top - 1, 0)
        stack = tuple(x.at[rows, slot].set(c) for x, c in zip(stack, cur))
        prev = _take(stack, jnp.maximum(top - 2, 0))
        viol = (top >= 2) & (_value(prev, kl) < _value(cur, kl))
        push = ~viol & (nxt < length)
        j = jnp.minimum(nxt, m - 1)
        elem = (s[rows, j], w[rows, j], ones)
        cur = _where(viol, _merge(prev, cur, kl), _where(push, elem, cur))
        return stack, cur, top + push - viol, nxt + push

    # At most (m - 1) pushes and (m - 1) merges: a fixed trip count, so that vmap
    # batches this loop without a per-step select over the stacks.
    stack, cur, top, _ = lax.fori_loop(0, 2 * m - 1, step, (stack, first, top, nxt))
    slot = jnp.maximum(top - 1, 0)
    stack = tuple(x.at[rows, slot].set(c) for x, c in zip(stack, cur))
    return stack, top


def _merge_pairs(stack, nb, kl: bool):
    """Merges solved segments 2q and 2q+1 (stacks [2Q, m], block counts [2Q])."""
    two_q, m = stack[0].shape
    q = two_q // 2
    left = tuple(x.reshape(q, 2, m)[:, 0] for x in stack)
    right = tuple(x.reshape(q, 2, m)[:, 1] for x in stack)
    nb_l, nb_r = nb.reshape(q, 2)[:, 0], nb.reshape(q, 2)[:, 1]
    has_r = nb_r > 0
    # The pooled block around the seam starts as the first right block and grows by
    # absorbing the last kept left block or the next right block while they violate.
    mid = _take(right, jnp.zeros((q,), jnp.int32))
    keep = nb_l
    used = has_r.astype(jnp.int32)

    def body(carry):
        mid, keep, used, active = carry
        lt = _take(left, jnp.maximum(keep - 1, 0))
        rn = _take(right, jnp.minimum(used, m - 1))
        viol_l = active & (keep > 0) & (_value(lt, kl) < _value(mid, kl))
        viol_r = active & ~viol_l & (used < nb_r) & (_value(mid, kl) < _value(rn, kl))
        mid = _where(viol_l, _merge(lt, mid, kl), _where(viol_r, _merge(mid, rn, kl), mid))
        return mid, keep - viol_l, used + viol_r, viol_l | viol_r

    mid, keep, used, _ = lax.while_loop(lambda c: jnp.any(c[3]), body, (mid, keep, used, has_r))
    # Assemble [kept left blocks, pooled block, unused right blocks] with one gather.
    j = jnp.arange(2 * m)[None, :]
    keep_, used_ = keep[:, None], used[:, None]
    total = jnp.where(has_r, keep + 1 + nb_r - used, nb_l)
    is_left = j < keep_
    is_mid = has_r[:, None] & (j == keep_)
    is_right = has_r[:, None] & (j > keep_) & (j < total[:, None])
    ridx = jnp.clip(j - keep_ - 1 + used_, 0, m - 1)
    out = []
    for lx, rx, mx in zip(left, right, mid):
        lpad = jnp.pad(lx, ((0, 0), (0, m)))
        rg = jnp.take_along_axis(rx, ridx, axis=1)
        zero = jnp.zeros((), lx.dtype)
        out.append(
            jnp.where(is_left, lpad, jnp.where(is_mid, mx[:, None], jnp.where(is_right, rg, zero)))
        )
    return tuple(out), total


@functools.partial(jax.jit, static_argnames="kl")
def blocks(s, w, kl: bool):
    """PAV on rows of s, w: [R, n]. Returns (bid [R, n] block index of each entry,
    stat of s [R, n], stat of w [R, n], count [R, n]) gathered per entry."""
    r, n = s.shape
    m = min(_CHUNK, n)
    c = -(-n // m)
    c2 = 1 << (c - 1).bit_length()
    pad = c2 * m - n
    sp = jnp.pad(s, ((0, 0), (0, pad))).reshape(r * c2, m)
    wp = jnp.pad(w, ((0, 0), (0, pad))).reshape(r * c2, m)
    length = jnp.clip(n - jnp.arange(c2) * m, 0, m).astype(jnp.int32)
    length = jnp.tile(length, r)
    stack, nb = _solve_chunks(sp, wp, length, kl)
    while stack[0].shape[0] > r:
        stack, nb = _merge_pairs(stack, nb, kl)
    # Expand the blocks of each row to its entries.
    a, b, cnt = stack
    k = jnp.arange(a.shape[1])[None, :]
    cnt = jnp.where(k < nb[:, None], cnt, 0)
    starts = jnp.cumsum(cnt, axis=1) - cnt
    starts = jnp.where(k < nb[:, None], starts, n)
    rows = jnp.arange(r)[:, None]
    flags = jnp.zeros((r, n), jnp.int32).at[rows, starts].add(1, mode="drop")
    bid = jnp.cumsum(flags, axis=1) - 1
    take = functools.partial(jnp.take_along_axis, indices=bid, axis=1)
    return bid, take(a), take(b), take(cnt)
