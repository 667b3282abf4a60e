"""``ops`` suite: forward + backward cost of relaxed operators, as ratios to a hard floor.

Two parts, both timed with the benchmark's one interleaved best-of-N timer
(``_report.time_interleaved``), every number measured in the same process as its floor,
on the same input, round by round (so machine load hits both alike):

1. Operators on ``[rows, n]`` batches (``shapes``): each ``op`` is timed as
   ``jax.jit(jax.grad(lambda x: sum(w * op(x))))`` against a floor:

   ==========================================  ==========================================
   operator                                    floor
   ==========================================  ==========================================
   ``jr.gumbel_softmax(key, x, hard=True)``    ``jax.nn.softmax(x + gumbel noise)``
   ``jr.soft.sparsemax(x)``                    ``jax.nn.softmax(x)``
   ``jr.soft.entmax15(x)``                     ``jax.nn.softmax(x)``
   ``jr.soft.sort(x)``                         ``jnp.sort(x)`` (its gradient is a gather)
   ``jr.soft.rank(x)``                         ``jnp.sort(x)``
   ==========================================  ==========================================

2. Soft sort and rank on a few long rows (``sort_sizes``, ``sort_batch`` rows): forward
   + backward (value and gradient of a weighted sum) and forward alone, against the
   forward ``jnp.sort`` of the same input, with the growth of their times between
   sizes (the O(n log n) claim). Sizes from the command line:
   ``python -m jaxrelax.bench --only ops --sort-sizes 1e3 1e4 1e5``. The soft quantiles
   (``jr.soft.quantile`` at three levels, forward + backward) join this sweep.

3. Soft permutation matrices (``jr.soft.permutation_matrix``, each method, forward +
   backward of ``sum(w * (P @ x))`` on one row) at the sort sizes up to
   ``argsort_max_n``, against ``jnp.sort`` of the same row. They are O(n²) by
   construction: at n = 1e4 one SoftSort row takes seconds and ~1.6 GB, so larger sizes
   are left out.

Reported: best-of-``rounds`` seconds of the op and of its floor, their ratio, and the
quartiles of the per-round ratios; and the seconds of each op's first call (trace,
compile and one run; parts 1 and 2), which is what a user waits for once per shape.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxrelax as jr
from jaxrelax.bench import _report

__all__ = [
    "OpsConfig",
    "argsort_programs",
    "num_tasks",
    "op_programs",
    "plot",
    "run",
    "sort_programs",
    "tables",
]


@dataclasses.dataclass(frozen=True)
class OpsConfig:
    """Sizes and repetitions of the ``ops`` suite."""

    shapes: tuple[tuple[int, int], ...] = ((256, 64), (16, 1024))
    rounds: int = 7  # best of this many interleaved rounds
    calls_per_round: int = 5
    sort_sizes: tuple[int, ...] = (1_000, 10_000)  # add 1e5 with --sort-sizes 1e3 1e4 1e5
    sort_batch: int = 8
    sort_rounds: int = 10
    sort_strength: float = 1.0  # regularization_strength of soft sort / rank
    argsort_max_n: int = 1_000  # soft permutation matrices are O(n²): sizes up to this
    argsort_rounds: int = 9
    argsort_temperature: float = 0.1
    argsort_sinkhorn_iters: int = 20

    @classmethod
    def quick(cls) -> OpsConfig:
        # One sort size: each size compiles five programs, which dominates a quick run.
        return cls(shapes=((64, 64),), sort_sizes=(1_000,), sort_rounds=5)


#: ``(name, floor name)`` of every operator of part 1, in table order.
OPS: tuple[tuple[str, str], ...] = (
    ("gumbel_softmax(hard=True)", "softmax + gumbel noise"),
    ("soft.sparsemax", "softmax"),
    ("soft.entmax15", "softmax"),
    ("soft.sort", "jnp.sort"),
    ("soft.rank", "jnp.sort"),
)

#: The soft sort / rank programs of part 2, in table order (ratios to ``jnp.sort``).
SORT_PROGRAMS: tuple[str, ...] = ("sort", "rank", "sort_fwd", "rank_fwd", "quantile")

#: The ``method``s of ``jr.soft.permutation_matrix`` timed in part 3 (ratios to ``jnp.sort``).
ARGSORT_METHODS: tuple[str, ...] = ("softsort", "neuralsort", "sinkhorn")

#: The levels of the soft quantile timed in part 2.
QUANTILE_LEVELS: tuple[float, ...] = (0.1, 0.5, 0.9)


def _fwd_bwd(op: Callable[[jax.Array, jax.Array], jax.Array]) -> Callable[..., jax.Array]:
    """jit(grad) of ``sum(w * op(key, x))`` with respect to ``x``."""

    def loss(x, key, w):
        return jnp.sum(w * op(key, x))

    return jax.jit(jax.grad(loss))


@functools.cache
def op_programs(name: str) -> tuple[Callable[..., jax.Array], Callable[..., jax.Array]]:
    """The two jitted programs timed for operator ``name`` of ``OPS``: ``(op, floor)``.

    Each is ``g(x, key, w) = ∇_x sum(w * op(key, x))``. Cached: a later call returns the
    very programs a run timed (already compiled for its shapes).
    """
    ops = {
        "gumbel_softmax(hard=True)": (
            lambda key, x: jr.gumbel_softmax(key, x, hard=True),
            lambda key, x: jax.nn.softmax(x + jax.random.gumbel(key, x.shape, x.dtype), axis=-1),
        ),
        "soft.sparsemax": (
            lambda key, x: jr.soft.sparsemax(x),
            lambda key, x: jax.nn.softmax(x, axis=-1),
        ),
        "soft.entmax15": (
            lambda key, x: jr.soft.entmax15(x),
            lambda key, x: jax.nn.softmax(x, axis=-1),
        ),
        "soft.sort": (lambda key, x: jr.soft.sort(x), lambda key, x: jnp.sort(x, axis=-1)),
        "soft.rank": (lambda key, x: jr.soft.rank(x), lambda key, x: jnp.sort(x, axis=-1)),
    }
    op, floor = ops[name]
    return _fwd_bwd(op), _fwd_bwd(floor)


@functools.cache
def sort_programs(n: int, strength: float) -> dict[str, Callable[..., jax.Array]]:
    """The jitted programs timed for one size of part 2, each a function of ``x [..., n]``.

    ``"jnp.sort"`` (the floor), ``"sort"`` / ``"rank"`` (value and gradient of
    ``sum(w * op(x))``, ``w = linspace(-1, 1, n)``), ``"sort_fwd"`` / ``"rank_fwd"``, and
    ``"quantile"`` (value and gradient of the sum of ``jr.soft.quantile`` at
    ``QUANTILE_LEVELS``). Cached, as ``op_programs``.
    """
    w = jnp.linspace(-1.0, 1.0, n, dtype=jnp.float32)

    def fwd_bwd(fn):
        return jax.jit(jax.value_and_grad(lambda x: jnp.sum(fn(x, strength) * w)))

    return {
        "jnp.sort": jax.jit(lambda x: jnp.sort(x, axis=-1)),
        "sort": fwd_bwd(jr.soft.sort),
        "rank": fwd_bwd(jr.soft.rank),
        "sort_fwd": jax.jit(lambda x: jr.soft.sort(x, strength)),
        "rank_fwd": jax.jit(lambda x: jr.soft.rank(x, strength)),
        "quantile": jax.jit(
            jax.value_and_grad(
                lambda x: jnp.sum(jr.soft.quantile(x, jnp.asarray(QUANTILE_LEVELS), strength))
            )
        ),
    }


@functools.cache
def argsort_programs(n: int, temperature: float, num_iters: int) -> dict[str, Callable[..., Any]]:
    """The jitted programs of part 3, each a function of ``x [rows, n]``: ``"jnp.sort"``
    and, per method, the value and gradient of ``sum(w * (P @ x))`` with
    ``P = jr.soft.permutation_matrix(x, temperature, method)``. Cached."""
    w = jnp.linspace(-1.0, 1.0, n, dtype=jnp.float32)

    def fwd_bwd(method):
        def loss(x):
            p = jr.soft.permutation_matrix(x, temperature, method, num_iters=num_iters)
            return jnp.sum(w * jnp.einsum("...ij,...j->...i", p, x))

        return jax.jit(jax.value_and_grad(loss))

    return {
        "jnp.sort": jax.jit(lambda x: jnp.sort(x, axis=-1)),
        **{m: fwd_bwd(m) for m in ARGSORT_METHODS},
    }


def _argsort_sizes(cfg: OpsConfig) -> list[int]:
    return [n for n in cfg.sort_sizes if n <= cfg.argsort_max_n]


def num_tasks(cfg: OpsConfig) -> int:
    return len(OPS) * len(cfg.shapes) + len(cfg.sort_sizes) + len(_argsort_sizes(cfg))


def _ratio_row(t_op: np.ndarray, t_floor: np.ndarray) -> dict[str, float]:
    per_round = t_op / t_floor
    return {
        "ratio": _report.best(t_op) / _report.best(t_floor),
        "ratio_q25": float(np.quantile(per_round, 0.25)),
        "ratio_q75": float(np.quantile(per_round, 0.75)),
        "seconds": _report.best(t_op),
        "floor_seconds": _report.best(t_floor),
    }


def run(cfg: OpsConfig, seed: int, progress: _report.Progress) -> dict[str, Any]:
    """Times every operator against its floor; returns the suite's JSON record."""
    key = jax.random.key(seed)
    rows = []
    for rows_n, n in cfg.shapes:
        kx, kw, kn, key = jax.random.split(key, 4)
        x = jax.random.normal(kx, (rows_n, n), jnp.float32)
        w = jax.random.normal(kw, (rows_n, n), jnp.float32)
        for name, floor_name in OPS:
            progress.describe(f"ops {name} {rows_n}x{n}")
            op, floor = op_programs(name)
            args = (x, kn, w)
            fns = {"op": functools.partial(op, *args), "floor": functools.partial(floor, *args)}
            first = _report.first_call_seconds(fns)
            t = _report.time_interleaved(fns, cfg.rounds, cfg.calls_per_round)
            row = {"op": name, "floor": floor_name, "shape": [rows_n, n]}
            row["first_call_seconds"] = first["op"]
            rows.append({**row, **_ratio_row(t["op"], t["floor"])})
            progress.update()
    sort_rows = []
    for n in cfg.sort_sizes:
        progress.describe(f"ops soft sort/rank n={n}")
        kx, key = jax.random.split(key)
        x = jax.random.normal(kx, (cfg.sort_batch, n), jnp.float32)
        fns = {
            name: functools.partial(f, x) for name, f in sort_programs(n, cfg.sort_strength).items()
        }
        first = _report.first_call_seconds(fns)
        t = _report.time_interleaved(fns, cfg.sort_rounds)
        base = _report.best(t["jnp.sort"])
        sort_rows.append(
            {
                "n": n,
                "jnp_sort_seconds": base,
                "seconds": {p: _report.best(t[p]) for p in SORT_PROGRAMS},
                "ratio": {p: _report.best(t[p]) / base for p in SORT_PROGRAMS},
                "first_call_seconds": {p: first[p] for p in SORT_PROGRAMS},
            }
        )
        progress.update()
    argsort_rows = []
    for n in _argsort_sizes(cfg):
        progress.describe(f"ops soft permutation matrices n={n}")
        kx, key = jax.random.split(key)
        x = jax.random.normal(kx, (1, n), jnp.float32)
        fns = argsort_programs(n, cfg.argsort_temperature, cfg.argsort_sinkhorn_iters)
        t = _report.time_interleaved(
            {name: functools.partial(f, x) for name, f in fns.items()}, cfg.argsort_rounds
        )
        base = _report.best(t["jnp.sort"])
        argsort_rows.append(
            {
                "n": n,
                "jnp_sort_seconds": base,
                "seconds": {m: _report.best(t[m]) for m in ARGSORT_METHODS},
                "ratio": {m: _report.best(t[m]) / base for m in ARGSORT_METHODS},
            }
        )
        progress.update()
    return {
        "config": dataclasses.asdict(cfg),
        "description": "forward+backward time of jit(grad(sum(w * op(x)))) divided by the "
        "floor's, best of interleaved rounds; soft sort/rank against jnp.sort by size",
        "results": rows,
        "sort_sizes": sort_rows,
        "argsort_sizes": argsort_rows,
    }


