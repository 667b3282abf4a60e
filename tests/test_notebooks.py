"""Executable documentation: the notebooks in ``notebooks/`` and the code in ``docs/``.

* Every notebook runs top to bottom with ``nbclient`` in fast mode (``JAXRELAX_FAST=1``).
  Needs the ``docs`` extra (``nbclient``, ``ipykernel``); skipped without it.
* Every ```python block of each docs page runs, in order, in one namespace per page, so
  the guides cannot drift from the API.
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAGES = sorted((ROOT / "docs").rglob("*.md"))
_CODE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_there_is_something_to_run():
    assert NOTEBOOKS, "no notebooks found in notebooks/"
    assert any(_CODE.search(p.read_text()) for p in PAGES), "no python blocks found in docs/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("JAXRELAX_FAST", "1")
    monkeypatch.setenv("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS", "cpu"))
    nb = nbformat.read(path, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        f"{path.name} is committed with outputs; clear them"
    )
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()  # raises CellExecutionError (with the traceback) if any cell fails
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert ran and all(c.get("execution_count") for c in ran)


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if _CODE.search(p.read_text())],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_docs_code_blocks_run(page):
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for i, block in enumerate(_CODE.findall(page.read_text())):
        exec(compile(block, f"{page.relative_to(ROOT)}[block {i}]", "exec"), namespace)
