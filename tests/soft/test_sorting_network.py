"""Tests for jr.soft.sorting_network (differentiable sorting networks, Petersen et al.).

References: the `diffsort` package (the authors' PyTorch implementation), through the
stored outputs in `data/diffsort_reference.npz` (written by
`data/make_diffsort_reference.py`) and, where `torch` and `diffsort` import, live on
fresh inputs; `np.sort` / `np.argsort` for the hard limit; finite differences for the
derivatives.
"""

# String options pass through loops and `**kw` (typed str, not the Literal parameters).
# pyright: reportArgumentType=false

from __future__ import annotations

import functools
import importlib.util
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrelax as jr

NETWORKS = ["odd_even", "bitonic"]
SIGMOIDS = ["logistic", "logistic_phi", "cauchy", "optimal"]
MONOTONIC = ["cauchy", "optimal"]  # Petersen et al. 2022, Table 1

DATA = os.path.join(os.path.dirname(__file__), "data", "diffsort_reference.npz")
REF_SIZES = (3, 5, 8, 16, 32)
REF_STEEPNESS = (2.0, 20.0)


def _weights(n: int) -> tuple[np.ndarray, np.ndarray]:
    # The fixed linear functional of data/make_diffsort_reference.py (`weights`), C in
    # diffsort's orientation C[b, input, output].
    b = np.arange(2)[:, None, None]
    i = np.arange(n)[None, :, None]
    j = np.arange(n)[None, None, :]
    c = np.cos(1.0 + 0.9 * np.arange(n) + 2.0 * np.arange(2)[:, None])
    cm = np.sin(1.0 + b + 0.7 * i + 1.3 * j)
    return c.astype(np.float32), cm.astype(np.float32)


def _value_and_grad(x, c, w, network, sigmoid, steepness, where=None):
    """Values, matrix and the gradient in `x` of sum(c * values) + sum(w * matrix)."""

    def f(x):
        v, p = jr.soft.sorting_network(
            x, network=network, sigmoid=sigmoid, steepness=steepness, where=where
        )
        return jnp.sum(c * v) + jnp.sum(w * p), (v, p)

    g, (v, p) = jax.grad(f, has_aux=True)(x)
    return v, p, g


# --------------------------------------------------------------------------------------
# diffsort: stored reference and live comparison