def tables(result: dict[str, Any]) -> list[str]:
    cfg = result["config"]
    rows = [
        {
            "op": r["op"],
            "shape": "x".join(str(s) for s in r["shape"]),
            "floor": r["floor"],
            "ratio": r["ratio"],
            "us": 1e6 * r["seconds"],
            "floor_us": 1e6 * r["floor_seconds"],
            "first": r.get("first_call_seconds"),
        }
        for r in result["results"]
    ]
    cols = [
        ("op", "op (fwd+bwd)", "s"),
        ("shape", "shape", "s"),
        ("floor", "floor", "s"),
        ("ratio", "x floor", ".2f"),
        ("us", "op us", ".1f"),
        ("floor_us", "floor us", ".1f"),
        ("first", "op 1st call s", ".2f"),
    ]
    out = [
        _report.format_table(
            "ops: forward+backward time relative to a floor measured in the same process",
            cols,
            rows,
            note=f"x floor = best of {cfg['rounds']} interleaved rounds of time(op) over the "
            "floor's best. op 1st call s = the op's first call at this shape (trace, compile "
            "and one run).",
        )
    ]
    sweep = result.get("sort_sizes") or []
    if sweep:
        srows = [
            {
                "n": r["n"],
                "ms": 1e3 * r["jnp_sort_seconds"],
                **r["ratio"],
                **{f"{p}_1st": s for p, s in r.get("first_call_seconds", {}).items()},
            }
            for r in sweep
        ]
        scols = [
            ("n", "n", "d"),
            ("ms", "jnp.sort ms", ".2f"),
            ("sort", "sort fwd+bwd", ".2f"),
            ("rank", "rank fwd+bwd", ".2f"),
            ("sort_fwd", "sort fwd", ".2f"),
            ("rank_fwd", "rank fwd", ".2f"),
            ("quantile", "quantile fwd+bwd", ".2f"),
            ("sort_1st", "sort 1st s", ".2f"),
            ("rank_1st", "rank 1st s", ".2f"),
            ("quantile_1st", "quantile 1st s", ".2f"),
        ]
        notes = [
            f"x jnp.sort of the same input, best of {cfg['sort_rounds']} interleaved rounds "
            f"(batch {cfg['sort_batch']}, float32, regularization_strength "
            f"{cfg['sort_strength']}); 1st s: the fwd+bwd program's first call (trace, "
            "compile and one run)."
        ]
        for a, b in itertools.pairwise(sweep):
            grow = {p: b["seconds"][p] / a["seconds"][p] for p in ("sort", "rank")}
            notes.append(
                f"growth n={a['n']} -> {b['n']}: sort fwd+bwd {grow['sort']:.1f}x, "
                f"rank fwd+bwd {grow['rank']:.1f}x, "
                f"jnp.sort {b['jnp_sort_seconds'] / a['jnp_sort_seconds']:.1f}x"
            )
        out.append(
            _report.format_table(
                "ops: soft sort / rank relative to jnp.sort, by row length",
                scols,
                srows,
                note="\n".join(notes),
            )
        )
    asweep = result.get("argsort_sizes") or []
    if asweep:
        arows = [{"n": r["n"], "ms": 1e3 * r["jnp_sort_seconds"], **r["ratio"]} for r in asweep]
        acols = [("n", "n", "d"), ("ms", "jnp.sort ms", ".3f")]
        acols += [(m, f"{m} fwd+bwd", ".0f") for m in ARGSORT_METHODS]
        out.append(
            _report.format_table(
                "ops: soft permutation matrices (O(n²)) relative to jnp.sort, by row length",
                acols,
                arows,
                note=f"x jnp.sort of the same row, best of {cfg['argsort_rounds']} interleaved "
                f"rounds (1 row, float32, temperature {cfg['argsort_temperature']}, "
                f"{cfg['argsort_sinkhorn_iters']} Sinkhorn rounds).",
            )
        )
    return out


