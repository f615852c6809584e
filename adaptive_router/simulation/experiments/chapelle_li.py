"""Chapelle & Li (2011), "An Empirical Evaluation of Thompson Sampling", figure 1's setting.

K = 10 Bernoulli arms, the best at 0.5 and the nine others at 0.5 - ε, for ε = 0.1 and
0.02; one pull per step (no fallback). The production Thompson Sampling policy (pure, and
with the Router's default 2% exploration floor) against UCB1, ε-greedy and the Lai–Robbins
asymptotic lower bound.

Run: ``python -m adaptive_router.simulation.experiments.chapelle_li [--quick]``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from adaptive_router.policies.thompson import Policy, ThompsonSampling
from adaptive_router.simulation import (
    UCB1,
    EpsilonGreedy,
    SimulationResult,
    compare,
    lai_robbins_bound,
    lai_robbins_constant,
    stationary,
)
from adaptive_router.simulation.experiments._common import (
    Progress,
    command_line,
    fmt,
    output_paths,
    pyplot,
    rate,
    regret_curve,
    stage,
    table,
)

NAME = "chapelle_li"
HEADERS = ["ε", "policy", "regret at T", "÷ bound", "÷ UCB1", "decisions/s (engine)", "seconds"]
EPSILONS = (0.1, 0.02)
K = 10
BEST = 0.5


def policies() -> dict[str, Policy]:
    """The contenders, keyed by table label."""
    return {
        "TS (pure, explore=0)": ThompsonSampling(explore=0.0),
        "TS (Router default, explore=0.02)": ThompsonSampling(),
        "UCB1": UCB1(),
        "ε-greedy (ε=0.1)": EpsilonGreedy(0.1),
    }


def _one(
    eps: float,
    name: str,
    horizon: int,
    runs: int,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationResult:
    """One policy at one ε (a top-level function so that worker processes can run it)."""
    env = stationary([BEST] + [BEST - eps] * (K - 1), label=f"chapelle-li ε={eps:g}")
    policy = policies()[name]
    return compare({name: policy}, env, horizon, runs, seed, fallback=False, progress=progress)[
        name
    ]


def _crossing(eps: float) -> float:
    """Smallest T at which the bound reaches uniform random routing's regret ε(K−1)/K · T."""
    c = lai_robbins_constant([BEST] + [BEST - eps] * (K - 1))
    slope = eps * (K - 1) / K
    t = 2.0
    while c * math.log(t) > slope * t:
        t *= 1.01
    return t


