"""Our Thompson Sampling against MABWiser's, per request, interleaved in one run.

Like for like, one decision and its feedback per request: MABWiser's
``MAB(arms, LearningPolicy.ThompsonSampling())`` with one ``predict()`` and one
``partial_fit``; our policy alone, ``ThompsonSampling.rank`` plus adding the outcome to
the evidence; the live Router's ``choose()`` + ``report()`` with the memory store; and
``run()`` per decision (paths that succeed with the arm's rate, failures fall back). The
rewards come from the same seeded Bernoulli arms for every contender. The ratios are
information, not targets: the Router does more per request (a pending decision, report
validation, metrics) than a bare bandit library.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress

import numpy as np

from adaptive_router import AllPathsFailed, Learning, Router, ThompsonSampling
from benchmarks.common import PATH_NAMES, Result, fmt_us, make_path, quiet_library_logs

SECTION = "peers"
RATES = dict(zip(PATH_NAMES, (0.6, 0.5, 0.4), strict=True))


Loop = Callable[[int], float]


def _mabwiser() -> Loop | None:
    """A loop of ``k`` MABWiser decisions returning seconds, or None if not installed."""
    try:
        from mabwiser.mab import MAB, LearningPolicy
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    mab = MAB(list(PATH_NAMES), LearningPolicy.ThompsonSampling(), seed=0)
    mab.fit(decisions=list(PATH_NAMES), rewards=[1, 1, 1])

    def loop(k: int) -> float:
        t0 = time.perf_counter()
        for _ in range(k):
            arm = mab.predict()
            mab.partial_fit([arm], [int(rng.random() < RATES[arm])])
        return time.perf_counter() - t0

    return loop


def _rank_update() -> Loop:
    """A loop of ``k`` decisions by the policy alone: ``rank`` on the evidence, then the
    chosen path's outcome added to it (what the Router's cache does), no Router around."""
    policy = ThompsonSampling()
    rng = np.random.default_rng(0)
    env = np.random.default_rng(1)
    succ, fail = np.zeros(len(PATH_NAMES)), np.zeros(len(PATH_NAMES))
    rates = np.array([RATES[n] for n in PATH_NAMES])

    def loop(k: int) -> float:
        t0 = time.perf_counter()
        for _ in range(k):
            arm = int(policy.rank(succ, fail, rng)[0])
            if env.random() < rates[arm]:
                succ[arm] += 1.0
            else:
                fail[arm] += 1.0
        return time.perf_counter() - t0

    return loop


def _choose_report(router: Router) -> Loop:
    """A loop of ``k`` choose + report decisions returning seconds."""
    rng = np.random.default_rng(0)

    def loop(k: int) -> float:
        t0 = time.perf_counter()
        for _ in range(k):
            d = router.choose()
            router.report(d.request_id, success=bool(rng.random() < RATES[d.path]))
        return time.perf_counter() - t0

    return loop


def _run(router: Router) -> Loop:
    """A loop of ``k`` run() decisions returning seconds."""
    run = router.run

    def loop(k: int) -> float:
        t0 = time.perf_counter()
        for _ in range(k):
            with suppress(AllPathsFailed):
                run()
        return time.perf_counter() - t0

    return loop


def _arm(rng: np.random.Generator, rate: float) -> Callable[[], bool]:
    return lambda: bool(rng.random() < rate)


def interleaved(loops: dict[str, Loop], n: int, rounds: int) -> dict[str, float]:
    """µs per decision of each loop, run in alternating rounds so load hits all alike."""
    per_round = max(n // rounds, 1)
    total = dict.fromkeys(loops, 0.0)
    for loop in loops.values():
        loop(max(per_round // 5, 50))  # warm-up
    for _ in range(rounds):
        for name, loop in loops.items():
            total[name] += loop(per_round)
    return {name: t / (per_round * rounds) * 1e6 for name, t in total.items()}


def run(quick: bool = False) -> list[Result]:
    """Rows: MABWiser, ours choose+report, ours run, and the ratio."""
    quiet_library_logs()
    n, rounds = (1_000, 2) if quick else (10_000, 10)
    two_phase = Router(
        [make_path(lambda: True, name) for name in PATH_NAMES],
        bool,
        task="bench-peers",
        store="memory://",
        learning=Learning(seed=0),
    )
    rng = np.random.default_rng(1)
    one_call = Router(
        [make_path(_arm(rng, RATES[name]), name) for name in PATH_NAMES],
        bool,
        task="bench-peers-run",
        store="memory://",
        learning=Learning(seed=0),
    )
    loops: dict[str, Loop] = {
        "rank": _rank_update(),
        "ours": _choose_report(two_phase),
        "run": _run(one_call),
    }
    theirs_loop = _mabwiser()
    if theirs_loop is not None:
        loops["mabwiser"] = theirs_loop
    try:
        us = interleaved(loops, n, rounds)
    finally:
        two_phase.close()
        one_call.close()
    note = f"{n:,} decisions each, 3 arms, {rounds} interleaved rounds"
    results = [
        Result(SECTION, "ours: policy.rank + evidence update", "—", fmt_us(us["rank"]), None, note),
        Result(SECTION, "ours: choose + report, memory store", "—", fmt_us(us["ours"]), None, note),
        Result(
            SECTION,
            "ours: run() per decision, memory store",
            "—",
            fmt_us(us["run"]),
            None,
            "fallback to the next path on failure",
        ),
    ]
    if "mabwiser" not in us:
        results.append(
            Result(SECTION, "MABWiser: predict + partial_fit", "—", "—", None, "not installed")
        )
        return results
    theirs = us["mabwiser"]
    results += [
        Result(SECTION, "MABWiser: predict + partial_fit", "—", fmt_us(theirs), None, note),
        Result(
            SECTION,
            "per request, ours ÷ MABWiser's time",
            "—",
            f"rank + update {theirs / us['rank']:.1f}×",
            None,
            f"choose + report {theirs / us['ours']:.1f}×; run() {theirs / us['run']:.1f}×; "
            "like for like: one decision and its feedback per request",
        ),
    ]
    return results