@pytest.mark.parametrize("network", NETWORKS)
def test_matches_diffsort_reference(network):
    # Every sigmoid x n x steepness of data/diffsort_reference.npz, to 1e-5: (1) the plain
    # call, values and matrices; (2) the lists of steepness 20 padded to 32 entries at
    # random positions (the padding holds NaN and ±inf), in one `where=` batch per
    # sigmoid: values, matrices and the gradient of the reference's linear functional,
    # the fill 0 elsewhere, zero gradient for the padding. One compiled program per
    # network: compiling dominates the time.
    ref = np.load(DATA)
    rng = np.random.default_rng(3)
    width = 32
    plain_x, rows, masks, cws, wws, where_ = {}, {}, {}, {}, {}, {}
    for sg in SIGMOIDS:
        for s in REF_STEEPNESS:
            for n in REF_SIZES:
                plain_x[f"{sg}/{n}/{s}"] = ref[f"{network}/{sg}/{n}/{s}/x"]
        for s in REF_STEEPNESS[1:]:
            r_x, r_m, r_c, r_w = [], [], [], []
            for n in REF_SIZES:
                key = f"{network}/{sg}/{n}/{s}/"
                c, cm = _weights(n)
                for b in range(2):
                    pos = np.sort(rng.choice(width, n, replace=False))
                    row = rng.choice(np.array([np.nan, np.inf, -np.inf, 7.0], np.float32), width)
                    row[pos] = ref[key + "x"][b]
                    cw = np.zeros(width, np.float32)
                    cw[:n] = c[b]
                    ww = np.zeros((width, width), np.float32)
                    ww[np.ix_(np.arange(n), pos)] = cm[b].T  # C[input, output] -> P[out, in]
                    r_x.append(row)
                    r_m.append(np.isin(np.arange(width), pos))
                    r_c.append(cw)
                    r_w.append(ww)
                    where_[key + str(b)] = (len(r_x) - 1, pos)
            k = f"{sg}/{s}"
            rows[k], masks[k] = np.array(r_x), np.array(r_m)
            cws[k], wws[k] = np.array(r_c), np.array(r_w)

    @jax.jit
    def run(plain_x, rows, masks, cws, wws):
        plain = {
            k: jr.soft.sorting_network(
                x, network=network, sigmoid=k.split("/")[0], steepness=float(k.split("/")[2])
            )
            for k, x in plain_x.items()
        }
        padded = {
            k: _value_and_grad(
                x, cws[k], wws[k], network, k.split("/")[0], float(k.split("/")[1]), masks[k]
            )
            for k, x in rows.items()
        }
        return plain, padded

    plain, padded = run(plain_x, rows, masks, cws, wws)
    for sg in SIGMOIDS:
        for n in REF_SIZES:
            for s in REF_STEEPNESS:
                key = f"{network}/{sg}/{n}/{s}/"
                # diffsort returns (x @ X, X): X[b, input, output] is our P transposed.
                want_v, want_p = ref[key + "values"], np.swapaxes(ref[key + "matrix"], -1, -2)
                v, p = plain[f"{sg}/{n}/{s}"]
                np.testing.assert_allclose(v, want_v, atol=1e-5, err_msg=key)
                np.testing.assert_allclose(p, want_p, atol=1e-5, err_msg=key)
                if s not in REF_STEEPNESS[1:]:
                    continue
                vw, pw, gw = (np.asarray(a) for a in padded[f"{sg}/{s}"])
                for b in range(2):
                    r, pos = where_[key + str(b)]
                    np.testing.assert_allclose(vw[r, :n], want_v[b], atol=1e-5, err_msg=key)
                    np.testing.assert_array_equal(vw[r, n:], 0.0)
                    np.testing.assert_allclose(pw[r][:n][:, pos], want_p[b], atol=1e-5)
                    assert np.all(np.delete(pw[r], pos, axis=1) == 0.0) and np.all(pw[r][n:] == 0)
                    # Gradients: relative to the largest entry, 5e-5. diffsort's float32
                    # rounding: our float64 gradient differs from these stored float32
                    # ones by up to 2.2e-5 (relative), from diffsort's float64 ones by
                    # < 1e-9 (measured on this file's inputs).
                    want_g = ref[key + "grad"][b]
                    tol = 5e-5 * max(1.0, np.abs(want_g).max())
                    np.testing.assert_allclose(gw[r, pos], want_g, atol=tol, err_msg=key)
                    assert np.all(np.delete(gw[r], pos) == 0.0)


_HAS_DIFFSORT = importlib.util.find_spec("diffsort") is not None and (
    importlib.util.find_spec("torch") is not None
)


