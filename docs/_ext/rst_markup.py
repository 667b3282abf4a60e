"""Griffe extension: render jaxrelax's docstring template in the Markdown docs.

jaxrelax docstrings follow optax's template: Google sections (``Args:``, ``Returns:``,
``Examples:``, ``References:``) written without blank lines between them, and a few
reStructuredText constructs (``.. math::``, ``.. note::``, `` `text <url>`_ `` links,
``:class:`X``` roles, ``text::`` literal blocks). The docstrings stay as they are
(they also serve ``help()`` and Sphinx-minded readers); this extension rewrites each
docstring's text before griffe parses it:

* a blank line is inserted above each known section title, as griffe's Google parser
  requires; ``References:`` then renders as an admonition;
* ``.. math::`` blocks become ``$$ ... $$`` display maths (``pymdownx.arithmatex``);
* ``.. note::`` / ``.. warning::`` become Material admonitions;
* RST links become Markdown links, roles become code spans, and ``::`` literal blocks
  become fenced code blocks.

Only docstring text is touched; nothing is imported or executed.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Returns|Yields|Raises|Examples|Example|References|"
    r"Attributes|Notes|Warnings|See Also|Methods):\s*$"
)
_DIRECTIVE = re.compile(r"^\.\. (math|note|warning|tip|seealso)::\s*(.*)$")
_LINK = re.compile(r"`([^`<]+?)\s*<([^>`]+)>`__?", re.S)
_ROLE = re.compile(r":(?:class|func|meth|attr|mod|obj|data|exc|py:\w+):`~?([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """Lines after ``start`` indented deeper than ``base`` (blank lines kept inside)."""
    out: list[str] = []
    i = start
    while i < len(lines):
        line = lines[i]
        if line.strip() and _indent(line) <= base:
            break
        out.append(line)
        i += 1
    while out and not out[-1].strip():
        out.pop()
        i -= 1
    return out, i


def convert(text: str) -> str:
    """Rewrites one docstring (already dedented) from the house template to Markdown."""
    text = _LINK.sub(lambda m: f"[{' '.join(m.group(1).split())}]({m.group(2).strip()})", text)
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    in_fence = False
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        base = _indent(line)
        if stripped.startswith("```"):
            in_fence = not in_fence
            out.append(line)
            i += 1
            continue
        if in_fence:
            out.append(line)
            i += 1
            continue
        directive = _DIRECTIVE.match(stripped)
        if directive:
            kind, first = directive.groups()
            body, i = _block(lines, i + 1, base)
            body_text = textwrap.dedent("\n".join(body)).strip("\n")
            content = "\n".join(part for part in (first.strip(), body_text) if part)
            pad = " " * base
            if out and out[-1].strip():
                out.append("")
            if kind == "math":
                out += [pad + "$$", *(pad + c for c in content.split("\n")), pad + "$$"]
            else:
                title = "See also" if kind == "seealso" else kind.capitalize()
                out.append(f'{pad}!!! {"note" if kind == "seealso" else kind} "{title}"')
                out += [pad + "    " + c if c.strip() else "" for c in content.split("\n")]
            if i < len(lines) and lines[i].strip():
                out.append("")
            continue
        if _SECTION.match(stripped) and out and out[-1].strip():
            out.append("")
        if stripped.endswith("::") and not stripped.startswith(".."):
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and _indent(lines[j]) > base:
                body, k = _block(lines, j, base)
                head = line[:-2] if stripped != "::" else ""
                if head.strip():
                    out.append(head + ("" if head.rstrip().endswith(":") else ":"))
                pad = " " * base
                code = textwrap.dedent("\n".join(body)).strip("\n").split("\n")
                out += ["", pad + "```python", *(pad + c if c else "" for c in code), pad + "```"]
                if k < len(lines) and lines[k].strip():
                    out.append("")
                i = k
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


class RstMarkup(griffe.Extension):
    """Converts every docstring of the loaded package (see the module docstring)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
