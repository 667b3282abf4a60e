"""Variable-length lists, `where=`: jr.soft.sort, rank, topk_mask, quantile, median,
permutation_matrix, sorting_network (values and matrix), jr.reparam.plackett_luce (sample,
log_prob) and jr.reparam.k_subset (sample, log_prob, marginals).

The contract, checked for every op on a padded batch whose rows have different numbers m
of valid entries (0 included), at arbitrary positions or as a prefix:

* the valid entries' values equal the op called on each unpadded list alone;
* padded outputs hold the fill value 0 (padded rows and columns of a matrix are 0);
* padded inputs get exactly 0.0 gradient, and a NaN, inf or huge pad changes nothing (no
  NaN in values or gradients);
* nothing depends on the padded length: the results at n = 8 are those of each list alone
  (padded to its own length m); the Plackett–Luce log-probabilities (the normaliser) also
  at n = 11;
* it works under `jit` and `vmap` with a traced mask, and second derivatives are those of
  the unpadded op.

The reference is the op itself on the unpadded list, whose values are tested against
independent references elsewhere (SLSQP projections and fast-soft-sort in
tests/soft/test_sorting.py, `jnp.quantile` in tests/soft/test_quantiles.py, diffsort in
tests/soft/test_sorting_network.py, TFP/brute force in tests/reparam/); quantiles are also
checked against `np.quantile` of the valid entries.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

N = 8  # padded length
N2 = 11  # a second padded length for the same lists
# Valid entries per row, an empty row included. Few distinct lengths, and each test
# gathers its calls into one or two jitted programs: the compilation of the isotonic
# solver (about a second per call site) dominates the cost of this module.
LENGTHS = (3, 0, 5, 3)
PADS = (0.0, np.nan, np.inf, -np.inf, 1e30)
RTOL = ATOL = 2e-5


def _batch(layout, n=N, seed=0):
    """Rows of LENGTHS random values, each padded to n at random positions ("scattered")
    or at the end ("prefix"). Returns the lists, x [B, n] (pads 0) and the mask."""
    rng = np.random.default_rng(seed)
    lists = [rng.normal(size=m).astype(np.float32) * 2 for m in LENGTHS]
    mask = np.zeros((len(LENGTHS), n), bool)
    prng = np.random.default_rng(seed + 100 + n)
    for b, m in enumerate(LENGTHS):
        pos = np.arange(m) if layout == "prefix" else np.sort(prng.choice(n, m, replace=False))
        mask[b, pos] = True
    x = np.zeros((len(LENGTHS), n), np.float32)
    x[mask] = np.concatenate(lists)  # row-major: row b's values at its positions, in order
    return lists, x, mask


def _with_pad(x, mask, value):
    return np.where(mask, x, np.float32(value)).astype(np.float32)


# Each soft op: (padded call, unpadded call, layout of the outputs). Layouts: "front" (the
# valid results compacted to the front, fill behind), "own" (at the valid entries' own
# positions), "scalar" (one value per row), "matrix" (the valid block [:m][:, mask]),
# "network" (a matrix with a row of "front" values under it: `_stack`). The
# entropic and descending variants of sort and rank are in SECOND_ORDER_OPS below.
K = 2
Q = np.array([0.0, 0.3, 0.5, 1.0], np.float32)
_BITONIC = {"network": "bitonic", "sigmoid": "logistic_phi", "descending": True}


def _stack(values_and_p):
    """A sorting network's [..., n] values under its [..., n, n] matrix: [..., n + 1, n]."""
    values, p = values_and_p
    return jnp.concatenate([p, values[..., None, :]], axis=-2)


