"""The offline simulator's speed: decisions per second with K = 10 on one core, and the
ratio to MABWiser's Thompson Sampling on the same environment, measured in one run.

The simulator ranks all replications of a step in one call of the production
``ThompsonSampling.rank`` (numpy, single-threaded), so one process uses one core.
"""

from __future__ import annotations

import time

import numpy as np

from adaptive_router import ThompsonSampling
from adaptive_router.simulation import rngs, simulate, stationary
from benchmarks.common import Result, fmt_rate

SECTION = "simulator"
TARGET_RATE = 5_000_000.0
TARGET_RATIO = 100.0
RATES = [0.5] + [0.4] * 9  # Chapelle & Li's K = 10, eps = 0.1


def _ours(horizon: int, replications: int) -> float:
    """Decisions per second of the simulator (every replication's decision counts)."""
    env = stationary(RATES)
    best = 0.0
    for seed in range(3):  # best of three: the machine is shared
        rng, env_rng = rngs(seed)
        t0 = time.perf_counter()
        simulate(
            ThompsonSampling(explore=0.0),
            env,
            horizon,
            replications,
            rng=rng,
            env_rng=env_rng,
            fallback=False,
            checkpoints=10,
        )
        best = max(best, horizon * replications / (time.perf_counter() - t0))
    return best


def _mabwiser(decisions: int) -> float | None:
    try:
        from mabwiser.mab import MAB, LearningPolicy
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    rates = np.array(RATES)
    mab = MAB(list(range(len(RATES))), LearningPolicy.ThompsonSampling(), seed=0)
    mab.fit(np.array([], dtype=np.int64), np.array([], dtype=np.float64))
    t0 = time.perf_counter()
    for _ in range(decisions):
        arm = mab.predict()
        mab.partial_fit([arm], [int(rng.random() < rates[arm])])
    return decisions / (time.perf_counter() - t0)


def run(quick: bool = False) -> list[Result]:
    """Simulator decisions/s (K = 10) and its ratio to MABWiser's per-decision loop."""
    horizon, replications = (200, 1_000) if quick else (1_000, 5_000)
    ours = _ours(horizon, replications)
    theirs = _mabwiser(500 if quick else 3_000)
    rows = [
        Result(
            SECTION,
            "simulator decisions/s, K = 10, one core",
            f">= {fmt_rate(TARGET_RATE)}",
            fmt_rate(ours),
            ours >= TARGET_RATE,
            f"{replications} replications x {horizon} steps per numpy call",
        ),
    ]
    if theirs is None:
        rows.append(
            Result(
                SECTION,
                "simulator vs MABWiser",
                f">= {TARGET_RATIO:.0f}x",
                "—",
                None,
                "mabwiser not installed (pip install -e '.[bench]')",
            )
        )
    else:
        ratio = ours / theirs
        rows.append(
            Result(
                SECTION,
                "simulator vs MABWiser",
                f">= {TARGET_RATIO:.0f}x",
                f"{ratio:,.0f}x",
                ratio >= TARGET_RATIO,
                f"MABWiser predict + partial_fit: {fmt_rate(theirs)}",
            )
        )
    return rows
