"""`peers` suite: jaxrelax beside the libraries that compute the same operators.

Run only when asked: `python -m jaxrelax.bench --peers` (the default suites, then this
one) or `python -m jaxrelax.bench --only peers`. Every peer whose package imports gets
its rows; the suite's first table says which peers were found, which suite's tables hold
each one's rows, and how to install the missing ones (the optional extra
`pip install -e '.[peers]'`, which installs every peer of `PEERS`, never a dependency).

| peer (pip) | suite | rows: jaxrelax / peer | agreement |
| --- | --- | --- | --- |
| PyTorch (`torch`) | `peers` | `jr.gumbel_softmax(hard=True)` / `F.gumbel_softmax` | one-hot rows |
| entmax (`entmax`) | `peers` | `jr.soft.sparsemax` / `entmax.sparsemax` | values, gradients |
| | | `jr.soft.entmax15` / `entmax.entmax15` | values, gradients |
| | | `jr.soft.entmax(x, 1.3)` / `entmax.entmax_bisect(alpha=1.3)` | values, gradients |
| OTT-JAX (`ott-jax`) | `peers` | `jr.soft.sort`, `rank`, `quantile` / `soft_sort.sort`, ... | n/a |
| | | `jr.soft.sinkhorn(-C, 0.05, a=a, b=b)` / `sinkhorn.Sinkhorn` | plans, gradients |
| PyEPO (`pyepo[ortools]`) | `solvers` | SPO+, PFYL, DBB / `SPOPlus`, ... (training) | regrets |
| diffsort (`diffsort`) | `sorting` | `jr.soft.sorting_network` / `DiffSortNet` | accuracy |

Sizes: Gumbel-softmax 4096×1024 (hard, straight-through); entmax maps 256×1024; OTT-JAX's
soft sort, ranks and quantile at n = 100, 1000 (and 4000 by default), its
`Sinkhorn(threshold=1e-5)` on `Geometry(cost_matrix=C, epsilon=0.05)` beside
`jr.soft.sinkhorn(-C, 0.05, a=a, b=b, tol=1e-5)` at n = 128, 512.

PyEPO and diffsort train a model, so their rows live in other suites, run there under
`--peers` (`Peer.suite` names the suite; this suite only says whether they import): the
`solvers` suite trains PyEPO's `SPOPlus`, `perturbedFenchelYoung` and `blackboxOpt` with
its OR-tools shortest-path model on the same data beside jaxrelax's SPO+, PFYL and DBB
(regret and time per epoch), the `sorting` suite diffsort's odd-even `DiffSortNet` beside
`jr.soft.sorting_network` on the same batches (accuracy and time per step).

The rows of this suite's own table (the peers whose `Peer.suite` is `"peers"`) time
forward + backward, the gradient of `sum(w * op(x))` for a fixed random `w` (the output
returned beside it), on the same float32 input for both sides, with the benchmark's one
interleaved timer (`_report.time_interleaved`) in one process: the calls per round of
each side are chosen from one probe call so that they take about `round_seconds`, and the
rounds are cut (not below `min_rounds`) to keep a row under `row_seconds`. Reported:
best-of-rounds milliseconds of each side, the median over rounds of the per-round ratio
peer / jaxrelax (load hits both alike within a round), the compile time of each JAX
program (trace, lower and compile, ahead of time) and the first eager call of each
PyTorch one.

PyTorch shares the two cores with XLA's thread pool: the suite sets
`OMP_WAIT_POLICY=PASSIVE` (unless set to something else) before it imports `torch`
or a peer built on it, and `torch.set_num_threads(torch_threads)` while it runs. Without
the passive policy PyTorch's OpenMP workers spin between calls and contend with XLA's
threads: on 2 cores the entmax rows then measure 10-40× slower in the same process.

OTT-JAX 0.6 on jax 0.10: reverse mode through `soft_sort` with its default
`SortingInitializer` fails (a `while_loop` with dynamic bounds), and with
`DefaultInitializer` and the default implicit differentiation its linear solve returns
non-finite values and raises; `initializer=DefaultInitializer(), implicit_diff=None`
(unrolled) differentiates, and is what the suite runs.
"""

# The peers are optional and absent where the package is type-checked:
# pyright: reportMissingImports=false

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jaxrelax as jr
from jaxrelax.bench import _report

