"""Every file the README and the docs point to exists; the README names no machine's paths.

* Every relative markdown link (``[text](path)``, ``![alt](path)``, ``[id]: path``) in
  ``README.md`` and ``docs/**/*.md`` resolves, from the page's folder, to a file or folder
  of the repository (an ``#anchor`` is not checked; URLs with a scheme are skipped).
* Every file named in inline code that is a path into the repository (``tests/x.py``,
  ``jaxrelax/_src/_checks.py::name``, ``docs/guide/edges.md``) or a top-level document
  (``CHANGELOG.md``, ``CITATION.cff``) exists: a page may not cite a file the repository
  does not have.
* ``README.md`` holds no absolute path of a particular machine (``/work/``, ``/tmp/``,
  ``/home/``, ``/root/``, ...): a results table states the command, the kind of machine,
  the versions and the date, nothing else about one run.
"""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
# Top-level folders whose paths the pages cite (generated ones such as bench-results/ are
# outputs, not files of the repository).
SOURCE_ROOTS = {".ci", "docs", "examples", "jaxrelax", "notebooks", "tests"}

_FENCE = re.compile(r"^([ \t]*)(```|~~~).*?^\1\2[ \t]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'(][^)]*)?\)")
_REF_LINK = re.compile(r"^[ \t]{0,3}\[[^\]]+\]:[ \t]*<?([^\s>]+)>?", re.M)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_CITED_PATH = re.compile(r"^([\w.-]+(?:/[\w.-]+)+)(?:::[\w\[\].-]+)?/?$")
_TOP_DOC = re.compile(r"^[A-Z][A-Z_]*\.(?:md|cff|txt)$")
_ABSOLUTE = re.compile(r"(?<![\w.~-])/(?:work|tmp|home|root|Users|mnt|scratch|private)/")


def _prose(text: str) -> str:
    """The page without fenced code blocks and inline code spans."""
    return _CODE_SPAN.sub(" ", _FENCE.sub("", text))


def relative_links(text: str) -> list[str]:
    """The relative link targets of a markdown text, without ``#anchor`` or ``?query``."""
    prose = _prose(text)
    targets = _INLINE_LINK.findall(prose) + _REF_LINK.findall(prose)
    out = []
    for target in targets:
        if _SCHEME.match(target) or target.startswith(("#", "//")):
            continue
        path = re.split(r"[#?]", target, maxsplit=1)[0]
        if path:
            out.append(path)
    return out


def cited_files(text: str) -> list[str]:
    """Repository paths named in inline code (outside fenced blocks), relative to the root."""
    out = []
    for _, span in _CODE_SPAN.findall(_FENCE.sub("", text)):
        span = span.strip()
        if _TOP_DOC.match(span):
            out.append(span)
            continue
        m = _CITED_PATH.match(span)
        if m and m.group(1).split("/", 1)[0] in SOURCE_ROOTS:
            out.append(m.group(1))
    return out


def absolute_paths(text: str) -> list[str]:
    return [text[m.start() : m.start() + 40].split()[0] for m in _ABSOLUTE.finditer(text)]


def _rel(page: pathlib.Path) -> str:
    return str(page.relative_to(ROOT))


def test_there_are_pages_with_links():
    assert README in PAGES and len(PAGES) > 10
    assert sum(len(relative_links(p.read_text())) for p in PAGES) > 10
    assert sum(len(cited_files(p.read_text())) for p in PAGES) > 10


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_relative_links_resolve(page):
    missing = [
        t for t in relative_links(page.read_text()) if not (page.parent / t).resolve().exists()
    ]
    assert not missing, f"{_rel(page)} links to files that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_cited_files_exist(page):
    missing = [p for p in cited_files(page.read_text()) if not (ROOT / p).exists()]
    assert not missing, f"{_rel(page)} cites files the repository does not have: {missing}"


def test_readme_names_no_machine_paths():
    found = absolute_paths(README.read_text())
    assert not found, f"README.md holds absolute paths of a machine: {found}"


def test_checkers_on_synthetic_text():
    text = (
        "See [the guide](guide/edges.md#ties), ![plot](img/a.png), [site](https://x.org/a.md),\n"
        "[top](#install), [mail](mailto:a@b.c) and `[not](a/link.md)`.\n"
        "[ref]: ../README.md\n"
        "```python\nfs[0](x)\n```\n"
        "Style is in `STYLE.md`; checks in `jaxrelax/_src/_checks.py::check_key` and\n"
        "`tests/test_x.py`; outputs in `bench-results/results.json`; `jr.soft.sort`.\n"
    )
    assert relative_links(text) == ["guide/edges.md", "img/a.png", "../README.md"]
    assert cited_files(text) == ["STYLE.md", "jaxrelax/_src/_checks.py", "tests/test_x.py"]
    assert absolute_paths("run with `--out /work/scratch/out`, or /tmp/x") == [
        "/work/scratch/out`,",
        "/tmp/x",
    ]
    assert absolute_paths("see https://example.com/home/ and docs/guide/edges.md") == []
