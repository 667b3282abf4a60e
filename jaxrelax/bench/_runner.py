"""Runs the benchmark suites and writes their tables, JSON record and plots."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax

import jaxrelax as jr
from jaxrelax.bench import _report, cat_vae, ops, peers, solvers, sorting, toy, vae

__all__ = ["EXTRA_SUITES", "SCHEMA", "SUITES", "run_bench"]

#: Version tag of the layout of ``results.json``.
SCHEMA = "jaxrelax.bench/1"

#: Suite name -> module with ``Config`` (``.quick()``), ``num_tasks``, ``run``, ``tables``,
#: ``plot``.
SUITES = {
    "toy": toy,
    "vae": vae,
    "cat_vae": cat_vae,
    "ops": ops,
    "solvers": solvers,
    "sorting": sorting,
}

#: Suites run only when named (``--only peers``, or ``--peers`` beside the default ones):
#: not part of the default run.
EXTRA_SUITES = {"peers": peers}

_CONFIGS = {
    "toy": toy.ToyConfig,
    "vae": vae.VAEConfig,
    "cat_vae": cat_vae.CatVAEConfig,
    "ops": ops.OpsConfig,
    "solvers": solvers.SolversConfig,
    "sorting": sorting.SortingConfig,
    "peers": peers.PeersConfig,
}


def _meta(quick: bool, seed: int, argv: Sequence[str] | None) -> dict[str, Any]:
    dev = jax.devices()[0]
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "jaxrelax_version": jr.__version__,
        "jax_version": jax.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "quick": quick,
        "seed": seed,
        "argv": list(argv) if argv is not None else None,
    }


def run_bench(
    out_dir: str = "bench-results",
    *,
    quick: bool = False,
    seed: int = 0,
    only: Sequence[str] | None = None,
    progress: bool = True,
    argv: Sequence[str] | None = None,
    configs: dict[str, Any] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    echo: bool = True,
) -> dict[str, Any]:
    """Runs the selected suites; prints tables; writes ``out_dir/results.json``,
    ``out_dir/summary.txt`` and PNG plots.

    Args:
      out_dir: output folder (created).
      quick: use each suite's ``quick()`` configuration.
      seed: random seed of every suite.
      only: suite names to run, from ``SUITES`` and ``EXTRA_SUITES`` (default: every
        suite of ``SUITES``); they run in the order of ``SUITES``, then ``EXTRA_SUITES``.
      progress: show a tqdm progress bar on stderr.
      argv: the command line, recorded in the JSON.
      configs: per-suite configuration objects overriding the defaults (tests).
      overrides: per-suite field values replacing those of the chosen configuration,
        e.g. ``{"ops": {"sort_sizes": (1000, 10000)}}`` (the command line's options).
      echo: print the tables to stdout.

    Returns:
      The record written to ``results.json``.
    """
    suites = {**SUITES, **EXTRA_SUITES}
    names = list(SUITES) if not only else [n for n in suites if n in set(only)]
    if only and set(only) - set(suites):
        raise ValueError(f"`only` has unknown suites {sorted(set(only) - set(suites))}.")
    cfgs = {}
    for n in names:
        cfg = (configs or {}).get(n)
        if cfg is None:
            cfg = _CONFIGS[n].quick() if quick else _CONFIGS[n]()
        cfgs[n] = dataclasses.replace(cfg, **(overrides or {}).get(n, {}))
    _report.ensure_dir(out_dir)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "meta": _meta(quick, seed, argv),
        "suites": {},
        "plots": [],
        "seconds": {},
        "cpu_seconds": {},
    }
    bar = _report.Progress(sum(suites[n].num_tasks(cfgs[n]) for n in names), enabled=progress)
    texts = []
    try:
        for n in names:
            t0, c0 = time.perf_counter(), time.process_time()
            result = suites[n].run(cfgs[n], seed, bar)
            record["seconds"][n] = time.perf_counter() - t0
            record["cpu_seconds"][n] = time.process_time() - c0
            record["suites"][n] = result
            tables = suites[n].tables(result)
            texts += tables
            if echo:
                bar.clear()
                for t in tables:
                    print(t + "\n", flush=True)
            paths = suites[n].plot(result, out_dir)
            record["plots"] += [os.path.basename(p) for p in paths]
    finally:
        bar.close()
    record["seconds"]["total"] = time.perf_counter() - t_start
    record["cpu_seconds"]["total"] = time.process_time() - cpu_start
    record["meta"]["load_average_end"] = (
        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    )
    settings = "quick" if quick else "full" if argv and "--full" in argv else "default"
    footer = (
        f"jaxrelax {jr.__version__}, jax {jax.__version__}, {record['meta']['backend']} "
        f"({record['meta']['cpu_count']} cores), {settings} settings, "
        f"seed {seed}: {record['seconds']['total']:.1f} s. Results in {out_dir}/"
    )
    texts.append(footer)
    if echo:
        print(footer, flush=True)
    with open(os.path.join(out_dir, "summary.txt"), "w") as fh:
        fh.write("\n\n".join(texts) + "\n")
    _report.write_json(os.path.join(out_dir, "results.json"), record)
    return record