__all__ = [
    "PEERS",
    "Agreement",
    "Peer",
    "PeersConfig",
    "agreement",
    "find_peers",
    "num_tasks",
    "one_hot_rows",
    "plan_repeats",
    "plot",
    "run",
    "tables",
]


@dataclasses.dataclass(frozen=True)
class PeersConfig:
    """Sizes and repetitions of the ``peers`` suite."""

    gumbel_shape: tuple[int, int] = (4096, 1024)
    entmax_shape: tuple[int, int] = (256, 1024)
    entmax_alpha: float = 1.3
    sort_sizes: tuple[int, ...] = (100, 1000, 4000)  # one row of n; OTT takes ~10 s at 4000
    quantile_levels: tuple[float, ...] = (0.1, 0.5, 0.9)
    sinkhorn_sizes: tuple[int, ...] = (128, 512)
    sinkhorn_epsilon: float = 0.05
    sinkhorn_tol: float = 1e-5
    sinkhorn_max_iters: int = 2000  # OTT's default max_iterations
    rounds: int = 7  # at most this many interleaved rounds per row
    min_rounds: int = 3  # at least this many, whatever the row costs
    round_seconds: float = 0.25  # each side's calls in a round take about this long
    max_calls: int = 50
    row_seconds: float = 10.0  # rounds are cut (down to min_rounds) to fit this
    torch_threads: int = 2

    @classmethod
    def quick(cls) -> PeersConfig:
        # Without n = 4000, where one OTT-JAX soft sort takes ~10 s here.
        return cls(sort_sizes=(100, 1000), rounds=5, row_seconds=3.0)


class Peer(NamedTuple):
    """A library jaxrelax is compared with: what to import, how to install it, and which
    suite's tables hold its rows."""

    name: str  # as printed
    module: str  # what must import (a submodule where the rows need one)
    requirement: str  # the pip requirement of the `peers` extra in pyproject.toml
    rows: str  # what its rows compare
    #: the suite whose tables hold its rows under `--peers`: "peers" (this suite's
    #: timing table) or a default suite that trains the peer beside jaxrelax
    suite: str = "peers"


#: The peers, in table order; their `requirement`s make the `peers` extra.
PEERS: tuple[Peer, ...] = (
    Peer("PyTorch", "torch", "torch>=2.4", "gumbel_softmax(hard=True)"),
    Peer("entmax", "entmax", "entmax>=1.3", "sparsemax, entmax15, entmax_bisect"),
    Peer("OTT-JAX", "ott", "ott-jax>=0.6", "soft sort, ranks, quantile; Sinkhorn"),
    # Its OR-tools models: importing them imports pyepo, torch and ortools.
    Peer(
        "PyEPO",
        "pyepo.model.ort",
        "pyepo[ortools]>=2.2",
        "SPO+, PFYL, DBB training (shortest path)",
        suite="solvers",
    ),
    Peer(
        "diffsort",
        "diffsort",
        "diffsort>=0.2",
        "odd-even sorting network training",
        suite="sorting",
    ),
)

#: How the tables tell a user to install the missing peers.
INSTALL_HINT = "pip install -e '.[peers]'"

_USES_TORCH = ("torch", "entmax")  # the peers that run on PyTorch's thread pool


def _distribution(peer: Peer) -> str:
    """The distribution name of a requirement: `"ott-jax>=0.6"` -> `"ott-jax"`,
    `"pyepo[ortools]>=2.2"` -> `"pyepo"`."""
    return re.split(r"[<>=!~;\[ ]", peer.requirement, maxsplit=1)[0]


#: Whether this process's bench set `OMP_WAIT_POLICY=PASSIVE` before torch loaded (an
#: earlier suite's call counts: `--peers` runs solvers and sorting, which import torch).
_policy_set_before_torch = False


def _prepare_torch_env() -> dict[str, Any]:
    """Sets `OMP_WAIT_POLICY=PASSIVE` unless set, if `torch` is installed and not yet
    imported (the OpenMP runtime reads it once, when torch loads)."""
    global _policy_set_before_torch
    imported = sys.modules.get("torch") is not None
    if not imported and not os.environ.get("OMP_WAIT_POLICY"):
        try:
            installed = importlib.util.find_spec("torch") is not None
        except (ImportError, ValueError):
            installed = False
        if installed:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
            _policy_set_before_torch = True
    policy = os.environ.get("OMP_WAIT_POLICY")
    return {
        "OMP_WAIT_POLICY": policy,
        "omp_wait_policy_set_by_bench": _policy_set_before_torch and policy == "PASSIVE",
        "torch_imported_before_suite": imported,
    }


