"""Query speed on a database of 1,000,000 outcomes over 30 days for 10 tasks (3 paths each).

The data are synthetic and reproducible (seeded numpy), inserted in bulk: one SQLite
transaction of ``executemany`` (the file is cached under ``benchmarks/.cache/``, keyed by
the parameters) and ``COPY`` then ``VACUUM ANALYZE`` on PostgreSQL (regenerated in a
throw-away schema).
``outcome_rollups`` are summed from them as migration 0006 does, and ``path_stats`` is
computed from the same rows with the decay formula the store uses, so
routers opened on the database see consistent posteriors. Routers get a fixed ``clock``
at the end of the data, so a cached database never ages out of the 1-hour window.

Timed: ``Router.stats(1h)`` (flush + ``window_stats``), ``Router.stats(24h)``,
``Router.posteriors()`` (in-process cache), ``SQLStore.load`` (the cache refresh query)
and a cold read as the ``adaptive-router posteriors`` command does it (new store, load,
posteriors, close).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from adaptive_router import Learning, Router
from adaptive_router.policies.thompson import MAX_HALF_LIVES
from adaptive_router.router import posteriors_from_states
from adaptive_router.stores import SQLStore
from adaptive_router.stores.rollups import backfill_sql
from adaptive_router.stores.schema import HEAD_REVISION
from benchmarks.common import (
    CACHE,
    PATH_NAMES,
    Result,
    always_ok,
    fmt_us,
    noop_paths,
    pct_us,
    pg_reachable,
    pg_schema,
    quiet_library_logs,
)

SECTION = "queries"
#: The data end here (epoch seconds, 2025-01-01); routers' clocks are pinned to it.
END = 1_735_689_600.0
HALF_LIFE = 86_400.0
DAYS = 30
TASKS = 10
SEED = 8
CHUNK = 100_000
COLUMNS = (
    "request_id",
    "attempt",
    "task",
    "path",
    "success",
    "error_kind",
    "error",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "retries",
    "created_at",
    "metadata",
)
STATS_TARGET_MS = 50.0
POSTERIORS_TARGET_MS = 5.0


@dataclass
class Acc:
    """Running per-(task, path) evidence, decayed relative to ``END``."""

    s_end: float = 0.0
    f_end: float = 0.0
    successes: int = 0
    failures: int = 0
    ref: float = 0.0


def task_name(k: int) -> str:
    """The k-th synthetic task."""
    return f"task-{k}"


def synth_chunks(n: int) -> Iterator[list[tuple[Any, ...]]]:
    """Rows in time order, ``CHUNK`` at a time, in ``COLUMNS`` order (no metadata)."""
    rng = np.random.default_rng(SEED)
    span = DAYS * 86_400.0
    rates = 0.55 + 0.35 * rng.random((TASKS, len(PATH_NAMES)))
    start = END - span
    n_chunks = (n + CHUNK - 1) // CHUNK
    for c in range(n_chunks):
        m = min(CHUNK, n - c * CHUNK)
        lo = start + span * c / n_chunks
        t = lo + np.sort(rng.random(m)) * (span / n_chunks)
        t = np.minimum(t, END - 1e-3)
        task = rng.integers(0, TASKS, m)
        path = rng.integers(0, len(PATH_NAMES), m)
        ok = rng.random(m) < rates[task, path]
        failed_kind = np.where(rng.random(m) < 0.2, "timeout", "rejected").tolist()
        kind = [None if good else k for good, k in zip(ok.tolist(), failed_kind, strict=True)]
        latency = rng.lognormal(6.0, 0.6, m)
        tok_in = rng.integers(100, 4000, m)
        tok_out = rng.integers(10, 800, m)
        cost = tok_in * 2.5e-6 + tok_out * 1e-5
        first = c * CHUNK
        yield list(
            zip(
                (f"{first + i:032x}" for i in range(m)),
                [1] * m,
                (task_name(k) for k in task.tolist()),
                (PATH_NAMES[k] for k in path.tolist()),
                ok.tolist(),
                kind,
                [None] * m,
                latency.tolist(),
                tok_in.tolist(),
                tok_out.tolist(),
                cost.tolist(),
                [0] * m,
                t.tolist(),
                [None] * m,
                strict=True,
            )
        )


def accumulate(accs: dict[tuple[str, str], Acc], rows: list[tuple[Any, ...]]) -> None:
    """Fold rows into per-path evidence (decay weights relative to ``END``)."""
    for r in rows:
        acc = accs.get((r[2], r[3]))
        if acc is None:
            acc = accs[(r[2], r[3])] = Acc()
        w = 0.5 ** ((END - r[12]) / HALF_LIFE)
        if r[4]:
            acc.s_end += w
            acc.successes += 1
        else:
            acc.f_end += w
            acc.failures += 1
        acc.ref = max(acc.ref, r[12])


def path_stats_rows(accs: dict[tuple[str, str], Acc]) -> list[tuple[Any, ...]]:
    """``path_stats`` rows: sums re-based from ``END`` to each path's newest outcome."""
    assert DAYS * 86_400.0 / HALF_LIFE < MAX_HALF_LIVES  # no evidence cut off
    rows = []
    for (task, path), a in sorted(accs.items()):
        k = 2.0 ** ((END - a.ref) / HALF_LIFE)
        rows.append(
            (task, path, a.s_end * k, a.f_end * k, a.ref, a.successes, a.failures, HALF_LIFE, a.ref)
        )
    return rows


