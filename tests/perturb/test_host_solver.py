"""Tests for jr.perturb.host_solver: SciPy solvers inside jit, vmap and every jr.perturb method.

References: `scipy.optimize.linear_sum_assignment` (a minimum-cost perfect matching,
returned as a permutation matrix) and `scipy.sparse.csgraph.shortest_path` (Bellman–Ford
on a 3 × 3 grid DAG, returned as an edge indicator), called directly; and pure-JAX solvers
by enumeration of the feasible set, which must give bit-identical results inside the
jr.perturb methods (same draws, same solutions).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import shortest_path

import jaxrelax as jr

KEY = jax.random.key(0)
N = 3  # grid side; also the assignment size

# The grid DAG: node r * N + c, edges east and south, in a fixed order.
EDGES = [(r * N + c, r * N + c + 1) for r in range(N) for c in range(N - 1)] + [
    (r * N + c, (r + 1) * N + c) for r in range(N - 1) for c in range(N)
]
EDGE_INDEX = {e: i for i, e in enumerate(EDGES)}


def assignment(cost):
    """Host solver: the minimum-cost assignment as a permutation matrix (SciPy)."""
    rows, cols = linear_sum_assignment(cost)
    perm = np.zeros(cost.shape, cost.dtype)
    perm[rows, cols] = 1.0
    return perm


def assignment_max(score):
    rows, cols = linear_sum_assignment(score, maximize=True)
    perm = np.zeros(score.shape, score.dtype)
    perm[rows, cols] = 1.0
    return perm


def path(costs):
    """Host solver: the shortest top-left → bottom-right path's edges (SciPy csgraph)."""
    src, dst = zip(*EDGES)
    graph = scipy.sparse.csr_matrix((np.asarray(costs, np.float64), (src, dst)), (N * N, N * N))
    _, pred = shortest_path(graph, method="BF", indices=0, return_predecessors=True)
    out, node = np.zeros(len(EDGES), costs.dtype), N * N - 1
    while node != 0:
        out[EDGE_INDEX[pred[node], node]] = 1.0
        node = pred[node]
    return out


# Exact pure-JAX references by enumeration of the feasible sets.
PERMS = np.array([np.eye(N)[list(p)] for p in itertools.permutations(range(N))])


def _paths():
    out = []
    for south in itertools.combinations(range(2 * (N - 1)), N - 1):
        node, w = 0, np.zeros(len(EDGES))
        for step in range(2 * (N - 1)):
            nxt = node + N if step in south else node + 1
            w[EDGE_INDEX[node, nxt]] = 1.0
            node = nxt
        out.append(w)
    return np.array(out)


PATHS = _paths()


def assignment_enum(cost):
    perms = jnp.asarray(PERMS, cost.dtype)
    return perms[jnp.argmin(jnp.sum(perms * cost, axis=(1, 2)))]


def assignment_max_enum(score):
    return assignment_enum(-score)


def path_enum(costs):
    paths = jnp.asarray(PATHS, costs.dtype)
    return paths[jnp.argmin(paths @ costs)]


SAME = lambda x: x
lsa = jr.perturb.host_solver(assignment, SAME)
lsa_max = jr.perturb.host_solver(assignment_max, SAME)
sp = jr.perturb.host_solver(path, jax.ShapeDtypeStruct((len(EDGES),), jnp.float32))


def _costs(seed, shape):
    return jax.random.uniform(jax.random.key(seed), shape, jnp.float32, 0.5, 2.0)


def test_results_equal_scipy_under_jit_and_vmap():
    costs = _costs(0, (4, N, N))
    for i in range(4):
        expected = assignment(np.asarray(costs[i]))
        np.testing.assert_array_equal(lsa(costs[i]), expected)
        np.testing.assert_array_equal(jax.jit(lsa)(costs[i]), expected)
    batch = jax.jit(jax.vmap(lsa))(costs)
    assert batch.shape == (4, N, N) and batch.dtype == jnp.float32
    for i in range(4):
        np.testing.assert_array_equal(batch[i], assignment(np.asarray(costs[i])))
    edge_costs = _costs(1, (5, len(EDGES)))
    paths = jax.jit(jax.vmap(sp))(edge_costs)
    for i in range(5):
        np.testing.assert_array_equal(paths[i], path(np.asarray(edge_costs[i])))
        # and SciPy agrees with the enumeration of the 6 paths
        np.testing.assert_array_equal(paths[i], path_enum(edge_costs[i]))
    np.testing.assert_array_equal(
        jax.vmap(jax.vmap(lsa))(costs.reshape(2, 2, N, N))[1, 0], batch[2]
    )


def test_vectorised_vmap_method():
    calls = []

    def row_argmax(x):  # vectorised over leading axes: called once per batch
        calls.append(x.shape)
        return (x == x.max(-1, keepdims=True)).astype(x.dtype)

    solver = jr.perturb.host_solver(row_argmax, SAME, vmap_method="expand_dims")
    xs = _costs(2, (6, 4))
    out = jax.jit(jax.vmap(solver))(xs)
    np.testing.assert_array_equal(out, row_argmax(np.asarray(xs)))
    assert (6, 4) in calls


