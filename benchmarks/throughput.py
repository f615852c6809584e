"""Outcomes persisted per second with batched durability, 1 and 4 processes.

Two ways in:

* ``Router.run`` with no-op paths (3 paths, the first succeeds: 1 outcome per request),
  each process in a worker subprocess. The clock runs from a common start signal until
  the last process has closed its router (the final flush included); the rows are then
  counted in ``outcomes`` and must equal the requests made.
* ``SQLStore.write`` directly, in batches of 5,000 prepared outcomes.

Run as ``python -m benchmarks.throughput worker URL TASK N`` for one worker.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from adaptive_router import Outcome, Persistence, Router
from adaptive_router.stores import SQLStore
from benchmarks.common import (
    PATH_NAMES,
    Result,
    always_ok,
    count_outcomes,
    emit,
    fmt_rate,
    noop_paths,
    pg_reachable,
    pg_schema,
    quiet_library_logs,
    read_json_line,
    spawn_worker,
    stop_workers,
)

SECTION = "throughput"
TARGET = 20_000.0
TASK = "bench-throughput"


def worker(url: str, task: str, n: int) -> None:
    """Route ``n`` no-op requests after the parent says go; report times and drops."""
    quiet_library_logs()
    router = Router(
        noop_paths(), always_ok, task=task, store=url, persistence=Persistence(durability="batch")
    )
    emit({"ready": True})
    sys.stdin.readline()
    start = time.time()
    run = router.run
    for _ in range(n):
        run()
    hot_end = time.time()
    dropped = router.dropped_outcomes
    router.close()  # the final flush: durable once this returns
    emit({"start": start, "hot_end": hot_end, "end": time.time(), "dropped": dropped})


def via_router(url: str, procs: int, n_each: int) -> tuple[float, int, int, float]:
    """(outcomes/s durable, rows, dropped, hot-loop requests/s) for ``procs`` workers."""
    task = f"{TASK}-{uuid.uuid4().hex[:8]}"
    workers = [spawn_worker("throughput", url, task, str(n_each)) for _ in range(procs)]
    try:
        for w in workers:
            read_json_line(w)  # ready: imports and store set-up are not timed
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        reports = [read_json_line(w) for w in workers]
        for w in workers:
            w.wait(timeout=60)
    finally:
        stop_workers(workers)
    start = min(r["start"] for r in reports)
    end = max(r["end"] for r in reports)
    hot = max(r["hot_end"] for r in reports) - start
    rows = count_outcomes(url, task)
    dropped = sum(int(r["dropped"]) for r in reports)
    return rows / (end - start), rows, dropped, procs * n_each / hot


def via_store_write(url: str, n: int, batch: int) -> tuple[float, int]:
    """(outcomes/s, rows) writing ``n`` prepared outcomes with ``SQLStore.write``."""
    task = f"{TASK}-direct-{uuid.uuid4().hex[:8]}"
    now = time.time()
    outcomes = [
        Outcome(
            request_id=uuid.uuid4().hex,
            task=task,
            path=PATH_NAMES[i % 3],
            attempt=1,
            success=True,
            latency_ms=0.01,
            created_at=now + i * 1e-5,
        )
        for i in range(n)
    ]
    store = SQLStore(url)
    try:
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            store.write(outcomes[i : i + batch], None)
        elapsed = time.perf_counter() - t0
    finally:
        store.close()
    rows = count_outcomes(url, task)
    return rows / elapsed, rows


@contextmanager
def _url(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ar-bench-") as d:
            yield f"sqlite:///{d}/throughput.db"
    else:
        with pg_schema("throughput") as url:
            yield url


def run(quick: bool = False) -> list[Result]:
    """Rows for SQLite and PostgreSQL: run() from 1 and 4 processes, store.write direct."""
    quiet_library_logs()
    sizes = {
        # backend: (requests in 1 process, requests per process of 4, direct writes)
        "sqlite": (5_000, 2_000, 10_000) if quick else (120_000, 40_000, 100_000),
        "postgresql": (5_000, 2_000, 10_000) if quick else (80_000, 25_000, 60_000),
    }
    has_pg = pg_reachable()
    results: list[Result] = []
    for backend, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        one, each, direct = sizes[backend]
        if backend == "postgresql" and not has_pg:
            for m in ("run(), 1 process", "run(), 4 processes", "SQLStore.write ×5,000"):
                results.append(
                    Result(SECTION, f"{label} {m}", "—", "—", None, "PostgreSQL unreachable")
                )
            continue
        with _url(backend) as url:
            for procs, n_each, target in ((1, one, TARGET), (4, each, None)):
                # The machine is shared: the one-process capacity is the best of two runs.
                runs = [via_router(url, procs, n_each) for _ in range(2 if procs == 1 else 1)]
                rate, rows, dropped, hot = max(runs)
                expected = procs * n_each
                complete = all(r[1] == expected and r[2] == 0 for r in runs)
                tries = f"best of {', '.join(fmt_rate(r[0]) for r in runs)}; " if procs == 1 else ""
                results.append(
                    Result(
                        SECTION,
                        f"{label} run(), {procs} process{'es' if procs > 1 else ''}",
                        f"≥ {fmt_rate(target)}" if target else "—",
                        fmt_rate(rate),
                        (rate >= target and complete) if target else None,
                        f"{tries}{rows:,}/{expected:,} rows durable, {dropped} dropped; "
                        f"hot loop {fmt_rate(hot)}",
                    )
                )
            writes = [via_store_write(url, direct, 5_000) for _ in range(2)]
            rate = max(r[0] for r in writes)
            results.append(
                Result(
                    SECTION,
                    f"{label} SQLStore.write ×5,000",
                    f"≥ {fmt_rate(TARGET)}",
                    fmt_rate(rate),
                    rate >= TARGET and all(r[1] == direct for r in writes),
                    f"best of {', '.join(fmt_rate(r[0]) for r in writes)}; "
                    f"{direct:,} outcomes per try",
                )
            )
    return results


def main(argv: list[str]) -> None:
    """``worker URL TASK N``."""
    if len(argv) != 4 or argv[0] != "worker":
        raise SystemExit("usage: python -m benchmarks.throughput worker URL TASK N")
    worker(argv[1], argv[2], int(argv[3]))


if __name__ == "__main__":
    main(sys.argv[1:])
