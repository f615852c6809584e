"""Window reads of the SQL store from the hourly ``outcome_rollups``, exact.

A window ``[since, until)`` is read as the whole rollup hours inside it plus the outcome rows
of the partial hours at its two edges. Per-attempt figures (counts, tokens, cost, errors)
are sums, so that is all they need. Per-request figures (distinct requests, requests that
succeeded or fell back, the bucket of the request's start) add up row by row for every
request with a single row in the window; the few requests with more (a row whose
``attempt`` is not 1 marks them, found through a partial index) are read as rows, their
row-by-row contribution taken back and their true one added. Latency percentiles need the
values themselves: they come from the window's latencies (exact, as before).

Float sums (cost, score) are added in another order than a row-by-row sum, so they may
differ from one in the last bits; counts are identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from adaptive_router.outcomes import UNBILLED, ErrorKind, Outcome, PathWindowStats
from adaptive_router.stores.base import PathTotals
from adaptive_router.stores.rollups import SUMS, hour_of, increments
from adaptive_router.stores.schema import ROLLUP_S, outcomes, rollups
from adaptive_router.stores.series import (
    SeriesCounts,
    empty_counts,
    layout,
)

_TIMEOUT = ErrorKind.TIMEOUT.value
_FLOATS = frozenset({"cost_usd", "score_sum"})
_VALUES = (*SUMS, "min_start")
#: Rows per step when searching the window's last request start.
_TAIL_STEP = 256


@dataclass(frozen=True, slots=True)
class Window:
    """``[since, until)`` split into whole rollup hours ``[h1, h2)`` and raw edges."""

    since: float
    until: float | None
    h1: float
    h2: float

    @classmethod
    def of(cls, since: float, until: float | None) -> Window:
        h1 = -(-since // ROLLUP_S) * ROLLUP_S
        h2 = math.inf if until is None else hour_of(until)
        return cls(since, until, h1, max(h1, h2))

    @property
    def has_hours(self) -> bool:
        return self.h1 < self.h2


def _in_window(w: Window) -> list[Any]:
    return _in_window_of(outcomes, w)


def _in_window_of(table: Any, w: Window) -> list[Any]:
    c = table.c
    where = [c.created_at >= w.since]
    if w.until is not None:
        where.append(c.created_at < w.until)
    return where


def _edges(w: Window) -> Any:
    """Rows of the window outside its whole hours."""
    c = outcomes.c
    if not w.has_hours:
        return sa.and_(*_in_window(w))
    low = sa.and_(c.created_at >= w.since, c.created_at < w.h1)
    if math.isinf(w.h2):
        return low
    high = c.created_at >= w.h2
    if w.until is not None:
        high = sa.and_(high, c.created_at < w.until)
    return sa.or_(low, high)


#: The outcome columns a row is read back with (:func:`row_outcome`).
ROW_COLUMNS = (
    outcomes.c.request_id,
    outcomes.c.task,
    outcomes.c.path,
    outcomes.c.attempt,
    outcomes.c.success,
    outcomes.c.error_kind,
    outcomes.c.latency_ms,
    outcomes.c.input_tokens,
    outcomes.c.output_tokens,
    outcomes.c.cost_usd,
    outcomes.c.created_at,
    outcomes.c.retries,
    outcomes.c.score,
    outcomes.c.context,
    outcomes.c.cache_read_tokens,
    outcomes.c.cache_write_tokens,
)


def row_outcome(r: Any) -> Outcome:
    """An :class:`Outcome` from a row of :data:`ROW_COLUMNS` (no metadata or decision)."""
    return Outcome(
        request_id=str(r[0]),
        task=str(r[1]),
        path=str(r[2]),
        attempt=int(r[3]),
        success=bool(r[4]),
        kind=r[5],
        latency_ms=r[6],
        input_tokens=r[7],
        output_tokens=r[8],
        cost_usd=r[9],
        created_at=float(r[10]),
        retries=int(r[11]),
        score=r[12],
        context=str(r[13]),
        cache_read_tokens=r[14],
        cache_write_tokens=r[15],
    )


def _edge_rows(conn: sa.Connection, task: str, w: Window, context: str | None) -> list[Outcome]:
    q = sa.select(*ROW_COLUMNS).where(outcomes.c.task == task, _edges(w))
    if context is not None:
        q = q.where(outcomes.c.context == context)
    return [row_outcome(r) for r in conn.execute(q)]


def _marked(task: str, w: Window) -> Any:
    """Ids of the requests with a row in the window whose ``attempt`` is not 1: every
    request with more than one row in the window is among them."""
    c = outcomes.c
    # Literal, so SQLite can see that the partial index ix_outcomes_task_fallback applies.
    return sa.select(c.request_id).where(
        c.task == task, *_in_window(w), sa.text("outcomes.attempt <> 1")
    )


def _inside(table: Any, task: str, w: Window) -> Any:
    """The window as a condition for CASE, not WHERE: with only ``request_id IN (...)``
    in the WHERE clause, planners use the unique (request_id, attempt) index rather than
    scanning the whole window."""
    t = table.c
    cond = [t.task == task, t.created_at >= w.since]
    if w.until is not None:
        cond.append(t.created_at < w.until)
    return sa.and_(*cond)


def _start(table: Any) -> Any:
    """SQL twin of :func:`request_start` (the same floating-point operations)."""
    return table.c.created_at - sa.func.coalesce(table.c.latency_ms, 0.0) / 1000.0


def _floor_hour(expr: Any, dialect: str) -> Any:
    q = expr / ROLLUP_S
    if dialect == "postgresql":
        return sa.func.floor(q) * ROLLUP_S
    # SQLite may lack floor(): CAST truncates toward zero, so step down below 0.
    whole = sa.cast(q, sa.Integer)
    return (whole - sa.case((q < whole, 1), else_=0)) * ROLLUP_S


def _count_if(cond: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)


def _distinct_if(cond: Any) -> Any:
    return sa.func.count(sa.distinct(sa.case((cond, outcomes.c.request_id))))


def _sums(
    conn: sa.Connection,
    task: str,
    w: Window,
    context: str | None,
    by: Sequence[str],
    edges: Sequence[Outcome],
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Rollup sums of the whole hours grouped by ``by``, plus the edge rows' increments."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(key: tuple[Any, ...], values: dict[str, Any]) -> None:
        acc = out.get(key)
        if acc is None:
            out[key] = dict(values)
            return
        for name in SUMS:
            acc[name] += values[name]
        acc["min_start"] = min(acc["min_start"], values["min_start"])

    if w.has_hours:
        r = rollups.c
        cols = [r[name] for name in by]
        q = (
            sa.select(
                *cols,
                # CAST: PostgreSQL's SUM(bigint) is numeric (Decimal in Python).
                *(
                    sa.func.sum(r[name])
                    if name in _FLOATS
                    else sa.cast(sa.func.sum(r[name]), sa.BigInteger)
                    for name in SUMS
                ),
                sa.func.min(r.min_start),
            )
            .where(r.task == task, r.hour >= w.h1)
            .group_by(*cols)
        )
        if not math.isinf(w.h2):
            q = q.where(r.hour < w.h2)
        if context is not None:
            q = q.where(r.context == context)
        nb = len(by)
        # Plain tuples and zip: a month of hours is thousands of groups.
        for row in conn.execute(q).all():
            add(tuple(row[:nb]), dict(zip(_VALUES, row[nb:], strict=True)))
    for inc in increments(edges):
        add(tuple(inc[n] for n in by), inc)
    return out


def _read(conn: sa.Connection) -> sa.Connection:
    """One snapshot for the several statements of a read (PostgreSQL reads committed
    statement by statement otherwise)."""
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def _latencies(
    conn: sa.Connection, task: str, paths: Iterable[str], w: Window, context: str | None
) -> dict[str, list[float]]:
    """The window's latencies per path, one query per path answered from the index
    ``ix_outcomes_task_path_latency`` alone, through the DBAPI cursor: tens of thousands of
    floats, for which SQLAlchemy's per-row result processing would double the read time."""
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    sql = (
        f"SELECT latency_ms FROM outcomes WHERE task = {mark} AND path = {mark} "
        f"AND created_at >= {mark}"
    )
    params: list[Any] = [task, None, w.since]
    if w.until is not None:
        sql += f" AND created_at < {mark}"
        params.append(w.until)
    if context is not None:
        sql += f" AND context = {mark}"
        params.append(context)
    sql += " AND latency_ms IS NOT NULL"
    out: dict[str, list[float]] = {}
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for path in paths:
            params[1] = path
            cur.execute(sql, params)
            out[path] = [r[0] for r in cur.fetchall()]
    finally:
        cur.close()
    return out


