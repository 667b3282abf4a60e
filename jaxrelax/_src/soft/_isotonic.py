"""Isotonic regression by pool-adjacent-violators (PAV), written for XLA.

Solves, row by row, the decreasing isotonic problems behind projections onto the
permutahedron (Blondel et al., 2020):

* ``"l2"``: ``v = argmin_{v_1 >= ... >= v_n} ½‖v − (s − w)‖²``; on each block B of the
  solution ``v_B = mean(s_B) − mean(w_B)``;
* ``"kl"``: ``v = argmin_{v_1 >= ... >= v_n} ⟨exp(s − v), 1⟩ + ⟨exp(w), v⟩``; on each
  block ``v_B = logsumexp(s_B) − logsumexp(w_B)``;

and returns ``u = s − v`` (the projection, in sorted coordinates).

Ties pool: adjacent blocks are merged when the left value is ``<=`` the right one, as
in the reference solver of fast-soft-sort (``isotonic_l2`` / ``isotonic_kl``), so the
blocks of the solution have strictly decreasing values. At a tie (a vertex of the
permutahedron, e.g. soft ranks of evenly spaced inputs) the derivative is then that of
the pooled block (``I − 11ᵀ/n`` for the ranks of ``1, ..., n`` at ``ε = 1``), not the
one-sided zero of separate blocks.

PAV may pool adjacent violating blocks in any order and still ends at the unique
solution, and the blocks of the solution on a stretch of the row are unions of blocks of
the solution of the whole row. The solver uses this in two phases, neither of which
depends on the row count for its program size:

1. **Chunks.** Every row is cut into chunks of ``_CHUNK`` entries and all the chunks of
   all the rows are solved at once by the textbook stack PAV, one ``lax.while_loop``
   whose step advances every chunk (a gather and a scatter at ``[chunk, top]``): at most
   ``2·_CHUNK − 1`` steps, each O(number of chunks).
2. **Rows.** A second loop walks each row's chunks left to right, holding the row's
   solution so far as a stack of blocks. A step either pools the top block with the
   run of blocks below it that violate in turn, or pools into it the run of the current
   chunk's next blocks that violate in turn (runs of up to ``_RUN`` blocks, found with
   prefix sums, or running log-sum-exps, over a window, measured from the top block's
   anchor, and merged by one reduction of compensated sums), or, when
   neither violates, copies the rest of the chunk onto the stack in one slice. A row
   walks about ``n / _CHUNK`` steps, fewer where it pools runs of blocks.

Most rows never step. A chunk in which no entry pools with the next is its own
solution, entry by entry; one in which every entry pools with the next (values
non-decreasing) is one block, the union of its entries (one reduction of compensated
sums). Likewise a row of such singletons whose chunk seams do not pool is its own
solution, and a row whose chunks are single blocks that all pool is one block. Soft
sorts (``ρ / ε`` against the sorted input) are rows of singletons, and soft ranks of
inputs denser than ``ε`` rows of one block; when every row is one of these two, neither
loop steps and the outputs are formed from the rows directly, without expanding blocks
to entries. Otherwise the other rows step through both phases, and in the first only
the chunks of neither kind step (gathered, a quarter of the lanes at a time). On
[8, 10⁵] float32 rows of standard normal input the solver costs 0.09× (sort,
``ε = 1``), 0.10× (rank, ``ε = 1``), 0.15× (rank, ``ε = 0.1``) and 0.3× (rank,
``ε = 10⁻³``) a ``jnp.sort`` of the same array, against about 0.5× when every chunk
stepped; rows where nearly every chunk steps (a random walk) still cost that.

Compile time is part of the cost: XLA's CPU backend compiles every kernel of a program
separately, at about 15-20 ms of CPU each however small, and the solver is most of the
kernels of a soft sort (94 of 109 at n = 1000). So it avoids what compiles to many
kernels: ``jnp.nonzero`` (about ten; the mixed chunks are ordered by one packed sort),
separate ``any``/``all`` reductions (one bitwise-or reduction of flag bits instead),
``cumsum`` over long axes (a tree of reduce-windows; prefix counts are matmuls), integer
sums of more than 32 terms (a reduce-window and a reduce; matrix products are library
calls, not compiled kernels), ``jnp.arange`` index arrays for gathers, scatters and
loops (each a kernel; small ones are NumPy constants), and reading a chunk's entries
apart from its stack (the stack holds them until the loop passes them).

Keeping the batch inside the loops (and never ``vmap``-ing a loop) matters: ``vmap``
over a ``while_loop`` turns each O(1) stack step into an O(n) select over the carried
stacks. A ``custom_vmap`` rule folds a user ``vmap`` into the rows instead.

A block is a record ``(anchor, s_hi, s_lo, w_hi, w_lo, count)``. The anchor is the
``s`` of one of its entries, and the statistics of ``s`` are taken from it: ``Σ (s − a)``
(l2) or ``lse(s − a)`` (kl); those of ``w`` are ``Σ w`` or ``lse(w)``. Each is an
unevaluated sum ``hi + lo`` updated with error-free transformations, so that a block
built from ``10⁵`` entries keeps its float precision. Measured from the anchor, every
statistic is of the size of the gaps within the block, which PAV keeps of the size of
``w``, whatever the size of ``s``: the value of a block is ``a + offset`` with
``offset = mean(s − a) − mean(w)`` (or ``lse(s − a) − lse(w)``), two blocks are compared
by ``(a_1 − a_2) + offset_1 <= offset_2`` (never by values rounded at the scale of
``s``), and the solution is ``u = (s − a) − offset``, exact for the entries near their
anchor. So at ``|s| = 10³⁰`` (ranks of large ``x``, ``ρ / ε`` with a tiny ``ε``) tied
entries still get exactly the mean of their ``w``, ranks stay in ``[1, n]`` and sum to
``n (n + 1) / 2``, masks stay in ``[0, 1]``. (Block means as differences of large sums,
or log-sum-exps of ``s`` rounded to a float, lose everything below an ulp of ``s``.)
Counts are stored as floats, exact for rows of up to ``2**24`` entries in float32.

Gradients never go through the loops: the solver sees ``stop_gradient`` inputs, and
``u`` is assembled from its block partition by ``_assemble``, a ``jax.custom_jvp`` with
the closed-form derivatives for the (locally constant) partition: block means for l2,
block softmax weights for kl, correct at every order. Zero tangents are skipped
(``symbolic_zeros``), so soft sort and soft rank, where one of ``s``, ``w`` is a
constant, pay for one block average.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxrelax._src import _numerics

__all__ = ["project"]

#: Entries per chunk of the first phase.
_CHUNK = 128
#: Most blocks pooled into the top block in one step of the second phase.
_RUN = 32

# Fields of a block record.
_A, _S_HI, _S_LO, _W_HI, _W_LO, _CNT = range(6)


def _two_sum(a, b):
    """``(a + b, error)``: the rounded sum and its exact rounding error."""
    t = a + b
    bp = t - a
    return t, (a - (t - bp)) + (b - bp)


def _add(a_hi, a_lo, b_hi, b_lo):
    """``a + b`` for unevaluated sums ``(hi, lo)``."""
    hi, err = _two_sum(a_hi, b_hi)
    return _two_sum(hi, err + a_lo + b_lo)


def _logaddexp(a_hi, a_lo, b_hi, b_lo):
    """``log(exp(a) + exp(b))`` for unevaluated sums ``(hi, lo)``."""
    m = jnp.maximum(a_hi, b_hi)
    r = jnp.logaddexp((a_hi - m) + a_lo, (b_hi - m) + b_lo)
    return _two_sum(m, r)


def _merge(a, b, kl: bool):
    """The record of the union of two adjacent blocks (records [..., 6]), anchored at
    ``a``'s anchor (in any order: the statistics of ``b`` are moved to that anchor).

    Moving them, ``lse(s_B − a_A) = lse(s_B − a_B) + d`` and ``Σ_B (s − a_A) =
    Σ_B (s − a_B) + |B| d`` with ``d = a_B − a_A``, rounds at the scale of ``|B| d``
    (zero for tied anchors), the size of the gap between two blocks that pool; the
    compensated sum then adds it exactly."""
    d = b[..., _A] - a[..., _A]
    if kl:
        s = _logaddexp(a[..., _S_HI], a[..., _S_LO], b[..., _S_HI] + d, b[..., _S_LO])
        w = _logaddexp(a[..., _W_HI], a[..., _W_LO], b[..., _W_HI], b[..., _W_LO])
    else:
        s = _add(a[..., _S_HI], a[..., _S_LO], b[..., _S_HI], b[..., _S_LO] + b[..., _CNT] * d)
        w = _add(a[..., _W_HI], a[..., _W_LO], b[..., _W_HI], b[..., _W_LO])
    return jnp.stack([a[..., _A], *s, *w, a[..., _CNT] + b[..., _CNT]], axis=-1)


def _offset(r, kl: bool):
    """The block's value minus its anchor: mean(s − a) − mean(w), or lse(s − a) − lse(w)."""
    t = (r[..., _S_HI] - r[..., _W_HI]) + (r[..., _S_LO] - r[..., _W_LO])
    return t if kl else t / r[..., _CNT]


