"""Every docstring in jaxrelax is Markdown with Google sections (docs/style.md).

mkdocstrings renders these natively; nothing on the docs side rewrites them, so
reStructuredText markup would reach the API pages raw. This test fails on
``.. math::``/``.. note::`` directives, ``:func:``-style roles, reST links and a section
title without a blank line above it (griffe's Google parser then misses the section).
"""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "jaxrelax"
FILES = sorted(ROOT.rglob("*.py"))

_RST = {
    "directive": re.compile(r"^\s*\.\. \w+::", re.M),
    "role": re.compile(r":(?:class|func|meth|attr|mod|obj|data|exc|math|py:\w+):`"),
    "reST link": re.compile(r"`[^`<]+<https?://[^>`]+>`_"),
    "literal block (::)": re.compile(r"^[^\n>]*\S::\s*$", re.M),
}
_SECTION = re.compile(
    r"^(Args|Returns|Yields|Raises|Examples|References|Attributes|Note|Warning):\s*$"
)


def _docstrings(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                yield getattr(node, "name", "<module>"), doc


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_docstrings_are_markdown_with_google_sections(path):
    problems = []
    for name, doc in _docstrings(path):
        for what, pattern in _RST.items():
            m = pattern.search(doc)
            if m:
                problems.append(f"{name}: {what}: {m.group(0).strip()!r}")
        lines = doc.split("\n")
        for i, line in enumerate(lines[1:], 1):
            if _SECTION.match(line) and lines[i - 1].strip():
                problems.append(f"{name}: no blank line above section {line.strip()!r}")
    assert not problems, "\n".join(problems)


def test_the_checker_catches_rest():
    # Positive control: the patterns above do match the reST forms they forbid.
    assert _RST["directive"].search("text\n.. math:: x")
    assert _RST["role"].search("see :func:`jr.soft.sort`")
    assert _RST["reST link"].search("`Title <https://arxiv.org/abs/1>`_")
    assert _RST["literal block (::)"].search("Examples::\n\n    x = 1")
    assert _SECTION.match("Returns:")
