"""Profiles of the hot spots behind missed targets (cProfile, top entries).

    python -m benchmarks.profiles                 # every scenario
    python -m benchmarks.profiles memory-full-log # one (see SCENARIOS)

Not part of ``benchmarks.run``: this is the evidence for optimisation proposals.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from adaptive_router import Learning, MemoryStore, Outcome, Persistence, Router
from adaptive_router.stores import SQLStore
from benchmarks.common import (
    PATH_NAMES,
    always_ok,
    anoop_paths,
    noop_paths,
    pg_reachable,
    pg_schema,
    quiet_library_logs,
)


def profile(label: str, work: Callable[[], object], top: int = 15) -> None:
    """Run ``work`` under cProfile; print wall time and the top entries by own time."""
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    work()
    prof.disable()
    wall = time.perf_counter() - t0
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    print(f"=== {label}: {wall:.3f} s wall under cProfile")
    print(out.getvalue())


@contextmanager
def sqlite_url() -> Iterator[str]:
    """A SQLite database in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="ar-prof-") as d:
        yield f"sqlite:///{d}/prof.db"


def _loop(call: Callable[[], object], n: int) -> Callable[[], None]:
    def work() -> None:
        for _ in range(n):
            call()

    return work


def memory_full_log() -> None:
    """``run`` once MemoryStore's outcome log has been at its bound (100,000) a while."""
    router = Router(
        noop_paths(), always_ok, task="p", store=MemoryStore(), learning=Learning(seed=1)
    )
    _loop(router.run, 250_000)()
    profile("run, memory store, outcome log full", _loop(router.run, 10_000))
    router.close()


def arun_memory() -> None:
    """``arun`` with the memory store (in-process, so the recorder is 'sync')."""
    router = Router(
        anoop_paths(), always_ok, task="p", store="memory://", learning=Learning(seed=1)
    )

    async def go() -> None:
        for _ in range(5_000):
            await router.arun()

    profile("arun, memory store", lambda: asyncio.run(go()))
    router.close()


def sync_durability(url: str, label: str) -> None:
    """``run`` with ``durability='sync'``: a transaction per request."""
    router = Router(
        noop_paths(),
        always_ok,
        task="p",
        store=url,
        learning=Learning(seed=1),
        persistence=Persistence(durability="sync"),
    )
    _loop(router.run, 100)()
    profile(f"run, {label} sync", _loop(router.run, 500))
    router.close()


def sqlite_sync() -> None:
    """SQLite, sync durability."""
    with sqlite_url() as url:
        sync_durability(url, "SQLite")


def pg_sync() -> None:
    """PostgreSQL, sync durability."""
    with pg_schema("prof") as url:
        sync_durability(url, "PostgreSQL")


def choose_report() -> None:
    """Two-phase ``choose`` + ``report`` with the memory store (the MABWiser comparison)."""
    router = Router(noop_paths(), bool, task="p", store="memory://", learning=Learning(seed=1))

    def work() -> None:
        for _ in range(10_000):
            d = router.choose()
            router.report(d.request_id, success=True)

    profile("choose + report, memory store", work)
    router.close()


def _outcomes(n: int) -> list[Outcome]:
    now = time.time()
    return [
        Outcome(uuid.uuid4().hex, "p", PATH_NAMES[i % 3], 1, True, created_at=now + i * 1e-5)
        for i in range(n)
    ]


def store_write(url: str, label: str) -> None:
    """``SQLStore.write`` of 20,000 outcomes (what the writer thread does per flush)."""
    store = SQLStore(url)
    store.write(_outcomes(100), None)
    batch = _outcomes(20_000)
    profile(f"SQLStore.write ×20,000, {label}", lambda: store.write(batch, None))
    store.close()


def sqlite_write() -> None:
    """SQLite bulk write."""
    with sqlite_url() as url:
        store_write(url, "SQLite")


def pg_write() -> None:
    """PostgreSQL bulk write."""
    with pg_schema("prof") as url:
        store_write(url, "PostgreSQL")


def pg_stats() -> None:
    """``Router.stats(1h)`` on PostgreSQL with 20,000 recent outcomes."""
    with pg_schema("prof") as url:
        router = Router(noop_paths(), always_ok, task="p", store=url, learning=Learning(seed=1))
        _loop(router.run, 20_000)()
        router.flush()
        profile(
            "Router.stats(1h), PostgreSQL, 20,000 rows in window",
            _loop(lambda: router.stats(timedelta(hours=1)), 20),
        )
        router.close()


SCENARIOS: dict[str, Callable[[], None]] = {
    "memory-full-log": memory_full_log,
    "arun-memory": arun_memory,
    "sqlite-sync": sqlite_sync,
    "pg-sync": pg_sync,
    "choose-report": choose_report,
    "sqlite-write": sqlite_write,
    "pg-write": pg_write,
    "pg-stats": pg_stats,
}


def main(argv: list[str] | None = None) -> None:
    """Run the named scenarios (all by default)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiles")
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(SCENARIOS))
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    quiet_library_logs()
    has_pg = pg_reachable()
    for name in args.names or list(SCENARIOS):
        if name.startswith("pg-") and not has_pg:
            print(f"=== {name}: skipped, PostgreSQL unreachable")
            continue
        SCENARIOS[name]()


if __name__ == "__main__":
    main()