# sort, quantile and median share ε, so that XLA compiles their soft sorts once.
SOFT = {
    "sort": (
        lambda x, w: jr.soft.sort(x, 0.5, where=w),
        lambda v: jr.soft.sort(v, 0.5),
        "front",
    ),
    "rank": (
        lambda x, w: jr.soft.rank(x, 0.5, where=w),
        lambda v: jr.soft.rank(v, 0.5),
        "own",
    ),
    # k among the valid entries; all of them (min(k, m)) for a shorter list.
    "topk_mask": (
        lambda x, w: jr.soft.topk_mask(x, K, 1.0, where=w),
        lambda v: jr.soft.topk_mask(v, min(K, v.shape[-1]), 1.0),
        "own",
    ),
    "quantile": (
        lambda x, w: jr.soft.quantile(x, Q, 0.5, where=w).T,
        lambda v: jr.soft.quantile(v, Q, 0.5).T,
        "scalar",
    ),
    "median": (
        lambda x, w: jr.soft.median(x, 0.5, where=w),
        lambda v: jr.soft.median(v, 0.5),
        "scalar",
    ),
    "permutation_matrix": (
        lambda x, w: jr.soft.permutation_matrix(x, 0.7, where=w),
        lambda v: jr.soft.permutation_matrix(v, 0.7),
        "matrix",
    ),
    "neuralsort_desc_hard": (
        lambda x, w: jr.soft.permutation_matrix(
            x, 2.0, "neuralsort", descending=True, hard=True, where=w
        ),
        lambda v: jr.soft.permutation_matrix(v, 2.0, "neuralsort", descending=True, hard=True),
        "matrix",
    ),
    "sinkhorn": (
        lambda x, w: jr.soft.permutation_matrix(x, 0.05, "sinkhorn", where=w, num_iters=30),
        lambda v: jr.soft.permutation_matrix(v, 0.05, "sinkhorn", num_iters=30),
        "matrix",
    ),
    # Sorting networks, one layout for both outputs: the matrix with the values as an
    # extra last row ("network"). A bitonic list of m entries runs on wires that depend on
    # m (its own 2^⌈log₂ m⌉-wire network).
    "sorting_network_odd_even": (
        lambda x, w: _stack(jr.soft.sorting_network(x, steepness=2.0, where=w)),
        lambda v: _stack(jr.soft.sorting_network(v, steepness=2.0)),
        "network",
    ),
    "sorting_network_bitonic": (
        lambda x, w: _stack(jr.soft.sorting_network(x, **_BITONIC, where=w)),
        lambda v: _stack(jr.soft.sorting_network(v, **_BITONIC)),
        "network",
    ),
}


def _split(out, mask, layout):
    """(valid part, padded part) of one row's output (NumPy, or jax.numpy when traced)."""
    xp = np if isinstance(out, np.ndarray) else jnp
    m = int(mask.sum())
    if layout == "front":
        return out[:m], out[m:]
    if layout == "own":
        return out[mask], out[~mask]
    if layout == "scalar":
        out = xp.atleast_1d(out)
        return (out, out[:0]) if m else (out[:0], out)
    if layout == "network":  # the matrix [:n], then the values in the last row
        n = out.shape[-1]
        valid = xp.concatenate([out[:m][:, mask], out[n:, :m]])
        rest = xp.concatenate([out[m:n].ravel(), out[:m][:, ~mask].ravel(), out[n, m:]])
        return valid, rest
    rest = xp.concatenate([out[m:].ravel(), out[:m][:, ~mask].ravel()])
    return out[:m][:, mask], rest


def _place(valid, mask, layout, shape, rng):
    """A row of weights of ``shape``: ``valid`` on the valid outputs, random elsewhere."""
    out = rng.normal(size=shape).astype(np.float32)
    m = int(mask.sum())
    if m == 0:
        return out
    if layout == "front":
        out[:m] = valid
    elif layout == "own":
        out[mask] = valid
    elif layout == "scalar":
        out[...] = valid
    elif layout == "network":
        block = out[:m]
        block[:, mask] = valid[:m]
        out[-1, :m] = valid[m]
    else:
        block = out[:m]
        block[:, mask] = valid
    return out


