"""Read-side aggregates of the SQL store, computed by the database (no rows shipped):
the queries behind :meth:`SQLStore.path_totals` and :meth:`SQLStore.attempt_rows`."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from adaptive_router.outcomes import UNBILLED, ErrorKind
from adaptive_router.stores.base import AttemptRow, PathTotals
from adaptive_router.stores.schema import outcomes as outcomes_table

_TIMEOUT = ErrorKind.TIMEOUT.value


def path_totals(
    engine: sa.Engine, task: str, since: float, until: float | None
) -> tuple[list[PathTotals], tuple[int, int, int]]:
    """Per-path sums and request counts computed by the database (no rows shipped)."""
    c = outcomes_table.c
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
            sa.func.sum(c.cache_read_tokens),
            sa.func.sum(c.cache_write_tokens),
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
                None if r[13] is None else int(r[13]),
                None if r[14] is None else int(r[14]),
            )
            for r in conn.execute(per_path)
        ]
        t = conn.execute(totals).one()
    return rows, (int(t[0]), int(t[1]), int(t[2]))


def attempt_rows(
    engine: sa.Engine, task: str, since: float, until: float | None
) -> list[AttemptRow]:
    """A few columns rather than whole Outcome objects: a day of traffic plots quickly."""
    c = outcomes_table.c
    q = (
        sa.select(
            c.path, c.attempt, c.success, c.cost_usd, c.created_at, c.request_id, c.latency_ms
        )
        .where(c.task == task, c.created_at >= since)
        .order_by(c.created_at)
    )
    if until is not None:
        q = q.where(c.created_at < until)
    with engine.connect() as conn:
        return [
            AttemptRow(str(r[0]), int(r[1]), bool(r[2]), r[3], float(r[4]), str(r[5]), r[6])
            for r in conn.execute(q)
        ]
