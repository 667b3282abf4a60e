"""Command line of the benchmark: ``python -m jaxrelax.bench --help``.

Usage:

```bash
python -m jaxrelax.bench --quick                       # every suite, small settings
python -m jaxrelax.bench --only ops --sort-sizes 1e3 1e4 1e5   # soft sort/rank by size
python -m jaxrelax.bench --peers --only peers --quick  # beside torch, entmax, OTT-JAX
python -m jaxrelax.bench --only solvers --full         # every degree and method, longer
python -m jaxrelax.bench --peers --only sorting        # beside diffsort (PyTorch)
```
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    from jaxrelax.bench._runner import EXTRA_SUITES, SUITES

    p = argparse.ArgumentParser(
        prog="python -m jaxrelax.bench",
        description="Benchmarks of jaxrelax's gradient estimators and relaxed operators: "
        "prints tables and writes a JSON record and PNG plots.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller settings (same outputs), under a minute on 2 CPU cores",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="larger settings where a suite has them (solvers: degrees 1, 2, 4, 6, "
        "20 epochs, 5 runs; sorting: n = 3, 5, 7, 9, 15, every method, 4000 steps)",
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these suites ({', '.join([*SUITES, *EXTRA_SUITES])}); repeat or "
        "comma-separate",
    )
    p.add_argument(
        "--peers",
        action="store_true",
        help="add the peers suite (jaxrelax beside PyTorch, entmax and OTT-JAX) and the "
        "solvers and sorting suites' side-by-side runs of PyEPO and diffsort, for those "
        "installed (pip install -e '.[peers]'); with --only, beside the suites named",
    )
    p.add_argument(
        "--sort-sizes",
        nargs="+",
        type=_size,
        metavar="N",
        help="row lengths of the ops suite's soft sort/rank timings (e.g. 1e3 1e4 1e5; "
        "default 1e3 1e4, with --quick 1e3)",
    )
    p.add_argument("--out", default="bench-results", metavar="DIR", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _size(text: str) -> int:
    """A positive integer size, also written as a float (``1e4``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return int(value)


def _suite_overrides(names: Sequence[str], *, full: bool, peers: bool) -> dict:
    """Per-suite config fields for ``--full`` (a config's ``full()``) and ``--peers`` (a
    config's ``peers`` field, e.g. the solvers suite's PyEPO runs)."""
    from jaxrelax.bench._runner import _CONFIGS

    out = {}
    for name in names:
        cls, fields = _CONFIGS[name], {}
        if full and hasattr(cls, "full"):
            cfg = cls.full()
            fields.update({f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)})
        if peers and "peers" in {f.name for f in dataclasses.fields(cls)}:
            fields["peers"] = True
        if fields:
            out[name] = fields
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from jaxrelax.bench._runner import EXTRA_SUITES, SUITES, run_bench

    args = parser().parse_args(argv)
    only = None
    if args.only:
        only = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
        names = [*SUITES, *EXTRA_SUITES]
        bad = [n for n in only if n not in names]
        if bad:
            parser().error(f"--only: unknown suite(s) {bad}; choose from {names}")
    if args.full and args.quick:
        parser().error("--full and --quick exclude each other")
    selected = list(SUITES) if only is None else list(only)
    if args.peers:
        only = list(SUITES) if only is None else only
        if "peers" not in only:
            only.append("peers")
    overrides = _suite_overrides(selected, full=args.full, peers=args.peers)
    if args.sort_sizes:
        if only is not None and "ops" not in only:
            parser().error("--sort-sizes: the ops suite is not selected (add --only ops)")
        overrides["ops"] = {**overrides.get("ops", {}), "sort_sizes": tuple(args.sort_sizes)}
    run_bench(
        out_dir=args.out,
        quick=args.quick,
        seed=args.seed,
        only=only,
        overrides=overrides,
        progress=not args.no_progress,
        argv=list(sys.argv[1:] if argv is None else argv),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