def _weights(shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


@jax.jit
def _unpadded(lists, weights):
    """Every soft op on unpadded lists (a tuple of [rows, m] batches of lists of one
    length), with the gradient of Σ weights · outputs: one program, as the compilation of
    the isotonic solver dominates the cost of this module."""
    return [
        {
            name: (single(v), jax.grad(lambda v, f=single, c=c[name]: jnp.sum(c * f(v)))(v))
            for name, (_, single, _) in SOFT.items()
        }
        for v, c in zip(lists, weights)
    ]


@jax.jit
def _padded(x, mask, weights):
    """Every soft op on the padded batch (the mask traced), with the gradients."""
    out = {}
    for name, (pad_op, _, _) in SOFT.items():
        f = functools.partial(pad_op, w=mask)
        out[name] = (f(x), jax.grad(lambda x, f=f, c=weights[name]: jnp.sum(c * f(x)))(x))
    return out


def test_soft_padded_equals_unpadded():
    # The reference is each list alone, i.e. padded to its own length m: the padded
    # results at n = 8 equal it, so they do not depend on the padded length.
    lists = _batch("prefix")[0]
    rng = np.random.default_rng(0)
    groups = {}  # lists of one length are one batch of the unpadded op
    for b, v in enumerate(lists):
        if len(v):
            groups.setdefault(len(v), []).append(b)
    vs = tuple(np.stack([lists[b] for b in rows]) for rows in groups.values())
    cs = [
        {
            k: rng.normal(size=jax.eval_shape(f[1], v).shape).astype(np.float32)
            for k, f in SOFT.items()
        }
        for v in vs
    ]
    refs, weights_of = {}, {}  # per row and op: outputs and gradient, and the weights
    for rows, res, c in zip(groups.values(), jax.tree.map(np.asarray, _unpadded(vs, cs)), cs):
        for i, b in enumerate(rows):
            refs[b] = {k: (out[i], g[i]) for k, (out, g) in res.items()}
            weights_of[b] = {k: w[i] for k, w in c.items()}
    for layout in ("prefix", "scattered"):
        _, x, mask = _batch(layout)
        weights = {}
        for name, (pad_op, _, kind) in SOFT.items():
            shape = jax.eval_shape(pad_op, jnp.asarray(x), mask).shape
            weights[name] = np.stack(
                [
                    _place(
                        weights_of[b][name] if b in refs else None, mask[b], kind, shape[1:], rng
                    )
                    for b in range(len(lists))
                ]
            )
        for pad in PADS:
            res = _padded(jnp.asarray(_with_pad(x, mask, pad)), jnp.asarray(mask), weights)
            for name, (out, g) in jax.tree.map(np.asarray, res).items():
                kind = SOFT[name][2]
                where = f"{name}, {layout}, pad={pad}"
                assert np.all(np.isfinite(np.asarray(out))), where
                assert np.all(np.isfinite(np.asarray(g))), where
                # Padded inputs: exactly zero gradient, whatever their value.
                np.testing.assert_array_equal(np.asarray(g)[~mask], 0.0, err_msg=where)
                for b in range(len(lists)):
                    valid, rest = _split(out[b], mask[b], kind)
                    np.testing.assert_array_equal(np.asarray(rest), 0.0, err_msg=where)  # fill
                    if b in refs:
                        ref, gref = refs[b][name]
                        np.testing.assert_allclose(
                            valid, ref, rtol=RTOL, atol=ATOL, err_msg=f"{where}, {b}"
                        )
                        np.testing.assert_allclose(
                            g[b][mask[b]], gref, rtol=RTOL, atol=ATOL, err_msg=where
                        )
    # Under jit the mask is traced (each row's m is data, not a Python value): one
    # program served both layouts and every pad value.
    assert _padded._cache_size() == 1  # pyright: ignore[reportAttributeAccessIssue]


def test_hard_limits_rank_sums_vmap_axis_full_mask_and_long_rows():
    # References: np.quantile ("linear"), np.median and np.sort of each row's valid
    # entries, with ε below the gaps; soft ranks of m entries sum to m (m + 1) / 2; vmap
    # over the rows and another axis give the same; an all-True mask is the plain op.
    # Long rows cross the solver's chunks (128 entries): 200 valid entries of 300, with
    # few blocks (small ε) to a single block (large ε), against the unpadded ranks.
    lists, x, mask = _batch("scattered")
    xp = jnp.asarray(_with_pad(x, mask, np.nan))
    full = jnp.ones(x.shape, bool)
    rng = np.random.default_rng(3)
    long = rng.normal(size=200).astype(np.float32)
    long_mask = np.zeros(300, bool)
    long_mask[rng.choice(300, 200, replace=False)] = True
    long_x = np.full(300, np.nan, np.float32)
    long_x[long_mask] = long

    @jax.jit
    def ops(x, mask, eps):
        return (
            jr.soft.quantile(x, Q, 1e-4, where=mask),
            jr.soft.median(x, 1e-4, where=mask),
            jr.soft.sort(x, 1e-4, where=mask),
            jr.soft.sort(x, 1e-4, descending=True, where=mask),
            jr.soft.rank(x, 0.5, where=mask),
            jax.vmap(lambda r, w: jr.soft.rank(r, 0.5, where=w))(x, mask),
            jr.soft.rank(x.T, 0.5, axis=0, where=mask.T).T,  # the mask moves with x
            jr.soft.rank(x, 0.5),
            jr.soft.rank(long_x, eps, where=long_mask),
            jr.soft.rank(long, eps),
        )

    q, med, s, sd, r, rv, rt, _, lr, lr_ref = jax.tree.map(np.asarray, ops(xp, mask, 1e-2))
    for b, v in enumerate(lists):
        m = len(v)
        np.testing.assert_allclose(q[:, b], np.quantile(v, Q) if m else 0.0, atol=1e-5)
        np.testing.assert_allclose(med[b], np.median(v) if m else 0.0, atol=1e-5)
        np.testing.assert_allclose(s[b, :m], np.sort(v), rtol=1e-6)
        np.testing.assert_allclose(sd[b, :m], np.sort(v)[::-1], rtol=1e-6)
        np.testing.assert_allclose(r[b].sum(), m * (m + 1) / 2, rtol=1e-6)
        assert np.all(r[b][mask[b]] >= 1) and np.all(r[b] <= max(m, 1))
    np.testing.assert_allclose(rv, r, rtol=1e-6, atol=1e-6)  # vmap over the rows
    np.testing.assert_allclose(rt, r, rtol=1e-6, atol=1e-6)
    for eps in (1e-2, 1.0, 30.0):
        if eps != 1e-2:
            *_, lr, lr_ref = jax.tree.map(np.asarray, ops(xp, mask, eps))
        np.testing.assert_allclose(lr[long_mask], lr_ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(lr[~long_mask], 0.0)
    # An all-True mask: the plain op (the unmasked path).
    q, med, s, sd, r, _, _, plain, _, _ = jax.tree.map(np.asarray, ops(x, full, 1.0))
    np.testing.assert_allclose(q, np.quantile(x, Q, axis=-1), atol=1e-5)
    np.testing.assert_allclose(s, np.sort(x), rtol=1e-6)
    np.testing.assert_allclose(r, plain, rtol=1e-6, atol=1e-6)


SECOND_ORDER_OPS = {
    "rank_kl_desc": (lambda x, w: jr.soft.rank(x, 2.0, "kl", descending=True, where=w), "own"),
    "sort_kl_desc": (lambda x, w: jr.soft.sort(x, 0.7, "kl", descending=True, where=w), "front"),
    "permutation_matrix": (lambda x, w: jr.soft.permutation_matrix(x, 0.7, where=w), "matrix"),
    "sorting_network_bitonic_P": (
        lambda x, w: jr.soft.sorting_network(
            x, network="bitonic", sigmoid="logistic", steepness=2.0, where=w
        )[1],
        "matrix",
    ),
}


def test_values_gradients_and_second_derivatives_match_unpadded():
    # Values, gradients and Hessian-vector products (forward over reverse) of a nonlinear
    # functional of one row's outputs, with a tangent that is nonzero on the padded inputs
    # too: the valid entries are the unpadded ones (so the padded columns of the Hessian
    # are 0) and the padded entries are exactly 0 (its padded rows), with a NaN pad.
    lists, x, mask = _batch("scattered")
    b = 2  # 5 valid entries of 8
    v, w = jnp.asarray(lists[b]), mask[b]
    xp = jnp.asarray(_with_pad(x, mask, np.nan))
    t = _weights(N, seed=6)
    cs = {
        k: _weights(jax.eval_shape(op, xp, mask).shape[1:], seed=5)
        for k, (op, _) in SECOND_ORDER_OPS.items()
    }

    @jax.jit
    def run(r, v):
        out = {}
        for k, (op, kind) in SECOND_ORDER_OPS.items():
            c, cv = cs[k], _split(cs[k], w, kind)[0]

            def f(r, op=op, c=c):
                return jnp.sum(c * jnp.sin(op(xp.at[b].set(r), mask)[b]))

            def fv(v, op=op, cv=cv):
                return jnp.sum(cv * jnp.sin(op(v, None)))

            out[k] = (
                op(xp.at[b].set(r), mask)[b],
                op(v, None),
                *jax.jvp(jax.grad(f), (r,), (t,)),  # the gradient, and the HVP
                *jax.jvp(jax.grad(fv), (v,), (t[w],)),
            )
        return out

    for k, (y, yv, g, h, gv, hv) in jax.tree.map(np.asarray, run(xp[b], v)).items():
        valid, rest = _split(y, w, SECOND_ORDER_OPS[k][1])
        np.testing.assert_allclose(valid, yv, rtol=RTOL, atol=ATOL, err_msg=k)
        np.testing.assert_array_equal(rest, 0.0, err_msg=k)
        for got, want in ((g, gv), (h, hv)):
            assert np.all(np.isfinite(got)), k
            np.testing.assert_array_equal(got[~w], 0.0, err_msg=k)
            np.testing.assert_allclose(got[w], want, rtol=1e-4, atol=1e-5, err_msg=k)
        assert np.any(np.abs(hv) > 1e-3), k  # a nonzero second derivative: it can fail


def test_bad_where():
    x = jnp.zeros((2, 4))
    calls = {
        "sort": lambda w: jr.soft.sort(x, where=w),
        "rank": lambda w: jr.soft.rank(x, where=w),
        "topk_mask": lambda w: jr.soft.topk_mask(x, 2, where=w),
        "quantile": lambda w: jr.soft.quantile(x, 0.5, where=w),
        "median": lambda w: jr.soft.median(x, where=w),
        "permutation_matrix": lambda w: jr.soft.permutation_matrix(x, where=w),
        "sorting_network": lambda w: jr.soft.sorting_network(x, where=w),
        "plackett_luce": lambda w: jr.reparam.plackett_luce(x, where=w),
        "k_subset": lambda w: jr.reparam.k_subset(x, 2, where=w),
        "k_subset_marginals": lambda w: jr.reparam.k_subset_marginals(x, 2, where=w),
    }
    for name, call in calls.items():
        target = "logits" if name in ("plackett_luce", "k_subset", "k_subset_marginals") else "x"
        # No broadcasting: a [4] mask for [2, 4] input is an error naming both shapes.
        msg = rf"`where` with shape \(4,\) must have the shape of `{target}` \(2, 4\)"
        with pytest.raises(ValueError, match=msg):
            call(jnp.ones(4, bool))
        with pytest.raises(TypeError, match="`where` must be a boolean mask"):
            call(jnp.ones((2, 4), jnp.int32))


# --------------------------------------------------------------------------------------
# Plackett–Luce and k-subset: the padded row's law is the unpadded list's.


def _pl_setup(layout, n=N, seed=0):
    """Logits of LENGTHS items padded to n, with one valid -inf logit (a mask among the
    valid items); Gumbel noise per list, and the same noise at the padded positions."""
    lists, x, mask = _batch(layout, n, seed)
    lists[2][4] = -np.inf
    x[mask] = np.concatenate(lists)
    noise = [
        np.asarray(jax.random.gumbel(jax.random.key(b), (len(v),))) for b, v in enumerate(lists)
    ]
    g = np.zeros_like(x)
    g[mask] = np.concatenate(noise)
    return lists, x, mask, noise, g


@pytest.mark.parametrize("matrix", [False, True])
def test_plackett_luce_sample_equals_unpadded(matrix):
    lists, _, _, noise, _ = _pl_setup("prefix")
    refs = [
        jr.reparam.plackett_luce(v, matrix=matrix).transform(e) if len(v) else None
        for v, e in zip(lists, noise)
    ]
    for layout, n in (("prefix", N), ("scattered", N), ("scattered", N2)):
        _, x, mask, _, g = _pl_setup(layout, n)
        for pad in PADS:
            d = jr.reparam.plackett_luce(_with_pad(x, mask, pad), matrix=matrix, where=mask)
            out = np.asarray(d.transform(g))
            for b, v in enumerate(lists):
                m, pos = len(v), np.flatnonzero(mask[b])
                if matrix:  # padded rows and columns are 0
                    assert np.all(out[b][m:] == 0) and np.all(out[b][:, ~mask[b]] == 0)
                    if m:
                        np.testing.assert_array_equal(out[b][:m][:, mask[b]], refs[b])
                else:  # the valid items, by their padded indices; then the fill value
                    np.testing.assert_array_equal(out[b][m:], 0.0)
                    if m:
                        np.testing.assert_array_equal(out[b][:m], pos[np.asarray(refs[b], int)])


@pytest.mark.parametrize("matrix", [False, True])
def test_plackett_luce_log_prob_equals_unpadded(matrix):
    lists = _pl_setup("prefix")[0]
    rng = np.random.default_rng(4)
    perms = [rng.permutation(len(v)) for v in lists]
    perms[2] = np.array([1, 0, 3, 2, 4])  # the -inf item (4) last among the valid ones

    def encode(b, pos, n, fill):
        """perms[b] of the valid items at ``pos``, padded to n with ``fill``."""
        m = len(pos)
        if matrix:
            p = np.full((n, n), fill, np.float32)
            p[:m] = 0.0
            p[np.arange(m), pos[perms[b]]] = 1.0
            return p
        idx = np.full(n, fill, np.float32)
        idx[:m] = pos[perms[b]]
        return idx

    def lp(logits, w, xs):
        return jr.reparam.plackett_luce(logits, matrix=matrix, where=w).log_prob(xs)

    @jax.jit
    def value_and_grad(logits, w, xs):  # the gradient of Σ log_prob over the batch
        return lp(logits, w, xs), jax.grad(lambda s: jnp.sum(lp(s, w, xs)))(logits)

    rows = [b for b, v in enumerate(lists) if len(v)]
    refs = jax.jit(lambda vs, xs: [value_and_grad(v, None, x) for v, x in zip(vs, xs)])(
        tuple(lists[b] for b in rows),
        tuple(encode(b, np.arange(len(lists[b])), len(lists[b]), 0.0) for b in rows),
    )
    refs = dict(zip(rows, jax.tree.map(np.asarray, refs)))
    results = []
    # The index form also at a second padded length (its own program).
    configs = [("scattered", N), ("prefix", N)] + ([] if matrix else [("scattered", N2)])
    for layout, n in configs:
        _, x, mask, _, _ = _pl_setup(layout, n)
        for fill in (0.0, np.nan, 7.0):  # what the padded positions of x hold is ignored
            xs = np.stack([encode(b, np.flatnonzero(mask[b]), n, fill) for b in range(4)])
            for pad in PADS:
                got, g = jax.tree.map(
                    np.asarray, value_and_grad(jnp.asarray(_with_pad(x, mask, pad)), mask, xs)
                )
                results.append(np.asarray(got))
                assert np.all(np.isfinite(np.asarray(g)))
                np.testing.assert_array_equal(np.asarray(g)[~mask], 0.0)
                assert got[1] == 0.0  # the empty permutation has probability 1
                for b, (ref, gref) in refs.items():
                    np.testing.assert_allclose(got[b], ref, rtol=1e-5, err_msg=f"row {b}")
                    np.testing.assert_allclose(g[b][mask[b]], gref, rtol=1e-5, atol=1e-6)
        # Outside the support: a padded item listed in the first m positions.
        bad = np.stack([encode(b, np.flatnonzero(mask[b]), n, 0.0) for b in range(4)])
        pad_item = np.flatnonzero(~mask[0])[0]
        bad[0][0] = np.eye(n)[pad_item] if matrix else pad_item
        assert value_and_grad(x, mask, bad)[0][0] == -np.inf
    # Nothing depends on the layout or the padded length (the normaliser included).
    np.testing.assert_allclose(
        np.stack(results), np.broadcast_to(results[0], (len(results), 4)), 1e-6
    )


def test_plackett_luce_log_prob_hessian_and_own_samples():
    lists, x, mask, noise, g = _pl_setup("scattered")
    b = 2
    v, w = jnp.asarray(lists[b]), mask[b]
    xp = jnp.asarray(_with_pad(x, mask, np.nan))

    @jax.jit
    def run(xp, v):
        perm = jr.reparam.plackett_luce(v).transform(noise[b])  # of the unpadded list
        s = jr.reparam.plackett_luce(xp[b], where=w).transform(g[b])  # the padded sample
        h = jax.hessian(lambda s_: jr.reparam.plackett_luce(s_, where=w).log_prob(s))(xp[b])
        hv = jax.hessian(lambda v: jr.reparam.plackett_luce(v).log_prob(perm))(v)
        # log_prob of its own samples (vmap over the rows) is that of the unpadded one.
        sw = jax.vmap(lambda s_, w, g: jr.reparam.plackett_luce(s_, where=w).transform(g))(
            xp, mask, g
        )
        lp = jr.reparam.plackett_luce(xp, where=mask).log_prob(sw)
        return h, hv, lp, jr.reparam.plackett_luce(v).log_prob(perm)

    h, hv, lp, lpv = jax.tree.map(np.asarray, run(xp, v))
    assert np.all(np.isfinite(np.asarray(h)))
    np.testing.assert_array_equal(np.asarray(h)[~w], 0.0)
    np.testing.assert_array_equal(np.asarray(h)[:, ~w], 0.0)
    np.testing.assert_allclose(h[np.ix_(w, w)], hv, rtol=1e-5, atol=1e-6)
    assert np.any(np.abs(np.asarray(hv)) > 1e-2)
    np.testing.assert_allclose(lp[b], lpv, rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(lp)))


def _k_subset_all(logits, k, u, mask, c, z=None):
    """Sample, log_prob of ``z`` (of the sample if None), marginals, and the gradients of
    Σ c · sample (SIMPLE), Σ log_prob and Σ c · marginals in the logits."""

    def sample(s):
        return jr.reparam.k_subset(s, k, where=mask).transform(u)

    z = jax.lax.stop_gradient(sample(logits)) if z is None else z

    def log_prob(s):
        return jr.reparam.k_subset(s, k, where=mask).log_prob(z)

    def marginals(s):
        return jr.reparam.k_subset_marginals(s, k, where=mask)

    return (
        sample(logits),
        log_prob(logits),
        marginals(logits),
        jax.grad(lambda s: jnp.sum(c * sample(s)))(logits),
        jax.grad(lambda s: jnp.sum(log_prob(s)))(logits),
        jax.grad(lambda s: jnp.sum(c * marginals(s)))(logits),
    )


def test_k_subset_equals_unpadded():
    # The reference is each list alone (k = min(K, m): all the valid items where fewer
    # than K), so nothing depends on the padded length.
    lists = _batch("prefix")[0]
    rng = np.random.default_rng(5)
    noise = [rng.uniform(size=len(v)).astype(np.float32) for v in lists]
    cs = [rng.normal(size=len(v)).astype(np.float32) for v in lists]
    groups = {}  # lists of one length are one batch of the unpadded law
    for b, v in enumerate(lists):
        if len(v):
            groups.setdefault(len(v), []).append(b)

    @jax.jit
    def references(vs, us, cs):
        return [_k_subset_all(v, min(K, m), u, None, c) for v, u, c, m in zip(vs, us, cs, groups)]

    def stack(arrays):
        return tuple(np.stack([arrays[b] for b in rows]) for rows in groups.values())

    res = jax.tree.map(np.asarray, references(stack(lists), stack(noise), stack(cs)))
    refs = {
        b: [a[i] for a in r] for rows, r in zip(groups.values(), res) for i, b in enumerate(rows)
    }
    run = jax.jit(_k_subset_all, static_argnums=1)
    for layout in ("prefix", "scattered"):
        _, x, mask = _batch(layout)
        u = np.full_like(x, 0.5)
        u[mask] = np.concatenate(noise)
        c = np.ones_like(x)  # padded outputs are constants: their weight adds nothing
        c[mask] = np.concatenate(cs)
        zp = np.full_like(x, np.nan)  # log_prob ignores the padded entries of z
        zp[mask] = np.concatenate([refs[b][0] if b in refs else [] for b in range(4)])
        for pad in PADS:
            res = run(jnp.asarray(_with_pad(x, mask, pad)), K, u, mask, c, zp)
            res = jax.tree.map(np.asarray, res)
            for a in res:
                assert np.all(np.isfinite(a))
            for a in (res[0], *res[2:]):  # fill 0, and exactly zero gradient
                np.testing.assert_array_equal(a[~mask], 0.0)
            assert res[1][1] == 0.0  # the empty subset has probability 1
            for b, ref in refs.items():
                w = mask[b]
                np.testing.assert_array_equal(res[0][b][w], ref[0])
                np.testing.assert_allclose(res[1][b], ref[1], rtol=1e-5)
                for got, want in zip(res[2:], ref[2:]):
                    np.testing.assert_allclose(got[b][w], want, rtol=1e-5, atol=1e-6)