def find_peers() -> dict[str, dict[str, Any]]:
    """Imports every peer: module name -> ``{"available", "version", "error"}``."""
    found = {}
    for peer in PEERS:
        try:
            importlib.import_module(peer.module)
        except Exception as exc:  # ImportError, or a broken install (OSError, ...)
            found[peer.module] = {
                "available": False,
                "version": None,
                "error": f"{type(exc).__name__}: {exc}",
            }
            continue
        try:
            version = importlib.metadata.version(_distribution(peer))
        except importlib.metadata.PackageNotFoundError:
            version = getattr(sys.modules[peer.module], "__version__", None)
        found[peer.module] = {"available": True, "version": version, "error": None}
    return found


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# --------------------------------------------------------------------------- helpers


class Agreement(NamedTuple):
    """Largest difference of the outputs and of the gradients of two implementations."""

    output: float  # max |jaxrelax - peer| over the outputs (/ max |peer| if relative)
    grad: float  # the same over the gradients
    relative: bool

    def text(self) -> str:
        rel = " (rel.)" if self.relative else ""
        return f"out {self.output:.1e}, grad {self.grad:.1e}{rel}"


def _max_abs(a: np.ndarray) -> float:
    return float(np.max(np.abs(a))) if a.size else 0.0


def agreement(
    jr_out: Any, peer_out: Any, jr_grad: Any, peer_grad: Any, *, relative: bool = False
) -> Agreement:
    """Max absolute difference of outputs and gradients (in float64), divided by the
    peer's max absolute value when ``relative`` (for outputs on a scale far from 1, such
    as transport plans whose entries are ~1/n²)."""

    def diff(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if a.shape != b.shape:
            raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
        d = _max_abs(a - b)
        if relative:
            scale = _max_abs(b)
            d = d / scale if scale > 0 else (0.0 if d == 0 else float("inf"))
        return d

    return Agreement(diff(jr_out, peer_out), diff(jr_grad, peer_grad), relative)


def one_hot_rows(y: Any) -> bool:
    """Whether every row (last axis) of ``y`` is exactly one-hot (one 1, the rest 0)."""
    y = np.asarray(y)
    return bool(np.all((y == 0) | (y == 1)) and np.all(np.sum(y == 1, axis=-1) == 1))


def plan_repeats(probe_seconds: Sequence[float], cfg: PeersConfig) -> tuple[int, tuple[int, ...]]:
    """``(rounds, calls)`` from one probe call of each side: each side's ``calls`` (1 to
    ``cfg.max_calls``) back-to-back calls take about ``cfg.round_seconds``, so that a
    sub-millisecond program is not timed by one call beside a slow one; then as many
    rounds (``cfg.min_rounds`` to ``cfg.rounds``) as fit in ``cfg.row_seconds``."""
    probes = [max(p, 1e-9) for p in probe_seconds]
    calls = tuple(int(np.clip(int(cfg.round_seconds / p), 1, cfg.max_calls)) for p in probes)
    per_round = sum(p * c for p, c in zip(probes, calls))
    rounds = int(np.clip(int(cfg.row_seconds / per_round), cfg.min_rounds, cfg.rounds))
    return rounds, calls


def _repeat(step: Callable[[], Any], calls: int) -> Callable[[], Any]:
    """``calls`` back-to-back calls of ``step``, returning the last result."""

    def repeated():
        for _ in range(calls - 1):
            step()
        return step()

    return repeated


# --------------------------------------------------------------------------- rows


class _Side(NamedTuple):
    step: Callable[[], Any]  # the timed call: returns (gradient, output)
    first_seconds: float  # JAX: trace + lower + compile; PyTorch: the first call


def _jax_side(fn: Callable[..., Any], *args: Any) -> _Side:
    """``fn`` compiled ahead of time for ``args`` (timed), as a zero-argument call."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    seconds = time.perf_counter() - t0
    return _Side(functools.partial(compiled, *args), seconds)


def _jax_fwd_bwd(op: Callable[..., jax.Array]) -> Callable[..., Any]:
    """``(x, w, *rest) -> (∇_x sum(w * op(x, *rest)), op(x, *rest))``."""

    def loss(x, w, *rest):
        out = op(x, *rest)
        return jnp.sum(w * out), out

    return jax.grad(loss, has_aux=True)


def _torch_side(op: Callable[[Any], Any], x: np.ndarray, w: np.ndarray) -> _Side:
    """PyTorch's forward + backward of ``sum(w * op(x))``; the first call timed."""
    import torch

    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w)

    def step():
        xt.grad = None
        out = op(xt)
        (wt * out).sum().backward()
        return xt.grad, out.detach()

    t0 = time.perf_counter()
    step()
    return _Side(step, time.perf_counter() - t0)