@pytest.mark.skipif(not _HAS_DIFFSORT, reason="needs the peer package diffsort (and torch)")
@pytest.mark.parametrize("network", NETWORKS)
def test_matches_diffsort_live(network):
    # Fresh inputs and sizes not in the stored file, another art_lambda, float32 and
    # float64 (where both compute the same float64 arithmetic: to 1e-8), and each
    # variable-length row against diffsort's network of its own length.
    import torch  # pyright: ignore[reportMissingImports]
    from diffsort import DiffSortNet  # pyright: ignore[reportMissingImports]

    rng = np.random.default_rng(11)
    for sigmoid in SIGMOIDS:
        for n, s, lam in ((6, 5.0, 0.25), (13, 15.0, 0.5)):
            x = rng.normal(size=(3, n)).astype(np.float32)
            net = DiffSortNet(network, n, steepness=s, art_lambda=lam, distribution=sigmoid)
            kw = dict(network=network, sigmoid=sigmoid, steepness=s, art_lambda=lam)
            rv, rm = net(torch.tensor(x))
            v, p = jr.soft.sorting_network(x, **kw)
            np.testing.assert_allclose(v, rv.numpy(), atol=1e-5)
            np.testing.assert_allclose(p, rm.numpy().transpose(0, 2, 1), atol=1e-5)
            x64 = x.astype(np.float64)
            xt = torch.tensor(x64, requires_grad=True)
            rv, rm = net(xt)
            c = np.cos(np.arange(n, dtype=np.float64))
            (torch.sum(torch.tensor(c) * rv) + torch.sum(rm**2)).backward()
            assert xt.grad is not None
            with jax.enable_x64(True):

                def f(x, kw=kw, c=c):
                    v, p = jr.soft.sorting_network(x, **kw)
                    return jnp.sum(c * v) + jnp.sum(p**2), (v, p)

                g, (v, p) = jax.grad(f, has_aux=True)(jnp.asarray(x64))
                np.testing.assert_allclose(v, rv.detach().numpy(), atol=1e-8)
                np.testing.assert_allclose(p, rm.detach().numpy().transpose(0, 2, 1), atol=1e-8)
                np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-7, atol=1e-8)
            mask = rng.random((3, n)) < 0.7
            mask[:, :2] = True
            vm, pm = jr.soft.sorting_network(x, where=mask, **kw)
            for r in range(3):
                m = int(mask[r].sum())
                net = DiffSortNet(network, m, steepness=s, art_lambda=lam, distribution=sigmoid)
                rv, rm = net(torch.tensor(x[r][mask[r]][None]))
                np.testing.assert_allclose(vm[r, :m], rv[0].numpy(), atol=1e-5)
                np.testing.assert_allclose(pm[r][:m][:, mask[r]], rm[0].numpy().T, atol=1e-5)


# --------------------------------------------------------------------------------------
# Properties. Shapes and options are few and shared between tests: every new combination
# compiles a new program, and compiling is most of this file's time.

X = np.array([0.3, -1.2, 2.5, 0.9, -0.4, 1.7, -2.2], np.float32)
W = np.cos(np.arange(56, dtype=np.float32)).reshape(7, 8)  # a fixed linear functional


def _functional(x, **kw):
    v, p = jr.soft.sorting_network(x, **kw)
    return jnp.sum(W[:, 0] * v) + jnp.sum(W[:, 1:] * p)


@pytest.mark.parametrize("network", NETWORKS)
def test_structure_and_hard_limit(network):
    for sigmoid in SIGMOIDS:
        v, p = jr.soft.sorting_network(X, network=network, sigmoid=sigmoid, steepness=3.0)
        # Doubly stochastic, and the values are the matrix applied to x.
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)
        np.testing.assert_allclose(p.sum(-2), 1.0, atol=1e-6)
        assert np.all(np.asarray(p) >= 0)
        np.testing.assert_allclose(p @ X, v, atol=1e-5)
        assert np.abs(v - np.sort(X)).max() > 1e-2  # soft at this steepness
        # Large steepness: the exact sort (gaps here are >= 0.4).
        v, p = jr.soft.sorting_network(X, network=network, sigmoid=sigmoid, steepness=1e4)
        np.testing.assert_allclose(v, np.sort(X), atol=1e-3)
        np.testing.assert_allclose(p, np.eye(7)[np.argsort(X)], atol=1e-3)
        # Ties: equal entries are mixed exactly (the values are unchanged).
        v, p = jr.soft.sorting_network(np.ones(7, np.float32), network=network, sigmoid=sigmoid)
        np.testing.assert_array_equal(v, 1.0)