def run(
    *,
    quick: bool = False,
    seed: int = 0,
    horizon: int | None = None,
    runs: int | None = None,
    out: Path | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> Path:
    """Run the experiment; write ``chapelle_li.md`` and ``.png``; return the markdown path.

    ``workers``: processes to spread the runs over (default: 2 for a full run, 1 when quick).
    """
    horizon = horizon or (1_000 if quick else 100_000)
    runs = runs or (10 if quick else 100)
    md_path, png_path = output_paths(NAME, out, quick)

    jobs = [(eps, name) for eps in EPSILONS for name in policies()]
    done: dict[tuple[float, str], SimulationResult] = {}
    if workers is None:
        workers = 1 if quick else min(2, os.cpu_count() or 1)
    if workers > 1:
        # One process per core: the 8 runs are independent and the simulator is
        # single-threaded, so this halves the wall time of a full run on two cores.
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {
                pool.submit(_one, eps, name, horizon, runs, seed): (eps, name) for eps, name in jobs
            }
            for i, future in enumerate(as_completed(futures), start=1):
                done[futures[future]] = future.result()
                if progress is not None:
                    progress("runs", i, len(jobs))
    else:
        for eps, name in jobs:
            done[eps, name] = _one(
                eps, name, horizon, runs, seed, stage(progress, f"ε={eps:g} {name}")
            )
    results = {eps: {name: done[eps, name] for name in policies()} for eps in EPSILONS}

    rows: list[list[object]] = []
    verdicts: list[str] = []
    floor_costs: list[str] = []
    for eps, by_policy in results.items():
        rates = [BEST] + [BEST - eps] * (K - 1)
        bound = float(lai_robbins_bound(rates, horizon))
        ucb = float(by_policy["UCB1"].final_regret.mean())
        for name, res in by_policy.items():
            s = res.summary()
            rows.append(
                [
                    f"{eps:g}",
                    name,
                    f"{fmt(s['regret'])} ± {fmt(s['regret_ci'])}",
                    f"{s['regret'] / bound:.2f}",
                    f"{s['regret'] / ucb:.2f}",
                    f"{rate(res.decisions_per_second)} ({res.engine})",
                    f"{res.seconds:.1f}",
                ]
            )
        rows.append(
            [f"{eps:g}", "Lai–Robbins bound", fmt(bound), "1.00", f"{bound / ucb:.2f}", "", ""]
        )
        pure = float(by_policy["TS (pure, explore=0)"].final_regret.mean())
        default = float(by_policy["TS (Router default, explore=0.02)"].final_regret.mean())
        # Paired by run: both policies face the same outcomes (the same env seed).
        diff = (
            by_policy["TS (Router default, explore=0.02)"].final_regret
            - by_policy["TS (pure, explore=0)"].final_regret
        )
        half = 1.96 * float(diff.std(ddof=1)) / math.sqrt(diff.size) if diff.size > 1 else 0.0
        naive = 0.02 * (K - 1) / K * eps * horizon
        floor_costs.append(
            f"- ε = {eps:g}: **{diff.mean():+,.0f} ± {half:,.0f}** regret at T "
            f"(default − pure, paired over the {diff.size} runs; the naive "
            f"0.02 × (K−1)/K × ε × T is {naive:,.0f})."
        )
        verdicts.append(
            f"- ε = {eps:g}: pure TS regret is {pure / ucb:.2f}× UCB1's and "
            f"{pure / bound:.2f}× the Lai–Robbins value at T; with the 2% exploration floor "
            f"{default / ucb:.2f}× and {default / bound:.2f}×."
        )

    plt = pyplot()
    fig, axes = plt.subplots(1, len(EPSILONS), figsize=(12, 4.5))
    for ax, (eps, by_policy) in zip(axes, results.items(), strict=True):
        rates = [BEST] + [BEST - eps] * (K - 1)
        for res in by_policy.values():
            regret_curve(ax, res)
        steps = next(iter(by_policy.values())).steps
        ax.plot(steps, lai_robbins_bound(rates, steps), "k--", lw=1.2, label="Lai–Robbins bound")
        ax.set_xscale("log")
        ax.set_xlim(10, horizon)
        ax.set_title(f"K={K}, best {BEST}, others {BEST - eps:g} (ε={eps:g})")
        ax.set_xlabel("requests (log scale)")
        ax.set_ylabel("cumulative regret (mean, 95% band)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Chapelle & Li (2011) setting — {runs} runs × {horizon:,} requests")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)

    crossings = ", ".join(f"ε={eps:g}: T ≈ {_crossing(eps):,.0f}" for eps in EPSILONS)
    consts = ", ".join(
        f"ε={eps:g}: {lai_robbins_constant([BEST] + [BEST - eps] * (K - 1)):.1f}"
        for eps in EPSILONS
    )
    text = f"""# Chapelle & Li (2011): Thompson Sampling vs UCB1, ε-greedy and the lower bound

K = {K} Bernoulli paths, the best succeeds with p = {BEST}, the nine others with
p = {BEST} − ε; one attempt per request (no fallback), {runs} independent runs of
{horizon:,} requests, seed {seed}, every policy facing the same outcomes. Regret is
the expected first-attempt successes lost to an oracle, at T = {horizon:,}
(mean ± 95% CI over runs). "TS" is `adaptive_router.policies.thompson.ThompsonSampling`, the
class the Router runs; it ran on the simulator's compiled engine, the baselines on the
numpy engine (two engines, the same choices: `tests/test_simulation_kernel.py`). Two
runs shared the machine's two cores, so speeds are per process. The Lai–Robbins bound
is Σ (μ* − μᵢ)/KL(μᵢ, μ*) · ln T (constants: {consts}). It is asymptotic, not a
finite-time floor: below the T at which it meets the regret of routing uniformly at
random ({crossings}) no policy can be
near it, and a good policy sits below it for a long while.

{table(HEADERS, rows)}

{chr(10).join(verdicts)}

What the exploration floor (2% of requests go to a uniformly chosen path, so that a
recovered path is noticed) costs in this stationary world, measured as the difference
between the Router's default and pure TS on the same outcomes (mean ± 95% interval):

{chr(10).join(floor_costs)}

The naive figure counts each floor request as one more suboptimal pull on top of what
pure TS does; but the floor's pulls are also evidence (which can spare TS some of its own
exploration) and they change every later draw, so the measured difference is the figure
to use. The floor buys the recovery behaviour
measured in `degradation` and `half_life_sweep`.

![regret curves]({png_path.name})

Reproduce: `python -m {__package__}.{NAME}{" --quick" if quick else ""} --seed {seed}`.
"""
    md_path.write_text(text)
    return md_path


if __name__ == "__main__":
    command_line(NAME, run)
