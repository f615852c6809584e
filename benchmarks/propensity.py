"""Propensity computation speed: µs per decision, in vectorised batches, K = 3..6.

Each decision mixes sharp (α + β ~ 10⁴) and wide posteriors, a 2% exploration floor,
and every fourth decision has a skipped path: the work the router's propensity batcher
(or ``evaluate()``) does per logged decision. Best of three runs per setting, in CPU time
of this process (``time.process_time``, all threads), so that other load on a shared
machine does not inflate it; wall time on an idle core is about the same.

Run: ``python -m benchmarks.propensity [--batch 2048]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from adaptive_router.policies.propensity import first_choice_probabilities


def decisions(n: int, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` random decisions over ``k`` paths, half of the paths with sharp posteriors."""
    sharp = rng.random((n, k)) < 0.5
    size = np.where(sharp, 10 ** rng.uniform(3.5, 4.2, (n, k)), rng.uniform(2, 40, (n, k)))
    mean = rng.uniform(0.6, 0.9, (n, k))
    skipped = np.zeros((n, k), dtype=bool)
    skipped[::4, 0] = True
    return {"alpha": mean * size, "beta": (1 - mean) * size, "skipped": skipped}


def measure(n: int, k: int, repeats: int = 3) -> float:
    """Best µs per decision over ``repeats`` runs of a batch of ``n`` decisions."""
    args = decisions(n, k, np.random.default_rng(k))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        first_choice_probabilities(
            args["alpha"], args["beta"], explore=0.02, skipped=args["skipped"]
        )
        best = min(best, time.process_time() - t0)
    return best / n * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2048, help="decisions per batch")
    args = parser.parse_args(argv)
    print(f"| K | µs per decision (batch of {args.batch}) | µs, one decision alone |")
    print("|---:|---:|---:|")
    for k in range(3, 7):
        print(f"| {k} | {measure(args.batch, k):.1f} | {measure(1, k, repeats=50):.1f} |")


if __name__ == "__main__":
    main()