def _leq(left, right, kl: bool):
    """Whether the value of block ``left`` is ``<=`` that of block ``right`` (they pool):
    the anchors' difference plus the offsets, never the values themselves (which round at
    the scale of ``s``, not at that of the gap)."""
    return (left[..., _A] - right[..., _A]) + _offset(left, kl) <= _offset(right, kl)


#: Most entries of an index array written into the program as a constant (below):
#: ``jnp.arange`` is a kernel of its own to compile where XLA does not fuse it into its
#: consumers (index operands of gathers and scatters, loop constants), a constant none.
_LITERAL = 1 << 14


def _iota(n: int):
    """``arange(n)`` as int32: a NumPy constant up to ``_LITERAL`` entries."""
    return np.arange(n, dtype=np.int32) if n <= _LITERAL else jnp.arange(n, dtype=jnp.int32)


# Indices into the stacks are in bounds by construction, one per lane.
_IN_BOUNDS = {"mode": "promise_in_bounds", "indices_are_sorted": True, "unique_indices": True}


def _record(s, w):
    """Singleton records [..., 6] of the entries s, w [...], anchored at s."""
    zero = jnp.zeros_like(s)
    return jnp.stack([s, zero, zero, w, zero, jnp.ones_like(s)], axis=-1)


def _stack_pav(stack, length, kl: bool):
    """The stack PAV loop of ``_solve_chunks`` on lanes of singleton records
    [L, m, 6] (entry j in slot j), ``length`` [L] entries each; returns the stack with
    each lane's blocks in its first ``top`` [L] slots.

    The stack is its own input: it grows from slot 0 and never past the next entry to
    read (``top <= nxt``), so the records above it are still the entries'. The current
    block is kept on top (slot ``top − 1``), written after every step."""
    p, m, _ = stack.shape
    lanes = _iota(p)

    def body(carry):
        stack, cur, top, nxt, _ = carry
        # The block below the top, and the next entry (still in its own slot).
        j = jnp.minimum(nxt, m - 1)
        prev = stack.at[lanes, jnp.maximum(top - 2, 0)].get(**_IN_BOUNDS)
        elem = stack.at[lanes, j].get(**_IN_BOUNDS)
        # Ties pool (``<=``), as in the reference solver: the blocks of the solution
        # then have strictly decreasing values, and the derivative at a tie is that of
        # the pooled block, not a one-sided zero.
        viol = (top >= 2) & _leq(prev, cur, kl)
        # The other chunks push their next entry, pooled at once with the current
        # block if these two violate.
        push = ~viol & (nxt < length)
        pool = push & _leq(cur, elem, kl)
        merged = viol | pool
        pair = _merge(jnp.where(viol[:, None], prev, cur), jnp.where(viol[:, None], cur, elem), kl)
        cur = jnp.where(merged[:, None], pair, jnp.where(push[:, None], elem, cur))
        top = top - viol.astype(top.dtype) + (push & ~pool).astype(top.dtype)
        nxt = nxt + push.astype(nxt.dtype)
        stack = stack.at[lanes, top - 1].set(cur, **_IN_BOUNDS)
        return stack, cur, top, nxt, jnp.any(merged | (nxt < length))

    ones = jnp.ones((p,), jnp.int32)
    # (The first step runs unconditionally: a step with nothing to read changes nothing,
    # and without a reduction over the lanes here the program has a kernel fewer.)
    init = (stack, stack[:, 0], ones, ones, jnp.bool_(True))
    stack, _, top, _, _ = lax.while_loop(lambda c: c[-1], body, init)
    return stack, top


