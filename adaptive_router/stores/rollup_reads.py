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
from collections import Counter
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
    add_attempt,
    empty_counts,
    layout,
    request_start,
)

_TIMEOUT = ErrorKind.TIMEOUT.value
_FLOATS = frozenset({"cost_usd", "score_sum"})
_VALUES = (*SUMS, "min_start")
#: Request ids per ``IN (...)`` list when reading multi-row requests.
_ID_CHUNK = 500
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
    c = outcomes.c
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


_RAW = (
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
)


def _outcome(r: Any) -> Outcome:
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
    )


def _edge_rows(conn: sa.Connection, task: str, w: Window, context: str | None) -> list[Outcome]:
    q = sa.select(*_RAW).where(outcomes.c.task == task, _edges(w))
    if context is not None:
        q = q.where(outcomes.c.context == context)
    return [_outcome(r) for r in conn.execute(q)]


def _multi_rows(conn: sa.Connection, task: str, w: Window) -> list[Outcome]:
    """The window's rows of requests with more than one row in it."""
    c = outcomes.c
    # Literal, so SQLite can see that the partial index ix_outcomes_task_fallback applies.
    marked = (
        sa.select(c.request_id)
        .distinct()
        .where(c.task == task, *_in_window(w), sa.text("outcomes.attempt <> 1"))
    )
    ids = [str(r[0]) for r in conn.execute(marked)]
    rows: list[Outcome] = []
    for i in range(0, len(ids), _ID_CHUNK):
        q = sa.select(*_RAW).where(
            c.request_id.in_(ids[i : i + _ID_CHUNK]), c.task == task, *_in_window(w)
        )
        rows += [_outcome(r) for r in conn.execute(q)]
    # A request marked by a row outside the window's other rows may have only that row.
    per_id = Counter(o.request_id for o in rows)
    return [o for o in rows if per_id[o.request_id] > 1]


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
        multi = _multi_rows(conn, task, w)
    per_path: dict[str, list[tuple[bool, str, dict[str, Any]]]] = {}
    for (path, success, kind), v in groups.items():
        per_path.setdefault(path, []).append((success, kind, v))
    # Row by row, each row is a request of its own; the multi-row requests are corrected.
    path_requests = {p: sum(v["attempts"] for _, _, v in parts) for p, parts in per_path.items()}
    requests = sum(path_requests.values())
    succeeded = sum(v["attempts"] for (_, s, _), v in groups.items() if s)
    fell_back = sum(v["later_attempts"] for v in groups.values())
    ids_by_path: dict[str, set[str]] = {}
    ok_ids: set[str] = set()
    for o in multi:
        path_requests[o.path] -= 1
        requests -= 1
        succeeded -= bool(o.success)
        fell_back -= o.attempt > 1
        ids_by_path.setdefault(o.path, set()).add(o.request_id)
        if o.success:
            ok_ids.add(o.request_id)
    for path, ids in ids_by_path.items():
        path_requests[path] += len(ids)
    multi_ids = {o.request_id for o in multi}
    requests += len(multi_ids)
    succeeded += len(ok_ids)
    fell_back += len({o.request_id for o in multi if o.attempt > 1})
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
        multi = _multi_rows(conn, task, w)
        starts: dict[str, float] = {}
        for o in multi:
            began = request_start(o.created_at, o.latency_ms)
            if began < starts.get(o.request_id, math.inf):
                starts[o.request_id] = began
        t0 = min(v["min_start"] for v in groups.values())
        t1 = _last_start(conn, task, w, starts)
    width, base_t, n = layout(t0, t1, bucket_s)
    if width % ROLLUP_S:
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
    for o in multi:
        own = request_start(o.created_at, o.latency_ms)
        add_attempt(c, o.path, own, o.attempt, o.success, o.cost_usd, sign=-1)
        add_attempt(c, o.path, starts[o.request_id], o.attempt, o.success, o.cost_usd)
    return c


def _last_start(conn: sa.Connection, task: str, w: Window, multi: dict[str, float]) -> float:
    """The latest request start in the window: rows newest first until their finish time
    is before the best start found (an attempt starts before it finishes)."""
    c = outcomes.c
    best = max(multi.values(), default=-math.inf)
    q = (
        sa.select(c.created_at, c.latency_ms, c.request_id)
        .where(c.task == task, *_in_window(w))
        .order_by(c.created_at.desc())
        .limit(_TAIL_STEP)
    )
    offset = 0
    while True:
        rows = conn.execute(q.offset(offset)).all()
        for created, latency, rid in rows:
            if created < best:
                return best
            s = multi[rid] if rid in multi else request_start(created, latency)
            best = max(best, s)
        if len(rows) < _TAIL_STEP:
            return best
        offset += _TAIL_STEP