def _numpy(pair: Any) -> tuple[np.ndarray, np.ndarray]:
    grad, out = pair
    as_np = lambda a: a.numpy() if hasattr(a, "detach") else np.asarray(a)
    return as_np(grad), as_np(out)


class _Row(NamedTuple):
    peer: str  # module name of the peer (a key of PEERS)
    op: str  # the jaxrelax side
    peer_op: str  # the peer side
    size: str
    jr: Callable[[], _Side]  # builds (compiles) the jaxrelax side
    other: Callable[[], _Side]  # builds the peer side
    # (jr (grad, out), peer (grad, out)) -> (agreement record or None, table text)
    compare: Callable[[Any, Any], tuple[dict[str, Any] | None, str]]


def _na(reason: str) -> Callable[[Any, Any], tuple[None, str]]:
    return lambda a, b: (None, reason)


def _compare(relative: bool) -> Callable[[Any, Any], tuple[dict[str, Any], str]]:
    def compare(jr_res, peer_res):
        (jg, jo), (pg, po) = _numpy(jr_res), _numpy(peer_res)
        agr = agreement(jo, po, jg, pg, relative=relative)
        return agr._asdict(), agr.text()

    return compare


def _compare_one_hot(jr_res, peer_res) -> tuple[dict[str, Any], str]:
    a, b = one_hot_rows(_numpy(jr_res)[1]), one_hot_rows(_numpy(peer_res)[1])
    yes = lambda v: "yes" if v else "NO"
    return (
        {"one_hot_jaxrelax": a, "one_hot_peer": b},
        f"n/a (random); one-hot: jr {yes(a)}, peer {yes(b)}",
    )


def _torch_rows(cfg: PeersConfig, rng: np.random.Generator, key: jax.Array) -> Iterator[_Row]:
    import torch.nn.functional as F

    rows_n, n = cfg.gumbel_shape
    x = rng.standard_normal((rows_n, n), dtype=np.float32)
    w = rng.standard_normal((rows_n, n), dtype=np.float32)
    fn = _jax_fwd_bwd(lambda x, k: jr.gumbel_softmax(k, x, hard=True))
    yield _Row(
        "torch",
        "jr.gumbel_softmax(hard=True)",
        "F.gumbel_softmax(hard=True)",
        f"{rows_n}x{n}",
        lambda: _jax_side(fn, jnp.asarray(x), jnp.asarray(w), key),
        lambda: _torch_side(lambda t: F.gumbel_softmax(t, tau=1.0, hard=True, dim=-1), x, w),
        _compare_one_hot,
    )


def _entmax_rows(cfg: PeersConfig, rng: np.random.Generator) -> Iterator[_Row]:
    import entmax

    rows_n, n = cfg.entmax_shape
    x = rng.standard_normal((rows_n, n), dtype=np.float32)
    w = rng.standard_normal((rows_n, n), dtype=np.float32)
    alpha = cfg.entmax_alpha
    pairs = (
        ("jr.soft.sparsemax", "entmax.sparsemax", jr.soft.sparsemax, entmax.sparsemax),
        ("jr.soft.entmax15", "entmax.entmax15", jr.soft.entmax15, entmax.entmax15),
        (
            f"jr.soft.entmax(x, {alpha:g})",
            f"entmax.entmax_bisect(alpha={alpha:g})",
            lambda x: jr.soft.entmax(x, alpha),
            lambda t: entmax.entmax_bisect(t, alpha=alpha, dim=-1),
        ),
    )
    for op, peer_op, jr_fn, peer_fn in pairs:
        fn = _jax_fwd_bwd(jr_fn)
        yield _Row(
            "entmax",
            op,
            peer_op,
            f"{rows_n}x{n}",
            functools.partial(_jax_side, fn, jnp.asarray(x), jnp.asarray(w)),
            functools.partial(_torch_side, peer_fn, x, w),
            _compare(relative=False),
        )


