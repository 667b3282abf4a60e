"""Command line of the benchmark: ``python -m jaxrelax.bench --help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    from jaxrelax.bench._runner import SUITES

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
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these suites ({', '.join(SUITES)}); repeat or comma-separate",
    )
    p.add_argument("--out", default="bench-results", metavar="DIR", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from jaxrelax.bench._runner import SUITES, run_bench

    args = parser().parse_args(argv)
    only = None
    if args.only:
        only = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
        bad = [n for n in only if n not in SUITES]
        if bad:
            parser().error(f"--only: unknown suite(s) {bad}; choose from {list(SUITES)}")
    run_bench(
        out_dir=args.out,
        quick=args.quick,
        seed=args.seed,
        only=only,
        progress=not args.no_progress,
        argv=list(sys.argv[1:] if argv is None else argv),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
