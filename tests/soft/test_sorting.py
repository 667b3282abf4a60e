"""Tests for jr.soft.sort, jr.soft.rank and jr.soft.topk_mask."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import optimize
from scipy.special import logsumexp

import jaxrelax as jr
from jaxrelax._src.soft import _isotonic

# --------------------------------------------------------------------------------------
# Independent references (small n): projections onto the permutahedron solved as convex
# programs with SLSQP over its inequality description (sum of the k largest entries is
# at most the sum of the k largest of w, with equality for k = n).


def _project_reference(z, w, kl=False):
    """argmin_{y in P(w)} ½‖y − z‖² (l2), or log argmin_{λ in P(exp w)} KL(λ, exp z) (kl)."""
    z, w = np.asarray(z, np.float64), np.sort(np.asarray(w, np.float64))[::-1]
    n = len(z)
    subsets = [s for k in range(1, n) for s in itertools.combinations(range(n), k)]
    target = np.exp(w) if kl else w
    cons = [{"type": "eq", "fun": lambda y: np.sum(y) - target.sum()}]
    for s in subsets:
        bound = target[: len(s)].sum()
        cons.append({"type": "ineq", "fun": lambda y, s=s, b=bound: b - y[list(s)].sum()})
    if kl:
        ez = np.exp(z)

        def obj(y):
            return np.sum(y * np.log(y / ez) - y + ez)

        x0 = np.full(n, target.mean())
        bounds = [(1e-12, None)] * n
    else:

        def obj(y):
            return 0.5 * np.sum((y - z) ** 2)

        x0, bounds = np.full(n, w.mean()), None
    res = optimize.minimize(
        obj, x0, constraints=cons, bounds=bounds, method="SLSQP", options={"ftol": 1e-14}
    )
    return np.log(res.x) if kl else res.x


def _ref_sort(x, eps, kl=False, descending=False):
    n = len(x)
    rho = np.arange(n, 0, -1) / eps
    if descending:
        return np.sort(_project_reference(rho, x, kl))[::-1]
    return -np.sort(_project_reference(rho, -np.asarray(x), kl))[::-1]


def _ref_rank(x, eps, kl=False, descending=False):
    n = len(x)
    z = (-np.asarray(x) if descending else np.asarray(x)) / eps
    rho = np.arange(n, 0, -1.0)
    if kl:
        return np.exp(_project_reference(z, np.log(rho), kl=True))
    return _project_reference(z, rho)


def _brute_pav(y):
    """Decreasing isotonic regression by repeated pooling (plain Python)."""
    blocks = [[v, 1] for v in y]
    changed = True
    while changed:
        changed = False
        for i in range(len(blocks) - 1):
            if blocks[i][0] < blocks[i + 1][0]:
                (a, ca), (b, cb) = blocks[i], blocks[i + 1]
                blocks[i : i + 2] = [[(a * ca + b * cb) / (ca + cb), ca + cb]]
                changed = True
                break
    return np.concatenate([[v] * c for v, c in blocks])


# --------------------------------------------------------------------------------------
# Golden values (Blondel et al.'s reference implementation gives the same numbers).


@pytest.mark.parametrize("eps, expected", [(1.0, [5 / 3, 8 / 3, 11 / 3]), (0.1, [1.0, 2.0, 5.0])])
def test_sort_golden(eps, expected):
    y = jr.soft.sort(jnp.array([5.0, 1.0, 2.0]), regularization_strength=eps)
    np.testing.assert_allclose(y, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "x, eps, expected",
    [
        ([5.0, 1.0, 2.0], 2.0, [3.0, 1.25, 1.75]),
        ([5.0, 1.0, 2.0], 1.0, [3.0, 1.0, 2.0]),
        ([1.0, -2.0, 2.0, 3.0, 0.5, -1.0], 1.0, [3.875, 1.0, 4.875, 5.875, 3.375, 2.0]),
    ],
)
def test_rank_golden(x, eps, expected):
    y = jr.soft.rank(jnp.array(x), regularization_strength=eps)
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_topk_mask_golden():
    # Projection of (0.05, 1, -0.5, 0.75) onto {y in [0,1]^4, sum y = 2}: clip(z + 0.1).
    y = jr.soft.topk_mask(jnp.array([0.1, 2.0, -1.0, 1.5]), 2, regularization_strength=2.0)
    np.testing.assert_allclose(y, [0.15, 1.0, 0.0, 0.85], atol=1e-6)


# --------------------------------------------------------------------------------------
# Against the independent convex-programming reference.


@pytest.mark.parametrize("kl", [False, True])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("eps", [0.3, 1.0, 4.0])
def test_sort_matches_reference(kl, descending, eps):
    x = np.array([0.3, -1.2, 2.0, 0.9, 0.1])
    reg = "kl" if kl else "l2"
    y = jr.soft.sort(jnp.array(x), eps, reg, descending)
    np.testing.assert_allclose(y, _ref_sort(x, eps, kl, descending), atol=2e-4)


@pytest.mark.parametrize("kl", [False, True])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("eps", [0.3, 1.0, 4.0])
def test_rank_matches_reference(kl, descending, eps):
    x = np.array([0.3, -1.2, 2.0, 0.9, 0.1])
    reg = "kl" if kl else "l2"
    y = jr.soft.rank(jnp.array(x), eps, reg, descending)
    np.testing.assert_allclose(y, _ref_rank(x, eps, kl, descending), atol=2e-4)


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("eps", [0.5, 2.0, 10.0])
def test_topk_mask_matches_reference(k, eps):
    x = np.array([0.3, -1.2, 2.0, 0.9, 0.1])
    w = (np.arange(5) < k).astype(float)
    y = jr.soft.topk_mask(jnp.array(x), k, regularization_strength=eps)
    np.testing.assert_allclose(y, _project_reference(x / eps, w), atol=2e-4)
    np.testing.assert_allclose(jnp.sum(y), k, rtol=1e-6)
    assert jnp.all(y >= 0) and jnp.all(y <= 1 + 1e-6)


@pytest.mark.parametrize("n", [1, 5, 127, 129, 300])
@pytest.mark.parametrize("kl", [False, True])
def test_isotonic_solver_many_sizes(n, kl):
    # Around the chunk size (128), against plain pooling / closed forms.
    # (Scale 100 gives kl statistics whose exp overflows float32 in stale stack slots.)
    rng = np.random.default_rng(n)
    s = np.sort(rng.normal(size=(4, n)) * np.array([[0.1], [1.0], [10.0], [100.0]]))[:, ::-1]
    w = np.sort(rng.normal(size=(4, n)) * 3)[:, ::-1]
    u = np.asarray(_isotonic.project(jnp.asarray(s), jnp.asarray(w), kl), np.float64)
    for i in range(4):
        if kl:
            # Check the KKT structure: on each block of u - s (constant runs of v = s - u),
            # v equals lse(s_B) - lse(w_B), and v is non-increasing.
            v = s[i] - u[i]
            assert np.all(np.diff(v) <= 1e-4 * (1 + np.abs(v[1:])))
            edges = np.flatnonzero(np.abs(np.diff(v)) > 1e-4 * (1 + np.abs(v[1:]))) + 1
            for blk in np.split(np.arange(n), edges):
                expected = logsumexp(s[i][blk]) - logsumexp(w[i][blk])
                np.testing.assert_allclose(v[blk], expected, atol=1e-3 * (1 + abs(expected)))
        else:
            np.testing.assert_allclose(
                u[i], s[i] - _brute_pav(s[i] - w[i]), atol=1e-4 * (1 + np.abs(s[i]).max())
            )


# --------------------------------------------------------------------------------------
# Limits and invariants.


def test_hard_limit_small_eps():
    x = jax.random.normal(jax.random.key(0), (4, 50))
    np.testing.assert_allclose(jr.soft.sort(x, 1e-4), jnp.sort(x, -1), rtol=1e-6)
    np.testing.assert_allclose(jr.soft.sort(x, 1e-4, descending=True), -jnp.sort(-x, -1), rtol=1e-6)
    hard_rank = (jnp.argsort(jnp.argsort(x, -1), -1) + 1).astype(x.dtype)
    np.testing.assert_array_equal(jr.soft.rank(x, 1e-4), hard_rank)
    np.testing.assert_array_equal(jr.soft.rank(x, 1e-4, descending=True), 51.0 - hard_rank)
    np.testing.assert_allclose(jr.soft.rank(x, 1e-4, "kl"), hard_rank, rtol=1e-5)
    hard_top = (hard_rank > 40).astype(jnp.float32)
    np.testing.assert_array_equal(jr.soft.topk_mask(x, 10, 1e-4), hard_top)


def test_small_eps_precision_large_n():
    # ρ/ε reaches 3e8 here: u = (s − mean s_B) + mean w_B must still return x exactly.
    x = jax.random.normal(jax.random.key(1), (2, 3_000))
    np.testing.assert_array_equal(jr.soft.sort(x, 1e-5), jnp.sort(x, -1))
    # Ranks: x / ε reaches 1e6, its gaps (10) are far above 1, so the ranks are exact.
    perm = jax.random.permutation(jax.random.key(2), 3_000)
    r = jr.soft.rank(perm.astype(jnp.float32) * 1e-3, 1e-4)
    np.testing.assert_array_equal(r, (perm + 1).astype(jnp.float32))


def test_large_eps_limit():
    x = jax.random.normal(jax.random.key(2), (3, 20))
    np.testing.assert_allclose(
        jr.soft.sort(x, 1e6), jnp.broadcast_to(x.mean(-1, keepdims=True), x.shape), atol=1e-4
    )
    np.testing.assert_allclose(jr.soft.rank(x, 1e6), jnp.full(x.shape, 10.5), atol=1e-4)
    np.testing.assert_allclose(jr.soft.rank(x, 1e6, "kl"), jnp.full(x.shape, 10.5), atol=1e-3)
    np.testing.assert_allclose(jr.soft.topk_mask(x, 5, 1e6), jnp.full(x.shape, 0.25), atol=1e-4)
    lme = jnp.log(jnp.mean(jnp.exp(x), -1, keepdims=True))
    np.testing.assert_allclose(
        jr.soft.sort(x, 1e6, "kl", descending=True), jnp.broadcast_to(lme, x.shape), atol=1e-4
    )


@pytest.mark.parametrize("reg", ["l2", "kl"])
def test_invariants(reg):
    x = jax.random.normal(jax.random.key(3), (5, 30)) * 2
    for eps in [0.1, 1.0, 10.0]:
        r = jr.soft.rank(x, eps, reg)
        np.testing.assert_allclose(r.sum(-1), 30 * 31 / 2, rtol=1e-5)
        y = jr.soft.sort(x, eps, reg)
        assert jnp.all(jnp.diff(y, axis=-1) >= -1e-5)  # soft sort is sorted
        yd = jr.soft.sort(x, eps, reg, descending=True)
        assert jnp.all(jnp.diff(yd, axis=-1) <= 1e-5)
        if reg == "l2":
            np.testing.assert_allclose(y.sum(-1), x.sum(-1), rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(yd, y[..., ::-1], rtol=1e-5, atol=1e-5)
        # Ranks follow the order of x (order preserving).
        order = jnp.argsort(x, -1)
        assert jnp.all(jnp.diff(jnp.take_along_axis(r, order, -1), axis=-1) >= -1e-5)


def test_permutation_equivariance():
    x = jax.random.normal(jax.random.key(4), (12,))
    perm = jax.random.permutation(jax.random.key(5), 12)
    np.testing.assert_allclose(jr.soft.rank(x[perm], 0.7), jr.soft.rank(x, 0.7)[perm], rtol=1e-6)
    np.testing.assert_allclose(
        jr.soft.topk_mask(x[perm], 4, 0.7), jr.soft.topk_mask(x, 4, 0.7)[perm], atol=1e-6
    )
    np.testing.assert_allclose(jr.soft.sort(x[perm], 0.7), jr.soft.sort(x, 0.7), rtol=1e-6)


# --------------------------------------------------------------------------------------
# Gradients: closed-form, checked against finite differences away from ties/kinks.

_X = np.array([0.31, -1.27, 2.05, 0.93, 0.12, -0.52])


@pytest.mark.parametrize("reg", ["l2", "kl"])
@pytest.mark.parametrize("descending", [False, True])
def test_grads(reg, descending):
    with jax.enable_x64(True):
        x = jnp.asarray(np.asarray(_X), jnp.float64)
        # eps = 0.7 gives mixed block sizes and no kink within the FD step.
        for fn in (jr.soft.sort, jr.soft.rank):

            def f(x, fn=fn):
                return fn(x, 0.7, reg, descending)

            order = 2 if reg == "kl" else 1
            check_grads(f, (x,), order=order, modes=("fwd", "rev"), eps=1e-5)
        check_grads(lambda x: jr.soft.topk_mask(x, 2, 0.7), (x,), order=1, eps=1e-5)


def test_grads_regularization_strength():
    with jax.enable_x64(True):
        x = jnp.asarray(np.asarray(_X), jnp.float64)
        for reg in ["l2", "kl"]:
            check_grads(lambda e, reg=reg: jr.soft.sort(x, e, reg), (0.7,), order=1, eps=1e-5)
            check_grads(lambda e, reg=reg: jr.soft.rank(x, e, reg), (0.7,), order=1, eps=1e-5)


def test_l2_jacobian_is_block_average():
    # sort([5, 1, 2], ε=1) pools everything: every output is the mean of x.
    jac = jax.jacobian(lambda x: jr.soft.sort(x, 1.0))(jnp.array([5.0, 1.0, 2.0]))
    np.testing.assert_allclose(jac, np.full((3, 3), 1 / 3), rtol=1e-6)
    # rank([5, 1, 2], ε=2): blocks {5} and {1, 2}; d r / d x = (I − block mean) / ε.
    jac = jax.jacobian(lambda x: jr.soft.rank(x, 2.0))(jnp.array([5.0, 1.0, 2.0]))
    expected = np.array([[0, 0, 0], [0, 0.25, -0.25], [0, -0.25, 0.25]])
    np.testing.assert_allclose(jac, expected, atol=1e-7)


def test_second_order_l2_is_zero():
    hess = jax.hessian(lambda x: jr.soft.rank(x, 0.7)[0])(jnp.asarray(_X, jnp.float32))
    np.testing.assert_allclose(hess, 0.0, atol=1e-6)


# --------------------------------------------------------------------------------------
# Transformations, axes, dtypes.


_FNS = {
    "sort": lambda x: jr.soft.sort(x, 0.5),
    "sort_kl_desc": lambda x: jr.soft.sort(x, 0.5, "kl", True),
    "rank": lambda x: jr.soft.rank(x, 0.5),
    "rank_kl_desc": lambda x: jr.soft.rank(x, 0.5, "kl", True),
    "topk_mask": lambda x: jr.soft.topk_mask(x, 3, 0.5),
}


@pytest.mark.parametrize("name", list(_FNS))
def test_jit_vmap(name):
    fn = _FNS[name]
    # 70 entries: two chunks and one merge round of the solver, under vmap too.
    x = jax.random.normal(jax.random.key(6), (2, 3, 70))
    ref = fn(x)
    np.testing.assert_allclose(jax.jit(fn)(x), ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(fn, in_axes=1, out_axes=1)(x), ref, rtol=1e-6, atol=1e-6)
    # Single rows give the same as a batch.
    np.testing.assert_allclose(fn(x[1, 2]), ref[1, 2], rtol=1e-6, atol=1e-6)

    # grad under vmap equals per-row grad.
    def loss(r):
        return jnp.sum(fn(r) * jnp.arange(70.0))

    g = jax.vmap(jax.grad(loss))(x[0])
    np.testing.assert_allclose(g[1], jax.grad(loss)(x[0, 1]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["sort", "rank", "topk_mask"])
def test_axis(name):
    x = jax.random.normal(jax.random.key(7), (5, 6, 7))
    fn = getattr(jr.soft, name)
    args = (2,) if name == "topk_mask" else ()
    for axis in [0, -2]:
        got = fn(x, *args, 0.8, axis=axis)
        ref = jnp.moveaxis(fn(jnp.moveaxis(x, axis, -1), *args, 0.8), -1, axis)
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_traced_regularization_strength():
    x = jnp.array([5.0, 1.0, 2.0])
    f = jax.jit(lambda e: jr.soft.rank(x, e))
    np.testing.assert_allclose(f(2.0), [3.0, 1.25, 1.75], rtol=1e-6)
    eps = jnp.array([1.0, 2.0])
    out = jax.vmap(lambda e: jr.soft.sort(x, e))(eps)
    np.testing.assert_allclose(out[0], [5 / 3, 8 / 3, 11 / 3], rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_dtypes(dtype):
    x = jnp.array([5.0, 1.0, 2.0], dtype)
    for y in (jr.soft.sort(x), jr.soft.rank(x, 2.0), jr.soft.topk_mask(x, 1)):
        assert y.dtype == dtype
    np.testing.assert_allclose(
        np.asarray(jr.soft.rank(x, 2.0), np.float32), [3.0, 1.25, 1.75], rtol=1e-2
    )


def test_int_input_and_huge_values():
    np.testing.assert_allclose(jr.soft.sort(jnp.array([5, 1, 2])), [5 / 3, 8 / 3, 11 / 3])
    x = jnp.array([1e30, -1e30, 3e29, 0.0])
    for y in (jr.soft.sort(x), jr.soft.rank(x), jr.soft.topk_mask(x, 2)):
        assert jnp.all(jnp.isfinite(y))
    np.testing.assert_allclose(jr.soft.rank(x), [4.0, 1.0, 3.0, 2.0])


def test_ties_finite_gradients():
    x = jnp.array([1.0, 1.0, 1.0, 2.0])
    for fn in (jr.soft.sort, jr.soft.rank):
        g = jax.grad(lambda x, fn=fn: jnp.sum(fn(x, 0.1) ** 2))(x)
        assert jnp.all(jnp.isfinite(g))


# --------------------------------------------------------------------------------------
# Bad inputs.


def test_bad_inputs():
    x = jnp.array([5.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="regularization"):
        jr.soft.sort(x, regularization="l1")
    with pytest.raises(ValueError, match="regularization"):
        jr.soft.rank(x, regularization="entropy")
    for bad in [0.0, -1.0, float("nan")]:
        with pytest.raises(ValueError, match="regularization_strength"):
            jr.soft.sort(x, bad)
        with pytest.raises(ValueError, match="regularization_strength"):
            jr.soft.rank(x, bad)
        with pytest.raises(ValueError, match="regularization_strength"):
            jr.soft.topk_mask(x, 1, bad)
    with pytest.raises(ValueError, match="regularization_strength"):
        jr.soft.sort(x, jnp.ones(3))
    for k in [0, 4, -1]:
        with pytest.raises(ValueError, match="`k`"):
            jr.soft.topk_mask(x, k)
    with pytest.raises(TypeError, match="`k`"):
        jr.soft.topk_mask(x, 1.5)
    with pytest.raises(TypeError, match="`k`"):
        jr.soft.topk_mask(x, True)
    with pytest.raises(ValueError, match="`x`"):
        jr.soft.sort(jnp.array(1.0))
    with pytest.raises(ValueError, match="axis"):
        jr.soft.rank(x, axis=2)
    with pytest.raises(TypeError, match="`x`"):
        jr.soft.sort(jnp.array([1 + 2j]))
    # Block sizes are float32 counts: longer rows are refused (traced, nothing allocated).
    too_long = jax.ShapeDtypeStruct((2**24 + 1,), jnp.float32)
    with pytest.raises(ValueError, match="`x` has 16777217 entries"):
        jax.eval_shape(jr.soft.rank, too_long)


def test_topk_k_equals_n_is_static_ones():
    x = jnp.array([0.3, -1.0, 2.0])
    np.testing.assert_array_equal(jr.soft.topk_mask(x, 3), jnp.ones(3))
    np.testing.assert_array_equal(jax.grad(lambda x: jr.soft.topk_mask(x, 3).sum())(x), 0.0)


def test_no_recompilation():
    f = jax.jit(lambda x, e: jr.soft.rank(x, e))
    x = jnp.ones((2, 9))
    f(x, 1.0)
    with jax.log_compiles(True):
        n0 = f._cache_size()
        f(x + 1, 2.0)
        assert f._cache_size() == n0


def _chunk_repair_rows(n, m):
    """Rows whose chunk solutions need repairs across chunk boundaries: decreasing
    within each chunk of m entries but increasing from chunk to chunk, a random walk,
    a wave, all-pooling, no pooling, and long runs of ties."""
    rng = np.random.default_rng(0)
    j = np.arange(n)
    return np.stack(
        [
            (m - j % m) * 0.01 + j // m,
            np.cumsum(rng.normal(size=n)),
            np.sin(j / 7.0) * 3 - j * 1e-3,
            j * 1.0,
            -j * 1.0,
            np.repeat(rng.normal(size=n // 10 + 1), 10)[:n],
            # Every chunk one block, seams that do not pool (the chunks side by side).
            (j % m) * 0.01 - j // m,
            # Chunks that pool whole, chunks of singletons and random chunks, in turn.
            np.where(j // m % 3 == 0, j * 0.01, np.where(j // m % 3 == 1, -j * 1.0, 0.0))
            + np.where(j // m % 3 == 2, rng.normal(size=n), 0.0),
        ]
    )


@pytest.mark.parametrize("n", [1, 2, 127, 128, 129, 5 * 128 + 7])
def test_isotonic_solver_across_chunks(n):
    # The solver solves chunks of _CHUNK entries, then repairs the chunk seams row by
    # row; against plain pooling on rows that exercise every kind of repair.
    y = _chunk_repair_rows(n, _isotonic._CHUNK)
    with jax.enable_x64(True):
        s = jnp.asarray(y, jnp.float64)
        u = np.asarray(_isotonic.project(s, jnp.zeros_like(s), False))
    for i in range(len(y)):
        np.testing.assert_allclose(y[i] - u[i], _brute_pav(y[i]), rtol=1e-12, atol=1e-12)
    # float32 keeps block sums compensated: still close at every size.
    u32 = np.asarray(_isotonic.project(jnp.asarray(y, jnp.float32), jnp.zeros(y.shape), False))
    for i in range(len(y)):
        np.testing.assert_allclose(y[i] - u32[i], _brute_pav(y[i]), atol=2e-5 * (1 + n / 100))


def _brute_pav_kl(s, w):
    """``s − v`` of the decreasing kl isotonic problem by stack pooling (plain Python,
    float64): a block's value is ``lse(s_B) − lse(w_B)``; ties pool."""
    blocks = []  # [start, end]
    for i in range(len(s)):
        b = [i, i + 1]
        while blocks:
            p = blocks[-1]
            vp = logsumexp(s[p[0] : p[1]]) - logsumexp(w[p[0] : p[1]])
            vb = logsumexp(s[b[0] : b[1]]) - logsumexp(w[b[0] : b[1]])
            if vp > vb:
                break
            b = [blocks.pop()[0], b[1]]
        blocks.append(b)
    v = np.concatenate([[logsumexp(s[a:e]) - logsumexp(w[a:e])] * (e - a) for a, e in blocks])
    return s - v