def test_float64_and_declared_dtype():
    with jax.enable_x64(True):
        cost = jnp.asarray(np.random.default_rng(0).uniform(size=(N, N)))
        out = jax.jit(lsa)(cost)
        assert out.dtype == jnp.float64
        np.testing.assert_array_equal(out, assignment(np.asarray(cost)))
    # A declared integer dtype: the result is converted to it.
    as_int = jr.perturb.host_solver(assignment, lambda x: jax.ShapeDtypeStruct(x.shape, jnp.int32))
    out = as_int(_costs(3, (N, N)))
    assert out.dtype == jnp.int32 and int(out.sum()) == N


def test_wrong_shape_names_fn_and_both_shapes():
    def bad_solver(x):
        return np.zeros(2, np.float32)

    solver = jr.perturb.host_solver(bad_solver, jax.ShapeDtypeStruct((3,), jnp.float32))
    message = r"`fn` 'bad_solver' returned an array of shape \(2,\), expected shape \(3,\)"
    with pytest.raises(Exception, match=message):
        jax.block_until_ready(solver(jnp.ones(3)))
    with pytest.raises(Exception, match=message):
        jax.block_until_ready(jax.jit(solver)(jnp.ones(3)))
    with pytest.raises(Exception, match=message):
        jax.block_until_ready(jax.vmap(solver)(jnp.ones((2, 3))))
    # Inside a method, the message reaches the caller too.
    with pytest.raises(Exception, match=message):
        jax.block_until_ready(jr.perturb.blackbox(solver)(jnp.ones(3)))


def test_bad_arguments():
    with pytest.raises(TypeError, match="`fn`"):
        jr.perturb.host_solver(None, SAME)  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="`result_shape`"):
        jr.perturb.host_solver(assignment, (3, 3))  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match=r"`vmap_method`.*'vectorize'"):
        jr.perturb.host_solver(assignment, SAME, vmap_method="vectorize")
    with pytest.raises(TypeError, match="`result_shape` returned"):
        jr.perturb.host_solver(assignment, lambda x: x.shape)(jnp.ones((N, N)))


def test_differentiating_the_host_solver_itself_raises():
    with pytest.raises(NotImplementedError, match=r"host_solver.*'assignment'.*no derivative"):
        jax.grad(lambda c: jnp.sum(lsa(c) * c))(_costs(4, (N, N)))


def test_inside_perturbed_and_fenchel_young():
    # Maximising methods with the maximising assignment: bit-identical to the JAX solver.
    theta = jax.random.normal(jax.random.key(5), (N, N))
    kw = {"num_samples": 20, "sigma": 0.5}
    p_host = jr.perturb.perturbed(lsa_max, **kw)
    p_jax = jr.perturb.perturbed(assignment_max_enum, **kw)
    np.testing.assert_array_equal(jax.jit(p_host)(KEY, theta), p_jax(KEY, theta))
    # Vmapped over a batch of problems (sequential callbacks inside the vmap over draws).
    thetas = jax.random.normal(jax.random.key(6), (2, N, N))
    targets = jnp.stack([jnp.eye(N), jnp.eye(N)[::-1]])
    keys = jax.random.split(KEY, 2)

    def run(fn):
        loss = jr.perturb.fenchel_young_loss(fn, **kw)
        return jax.jit(jax.vmap(jax.value_and_grad(loss, argnums=1)))(keys, thetas, targets)

    (v_host, g_host), (v_jax, g_jax) = run(lsa_max), run(assignment_max_enum)
    np.testing.assert_allclose(v_host, v_jax, rtol=1e-6)
    np.testing.assert_array_equal(g_host, g_jax)
    assert np.any(np.asarray(g_host) != 0)


def test_inside_blackbox_and_spo_plus():
    # Minimising methods with SciPy's shortest path: identical to the enumerated solver.
    w = _costs(7, (3, len(EDGES)))
    u = jax.random.normal(jax.random.key(8), (3, len(EDGES)))

    def grads(fn):
        g = jr.perturb.blackbox(fn, lam=2.0)
        return jax.jit(jax.vmap(jax.grad(lambda w, u: g(w) @ u)))(w, u)

    bb = grads(sp)
    np.testing.assert_array_equal(bb, grads(path_enum))
    assert np.any(np.asarray(bb) != 0)
    c_hat = w + jax.random.normal(jax.random.key(9), w.shape)
    spo_host = jax.jit(jax.vmap(jax.value_and_grad(jr.perturb.spo_plus_loss(sp))))
    spo_jax = jax.vmap(jax.value_and_grad(jr.perturb.spo_plus_loss(path_enum)))
    (v1, g1), (v2, g2) = spo_host(c_hat, w), spo_jax(c_hat, w)
    np.testing.assert_allclose(v1, v2, rtol=1e-6)
    np.testing.assert_array_equal(g1, g2)
    # SPO+ value = the max over the enumerated paths (Elmachtoub & Grigas' definition).
    c_hat0, c0 = np.asarray(c_hat[0], np.float64), np.asarray(w[0], np.float64)
    w_c = PATHS[np.argmin(PATHS @ c0)]
    expected = np.max(PATHS @ (c0 - 2 * c_hat0)) + 2 * c_hat0 @ w_c - c0 @ w_c
    np.testing.assert_allclose(v1[0], expected, rtol=1e-5)


def test_nan_upstream_gradient_never_reaches_the_host_solver():
    # SciPy rejects NaN costs; a NaN cotangent (a poisoned output upstream) gives a NaN
    # gradient without calling the solver on NaN.
    g = jr.perturb.blackbox(lsa)
    grad = jax.grad(lambda c: jnp.sum(g(c)) * jnp.nan)(_costs(10, (N, N)))
    assert np.all(np.isnan(np.asarray(grad)))