# Every synthetic outcome is a request's first attempt: first-attempt evidence.
PS_INSERT = (
    "INSERT INTO path_stats (task, path, success_w, failure_w, ref_time, successes, failures, "
    "half_life_s, updated_at, position) VALUES ({m}, {m}, {m}, {m}, {m}, {m}, {m}, {m}, {m}, "
    "'first')"
)


def build_sqlite(path: str, n: int) -> None:
    """Create the tables with ``SQLStore`` and fill them in one transaction."""
    SQLStore(f"sqlite:///{path}").close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        sql = f"INSERT INTO outcomes ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * 14)})"
        accs: dict[tuple[str, str], Acc] = {}
        for rows in synth_chunks(n):
            conn.executemany(sql, rows)
            accumulate(accs, rows)
        conn.executemany(PS_INSERT.format(m="?"), path_stats_rows(accs))
        conn.execute(backfill_sql("sqlite"))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def cached_sqlite(n: int) -> tuple[str, float | None]:
    """Path of the cached database for ``n`` outcomes and the build time (None if cached).

    The key holds the data parameters and the schema revision, so a migration rebuilds
    it; databases of the same parameters at another revision are deleted.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    prefix = f"queries-n{n}-t{TASKS}-d{DAYS}-h{int(HALF_LIFE)}-s{SEED}-"
    name = f"{prefix}{HEAD_REVISION}.db"
    final = CACHE / name
    if final.exists():
        return str(final), None
    for stale in CACHE.glob(f"{prefix}*.db"):
        stale.unlink()
    tmp = CACHE / f"{name}.{os.getpid()}.tmp"
    for suffix in ("", "-wal", "-shm"):
        tmp.with_name(tmp.name + suffix).unlink(missing_ok=True)
    t0 = time.perf_counter()
    build_sqlite(str(tmp), n)
    for suffix in ("-wal", "-shm"):
        tmp.with_name(tmp.name + suffix).unlink(missing_ok=True)
    os.replace(tmp, final)
    return str(final), time.perf_counter() - t0


def build_postgres(url: str, n: int) -> float:
    """Create the tables and COPY the rows into the schema behind ``url``; seconds taken."""
    t0 = time.perf_counter()
    store = SQLStore(url)
    try:
        with store.engine.connect() as conn:
            raw: Any = conn.connection.driver_connection
            accs: dict[tuple[str, str], Acc] = {}
            copy_sql = f"COPY outcomes ({', '.join(COLUMNS)}) FROM STDIN"
            with raw.cursor() as cur:
                for rows in synth_chunks(n):
                    with cur.copy(copy_sql) as copy:
                        for row in rows:
                            copy.write_row(row)
                    accumulate(accs, rows)
                cur.executemany(PS_INSERT.format(m="%s"), path_stats_rows(accs))
                cur.execute(backfill_sql("postgresql"))
            raw.commit()
            raw.autocommit = True
            # VACUUM sets the visibility map, as autovacuum would after a bulk load, so
            # index-only scans (the latency index) need not visit the table.
            raw.execute("VACUUM ANALYZE outcomes")
            raw.execute("ANALYZE path_stats")
            raw.execute("ANALYZE outcome_rollups")
            raw.autocommit = False
    finally:
        store.close()
    return time.perf_counter() - t0


def time_ns(call: Callable[[], object], n: int) -> np.ndarray:
    """Per-call nanoseconds of ``call()``, after one untimed call."""
    call()
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = time.perf_counter_ns()
        call()
        out[i] = time.perf_counter_ns() - t0
    return out


def cold_posteriors(url: str, task: str) -> None:
    """What ``adaptive-router posteriors`` does after its imports: open, load, compute, close."""
    store = SQLStore(url, create=False)
    try:
        states = store.load(task)
        posteriors_from_states(states, sorted(states), (1.0, 1.0), HALF_LIFE, END)
    finally:
        store.close()


def measure(url: str, label: str, n_rows: int, quick: bool, note: str) -> list[Result]:
    """All query rows for one database."""
    reps = 5 if quick else 30
    task = task_name(0)
    router = Router(
        noop_paths(),
        always_ok,
        task=task,
        store=url,
        half_life=HALF_LIFE,
        learning=Learning(clock=lambda: END),
    )
    store = router.store
    assert isinstance(store, SQLStore)
    try:
        hour = time_ns(lambda: router.stats(timedelta(hours=1)), reps)
        rows_1h = sum(s.attempts for s in router.stats(timedelta(hours=1)))
        day = time_ns(lambda: router.stats(timedelta(hours=24)), max(reps // 3, 3))
        rows_24h = sum(s.attempts for s in router.stats(timedelta(hours=24)))
        post = time_ns(router.posteriors, reps * 100)
        n_paths = len(router.posteriors())
        load = time_ns(lambda: store.load(task), reps * 10)
    finally:
        router.close()
    cold = time_ns(lambda: cold_posteriors(url, task), reps)
    size = f"{n_rows:,} outcomes"
    stats_t = f"p50 ≤ {STATS_TARGET_MS:g} ms"
    post_t = f"p50 ≤ {POSTERIORS_TARGET_MS:g} ms"
    return [
        Result(
            SECTION,
            f"{label} Router.stats(1h)",
            stats_t,
            f"p50 {fmt_us(pct_us(hour, 50))} · max {fmt_us(pct_us(hour, 100))}",
            pct_us(hour, 50) <= STATS_TARGET_MS * 1000,
            f"{rows_1h:,} rows in window; {size}; {note}",
        ),
        Result(
            SECTION,
            f"{label} Router.stats(24h)",
            "—",
            f"p50 {fmt_us(pct_us(day, 50))}",
            None,
            f"{rows_24h:,} rows in window",
        ),
        Result(
            SECTION,
            f"{label} Router.posteriors() (cache)",
            post_t,
            f"p50 {fmt_us(pct_us(post, 50))}",
            pct_us(post, 50) <= POSTERIORS_TARGET_MS * 1000,
            f"{n_paths} paths",
        ),
        Result(
            SECTION,
            f"{label} SQLStore.load (refresh query)",
            post_t,
            f"p50 {fmt_us(pct_us(load, 50))}",
            pct_us(load, 50) <= POSTERIORS_TARGET_MS * 1000,
            "",
        ),
        Result(
            SECTION,
            f"{label} cold posteriors (CLI-style)",
            "—",
            f"p50 {fmt_us(pct_us(cold, 50))}",
            None,
            "new SQLStore(create=False) + load + posteriors + close: connect included",
        ),
    ]


def run(quick: bool = False) -> list[Result]:
    """Rows for SQLite (cached database) and PostgreSQL (generated per run)."""
    quiet_library_logs()
    n = 50_000 if quick else 1_000_000
    path, built = cached_sqlite(n)
    note = f"built in {built:.1f} s" if built is not None else "cached database"
    results = measure(f"sqlite:///{path}", "SQLite", n, quick, note)
    if not pg_reachable():
        results.append(
            Result(SECTION, "PostgreSQL queries", "—", "—", None, "PostgreSQL unreachable")
        )
        return results
    with pg_schema("queries") as url:
        secs = build_postgres(url, n)
        results += measure(url, "PostgreSQL", n, quick, f"COPY + ANALYZE in {secs:.1f} s")
    return results
