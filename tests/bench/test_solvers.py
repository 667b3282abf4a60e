"""Tests of the ``solvers`` suite: PyEPO's shortest-path data, the dynamic-programming
solver, the regret metric, the suite end to end and its PyEPO side by side.

References: PyEPO's own generator, arcs and regret metric where ``pyepo`` imports (they
are skipped without it; the test environment does not install it), SciPy's shortest path,
and exact enumeration of the 70 grid paths.
"""

# PyEPO and PyTorch are optional and absent where the tests are type-checked:
# pyright: reportMissingImports=false

import dataclasses
import itertools
import json
import os
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse
import scipy.stats
from scipy.sparse.csgraph import shortest_path as scipy_shortest_path

from jaxrelax.bench import __main__ as cli
from jaxrelax.bench import _report, solvers
from jaxrelax.bench._runner import SUITES, run_bench


def _pyepo():
    try:
        import pyepo
        import pyepo.model.ort  # OR-tools
    except Exception:
        pytest.skip("pyepo[ortools] is not installed")
    return pyepo


# PyEPO's arc order (pyepo/model/utils.py, _get_grid_arcs): row by row, the row's east
# arcs, then its south arcs; node = row * 5 + column.
PYEPO_ARCS_5X5_START = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (1, 6), (2, 7), (3, 8), (4, 9)]
PYEPO_ARCS_5X5_END = [(19, 24), (20, 21), (21, 22), (22, 23), (23, 24)]


def test_edges_are_pyepos():
    e = solvers.edges((5, 5))
    assert len(e) == 40 and len(set(e)) == 40
    assert e[:9] == PYEPO_ARCS_5X5_START and e[-5:] == PYEPO_ARCS_5X5_END
    assert solvers.edges((2, 3)) == [(0, 1), (1, 2), (0, 3), (1, 4), (2, 5), (3, 4), (4, 5)]


def test_edges_equal_pyepos_model():
    pyepo = _pyepo()
    for grid in ((5, 5), (3, 4)):
        assert solvers.edges(grid) == list(pyepo.model.ort.shortestPathModel(grid).arcs)


@pytest.mark.parametrize("deg", [1, 2, 4, 6])
def test_generate_equals_pyepo(deg):
    pyepo = _pyepo()
    x, c = solvers.generate(50, deg, noise_width=0.5, seed=7)
    x_ref, c_ref = pyepo.data.shortestpath.genData(50, 5, (5, 5), deg=deg, noise_width=0.5, seed=7)
    assert c.dtype == c_ref.dtype == np.float32
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(c, c_ref)


def test_generate_follows_pyepos_formula():
    # PyEPO (Tang & Khalil 2022; pyepo/data/shortestpath.py):
    # c = ((B x / sqrt(p) + 3)^deg + 1) / 3.5^deg * eps, eps ~ U[1 - w, 1 + w], B in {0, 1}.
    # Without noise at deg 1, c is affine in x: slopes in {0, 1 / (3.5 sqrt 5)}, intercept
    # 4 / 3.5.
    x, c0 = solvers.generate(400, 1, noise_width=0.0, seed=3)
    design = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(design, c0.astype(np.float64), rcond=None)
    np.testing.assert_allclose(coef[-1], 4 / 3.5, atol=1e-5)
    slopes = coef[:-1] * 3.5 * np.sqrt(5)
    np.testing.assert_allclose(slopes, np.round(slopes), atol=1e-5)
    assert set(np.round(slopes).ravel()) == {0.0, 1.0}
    # The noise is drawn last from the same stream: the ratio to the noiseless costs is ε,
    # uniform on [0.5, 1.5] (Kolmogorov-Smirnov against the closed-form CDF).
    x_n, c = solvers.generate(400, 1, noise_width=0.5, seed=3)
    np.testing.assert_array_equal(x_n, x)
    eps = (c.astype(np.float64) / c0).ravel()
    assert 0.5 <= eps.min() and eps.max() <= 1.5
    assert scipy.stats.kstest(eps, scipy.stats.uniform(0.5, 1.0).cdf).pvalue > 1e-3


def test_generate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="deg"):
        solvers.generate(3, 0)
    with pytest.raises(ValueError, match="noise_width"):
        solvers.generate(3, 2, noise_width=-0.1)


def _scipy_path(costs, grid):
    """SciPy's shortest path (Bellman-Ford: costs may be negative on the DAG) as edges."""
    e = solvers.edges(grid)
    n = grid[0] * grid[1]
    u, v = np.array(e).T
    graph = scipy.sparse.csr_matrix((costs, (u, v)), shape=(n, n))
    dist, pred = scipy_shortest_path(
        graph, method="BF", directed=True, return_predecessors=True, indices=0
    )
    index = {edge: k for k, edge in enumerate(e)}
    path, node = np.zeros(len(e)), n - 1
    while node != 0:
        path[index[(pred[node], node)]] = 1
        node = pred[node]
    return dist[n - 1], path


