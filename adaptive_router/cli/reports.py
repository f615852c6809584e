"""The ``costs`` and ``plot`` commands of ``adaptive-router``.

Attached with :func:`register`; the helpers (``--db`` resolution, read-only store,
``--since`` parsing, one-line errors) come from :mod:`adaptive_router.cli.common`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

import adaptive_router.cli.common as common

if TYPE_CHECKING:
    from adaptive_router.reports import CostReport, PathCost

__all__ = ["costs", "plot", "register"]

SinceOption = Annotated[
    str, typer.Option("--since", help="Window: 30s, 15m, 1h, 2d, 1w (back from now).")
]


def _tokens(value: int | None) -> str:
    return "unknown" if value is None else f"{value:,}"


def _usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    # Per-request figures are fractions of a cent: keep significant digits visible.
    return f"{value:,.4f}" if value >= 0.01 or value == 0 else f"{value:.6f}"


def _window(since: str) -> float:
    try:
        return common.parse_duration(since).total_seconds()
    except ValueError as exc:
        raise common.CLIError(str(exc), 2) from None


def _path_row(p: PathCost) -> list[str]:
    return [
        p.path,
        str(p.requests),
        str(p.attempts),
        str(p.fallback_attempts),
        str(p.retries),
        _tokens(p.input_tokens),
        _tokens(p.output_tokens),
        _usd(p.cost_usd),
        _usd(p.cost_per_request),
        _usd(p.cost_per_1000_requests),
        str(p.unknown_cost_attempts),
    ]


def _total_row(r: CostReport) -> list[str]:
    return [
        "total",
        str(r.requests),
        str(r.attempts),
        str(r.fallback_attempts),
        str(r.retries),
        _tokens(r.input_tokens),
        _tokens(r.output_tokens),
        _usd(r.cost_usd),
        _usd(r.cost_per_request),
        _usd(r.cost_per_1000_requests),
        str(r.unknown_cost_attempts),
    ]


def _unknown_reasons(r: CostReport) -> list[str]:
    """Why attempts have no known cost, from what the outcomes recorded."""
    reasons = []
    if r.unpriced_token_attempts:
        reasons.append(
            f"{r.unpriced_token_attempts} reported token counts but have no price (their "
            "model is not in the price table, or the path names no model); give prices "
            "with Router(prices={model: (input, output USD per million tokens)})"
        )
    rest = r.unknown_cost_attempts - r.unpriced_token_attempts
    if rest:
        reasons.append(
            f"{rest} reported no usage (no token counts or cost: a path that returns no "
            "Result(usage=...) and declares no Path(cost_usd=...), or a client-side "
            "timeout the provider may still bill)"
        )
    return reasons


def costs(
    db: common.DbOption,
    task: common.TaskOption,
    since: SinceOption = "24h",
    json_out: common.JsonOption = False,
) -> None:
    """Spend per path: tokens, attempts (retries and fallbacks included), cost per request
    and per 1,000 requests. Attempts of unknown cost are counted apart, never as $0."""
    # The library loads with the command, not with the command line's --help.
    from adaptive_router.reports import cost_report

    with common.one_line_errors(db):
        window = _window(since)
        url = common.resolve_url(db, must_exist=True)
        with common.open_store(url) as store:
            start = time.time() - window
            report = cost_report(store, task, start)
            if not report.requests and task not in store.tasks():
                raise common.unknown_task(store, task, url)
    if json_out:
        common.print_json(report.to_dict())
        return
    if not report.requests:
        common.console_out().print(
            f"no outcomes for task {escape(task)} since {common.utc_time(start)}"
        )
        return
    caption = (
        "spend counts every attempt, retries and fallbacks included; per-request figures "
        f"divide by the task's {report.requests} requests, so the paths' figures add up to "
        "the total. A path's 'requests touched' are those it was attempted in, first or as "
        "a fallback, so they add up to more than the total when requests fall back. "
        "Failures with no billable answer (error status, refused connection) cost $0"
    )
    if report.unknown_cost_attempts:
        caption += (
            ". No attempt has a known cost"
            if report.cost_usd is None
            else f". {report.unknown_cost_attempts} of {report.attempts} attempts have no "
            "known cost, not counted as $0, so the spend is a lower bound"
        )
        caption += ": " + "; ".join(_unknown_reasons(report))
    table = common.make_table(
        f"costs · task {task} · since {common.utc_time(start)} ({since})",
        (
            "path",
            "requests\ntouched",
            "attempts",
            "fallback\nattempts",
            "retries",
            "input\ntokens",
            "output\ntokens",
            "spend\nUSD",
            "USD per\nrequest",
            "USD per\n1,000 req",
            "unknown-cost\nattempts",
        ),
        [_path_row(p) for p in report.paths],
        caption=caption,
    )
    table.add_section()
    table.add_row(*_total_row(report), style="bold")
    common.console_out().print(table)


def plot(
    db: common.DbOption,
    task: common.TaskOption,
    since: SinceOption = "24h",
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.")] = Path(
        "adaptive_router_report.png"
    ),
    bucket: Annotated[
        str | None,
        typer.Option("--bucket", help="Time bucket (e.g. 1m, 15m, 1h); chosen if not given."),
    ] = None,
) -> None:
    """Draw traffic share, success rate and cost per path over time into a PNG."""
    from adaptive_router.reports import PlotUnavailableError, plot_report

    with common.one_line_errors(db):
        window = _window(since)
        try:
            bucket_s = common.parse_duration(bucket).total_seconds() if bucket else None
        except ValueError as exc:
            raise common.CLIError(str(exc).replace("--since", "--bucket"), 2) from None
        if not out.parent.is_dir():
            raise common.CLIError(f"--out: directory {out.parent} does not exist", 2)
        url = common.resolve_url(db, must_exist=True)
        with common.open_store(url) as store:
            start = time.time() - window
            try:
                written = plot_report(store, task, start, out, bucket_s=bucket_s)
            except ValueError:
                if task not in store.tasks():
                    raise common.unknown_task(store, task, url) from None
                raise common.CLIError(
                    f"no outcomes for task {task!r} since {common.utc_time(start)}; widen --since",
                    1,
                ) from None
            except PlotUnavailableError as exc:
                raise common.CLIError(str(exc), 1) from None
    common.console_out().print(f"wrote {escape(str(written))}")


def register(app: typer.Typer) -> None:
    """Add ``costs`` and ``plot`` to ``app`` (idempotent)."""
    names = {c.name for c in app.registered_commands}
    if "costs" not in names:
        app.command("costs")(costs)
    if "plot" not in names:
        app.command("plot")(plot)
