"""Propensity logging: ``run()`` throughput with decision logging on vs off, and the
propensity backlog.

One run, interleaved: short rounds alternate a router with ``log_decisions=False`` and one with
``log_decisions=True`` (the order inside a round alternates too), each a fresh router on
its own task of one SQLite file with batched durability, three no-op paths (the first
in sampled order succeeds), timed from the first to the last ``run()`` call. A round's
router is closed before the next starts, so neither side's background threads run
during the other's loop. The ratio is the median over rounds of on/off throughput
(each round's runs are seconds apart); the totals are in the note.

With logging on, each first attempt carries its decision; the background thread
computes propensities for at most 2% of wall time (``max_share``) and queues at most ``max_backlog``
decisions (the rest keep their snapshot and are computed by ``evaluate()``). Reported:
the largest backlog seen (sampled after every chunk of requests, and the thread's own
maximum), how many decisions were computed in the background and how many deferred.

Run: ``python -m benchmarks.run --only decisions`` (or ``python -m benchmarks.decisions``).
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np

from adaptive_router import Persistence, Router
from benchmarks.common import Result, always_ok, fmt_rate, noop_paths, quiet_library_logs

SECTION = "decisions"
TARGET_RATIO = 0.9
CHUNK = 1_000


def _round(url: str, task: str, mode: str, n: int) -> tuple[float, dict[str, int]]:
    """Seconds for ``n`` run() calls, and the decision log's counters. ``mode``: "off",
    "on", or "snapshot" (on, but nothing queued: every propensity deferred, which
    isolates what the request and the writer pay from the background thread's share)."""
    router = Router(
        noop_paths(),
        always_ok,
        task=task,
        store=url,
        persistence=Persistence(durability="batch", log_decisions=mode != "off"),
    )
    log = router._decisions
    if mode == "snapshot" and log is not None:
        log.max_backlog = 0
    run = router.run
    for _ in range(200):  # warm-up: caches, first flush
        run()
    sampled = 0
    elapsed = 0.0
    for _ in range(n // CHUNK):
        t0 = time.perf_counter()
        for _ in range(CHUNK):
            run()
        elapsed += time.perf_counter() - t0
        sampled = max(sampled, log.backlog if log is not None else 0)
    router.close()
    if log is None:  # decision logging off: no log, nothing queued
        return elapsed, dict.fromkeys(("max_backlog", "limit", "computed", "deferred"), 0)
    return elapsed, {
        "max_backlog": max(sampled, log.max_seen),
        "limit": log.max_backlog,
        "computed": log.computed,
        "deferred": log.deferred,
    }


def run(quick: bool = False) -> list[Result]:
    """Interleaved rounds; the throughput ratio and the backlog."""
    quiet_library_logs()
    # Rounds of a few seconds: the background thread reaches its steady pace (it starts
    # 1 s after the first commit, then works at most 2% of the time).
    rounds, n = (4, 2_000) if quick else (8, 25_000)
    modes = ("off", "on", "snapshot")
    times = dict.fromkeys(modes, 0.0)
    per_round: dict[str, list[float]] = {m: [] for m in modes}
    stats = {"max_backlog": 0, "limit": 0, "computed": 0, "deferred": 0}
    with tempfile.TemporaryDirectory(prefix="ar-bench-") as d:
        url = f"sqlite:///{d}/decisions.db"
        for i in range(rounds):
            for mode in modes if i % 2 == 0 else modes[::-1]:
                secs, s = _round(url, f"bench-{i}-{mode}", mode, n)
                times[mode] += secs
                per_round[mode].append(secs)
                if mode == "on":
                    stats["max_backlog"] = max(stats["max_backlog"], s["max_backlog"])
                    stats["limit"] = s["limit"]
                    stats["computed"] += s["computed"]
                    stats["deferred"] += s["deferred"]
    total = rounds * (n // CHUNK) * CHUNK
    off, on_rate, snap = (total / times[m] for m in modes)
    # Each round's ratio compares runs seconds apart: the median of those is robust to
    # the machine's slow phases, which the totals are not.
    ratios = np.array(per_round["off"]) / np.array(per_round["on"])
    snap_ratios = np.array(per_round["off"]) / np.array(per_round["snapshot"])
    ratio, snap_ratio = float(np.median(ratios)), float(np.median(snap_ratios))
    bounded = stats["max_backlog"] <= stats["limit"]
    return [
        Result(
            SECTION,
            "run() throughput, decision logging on / off (SQLite, batch)",
            f"≥ {TARGET_RATIO:.2f}×",
            f"{ratio:.3f}×",
            ratio >= TARGET_RATIO,
            f"median of {rounds} interleaved rounds of {n:,} requests (off, on, snapshot-only"
            f" and back; rounds {ratios.min():.2f}–{ratios.max():.2f}×); totals: on"
            f" {fmt_rate(on_rate)}, off {fmt_rate(off)}",
        ),
        Result(
            SECTION,
            "run() throughput, evidence logged, nothing queued / off",
            "—",
            f"{snap_ratio:.3f}×",
            None,
            f"rounds {snap_ratios.min():.2f}–{snap_ratios.max():.2f}×; total {fmt_rate(snap)}: the"
            " request's and the writer's share, without the background thread's"
            " (max_backlog=0: every propensity deferred)",
        ),
        Result(
            SECTION,
            "propensity backlog, max",
            f"≤ max_backlog ({stats['limit']:,})",
            f"{stats['max_backlog']:,}",
            bounded,
            f"{stats['computed']:,} propensities computed in the background, "
            f"{stats['deferred']:,} deferred to evaluate() (snapshot kept)",
        ),
    ]


if __name__ == "__main__":
    from benchmarks.run import print_table

    print_table(run("--quick" in sys.argv), "decisions")