def test_descending_and_hard():
    x = jnp.asarray(X)
    v, p = jr.soft.sorting_network(x, steepness=2.0)
    vd, pd = jr.soft.sorting_network(x, steepness=2.0, descending=True)
    np.testing.assert_array_equal(vd, v[::-1])
    np.testing.assert_array_equal(pd, p[::-1])
    for desc in (False, True):
        order = np.argsort(-X if desc else X, stable=True)
        vh, ph = jr.soft.sorting_network(x, descending=desc, hard=True)
        np.testing.assert_array_equal(vh, X[order])
        np.testing.assert_array_equal(ph, np.eye(7)[order])
    # Straight-through: the gradient is the relaxed one.
    g_hard = jax.grad(functools.partial(_functional, descending=True, hard=True))(x)
    g_soft = jax.grad(functools.partial(_functional, descending=True))(x)
    np.testing.assert_allclose(g_hard, g_soft, rtol=1e-6)
    # Ties: the hard matrix follows the stable order, also when descending.
    t = np.array([1.0, 3.0, 1.0, 2.0, 3.0, 0.0, 1.0], np.float32)
    for desc in (False, True):
        _, ph = jr.soft.sorting_network(t, descending=desc, hard=True)
        np.testing.assert_array_equal(
            jnp.argmax(ph, -1), np.argsort(-t if desc else t, stable=True)
        )


@pytest.mark.parametrize(
    ("network", "sigmoid"),
    [(nw, sg) for nw in NETWORKS for sg in MONOTONIC]
    + [("odd_even", "logistic"), ("bitonic", "logistic_phi")],
)
def test_monotonic_sigmoids(network, sigmoid):
    # Petersen et al. 2022 (Monotonic Differentiable Sorting Networks), Table 1 and Thm. 3:
    # with the Cauchy and optimal sigmoids every sorted output is non-decreasing in every
    # input (a non-negative Jacobian); the logistic ones are not (positive control: the
    # same inputs give a clearly negative entry). float64, so that the optimal sigmoid's
    # exact zeros (∂ min(a, b)/∂a = 0 in its tails) do not round below 0.
    rng = np.random.default_rng(5)
    with jax.enable_x64(True):
        x = jnp.asarray(3.0 * rng.normal(size=(4, 7)))

        def values(x):
            return jr.soft.sorting_network(x, network=network, sigmoid=sigmoid, steepness=2.0)[0]

        jac = jax.vmap(jax.jacfwd(values))(x)
        if sigmoid in MONOTONIC:
            assert jac.min() >= -1e-12
        else:
            assert jac.min() < -0.05


def test_logistic_comparator_is_not_monotonic():
    # One comparator, closed form: min_σ(a, b) = b + σ(s(b − a)) (a − b) has
    # ∂/∂a = σ(v) + v σ'(v), v = s(b − a): σ(v)(1 + v(1 − σ(v))) for the logistic, < 0
    # for v < −1.28; 1/2 + arctan(v)/π + v/(π(1 + v²)) > 0 for the Cauchy sigmoid.
    a, b, s = 3.0, 0.0, 1.0
    v = s * (b - a)
    sig = 1.0 / (1.0 + np.exp(-v))
    for sigmoid, expected in (
        ("logistic", sig + v * sig * (1.0 - sig)),
        ("cauchy", 0.5 + np.arctan(v) / np.pi + v / (np.pi * (1.0 + v * v))),
    ):
        g = jax.grad(
            lambda x, sg=sigmoid: jr.soft.sorting_network(x, sigmoid=sg, steepness=s)[0][0]
        )(jnp.array([a, b]))
        np.testing.assert_allclose(g[0], expected, rtol=1e-5)
    assert sig + v * sig * (1.0 - sig) < -0.05