@pytest.mark.parametrize("n", [129, 5 * 128 + 7])
def test_isotonic_kl_solver_across_chunks(n):
    # The kl solver on the same rows, with a decreasing w so that chunks pool whole, stay
    # singletons or mix (each path of the solver), against stack pooling in float64.
    y = _chunk_repair_rows(n, _isotonic._CHUNK)
    w = np.linspace(1.0, -1.0, n)
    with jax.enable_x64(True):
        u = np.asarray(
            _isotonic.project(jnp.asarray(y), jnp.broadcast_to(jnp.asarray(w), y.shape), True)
        )
    for i in range(len(y)):
        np.testing.assert_allclose(u[i], _brute_pav_kl(y[i], w), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kl", [False, True])
def test_isotonic_rows_solved_directly_match_the_loops(kl):
    # Rows of singletons and rows of one block are solved without the loops when the
    # whole batch is of these two kinds; a mixed row in the batch sends every row
    # through the loops. Both ways give the rows' values and derivatives (against stack
    # pooling in float64 for the values).
    n = 5 * _isotonic._CHUNK + 7
    j = np.arange(n, dtype=np.float64)
    trivial = np.stack([-j, j * 0.01, -3.0 * j + 1e3, np.full(n, 2.0)])
    mixed = np.sin(j / 7.0) * 3 - j * 1e-3
    w = np.linspace(1.0, -1.0, n) if kl else np.zeros(n)
    with jax.enable_x64(True):

        def solve(y):
            y = jnp.asarray(y)
            return _isotonic.project(y, jnp.broadcast_to(jnp.asarray(w), y.shape), kl)

        alone = np.asarray(solve(trivial))
        together = np.asarray(solve(np.concatenate([trivial, mixed[None]])))
        t = jnp.asarray(np.cos(np.arange(trivial.size)).reshape(trivial.shape))
        jvp_alone = np.asarray(jax.jvp(solve, (jnp.asarray(trivial),), (t,))[1])
        jvp_together = np.asarray(
            jax.jvp(
                solve,
                (jnp.asarray(np.concatenate([trivial, mixed[None]])),),
                (jnp.concatenate([t, jnp.zeros((1, n))]),),
            )[1]
        )
    np.testing.assert_allclose(alone, together[:-1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jvp_alone, jvp_together[:-1], rtol=1e-12, atol=1e-12)
    for i in range(len(trivial)):
        want = _brute_pav_kl(trivial[i], w) if kl else trivial[i] - _brute_pav(trivial[i])
        np.testing.assert_allclose(alone[i], want, rtol=1e-10, atol=1e-10)


def test_isotonic_kl_pools_across_chunks_with_large_statistics():
    # Regression: the last entry starts a new chunk and pools with the one before it;
    # stale stack slots next to it hold statistics whose exp overflows float32 (the
    # values here are near −300), which once turned the pooling decision into NaN.
    n = _isotonic._CHUNK + 1
    s = np.linspace(-100.0, -300.0, n)
    s[-1] = s[-2] + 1.0  # pools with s[-2] only
    u = np.asarray(_isotonic.project(jnp.asarray(s, jnp.float32), jnp.zeros(n), True))
    v = logsumexp(s[-2:]) - np.log(2.0)
    np.testing.assert_allclose(s - u, np.concatenate([s[:-2], [v, v]]), rtol=1e-6)


@pytest.mark.parametrize("kl", [False, True])
def test_many_rows_equal_single_rows(kl):
    # The row count changes only the number of lanes of the two loops, never the result.
    x = jax.random.normal(jax.random.key(3), (300, 40)) * 2
    reg = "kl" if kl else "l2"
    got = jr.soft.rank(x, 0.3, reg)
    want = jnp.stack([jr.soft.rank(r, 0.3, reg) for r in x[:4]])
    np.testing.assert_allclose(got[:4], want, rtol=1e-6, atol=1e-6)
    got = jr.soft.sort(x, 0.3, reg)
    want = jnp.stack([jr.soft.sort(r, 0.3, reg) for r in x[-3:]])
    np.testing.assert_allclose(got[-3:], want, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------
# Ties (vertices of the permutahedron): the solver pools tied blocks as the reference
# solver does (fast-soft-sort fast_soft_sort/third_party/isotonic.py, isotonic_l2 and
# isotonic_kl, pool while sol[i] <= sol[k]), so the derivative there is the pooled
# block's, never a one-sided zero.


def test_rank_jacobian_at_tie():
    # x = 1..5, ε = 1: x / ε − ρ is constant, all entries tie; fast-soft-sort's Jacobian
    # is I − 11ᵀ/5 (a strict-< solver returns 0).
    x = jnp.arange(1.0, 6.0)
    np.testing.assert_allclose(jax.jacfwd(jr.soft.rank)(x), np.eye(5) - 0.2, atol=1e-6)
    np.testing.assert_allclose(jax.jacrev(jr.soft.rank)(x), np.eye(5) - 0.2, atol=1e-6)
    # descending ranks are the ranks of −x
    np.testing.assert_allclose(
        jax.jacfwd(lambda x: jr.soft.rank(x, descending=True))(x), 0.2 - np.eye(5), atol=1e-6
    )


@pytest.mark.parametrize("descending", [False, True])
def test_sort_jacobian_at_tie(descending):
    # ρ/ε − sort(x) is constant: one pooled block, every output is the mean of x
    # (fast-soft-sort: jacfwd(soft_sort)(x)[0] is all 0.2; a strict-< solver gives e_0).
    jac = jax.jacfwd(lambda x: jr.soft.sort(x, descending=descending))(jnp.arange(1.0, 6.0))
    np.testing.assert_allclose(jac, np.full((5, 5), 0.2), atol=1e-6)


def test_kl_jacobians_at_tie():
    # kl block derivative (Blondel et al. 2020, Prop. 4): on a pooled block B,
    # du/ds = I − 1 softmax(s_B)ᵀ and du/dw = 1 softmax(w_B)ᵀ.
    # Sort, x = (0, 1), ε = 1: ρ − (−x) = (2, 2) ties; y = −u with w = −x.
    p = np.exp([0.0, -1.0]) / np.exp([0.0, -1.0]).sum()
    jac = jax.jacfwd(lambda x: jr.soft.sort(x, 1.0, "kl"))(jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(jac, np.stack([p, p]), rtol=1e-6)  # singletons: identity
    # Rank, x = (0, log 2): centred s = (±log 2 / 2) and w = log ρ = (log 2, 0) tie;
    # r = 3 softmax(s), dr/dx = 3 (diag p − p pᵀ) with p = (1/3, 2/3).
    x = jnp.array([0.0, np.log(2.0)], jnp.float32)
    np.testing.assert_allclose(jr.soft.rank(x, 1.0, "kl"), [1.0, 2.0], rtol=1e-6)
    jac = jax.jacfwd(lambda x: jr.soft.rank(x, 1.0, "kl"))(x)
    np.testing.assert_allclose(jac, [[2 / 3, -2 / 3], [-2 / 3, 2 / 3]], rtol=1e-5)
    # The solver itself: s − w = 0 ties everywhere, kl pools the whole row.
    s = jnp.array([3.0, 2.0, 1.0, 0.0])
    jac = jax.jacfwd(lambda v: _isotonic.project(v, s, True))(s)
    q = np.exp(np.asarray(s)) / np.exp(np.asarray(s)).sum()
    np.testing.assert_allclose(jac, np.eye(4) - q[None, :], atol=1e-6)


def test_topk_mask_jacobian_at_tie():
    # x = 0..4, k = 2, ε = 1: x − w = (3, 2, 2, 1, 0) in sorted order; the tied pair
    # {3, 2} is one block, with the block-mean derivative I − 11ᵀ/2 on it.
    x = jnp.arange(5.0)
    np.testing.assert_allclose(jr.soft.topk_mask(x, 2, 1.0), [0, 0, 0, 1, 1], atol=1e-6)
    expected = np.zeros((5, 5))
    expected[2:4, 2:4] = [[0.5, -0.5], [-0.5, 0.5]]
    jac = jax.jacfwd(lambda x: jr.soft.topk_mask(x, 2))(x)
    np.testing.assert_allclose(jac, expected, atol=1e-6)


def test_ties_pool_across_chunks():
    # 300 evenly spaced entries tie everywhere: one block across the solver's chunk seams
    # (chunks of 128), so the rank gradient of ⟨r, g⟩ is g − mean(g).
    g = jnp.sin(jnp.arange(300.0))
    grad = jax.grad(lambda x: jnp.sum(jr.soft.rank(x) * g))(jnp.arange(300.0))
    np.testing.assert_allclose(grad, g - g.mean(), atol=1e-5)


# --------------------------------------------------------------------------------------
# Shift invariance: equal entries give exactly equal outputs at any magnitude.


@pytest.mark.parametrize(
    "value, eps, reg", [(1e7, 1.0, "kl"), (1e7, 1.0, "l2"), (1000.0, 1e-3, "l2"), (1e3, 1e-3, "kl")]
)
def test_equal_inputs_equal_outputs(value, eps, reg):
    # Fuzz repros of issue #10: kl ranks were [3.31, 3.31, 2.21, 2.21, 2.21] (1e7, ε = 1),
    # l2 ranks 3.0625 (1000, ε = 1e-3), topk_mask(k=1) [0.5, 0.5, 0, 0, 0].
    x = jnp.full((5,), value, jnp.float32)
    r = jr.soft.rank(x, eps, reg)
    np.testing.assert_array_equal(r, jnp.full(5, r[0]))
    np.testing.assert_allclose(r, 3.0, rtol=1e-6)
    m = jr.soft.topk_mask(x, 1, eps)
    np.testing.assert_array_equal(m, jnp.full(5, m[0]))
    np.testing.assert_allclose(m, 0.2, rtol=1e-6)
    np.testing.assert_array_equal(jr.soft.sort(x, eps, reg), x)
    # Equal entries inside a row with larger and smaller ones stay equal too.
    y = jnp.concatenate([x, jnp.array([value + 64.0, value - 64.0], jnp.float32)])
    r = jr.soft.rank(y, eps, reg)
    np.testing.assert_array_equal(r[:5], jnp.full(5, r[0]))
    np.testing.assert_allclose(r, [4.0] * 5 + [7.0, 1.0], rtol=1e-5)


@pytest.mark.parametrize("reg", ["l2", "kl"])
def test_shift_invariance(reg):
    x = jax.random.normal(jax.random.key(8), (3, 9))
    for c in [1e3, -3e4]:
        xs = x + c  # the exactly shifted input is xs − c (Sterbenz), in float32
        x0 = xs - c
        for eps in [0.3, 3.0]:
            np.testing.assert_allclose(
                jr.soft.rank(xs, eps, reg), jr.soft.rank(x0, eps, reg), rtol=2e-5
            )
            np.testing.assert_allclose(
                jr.soft.rank(xs, eps, reg, descending=True),
                jr.soft.rank(x0, eps, reg, descending=True),
                rtol=2e-5,
            )
            np.testing.assert_allclose(
                jr.soft.sort(xs, eps, reg), jr.soft.sort(x0, eps, reg) + c, atol=4 * abs(c) * 6e-8
            )
            if reg == "l2":
                np.testing.assert_allclose(
                    jr.soft.topk_mask(xs, 3, eps), jr.soft.topk_mask(x0, 3, eps), atol=1e-5
                )


# --------------------------------------------------------------------------------------
# Input edges: empty axes, traced invalid ε.

_OPS = {
    "sort": lambda x, **kw: jr.soft.sort(x, **kw),
    "sort_kl": lambda x, **kw: jr.soft.sort(x, regularization="kl", **kw),
    "rank": lambda x, **kw: jr.soft.rank(x, **kw),
    "rank_kl": lambda x, **kw: jr.soft.rank(x, regularization="kl", **kw),
    "topk_mask": lambda x, **kw: jr.soft.topk_mask(x, 1, **kw),
}


@pytest.mark.parametrize("name", list(_OPS))
def test_empty_axes(name):
    fn = _OPS[name]
    for shape, axis in [((2, 0), -1), ((0,), -1), ((0, 3), 0)]:
        with pytest.raises(ValueError, match="`x` must have a non-empty event axis"):
            fn(jnp.zeros(shape), axis=axis)
    # An empty batch gives an empty result, and gradients (of the empty sum) are zeros.
    for shape, axis in [((0, 5), -1), ((5, 0), 0), ((2, 0, 4), -1)]:
        x = jnp.zeros(shape)
        y = fn(x, axis=axis)
        assert y.shape == shape and y.dtype == x.dtype
        g = jax.grad(lambda x, axis=axis: jnp.sum(fn(x, axis=axis)))(x)
        assert g.shape == shape
        assert jax.jit(lambda x, axis=axis: fn(x, axis=axis))(x).shape == shape


@pytest.mark.parametrize("name", list(_OPS))
def test_traced_invalid_regularization_strength_poisons(name):
    fn = _OPS[name]
    x = jnp.array([0.3, -1.2, 2.0])
    f = jax.jit(lambda x, e: fn(x, regularization_strength=e))
    np.testing.assert_allclose(f(x, 0.7), fn(x, regularization_strength=0.7), rtol=1e-6)
    for bad in [0.0, -1.0, float("nan")]:
        assert jnp.all(jnp.isnan(f(x, bad)))
        g = jax.grad(lambda x, bad=bad: jnp.sum(f(x, bad) ** 2))(x)
        assert jnp.all(jnp.isnan(g))
    # k == n (statically all ones) is poisoned too.
    out = jax.jit(lambda e: jr.soft.topk_mask(x, 3, e))(-1.0)
    assert jnp.all(jnp.isnan(out))


# --------------------------------------------------------------------------------------
# Higher order: _assemble's custom_jvp differentiates its own rule.


def test_hessian_kl_matches_finite_differences_of_grad():
    with jax.enable_x64(True):
        x = jnp.asarray(_X, jnp.float64)
        g = jnp.asarray([0.3, -1.0, 0.5, 2.0, -0.7, 1.1], jnp.float64)
        for fn in (jr.soft.rank, jr.soft.sort):
            # ε = 1.5 pools blocks of several entries (on singletons kl is linear in x).
            def f(x, fn=fn):
                return jnp.sum(fn(x, 1.5, "kl") * g)

            hess = jax.hessian(f)(x)
            grad = jax.grad(f)
            h = 1e-5
            fd = np.stack(
                [(grad(x + h * e) - grad(x - h * e)) / (2 * h) for e in np.eye(6)], axis=1
            )
            np.testing.assert_allclose(hess, fd, rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(hess, hess.T, atol=1e-12)
            assert np.abs(hess).max() > 1e-2  # a real second derivative


def test_hessian_l2_at_tie():
    # At the tie x = 1..5 (ε = 1) the l2 rank is linear on the pooled block's cell: its
    # Hessian is 0, and that of ‖r‖² is 2 JᵀJ = 2 (I − 11ᵀ/5).
    x = jnp.arange(1.0, 6.0)
    np.testing.assert_allclose(jax.hessian(lambda x: jr.soft.rank(x)[0])(x), 0.0, atol=1e-7)
    hess = jax.hessian(lambda x: jnp.sum(jr.soft.rank(x) ** 2))(x)
    np.testing.assert_allclose(hess, 2 * (np.eye(5) - 0.2), atol=1e-5)
