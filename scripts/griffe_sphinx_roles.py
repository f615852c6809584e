"""A Griffe extension for the API reference: the docstrings' Sphinx roles as Markdown.

The package's docstrings cross-reference with Sphinx roles (``:class:`~a.b.Path```,
``:func:`evaluate```). mkdocstrings reads Markdown, where those would show as raw text.
Each role becomes inline code wrapped in an *optional* autorefs link: a link where the
target is documented on the site, plain code where it is not (a relative or private
name), never a broken reference. A reST ``::`` that introduces a literal block becomes
``:`` (the indented block is already code in Markdown). Free text after a numpy section
(a paragraph, an ``Example::``, unindented after a blank line) would be read as more
parameters; it gets a ``Notes`` (or ``Examples``) heading of its own, as numpy style wants.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
_LITERAL_INTRO = re.compile(r"(\S)::(\n\n)")
_DASHES = re.compile(r"-{3,}")


def _link(match: re.Match[str]) -> str:
    short, target = match.group(1) == "~", match.group(2).strip()
    shown = target.rsplit(".", 1)[-1] if short else target.lstrip(".")
    identifier = html.escape(target.lstrip("."), quote=True)
    return (
        f'<code><autoref identifier="{identifier}" optional>{html.escape(shown)}</autoref></code>'
    )


def convert(text: str) -> str:
    """``text`` with Sphinx roles as optional autorefs, ``::`` intros as ``:`` and free
    text after a section under a heading of its own."""
    return _close_sections(_LITERAL_INTRO.sub(r"\1:\2", _ROLE.sub(_link, text)))


def _close_sections(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    in_section = False
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and line.strip() and _DASHES.fullmatch(lines[i + 1].strip()):
            in_section = True
        elif (
            in_section
            and line[:1].strip()
            and out
            and out[-1] == ""
            and not _DASHES.fullmatch(line)
        ):
            title = "Examples" if line.startswith("Example") else "Notes"
            out += [title, "-" * len(title)]
            in_section = title == "Notes"
        out.append(line)
    return "\n".join(out)


class SphinxRoles(griffe.Extension):
    """Rewrite each object's docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