def _solve_chunks(s, w, length, kl: bool):
    """Stack PAV on every chunk at once: entries s, w [P, m], ``length`` [P] >= 1.

    Returns the block stacks [P, m, 6] (blocks in order, garbage past the count), the
    number of blocks of each chunk [P] and the entries of s as the loop read them [P, m]
    (see ``_blocks_2d``).

    Two kinds of chunk are solved without the loop, from the comparisons of adjacent
    entries (those the loop makes first): a chunk in which no entry pools with the next
    is its own solution, entry by entry; one in which every entry pools with the next
    (values non-decreasing) is one block, their union. Only the other chunks step, and
    the loop runs on them alone: its steps cost in proportion to the lanes it carries,
    and a few chunks with a stretch of each kind (the tails of soft ranks, a row with
    one wide gap) would otherwise make every chunk walk up to ``2·_CHUNK`` steps."""
    p, m = s.shape
    records = _record(s, w)
    inside = jnp.arange(1, m, dtype=jnp.int32)[None, :] < length[:, None]
    # ``_leq`` of adjacent singletons, whose offsets are ``−w``. (Where s is a product
    # computed in the same program, XLA may contract ``s_i − s_{i+1}`` into a fused
    # multiply-add here, unlike in the loop, which reads s from its operand: an exact
    # tie could then be seen as a gap of an ulp. The callers' inputs that can tie reach
    # the solver through the sorting gather, a buffer of its own.)
    pairs = (s[:, :-1] - s[:, 1:]) - w[:, :-1] <= -w[:, 1:]
    # Pooling pairs + 256 · others (m − 1 < 256 pairs), then how many chunks are mixed
    # and how many one block.
    tally = _sums(jnp.where(inside, jnp.where(pairs, 1.0, 256.0), 0.0))
    others = jnp.floor(tally * (1.0 / 256.0))
    pooled = tally - 256.0 * others
    down = pooled == 0
    up = ~down & (others == 0)
    mixed = ~down & ~up
    count, ups = _sums(jnp.stack([mixed, up])).astype(jnp.int32)
    # The solved chunks are final: the singletons, or their union in the first slot
    # (computed only where a chunk needs it).
    union = lax.cond(ups > 0, lambda: _union(records, length, kl), lambda: records[:, 0])
    stack = records.at[:, 0].set(jnp.where(up[:, None], union, records[:, 0]))
    top = jnp.where(down, length, 1)
    # The loop runs on the mixed chunks alone, a quarter of the lanes at a time (one
    # group where they are few; four where every chunk is mixed, each step then costing
    # about as much as on all the lanes). A group gathers its chunks' entries, starts
    # from their first, and scatters back what the loop found: the fewer gathers and
    # scatters, the fewer kernels to compile.
    group = -(-p // 4)
    # The mixed chunks first, in index order (one packed sort; ``jnp.nonzero`` compiles
    # to about ten kernels), then room for a last group.
    order = jnp.pad(_numerics.argsort(~mixed), (0, 4 * group - p))
    sub = _iota(group)

    def step(carry):
        g, stack, top, seen = carry
        take = lax.dynamic_slice_in_dim(order, g * group, group)
        # (Past the mixed chunks: other chunks, whose writes are dropped.)
        pick = jnp.where(g * group + sub < count, take, p)
        # (The stack of a mixed chunk still holds its entries' records: read from the
        # carried stack, not from ``records``, which would then be kept beside it.)
        rec = stack[take]
        found = (*_stack_pav(rec, jnp.asarray(length)[take], kl), rec[..., _A])
        return g + 1, *(x.at[pick].set(y, mode="drop") for x, y in zip((stack, top, seen), found))

    _, stack, top, seen = lax.while_loop(
        lambda c: c[0] * group < count, step, (jnp.int32(0), stack, top, s)
    )
    return stack, top, seen


def _sums(x):
    """Sums along the last axis of ``x`` [..., k] of small non-negative integers, exact in
    float32 below ``2**24``, as a matmul: a reduction of more than 32 entries compiles to
    two kernels on XLA's CPU (a reduce-window, then a reduce), a matmul to a library
    call."""
    if x.shape[-1] == 0:
        return jnp.zeros(x.shape[:-1], jnp.float32)
    # (A matrix: XLA's CPU calls the library for a matrix product, but emits a kernel of
    # its own for a matrix-vector one. Its second column is zeros: a constant of equal
    # entries becomes a broadcast, a kernel of its own where a matrix product reads it.)
    ones = np.stack([np.ones(x.shape[-1], np.float32), np.zeros(x.shape[-1], np.float32)], 1)
    flat = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
    return jnp.matmul(flat, ones, precision=lax.Precision.HIGHEST)[:, 0].reshape(x.shape[:-1])


def _or_bits(flags):
    """The bitwise or of the integer ``flags`` [R, k] along the last axis: one reduction
    for what ``any`` and ``all`` would ask of several (each a kernel or two to compile)."""
    return lax.reduce(flags.astype(jnp.int32), np.int32(0), lax.bitwise_or, (1,))


def _row_slices(x, start, size):
    """``x[b, start[b] : start[b] + size]`` for every row b of x [R, N, k]."""
    return jax.vmap(lambda a, i: lax.dynamic_slice_in_dim(a, i, size))(x, start)


def _row_update(x, upd, start):
    """``x`` with ``x[b, start[b] : start[b] + len] = upd[b]`` for every row b."""
    return jax.vmap(lambda a, u, i: lax.dynamic_update_slice_in_dim(a, u, i, 0))(x, upd, start)


def _exclusive_prefix(x):
    """``out[..., j] = sum(x[..., :j])`` along the last axis, as one matmul (XLA's CPU
    cumsum is a reduce-window costing about 10 µs on a 128-entry window)."""
    m = x.shape[-1]
    if m * m <= _LITERAL:
        upper = np.triu(np.ones((m, m), x.dtype), 1)
    else:
        upper = (_iota(m)[:, None] < _iota(m)[None, :]).astype(x.dtype)
    return jnp.matmul(x, upper, precision=lax.Precision.HIGHEST)


def _cumlogsumexp(x):
    """Inclusive running log-sum-exp along the last axis: a log-depth scan of
    ``logaddexp``, so that every prefix is shifted by its own maximum (one shift for the
    whole window underflows the prefixes far below the window's maximum)."""
    m = x.shape[-1]
    k = 1
    while k < m:
        pad = jnp.full((*x.shape[:-1], k), -jnp.inf, x.dtype)
        x = jnp.logaddexp(x, jnp.concatenate([pad, x[..., :-k]], axis=-1))
        k *= 2
    return x


def _run_length(cur, win, valid, cur_left, kl: bool):
    """How many leading blocks of ``win`` [R, m, 6] pool, one after the other, with
    the block ``cur`` [R, 6]: ``win`` lies right of ``cur`` where ``cur_left`` [R], its
    blocks in order, else left of it, nearest first. ``valid`` [R, m] masks a prefix.

    Decisions only. Everything is measured from ``cur``'s anchor, so that the running
    statistics and the values compared are of the size of the gaps between the blocks
    and of ``w``, never of ``s``; the running statistics are plain float prefix sums
    (l2) or running log-sum-exps (kl), each prefix shifted by its own maximum. The first
    decision is that of ``_leq`` (up to rounding where ``win`` is right of ``cur``);
    the loop checks every pair it leaves adjacent again, so that a run cut short by
    rounding is only finished in the next step."""
    d = win[..., _A] - cur[:, _A, None]  # the window's anchors, from cur's
    v = d + _offset(win, kl)  # the window's values, from cur's anchor
    own = _offset(cur, kl)
    if kl:
        stats = jnp.stack(
            [
                (win[..., _S_HI] + win[..., _S_LO]) + d,
                win[..., _W_HI] + win[..., _W_LO],
            ],
            axis=1,
        )  # [R, 2, m]
        own_s = cur[:, _S_HI] + cur[:, _S_LO]
        own_w = cur[:, _W_HI] + cur[:, _W_LO]
        first = jnp.stack([own_s, own_w], axis=1)[..., None]
        # Stale blocks past the valid prefix add nothing.
        stats = jnp.where(valid[:, None], stats, -jnp.inf)
        run = _cumlogsumexp(jnp.concatenate([first, stats[..., :-1]], axis=-1))
        run = jnp.concatenate([own[:, None], (run[:, 0] - run[:, 1])[:, 1:]], axis=1)
    else:
        # Σ (s − a_cur − w) per block; scaled by a power of two so that the sums of up
        # to m + 1 terms stay finite (a block far from cur may be near the float range;
        # it does not pool, and the sums past it are not read).
        scale = 1.0 / 64.0
        big = jnp.finfo(win.dtype).max * scale
        tot = (win[..., _S_HI] - win[..., _W_HI]) + (win[..., _S_LO] - win[..., _W_LO])
        tot = jnp.clip(tot * scale + win[..., _CNT] * (d * scale), -big, big)
        stats = jnp.stack([tot, win[..., _CNT]], axis=1)  # [R, 2, m]
        # Stale blocks past the valid prefix: zeroed, as ``inf · 0`` in the matmul would
        # spread NaNs to every prefix.
        prefix = _exclusive_prefix(jnp.where(valid[:, None], stats, 0.0))
        first = (cur[:, _S_HI] - cur[:, _W_HI]) + (cur[:, _S_LO] - cur[:, _W_LO])
        run = (first[:, None] * scale + prefix[:, 0]) / (cur[:, _CNT, None] + prefix[:, 1])
        v = v * scale
    # Ties pool, as in the first phase.
    pools = valid & jnp.where(cur_left[:, None], run <= v, v <= run)
    # The number of leading pooling blocks: the index of the first that does not (one
    # past the window where all do).
    stop = jnp.zeros_like(pools[:, :1])
    return jnp.argmin(jnp.concatenate([pools, stop], axis=1), axis=1).astype(jnp.int32)


def _union(win, count, kl: bool):
    """The record of the union of the first ``count`` [R] blocks of ``win`` [R, m, 6],
    anchored at the first's anchor (garbage where ``count`` is 0): the statistics of
    every block are moved to that anchor and added up (l2) or log-sum-exp'ed (kl) as
    compensated sums, in one reduction (a pairwise tree of merges compiles to a program
    per level, and was slower)."""
    valid = jnp.arange(win.shape[1], dtype=jnp.int32)[None, :] < count[:, None]
    anchor = win[:, 0, _A]
    d = win[..., _A] - anchor[:, None]
    if kl:
        s_hi, s_lo, empty = win[..., _S_HI] + d, win[..., _S_LO], -jnp.inf
    else:
        s_hi, s_lo, empty = win[..., _S_HI], win[..., _S_LO] + win[..., _CNT] * d, 0.0
    terms = (s_hi, s_lo, win[..., _W_HI], win[..., _W_LO], win[..., _CNT])
    zero = jnp.zeros((), win.dtype)
    inits = (zero + empty, zero, zero + empty, zero, zero)
    terms = tuple(jnp.where(valid, t, i) for t, i in zip(terms, inits))

    def combine(x, y):
        if kl:
            # (An empty side is ``(−inf, 0)``; two of them stay empty, not NaN.)
            s, w = _logaddexp(*x[:2], *y[:2]), _logaddexp(*x[2:4], *y[2:4])
            s_empty = jnp.maximum(x[0], y[0]) == -jnp.inf
            w_empty = jnp.maximum(x[2], y[2]) == -jnp.inf
            s = (jnp.where(s_empty, -jnp.inf, s[0]), jnp.where(s_empty, 0.0, s[1]))
            w = (jnp.where(w_empty, -jnp.inf, w[0]), jnp.where(w_empty, 0.0, w[1]))
        else:
            s, w = _add(*x[:2], *y[:2]), _add(*x[2:4], *y[2:4])
        return (*s, *w, x[4] + y[4])

    s_hi, s_lo, w_hi, w_lo, cnt = lax.reduce(terms, inits, combine, (1,))
    return jnp.stack([anchor, s_hi, s_lo, w_hi, w_lo, cnt], axis=-1)


def _join_chunks(chunks, nbc, lengths, kl: bool):
    """PAV over the solved chunks of each row, left to right.

    ``chunks`` [R, (c + 1)·m, 6] holds chunk j < c's blocks at ``[j·m, j·m + nbc[:, j])``
    (the last m slots are room for reading past the last chunk).
    ``lengths`` [c] are the chunks' entry counts. Returns the block stack of each row
    [R, c·m, 6] and its block count [R] (garbage where ``direct``); then ``direct``
    (every row is one of two kinds that need no join, below), which rows are
    singletons and which are one block [R], and that block's record [R, 6] (garbage
    elsewhere)."""
    r, cm, k = chunks.shape
    c = nbc.shape[1]
    m = cm // (c + 1)
    cm = c * m
    rows = _iota(r)
    q = min(_RUN, m)
    run_window = _iota(q)[None, :]
    padded = chunks
    # Stack slot t lives at index q + t: q slots of padding below slot 0 let every row
    # read the q slots under its top as one slice; m above the last let it copy m.
    stack = jnp.zeros((r, q + cm + m, k), chunks.dtype).at[:, q : q + m].set(chunks[:, :m])
    top = nbc[:, 0]
    cur = chunks[rows, top - 1]

    def body(carry):
        # ``at`` = ci·m + head: the row is at block ``head`` of chunk ``ci`` (one carry,
        # so one kernel updates both).
        stack, cur, top, at, _ = carry
        ci = at // m
        head = at - ci * m
        more = ci < c
        cic = jnp.minimum(ci, c - 1)
        left = nbc.at[rows, cic].get(**_IN_BOUNDS) - head  # blocks not yet taken
        rest = _row_slices(padded, cic * m + head, m)
        # Store the current block at slot top − 1 with the rest of the chunk above it
        # (the slots above the top are free: the copy is written every step and only
        # counts when the step copies), then read the q slots on either side of it
        # (below it nearest first) in one slice. Everything below reads the stack, so
        # the slice of ``padded`` has one consumer and is not recomputed in fusions.
        stack = _row_update(stack, jnp.concatenate([cur[:, None], rest], axis=1), q + top - 1)
        around = _row_slices(stack, top - 1, 2 * q + 1)
        below, above = jnp.flip(around[:, :q], axis=1), around[:, q + 1 :]
        # Pool the top block with as many blocks below it as violate in turn (up to
        # _RUN); else pool as many of the chunk's next blocks into it; else copy the
        # rest of the chunk. Both runs are measured at once, on 2R lanes.
        wins = jnp.concatenate([below, above])
        lim = jnp.concatenate([top - 1, left])
        side = _iota(2 * r) >= r
        runs = _run_length(
            jnp.broadcast_to(cur, (2, r, k)).reshape(2 * r, k),
            wins,
            run_window < lim[:, None],
            side,
            kl,
        )
        pops, takes = runs[:r], runs[r:]
        viol = pops > 0
        act = ~viol & more
        absorb = act & (takes > 0)
        copy = act & ~absorb
        last = stack.at[rows, q + top - 1 + left].get(**_IN_BOUNDS)
        union = _union(
            jnp.where(viol[:, None, None], wins[:r], wins[r:]), jnp.where(viol, pops, takes), kl
        )
        merged = _merge(union, cur, kl)
        cur = jnp.where((viol | absorb)[:, None], merged, jnp.where(copy[:, None], last, cur))
        top = top - jnp.where(viol, pops, 0) + jnp.where(copy, left, 0)
        done = copy | (absorb & (takes >= left))
        at = jnp.where(done, (ci + 1) * m, at + jnp.where(absorb, takes, 0))
        return stack, cur, top, at, jnp.any(viol | absorb | (at < c * m))

    # Rows that need no join, from the seams (a chunk's last block and the next chunk's
    # first): rows of singletons (no seam pools, no chunk pooled), which the loop would
    # only copy, chunk by chunk; and rows whose chunks are single blocks that all pool
    # (values non-decreasing), one block, their union. Where every row is one of these
    # the caller forms the outputs from the rows directly and nothing steps (a soft sort
    # or rank at n = 10⁵ would walk 782 steps); otherwise every other row steps.
    slot = jnp.arange(cm, dtype=jnp.int32)
    firsts = chunks[:, 0:cm:m]
    lasts = chunks[rows[:, None], slot[::m][None, :] + nbc - 1]
    seams = _leq(lasts[:, :-1], firsts[:, 1:], kl)
    # 1: a seam pools, 2: one does not, 4: a chunk of several blocks, 8: a chunk that
    # pooled entries.
    flags = jnp.concatenate(
        [jnp.where(seams, 1, 2), jnp.where(nbc == 1, 0, 4) | jnp.where(nbc == lengths, 0, 8)],
        axis=1,
    )
    kinds = _or_bits(flags)
    up = (kinds & 6) == 0
    single = (kinds & 9) == 0
    ups, plain = jnp.sum(jnp.stack([up, single | up]), axis=1, dtype=jnp.int32)  # one reduction
    direct = plain == r
    active = ~up & ~direct
    init = (stack, cur, top, jnp.where(active, m, c * m), ~direct & (ups < r))
    stack, cur, top, _, _ = lax.while_loop(lambda s: s[-1], body, init)
    # (Behind a cond, a buffer: fused into the readers of the stack, the union would be
    # computed again for each of their entries.)
    union = lax.cond(
        ups > 0,
        lambda: _union(firsts, jnp.full((r,), c, jnp.int32), kl),
        lambda: firsts[:, 0],
    )
    # The rows of one block: their union on top of the stack.
    cur = jnp.where(up[:, None], union, cur)
    top = jnp.where(up, 1, top)
    # (Set in place, then slice: the slice fuses into the expansion that reads it.)
    return stack.at[rows, q + top - 1].set(cur)[:, q : q + cm], top, direct, single, up, union


def _counts_before(x):
    """``out[..., j] = sum(x[..., :j])`` along the last axis for integer counts ``x >= 0``
    summing to less than ``2**24``: in blocks of 128 by a matmul (exact in float32), the
    blocks' totals by a second matmul where there are at most ``_MATMUL_BLOCKS`` blocks,
    else by ``cumsum``. (XLA's CPU ``cumsum`` is a reduce-window, on [8, 10⁵] about 3×
    slower than this (6.0 against 1.8 ms), that compiles to a tree of kernels;
    ``lax.associative_scan`` takes 0.7 s to compile.)"""
    *lead, n = x.shape
    size = 128
    nb = -(-n // size)
    xb = jnp.pad(x, [(0, 0)] * len(lead) + [(0, nb * size - n)]).astype(jnp.float32)
    xb = xb.reshape(*lead, nb, size)
    inner = _exclusive_prefix(xb)
    totals = inner[..., -1] + xb[..., -1]
    if nb <= _MATMUL_BLOCKS:
        before = _exclusive_prefix(totals)
    else:
        before = jnp.cumsum(totals, axis=-1) - totals
    out = (inner + before[..., None]).reshape(*lead, nb * size)[..., :n]
    return out.astype(jnp.int32)


#: Most blocks of 128 whose totals `_counts_before` adds up by a matmul (an
#: [nb, nb] triangle: 4 MB of float32 at this size).
_MATMUL_BLOCKS = 1024


@functools.partial(jax.jit, static_argnames="kl")
def _blocks_2d(s, w, kl: bool):
    """PAV on rows of s, w: [R, n]. Returns, per entry [R, n]: the index of its block
    (bid), the solution ``u = s − v``, then for l2 the block's count (a float), for kl
    the block's anchor and its statistics ``lse(s − anchor)`` and ``lse(w)``."""
    r, n = s.shape
    m = min(_CHUNK, n)
    c = -(-n // m)
    # One more chunk per row, of one zero entry: the solved chunks then come with the
    # m slots of room that the row-level join reads past a row's last chunk.
    pad = ((0, 0), (0, (c + 1) * m - n))
    length = np.clip(n - np.arange(c + 1, dtype=np.int32) * m, 1, m).astype(np.int32)
    chunks, nbc, seen = _solve_chunks(
        jnp.pad(s, pad).reshape(r * (c + 1), m),
        jnp.pad(w, pad).reshape(r * (c + 1), m),
        np.tile(length, r) if r * (c + 1) <= _LITERAL else jnp.tile(length, r),
        kl,
    )
    nbc = nbc.reshape(r, c + 1)[:, :c]
    if c > 1:
        stack, nb, direct, single, up, union = _join_chunks(
            chunks.reshape(r, (c + 1) * m, 6), nbc, length[:c], kl
        )
    else:  # one chunk per row: its solution is the row's (and no join to compile)
        stack = chunks.reshape(r, 2 * m, 6)[:, :m]
        nb = nbc[:, 0]
        up, single = nb == 1, nb == length[0]
        direct, union = jnp.all(single | up), stack[:, 0]
    seen = seen.reshape(r, (c + 1) * m)[:, :n]

    def general():
        # Expand the blocks of each row to its entries: a block's entries start after the
        # counts of the blocks before it, its index (bid) is the number of blocks before it.
        k = jnp.arange(stack.shape[1], dtype=jnp.int32)[None, :]
        valid = k < nb[:, None]
        cnt = jnp.where(valid, stack[..., _CNT], 0).astype(jnp.int32)
        starts = jnp.where(valid, _counts_before(cnt), n)
        flags = jnp.zeros((r, n), jnp.int32).at[_iota(r)[:, None], starts].add(1, mode="drop")
        bid = _counts_before(flags) + flags - 1
        # Per block: the anchor, the offset of the value from it, then for l2 the count, for
        # kl the statistics of s (from the anchor) and of w, which shift the block softmaxes.
        fields = [stack[..., _A], _offset(stack, kl)]
        if kl:
            fields += [stack[..., _S_HI] + stack[..., _S_LO], stack[..., _W_HI] + stack[..., _W_LO]]
        else:
            fields += [stack[..., _CNT]]
        per_entry = jnp.take_along_axis(jnp.stack(fields, axis=-1), bid[..., None], axis=1)
        anchor, offset, *stats = (per_entry[..., i] for i in range(len(fields)))
        # u = (s − anchor) − offset, from the entries of s that the solver read (a loop
        # output, so one buffer; the loop's initial value where it does not step): XLA may
        # compute s again in each fusion that uses it, and where s is a product (``ρ / ε``
        # becomes ``ρ · (1 / ε)``) fused into ``s − anchor`` the two may be contracted into a
        # fused multiply-add, which subtracts the exact product instead of the rounded s
        # that gave the anchor: off by up to an ulp of s, the whole output when s is large.
        # ``s − anchor`` is exact for the entries near their anchor (the gaps within a block
        # are of the size of w), so that u keeps the precision of w however large s is:
        # tied entries of 10³⁰ get the block mean of w. (``lax.optimization_barrier`` does
        # not keep XLA's CPU from fusing.)
        u = (seen - anchor) - offset
        return (bid, u, anchor, *stats) if kl else (bid, u, *stats)

    # Rows of singletons (no entry pools: soft sorts) and rows of one block (soft ranks
    # of dense inputs) need no expansion: where every row is one or the other, the
    # outputs are formed from the rows directly.

    def from_rows():
        one = up[:, None]
        idx = jnp.arange(n, dtype=jnp.int32)[None, :]
        bid = jnp.where(one, 0, idx)
        anchor = jnp.where(one, union[:, _A, None], seen)
        offset = jnp.where(one, _offset(union, kl)[:, None], -w)
        u = (seen - anchor) - offset
        if kl:
            lse_s = jnp.broadcast_to(
                jnp.where(one, (union[:, _S_HI] + union[:, _S_LO])[:, None], 0.0), u.shape
            )
            lse_w = jnp.where(one, (union[:, _W_HI] + union[:, _W_LO])[:, None], w)
            return bid, u, anchor, lse_s, lse_w
        return bid, u, jnp.broadcast_to(jnp.where(one, union[:, _CNT, None], 1.0), u.shape)

    return lax.cond(direct, from_rows, general)


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
        return tuple(o.reshape(axis_size, r, n) for o in out), (True,) * len(out)

    return solve(s, w)


def _segment_sum(x, bid):
    """Per-entry sum of ``x`` over its block: [R, n] -> [R, n]."""
    r, n = x.shape
    seg = (bid + n * jnp.arange(r, dtype=jnp.int32)[:, None]).reshape(-1)
    tot = jax.ops.segment_sum(x.reshape(-1), seg, num_segments=r * n, indices_are_sorted=True)
    return tot[seg].reshape(r, n)


def _flat(x):
    return x.reshape(-1, x.shape[-1])


def project(s: jax.Array, w: jax.Array, kl: bool) -> jax.Array:
    """``s − v`` where v solves the decreasing isotonic problem of ``(s, w)`` (last axis).

    ``s`` and ``w`` have the same shape [..., n]; for the projection onto a
    permutahedron ``s`` is sorted in decreasing order and ``w`` too. Rows may have at
    most ``2**24`` entries in float32.
    """
    s2, w2 = _flat(s), _flat(w)
    bid, u, *aux = _blocks(_numerics.sg(s2), _numerics.sg(w2), kl)
    blocks = jax.tree.map(_numerics.sg, (bid, u, tuple(aux)))
    return _assemble(s2, w2, *blocks, kl).reshape(s.shape)


@functools.partial(jax.custom_jvp, nondiff_argnums=(5,))
def _assemble(s, w, bid, u, aux, kl: bool):
    """The solution ``u`` (computed by the solver) as a function of ``s, w``.

    Differentiated for the fixed block partition ``bid`` (locally constant): ``aux`` is
    the block's ``(count,)`` (l2) or ``(anchor, lse(s − anchor), lse(w))`` (kl), which
    shift the block softmaxes."""
    del s, w, bid, aux, kl
    return u


def _block_weights(x, shift, bid):
    """Softmax of ``x`` within each block; ``shift`` (at least its block's maximum) only
    shifts."""
    e = jnp.exp(x - shift)
    return e / _segment_sum(e, bid)


def _is_zero(t):
    return type(t) is jax.custom_derivatives.SymbolicZero


@functools.partial(_assemble.defjvp, symbolic_zeros=True)
def _assemble_jvp(kl, primals, tangents):
    s, w, bid, u0, aux = primals
    ds, dw = tangents[:2]
    # The primal output through ``_assemble`` again, so that it stays differentiable
    # (with this rule) at every order.
    u = _assemble(s, w, bid, u0, aux, kl)
    # For l2: du = ds − mean_B(ds) + mean_B(dw); for kl the block means are weighted
    # by the block softmax of s (of w), which depends on s (on w) differentiably.
    du = jnp.zeros_like(u)
    if not _is_zero(ds):
        if kl:
            du = du + ds - _segment_sum(_block_weights(s - aux[0], aux[1], bid) * ds, bid)
        else:
            du = du + ds - _segment_sum(ds, bid) / aux[0]
    if not _is_zero(dw):
        if kl:
            du = du + _segment_sum(_block_weights(w, aux[2], bid) * dw, bid)
        else:
            du = du + _segment_sum(dw, bid) / aux[0]
    return u, du
