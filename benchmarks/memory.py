"""Resident memory of a routing process after 1,000 and after 1,000,000 requests.

Each store runs in a fresh worker process (``python -m benchmarks.memory worker STORE N``)
that routes no-op requests and samples its RSS (after ``gc.collect()``) at checkpoints;
growth from the first to the last checkpoint must stay within 20 MB.

The steady-state time per request is the median over blocks of ``BLOCK`` requests in the
last segment (100,000 → 1,000,000): each block (~1 s) still carries the process's
periodic costs (flushes, refreshes, garbage collection), while a few seconds of the shared
machine's slow phases move only a few blocks. The plain mean is given beside it.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time

from adaptive_router import Learning, Persistence, Router
from benchmarks.common import (
    Result,
    always_ok,
    emit,
    fmt_mb,
    fmt_us,
    noop_paths,
    quiet_library_logs,
    read_json_line,
    rss_bytes,
    spawn_worker,
    stop_workers,
)

SECTION = "memory"
LIMIT_BYTES = 20e6
#: The run-overhead p50 targets, applied to the time per request late in the run.
TARGET_US = {"memory": 25.0, "sqlite": 40.0}
STORES = ("memory", "memory-nolog", "sqlite")
#: Requests per timed block of a segment.
BLOCK = 50_000


def checkpoints(n: int) -> list[int]:
    """1,000, then each power of ten up to ``n``, and ``n``."""
    points = [1_000]
    while points[-1] * 10 < n:
        points.append(points[-1] * 10)
    return [*points, n] if points[-1] != n else points


def worker(store: str, n: int) -> None:
    """Route ``n`` requests through ``store`` (``memory`` or ``sqlite``); emit RSS samples.

    Also emits, per checkpoint, the unwritten outcomes and the mean µs per request of
    the segment that ended there (the steady-state cost of a long-lived process).
    """
    quiet_library_logs()
    with tempfile.TemporaryDirectory(prefix="ar-bench-") as d:
        url = "memory://" if store.startswith("memory") else f"sqlite:///{d}/memory.db"
        # memory-nolog: the same, without decision logging (what its buffers hold shows)
        router = Router(
            noop_paths(),
            always_ok,
            task="bench-memory",
            store=url,
            learning=Learning(seed=3),
            persistence=Persistence(log_decisions=store != "memory-nolog"),
        )
        run = router.run
        samples: dict[str, int] = {}
        buffered: dict[str, int] = {}
        us_per_request: dict[str, float] = {}
        done = 0
        t0 = time.perf_counter()
        blocks_us: dict[str, list[float]] = {}
        for point in checkpoints(n):
            seg, first = time.perf_counter(), done
            blocks: list[float] = []
            while done < point:
                size = min(BLOCK, point - done)
                block = time.perf_counter()
                for _ in range(size):
                    run()
                blocks.append((time.perf_counter() - block) / size * 1e6)
                done += size
            us_per_request[str(point)] = (time.perf_counter() - seg) / (point - first) * 1e6
            blocks_us[str(point)] = blocks
            gc.collect()
            samples[str(point)] = rss_bytes()
            buffered[str(point)] = int(getattr(router, "buffered_outcomes", -1))
        elapsed = time.perf_counter() - t0
        dropped = router.dropped_outcomes
        router.close()
    emit(
        {
            "samples": samples,
            "buffered": buffered,
            "us_per_request": us_per_request,
            "blocks_us": blocks_us,
            "dropped": dropped,
            "seconds": elapsed,
        }
    )


def run(quick: bool = False) -> list[Result]:
    """RSS growth rows for the memory store and SQLite batched, and steady-state speed."""
    n = 30_000 if quick else 1_000_000
    results = []
    for store, label in (
        ("memory", "memory store"),
        ("memory-nolog", "memory store, log_decisions=False"),
        ("sqlite", "SQLite batched"),
    ):
        judged = store != "memory-nolog"  # a comparison row: what decision logging holds
        proc = spawn_worker("memory", store, str(n))
        try:
            data = read_json_line(proc)
            proc.wait(timeout=120)
        finally:
            stop_workers([proc])
        samples = {int(k): v for k, v in data["samples"].items()}
        first, last = min(samples), max(samples)
        growth = samples[last] - samples[first]
        unwritten = int(data["buffered"].get(str(last), -1))
        last_buffered = f"{unwritten:,}" if unwritten >= 0 else "n/a"
        written = ""
        if store == "sqlite" and unwritten >= 0:
            rate = (last - unwritten - data["dropped"]) / data["seconds"]
            written = f" (durable while routing: {rate:,.0f}/s)"
        curve = " → ".join(f"{k:,}: {v / 1e6:.0f}" for k, v in sorted(samples.items()))
        results.append(
            Result(
                SECTION,
                f"RSS growth {first:,} → {last:,} requests, {label}",
                f"≤ {fmt_mb(LIMIT_BYTES)}",
                fmt_mb(growth) if judged else f"{fmt_mb(growth)} (info)",
                (growth <= LIMIT_BYTES and data["dropped"] == 0) if judged else None,
                f"RSS MB {curve}; unwritten at end {last_buffered}, {data['dropped']:,} dropped"
                f"{written}; {data['seconds']:.0f} s",
            )
        )
        if not judged:
            continue
        speed = {int(k): float(v) for k, v in data["us_per_request"].items()}
        seg_start = max((k for k in speed if k < last), default=0)
        blocks = sorted(data["blocks_us"][str(last)])
        median = float(statistics.median(blocks))
        results.append(
            Result(
                SECTION,
                f"run() per request, requests {seg_start:,} → {last:,}, {label}",
                f"median of {BLOCK // 1000}k-request blocks ≤ {fmt_us(TARGET_US[store])}",
                fmt_us(median),
                median <= TARGET_US[store],
                f"steady state of a long-lived process; {len(blocks)} blocks "
                f"{blocks[0]:.0f}–{blocks[-1]:.0f} µs, mean {speed[last]:.1f} µs; "
                "mean µs/request by segment: "
                + ", ".join(f"{k:,}: {v:.0f}" for k, v in sorted(speed.items())),
            )
        )
    return results


def main(argv: list[str]) -> None:
    """``worker STORE N``."""
    if len(argv) != 3 or argv[0] != "worker" or argv[1] not in STORES:
        raise SystemExit("usage: python -m benchmarks.memory worker {memory,memory-nolog,sqlite} N")
    worker(argv[1], int(argv[2]))


if __name__ == "__main__":
    main(sys.argv[1:])