def window_stats(
    engine: sa.Engine, task: str, since: float, until: float | None, context: str | None
) -> list[PathWindowStats]:
    """:meth:`Store.window_stats` from the rollups (percentiles from the latencies)."""
    w = Window.of(since, until)
    with engine.connect() as base:
        conn = _read(base)
        edges = _edge_rows(conn, task, w, context)
        groups = _sums(conn, task, w, context, ("path", "success", "error_kind"), edges)
        latencies = _latencies(conn, task, sorted({k[0] for k in groups}), w, context)
    per_path: dict[str, list[tuple[bool, str, dict[str, Any]]]] = {}
    for (path, success, kind), v in groups.items():
        per_path.setdefault(path, []).append((success, kind, v))
    out = []
    for path in sorted(per_path):
        parts = per_path[path]
        errors: dict[str, int] = {}
        for success, kind, v in parts:
            if not success and kind:
                errors[kind] = errors.get(kind, 0) + v["attempts"]
        p50 = p95 = None
        if latencies.get(path):
            p50, p95 = (float(x) for x in np.percentile(latencies[path], [50, 95]))
        scored = sum(v["scored"] for _, _, v in parts)
        out.append(
            PathWindowStats(
                path=path,
                attempts=sum(v["attempts"] for _, _, v in parts),
                successes=sum(v["attempts"] for s, _, v in parts if s),
                timeouts=errors.get(_TIMEOUT, 0),
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                input_tokens=_known(parts, "input_tokens", "input_known"),
                output_tokens=_known(parts, "output_tokens", "output_known"),
                cost_usd=_known_float(parts, "cost_usd", "cost_known"),
                first_attempts=sum(v["first_attempts"] for _, _, v in parts),
                errors=errors,
                mean_score=math.fsum(v["score_sum"] for _, _, v in parts) / scored
                if scored
                else None,
                first_successes=sum(v["first_attempts"] for s, _, v in parts if s),
            )
        )
    return out