@pytest.mark.parametrize(
    ("network", "sigmoid"),
    [
        ("odd_even", "logistic_phi"),
        ("odd_even", "optimal"),
        ("bitonic", "logistic"),
        ("bitonic", "cauchy"),
    ],
)
def test_second_derivatives(network, sigmoid):
    # Plain autodiff through the network: Hessian-vector products (forward over reverse)
    # against central differences of the gradient, float64 (step 1e-5: error ~1e-9).
    # Every sigmoid once (the layer code is shared by the networks).
    # The optimal sigmoid's second derivative jumps where s|b − a| = 1/4: the inputs keep
    # every pairwise s|b − a| at least 0.05 away from it (checked).
    x = X.astype(np.float64)
    d = np.abs(x[:, None] - x[None, :])[np.triu_indices(7, 1)]
    s = 0.7
    assert np.all(np.abs(s * d - 0.25) > 0.05)
    dirs = np.cos(np.arange(14.0)).reshape(2, 7)
    with jax.enable_x64(True):
        wf = jnp.asarray(W, jnp.float64)

        def f(x):
            v, p = jr.soft.sorting_network(x, network=network, sigmoid=sigmoid, steepness=s)
            return jnp.sum(wf[:, 0] * v) + jnp.sum(wf[:, 1:] * p)

        grad = jax.jit(jax.grad(f))
        hvp = jax.jit(lambda x, u: jax.jvp(grad, (x,), (u,))[1])
        for u in dirs:
            h = 1e-5
            fd = (grad(x + h * u) - grad(x - h * u)) / (2 * h)
            np.testing.assert_allclose(hvp(x, u), fd, atol=1e-7, rtol=1e-6)
            assert np.abs(fd).max() > 1e-2  # not trivially zero


def test_jit_vmap_axis():
    x = jnp.asarray(np.stack([X, X[::-1], X * 2]))
    v, p = jr.soft.sorting_network(x, network="bitonic")
    assert v.shape == (3, 7) and p.shape == (3, 7, 7)
    vj, pj = jax.jit(lambda x: jr.soft.sorting_network(x, network="bitonic"))(x)
    np.testing.assert_allclose(vj, v, atol=1e-6)
    np.testing.assert_allclose(pj, p, atol=1e-6)
    vv, pv = jax.vmap(lambda r: jr.soft.sorting_network(r, network="bitonic"))(x)
    np.testing.assert_allclose(vv, v, atol=1e-6)
    np.testing.assert_allclose(pv, p, atol=1e-6)
    va, pa = jr.soft.sorting_network(x.T, network="bitonic", axis=0)
    np.testing.assert_allclose(va, v.T, atol=1e-6)
    np.testing.assert_allclose(pa, p, atol=1e-6)
    # Batch axes lead the matrix in order; a mask follows `axis`.
    x3 = jnp.stack([x.T, x.T + 1.0])  # [2, 7, 3]
    v3, p3 = jr.soft.sorting_network(x3, axis=1, where=jnp.ones((2, 7, 3), bool))
    assert v3.shape == (2, 7, 3) and p3.shape == (2, 3, 7, 7)
    v0, _ = jr.soft.sorting_network(x)
    np.testing.assert_allclose(v3[0], v0.T, atol=1e-6)
    np.testing.assert_allclose(p3[1], jr.soft.sorting_network(x + 1.0)[1], atol=1e-6)
    # Empty batch.
    ve, pe = jr.soft.sorting_network(jnp.zeros((0, 4)))
    assert ve.shape == (0, 4) and pe.shape == (0, 4, 4)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32, "float64"])
def test_dtypes(dtype):
    with jax.enable_x64(dtype == "float64"):
        dt = jnp.dtype(dtype)
        x = jnp.asarray(X, dt)
        v, p = jr.soft.sorting_network(x, steepness=3.0)
        assert v.dtype == dt and p.dtype == dt
        ref = jr.soft.sorting_network(X.astype(np.float64), steepness=3.0)  # float32 w/o x64
        tol = 1e-6 if dt.itemsize >= 4 else 2e-2  # half precision: the input is rounded
        np.testing.assert_allclose(np.asarray(v, np.float32), ref[0], atol=3 * tol)
        np.testing.assert_allclose(np.asarray(p, np.float32), ref[1], atol=tol)
        g = jax.grad(lambda x: jnp.sum(jr.soft.sorting_network(x)[0] * x))(x)
        assert g.dtype == dt and np.all(np.isfinite(np.asarray(g, np.float32)))


