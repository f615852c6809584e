"""Ranking cost of an objective: ``rank`` per request, success objective vs cost/latency.

The Router's ranking step with ``objective="cost"`` calls
``ObjectiveThompsonSampling.rank(successes, failures, rng, costs=...)`` on 1-D arrays of
K paths, where the default calls ``ThompsonSampling.rank``. Same θ draws; the objective
adds a division per path and the per-attempt cost array. Interleaved rounds in one run,
best of five, CPU time of this process (``time.process_time``) so other load on a shared
machine inflates neither side.

Run: ``python -m benchmarks.objective_rank [--n 20000]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from adaptive_router.policies.objectives import ObjectiveThompsonSampling, expected_costs
from adaptive_router.policies.thompson import ThompsonSampling


def measure(k: int, n: int) -> dict[str, float]:
    """Best µs per ``rank`` (1-D, K paths) for the default and two objectives."""
    g = np.random.default_rng(k)
    s, f = g.uniform(0, 500, k), g.uniform(0, 100, k)
    means = [0.01 * (i + 1) if i else None for i in range(k)]
    lat = g.uniform(200, 2000, k)
    ts = ThompsonSampling(half_life=350)
    cost = ObjectiveThompsonSampling(half_life=350, objective="cost")
    latency = ObjectiveThompsonSampling(half_life=350, objective="latency")

    def rank_cost(rng: np.random.Generator) -> None:
        # The router's step: fill paths without data, then rank.
        cost.rank(s, f, rng, costs=expected_costs(means))

    def rank_latency(rng: np.random.Generator) -> None:
        latency.rank(s, f, rng, latencies=lat)

    def rank_default(rng: np.random.Generator) -> None:
        ts.rank(s, f, rng)

    cases = {"success (default)": rank_default, "cost": rank_cost, "latency": rank_latency}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(5):
        for name, fn in cases.items():
            rng = np.random.default_rng(0)
            t0 = time.process_time()
            for _ in range(n):
                fn(rng)
            best[name] = min(best[name], (time.process_time() - t0) / n * 1e6)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.objective_rank")
    parser.add_argument("--n", type=int, default=20_000, help="rank calls per round")
    args = parser.parse_args(argv)
    print("| K | success µs | cost µs (incl. expected_costs) | latency µs | cost ÷ success |")
    print("|---:|---:|---:|---:|---:|")
    for k in (2, 3, 5):
        r = measure(k, args.n)
        base = r["success (default)"]
        print(
            f"| {k} | {base:.2f} | {r['cost']:.2f} | {r['latency']:.2f} | {r['cost'] / base:.2f}× |"
        )


if __name__ == "__main__":
    main()