def _known(parts: Iterable[tuple[bool, str, dict[str, Any]]], name: str, known: str) -> int | None:
    items = list(parts)
    if not any(v[known] for _, _, v in items):
        return None
    return sum(int(v[name]) for _, _, v in items)


def _known_float(
    parts: Iterable[tuple[bool, str, dict[str, Any]]], name: str, known: str
) -> float | None:
    items = list(parts)
    if not any(v[known] for _, _, v in items):
        return None
    return math.fsum(v[name] for _, _, v in items)


def path_totals(
    engine: sa.Engine, task: str, since: float, until: float | None
) -> tuple[list[PathTotals], tuple[int, int, int]]:
    """:meth:`Store.path_totals` from the rollups, multi-row requests corrected."""
    w = Window.of(since, until)
    with engine.connect() as base:
        conn = _read(base)
        edges = _edge_rows(conn, task, w, None)
        groups = _sums(conn, task, w, None, ("path", "success", "error_kind"), edges)
        c = outcomes.c
        inside = _inside(outcomes, task, w)
        picked = c.request_id.in_(_marked(task, w).scalar_subquery())
        by_path = conn.execute(
            sa.select(c.path, _count_if(inside), _distinct_if(inside))
            .where(picked)
            .group_by(c.path)
        ).all()
        fix = conn.execute(
            sa.select(
                _count_if(inside),
                _distinct_if(inside),
                _count_if(sa.and_(inside, c.success)),
                _distinct_if(sa.and_(inside, c.success)),
                _count_if(sa.and_(inside, c.attempt > 1)),
                _distinct_if(sa.and_(inside, c.attempt > 1)),
            ).where(picked)
        ).one()
    per_path: dict[str, list[tuple[bool, str, dict[str, Any]]]] = {}
    for (path, success, kind), v in groups.items():
        per_path.setdefault(path, []).append((success, kind, v))
    # Row by row, each row is a request of its own; requests with several rows in the
    # window are corrected: their rows counted as requests are replaced by their count.
    path_requests = {p: sum(v["attempts"] for _, _, v in parts) for p, parts in per_path.items()}
    for path, n_rows, n_requests in by_path:
        if path in path_requests:
            path_requests[path] += int(n_requests) - int(n_rows)
    requests = sum(v["attempts"] for v in groups.values()) + int(fix[1]) - int(fix[0])
    succeeded = sum(v["attempts"] for (_, s, _), v in groups.items() if s)
    succeeded += int(fix[3]) - int(fix[2])
    fell_back = sum(v["later_attempts"] for v in groups.values()) + int(fix[5]) - int(fix[4])
    rows = []
    for path in sorted(per_path):
        parts = per_path[path]
        priced = unpriced = 0
        for _, kind, v in parts:
            unbilled = kind in UNBILLED
            priced += v["attempts"] if unbilled else v["cost_known"]
            unpriced += 0 if unbilled else v["tokens_no_cost"]
        rows.append(
            PathTotals(
                path,
                path_requests[path],
                sum(v["attempts"] for _, _, v in parts),
                sum(v["first_attempts"] for _, _, v in parts),
                sum(v["later_attempts"] for _, _, v in parts),
                sum(v["attempts"] for s, _, v in parts if s),
                sum(v["retries"] for _, _, v in parts),
                sum(v["attempts"] for _, k, v in parts if k == _TIMEOUT),
                _known(parts, "input_tokens", "input_known"),
                _known(parts, "output_tokens", "output_known"),
                _known_float(parts, "cost_usd", "cost_known"),
                priced,
                unpriced,
                _known(parts, "cache_read_tokens", "cache_read_known"),
                _known(parts, "cache_write_tokens", "cache_write_known"),
            )
        )
    return rows, (requests, succeeded, fell_back)