def test_float64_matches_diffsort_reference():
    # The float64 path against the (float32) diffsort outputs: within their rounding.
    ref = np.load(DATA)
    with jax.enable_x64(True):
        for network in NETWORKS:
            key = f"{network}/cauchy/16/20.0/"
            v, p = jr.soft.sorting_network(
                jnp.asarray(ref[key + "x"], jnp.float64), network=network, steepness=20.0
            )
            assert v.dtype == jnp.float64
            np.testing.assert_allclose(v, ref[key + "values"], atol=1e-5)
            np.testing.assert_allclose(p, np.swapaxes(ref[key + "matrix"], -1, -2), atol=1e-5)


def test_large_and_tiny_values_finite():
    # |x| from 1e-30 to 1e30: the comparators' s (b − a) under- or overflow; every sigmoid
    # (one network: the layer code is shared) stays finite in values and gradients.
    def f(x):
        return sum(_functional(x, sigmoid=sg, steepness=1.0) for sg in SIGMOIDS)

    vg = jax.jit(jax.value_and_grad(f))
    for scale in (1e-30, 1e30):
        val, g = vg(jnp.asarray(X * np.float32(scale)))
        assert np.isfinite(val) and np.all(np.isfinite(g)), scale


# --------------------------------------------------------------------------------------
# Variable lengths: where=


def test_where_padded_equals_unpadded():
    # Lists of 0, 1, 3 and 7 entries in rows of 12 and of 7 (padding: NaN), at random
    # positions, bitonic (its lists start at a wire that depends on their length): the
    # valid part equals the unpadded call (values and matrix; and for 7 entries the
    # gradient of a functional of them) for the descending soft and hard variants (the
    # plain one, for every network and sigmoid, is in test_matches_diffsort_reference);
    # the rest is 0, the padding and the empty row get zero gradient, and the padded
    # length changes nothing.
    rng = np.random.default_rng(7)
    lists = [X[:m] * np.float32(1 + 0.1 * m) for m in (0, 1, 3, 7)]
    wv = np.cos(np.arange(7, dtype=np.float32))

    def pad(width):
        x = np.full((len(lists), width), np.nan, np.float32)
        mask = np.zeros((len(lists), width), bool)
        for r, lst in enumerate(lists):
            pos = np.sort(rng.choice(width, len(lst), replace=False))
            x[r, pos], mask[r, pos] = lst, True
        return jnp.asarray(x), mask

    for kw in ({"descending": True}, {"descending": True, "hard": True}):
        x, mask = pad(12)

        def f(x, mask=mask, kw=kw):
            v, p = jr.soft.sorting_network(x, network="bitonic", where=mask, **kw)
            return jnp.sum(v[:, :7] * wv) + jnp.sum(p[:, :7, :] ** 2), (v, p)

        g, v, p = (np.asarray(a) for a in jax.tree.leaves(jax.grad(f, has_aux=True)(x)))
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(p))
        assert np.all(np.isfinite(g)) and np.all(g[~mask] == 0.0)
        for r, lst in enumerate(lists):
            m = len(lst)
            np.testing.assert_array_equal(v[r, m:], 0.0)
            assert np.all(p[r][m:] == 0) and np.all(p[r][:, ~mask[r]] == 0)
            if m == 1:  # a single entry is returned as it is
                np.testing.assert_array_equal(v[r, 0], lst[0])
                np.testing.assert_array_equal(p[r][0][mask[r]], 1.0)
            elif m == 3:
                v1, p1 = jr.soft.sorting_network(lst, network="bitonic", **kw)
                np.testing.assert_allclose(v[r, :m], v1, atol=1e-6)
                np.testing.assert_allclose(p[r][:m][:, mask[r]], p1, atol=1e-6)
            elif m == 7:

                def f1(x, kw=kw):
                    v, p = jr.soft.sorting_network(x, network="bitonic", **kw)
                    return jnp.sum(v * wv) + jnp.sum(p**2), (v, p)

                g1, (v1, p1) = jax.grad(f1, has_aux=True)(jnp.asarray(lst))
                np.testing.assert_allclose(v[r, :m], v1, atol=1e-6)
                np.testing.assert_allclose(p[r][:m][:, mask[r]], p1, atol=1e-6)
                np.testing.assert_allclose(g[r][mask[r]], g1, atol=1e-5)
        # The same lists in rows of 7: the same outputs.
        x7, mask7 = pad(7)
        v7, p7 = jr.soft.sorting_network(x7, network="bitonic", where=mask7, **kw)
        np.testing.assert_allclose(v7, v[:, :7], atol=1e-6)
        for r in range(len(lists)):
            m = len(lists[r])
            np.testing.assert_allclose(p7[r][:m][:, mask7[r]], p[r][:m][:, mask[r]], atol=1e-6)


