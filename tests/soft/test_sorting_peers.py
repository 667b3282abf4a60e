"""jr.soft.sort / jr.soft.rank against the peers' own published tests and values.

Ported from google-research/fast-soft-sort (README.md, tests/numpy_ops_test.py,
tests/jax_ops_test.py, tests/isotonic_test.py) and teddykoker/torchsort (README.md,
tests/test_ops.py), with their inputs and tolerances; each test names its source.
Conventions: jaxrelax's ``rank``/``sort`` take ``descending=`` for fast-soft-sort's
``direction=``, and sort the last axis of any batch (fast-soft-sort: 1-d or 2-d only).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from sklearn.isotonic import isotonic_regression

import jaxrelax as jr
from jaxrelax._src.soft import _isotonic

GAMMAS = (0.1, 1.0, 10.0)
DIRECTIONS = ("ASCENDING", "DESCENDING")
REGULARIZERS = ("l2", "kl")


def _op(name, gamma, direction, regularization):
    fn = getattr(jr.soft, name)
    return lambda x: fn(x, gamma, regularization, direction == "DESCENDING")


def _num_jacobian(f, theta, eps=1e-9):
    """Central differences, all directions in one batched call (fast-soft-sort
    tests/numpy_ops_test.py::_num_jacobian, which loops over them)."""
    steps = eps * np.eye(len(theta))
    out = np.asarray(f(jnp.asarray(np.concatenate([theta + steps, theta - steps]))))
    n = len(theta)
    return ((out[:n] - out[n:]) / (2 * eps)).T


# --------------------------------------------------------------------------------------
# Published values.


def test_fast_soft_sort_readme_values():
    # fast-soft-sort README.md "Example" (float64, printed to 8 decimals).
    with jax.enable_x64(True):
        values = jnp.array([[5.0, 1.0, 2.0], [2.0, 1.0, 5.0]], jnp.float64)
        third = [1.66666667, 2.66666667, 3.66666667]
        np.testing.assert_allclose(jr.soft.sort(values, 1.0), [third, third], atol=1e-8)
        np.testing.assert_allclose(jr.soft.sort(values, 0.1), [[1, 2, 5], [1, 2, 5]], atol=1e-12)
        np.testing.assert_allclose(
            jr.soft.rank(values, 2.0), [[3.0, 1.25, 1.75], [1.75, 1.25, 3.0]], atol=1e-12
        )
        np.testing.assert_allclose(jr.soft.rank(values, 1.0), [[3, 1, 2], [2, 1, 3]], atol=1e-12)


def test_torchsort_readme_values():
    # torchsort README.md "Usage": integer input, printed to 4 decimals.
    x = jnp.array([[8, 0, 5, 3, 2, 1, 6, 7, 9]])
    np.testing.assert_allclose(jr.soft.sort(x, 1.0), [[0.5556 + i for i in range(9)]], atol=5e-5)
    np.testing.assert_allclose(jr.soft.sort(x, 0.1), [[0, 1, 2, 3, 5, 6, 7, 8, 9]], atol=5e-5)
    np.testing.assert_allclose(jr.soft.rank(x), [[8, 1, 5, 4, 3, 2, 6, 7, 9]], atol=5e-5)
    # "Both operations are fully differentiable": grad of y[0, 0] is 0.1111 everywhere.
    xf = x.astype(jnp.float32)
    g = jax.grad(lambda x: jr.soft.sort(x)[0, 0])(xf)
    np.testing.assert_allclose(g, np.full((1, 9), 0.1111), atol=5e-5)


def _spearmanr(pred, target, **kw):
    # torchsort README.md "Spearman's Rank Coefficient", in jax.
    pred = jr.soft.rank(pred, **kw)
    target = jr.soft.rank(target, **kw)
    pred = pred - pred.mean()
    pred = pred / jnp.linalg.norm(pred)
    target = target - target.mean()
    target = target / jnp.linalg.norm(target)
    return (pred * target).sum()


def test_torchsort_readme_spearman():
    # torchsort README.md: spearman = 0.8321 and its gradient
    # [-5.5470e-02, 2.9802e-09, 5.5470e-02, 1.1094e-01, -1.1094e-01]. pred = 1..5 is a
    # tie (a vertex of the permutahedron) at ε = 1: the gradient needs tied blocks pooled.
    pred = jnp.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    target = jnp.array([[5.0, 6.0, 7.0, 8.0, 7.0]])
    np.testing.assert_allclose(_spearmanr(pred, target), 0.8321, atol=5e-5)
    g = jax.grad(_spearmanr)(pred, target)
    expected = [[-5.5470e-02, 2.9802e-09, 5.5470e-02, 1.1094e-01, -1.1094e-01]]
    np.testing.assert_allclose(g, expected, atol=5e-6)


# --------------------------------------------------------------------------------------
# fast-soft-sort tests/numpy_ops_test.py


@pytest.mark.parametrize(
    "direction, regularization", list(itertools.product(DIRECTIONS, REGULARIZERS))
)
def test_converges_to_hard(direction, regularization):
    # SoftRankTest / SoftSortTest::test_soft_*_converges_to_hard: ε = 1e-3,
    # assert_array_almost_equal (6 decimals).
    with jax.enable_x64(True):
        theta = np.random.RandomState(0).randn(5)
        order = np.argsort(theta)
        if direction == "DESCENDING":
            order = order[::-1]
        hard_rank = np.empty(5)
        hard_rank[order] = np.arange(1, 6)
        rank = _op("rank", 1e-3, direction, regularization)(jnp.asarray(theta))
        np.testing.assert_array_almost_equal(rank, hard_rank)
        srt = _op("sort", 1e-3, direction, regularization)(jnp.asarray(theta))
        np.testing.assert_array_almost_equal(srt, theta[order])


@pytest.mark.parametrize(
    "name, gamma, direction, regularization",
    list(itertools.product(("rank", "sort"), GAMMAS, DIRECTIONS, REGULARIZERS)),
)
def test_jvp_vjp_jacobian_against_numerical(name, gamma, direction, regularization):
    # SoftRankTest::test_soft_rank_jvp_and_vjp_against_numerical_jacobian and
    # SoftSortTest::test_soft_sort_jvp: theta, v = randn(5), randn(5) from RandomState(0),
    # central differences with step 1e-9. (They pass 1e-6 as assert_array_almost_equal's
    # *decimal* argument, a tolerance of about 1.5; here it is 6 decimals.)
    # fast-soft-sort's numpy SoftSort once used w = (n−1, ..., 0) + 1/ε; it was fixed to
    # ρ/ε = (n, ..., 1)/ε (the paper's definition), which jaxrelax uses.
    with jax.enable_x64(True):
        rng = np.random.RandomState(0)
        theta = rng.randn(5)
        v = rng.randn(5)
        f = _op(name, gamma, direction, regularization)
        jac_num = _num_jacobian(f, theta)
        x = jnp.asarray(theta)
        _, jvp = jax.jvp(f, (x,), (jnp.asarray(v),))
        np.testing.assert_array_almost_equal(jac_num @ v, jvp, 6)
        _, vjp_fn = jax.vjp(f, x)
        np.testing.assert_array_almost_equal(v @ jac_num, vjp_fn(jnp.asarray(v))[0], 6)
        np.testing.assert_array_almost_equal(jac_num, jax.jacfwd(f)(x), 6)


# --------------------------------------------------------------------------------------
# fast-soft-sort tests/jax_ops_test.py and tests/isotonic_test.py


@pytest.mark.parametrize(
    "name, gamma, direction, regularization",
    list(itertools.product(("rank", "sort"), GAMMAS, DIRECTIONS, REGULARIZERS)),
)
def test_directional_derivative_of_squared_loss(name, gamma, direction, regularization):
    # JaxOpsTest::_test: values, mat = randn(5, 10), randn(5, 10) from RandomState(0);
    # loss = sum(soft ** 2); a central difference of step 1e-5 along mat / ‖mat‖ equals
    # the autodiff directional derivative to 7 decimals. (Upstream runs l2 only; kl added.)
    with jax.enable_x64(True):
        rng = np.random.RandomState(0)
        values = jnp.array(rng.randn(5, 10))
        mat = rng.randn(5, 10)
        unitmat = jnp.array(mat / np.sqrt(np.vdot(mat, mat)))
        f = _op(name, gamma, direction, regularization)

        def loss(values):
            return jnp.sum(f(values) ** 2)

        eps = 1e-5
        numerical = (loss(values + 0.5 * eps * unitmat) - loss(values - 0.5 * eps * unitmat)) / eps
        autodiff = jnp.vdot(jax.grad(loss)(values), unitmat)
        np.testing.assert_almost_equal(numerical, autodiff)


def test_isotonic_l2_agrees_with_sklearn():
    # IsotonicTest::test_l2_agrees_with_sklearn: y = randn(10) * randint(1, 5) from
    # RandomState(0), against sklearn's decreasing isotonic regression (6 decimals).
    # jaxrelax's solver returns u = s − v for v = iso(s − w): with w = 0, v = y − u.
    with jax.enable_x64(True):
        rng = np.random.RandomState(0)
        y = rng.randn(10) * rng.randint(1, 5)
        u = np.asarray(_isotonic.project(jnp.asarray(y)[None], jnp.zeros((1, 10)), False))[0]
        np.testing.assert_array_almost_equal(y - u, isotonic_regression(y, increasing=False))


# --------------------------------------------------------------------------------------
# torchsort tests/test_ops.py


@pytest.mark.parametrize(
    "name, regularization, gamma", list(itertools.product(("rank", "sort"), REGULARIZERS, GAMMAS))
)
def test_torchsort_gradcheck(name, regularization, gamma):
    # test_soft_rank: torch.autograd.gradcheck on randn(5, 10) float64, eps=1e-5,
    # atol=rtol=1e-3. (torch.randn is not reproducible here: numpy's RandomState(0).)
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.RandomState(0).randn(5, 10))
        f = _op(name, gamma, "ASCENDING", regularization)
        check_grads(f, (x,), order=1, modes=("fwd", "rev"), eps=1e-5, atol=1e-3, rtol=1e-3)
