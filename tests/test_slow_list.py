"""One way to mark a test slow: its node id in ``tests/slow_tests.txt`` (read by conftest.py,
which also fails on ids that no longer exist). No test marks itself inline."""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parent
INLINE = "mark." + "slow"  # split so that this file does not match itself


def test_no_inline_slow_marks():
    found = [
        f"{p.relative_to(ROOT.parent)}:{i}"
        for p in sorted(ROOT.rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if INLINE in line
    ]
    assert not found, f"mark slow tests in tests/slow_tests.txt, not inline: {found}"