# --------------------------------------------------------------------------------------
# Bad input, poisoning, size warning


def test_bad_inputs():
    x = jnp.asarray(X)
    cases = [
        (lambda: jr.soft.sorting_network(x, network="batcher"), ValueError, "`network`"),
        (lambda: jr.soft.sorting_network(x, sigmoid="gaussian"), ValueError, "`sigmoid`"),
        (lambda: jr.soft.sorting_network(x[:1]), ValueError, "at least 2 entries"),
        (lambda: jr.soft.sorting_network(jnp.zeros((3, 1))), ValueError, "at least 2"),
        (lambda: jr.soft.sorting_network(x, steepness=0.0), ValueError, "`steepness`"),
        (lambda: jr.soft.sorting_network(x, steepness=-1.0), ValueError, "`steepness`"),
        (lambda: jr.soft.sorting_network(x, steepness=jnp.inf), ValueError, "`steepness`"),
        (lambda: jr.soft.sorting_network(x, steepness=jnp.nan), ValueError, "`steepness`"),
        (lambda: jr.soft.sorting_network(x, steepness=jnp.ones(7)), ValueError, "`steepness`"),
        (lambda: jr.soft.sorting_network(x, art_lambda=-0.1), ValueError, "`art_lambda`"),
        (lambda: jr.soft.sorting_network(x, where=jnp.ones(3, bool)), ValueError, "`where`"),
        (lambda: jr.soft.sorting_network(x, where=jnp.ones((1, 7), bool)), ValueError, "`where`"),
        (lambda: jr.soft.sorting_network(x, where=jnp.ones(7)), TypeError, "`where`"),
        (lambda: jr.soft.sorting_network(x, axis=1), ValueError, "`axis`"),
        (lambda: jr.soft.sorting_network(1.0), ValueError, "at least one axis"),
    ]
    for call, err, match in cases:
        with pytest.raises(err, match=match):
            call()


def test_traced_steepness_poisons():
    f = jax.jit(lambda s: jr.soft.sorting_network(jnp.asarray(X), steepness=s))
    v, p = f(2.0)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(p))
    for bad in (0.0, -2.0):
        v, p = f(bad)
        assert np.all(np.isnan(v)) and np.all(np.isnan(p))
        assert np.isnan(jax.grad(lambda s: f(s)[0][0])(bad))
    lam = jax.jit(lambda a: jr.soft.sorting_network(jnp.asarray(X), art_lambda=a)[0])
    assert np.all(np.isfinite(lam(0.5))) and np.all(np.isnan(lam(-0.5)))


def test_large_n_warns():
    # Trace only: the warning is issued at trace time above 256 MiB of estimated
    # temporaries (layers x wires x n x 4 bytes; see the docstring).
    for network, ok, big in (("odd_even", 406, 407), ("bitonic", 1024, 1025)):

        def f(x, nw=network):
            return jr.soft.sorting_network(x, network=nw)

        with pytest.warns(UserWarning, match="jr.soft.sort"):
            jax.eval_shape(f, jax.ShapeDtypeStruct((big,), jnp.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            jax.eval_shape(f, jax.ShapeDtypeStruct((ok,), jnp.float32))