#: OTT-JAX's soft-sort options that reverse mode works with (see the module docstring).
def _ott_sort_options() -> dict[str, Any]:
    from ott.initializers.linear.initializers import DefaultInitializer

    return {"initializer": DefaultInitializer(), "implicit_diff": None}


def _ott_rows(cfg: PeersConfig, rng: np.random.Generator) -> Iterator[_Row]:
    from ott.geometry import geometry
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn
    from ott.tools import soft_sort

    kw = _ott_sort_options()
    q = jnp.asarray(cfg.quantile_levels, jnp.float32)
    nq = len(cfg.quantile_levels)
    sorts = (
        ("jr.soft.sort", "soft_sort.sort", jr.soft.sort, lambda x: soft_sort.sort(x, **kw)),
        ("jr.soft.rank", "soft_sort.ranks", jr.soft.rank, lambda x: soft_sort.ranks(x, **kw)),
        (
            f"jr.soft.quantile({nq} levels)",
            "soft_sort.quantile",
            lambda x: jr.soft.quantile(x, q),
            lambda x: soft_sort.quantile(x, q, **kw),
        ),
    )
    different = _na("n/a (different relaxation)")
    for op, peer_op, jr_fn, ott_fn in sorts:
        for n in cfg.sort_sizes:
            x = jnp.asarray(rng.standard_normal(n, dtype=np.float32))
            out_shape = jax.eval_shape(jr_fn, x).shape
            w = jnp.asarray(rng.standard_normal(out_shape, dtype=np.float32))
            yield _Row(
                "ott",
                op,
                peer_op,
                f"n={n}",
                functools.partial(_jax_side, _jax_fwd_bwd(jr_fn), x, w),
                functools.partial(_jax_side, _jax_fwd_bwd(ott_fn), x, w),
                different,
            )

    eps, tol = cfg.sinkhorn_epsilon, cfg.sinkhorn_tol

    def jr_plan(c, a, b):
        return jr.soft.sinkhorn(
            -c, temperature=eps, num_iters=cfg.sinkhorn_max_iters, a=a, b=b, tol=tol
        )

    def ott_plan(c, a, b):
        geom = geometry.Geometry(cost_matrix=c, epsilon=eps)
        solver = sinkhorn.Sinkhorn(threshold=tol, max_iterations=cfg.sinkhorn_max_iters)
        return solver(linear_problem.LinearProblem(geom, a=a, b=b)).matrix

    for n in cfg.sinkhorn_sizes:
        # Squared distances between uniform points of the unit square; random marginals.
        p, r = rng.uniform(size=(n, 2)), rng.uniform(size=(n, 2))
        c = jnp.asarray(np.sum((p[:, None] - r[None]) ** 2, -1), jnp.float32)
        a, b = rng.uniform(0.5, 1.5, n), rng.uniform(0.5, 1.5, n)
        a, b = jnp.asarray(a / a.sum(), jnp.float32), jnp.asarray(b / b.sum(), jnp.float32)
        w = jnp.asarray(rng.standard_normal((n, n), dtype=np.float32))
        yield _Row(
            "ott",
            f"jr.soft.sinkhorn(a, b, tol={tol:g})",
            f"Sinkhorn(threshold={tol:g})",
            f"n={n}",
            functools.partial(_jax_side, _jax_fwd_bwd(jr_plan), c, w, a, b),
            functools.partial(_jax_side, _jax_fwd_bwd(ott_plan), c, w, a, b),
            _compare(relative=True),
        )


def _row_counts(cfg: PeersConfig) -> dict[str, int]:
    return {
        "torch": 1,
        "entmax": 3,
        "ott": 3 * len(cfg.sort_sizes) + len(cfg.sinkhorn_sizes),
    }


def num_tasks(cfg: PeersConfig) -> int:
    counts = _row_counts(cfg)
    return sum(counts[p.module] for p in _own_peers() if _installed(p.module))


def _own_peers() -> tuple[Peer, ...]:
    """The peers whose rows this suite times (the others' rows are in their suites)."""
    return tuple(p for p in PEERS if p.suite == "peers")


