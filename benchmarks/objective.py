"""Run overhead of ``Router(objective="cost")`` against the default objective, in one run.

Two routers over the same three no-op paths (each returns its cost in ``Usage``, so the
cost objective ranks by measured means), on the memory store. Their calls are timed in
interleaved pairs — default then cost, cost then default, alternating — so the machine's
slow phases hit both alike; each round's figure is the ratio of the two p50 overheads
(router time minus the bare path call's p50), and the reported ratio is the median over
``ROUNDS`` rounds (every round listed in the note). The second pair does the same with
every request in a named context, where the cost objective also mixes the context's
cost evidence with the task level's.

    .venv/bin/python -m benchmarks.run --only objective
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from adaptive_router import Learning, Router
from adaptive_router.outcomes import Result as PathResult
from adaptive_router.outcomes import Usage
from benchmarks.common import (
    PATH_NAMES,
    Result,
    always_ok,
    fmt_us,
    make_path,
    pct_us,
    quiet_library_logs,
)

SECTION = "objective"
TARGET = 1.3
ROUNDS = 5
_COSTS = (0.010, 0.002, 0.001)


def _priced(cost: float) -> Callable[[], PathResult]:
    usage = Usage(cost_usd=cost)

    def call() -> PathResult:
        return PathResult(True, usage)

    return call


def _router(objective: str, task: str, seed: int) -> Router:
    paths = [make_path(_priced(c), n) for n, c in zip(PATH_NAMES, _COSTS, strict=True)]
    return Router(
        paths,
        always_ok,
        task=task,
        store="memory://",
        objective=objective,
        learning=Learning(seed=seed),
    )


def _pairs(a: Router, b: Router, n: int, kw: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-call ns of ``a.run`` and ``b.run``, ``n`` interleaved pairs, alternating which
    goes first."""
    pc = time.perf_counter_ns
    ta = np.empty(n, dtype=np.int64)
    tb = np.empty(n, dtype=np.int64)
    run_a, run_b = a.run, b.run
    for i in range(n):
        if i & 1:
            t0 = pc()
            run_b(**kw)
            t1 = pc()
            run_a(**kw)
            t2 = pc()
            tb[i], ta[i] = t1 - t0, t2 - t1
        else:
            t0 = pc()
            run_a(**kw)
            t1 = pc()
            run_b(**kw)
            t2 = pc()
            ta[i], tb[i] = t1 - t0, t2 - t1
    return ta, tb


def _baseline(n: int) -> float:
    call = _priced(0.001)
    pc = time.perf_counter_ns
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = pc()
        call()
        out[i] = pc() - t0
    return pct_us(out, 50)


def _measure(label: str, context: str | None, n: int) -> Result:
    default = _router("success", f"bench-objective-default-{label}", 1)
    cost = _router("cost", f"bench-objective-cost-{label}", 1)
    kw: dict[str, Any] = {} if context is None else {"context": context}
    try:
        _pairs(default, cost, max(n // 10, 200), kw)  # warm-up, and every path has costs
        base = _baseline(n)
        ratios: list[float] = []
        p50s: list[tuple[float, float]] = []
        for _ in range(ROUNDS):
            ta, tb = _pairs(default, cost, n, kw)
            oa, ob = pct_us(ta, 50) - base, pct_us(tb, 50) - base
            p50s.append((oa, ob))
            ratios.append(ob / oa)
    finally:
        default.close()
        cost.close()
    ratio = statistics.median(ratios)
    mid = sorted(range(ROUNDS), key=ratios.__getitem__)[ROUNDS // 2]
    oa, ob = p50s[mid]
    rounds = ", ".join(f"{r:.2f}×" for r in ratios)
    return Result(
        SECTION,
        f"run overhead, objective=cost ÷ default{label}",
        f"≤ {TARGET:.1f}×",
        f"{ratio:.2f}× (p50 {fmt_us(ob)} vs {fmt_us(oa)})",
        ratio <= TARGET,
        f"memory store, 3 paths; {n:,} interleaved pairs per round, median of {ROUNDS} "
        f"rounds ({rounds})",
    )


def run(quick: bool = False) -> list[Result]:
    """The ratio without a context and in a named context."""
    quiet_library_logs()
    n = 2_000 if quick else 20_000
    return [_measure("", None, n), _measure(", named context", "ctx", n)]


if __name__ == "__main__":
    for r in run():
        print(r)
