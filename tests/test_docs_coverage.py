"""Every public symbol is documented and rendered; every notebook is listed on the site.

* Every name in ``__all__`` of the public modules (and ``jr.gumbel_softmax``) has a
  docstring; a function's docstring has an ``Examples:`` section (run as doctests by
  ``--doctest-modules``).
* Every public module has an API page in ``docs/api/`` with a ``::: jaxrelax.MODULE``
  mkdocstrings directive, and neither the directive's options (``members``, ``filters``)
  nor the global ``filters`` of ``mkdocs.yml`` leave the symbol out. griffe (the loader
  mkdocstrings uses) must see the symbol as a public member of the module, which is what
  mkdocstrings renders.
* Every notebook in ``notebooks/`` is listed, with its Colab link, on ``docs/notebooks.md``,
  and that page and every API page are in the ``nav`` of ``mkdocs.yml``.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import re
import textwrap

import pytest
import yaml

import jaxrelax as jr

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODULES = ["soft", "st", "reparam", "estimators", "perturb", "nn", "diagnostics"]
SYMBOLS = [(m, name) for m in MODULES for name in importlib.import_module(f"jaxrelax.{m}").__all__]
COLAB = "https://colab.research.google.com/github/jaxrelax/jaxrelax/blob/main/notebooks/{}.ipynb"
_DIRECTIVE = re.compile(r"^::: (jaxrelax(?:\.\w+)*)[ \t]*\n((?:(?:[ \t]+.*)?\n)*)", re.M)
_EXAMPLES = re.compile(r"^\s*Examples?:\s*$", re.M)


class _Loader(yaml.SafeLoader):
    """mkdocs.yml may carry python tags (``!!python/name:``); read them as plain strings."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _mkdocs_config() -> dict:
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)


def _global_options() -> dict:
    for plugin in _mkdocs_config()["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            return plugin["mkdocstrings"]["handlers"]["python"].get("options", {})
    raise AssertionError("mkdocstrings is not configured in mkdocs.yml")


def _directives() -> dict[str, list[tuple[pathlib.Path, dict]]]:
    """``identifier -> [(page, options)]`` for every ``::: identifier`` in docs/api/."""
    found: dict[str, list[tuple[pathlib.Path, dict]]] = {}
    for page in sorted((ROOT / "docs" / "api").glob("*.md")):
        for ident, block in _DIRECTIVE.findall(page.read_text()):
            options = (yaml.safe_load(textwrap.dedent(block)) or {}) if block.strip() else {}
            found.setdefault(ident, []).append((page, options.get("options", {}) or {}))
    return found


def _kept_by_filters(name: str, filters: list[str]) -> bool:
    """mkdocstrings-python's rule: the last matching filter decides; ``!`` excludes."""
    keep = None
    rules = set()
    for pattern in filters:
        exclude = pattern.startswith("!")
        rules.add(exclude)
        if re.search(pattern.lstrip("!"), name):
            keep = not exclude
    if keep is None:
        return rules != {False}  # only positive filters, none matched: left out
    return keep


def _nav_pages() -> set[str]:
    pages: set[str] = set()

    def walk(node):
        if isinstance(node, str):
            pages.add(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(_mkdocs_config()["nav"])
    return pages


@pytest.fixture(scope="module")
def griffe_package():
    griffe = pytest.importorskip("griffe")  # the docs extra (mkdocstrings' loader)
    return griffe.load("jaxrelax", search_paths=[str(ROOT)], resolve_aliases=True)


def test_there_are_symbols_to_check():
    assert len(SYMBOLS) > 50
    assert ("estimators", "reinforce") in SYMBOLS and ("soft", "sort") in SYMBOLS


@pytest.mark.parametrize(
    "module,name",
    [*SYMBOLS, ("", "gumbel_softmax")],
    ids=lambda v: v or "jr",
)
def test_public_symbol_has_a_docstring_with_examples(module, name):
    obj = getattr(getattr(jr, module) if module else jr, name)
    doc = inspect.getdoc(obj)
    where = f"jr.{module}.{name}" if module else f"jr.{name}"
    assert doc and len(doc.strip()) > 20, f"{where} has no docstring"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        assert _EXAMPLES.search(doc), f"{where}'s docstring has no Examples: section"


@pytest.mark.parametrize("module,name", [*SYMBOLS, ("", "gumbel_softmax")], ids=lambda v: v or "jr")
def test_public_symbol_is_rendered_by_an_api_page(module, name, griffe_package):
    directives = _directives()
    ident = f"jaxrelax.{module}" if module else f"jaxrelax.{name}"
    where = f"jr.{module}.{name}" if module else f"jr.{name}"
    assert ident in directives, f"no docs/api/*.md page has a `::: {ident}` directive"
    nav = _nav_pages()
    global_filters = _global_options().get("filters", ["!^_[^_]"])
    rendered_on = []
    for page, options in directives[ident]:
        if f"api/{page.name}" not in nav:
            continue
        if not module:  # a function page renders the function itself
            rendered_on.append(page)
            continue
        # mkdocstrings-python's do_filter_objects: an explicit member list wins over
        # filters; False or [] renders no member; "public" keeps griffe's public names.
        members = options.get("members", _global_options().get("members"))
        filters = options.get("filters", global_filters)
        if members is False or members == []:
            continue
        if isinstance(members, list):
            if name in members:
                rendered_on.append(page)
            continue
        if members is not True and filters != "public" and filters:
            if not _kept_by_filters(name, filters):
                continue
        rendered_on.append(page)
    assert rendered_on, f"{where}: every page with `::: {ident}` filters it out (or is not in nav)"
    # What mkdocstrings will see: griffe's view of the module must list it as public.
    owner = griffe_package[module] if module else griffe_package
    assert name in owner.members, f"griffe does not find {where}"
    member = owner.members[name]
    assert member.is_public, f"griffe does not consider {where} public (check __all__)"
    assert member.docstring is not None, f"griffe finds no docstring for {where}"


def test_every_notebook_is_listed_on_the_docs_site():
    page = ROOT / "docs" / "notebooks.md"
    assert page.exists(), "docs/notebooks.md is missing"
    assert "notebooks.md" in _nav_pages(), "docs/notebooks.md is not in the mkdocs nav"
    text = page.read_text()
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks found"
    for stem in notebooks:
        assert f"`{stem}`" in text, f"notebooks/{stem}.ipynb is not listed on docs/notebooks.md"
        assert COLAB.format(stem) in text, f"docs/notebooks.md has no Colab link for {stem}"


def test_filter_rule_matches_mkdocstrings():
    # The rule used above, on the cases mkdocstrings-python documents for `filters`.
    assert _kept_by_filters("sort", ["!^_[^_]"])
    assert not _kept_by_filters("_private", ["!^_[^_]"])
    assert not _kept_by_filters("sort", ["!^sort$"])
    assert _kept_by_filters("sort", ["^s"]) and not _kept_by_filters("rank", ["^s"])
    assert _kept_by_filters("rank", ["!^_", "rank"])
