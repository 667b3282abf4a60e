"""One home per mechanism: no module imports an underscored name from another subpackage.

A subpackage of ``jaxrelax/_src`` (``estimators``, ``soft``, ``reparam``, ...) keeps its
private helpers (``_core``, ``_dists``, ``_isotonic``, any ``_name``) to itself; code that
another subpackage needs moves to a shared home: ``jaxrelax/_src/_checks.py``,
``_random.py``, ``_numerics.py`` or ``_numerics.py`` (whose *public* names every module may
import). The same holds outside ``_src``: ``jaxrelax.bench`` may use its own ``_report`` but not
``jaxrelax._src.estimators._core``.

The check parses every module under ``jaxrelax/`` with :mod:`ast`, so it sees imports split
over several lines, ``import a.b as c`` and relative imports, and resolves each imported
object to its full dotted path. It does not follow attribute access
(``from jaxrelax._src import _numerics, estimators; estimators._core``).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "jaxrelax"
# The shared homes: top-level modules of jaxrelax/_src whose public names every module uses.
SHARED = frozenset({"_checks", "_random", "_numerics"})


def _module_name(path: pathlib.Path) -> str:
    """``jaxrelax/_src/soft/sorting.py`` -> ``jaxrelax._src.soft.sorting``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _home(parts: list[str]) -> tuple[str, ...]:
    """The subpackage a dotted path (split, without the leading ``jaxrelax``) belongs to:
    ``("_src", "estimators")`` for ``_src.estimators._core``, ``("bench",)`` for
    ``bench._report``, ``()`` for the package root."""
    if parts[:1] == ["_src"]:
        return tuple(parts[:2])
    return tuple(parts[:1])


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _crosses_privately(importer: str, target: str) -> bool:
    """Whether module ``importer`` reaching the object at dotted path ``target`` breaks
    the rule (both are full dotted paths starting with ``jaxrelax``)."""
    t = target.split(".")
    if t[0] != PACKAGE:
        return False  # a third-party import
    t = t[1:]
    home = _home(importer.split(".")[1:])
    where = _home(t)
    if where == home:
        return False  # inside its own subpackage: anything goes
    inner = t[len(where) :]
    if where[:1] == ("_src",):
        # _src itself is the container; a shared home is public, its own _names are not
        owner = where[1:]
        if owner and _is_private(owner[0]) and owner[0] not in SHARED:
            return True
    elif where and _is_private(where[0]):
        return True
    return any(_is_private(p) for p in inner)


def private_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every import in ``source`` (the text of module ``module``, e.g.
    ``jaxrelax._src.soft.sorting``; ``is_package`` for an ``__init__.py``) that reaches an
    underscored name of another subpackage, as ``"line N: <dotted path>"``."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .._core import y
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [
                origin if alias.name == "*" else f"{origin}.{alias.name}" for alias in node.names
            ]
        for target in targets:
            if _crosses_privately(module, target):
                found.append(f"line {node.lineno}: {target}")
    return found


def _modules() -> list[pathlib.Path]:
    return sorted((ROOT / PACKAGE).rglob("*.py"))


def test_no_private_imports_across_subpackages():
    modules = _modules()
    assert len(modules) > 30 and ROOT / PACKAGE / "_src" / "estimators" / "_core.py" in modules
    hits = [
        f"{path.relative_to(ROOT)} {hit}"
        for path in modules
        for hit in private_imports(
            path.read_text(), _module_name(path), is_package=path.name == "__init__.py"
        )
    ]
    assert not hits, "imports of another subpackage's private names:\n" + "\n".join(hits)


def test_bench_and_examples_use_only_the_public_api():
    # The main job and the examples are ordinary users: `import jaxrelax as jr`, never _src.
    paths = sorted((ROOT / PACKAGE / "bench").rglob("*.py")) + sorted(
        (ROOT / "examples").rglob("*.py")
    )
    assert paths
    hits = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            hits += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {n}"
                for n in names
                if n.startswith(f"{PACKAGE}._src")
            ]
    assert not hits, "imports of jaxrelax._src:\n" + "\n".join(hits)


ESTIMATOR = "jaxrelax._src.estimators.arm"


@pytest.mark.parametrize(
    "source",
    [
        "from jaxrelax._src.soft import _isotonic",
        "from jaxrelax._src.soft.sorting import _pav",
        "from jaxrelax._src.soft._isotonic import pav",
        "from jaxrelax._src.soft.sorting import (\n    sort,\n    _pav as pav,\n)",
        "import jaxrelax._src.soft._isotonic",
        "import jaxrelax._src.soft._isotonic as iso",
        "from jaxrelax._src._checks import _private_helper",
        "from jaxrelax._src import _numerics, _secret",
        "from jaxrelax.bench import _report",
        "from jaxrelax._src.soft._isotonic import *",
        "def f():\n    from jaxrelax._src.reparam.base import _x\n    return _x",
    ],
)
def test_checker_flags_a_violating_import(source):
    assert private_imports(source, ESTIMATOR), source


@pytest.mark.parametrize(
    "source",
    [
        "from jaxrelax._src.estimators import _core, _dists",  # its own subpackage
        "from jaxrelax._src.estimators._core import first_order_only",
        "from . import _core",
        "from ._dists import _logits",
        "from jaxrelax._src import _checks, _numerics, _random",  # the shared homes
        "from jaxrelax._src._numerics import safe_logsumexp",
        "from jaxrelax._src.st.straight_through import straight_through as _straight_through",
        "from jaxrelax._src.soft import sorting",
        "import jaxrelax as jr",
        "import numpy as np\nfrom jax._src import core",  # not this package
        "from __future__ import annotations",
    ],
)
def test_checker_allows_a_clean_import(source):
    assert private_imports(source, ESTIMATOR) == [], source


def test_checker_resolves_relative_imports_from_the_importing_module():
    # From soft/sorting.py, `..estimators._core` is another subpackage's private module;
    # from the package's __init__.py, `._isotonic` is its own.
    assert private_imports("from ..estimators import _core", "jaxrelax._src.soft.sorting")
    assert private_imports("from .._random import key_split", "jaxrelax._src.soft.sorting") == []
    assert private_imports("from ._isotonic import pav", "jaxrelax._src.soft", True) == []
    assert private_imports("from ..st import _x", "jaxrelax._src.soft", True)
    # Outside _src, a public module reaches into _src only through public names.
    assert private_imports("from jaxrelax._src.soft.sorting import sort", "jaxrelax.soft") == []
    assert private_imports("from jaxrelax._src.soft import _isotonic", "jaxrelax.soft")
