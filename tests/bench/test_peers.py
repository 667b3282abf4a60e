"""Tests of the ``peers`` suite (``python -m jaxrelax.bench --peers``).

Most run without any peer installed (the test environment has none): the command then
prints which peers are missing and how to install them, and exits 0. The end-to-end run
on tiny sizes needs PyTorch, entmax and OTT-JAX (`pip install -e '.[peers]'`, which also
installs PyEPO and diffsort, whose rows are in the `solvers` and `sorting` suites) and is
skipped without them.
"""

import dataclasses
import json
import os
import pathlib
import re
import sys
import tomllib

import jax
import numpy as np
import pytest

from jaxrelax.bench import __main__ as cli
from jaxrelax.bench import _runner, peers
from jaxrelax.bench._runner import EXTRA_SUITES, SUITES, run_bench

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def no_peers(monkeypatch):
    # A None entry in sys.modules makes `import name` raise ImportError: the suite then
    # behaves as on a machine without the peers, whether or not they are installed here.
    for peer in peers.PEERS:
        monkeypatch.setitem(sys.modules, peer.module, None)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)


def test_peers_without_peers_prints_the_install_table(no_peers, tmp_path, capsys):
    out = str(tmp_path)
    assert cli.main(["--peers", "--only", "peers", "--out", out, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    title = (
        "peers: missing peers (PyTorch, entmax, OTT-JAX, PyEPO, diffsort), install with "
        "pip install -e '.[peers]'"
    )
    assert title in printed
    for peer in peers.PEERS:
        assert f"'{peer.requirement}'" in printed  # the per-package install line
    # The availability table names where each peer's rows are (PyEPO and diffsort train
    # beside jaxrelax in the solvers and sorting suites).
    table = printed[printed.index(title) :]
    cells = lambda line: re.split(r"\s{2,}", line.strip())
    by_peer = {cells(line)[0]: cells(line) for line in table.splitlines()[4:9]}
    assert {name: row[1:4] for name, row in by_peer.items()} == {
        "PyTorch": ["torch", "missing", "peers"],
        "entmax": ["entmax", "missing", "peers"],
        "OTT-JAX": ["ott", "missing", "peers"],
        "PyEPO": ["pyepo.model.ort", "missing", "solvers"],
        "diffsort": ["diffsort", "missing", "sorting"],
    }
    assert "PyEPO trains beside jaxrelax in the solvers suite" in table
    assert "python -m jaxrelax.bench --peers --only solvers,sorting" in table
    assert "jaxrelax beside other libraries" not in printed  # no rows without peers
    with open(os.path.join(out, "summary.txt")) as fh:
        assert title in fh.read()
    with open(os.path.join(out, "results.json")) as fh:
        record = json.load(fh)
    assert list(record["suites"]) == ["peers"]
    suite = record["suites"]["peers"]
    assert suite["results"] == []
    assert {m: v["available"] for m, v in suite["peers"].items()} == {
        "torch": False,
        "entmax": False,
        "ott": False,
        "pyepo.model.ort": False,
        "diffsort": False,
    }
    assert "OMP_WAIT_POLICY" not in os.environ  # torch is absent: the environment is left
    assert record["seconds"]["peers"] < 5.0  # nothing to compile: well under a second here


def test_cli_peers_adds_the_suite(monkeypatch):
    seen = []
    monkeypatch.setattr("jaxrelax.bench._runner.run_bench", lambda **kw: seen.append(kw["only"]))
    for argv in (
        [],
        ["--peers"],
        ["--peers", "--only", "toy"],
        ["--only", "peers"],
        ["--peers", "--only", "peers"],
    ):
        assert cli.main(argv) == 0
    assert seen == [None, [*SUITES, "peers"], ["toy", "peers"], ["peers"], ["peers"]]
    # The default run (only=None) is the suites of SUITES, which does not hold peers.
    assert "peers" not in SUITES and EXTRA_SUITES == {"peers": peers}


def test_run_bench_takes_peers_and_rejects_unknown_suites(tmp_path):
    with pytest.raises(ValueError, match="unknown suites"):
        run_bench(str(tmp_path), only=["peers", "nope"], progress=False, echo=False)


def test_peers_extra_lists_every_peer():
    # One fact, two places: the `peers` extra installs exactly what PEERS imports.
    with open(ROOT / "pyproject.toml", "rb") as fh:
        extras = tomllib.load(fh)["project"]["optional-dependencies"]
    assert extras["peers"] == [p.requirement for p in peers.PEERS]
    names = {p.name for p in peers.PEERS}
    assert {"PyTorch", "entmax", "OTT-JAX", "PyEPO", "diffsort"} <= names  # issue 20's peers
    distributions = [peers._distribution(p) for p in peers.PEERS]
    assert distributions == ["torch", "entmax", "ott-jax", "pyepo", "diffsort"]
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    dep_names = {re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0] for d in deps}
    assert not dep_names & set(distributions)  # peers are never dependencies


def test_each_peer_names_a_suite_that_runs_it():
    # The peers suite times its own peers; a peer of another suite is trained there under
    # --peers, which sets that suite config's `peers` field (__main__._suite_overrides).
    own = {p.module for p in peers.PEERS if p.suite == "peers"}
    assert own == {"torch", "entmax", "ott"} == set(peers._row_counts(peers.PeersConfig()))
    for peer in peers.PEERS:
        if peer.suite == "peers":
            continue
        assert peer.suite in SUITES, peer
        config = _runner._CONFIGS[peer.suite]
        assert "peers" in {f.name for f in dataclasses.fields(config)}, peer
    assert {p.name: p.suite for p in peers.PEERS if p.suite != "peers"} == {
        "PyEPO": "solvers",
        "diffsort": "sorting",
    }


def test_policy_set_by_an_earlier_suite_counts(monkeypatch):
    # `--peers` runs solvers and sorting first: they set OMP_WAIT_POLICY=PASSIVE (through
    # _prepare_torch_env) and import torch; the peers suite then must not warn that the
    # policy may not apply, but must when torch loaded before any suite set it.
    monkeypatch.setitem(sys.modules, "torch", object())  # "already imported"
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setattr(peers, "_policy_set_before_torch", True)
    env = peers._prepare_torch_env()
    assert env == {
        "OMP_WAIT_POLICY": "PASSIVE",
        "omp_wait_policy_set_by_bench": True,
        "torch_imported_before_suite": True,
    }
    record = _record([])
    record["environment"] = env | {"torch_threads": 2}
    record["results"] = [_ROW]
    text = "\n".join(peers.tables(record))
    assert "OMP_WAIT_POLICY=PASSIVE (set by the bench)" in text
    assert "may not apply" not in text
    monkeypatch.setattr(peers, "_policy_set_before_torch", False)  # set by the user
    env = peers._prepare_torch_env()
    assert not env["omp_wait_policy_set_by_bench"] and env["torch_imported_before_suite"]
    record["environment"] = env | {"torch_threads": 2}
    assert "torch was imported before the suite: the policy may not apply" in "\n".join(
        peers.tables(record)
    )


def test_agreement():
    jr_out, peer_out = np.array([0.0, 1.0, 0.25]), np.array([0.0, 0.5, 0.25])
    jr_grad, peer_grad = np.array([[1.0, 2.0]]), np.array([[1.0, 2.25]])
    agr = peers.agreement(jr_out, peer_out, jr_grad, peer_grad)
    assert agr == peers.Agreement(0.5, 0.25, False)
    assert agr.text() == "out 5.0e-01, grad 2.5e-01"
    # relative: divided by the peer's largest magnitude (0.5 and 2.25)
    rel = peers.agreement(jr_out, peer_out, jr_grad, peer_grad, relative=True)
    assert rel.output == pytest.approx(1.0) and rel.grad == pytest.approx(0.25 / 2.25)
    assert rel.text().endswith("(rel.)")
    # float32 inputs are compared in float64: no rounding of the difference itself
    a32 = np.float32(1.0) + np.float32(2**-23)
    assert peers.agreement([a32], [1.0], [0.0], [0.0]).output == 2**-23
    assert peers.agreement([], [], [], []).output == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        peers.agreement(np.zeros(3), np.zeros(4), np.zeros(1), np.zeros(1))


def test_one_hot_rows():
    assert peers.one_hot_rows(np.eye(4)[[2, 0, 3]])
    assert peers.one_hot_rows(jax.numpy.eye(3, dtype=jax.numpy.bfloat16))
    assert not peers.one_hot_rows([[0.0, 1.0, 1.0]])  # two ones
    assert not peers.one_hot_rows([[0.0, 0.0, 0.0]])  # none
    assert not peers.one_hot_rows([[0.5, 0.5]])  # soft
    assert not peers.one_hot_rows([[0.0, 1.0000001]])


def test_plan_repeats():
    cfg = peers.PeersConfig(rounds=7, min_rounds=3, round_seconds=0.25, max_calls=50)
    cfg = dataclasses.replace(cfg, row_seconds=10.0)
    # each side gets its own calls (about round_seconds of work, at most max_calls)
    assert peers.plan_repeats((1e-5, 1e-4), cfg) == (7, (50, 50))
    assert peers.plan_repeats((1e-4, 0.01), cfg) == (7, (50, 25))
    # a 1 s peer: one call; a round is ~1.25 s, 10 s fit 8 rounds, capped at 7
    assert peers.plan_repeats((0.001, 1.0), cfg) == (7, (50, 1))
    # a 2 s peer: 10 s fit 4 rounds of ~2.05 s
    assert peers.plan_repeats((0.001, 2.0), cfg) == (4, (50, 1))
    # a 10 s peer (OTT-JAX's soft sort at n = 4000): never fewer than min_rounds
    assert peers.plan_repeats((0.001, 10.0), cfg) == (3, (50, 1))
    assert peers.plan_repeats((0.0, 0.0), cfg) == (7, (50, 50))


def _record(rows, available=True):
    cfg = dataclasses.asdict(peers.PeersConfig())
    return {
        "config": cfg,
        "peers": {
            p.module: {"name": p.name, "available": available, "version": "9.9", "error": None}
            for p in peers.PEERS
        },
        "environment": {"OMP_WAIT_POLICY": "PASSIVE", "omp_wait_policy_set_by_bench": True}
        | {"torch_imported_before_suite": False, "torch_threads": 2},
        "results": rows,
    }


_ROW = {
    "peer": "ott",
    "op": "jr.soft.sinkhorn(a, b, tol=1e-05)",
    "peer_op": "Sinkhorn(threshold=1e-05)",
    "size": "n=128",
    "jaxrelax_compile_seconds": 1.25,
    "peer_first_call_seconds": 2.5,
    "jaxrelax_seconds": 0.002,
    "peer_seconds": 0.003,
    "ratio": 1.5,
    "agreement_text": "out 1.0e-06, grad 2.0e-06 (rel.)",
}


def test_tables_from_a_handmade_record():
    timed = _ROW
    failed = {
        "peer": "entmax",
        "op": "jr.soft.entmax15",
        "peer_op": "entmax.entmax15",
        "size": "4x8",
        "jaxrelax_compile_seconds": 0.5,
        "error": "TypeError: no",
        "agreement_text": "error: TypeError: no",
    }
    found, table = peers.tables(_record([timed, failed]))
    assert found.splitlines()[0] == "peers: every peer found" and "9.9" in found
    lines = table.splitlines()
    head = lines[2].split()
    assert head[:3] == ["jaxrelax", "op", "peer"] and "agreement" in head
    cells = lambda line: re.split(r"\s{2,}", line.strip())  # columns: 2+ spaces apart
    row = cells(next(line for line in lines if "n=128" in line))
    assert row[:3] == [
        "jr.soft.sinkhorn(a, b, tol=1e-05)",
        "OTT-JAX Sinkhorn(threshold=1e-05)",
        "n=128",
    ]
    # ms with 3 significant digits, the ratio, the compile and first-call seconds
    assert row[3:] == ["2", "3", "1.5", "1.25", "2.50", "out 1.0e-06, grad 2.0e-06 (rel.)"]
    bad = cells(next(line for line in lines if "4x8" in line))
    assert bad[3:] == ["-", "-", "-", "0.50", "-", "error: TypeError: no"]
    assert "OMP_WAIT_POLICY=PASSIVE (set by the bench)" in table
    assert "initializer=DefaultInitializer(), implicit_diff=None" in table


@pytest.mark.bench
def test_tiny_peers_run(tmp_path):
    for module in ("torch", "entmax", "ott"):
        pytest.importorskip(module)
    cfg = peers.PeersConfig(
        gumbel_shape=(8, 16),
        entmax_shape=(4, 16),
        sort_sizes=(16,),
        sinkhorn_sizes=(8,),
        rounds=2,
        min_rounds=1,
        round_seconds=0.01,
        max_calls=5,
        row_seconds=0.1,
    )
    # OTT-JAX promotes implicitly in places; the test suite's strict promotion is for jaxrelax.
    with jax.numpy_dtype_promotion("standard"):
        record = run_bench(
            str(tmp_path), only=["peers"], configs={"peers": cfg}, progress=False, echo=False
        )
    suite = record["suites"]["peers"]
    rows = {(r["op"], r["size"]): r for r in suite["results"]}
    assert len(rows) == 1 + 3 + 3 + 1  # gumbel, 3 entmax maps, 3 sort ops x 1 size, Sinkhorn
    for r in rows.values():
        assert "error" not in r, r
        assert r["jaxrelax_seconds"] > 0 and r["peer_seconds"] > 0 and r["ratio"] > 0
        assert r["jaxrelax_compile_seconds"] > 0 and r["peer_first_call_seconds"] > 0
    gumbel = rows[("jr.gumbel_softmax(hard=True)", "8x16")]["agreement"]
    assert gumbel == {"one_hot_jaxrelax": True, "one_hot_peer": True}
    # The same maps: values and gradients agree to float32 rounding (entmax_bisect's 50
    # bisection steps reach ~1e-7 on 16 entries).
    for op in ("jr.soft.sparsemax", "jr.soft.entmax15", "jr.soft.entmax(x, 1.3)"):
        agr = rows[(op, "4x16")]["agreement"]
        assert agr["output"] < 1e-5 and agr["grad"] < 1e-5, (op, agr)
    plan = rows[("jr.soft.sinkhorn(a, b, tol=1e-05)", "n=8")]["agreement"]
    assert plan["relative"] and plan["output"] < 1e-3 and plan["grad"] < 1e-3
    assert rows[("jr.soft.sort", "n=16")]["agreement"] is None
    with open(tmp_path / "summary.txt") as fh:
        assert "peers: jaxrelax beside other libraries" in fh.read()
