"""The spend target in the live Router: realized spend against the target.

    .venv/bin/python -m benchmarks.spend_target            # ~1 minute on one core
    .venv/bin/python -m benchmarks.spend_target --seeds 3  # a smoke run

A simulated world of three paths (success rate, cost per attempt): ``large`` (0.90,
$0.010), ``medium`` (0.80, $0.003), ``small`` (0.60, $0.0005). A live ``Router`` on
``memory://`` with ``objective=Objective(target_usd_per_request=B)`` and
``Budget(max_attempts=1)`` routes 6,000 requests, one a second of its own clock (the
task's half-life one hour), learning success and cost from scratch. Reported per target
B over ``--seeds`` runs (mean and range): the realized spend per request over requests
2,001..6,000 divided by B, the success rate over the same requests, each path's share,
and λ at the end. A target above the large path's cost shows the router buying the best
path at its own price (λ = 0), never spending up to the target.

Writes ``benchmarks/results-spend-target.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path as FsPath

from adaptive_router import AllPathsFailed, Budget, Learning, Objective, Path, Router
from adaptive_router.outcomes import Result, Usage

ROOT = FsPath(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results-spend-target.md"
WORLD = {"large": (0.90, 0.010), "medium": (0.80, 0.003), "small": (0.60, 0.0005)}
TARGETS = (0.001, 0.002, 0.004, 0.008, 0.02)
REQUESTS = 6000
WARMUP = 2000


def one_run(target: float, seed: int) -> dict[str, float]:
    """One router's 6,000 requests under ``target``: its figures after the warm-up."""
    rng = random.Random(seed)

    def make(name: str) -> Path:
        p, c = WORLD[name]
        return Path(lambda: Result(rng.random() < p, Usage(cost_usd=c)), name=name)

    clock = {"t": 1_700_000_000.0}

    def now() -> float:
        return clock["t"]

    with Router(
        [make(n) for n in WORLD],
        bool,
        "simulated",
        store="memory://",
        objective=Objective(target_usd_per_request=target),
        budget=Budget(max_attempts=1),
        half_life=3600.0,
        learning=Learning(seed=seed, clock=now),
    ) as router:
        for _ in range(REQUESTS):
            clock["t"] += 1.0
            with contextlib.suppress(AllPathsFailed):
                router.run()
        rows = router.store.outcomes("simulated")
        price = router.spend().price_per_usd
    by_request = {o.request_id: o for o in rows}
    ordered = sorted(by_request.values(), key=lambda o: o.created_at)[WARMUP:]
    n = len(ordered)
    out = {
        "spend_ratio": sum(o.cost_usd or 0.0 for o in ordered) / n / target,
        "success": sum(o.success for o in ordered) / n,
        "price": price,
    }
    for name in WORLD:
        out[name] = sum(o.path == name for o in ordered) / n
    return out


def _fmt(values: Sequence[float], spec: str) -> str:
    mean = statistics.fmean(values)
    return f"{mean:{spec}} ({min(values):{spec}}–{max(values):{spec}})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spend_target", description=__doc__)
    parser.add_argument("--seeds", type=int, default=10, help="runs per target (default 10)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    args = parser.parse_args(argv)
    logging.getLogger("adaptive_router").setLevel(logging.ERROR)
    lines = [
        "# Spend target in the live Router",
        "",
        f"`python -m benchmarks.spend_target --seeds {args.seeds}`: a live `Router` on "
        "`memory://`, three simulated paths "
        + ", ".join(f"{n} ({p:.2f}, ${c})" for n, (p, c) in WORLD.items())
        + f", one attempt per request, {REQUESTS:,} requests a run (half-life 3,600 "
        f"requests), {args.seeds} runs per target; figures over requests "
        f"{WARMUP + 1:,}..{REQUESTS:,}, mean (min–max over runs).",
        "",
        "| target B ($/request) | realized spend / B | success rate | large | medium | small "
        "| λ at the end ($⁻¹) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for target in TARGETS:
        runs = [one_run(target, seed) for seed in range(args.seeds)]
        lines.append(
            f"| {target:g} | {_fmt([r['spend_ratio'] for r in runs], '.3f')} "
            f"| {_fmt([r['success'] for r in runs], '.3f')} "
            + " ".join(f"| {_fmt([r[n] for r in runs], '.2f')}" for n in WORLD)
            + f" | {_fmt([r['price'] for r in runs], '.3g')} |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.no_write:
        sys.stdout.write(text)
    else:
        RESULTS.write_text(text, encoding="utf-8")
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