def plot(result: dict[str, Any], out_dir: str) -> list[str]:
    res = result["results"]
    sweep = result.get("sort_sizes") or []
    if not res and not sweep:
        return []
    ncols = 1 + bool(sweep)
    fig, axes = _report.new_figure(1, ncols, width=7.0, height=0.9 + 0.45 * max(len(res), 6))
    ax = axes[0, 0]
    labels = [f"{r['op']}  [{'x'.join(map(str, r['shape']))}]" for r in res]
    ratio = np.array([r["ratio"] for r in res])
    # Per-round quartiles can straddle the best-of ratio: clip the bars at zero length.
    lo = np.maximum(ratio - np.array([r["ratio_q25"] for r in res]), 0.0)
    hi = np.maximum(np.array([r["ratio_q75"] for r in res]) - ratio, 0.0)
    y = np.arange(len(res))[::-1]
    ax.barh(y, ratio, xerr=[lo, hi], color="#1f77b4", alpha=0.8)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("forward+backward time / floor (best of rounds; per-round IQR)")
    ax.set_title("ops: cost relative to the hard floor")
    for yi, ri in zip(y, ratio):
        ax.text(ri, yi, f" {ri:.2f}x", va="center", fontsize=8)
    if sweep:
        ax = axes[0, 1]
        ns = [r["n"] for r in sweep]
        for p in SORT_PROGRAMS:
            ax.plot(ns, [r["ratio"][p] for r in sweep], marker="o", label=p, **_report.style(p))
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(f"row length n (batch {result['config']['sort_batch']})")
        ax.set_ylabel("time / jnp.sort (best of rounds)")
        ax.set_title("soft sort / rank relative to jnp.sort")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return [_report.save_figure(fig, f"{out_dir}/ops_ratios.png")]
