"""Tests for jr.soft.permutation_matrix (SoftSort, NeuralSort, Sinkhorn soft argsort)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.special import expit, softmax

import jaxrelax as jr

METHODS = ["softsort", "neuralsort", "sinkhorn"]
# A temperature at which each method is sharp on the well-separated inputs below (the
# Sinkhorn costs lie in [0, 1] with gaps of order 1/n², see the docstring).
SHARP = {"softsort": 1e-3, "neuralsort": 1e-3, "sinkhorn": 1e-4}
SOFT = {"softsort": 0.5, "neuralsort": 0.5, "sinkhorn": 0.02}
# Sinkhorn at low temperature converges slowly (error ~1/num_iters): 300 rounds give ~4e-3.
ATOL = {"softsort": 1e-3, "neuralsort": 1e-3, "sinkhorn": 5e-3}

# --------------------------------------------------------------------------------------
# Independent references (plain NumPy, float64), written from the papers' formulas.


def _softsort_ref(x, t, descending=False):
    # Prillo & Eisenschlos (2020), eq. (2): softmax(-|sort(s) 1ᵀ - 1 sᵀ| / τ) row-wise.
    s = np.sort(x)[::-1] if descending else np.sort(x)
    return softmax(-np.abs(s[:, None] - x[None, :]) / t, axis=-1)


def _neuralsort_ref(x, t):
    # tfp.math.soft_sorting_matrix (TFP, tensorflow_probability/python/math/generic.py),
    # transcribed: logits = (x scalingᵀ − A 1)ᵀ with scaling = (n−1, n−3, ..., 1−n); the
    # descending NeuralSort of Grover et al. (2019), eq. (5).
    n = len(x)
    a = np.abs(x[:, None] - x[None, :])
    scaling = np.arange(n - 1, -n, -2, dtype=np.float64)
    logits = (x[:, None] * scaling[None, :] - a.sum(-1)[:, None]).T
    return softmax(logits / t, axis=-1)


def _sinkhorn_ref(x, t, num_iters, descending=False):
    # Cuturi, Teboul & Vert (2019): Sinkhorn between sigmoid-whitened x (the squashing of
    # ott.tools.soft_sort) and anchors linspace(0, 1, n), cost (y_i - z_j)², in the
    # probability domain; the last normalisation makes the rows (anchors) sum to one.
    n = len(x)
    z = expit((x - x.mean()) / x.std())
    y = np.linspace(0, 1, n)[::-1] if descending else np.linspace(0, 1, n)
    k = np.exp(-((y[:, None] - z[None, :]) ** 2) / t)
    for _ in range(num_iters):
        k = k / k.sum(0, keepdims=True)
        k = k / k.sum(1, keepdims=True)
    return k


X = np.array([0.3, -1.2, 2.5, 0.9, -0.4, 1.7])


@pytest.mark.parametrize("descending", [False, True])
def test_softsort_matches_formula(descending):
    p = jr.soft.permutation_matrix(jnp.asarray(X, jnp.float32), 0.7, descending=descending)
    np.testing.assert_allclose(p, _softsort_ref(X, 0.7, descending), atol=1e-6)


def test_neuralsort_matches_tfp_formula():
    p = jr.soft.permutation_matrix(
        jnp.asarray(X, jnp.float32), 2.0, method="neuralsort", descending=True
    )
    np.testing.assert_allclose(p, _neuralsort_ref(X, 2.0), atol=1e-6)
    # Ascending: the rows in reverse order (row i is the (n + 1 − i)-th largest).
    pa = jr.soft.permutation_matrix(jnp.asarray(X, jnp.float32), 2.0, method="neuralsort")
    np.testing.assert_allclose(pa, _neuralsort_ref(X, 2.0)[::-1], atol=1e-6)


@pytest.mark.parametrize("descending", [False, True])
def test_sinkhorn_matches_reference(descending):
    x = jnp.asarray(X, jnp.float32)
    p = jr.soft.permutation_matrix(x, 0.05, "sinkhorn", descending, num_iters=30)
    np.testing.assert_allclose(p, _sinkhorn_ref(X, 0.05, 30, descending), atol=2e-5)


@pytest.mark.parametrize("shape", [(4,), (5, 5, 4)])
def test_neuralsort_tfp_matches_argsort(shape):
    # Port of TFP's SoftSortingMatrixTest.testMatchesArgsort
    # (tensorflow_probability/python/math/generic_test.py): descending, rows sum to 1,
    # non-negative, and the row-wise arg max is the argsort at every temperature.
    x = np.random.default_rng(0).standard_normal(shape)
    expected = np.flip(np.argsort(x, axis=-1), axis=-1)
    fn = jax.jit(lambda x, t: jr.soft.permutation_matrix(x, t, "neuralsort", True))
    for temperature in (1e2, 1e1, 1e0, 1e-1):
        p = np.asarray(fn(x, temperature))
        np.testing.assert_allclose(p.sum(-1), np.ones(shape), rtol=1e-5)
        assert np.all(p >= 0)
        np.testing.assert_array_equal(np.argmax(p, axis=-1), expected)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("descending", [False, True])
def test_low_temperature_sorts(method, descending):
    x = jnp.asarray(X, jnp.float32)
    p = jr.soft.permutation_matrix(
        x, SHARP[method], method, descending, num_iters=300 if method == "sinkhorn" else 100
    )
    perm = np.argsort(-X if descending else X)
    np.testing.assert_allclose(p, np.eye(6)[perm], atol=ATOL[method])
    np.testing.assert_allclose(p @ x, X[perm], atol=4 * ATOL[method])
    # Rows sum to one (exactly for Sinkhorn's last normalisation too), entries >= 0.
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-6)
    assert np.all(np.asarray(p) >= 0)


@pytest.mark.parametrize("method", METHODS)
def test_high_temperature_is_uniform_and_rows_unimodal(method):
    x = jnp.asarray(X, jnp.float32)
    p = jr.soft.permutation_matrix(x, 1e4, method)
    np.testing.assert_allclose(p, 1 / 6, atol=1e-3)
    if method != "sinkhorn":  # SoftSort and NeuralSort: arg max of each row is exact
        q = jr.soft.permutation_matrix(x, 3.0, method)
        np.testing.assert_array_equal(np.argmax(q, -1), np.argsort(X))


@pytest.mark.parametrize("method", METHODS)
def test_hard_forward_relaxed_gradient(method):
    x = jnp.asarray(X, jnp.float32)
    t = SOFT[method]
    hard = jr.soft.permutation_matrix(x, t, method, hard=True)
    np.testing.assert_array_equal(hard, np.eye(6)[np.argsort(X)])
    w = jax.random.normal(jax.random.key(0), (6, 6))

    def f(x, h):
        return jnp.sum(w * jr.soft.permutation_matrix(x, t, method, hard=h))

    np.testing.assert_allclose(jax.grad(f)(x, True), jax.grad(f)(x, False), rtol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_ties_split_equally(method):
    x = jnp.array([1.0, 3.0, 1.0, 2.0])
    p = jr.soft.permutation_matrix(x, SHARP[method], method, num_iters=300)
    # Rows 0 and 1 select the tied 1.0s: half each; P @ x is still the sorted x.
    np.testing.assert_allclose(p[:2], [[0.5, 0, 0.5, 0]] * 2, atol=ATOL[method])
    np.testing.assert_allclose(p @ x, [1.0, 1.0, 2.0, 3.0], atol=ATOL[method])
    for desc in (False, True):  # the hard matrix follows the stable order
        h = jr.soft.permutation_matrix(x, 1.0, method, desc, hard=True)
        np.testing.assert_array_equal(jnp.argmax(h, -1), np.argsort(-x if desc else x, stable=True))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("descending", [False, True])
def test_neg_inf_masks(method, descending):
    xm = jnp.array([2.0, -jnp.inf, 0.5, -jnp.inf, 1.0])
    t = SOFT[method]
    p = jr.soft.permutation_matrix(xm, t, method, descending)
    ref = jr.soft.permutation_matrix(jnp.array([2.0, 0.5, 1.0]), t, method, descending)
    fin, masked = [0, 2, 4], [1, 3]
    rows_m = [3, 4] if descending else [0, 1]
    rows_f = [0, 1, 2] if descending else [2, 3, 4]
    # Masked rows: exact one-hots in index order; finite rows: the relaxation of the
    # finite entries alone, no weight on masked ones.
    np.testing.assert_array_equal(p[np.ix_(rows_m, masked)], np.eye(2))
    np.testing.assert_array_equal(p[np.ix_(rows_m, fin)], 0.0)
    np.testing.assert_array_equal(p[np.ix_(rows_f, masked)], 0.0)
    np.testing.assert_allclose(p[np.ix_(rows_f, fin)], ref, atol=1e-5)
    w = jnp.arange(25.0).reshape(5, 5)
    g = jax.grad(lambda x: jnp.sum(w * jr.soft.permutation_matrix(x, t, method, descending)))(xm)
    assert np.all(np.isfinite(g)) and g[1] == 0 and g[3] == 0
    allm = jr.soft.permutation_matrix(jnp.full(3, -jnp.inf), t, method)
    np.testing.assert_array_equal(allm, np.eye(3))


@pytest.mark.parametrize("method", METHODS)
def test_grads(method):
    x = jnp.asarray(X[:4], jnp.float32)
    w = jax.random.normal(jax.random.key(1), (4, 4))

    def f(x):
        return jnp.sum(w * jr.soft.permutation_matrix(x, 2 * SOFT[method], method, num_iters=10))

    # Second order for the closed forms; first for Sinkhorn (its rounds compile slowly).
    order = 1 if method == "sinkhorn" else 2
    check_grads(f, (x,), order=order, modes=["rev"], atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("method", METHODS)
def test_jit_vmap_axis_shift(method):
    x = jax.random.normal(jax.random.key(2), (3, 5))
    t = SOFT[method]
    p = jr.soft.permutation_matrix(x, t, method)
    assert p.shape == (3, 5, 5)
    fn = jax.jit(lambda x: jr.soft.permutation_matrix(x, t, method))
    np.testing.assert_allclose(fn(x), p, atol=1e-6)
    np.testing.assert_allclose(
        jax.vmap(lambda r: jr.soft.permutation_matrix(r, t, method))(x), p, atol=1e-6
    )
    np.testing.assert_allclose(jr.soft.permutation_matrix(x.T, t, method, axis=0), p, atol=1e-6)
    np.testing.assert_allclose(jr.soft.permutation_matrix(x + 1e3, t, method), p, atol=2e-4)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize("method", METHODS)
def test_dtypes(dtype, method):
    x = jnp.asarray(X, dtype)
    p = jr.soft.permutation_matrix(x, SOFT[method], method)
    assert p.dtype == dtype
    assert np.all(np.isfinite(np.asarray(p, np.float32)))
    g = jax.grad(lambda x: jnp.sum(jr.soft.permutation_matrix(x, SOFT[method], method)[0]))(x)
    assert g.dtype == dtype and np.all(np.isfinite(np.asarray(g, np.float32)))


def test_extreme_temperatures_and_values_finite():
    x = jnp.asarray(X * 1e6, jnp.float32)
    for m in METHODS:

        def f(x, t, m=m):
            return jnp.sum(jr.soft.permutation_matrix(x, t, m)[0] * x)

        vg = jax.jit(jax.value_and_grad(f))
        for t in (1e-6, 1e3):
            v, g = vg(x, t)
            assert np.isfinite(v) and np.all(np.isfinite(g)), (m, t)


def test_traced_temperature_poisons():
    f = jax.jit(lambda t: jr.soft.permutation_matrix(jnp.asarray(X), t))
    assert np.all(np.isfinite(f(0.5)))
    assert np.all(np.isnan(f(-0.5)))
    assert np.isnan(jax.grad(lambda t: f(t)[0, 0])(-0.5))


def test_bad_inputs():
    x = jnp.asarray(X)
    with pytest.raises(ValueError, match="`method`"):
        jr.soft.permutation_matrix(x, method="bogo")
    with pytest.raises(ValueError, match="`temperature`"):
        jr.soft.permutation_matrix(x, 0.0)
    with pytest.raises(ValueError, match="`temperature`"):
        jr.soft.permutation_matrix(x, jnp.ones(6))
    with pytest.raises(ValueError, match="non-empty event axis"):
        jr.soft.permutation_matrix(jnp.zeros((2, 0)))
    with pytest.raises(ValueError, match="at least one axis"):
        jr.soft.permutation_matrix(1.0)
    with pytest.raises(ValueError, match="`num_iters`"):
        jr.soft.permutation_matrix(x, method="sinkhorn", num_iters=0)
    assert jr.soft.permutation_matrix(jnp.zeros((0, 3))).shape == (0, 3, 3)


def test_large_n_warns():
    # Trace only (eval_shape): the warning is issued at trace time above the measured size.
    with pytest.warns(UserWarning, match="O\\(n²\\)"):
        jax.eval_shape(jr.soft.permutation_matrix, jax.ShapeDtypeStruct((4097,), jnp.float32))
    with pytest.warns(UserWarning, match="jr.soft.sort"):
        jax.eval_shape(
            lambda x: jr.soft.permutation_matrix(x, method="sinkhorn"),
            jax.ShapeDtypeStruct((600,), jnp.float32),
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jax.eval_shape(jr.soft.permutation_matrix, jax.ShapeDtypeStruct((4096,), jnp.float32))
