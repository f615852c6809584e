"""The demo's story: three paths, the best one degrades from 0.95 to 0.30.

A hand-written fallback chain (try the large model, then the small one, then rules)
against the Router's policy without and with a half-life, and the oracle. Every request
goes through the fallback chain as ``Router.run`` does, ending with an always-works
cached answer, so every policy serves the same share of requests eventually; what
differs is how often the first attempt works, what the retries cost and how long the
chain takes.

Run: ``python -m simulations.degradation [--quick]``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_router.policy import Policy, ThompsonSampling
from adaptive_router.simulation import (
    Environment,
    FinalPath,
    Oracle,
    SimulationResult,
    StaticOrder,
    abrupt,
    compare,
)
from simulations._common import (
    Progress,
    command_line,
    fmt,
    output_paths,
    pct,
    pyplot,
    stage,
    table,
)

NAME = "degradation"
NAMES = ("large-model", "small-model", "rules")
RATES = (0.95, 0.85, 0.60)
COST_USD = (0.010, 0.002, 0.0002)
LATENCY_MS = (1500.0, 700.0, 150.0)
FINAL = FinalPath("cached-answer", latency_ms=5.0, cost_usd=0.0)
DROP_TO = 0.30
#: The half-life the sweep recommends (see half_life_sweep.md), in requests.
HALF_LIFE = 200.0


def three_paths(at: int | None = None, **kwargs: Any) -> Environment:
    """The three paths; with ``at``, the large model drops to 0.30 at that request."""
    fields: dict[str, Any] = {
        "names": NAMES,
        "cost_usd": COST_USD,
        "latency_ms": LATENCY_MS,
        "final": FINAL,
        **kwargs,
    }
    if at is None:
        return Environment(RATES, label="three paths, stationary", **fields)
    return abrupt(RATES, path=0, at=at, to=DROP_TO, **fields)


def policies() -> dict[str, Policy]:
    """The contenders, keyed by table label."""
    return {
        "static order (A → B → C)": StaticOrder([0, 1, 2]),
        "router, no half-life": ThompsonSampling(),
        f"router, half-life {HALF_LIFE:g} requests": ThompsonSampling(half_life=HALF_LIFE),
        "oracle": Oracle(),
    }


def run(
    *,
    quick: bool = False,
    seed: int = 0,
    horizon: int | None = None,
    runs: int | None = None,
    out: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Run the experiment; write ``degradation.md`` and ``.png``; return the markdown path."""
    horizon = horizon or (1_000 if quick else 10_000)
    runs = runs or (20 if quick else 200)
    at = horizon * 3 // 10
    md_path, png_path = output_paths(NAME, out, quick)
    env = three_paths(at)

    results: dict[str, SimulationResult] = {}
    for name, policy in policies().items():
        results |= compare(
            {name: policy},
            env,
            horizon,
            runs,
            seed,
            progress=stage(progress, name),
        )

    rows: list[list[object]] = []
    for name, res in results.items():
        s = res.summary()
        after = res.first_success[at:].mean()
        cost_after = 1000 * res.step_cost[at:].mean() if res.step_cost is not None else math.nan
        lag = res.adaptation_lag(path=0, since=at)
        rows.append(
            [
                name,
                pct(s["first_success"]),
                pct(after),
                pct(s["request_success"]),
                pct(s["fallback_rate"]),
                f"${s['cost_per_1k']:.2f}",
                f"${cost_after:.2f}",
                f"{s['latency_ms']:.0f}",
                fmt(lag) if math.isinf(lag) else f"{lag:.0f}",
                f"{s['regret']:,.0f}",
            ]
        )
    header = [
        "policy",
        "1st-attempt success",
        "… after the drop",
        "success before cached answer",
        "fallback rate",
        "cost / 1k req",
        "… after the drop",
        "mean latency ms",
        "adaptation lag (requests)",
        "regret",
    ]

    _plot(results, at, png_path, runs)

    static = results["static order (A → B → C)"].summary()
    hl = results[f"router, half-life {HALF_LIFE:g} requests"].summary()
    text = f"""# Degradation: the best path drops from 0.95 to 0.30

Three learned paths — {_describe()} — then an always-works
`{FINAL.name}` (free, {FINAL.latency_ms:g} ms). At request {at:,} of {horizon:,} the
large model's success rate drops to {DROP_TO}. Every request goes down the ranked
chain until a path succeeds, as `Router.run` does. {runs} runs, seed {seed}, the same
outcomes for every policy. Adaptation lag: requests after the drop until the large
model gets under 10% of first attempts (mean over runs, 10-request windows).

{table(header, rows)}

With the half-life the router gets the first attempt right
{pct(hl["first_success"])} of the time against {pct(static["first_success"])} for the
static chain, and serves 1,000 requests for ${hl["cost_per_1k"]:.2f} instead of
${static["cost_per_1k"]:.2f}, {static["latency_ms"] - hl["latency_ms"]:.0f} ms faster on
average. "Success before cached answer" is the same for every policy: when every
path is tried in turn, whether *some* path succeeds does not depend on the order — the
order decides how many attempts, how much money and how much time that takes. Without a
half-life the router keeps trusting thousands of old successes and needs several times
longer to move; the static chain never moves.

![traffic share, success and cost over time]({png_path.name})

Reproduce: `python -m simulations.{NAME}{" --quick" if quick else ""} --seed {seed}`.
"""
    md_path.write_text(text)
    return md_path


def _describe() -> str:
    return ", ".join(
        f"`{n}` (p = {p:g}, ${c:g}, {lat:g} ms)"
        for n, p, c, lat in zip(NAMES, RATES, COST_USD, LATENCY_MS, strict=True)
    )


def _plot(results: dict[str, SimulationResult], at: int, png_path: Path, runs: int) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    window = 50
    kernel = np.ones(window) / window
    for name, res in results.items():
        x = np.arange(window, res.horizon + 1)
        axes[0].plot(x, np.convolve(res.share[:, 0], kernel, mode="valid"), label=name)
        axes[1].plot(x, np.convolve(res.first_success, kernel, mode="valid"), label=name)
        if res.step_cost is not None:
            axes[2].plot(x, 1000 * np.convolve(res.step_cost, kernel, mode="valid"), label=name)
    axes[0].axhline(0.10, color="grey", ls=":", lw=1)
    axes[0].set_ylabel(f"share of first attempts on {NAMES[0]}")
    axes[1].set_ylabel("first-attempt success rate")
    axes[2].set_ylabel("cost per 1,000 requests (USD)")
    for ax in axes:
        ax.axvline(at, color="k", ls="--", lw=1)
        ax.set_xlabel(f"request (moving average over {window})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{NAMES[0]} drops from {RATES[0]} to {DROP_TO} at request {at:,} ({runs} runs, means)"
    )
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    command_line(NAME, run)
