"""The docs' estimator tables state what each estimator's record says.

Every estimator has one record, ``jr.estimators.INFO[name]``; the tables of
``docs/tables.md`` ("Gradient estimators") and ``docs/guide/estimators.md`` ("Choosing an
estimator") are written by hand, and these tests parse them and fail when a row and the
record disagree, or when an estimator has no row (or a row names no estimator). A cell
may add words in parentheses after the fact it states (``no (relaxed)``).
"""

from __future__ import annotations

import pathlib
import re

import pytest

import jaxrelax as jr

ROOT = pathlib.Path(__file__).resolve().parent.parent
INFO = jr.estimators.INFO


def markdown_table(path: pathlib.Path, section: str) -> list[dict[str, str]]:
    """The first table under the heading ``## section`` of ``path``, one dict per row,
    keyed by the header cells (an escaped pipe ``\\|`` is not a cell border)."""
    text = path.read_text()
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"{path.name} has no section {section!r}"
    table = re.search(r"^\|.*?(?=^[^|]|\Z)", match.group(1), re.S | re.M)
    assert table, f"no table under {section!r} in {path.name}"
    lines = table.group(0).splitlines()

    def cells(line: str) -> list[str]:
        return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]

    header = cells(lines[0])
    rows = [dict(zip(header, cells(line), strict=True)) for line in lines[2:]]
    assert rows and all(len(r) == len(header) for r in rows)
    return rows


def _name(cell: str) -> str:
    """The estimator a row is about: the first inline-code name of its first cell."""
    match = re.match(r"`(\w+)`", cell)
    assert match, f"a row's first cell does not start with `name`: {cell!r}"
    return match.group(1)


def _states(cell: str, fact: str) -> bool:
    """``True`` for a cell that says yes, ``False`` for no (its first word)."""
    word = re.match(r"\w+", cell)
    assert word and word.group(0) in ("yes", "no"), f"{fact} cell must start yes/no: {cell!r}"
    return word.group(0) == "yes"


def _states_text(cell: str, text: str) -> bool:
    """Whether ``cell`` is ``text``, possibly followed by words in parentheses."""
    return cell == text or cell.startswith(f"{text} (")


def _by_name(rows: list[dict[str, str]], column: str) -> dict[str, dict[str, str]]:
    out = {_name(r[column]): r for r in rows}
    assert len(out) == len(rows), "an estimator has two rows"
    assert set(out) == set(INFO), (
        f"missing rows: {sorted(set(INFO) - set(out))}; rows of no estimator: "
        f"{sorted(set(out) - set(INFO))}"
    )
    return out


TABLES = markdown_table(ROOT / "docs" / "tables.md", "Gradient estimators")
GUIDE = markdown_table(ROOT / "docs" / "guide" / "estimators.md", "Choosing an estimator")


def test_every_estimator_has_one_row_in_each_table():
    _by_name(TABLES, "name")
    _by_name(GUIDE, "estimator")


@pytest.mark.parametrize("name", sorted(INFO))
def test_tables_row_states_the_record(name):
    row, info = _by_name(TABLES, "name")[name], INFO[name]
    assert _states_text(row["paper"], info.paper), (row["paper"], info.paper)
    assert _states(row["unbiased"], "unbiased") == info.unbiased, row["unbiased"]
    evals = row["f evaluations per estimate"]
    assert _states_text(evals, info.f_evals_text), (evals, info.f_evals_text)
    assert _states(row["needs ∂f?"], "needs ∂f?") == info.needs_df, row["needs ∂f?"]


@pytest.mark.parametrize("name", sorted(INFO))
def test_guide_row_states_the_record(name):
    row, info = _by_name(GUIDE, "estimator")[name], INFO[name]
    # `dist`: the families, before any words in parentheses; `Reparam` is "reparam".
    words = re.sub(r"\(.*?\)", "", row["`dist`"]).split(",")
    dists = {w.strip(" `").lower() for w in words}
    assert dists == set(info.distributions), (row["`dist`"], info.distributions)
    assert _states(row["unbiased"], "unbiased") == info.unbiased, row["unbiased"]
    assert _states(row["needs `∂f/∂x`"], "needs ∂f/∂x") == info.needs_df


def test_parser_reads_cells_and_fails_on_a_wrong_one(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "## T\n\n| name | paper | unbiased |\n| --- | --- | --- |\n"
        "| `arm` (\\|b\\|) | Yin & Zhou 2019 (Bernoulli) | no (biased) |\n\n## Next\n| a |\n"
    )
    (row,) = markdown_table(page, "T")
    assert _name(row["name"]) == "arm" and row["name"] == "`arm` (\\|b\\|)"
    assert _states_text(row["paper"], INFO["arm"].paper)
    assert not _states_text(row["paper"], "Yin & Zhou")
    assert _states(row["unbiased"], "unbiased") != INFO["arm"].unbiased  # it would fail


def test_contributing_shows_disarms_record_as_it_is_in_the_code():
    # docs/contributing.md shows what adding an estimator adds, with DisARM's real lines:
    # its `+` lines must be lines of arm.py, in the same order.
    page = (ROOT / "docs" / "contributing.md").read_text()
    section = page.split("## Adding an estimator", 1)[1]
    block = re.search(r"^```diff\n(.*?)^```", section, re.S | re.M)
    assert block, "docs/contributing.md shows no diff in 'Adding an estimator'"
    added = [line[1:] for line in block.group(1).splitlines() if line.startswith("+")]
    assert "DISARM = _core.EstimatorInfo(" in added
    source = (ROOT / "jaxrelax" / "_src" / "estimators" / "arm.py").read_text().splitlines()
    lines = iter(source)
    for line in added:  # a subsequence: `in` advances the iterator past the match
        assert line in lines, f"not in arm.py (in this order): {line!r}"