def _probe(step: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    res = jax.block_until_ready(step())
    return res, time.perf_counter() - t0


def _measure(row: _Row, cfg: PeersConfig) -> dict[str, Any]:
    record: dict[str, Any] = {
        "peer": row.peer,
        "op": row.op,
        "peer_op": row.peer_op,
        "size": row.size,
    }
    jr_side = row.jr()
    jr_res, jr_probe = _probe(jr_side.step)
    record["jaxrelax_compile_seconds"] = jr_side.first_seconds
    try:
        peer_side = row.other()
        peer_res, peer_probe = _probe(peer_side.step)
    except Exception as exc:  # a peer's API or version we do not handle: say so, go on
        msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return {**record, "error": msg, "agreement_text": f"error: {msg[:60]}"}
    record["peer_first_call_seconds"] = peer_side.first_seconds
    rounds, (jr_calls, peer_calls) = plan_repeats((jr_probe, peer_probe), cfg)
    t = _report.time_interleaved(
        {
            "jaxrelax": _repeat(jr_side.step, jr_calls),
            "peer": _repeat(peer_side.step, peer_calls),
        },
        rounds,
    )
    t_jr, t_peer = t["jaxrelax"] / jr_calls, t["peer"] / peer_calls  # seconds per call
    per_round = t_peer / t_jr
    agr, text = row.compare(jr_res, peer_res)
    return {
        **record,
        "jaxrelax_seconds": _report.best(t_jr),
        "peer_seconds": _report.best(t_peer),
        "ratio": float(np.median(per_round)),
        "ratio_q25": float(np.quantile(per_round, 0.25)),
        "ratio_q75": float(np.quantile(per_round, 0.75)),
        "rounds": rounds,
        "calls_per_round": {"jaxrelax": jr_calls, "peer": peer_calls},
        "agreement": agr,
        "agreement_text": text,
    }


def run(cfg: PeersConfig, seed: int, progress: _report.Progress) -> dict[str, Any]:
    """Times every importable peer beside jaxrelax; returns the suite's JSON record."""
    env = _prepare_torch_env()
    found = find_peers()
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    torch_threads = None
    if any(found[m]["available"] for m in _USES_TORCH):
        import torch

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(cfg.torch_threads)
        torch.manual_seed(seed)
        env["torch_threads"] = cfg.torch_threads
    rows: list[dict[str, Any]] = []
    try:
        builders: dict[str, Callable[[], Iterator[_Row]]] = {
            "torch": lambda: _torch_rows(cfg, rng, key),
            "entmax": lambda: _entmax_rows(cfg, rng),
            "ott": lambda: _ott_rows(cfg, rng),
        }
        for peer in _own_peers():
            if not found[peer.module]["available"]:
                continue
            for row in builders[peer.module]():
                progress.describe(f"peers {row.peer_op} {row.size}")
                rows.append(_measure(row, cfg))
                progress.update()
    finally:
        if torch_threads is not None:
            import torch

            torch.set_num_threads(torch_threads)
    return {
        "config": dataclasses.asdict(cfg),
        "description": "forward+backward (gradient of sum(w * op(x)), output returned) of "
        "jaxrelax and of a peer library on the same input, interleaved in one process",
        "peers": {p.module: {"name": p.name, **found[p.module]} for p in PEERS},
        "environment": env,
        "results": rows,
    }


# --------------------------------------------------------------------------- output


def tables(result: dict[str, Any]) -> list[str]:
    found = result["peers"]
    missing = [p for p in PEERS if not found[p.module]["available"]]
    prows = [
        {
            "peer": p.name,
            "module": p.module,
            "status": (found[p.module]["version"] or "found")
            if found[p.module]["available"]
            else "missing",
            "suite": p.suite,
            "rows": p.rows,
        }
        for p in PEERS
    ]
    pcols = [
        ("peer", "peer", "s"),
        ("module", "import", "s"),
        ("status", "version", "s"),
        ("suite", "rows in suite", "s"),
        ("rows", "rows", "s"),
    ]
    elsewhere = [p for p in PEERS if p.suite != "peers"]
    notes = []
    if elsewhere:
        notes.append(
            "rows in suite: where each peer's rows are printed under --peers; "
            + ", ".join(
                f"{p.name} trains beside jaxrelax in the {p.suite} suite" for p in elsewhere
            )
            + " (python -m jaxrelax.bench --peers --only "
            + ",".join(dict.fromkeys(p.suite for p in elsewhere))
            + "), the others are timed in this suite's table."
        )
    if missing:
        title = f"peers: missing peers ({', '.join(p.name for p in missing)}), install with "
        title += INSTALL_HINT
        notes.append(
            f"Install the missing peers with {INSTALL_HINT} (or pip install "
            + " ".join(f"'{p.requirement}'" for p in missing)
            + "); on a machine without a GPU install PyTorch's CPU build first. "
            "Their rows are left out."
        )
    else:
        title = "peers: every peer found"
    note = "\n".join(notes) or None
    out = [_report.format_table(title, pcols, prows, note=note)]
    res = result["results"]
    if not res:
        return out
    cfg = result["config"]
    names = {p.module: p.name for p in PEERS}
    rows = [
        {
            "op": r["op"],
            "peer_op": f"{names[r['peer']]} {r['peer_op']}",
            "size": r["size"],
            "jr_ms": 1e3 * r["jaxrelax_seconds"] if "jaxrelax_seconds" in r else None,
            "peer_ms": 1e3 * r["peer_seconds"] if "peer_seconds" in r else None,
            "ratio": r.get("ratio"),
            "jr_compile": r["jaxrelax_compile_seconds"],
            "peer_first": r.get("peer_first_call_seconds"),
            "agreement": r["agreement_text"],
        }
        for r in res
    ]
    cols = [
        ("op", "jaxrelax op", "s"),
        ("peer_op", "peer op", "s"),
        ("size", "size", "s"),
        ("jr_ms", "jr ms", ".3g"),
        ("peer_ms", "peer ms", ".3g"),
        ("ratio", "peer/jr", ".3g"),
        ("jr_compile", "jr compile s", ".2f"),
        ("peer_first", "peer 1st s", ".2f"),
        ("agreement", "agreement", "s"),
    ]
    env = result.get("environment") or {}
    notes = [
        "fwd+bwd = gradient of sum(w * op(x)) (fixed random w, float32, output returned), both "
        f"sides interleaved in one process; ms: best of up to {cfg['rounds']} rounds; "
        "peer/jr: median over rounds of the two times' ratio in the same round.",
        "jr compile s / peer 1st s: trace + lower + compile of a JAX program (jaxrelax, OTT-JAX),"
        " the first eager call of a PyTorch one (torch, entmax).",
        "agreement: max |jr - peer| of the outputs and of the gradients (Sinkhorn: divided by "
        "max |peer|); n/a where the two compute different things: OTT's soft sort is entropic "
        "OT on sigmoid-squashed values (epsilon 1e-2), jaxrelax's a projection onto the "
        "permutahedron (strength 1); Gumbel samples are random (both should be one-hot rows).",
    ]
    if "torch_threads" in env:
        notes.append(
            f"PyTorch: torch.set_num_threads({env['torch_threads']}), OMP_WAIT_POLICY="
            f"{env.get('OMP_WAIT_POLICY')}"
            + (" (set by the bench)" if env.get("omp_wait_policy_set_by_bench") else "")
            + "; without PASSIVE its OpenMP threads spin and contend with XLA's pool (the "
            "entmax rows measured 10-40x slower on 2 cores)."
            + (
                " torch was imported before the suite: the policy may not apply."
                if env.get("torch_imported_before_suite")
                and not env.get("omp_wait_policy_set_by_bench")
                else ""
            )
        )
    if found["ott"]["available"]:
        notes.append(
            "OTT-JAX soft_sort runs with initializer=DefaultInitializer(), implicit_diff=None: "
            "reverse mode fails with its default SortingInitializer (while_loop with dynamic "
            "bounds, OTT-JAX 0.6 on jax 0.10) and its implicit diff's linear solve fails "
            "(non-finite). Sinkhorn: Geometry(cost_matrix"
            f"=C, epsilon={cfg['sinkhorn_epsilon']:g}), threshold {cfg['sinkhorn_tol']:g}, "
            f"implicit diff; jaxrelax: sinkhorn(-C, temperature={cfg['sinkhorn_epsilon']:g}, "
            f"a=a, b=b, tol={cfg['sinkhorn_tol']:g}), implicit; at most "
            f"{cfg['sinkhorn_max_iters']} iterations each."
        )
    out.append(
        _report.format_table(
            "peers: jaxrelax beside other libraries, forward+backward in one process",
            cols,
            rows,
            note="\n".join(notes),
        )
    )
    return out


def plot(result: dict[str, Any], out_dir: str) -> list[str]:
    """The suite has no plot: its table is the result."""
    del result, out_dir
    return []
