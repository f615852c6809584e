"""The ``adaptive-router`` command: the Typer app, its commands attached, and ``main``.

Thin by design: every number comes from the library. Each group of commands lives in a
module of its own and shares :mod:`adaptive_router.cli.common`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.logging import RichHandler

import adaptive_router.cli.check as check
import adaptive_router.cli.dashboard as dashboard
import adaptive_router.cli.evaluate as evaluate
import adaptive_router.cli.posteriors as posteriors
import adaptive_router.cli.reports as reports
import adaptive_router.cli.runs as runs
from adaptive_router.cli.common import console_err
from adaptive_router.cli.db import db_app

app = typer.Typer(
    name="adaptive-router",
    help="Outcome-based adaptive routing: inspect what the router learned, run the demo.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback's locals would include the database URL, password and all.
    pretty_exceptions_show_locals=False,
)
# Registration order is the order `--help` lists them.
reports.register(app)
for command in (
    posteriors.posteriors,
    posteriors.stats,
    evaluate.evaluate,
    runs.demo,
    check.check,
    runs.simulate,
):
    app.command()(command)
app.command()(dashboard.dashboard)
app.add_typer(db_app, name="db")


@app.callback()
def _root(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="-v: warnings, -vv: info logs.")
    ] = 0,
) -> None:
    """Outcome-based adaptive routing: inspect what the router learned, run the demo."""
    # Only when nobody configured logging (a plain command-line run): an embedding
    # application or a test runner keeps its own set-up. Errors only by default, as the
    # expected per-request warnings (a path failed, fell back) would drown the output.
    if not logging.getLogger().handlers:
        level = {0: logging.ERROR, 1: logging.WARNING}.get(verbose, logging.INFO)
        handler = RichHandler(console=console_err(), show_path=False)
        logging.basicConfig(level=level, format="%(message)s", handlers=[handler])


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``adaptive-router``)."""
    app(args=list(argv) if argv is not None else None, prog_name="adaptive-router")