def series(
    engine: sa.Engine,
    task: str,
    since: float,
    until: float | None,
    bucket_s: float | None,
    from_rows: Callable[[], SeriesCounts | None],
) -> SeriesCounts | None:
    """:meth:`Store.series` from the rollups when the buckets are whole hours; otherwise
    (a window of less than about 30 hours of traffic, or an odd ``bucket_s``) ``from_rows``."""
    w = Window.of(since, until)
    with engine.connect() as base:
        conn = _read(base)
        edges = _edge_rows(conn, task, w, None)
        groups = _sums(conn, task, w, None, ("path", "start_hour", "success"), edges)
        if not groups:
            return None
        t0 = min(v["min_start"] for v in groups.values())
        t1 = _last_start(conn, task, w)
        width, base_t, n = layout(t0, t1, bucket_s)
        moves = [] if width % ROLLUP_S else _moves(conn, task, w)
    if width % ROLLUP_S:
        # After this connection is closed: SQLite serialises transactions.
        return from_rows()
    c = empty_counts(width, base_t, n, (k[0] for k in groups))
    for (path, start_hour, success), v in groups.items():
        i = min(int((start_hour - base_t) // width), n - 1)
        c.tried[path][i] += v["attempts"]
        c.won[path][i] += v["attempts"] if success else 0
        c.first[path][i] += v["first_attempts"]
        c.requests[i] += v["first_attempts"]
        c.spend[path][i] += v["cost_usd"]
        c.priced[path][i] += v["cost_known"]
        c.unknown += v["attempts"] - v["cost_known"]
    # Attempts of requests that started in an earlier bucket than they did move there.
    for path, own, began, first, success, attempts, cost, priced in moves:
        i = min(int((own - base_t) // width), n - 1)
        j = min(int((began - base_t) // width), n - 1)
        if i == j:
            continue
        for k, sign in ((i, -1), (j, 1)):
            c.tried[path][k] += sign * attempts
            c.won[path][k] += sign * attempts if success else 0
            c.first[path][k] += sign * attempts if first else 0
            c.requests[k] += sign * attempts if first else 0
            c.spend[path][k] += sign * cost
            c.priced[path][k] += sign * priced
    return c


def _moves(conn: sa.Connection, task: str, w: Window) -> list[tuple[Any, ...]]:
    """Attempts of multi-row requests whose own start hour is not their request's start
    hour, summed per (path, own hour, request's hour, first attempt, success)."""
    dialect = conn.dialect.name
    o = outcomes.alias("o")
    marked = _marked(task, w).scalar_subquery()
    starts = (
        sa.select(
            o.c.request_id,
            sa.func.min(sa.case((_inside(o, task, w), _start(o)))).label("began"),
        )
        .where(o.c.request_id.in_(marked))
        .group_by(o.c.request_id)
        .subquery()
    )
    c = outcomes.c
    own = _floor_hour(_start(outcomes), dialect)
    began = _floor_hour(starts.c.began, dialect)
    first = c.attempt == 1
    # One object in SELECT and GROUP BY: PostgreSQL matches them by their parameters.
    inside = _inside(outcomes, task, w)
    q = (
        sa.select(
            c.path,
            own,
            began,
            first,
            c.success,
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(c.cost_usd), 0.0),
            sa.func.count(c.cost_usd),
            inside,
        )
        .join(starts, starts.c.request_id == c.request_id)
        .where(c.request_id.in_(marked))
        .group_by(c.path, own, began, first, c.success, inside)
    )
    return [
        (str(r[0]), float(r[1]), float(r[2]), bool(r[3]), bool(r[4]), int(r[5]), float(r[6]),
         int(r[7]))
        for r in conn.execute(q)
        if r[8] and r[1] != r[2]
    ]  # fmt: skip


def _last_start(conn: sa.Connection, task: str, w: Window) -> float:
    """The latest request start in the window: rows newest first, each with its request's
    start (the earliest of its rows in the window), until their finish time is before the
    best start found (an attempt starts before it finishes)."""
    c = outcomes.c
    o = outcomes.alias("o")
    began = (
        sa.select(sa.func.min(_start(o)))
        .where(o.c.request_id == c.request_id, *_in_window_of(o, w))
        .scalar_subquery()
    )
    q = (
        sa.select(c.created_at, began)
        .where(c.task == task, *_in_window(w))
        .order_by(c.created_at.desc())
        .limit(_TAIL_STEP)
    )
    best = -math.inf
    offset = 0
    while True:
        rows = conn.execute(q.offset(offset)).all()
        for created, start in rows:
            if created < best:
                return best
            best = max(best, float(start))
        if len(rows) < _TAIL_STEP:
            return best
        offset += _TAIL_STEP
