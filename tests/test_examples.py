"""Every script under ``examples/`` runs with the current API.

The scripts are found by globbing, so a new example is covered without editing this file.
Each runs in its own interpreter (as a user would run it, from the repository root) with
``JAXRELAX_FAST=1`` (the notebooks' fast mode): an example whose default run takes more
than a few seconds reads that variable and runs on small settings instead (see
``examples/toy_variances.py``).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").rglob("*.py"))
TIMEOUT_S = 120  # per example; the quick settings take a few seconds (most of it compiling)


def test_there_are_examples():
    assert EXAMPLES, "no examples/*.py found"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_example_runs(path):
    env = {
        **os.environ,
        "JAXRELAX_FAST": "1",
        "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"),
    }
    proc = subprocess.run(
        [sys.executable, str(path.relative_to(ROOT))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, (
        f"{path.relative_to(ROOT)} exited with {proc.returncode}:\n{proc.stderr[-4000:]}"
    )
    assert proc.stdout.strip(), f"{path.relative_to(ROOT)} printed nothing"
