"""The dashboard's data request on the 1,000,000-outcome database of the ``queries`` section.

Timed: :func:`adaptive_router.reports.summary` (per-path stats with latency p50/p95 and
error kinds, the cost report with retries and fallbacks, the traffic/success/spend time
series, posteriors per context) for one task over the last 7 and 30 days, the clock pinned
to the end of the data, p50 over ``REPS`` calls after a warm-up, on SQLite (the cached
database) and PostgreSQL (built in a throw-away schema). For comparison, an informational
row computes the same summary with the store's reads as they were before the rollups
(migration 0004: rows into Python, one GROUP BY for costs), with fewer repetitions.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from adaptive_router.outcomes import UNBILLED, ErrorKind, PathWindowStats
from adaptive_router.reports.summary import summary
from adaptive_router.stores import SQLStore
from adaptive_router.stores.aggregate import aggregate
from adaptive_router.stores.base import PathTotals, Store
from adaptive_router.stores.schema import outcomes
from adaptive_router.stores.series import SeriesCounts, bucket_rows
from benchmarks import queries
from benchmarks.common import Result, fmt_us, pct_us, pg_reachable, pg_schema, quiet_library_logs

SECTION = "dashboard"
TARGET_MS = 200.0
REPS = 25
ROW_REPS = 3
WINDOWS = ((7, "7d"), (30, "30d"))
_TIMEOUT = ErrorKind.TIMEOUT.value


class PreviousReadsStore(SQLStore):
    """The SQL store reading as it did before the rollups: the window's rows into Python
    for ``window_stats`` and the time series, one GROUP BY for ``path_totals``."""

    def window_stats(
        self, task: str, since: float, until: float | None = None, context: str | None = None
    ) -> list[PathWindowStats]:
        c = outcomes.c
        q = sa.select(
            c.path, c.attempt, c.success, c.error_kind, c.latency_ms, c.input_tokens,
            c.output_tokens, c.cost_usd, c.score,
        ).where(c.task == task, c.created_at >= since)  # fmt: skip
        if until is not None:
            q = q.where(c.created_at < until)
        if context is not None:
            q = q.where(c.context == context)
        with self.engine.connect() as conn:
            return aggregate(tuple(r) for r in conn.execute(q).all())

    def path_totals(
        self, task: str, since: float, until: float | None = None
    ) -> tuple[list[PathTotals], tuple[int, int, int]]:
        return previous_path_totals(self.engine, task, since, until)

    def series(
        self, task: str, since: float, until: float | None = None, bucket_s: float | None = None
    ) -> SeriesCounts | None:
        return bucket_rows(self.attempt_rows(task, since, until), bucket_s)


def previous_path_totals(
    engine: sa.Engine, task: str, since: float, until: float | None
) -> tuple[list[PathTotals], tuple[int, int, int]]:
    """The SQL GROUP BY of ``SQLStore.path_totals`` before the rollups (migration 0004)."""
    c = outcomes.c
    where = [c.task == task, c.created_at >= since]
    if until is not None:
        where.append(c.created_at < until)

    def count_if(cond: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

    per_path = (
        sa.select(
            c.path,
            sa.func.count(sa.distinct(c.request_id)),
            sa.func.count(),
            count_if(c.attempt == 1),
            count_if(c.attempt > 1),
            count_if(c.success),
            sa.func.coalesce(sa.func.sum(c.retries), 0),
            count_if(c.error_kind == _TIMEOUT),
            # NULL (unknown) when no attempt reported tokens: never shown as 0.
            sa.func.sum(c.input_tokens),
            sa.func.sum(c.output_tokens),
            sa.func.sum(c.cost_usd),
            # Rows written before unbilled failures were recorded as $0 have NULL there.
            count_if(c.cost_usd.is_not(None) | c.error_kind.in_(sorted(UNBILLED))),
            count_if(
                c.cost_usd.is_(None)
                & (c.error_kind.is_(None) | c.error_kind.not_in(sorted(UNBILLED)))
                & (c.input_tokens.is_not(None) | c.output_tokens.is_not(None))
            ),
        )
        .where(*where)
        .group_by(c.path)
    )
    totals = sa.select(
        sa.func.count(sa.distinct(c.request_id)),
        sa.func.count(sa.distinct(sa.case((c.success, c.request_id)))),
        sa.func.count(sa.distinct(sa.case((c.attempt > 1, c.request_id)))),
    ).where(*where)
    with engine.connect() as conn:
        rows = [
            # PostgreSQL returns SUM(bigint) as numeric (Decimal): normalise the types.
            PathTotals(
                str(r[0]),
                int(r[1]),
                int(r[2]),
                int(r[3]),
                int(r[4]),
                int(r[5]),
                int(r[6]),
                int(r[7]),
                None if r[8] is None else int(r[8]),
                None if r[9] is None else int(r[9]),
                None if r[10] is None else float(r[10]),
                int(r[11]),
                int(r[12]),
            )
            for r in conn.execute(per_path)
        ]
        t = conn.execute(totals).one()
    return rows, (int(t[0]), int(t[1]), int(t[2]))


def measure(url: str, label: str, quick: bool) -> list[Result]:
    """Rows for one database: the summary per window, and the row-by-row comparison."""
    reps = 5 if quick else REPS
    task = queries.task_name(0)
    out = []
    fast = SQLStore(url, create=False)
    slow = PreviousReadsStore(url, create=False)
    try:
        for days, name in WINDOWS:
            since = queries.END - days * 86_400.0

            def run(store: Store, since: float = since) -> object:
                return summary(store, task, since, queries.END, now=queries.END)

            s = summary(fast, task, since, queries.END, now=queries.END)
            rows = s.costs.attempts
            t = queries.time_ns(lambda: run(fast), reps)
            p50 = pct_us(t, 50)
            target = days == 7
            out.append(
                Result(
                    SECTION,
                    f"{label} summary(since={name})",
                    f"p50 ≤ {TARGET_MS:g} ms" if target else "—",
                    f"p50 {fmt_us(p50)} · p95 {fmt_us(pct_us(t, 95))}",
                    p50 <= TARGET_MS * 1000 if target else None,
                    f"{rows:,} attempts in window; {len(t)} runs; stats, costs, "
                    f"{len(s.series.starts)} buckets, posteriors",
                )
            )
            slow_t = queries.time_ns(lambda: run(slow), ROW_REPS if not quick else 1)
            out.append(
                Result(
                    SECTION,
                    f"{label} summary(since={name}), reads before rollups",
                    "—",
                    f"p50 {fmt_us(pct_us(slow_t, 50))}",
                    None,
                    f"{pct_us(slow_t, 50) / p50:.1f}× the rollup reads ({len(slow_t)} runs)",
                )
            )
    finally:
        fast.close()
        slow.close()
    return out


def run(quick: bool = False) -> list[Result]:
    """SQLite (the ``queries`` section's cached database) and PostgreSQL (built per run)."""
    quiet_library_logs()
    n = 50_000 if quick else 1_000_000
    path, _ = queries.cached_sqlite(n)
    results = measure(f"sqlite:///{path}", "SQLite", quick)
    if not pg_reachable():
        results.append(Result(SECTION, "PostgreSQL summary", "—", "—", None, "unreachable"))
        return results
    with pg_schema("dashboard") as url:
        queries.build_postgres(url, n)
        results += measure(url, "PostgreSQL", quick)
    return results
