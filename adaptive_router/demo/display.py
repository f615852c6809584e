"""The demo on a console: the live table, the summary, and :func:`run_with_display`."""

from __future__ import annotations

import math

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from adaptive_router.demo.run import (
    run_demo,
)
from adaptive_router.demo.scenario import (
    DEFAULT_DB,
    DEFAULT_SEED,
    DEGRADED,
    FALLBACK,
    MODELS,
    SHIFT_THRESHOLD,
    SHIFT_WINDOW,
    TASK,
)
from adaptive_router.demo.summary import (
    DemoProgress,
    DemoSummary,
)

# -- rendering -------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.0%}"


_BREAKER_STYLE = {"open": "bold red", "half_open": "yellow", "closed": "green"}


def progress_table(p: DemoProgress) -> Table:
    """The live table: per path, trailing-window traffic, success, retries, breaker state."""
    degraded = p.done > p.drop_at
    how = "failing on purpose" if p.live else "degraded"
    phase = (
        f"[red]{DEGRADED} {how} since request {p.drop_at + 1}[/]"
        if degraded
        else f"[green]all paths healthy; {DEGRADED} degrades at request {p.drop_at + 1}[/]"
    )
    source = "real APIs" if p.live else "fake provider"
    table = Table(
        title=f"{TASK} · {source} · request {p.done}/{p.total}\n{phase}",
        caption=(
            f"first attempts, tries, ok rate and retries over the last {p.window} requests; "
            "post. mean = first-attempt posterior mean · totals: "
            f"{_pct(p.success_rate)} of requests succeeded, {p.attempts} attempts, "
            f"{p.retries} retries, {p.http_calls} API calls, "
            f"{p.input_tokens:,}+{p.output_tokens:,} tokens, ${p.cost_usd:.4f}"
        ),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("path", overflow="fold", min_width=10)
    table.add_column("API\nok now", justify="right")
    table.add_column("first\nattempts", justify="left", no_wrap=True)
    table.add_column("tries", justify="right")
    table.add_column("ok", justify="right")
    table.add_column("retries", justify="right")
    table.add_column("breaker", justify="center")
    table.add_column("post.\nmean", justify="right")
    for row in p.paths:
        share = row.first_attempt_share
        bar = "█" * round(share * 8)
        style = "red" if row.name == DEGRADED and degraded else None
        if row.name == FALLBACK:
            rate = "—"
        elif row.true_rate is None:
            rate = "?"
        else:
            rate = _pct(row.true_rate)
        table.add_row(
            Text(row.name, style=style or ""),
            rate,
            f"{share:>4.0%} {bar}",
            str(row.attempts),
            _pct(row.success_rate),
            str(row.retries),
            Text(row.breaker.replace("_", "-"), style=_BREAKER_STYLE.get(row.breaker, "dim")),
            "—" if math.isnan(row.posterior_mean) else f"{row.posterior_mean:.3f}",
        )
    return table


def print_summary(console: Console, s: DemoSummary) -> None:
    """The end-of-run report: success rate, traffic share per phase, time to shift, totals."""
    phases = Table(title="share of first attempts per phase")
    phases.add_column("path", no_wrap=True)
    for ph in s.phases:
        phases.add_column(f"{ph.label}\nrequests {ph.start + 1}–{ph.end}", justify="right")
    for name in s.paths:
        phases.add_row(name, *(_pct(ph.share(name)) for ph in s.phases))
    phases.add_row(
        Text("(requests succeeded)", style="bold"),
        *(_pct(ph.success_rate) for ph in s.phases),
    )
    what = "started failing" if s.live else f"dropped to {MODELS[0].after:.0%} API success"
    if s.requests_to_shift is None:
        shift = Text(
            f"{DEGRADED} kept ≥ {SHIFT_THRESHOLD:.0%} of first attempts after the drop",
            style="red",
        )
    else:
        shift = Text.assemble(
            f"{DEGRADED} {what} at request {s.drop_at + 1}; ",
            (f"{s.requests_to_shift} requests", "bold green"),
            f" later it had under {SHIFT_THRESHOLD:.0%} of first attempts "
            f"(over the next {SHIFT_WINDOW} requests).",
        )
    time_note = "real time" if s.live else "simulated time"
    console.print(
        Text.assemble(
            f"{s.requests} requests in {s.elapsed_s:.1f} s (seed {s.seed}, half-life "
            f"{s.half_life_s:g} s of {time_note}): ",
            (f"{s.success_rate:.1%} succeeded", "bold"),
            f", {s.attempts_per_request:.2f} attempts per request.",
        )
    )
    console.print(phases)
    console.print(shift)
    opened = ", ".join(f"{name} {n}×" for name, n in sorted(s.breaker_opened.items()))
    calls = ", ".join(f"{name} {n}" for name, n in s.http_calls.items())
    console.print(
        f"Totals: {s.attempts} attempts, {s.retries} retries, API calls: {calls or 'none'}; "
        f"breakers opened: {opened or 'never'}; tokens {s.input_tokens:,} in / "
        f"{s.output_tokens:,} out, ${s.cost_usd:.4f}"
        + (" (at list prices; no money was spent)." if not s.live else "."),
        highlight=False,
    )
    if s.db_path is not None:
        url = f"sqlite:///{s.db_path}"
        console.print(f"Outcomes are in {s.db_path}. Inspect them:")
        # soft_wrap: commands meant for copy and paste must not be broken across lines.
        for command in (
            f"adaptive-router posteriors --db {url} --task {TASK}",
            f"adaptive-router stats --db {url} --task {TASK} --since 10m",
        ):
            console.print(f"  {command}", soft_wrap=True, highlight=False, markup=False)


def run_with_display(
    console: Console,
    db: str | None = DEFAULT_DB,
    requests: int | None = None,
    seed: int = DEFAULT_SEED,
    *,
    table: bool = True,
    delay_s: float | None = None,
    live: bool = False,
) -> DemoSummary:
    """Run the demo, with a live table when ``table``, then print the summary.

    ``delay_s`` defaults to a pace that lets a person follow the live table (about
    8 seconds more for 2,000 requests) and to no delay without it. ``live`` calls the
    real APIs (see :func:`run_demo`).
    """
    if delay_s is None:
        delay_s = 0.004 if table and console.is_terminal and not live else 0.0
    if not table:
        summary = run_demo(db, requests, seed, delay_s=delay_s, live=live)
    else:
        with Live(console=console, refresh_per_second=12, transient=False) as display:

            def show(p: DemoProgress) -> None:
                display.update(progress_table(p))

            summary = run_demo(
                db,
                requests,
                seed,
                on_progress=show,
                delay_s=delay_s,
                live=live,
                progress_every=1 if live else 10,
            )
        if not console.is_terminal:
            # Off a terminal, Live prints its last frame without ending the line.
            console.line()
    print_summary(console, summary)
    return summary
