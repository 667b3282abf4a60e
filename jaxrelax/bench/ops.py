"""``ops`` suite: forward + backward cost of relaxed operators, as ratios to a hard floor.

Each operator ``op`` is timed as ``jax.jit(jax.grad(lambda x: sum(w * op(x))))`` on a
``[rows, n]`` batch, and compared with a floor measured in the same process, on the same
inputs, interleaved round by round (so machine load hits both alike):

==========================================  ==========================================
operator                                    floor
==========================================  ==========================================
``jr.gumbel_softmax(key, x, hard=True)``    ``jax.nn.softmax(x + gumbel noise)``
``jr.soft.sparsemax(x)``                    ``jax.nn.softmax(x)``
``jr.soft.sort(x)``                         ``jnp.sort(x)`` (its gradient is a gather)
``jr.soft.rank(x)``                         ``jnp.sort(x)``
==========================================  ==========================================

The reported number is the median over rounds of ``time(op) / time(floor)``; the
medians of the bare seconds are reported too.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxrelax as jr
from jaxrelax.bench import _report

__all__ = ["OpsConfig", "plot", "run", "tables"]


@dataclasses.dataclass(frozen=True)
class OpsConfig:
    """Sizes and repetitions of the ``ops`` suite."""

    shapes: tuple[tuple[int, int], ...] = ((256, 64), (16, 1024))
    rounds: int = 7
    calls_per_round: int = 5

    @classmethod
    def quick(cls) -> OpsConfig:
        return cls(shapes=((64, 64),), rounds=7, calls_per_round=5)


def _op_table() -> list[tuple[str, str, Callable | None, Callable]]:
    """``(name, floor name, op(key, x) or None if absent, floor(key, x))`` per operator."""
    soft = jr.soft

    def gs_floor(key, x):
        return jax.nn.softmax(x + jax.random.gumbel(key, x.shape, x.dtype), axis=-1)

    def gs(key, x):
        return jr.gumbel_softmax(key, x, hard=True)

    def softmax_floor(key, x):
        del key
        return jax.nn.softmax(x, axis=-1)

    def sort_floor(key, x):
        del key
        return jnp.sort(x, axis=-1)

    def wrap(name):
        fn = getattr(soft, name, None)
        if fn is None:
            return None
        return lambda key, x: fn(x)

    return [
        ("gumbel_softmax(hard=True)", "softmax + gumbel noise", gs, gs_floor),
        ("soft.sparsemax", "softmax", wrap("sparsemax"), softmax_floor),
        ("soft.sort", "jnp.sort", wrap("sort"), sort_floor),
        ("soft.rank", "jnp.sort", wrap("rank"), sort_floor),
    ]


def _fwd_bwd(op: Callable) -> Callable:
    """jit(grad) of ``sum(w * op(key, x))`` with respect to ``x``."""

    def loss(x, key, w):
        return jnp.sum(w * op(key, x))

    return jax.jit(jax.grad(loss))


def _time_pair(fa, fb, args, rounds, calls) -> tuple[list[float], list[float]]:
    """Per-call seconds of ``fa(*args)`` and ``fb(*args)``, interleaved round by round."""
    jax.block_until_ready(fa(*args))  # compile + warm up
    jax.block_until_ready(fb(*args))
    ta, tb = [], []
    for r in range(rounds):
        order = (fa, fb) if r % 2 == 0 else (fb, fa)
        res = {}
        for fn in order:
            t0 = time.perf_counter()
            for _ in range(calls):
                out = fn(*args)
            jax.block_until_ready(out)
            res[fn] = (time.perf_counter() - t0) / calls
        ta.append(res[fa])
        tb.append(res[fb])
    return ta, tb


def num_tasks(cfg: OpsConfig) -> int:
    return len(_op_table()) * len(cfg.shapes)


def run(cfg: OpsConfig, seed: int, progress: _report.Progress) -> dict[str, Any]:
    """Times every operator against its floor; returns the suite's JSON record."""
    key = jax.random.key(seed)
    rows = []
    for rows_n, n in cfg.shapes:
        kx, kw, kn, key = jax.random.split(key, 4)
        x = jax.random.normal(kx, (rows_n, n), jnp.float32)
        w = jax.random.normal(kw, (rows_n, n), jnp.float32)
        for name, floor_name, op, floor in _op_table():
            progress.describe(f"ops {name} {rows_n}x{n}")
            row: dict[str, Any] = {
                "op": name,
                "floor": floor_name,
                "shape": [rows_n, n],
                "available": op is not None,
            }
            if op is not None:
                t_op, t_floor = _time_pair(
                    _fwd_bwd(op), _fwd_bwd(floor), (x, kn, w), cfg.rounds, cfg.calls_per_round
                )
                ratios = np.asarray(t_op) / np.asarray(t_floor)
                row.update(
                    ratio=float(np.median(ratios)),
                    ratio_q25=float(np.quantile(ratios, 0.25)),
                    ratio_q75=float(np.quantile(ratios, 0.75)),
                    seconds=float(np.median(t_op)),
                    floor_seconds=float(np.median(t_floor)),
                )
            rows.append(row)
            progress.update()
    return {
        "config": dataclasses.asdict(cfg),
        "description": "forward+backward time of jit(grad(sum(w * op(x)))) divided by the "
        "floor's, median over interleaved rounds",
        "results": rows,
    }


def tables(result: dict[str, Any]) -> list[str]:
    rows = []
    for r in result["results"]:
        rows.append(
            {
                "op": r["op"],
                "shape": "x".join(str(s) for s in r["shape"]),
                "floor": r["floor"],
                "ratio": r.get("ratio") if r["available"] else "missing",
                "us": None if not r["available"] else 1e6 * r["seconds"],
                "floor_us": None if not r["available"] else 1e6 * r["floor_seconds"],
            }
        )
    cols = [
        ("op", "op (fwd+bwd)", "s"),
        ("shape", "shape", "s"),
        ("floor", "floor", "s"),
        ("ratio", "x floor", ".2f"),
        ("us", "op us", ".1f"),
        ("floor_us", "floor us", ".1f"),
    ]
    return [
        _report.format_table(
            "ops: forward+backward time relative to a floor measured in the same process",
            cols,
            rows,
            note="x floor = median over interleaved rounds of time(op) / time(floor).",
        )
    ]


def plot(result: dict[str, Any], out_dir: str) -> list[str]:
    res = [r for r in result["results"] if r["available"]]
    if not res:
        return []
    fig, axes = _report.new_figure(1, 1, width=7.0, height=0.5 + 0.45 * len(res))
    ax = axes[0, 0]
    labels = [f"{r['op']}  [{'x'.join(map(str, r['shape']))}]" for r in res]
    ratio = np.array([r["ratio"] for r in res])
    lo = ratio - np.array([r["ratio_q25"] for r in res])
    hi = np.array([r["ratio_q75"] for r in res]) - ratio
    y = np.arange(len(res))[::-1]
    ax.barh(y, ratio, xerr=[lo, hi], color="#1f77b4", alpha=0.8)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("forward+backward time / floor (median, IQR)")
    ax.set_title("ops: cost relative to the hard floor")
    for yi, ri in zip(y, ratio):
        ax.text(ri, yi, f" {ri:.2f}x", va="center", fontsize=8)
    return [_report.save_figure(fig, f"{out_dir}/ops_ratios.png")]
