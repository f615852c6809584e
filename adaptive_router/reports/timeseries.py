"""Traffic, success and spend over time: bucketed series and the PNG report.

Plotting needs the optional ``matplotlib`` (``pip install 'adaptive-router[plot]'``); it is
imported only when a plot is drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path as FilePath

from adaptive_router._imports import install_hint
from adaptive_router.stores.base import Store

__all__ = ["PlotUnavailableError", "TimeSeries", "plot_report", "time_series"]


class PlotUnavailableError(RuntimeError):
    """Plotting was asked for without matplotlib (the ``plot`` extra) installed."""


@dataclass(frozen=True, slots=True)
class TimeSeries:
    """Per-path figures per time bucket (``starts`` are the buckets' start times)."""

    task: str
    bucket_s: float
    starts: tuple[float, ...]
    paths: tuple[str, ...]
    requests: tuple[int, ...]
    """Requests per bucket (counted by their first attempt)."""
    first_share: dict[str, tuple[float, ...]]
    """Share of each bucket's requests whose first attempt went to the path (0 if none)."""
    attempts: dict[str, tuple[int, ...]]
    success_rate: dict[str, tuple[float, ...]]
    """Attempt success rate; NaN in buckets where the path was not attempted."""
    cost_usd: dict[str, tuple[float, ...]]
    """Known spend per bucket; NaN where the path had attempts but no known cost."""
    unknown_cost_attempts: int


def time_series(
    store: Store,
    task: str,
    since: float,
    until: float | None = None,
    bucket_s: float | None = None,
) -> TimeSeries:
    """Bucket the task's outcomes in time; the bucket width is chosen if not given.

    Each request, with all its attempts, falls in the bucket where it *started* (its first
    attempt's finish time minus that attempt's latency), so slow retries are not drawn
    after the fact. The buckets span the first to the last request start in the window
    (not the whole window), so a short burst of traffic in a long window is still drawn in
    detail.
    """
    c = store.series(task, since, until, bucket_s)
    if c is None:
        return TimeSeries(task, bucket_s or 60.0, (), (), (), {}, {}, {}, {}, 0)
    n, paths, requests = c.n, c.paths, c.requests
    first, tried, won, spend, priced = c.first, c.tried, c.won, c.spend, c.priced
    nan = math.nan
    return TimeSeries(
        task=task,
        bucket_s=c.width,
        starts=tuple(c.base + i * c.width for i in range(n)),
        paths=paths,
        requests=tuple(requests),
        first_share={
            p: tuple(first[p][i] / requests[i] if requests[i] else 0.0 for i in range(n))
            for p in paths
        },
        attempts={p: tuple(tried[p]) for p in paths},
        success_rate={
            p: tuple(won[p][i] / tried[p][i] if tried[p][i] else nan for i in range(n))
            for p in paths
        },
        cost_usd={
            p: tuple(
                spend[p][i] if priced[p][i] else (nan if tried[p][i] else 0.0) for i in range(n)
            )
            for p in paths
        },
        unknown_cost_attempts=c.unknown,
    )


def _width_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def plot_report(
    store: Store,
    task: str,
    since: float,
    out_path: str | FilePath,
    until: float | None = None,
    bucket_s: float | None = None,
) -> FilePath:
    """Draw traffic share, success rate and cost per path over time into a PNG.

    Three panels sharing a UTC time axis: the share of requests whose *first* attempt went
    to each path (stacked, so a traffic shift reads as one colour giving way to another),
    each path's attempt success rate, and each path's known spend per bucket. Raises
    ``ValueError`` when the window holds no outcomes, :class:`PlotUnavailableError` (a
    ``RuntimeError``) when matplotlib is not installed. Returns the file written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailableError(install_hint("plot", "Plotting")) from None
    ts = time_series(store, task, since, until, bucket_s)
    if not ts.starts:
        raise ValueError(f"no outcomes for task {task!r} since {_utc(since):%Y-%m-%d %H:%M} UTC")
    # The figure API with an explicit Agg canvas: no pyplot global state, no GUI backend,
    # safe from any thread.
    fig = Figure(figsize=(11, 9), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    share_ax, rate_ax, cost_ax = fig.subplots(3, 1, sharex=True)
    colors = {p: f"C{i % 10}" for i, p in enumerate(ts.paths)}
    # Points at bucket centres: a bucket's figure describes its whole width.
    x = [_utc(t + ts.bucket_s / 2) for t in ts.starts]

    share_ax.stackplot(
        x,
        [ts.first_share[p] for p in ts.paths],
        labels=list(ts.paths),
        colors=[colors[p] for p in ts.paths],
        alpha=0.85,
        step="mid",
    )
    share_ax.set_ylim(0, 1)
    share_ax.set_ylabel("traffic share\n(first attempts)")
    share_ax.yaxis.set_major_formatter("{x:.0%}")
    share_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")

    for p in ts.paths:
        rate_ax.plot(x, ts.success_rate[p], marker=".", color=colors[p], label=p)
    rate_ax.set_ylim(-0.02, 1.02)
    rate_ax.set_ylabel("success rate\n(per attempt)")
    rate_ax.yaxis.set_major_formatter("{x:.0%}")
    rate_ax.grid(alpha=0.3)

    # Paths that never cost anything known (a regex fallback) would only draw a line at 0.
    spenders = [p for p in ts.paths if any(v > 0 for v in ts.cost_usd[p] if not math.isnan(v))]
    if spenders:
        for p in spenders:
            cost_ax.plot(x, ts.cost_usd[p], marker=".", color=colors[p], label=p)
        cost_ax.set_ylim(bottom=0)
    else:
        cost_ax.text(
            0.5,
            0.5,
            "no cost recorded: these paths report no tokens or cost",
            transform=cost_ax.transAxes,
            ha="center",
            va="center",
            color="0.4",
        )
        cost_ax.set_yticks([])
    cost_ax.set_ylabel(f"spend (USD)\nper {_width_text(ts.bucket_s)}")
    cost_ax.grid(alpha=0.3)
    if ts.unknown_cost_attempts:
        cost_ax.annotate(
            f"{ts.unknown_cost_attempts} attempts of unknown cost not included",
            xy=(0.0, -0.32),
            xycoords="axes fraction",
            fontsize="small",
            color="0.4",
        )
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    cost_ax.xaxis.set_major_locator(locator)
    cost_ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    cost_ax.set_xlabel("time (UTC)")
    total = sum(ts.requests)
    fig.suptitle(
        f"{task} · {total} requests · {_utc(ts.starts[0]):%Y-%m-%d %H:%M} to "
        f"{_utc(ts.starts[-1] + ts.bucket_s):%Y-%m-%d %H:%M} UTC · "
        f"buckets of {_width_text(ts.bucket_s)}"
    )
    out = FilePath(out_path)
    fig.savefig(out, format="png")
    return out
