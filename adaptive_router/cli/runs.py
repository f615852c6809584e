"""``demo`` and ``simulate``: the commands that run something rather than read a database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from adaptive_router._imports import install_hint, require
from adaptive_router.cli.common import (
    CLIError,
    console_err,
    console_out,
    one_line_errors,
    open_store,
    resolve_url,
)
from adaptive_router.demo import defaults


def demo(
    db: Annotated[
        str, typer.Option("--db", help="SQLite file for the demo's outcomes (deleted first).")
    ] = defaults.DEFAULT_DB,
    requests: Annotated[
        int | None,
        typer.Option(
            "--requests",
            help=f"Number of requests (default {defaults.DEFAULT_REQUESTS}, "
            f"{defaults.DEFAULT_LIVE_REQUESTS} with --live).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = (
        defaults.DEFAULT_SEED
    ),
    table: Annotated[
        bool, typer.Option("--table/--no-table", help="Show the live table while it runs.")
    ] = True,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Call the real OpenAI and Anthropic APIs (needs OPENAI_API_KEY and "
            "ANTHROPIC_API_KEY; costs a little) instead of the built-in fake provider.",
        ),
    ] = False,
) -> None:
    """Route order extraction between GPT-4o, Claude and a regex while GPT-4o degrades.

    Both models are real SDK paths served by a local fake provider (no keys, no network);
    halfway through GPT-4o starts failing, and the live table shows retries, the breaker
    opening and traffic moving to Claude.
    """
    # The demo (the router, the SDKs, the fake provider) loads with the command, not with
    # the command line's --help, which reads the defaults above only.
    with one_line_errors(db):
        # Its two model paths are real SDK clients: say which extras, before it starts.
        require("openai", "openai", "The demo")
        require("anthropic", "anthropic", "The demo")
        from adaptive_router import demo as demo_mod
        from adaptive_router.reports import PlotUnavailableError, plot_report

        demo_mod.run_with_display(console_out(), db, requests, seed, table=table, live=live)
        png = Path(db).with_suffix(".png")
        with open_store(resolve_url(db, must_exist=True)) as store:
            try:
                plot_report(store, demo_mod.TASK, 0.0, png)
            except PlotUnavailableError:  # matplotlib is an optional extra: the demo ran
                console_out().print(escape("PNG report skipped: " + install_hint("plot", "it")))
                return
        console_out().print(f"Traffic share, success rate and cost over time: {png}")


def simulate(
    experiment: Annotated[
        str, typer.Argument(help="chapelle_li, cost_aware, degradation, half_life_sweep or peers.")
    ],
    horizon: Annotated[int | None, typer.Option("--horizon", help="Requests per run.")] = None,
    runs: Annotated[int | None, typer.Option("--runs", help="Independent runs.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = 0,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Folder for the .md and .png (default simulations/results/ when the current "
            "directory has one, as a checkout does, else results/).",
        ),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A CI-sized run of seconds.")] = False,
) -> None:
    """Run an offline experiment on the simulator; writes a markdown table and a PNG."""
    # Imported here: the simulator (numpy engine, numba kernel) is not needed by other commands.
    from adaptive_router.simulation.experiments import EXPERIMENTS

    with one_line_errors(None):
        # Said before the runs, not after them: every experiment draws its PNG.
        require("matplotlib", "plot", "adaptive-router simulate")
        if experiment not in EXPERIMENTS:
            raise CLIError(
                f"unknown experiment {experiment!r}; choose from {', '.join(EXPERIMENTS)}", 2
            )
        for name, value in (("--horizon", horizon), ("--runs", runs)):
            if value is not None and value < 1:
                raise CLIError(f"{name} must be >= 1", 2)
        from rich.progress import Progress

        with Progress(console=console_err(), transient=True) as bar:
            tasks: dict[str, Any] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            md = EXPERIMENTS[experiment](
                quick=quick,
                seed=seed,
                horizon=horizon,
                runs=runs,
                out=None if out is None else Path(out),
                progress=progress,
            )
    console_out().print(f"wrote {md} and {Path(md).with_suffix('.png')}")
    console_out().print(Path(md).read_text())