@pytest.mark.parametrize("grid", [(5, 5), (3, 4), (4, 2), (1, 3)])
def test_shortest_path_matches_scipy(grid):
    rng = np.random.default_rng(sum(grid))
    num_edges = len(solvers.edges(grid))
    costs = np.concatenate(
        [rng.uniform(0.1, 1.0, (40, num_edges)), rng.uniform(-1.0, 1.0, (40, num_edges))]
    )
    out = np.asarray(jax.jit(solvers.shortest_path, static_argnums=1)(costs, grid))
    assert out.dtype == np.float64 or out.dtype == np.float32
    for c, w in zip(costs, out):
        dist, path = _scipy_path(c, grid)
        np.testing.assert_allclose(w @ c, dist, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(w, path)  # continuous costs: the optimum is unique


def _all_paths(grid=(5, 5)):
    """Every monotone path (C(8, 4) = 70 on 5x5) as a 0/1 edge vector, by enumeration."""
    rows, cols = grid
    index = {e: k for k, e in enumerate(solvers.edges(grid))}
    out = []
    for south in itertools.combinations(range(rows + cols - 2), rows - 1):
        w, node = np.zeros(len(index)), 0
        for step in range(rows + cols - 2):
            nxt = node + cols if step in south else node + 1
            w[index[(node, nxt)]] = 1
            node = nxt
        out.append(w)
    return np.stack(out)


def test_shortest_path_with_ties_is_an_optimal_path():
    # Integer costs: many optimal paths. The solver's must be one of them (a real path).
    paths = _all_paths()
    assert paths.shape == (70, 40)
    rng = np.random.default_rng(0)
    costs = rng.integers(1, 3, (200, 40)).astype(np.float32)
    out = np.asarray(jax.jit(solvers.shortest_path)(costs))
    best = (paths @ costs.T).min(axis=0)
    np.testing.assert_array_equal(np.sum(out * costs, axis=-1), best)
    assert all(any(np.array_equal(w, p) for p in paths) for w in out)


def test_shortest_path_batches_and_vmaps():
    rng = np.random.default_rng(1)
    costs = jnp.asarray(rng.normal(size=(3, 4, 40)), jnp.float32)
    batched = solvers.shortest_path(costs)
    assert batched.shape == (3, 4, 40) and batched.dtype == jnp.float32
    np.testing.assert_array_equal(jax.vmap(jax.vmap(solvers.shortest_path))(costs), batched)
    np.testing.assert_array_equal(solvers.shortest_path(costs[1, 2]), batched[1, 2])
    assert solvers.shortest_path(jnp.ones(40, jnp.int32)).dtype == jnp.float32


def test_normalised_regret_by_enumeration():
    rng = np.random.default_rng(2)
    c = rng.uniform(0.5, 1.5, (30, 40)).astype(np.float32)
    c_hat = c + rng.normal(0.0, 0.3, c.shape).astype(np.float32)
    paths = _all_paths()
    z = (paths @ c.T).min(axis=0)
    chosen = paths[np.argmin(paths @ c_hat.T, axis=0)]
    expected = np.sum(np.sum(chosen * c, axis=-1) - z) / np.sum(z)
    got = solvers.normalised_regret(jnp.asarray(c_hat), jnp.asarray(c))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert float(solvers.normalised_regret(jnp.asarray(c), jnp.asarray(c))) == 0.0


def test_normalised_regret_equals_pyepos():
    pyepo = _pyepo()
    from torch.utils.data import DataLoader

    x, c = solvers.generate(60, 4, seed=5)
    rng = np.random.default_rng(3)
    weight = rng.normal(size=(5, 40))
    optmodel = pyepo.model.ort.shortestPathModel((5, 5))
    loader = DataLoader(solvers._pyepo_dataset(optmodel, x, c), batch_size=16)
    expected = pyepo.metric.regret(lambda xb: np.asarray(xb) @ weight, optmodel, loader)
    got = solvers.normalised_regret(jnp.asarray(x @ weight, jnp.float32), jnp.asarray(c))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


# A small run of the suite: four methods (both the minimising and the maximising
# conventions), two epochs. Compiling the four programs dominates.
TINY = dataclasses.replace(
    solvers.SolversConfig.quick(),
    methods=("two_stage", "spo+", "pfyl", "dbb"),
    num_test=300,
    epochs=2,
    seeds=2,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("solvers"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "pyepo", None)  # as on a machine without PyEPO
        # --peers sets OMP_WAIT_POLICY for PyTorch where it is installed: undone on exit
        mp.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
        record = run_bench(
            out,
            seed=0,
            only=["solvers"],
            progress=False,
            echo=False,
            configs={"solvers": dataclasses.replace(TINY, peers=True)},
        )
    return out, record


@pytest.mark.bench
def test_suite_end_to_end(tiny_run):
    out, record = tiny_run
    assert "solvers" in SUITES
    with open(os.path.join(out, "results.json")) as fh:
        rec = json.load(fh)["suites"]["solvers"]
    assert record["plots"] == ["solvers_regret.png"]
    with open(os.path.join(out, "solvers_regret.png"), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert rec["data"]["data_seed"] == 135
    rows = {(r["method"], r["degree"]): r for r in rec["results"]}
    assert set(rows) == {(m, 6) for m in TINY.methods}
    for (method, _), r in rows.items():
        curve = r["regret_curve"]
        assert len(curve) == TINY.epochs + 1 and len(r["regret_runs"]) == TINY.seeds
        assert all(0.0 <= v < 2.0 for v in curve)
        assert r["ms_per_epoch"] > 0
        # Training lowers the test regret of the random initial model (about 0.5 here):
        # a sign error in a solver convention would raise it.
        assert curve[-1] < 0.6 * curve[0], (method, curve)
    # one program, with a branch per method
    assert rec["compiled_methods"] == list(TINY.methods) and rec["compile_seconds"] > 0
    summary = pathlib.Path(out, "summary.txt").read_text()
    assert "solvers: PyEPO shortest path" in summary and "pfyl" in summary


@pytest.mark.bench
def test_peers_without_pyepo_says_how_to_install(tiny_run):
    out, record = tiny_run
    suite = record["suites"]["solvers"]
    assert suite["pyepo"]["available"] is False and suite["peer_results"] == []
    summary = pathlib.Path(out, "summary.txt").read_text()
    assert "'.[peers]'" in solvers.INSTALL_HINT and "pyepo[ortools]" in solvers.INSTALL_HINT
    assert "PyEPO side by side skipped" in summary and solvers.INSTALL_HINT in summary


@pytest.mark.bench
def test_peers_with_pyepo(tmp_path):
    _pyepo()
    pytest.importorskip("torch")
    cfg = dataclasses.replace(
        TINY,
        methods=("spo+",),
        peer_methods=("spo+", "dbb"),
        epochs=1,
        seeds=1,
        peer_seeds=1,
        peers=True,
    )
    record = run_bench(
        str(tmp_path), only=["solvers"], progress=False, echo=False, configs={"solvers": cfg}
    )
    suite = record["suites"]["solvers"]
    assert suite["pyepo"]["available"]
    assert [r["method"] for r in suite["peer_results"]] == ["spo+", "dbb"]
    for r in suite["peer_results"]:
        assert r["same_solutions"] == 1.0  # OR-tools and the dynamic programme agree
        assert 0 < r["pyepo"]["regret"] < 1 and 0 < r["jaxrelax"]["regret"] < 1
        assert r["time_ratio"] > 1
    assert "jaxrelax beside PyEPO" in (tmp_path / "summary.txt").read_text()


def test_cli_full_and_peers_reach_the_config(monkeypatch):
    seen = []
    monkeypatch.setattr("jaxrelax.bench._runner.run_bench", lambda **kw: seen.append(kw))
    assert cli.main(["--only", "solvers", "--full"]) == 0
    full = solvers.SolversConfig.full()
    assert seen[-1]["overrides"]["solvers"] == {
        f.name: getattr(full, f.name) for f in dataclasses.fields(full)
    }
    assert cli.main(["--peers", "--only", "solvers"]) == 0
    assert seen[-1]["overrides"] == {"solvers": {"peers": True}}
    assert seen[-1]["only"] == ["solvers", "peers"]
    assert cli.main(["--only", "solvers"]) == 0
    assert seen[-1]["overrides"] == {}
    with pytest.raises(SystemExit):
        cli.main(["--full", "--quick"])
    # --full reaches run_bench's configuration choice through the overrides
    cfg = dataclasses.replace(solvers.SolversConfig(), **seen[0]["overrides"]["solvers"])
    assert cfg == full and cfg.degrees == (1, 2, 4, 6)


def test_config_rejects_unknown_methods():
    with pytest.raises(ValueError, match="unknown methods"):
        solvers.run(
            dataclasses.replace(TINY, methods=("nope",)), 0, _report.Progress(0, enabled=False)
        )
