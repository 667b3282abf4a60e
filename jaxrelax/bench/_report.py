"""Output of the benchmark: plain-text tables, the JSON record and the PNG plots."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "Progress",
    "format_table",
    "jsonable",
    "new_figure",
    "save_figure",
    "best",
    "time_interleaved",
    "write_json",
]


# --------------------------------------------------------------------------- tables


def _fmt(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
        return "nan" if math.isnan(float(value)) else ("inf" if value > 0 else "-inf")
    return format(value, spec)


def format_table(
    title: str,
    columns: Sequence[tuple[str, str, str]],
    rows: Iterable[dict[str, Any]],
    note: str | None = None,
) -> str:
    """Formats rows as an aligned plain-text table.

    Args:
      title: a line printed above the table.
      columns: ``(key, header, format_spec)`` triples; strings are left-aligned,
        numbers right-aligned; ``None`` prints as ``-``.
      rows: dicts holding (at least) the column keys.
      note: optional line printed below the table.

    Returns:
      The table as one string (no trailing newline).
    """
    rows = list(rows)
    cells = [[_fmt(r.get(k), spec) for k, _, spec in columns] for r in rows]
    heads = [h for _, h, _ in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
    numeric = [
        all(not isinstance(r.get(k), str) for r in rows) and i > 0
        for i, (k, _, _) in enumerate(columns)
    ]

    def line(parts: Sequence[str]) -> str:
        out = []
        for i, p in enumerate(parts):
            out.append(p.rjust(widths[i]) if numeric[i] else p.ljust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "-" * len(line(heads))
    text = [title, rule, line(heads), rule]
    text += [line(c) for c in cells]
    text.append(rule)
    if note:
        text.append(note)
    return "\n".join(text)


# --------------------------------------------------------------------------- json


def jsonable(obj: Any) -> Any:
    """Converts NumPy / JAX scalars and arrays to JSON types; non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        v = float(obj)
        return v if math.isfinite(v) else None
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):  # numpy or jax array
        return jsonable(np.asarray(obj).tolist())
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def write_json(path: str, record: dict[str, Any]) -> None:
    """Writes ``record`` as strict JSON (no NaN / Infinity) to ``path``."""
    with open(path, "w") as fh:
        json.dump(jsonable(record), fh, indent=1, allow_nan=False)
        fh.write("\n")


# --------------------------------------------------------------------------- plots


def new_figure(nrows: int, ncols: int, width: float = 5.0, height: float = 3.6):
    """A matplotlib figure (Agg backend, no display needed) with a grid of axes."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, dpi=110
    )
    return fig, axes


def save_figure(fig, path: str) -> str:
    """Saves and closes ``fig``; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# One colour and line style per estimator, stable across every plot.
STYLES: dict[str, dict[str, Any]] = {}
_PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#000000",
]


def style(name: str) -> dict[str, Any]:
    """Matplotlib keyword arguments giving ``name`` a fixed colour and line style."""
    if name not in STYLES:
        i = len(STYLES)
        STYLES[name] = {
            "color": _PALETTE[i % len(_PALETTE)],
            "linestyle": ["-", "--", "-."][(i // len(_PALETTE)) % 3],
            "linewidth": 1.4,
        }
    return STYLES[name]


# --------------------------------------------------------------------------- timing

#: XLA options for the benchmark's own training programs. LLVM optimisation level 1
#: compiles these small, many-branched programs 2-3x faster on CPU than the default
#: level at no measurable run-time cost; compilation otherwise dominates the run. The
#: ``ops`` suite, which measures operator speed, keeps XLA's defaults.
FAST_COMPILE: dict[str, str | bool] = {"xla_backend_optimization_level": "1"}


def compile_fast(fn, *args):
    """``jax.jit(fn)`` compiled ahead of time for ``args`` with ``FAST_COMPILE``."""
    import jax

    return jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)


def time_interleaved(
    fns: Mapping[str, Callable[[], Any]], rounds: int, calls: int = 1
) -> dict[str, np.ndarray]:
    """Seconds per call of each of ``fns``, measured interleaved, round by round.

    The one timer of the benchmark. Every function is called once first (compilation
    and warm-up, not timed). Each of ``rounds`` rounds then times ``calls`` back-to-back
    calls of every function (the last result blocked on), the order rotating from round
    to round, so load on a busy machine hits every function alike. Summarise with
    ``best`` (best of ``rounds``, as ``timeit`` advises) or ratios of rounds.

    Args:
      fns: name -> zero-argument function returning JAX arrays.
      rounds: number of interleaved rounds (N of the best-of-N).
      calls: calls per function per round (amortises dispatch for fast programs).

    Returns:
      name -> ``[rounds]`` seconds per call, in the order the rounds ran.
    """
    import jax

    if rounds < 1 or calls < 1:
        raise ValueError(f"`rounds` and `calls` must be >= 1, got {rounds} and {calls}.")
    names = list(fns)
    for name in names:
        jax.block_until_ready(fns[name]())
    out = {name: np.empty(rounds) for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            fn = fns[name]
            t0 = time.perf_counter()
            for _ in range(calls):
                res = fn()
            jax.block_until_ready(res)
            out[name][r] = (time.perf_counter() - t0) / calls
    return out


def first_call_seconds(fns: Mapping[str, Callable[[], Any]]) -> dict[str, float]:
    """Seconds of the first call of each of ``fns`` (for a jitted program not yet run at
    these shapes: trace, lower, compile and one run), called in order."""
    import jax

    out = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        out[name] = time.perf_counter() - t0
    return out


def best(seconds: np.ndarray) -> float:
    """Best (smallest) of the per-round times of ``time_interleaved``."""
    return float(np.min(seconds))


# --------------------------------------------------------------------------- progress


class Progress:
    """A tqdm progress bar over the benchmark's units of work (silent when disabled)."""

    def __init__(self, total: int, enabled: bool = True, desc: str = "bench"):
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="task", dynamic_ncols=True, leave=False)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=True)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def clear(self) -> None:
        """Removes the bar from the terminal before other output is printed."""
        if self._bar is not None:
            self._bar.clear()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path
