"""Overhead of ``Router.run`` / ``Router.arun`` around a no-op path, per call.

Each call is timed with ``time.perf_counter_ns`` after a warm-up; the same timing loop
around the bare path gives the baseline, and the overhead is ``run`` minus baseline at the
same percentile. Three paths; the first in sampled order succeeds, so one outcome per call.

The calls are timed in ``ROUNDS`` rounds that visit every configuration in turn, so a
configuration's rounds are tens of seconds apart, and the round with the lowest p50 is
reported (all rounds' p50s in the note): this shared machine has phases of several
seconds in which everything runs ~1.7x slower, and one block of calls would report
whichever phase it fell into.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaptive_router import Learning, Persistence, Router
from benchmarks.common import (
    Result,
    always_ok,
    anoop,
    anoop_paths,
    fmt_us,
    noop,
    noop_paths,
    path_timeout_kwargs,
    pct_us,
    pg_reachable,
    pg_schema,
    quiet_library_logs,
)

SECTION = "overhead"
ROUNDS = 3


@dataclass(frozen=True)
class Config:
    """A store and durability to measure, and its p50 target in µs."""

    label: str
    backend: str  # memory | sqlite | postgresql
    durability: str
    target_us: float


CONFIGS = (
    Config("memory", "memory", "batch", 25.0),
    Config("SQLite batched", "sqlite", "batch", 40.0),
    Config("SQLite sync", "sqlite", "sync", 500.0),
    Config("PostgreSQL batched", "postgresql", "batch", 40.0),
    Config("PostgreSQL sync", "postgresql", "sync", 1500.0),
)


def time_sync(call: Callable[[], Any], n: int) -> np.ndarray:
    """Per-call nanoseconds of ``call()``, ``n`` times."""
    pc = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = pc()
        call()
        out[i] = pc() - t0
    return out


async def time_async(call: Callable[[], Awaitable[Any]], n: int) -> np.ndarray:
    """Per-call nanoseconds of ``await call()``, ``n`` times."""
    pc = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = pc()
        await call()
        out[i] = pc() - t0
    return out


@contextmanager
def store_url(backend: str) -> Iterator[str]:
    """A fresh store URL for ``backend``, removed afterwards."""
    if backend == "memory":
        yield "memory://"
    elif backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ar-bench-") as d:
            yield f"sqlite:///{d}/overhead.db"
    else:
        with pg_schema("overhead") as url:
            yield url


def _measure_run(url: str, cfg: Config, n: int, warm: int) -> np.ndarray:
    router = Router(
        noop_paths(),
        always_ok,
        task="bench-run",
        store=url,
        learning=Learning(seed=1),
        persistence=Persistence(durability=cfg.durability),
    )
    try:
        time_sync(router.run, warm)
        return time_sync(router.run, n)
    finally:
        router.close()


def _measure_arun(url: str, cfg: Config, n: int, warm: int) -> np.ndarray:
    router = Router(
        anoop_paths(),
        always_ok,
        task="bench-arun",
        store=url,
        learning=Learning(seed=2),
        persistence=Persistence(durability=cfg.durability),
    )

    async def go() -> np.ndarray:
        await time_async(router.arun, warm)
        return await time_async(router.arun, n)

    try:
        return asyncio.run(go())
    finally:
        router.close()


def _baseline(n: int) -> tuple[np.ndarray, np.ndarray]:
    sync = time_sync(noop, n)
    return sync, asyncio.run(time_async(anoop, n))


def _row(cfg: Config, kind: str, rounds: list[np.ndarray], base: np.ndarray, n: int) -> Result:
    p50s = [pct_us(samples, 50) - pct_us(base, 50) for samples in rounds]
    best = int(np.argmin(p50s))
    p50 = p50s[best]
    p99 = pct_us(rounds[best], 99) - pct_us(base, 99)
    return Result(
        SECTION,
        f"{kind} overhead, {cfg.label}",
        f"p50 ≤ {fmt_us(cfg.target_us)}",
        f"p50 {fmt_us(p50)} · p99 {fmt_us(p99)}",
        p50 <= cfg.target_us,
        f"{n:,} calls; best of {ROUNDS} rounds (p50s {', '.join(fmt_us(v) for v in p50s)})",
    )


def run(quick: bool = False) -> list[Result]:
    """All overhead rows: run and arun for memory, SQLite and PostgreSQL (batched, sync)."""
    quiet_library_logs()
    fast_n, sync_n = (2_000, 200) if quick else (30_000, 3_000)
    base_sync, base_async = _baseline(fast_n)
    has_pg = pg_reachable()
    results: list[Result] = []
    runnable = [c for c in CONFIGS if c.backend != "postgresql" or has_pg]
    rounds: dict[tuple[Config, str], list[np.ndarray]] = {
        (cfg, kind): [] for cfg in runnable for kind in ("run", "arun")
    }
    with ExitStack() as stack:
        urls = {cfg: stack.enter_context(store_url(cfg.backend)) for cfg in runnable}
        for _ in range(ROUNDS):
            for cfg in runnable:
                n = (sync_n if cfg.durability == "sync" else fast_n) // ROUNDS
                warm = max(n // 10, 100)
                rounds[cfg, "run"].append(_measure_run(urls[cfg], cfg, n, warm))
                rounds[cfg, "arun"].append(_measure_arun(urls[cfg], cfg, n, warm))
    for cfg in CONFIGS:
        n = sync_n if cfg.durability == "sync" else fast_n
        for kind in ("run", "arun"):
            if cfg in runnable:
                base = base_sync if kind == "run" else base_async
                results.append(_row(cfg, kind, rounds[cfg, kind], base, n))
            else:
                results.append(
                    Result(
                        SECTION,
                        f"{kind} overhead, {cfg.label}",
                        f"p50 ≤ {fmt_us(cfg.target_us)}",
                        "—",
                        None,
                        "PostgreSQL unreachable",
                    )
                )
    timeout = path_timeout_kwargs()
    results.append(
        Result(
            SECTION,
            "baseline: direct call / await of the no-op",
            "—",
            f"p50 {fmt_us(pct_us(base_sync, 50))} / {fmt_us(pct_us(base_async, 50))}",
            None,
            "Path(fn, name=..., timeout=None)" if timeout else "Path has no timeout parameter",
        )
    )
    return results
