"""MkDocs hooks (``hooks:`` in mkdocs.yml): the parts of the site generated from the code.

* ``<!-- cli-reference -->`` in a page becomes the reference of every ``adaptive-router``
  command, read from the Typer app itself (usage, help, arguments and options with their
  defaults), so it cannot drift from ``--help``.
* ``<!-- defaults: module.Class -->`` becomes a table of that class's constructor
  parameters and their defaults, read from its signature.
* The simulation write-ups in ``simulations/results/`` (pages and plots) join the site
  under the same paths, so the experiments keep one copy, where they write it.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import typer
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
RESULTS = "simulations/results"

_DEFAULTS = re.compile(r"<!-- defaults: ([\w.]+) -->")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add ``simulations/results/*.md`` and ``*.png`` to the site."""
    for path in sorted((ROOT / RESULTS).iterdir()):
        if path.suffix in (".md", ".png"):
            files.append(
                File(
                    f"{RESULTS}/{path.name}",
                    src_dir=str(ROOT),
                    dest_dir=config.site_dir,
                    use_directory_urls=config.use_directory_urls,
                )
            )
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Expand the generated sections of a page."""
    if "<!-- cli-reference -->" in markdown:
        markdown = markdown.replace("<!-- cli-reference -->", cli_reference())
    return _DEFAULTS.sub(lambda m: defaults_table(m.group(1)), markdown)


# -- the command line ----------------------------------------------------------------------


def cli_reference() -> str:
    """Every command of the ``adaptive-router`` app, as Markdown."""
    from adaptive_router.cli.app import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="adaptive-router")
    return "\n".join(_command(root, ctx, top=True))


# Typer's commands are Click commands (from the click package, or the copy recent Typer
# releases carry): read through Click's API, by duck typing rather than isinstance.
def _command(cmd: Any, ctx: Any, *, top: bool = False) -> list[str]:
    lines: list[str] = []
    if not top:
        lines += [f"## `{ctx.command_path}`", ""]
    lines += [_help(cmd), "", "```text", cmd.get_usage(ctx), "```", ""]
    params = [p for p in cmd.get_params(ctx) if p.name != "help"]
    if params:
        lines += ["| Argument or option | Help |", "|---|---|"]
        for param in params:
            name, text = _param(param, ctx)
            lines.append(f"| `{name}` | {_cell(text)} |")
        lines.append("")
    if hasattr(cmd, "list_commands"):  # a group
        for sub_name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, sub_name)
            if sub is not None and not sub.hidden:
                lines += _command(sub, sub.context_class(sub, info_name=sub_name, parent=ctx))
    return lines


def _help(cmd: Any) -> str:
    text = inspect.cleandoc(cmd.help or cmd.short_help or "")
    # Click's \b marks a paragraph it must not rewrap; Markdown needs no marker.
    return text.replace("\b\n", "")


def _param(param: Any, ctx: Any) -> tuple[str, str]:
    record = param.get_help_record(ctx)
    if record is None:  # a plain Click argument has no help of its own
        return param.name.upper(), "required" if param.required else ""
    return record[0], record[1]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# -- constructor defaults ------------------------------------------------------------------


def defaults_table(target: str) -> str:
    """A Markdown table of ``module.Class``'s constructor parameters and defaults."""
    module, _, name = target.rpartition(".")
    obj: Any = getattr(importlib.import_module(module), name)
    rows = ["| Parameter | Default |", "|---|---|"]
    for param in inspect.signature(obj).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = "required" if param.default is param.empty else f"`{_show(param.default)}`"
        rows.append(f"| `{param.name}` | {_cell(default)} |")
    return "\n".join(rows) + "\n"


def _show(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if inspect.isfunction(value) or inspect.isclass(value):
        return value.__qualname__
    return repr(value)
