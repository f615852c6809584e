"""The dashboard's data request on the 1,000,000-outcome database of the ``queries`` section.

Timed: :func:`adaptive_router.reports.summary` (per-path stats with latency p50/p95 and
error kinds, the cost report with retries and fallbacks, the traffic/success/spend time
series, posteriors per context) for one task over the last 7 and 30 days, the clock pinned
to the end of the data, p50 over ``REPS`` calls after a warm-up, on SQLite (the cached
database) and PostgreSQL (built in a throw-away schema). For comparison, an informational
row computes the same summary row by row (the Store contract's Python defaults over the
outcome rows, what a store without rollups does) with fewer repetitions.
"""

from __future__ import annotations

from adaptive_router.outcomes import PathWindowStats
from adaptive_router.reports.summary import summary
from adaptive_router.stores import SQLStore
from adaptive_router.stores.aggregate import aggregate
from adaptive_router.stores.base import PathTotals, Store, totals_from_outcomes
from adaptive_router.stores.series import SeriesCounts, bucket_rows
from benchmarks import queries
from benchmarks.common import Result, fmt_us, pct_us, pg_reachable, pg_schema, quiet_library_logs

SECTION = "dashboard"
TARGET_MS = 200.0
REPS = 25
ROW_REPS = 3
WINDOWS = ((7, "7d"), (30, "30d"))


class RowByRowStore(SQLStore):
    """The SQL store read without its rollups: every window's rows into Python."""

    def window_stats(
        self, task: str, since: float, until: float | None = None, context: str | None = None
    ) -> list[PathWindowStats]:
        return aggregate(
            (o.path, o.attempt, o.success, o.kind, o.latency_ms, o.input_tokens,
             o.output_tokens, o.cost_usd, o.score)
            for o in self.outcomes(task, since)
            if (until is None or o.created_at < until) and (context is None or o.context == context)
        )  # fmt: skip

    def path_totals(
        self, task: str, since: float, until: float | None = None
    ) -> tuple[list[PathTotals], tuple[int, int, int]]:
        return totals_from_outcomes(self.outcomes(task, since), until)

    def series(
        self, task: str, since: float, until: float | None = None, bucket_s: float | None = None
    ) -> SeriesCounts | None:
        return bucket_rows(Store.attempt_rows(self, task, since, until), bucket_s)


def measure(url: str, label: str, quick: bool) -> list[Result]:
    """Rows for one database: the summary per window, and the row-by-row comparison."""
    reps = 5 if quick else REPS
    task = queries.task_name(0)
    out = []
    fast = SQLStore(url, create=False)
    slow = RowByRowStore(url, create=False)
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
                    f"{label} summary(since={name}) row by row",
                    "—",
                    f"p50 {fmt_us(pct_us(slow_t, 50))}",
                    None,
                    f"without rollups: {pct_us(slow_t, 50) / p50:.0f}× the rollup reads "
                    f"({len(slow_t)} runs)",
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
