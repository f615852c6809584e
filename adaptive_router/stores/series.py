"""Time buckets of a task's attempts: the counts behind traffic, success and spend over time.

Each request, with all its attempts, falls in the bucket where it *started* (its first
attempt's finish time minus that attempt's latency), so slow retries are not drawn after
the fact. Buckets are aligned to multiples of their width and span the first to the last
request start in the window. :func:`bucket_rows` computes them from attempt rows; the SQL
store computes the same counts from its hourly rollups (see ``stores.rollup_reads``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

#: Bucket widths a series may use (seconds): the smallest giving at most MAX_BUCKETS buckets.
NICE_WIDTHS = (
    *(1, 5, 10, 15, 30),
    *(60 * m for m in (1, 2, 5, 10, 15, 30)),
    *(3600 * h for h in (1, 2, 3, 6, 12, 24)),
    7 * 86400,
)
MAX_BUCKETS = 60


class AttemptRow(NamedTuple):
    """One attempt as a time series sees it: ``created_at`` is when the attempt finished."""

    path: str
    attempt: int
    success: bool
    cost_usd: float | None
    created_at: float
    request_id: str
    latency_ms: float | None


def bucket_width(span: float) -> float:
    """The smallest nice width that draws ``span`` seconds in at most ``MAX_BUCKETS``."""
    for width in NICE_WIDTHS:
        if span / width <= MAX_BUCKETS:
            return float(width)
    return float(math.ceil(span / MAX_BUCKETS))


def request_start(finished: float, latency_ms: float | None) -> float:
    """When an attempt began: its finish time minus its latency (0 when unknown)."""
    return finished - (latency_ms or 0.0) / 1000.0


@dataclass(slots=True)
class SeriesCounts:
    """Per-path counts per bucket; bucket ``i`` starts at ``base + i * width``."""

    width: float
    base: float
    n: int
    paths: tuple[str, ...]
    requests: list[int]
    """Requests per bucket (counted by their first attempt)."""
    first: dict[str, list[int]]
    tried: dict[str, list[int]]
    won: dict[str, list[int]]
    spend: dict[str, list[float]]
    priced: dict[str, list[int]]
    unknown: int
    """Attempts of unknown cost in the whole window."""


def layout(t0: float, t1: float, bucket_s: float | None) -> tuple[float, float, int]:
    """``(width, base, n)`` for request starts from ``t0`` to ``t1``."""
    width = float(bucket_s) if bucket_s else bucket_width(max(t1 - t0, 1.0))
    if not (width > 0 and math.isfinite(width)):
        raise ValueError(f"bucket_s must be a positive number of seconds, got {bucket_s!r}")
    # Buckets are aligned to multiples of the width, so the ticks land on round times.
    base = math.floor(t0 / width) * width
    return width, base, int((t1 - base) // width) + 1


def empty_counts(width: float, base: float, n: int, paths: Iterable[str]) -> SeriesCounts:
    """All-zero counts for the given layout and paths."""
    ps = tuple(sorted(set(paths)))
    return SeriesCounts(
        width,
        base,
        n,
        ps,
        [0] * n,
        {p: [0] * n for p in ps},
        {p: [0] * n for p in ps},
        {p: [0] * n for p in ps},
        {p: [0.0] * n for p in ps},
        {p: [0] * n for p in ps},
        0,
    )


def add_attempt(
    c: SeriesCounts,
    path: str,
    start: float,
    attempt: int,
    success: bool,
    cost: float | None,
    sign: int = 1,
) -> None:
    """Count one attempt of a request that started at ``start`` (``sign=-1`` takes it back)."""
    i = min(int((start - c.base) // c.width), c.n - 1)
    c.tried[path][i] += sign
    c.won[path][i] += sign * bool(success)
    if attempt == 1:
        c.first[path][i] += sign
        c.requests[i] += sign
    if cost is None:
        c.unknown += sign
    else:
        c.spend[path][i] += sign * cost
        c.priced[path][i] += sign


def request_starts(rows: Iterable[AttemptRow]) -> dict[str, float]:
    """Each request's start: the earliest start of its attempts among ``rows``.

    Outcomes are stamped when an attempt finishes; bucketing by that would move a slow,
    retrying attempt into a later bucket than the request it belongs to (a path whose
    breaker opened would seem to keep its traffic while its last retries drain).
    """
    starts: dict[str, float] = {}
    for r in rows:
        began = request_start(r.created_at, r.latency_ms)
        if began < starts.get(r.request_id, math.inf):
            starts[r.request_id] = began
    return starts


def bucket_rows(rows: Sequence[AttemptRow], bucket_s: float | None) -> SeriesCounts | None:
    """The series counts of a window's attempt rows; None when there are none."""
    if not rows:
        return None
    starts = request_starts(rows)
    width, base, n = layout(min(starts.values()), max(starts.values()), bucket_s)
    c = empty_counts(width, base, n, (r.path for r in rows))
    for r in rows:
        add_attempt(c, r.path, starts[r.request_id], r.attempt, r.success, r.cost_usd)
    return c
