"""Writing the hourly ``outcome_rollups``: increments for new outcome rows, the upsert that
adds them, and the backfill from existing rows (migration 0008, benchmark databases).

Every value column is a sum (or the minimum start), so upserts from concurrent writers
commute and the totals are exact whatever the interleaving; the increments are computed from
exactly the rows an insert added, in the same transaction, so a retried batch never counts
twice (the same rule as ``path_stats``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from adaptive_router.outcomes import Outcome
from adaptive_router.stores.schema import ROLLUP_S, rollups
from adaptive_router.stores.series import request_start

KEY = ("task", "context", "path", "hour", "start_hour", "success", "error_kind")
SUMS = (
    "attempts",
    "first_attempts",
    "later_attempts",
    "retries",
    "input_tokens",
    "input_known",
    "output_tokens",
    "output_known",
    "cost_usd",
    "cost_known",
    "tokens_no_cost",
    "score_sum",
    "scored",
    "cache_read_tokens",
    "cache_read_known",
    "cache_write_tokens",
    "cache_write_known",
)


def hour_of(t: float) -> float:
    """The start of the rollup bucket holding time ``t`` (floor division: exact)."""
    return t // ROLLUP_S * ROLLUP_S


def increments(new: Sequence[Outcome]) -> list[dict[str, Any]]:
    """One parameter set per rollup key the rows touch, in key order (a fixed lock order
    across processes rules out deadlocks between batches)."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for o in new:
        start = request_start(o.created_at, o.latency_ms)
        key = (
            o.task,
            o.context,
            o.path,
            hour_of(o.created_at),
            hour_of(start),
            bool(o.success),
            o.kind or "",
        )
        acc = groups.get(key)
        if acc is None:
            acc = groups[key] = dict.fromkeys(SUMS, 0)
            acc.update(zip(KEY, key, strict=True))
            acc["cost_usd"] = acc["score_sum"] = 0.0
            acc["min_start"] = start
        acc["attempts"] += 1
        acc["first_attempts"] += o.attempt == 1
        acc["later_attempts"] += o.attempt > 1
        acc["retries"] += o.retries
        if o.input_tokens is not None:
            acc["input_tokens"] += o.input_tokens
            acc["input_known"] += 1
        if o.output_tokens is not None:
            acc["output_tokens"] += o.output_tokens
            acc["output_known"] += 1
        if o.cost_usd is not None:
            acc["cost_usd"] += o.cost_usd
            acc["cost_known"] += 1
        elif o.input_tokens is not None or o.output_tokens is not None:
            acc["tokens_no_cost"] += 1
        if o.score is not None:
            acc["score_sum"] += o.score
            acc["scored"] += 1
        if o.cache_read_tokens is not None:
            acc["cache_read_tokens"] += o.cache_read_tokens
            acc["cache_read_known"] += 1
        if o.cache_write_tokens is not None:
            acc["cache_write_tokens"] += o.cache_write_tokens
            acc["cache_write_known"] += 1
        acc["min_start"] = min(acc["min_start"], start)
    return [groups[k] for k in sorted(groups)]


def usage_change(old: Outcome, new: Outcome) -> dict[str, Any]:
    """The increment that turns ``old``'s contribution into ``new``'s, for an outcome whose
    usage was rewritten (:meth:`Store.update_usage`): same key, so one upsert applies it."""
    (before,), (after,) = increments([old]), increments([new])
    change = dict(after)
    for name in SUMS:
        change[name] = after[name] - before[name]
    return change


def build_upsert(insert: Callable[[sa.Table], Any]) -> Any:
    """``INSERT .. ON CONFLICT (key) DO UPDATE`` adding the increments (dialect's insert)."""
    stmt = insert(rollups)
    c, ex = rollups.c, stmt.excluded
    set_: dict[str, Any] = {name: c[name] + ex[name] for name in SUMS}
    set_["min_start"] = sa.case((ex.min_start < c.min_start, ex.min_start), else_=c.min_start)
    return stmt.on_conflict_do_update(index_elements=list(KEY), set_=set_)


def backfill_sql(dialect: str) -> str:
    """``INSERT .. SELECT`` summing every existing outcome row into an empty rollup table."""
    start = "(created_at - COALESCE(latency_ms, 0) / 1000.0)"

    def floor_hour(expr: str) -> str:
        q = f"({expr} / {ROLLUP_S!r})"
        if dialect == "postgresql":
            return f"(floor{q} * {ROLLUP_S!r})"
        # SQLite may lack floor(): CAST truncates toward zero, so step down below 0.
        return f"((CAST({q} AS INTEGER) - ({q} < CAST({q} AS INTEGER))) * {ROLLUP_S!r})"

    def count_if(cond: str) -> str:
        return f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)"

    hour, start_hour = floor_hour("created_at"), floor_hour(start)
    no_cost = "cost_usd IS NULL AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL)"
    return (
        f"INSERT INTO outcome_rollups ({', '.join((*KEY, *SUMS, 'min_start'))}) "
        f"SELECT task, context, path, {hour}, {start_hour}, success, "
        "COALESCE(error_kind, ''), COUNT(*), "
        f"{count_if('attempt = 1')}, {count_if('attempt > 1')}, SUM(retries), "
        "COALESCE(SUM(input_tokens), 0), COUNT(input_tokens), "
        "COALESCE(SUM(output_tokens), 0), COUNT(output_tokens), "
        "COALESCE(SUM(cost_usd), 0.0), COUNT(cost_usd), "
        f"{count_if(no_cost)}, "
        "COALESCE(SUM(score), 0.0), COUNT(score), "
        "COALESCE(SUM(cache_read_tokens), 0), COUNT(cache_read_tokens), "
        "COALESCE(SUM(cache_write_tokens), 0), COUNT(cache_write_tokens), "
        f"MIN({start}) "
        "FROM outcomes "
        f"GROUP BY task, context, path, {hour}, {start_hour}, success, COALESCE(error_kind, '')"
    )
