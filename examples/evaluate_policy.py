"""What would another policy have scored on the demo's traffic? Off-policy evaluation.

Every request the router routes logs the probability with which it chose its first
path (its propensity). `evaluate()` reweights those logged requests to estimate what a
*target* would have scored on them — always one path, a fixed mix, or another objective
— with a 95% interval, without running an experiment. This reads the database the demo
writes (`make demo` or `adaptive-router demo` leave `adaptive_router_demo.db`); when it
is not there, it runs the demo first (against the bundled fake provider: no API key).

    python examples/evaluate_policy.py [--requests N]   # N: the demo's size if it runs
"""

from __future__ import annotations

import argparse
import pathlib
from datetime import timedelta

from adaptive_router.demo import CLAUDE, DEFAULT_DB, DEFAULT_REQUESTS, GPT, TASK, run_demo
from adaptive_router.ope.evaluation import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS)
    args = parser.parse_args()
    if not pathlib.Path(DEFAULT_DB).exists():
        print(f"{DEFAULT_DB} not found: running the demo ({args.requests} requests)")
        run_demo(DEFAULT_DB, requests=args.requests)
    url = f"sqlite:///{DEFAULT_DB}"

    targets: list[tuple[str, str | dict[str, float], str]] = [
        (f"always {CLAUDE}", CLAUDE, "success"),
        (f"always {GPT}", GPT, "success"),
        ("half and half", {GPT: 0.5, CLAUDE: 0.5}, "success"),
        ("the cost objective", "cost", "attempt_cost"),
    ]
    for label, target, reward in targets:
        # The demo's requests are stamped one simulated second apart, ending now.
        ev = evaluate(url, TASK, target, reward=reward, window=timedelta(days=7))
        value = "none" if ev.value is None else f"{ev.value:.6g}"
        print(
            f"{label}: reward={reward} value={value} low={ev.low:.6g} high={ev.high:.6g} "
            f"logged={ev.logged:.6g} rows={ev.rows} ess={ev.effective_sample_size:.1f}"
        )
        if ev.value is None:
            print(f"  no estimate: {ev.reason}")


if __name__ == "__main__":
    main()
