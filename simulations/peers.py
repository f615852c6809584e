"""Our Thompson Sampling next to MABWiser's, on the same seeded world.

MABWiser (Fidelity's bandit library, optional: ``pip install mabwiser``) is driven the
way an online service would drive it — ``predict()`` then ``partial_fit()`` per
request — on exactly the outcomes our simulator draws (:func:`outcome_table`), so the
regret curves are comparable run for run. Decisions per second are measured in the same
process, one after the other. Without MABWiser the table shows our side only.

Run: ``python -m simulations.peers [--quick]``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_router.policy import FloatArray, ThompsonSampling
from adaptive_router.simulation import (
    SimulationResult,
    lai_robbins_bound,
    outcome_table,
    rngs,
    simulate,
    stationary,
)
from simulations._common import (
    Progress,
    command_line,
    output_paths,
    pct,
    pyplot,
    rate,
    regret_curve,
    stage,
    table,
)

NAME = "peers"
K = 10
RATES = (0.5,) + (0.4,) * (K - 1)
#: Replications in the large batch used to measure our throughput (K = 10).
BATCH = 1_000


def mabwiser_available() -> bool:
    """True when the optional ``mabwiser`` package imports."""
    try:
        import mabwiser.mab  # noqa: F401
    except ImportError:
        return False
    return True


def run_mabwiser(
    outcomes: np.ndarray[Any, np.dtype[np.bool_]],
    rates: FloatArray,
    steps: np.ndarray[Any, np.dtype[np.intp]],
    seed: int,
    progress: Progress | None = None,
) -> tuple[FloatArray, FloatArray, float]:
    """MABWiser TS on a pre-drawn ``(T, R, K)`` outcome table.

    Returns cumulative regret at ``steps`` (``(C, R)``), the first-attempt success rate
    per run and the seconds spent in MABWiser's ``predict``/``partial_fit``.
    """
    from mabwiser.mab import MAB, LearningPolicy

    horizon, runs, k = outcomes.shape
    best = float(rates.max())
    regret = np.empty((steps.size, runs))
    success = np.empty(runs)
    seconds = 0.0
    for r in range(runs):
        mab = MAB(list(range(k)), LearningPolicy.ThompsonSampling(), seed=seed * 10_000 + r)
        mab.fit(np.array([], dtype=np.int64), np.array([], dtype=np.float64))
        chosen = np.empty(horizon, dtype=np.intp)
        start = time.perf_counter()
        for t in range(horizon):
            arm = mab.predict()
            chosen[t] = arm
            mab.partial_fit([arm], [int(outcomes[t, r, arm])])
        seconds += time.perf_counter() - start
        cum = np.cumsum(best - rates[chosen])
        regret[:, r] = cum[steps - 1]
        success[r] = outcomes[np.arange(horizon), r, chosen].mean()
        if progress is not None:
            progress("MABWiser", r + 1, runs)
    return regret, success, seconds


def run(
    *,
    quick: bool = False,
    seed: int = 0,
    horizon: int | None = None,
    runs: int | None = None,
    out: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Run the comparison; write ``peers.md`` and ``.png``; return the markdown path."""
    horizon = horizon or (300 if quick else 10_000)
    runs = runs or (2 if quick else 20)
    batch = 50 if quick else BATCH
    md_path, png_path = output_paths(NAME, out, quick)
    env = stationary(RATES, label="K=10, 0.5 vs 0.4")
    rates = np.asarray(RATES)

    ours: dict[str, SimulationResult] = {}
    for name, policy in {
        "ours: TS (pure, explore=0)": ThompsonSampling(explore=0.0),
        "ours: TS (Router default, explore=0.02)": ThompsonSampling(),
    }.items():
        rng, env_rng = rngs(seed)
        ours[name] = simulate(
            policy,
            env,
            horizon,
            runs,
            rng=rng,
            env_rng=env_rng,
            fallback=False,
            label=name,
            progress=stage(progress, name),
        )
    pure = ours["ours: TS (pure, explore=0)"]
    rng, env_rng = rngs(seed)
    wide = simulate(
        ThompsonSampling(explore=0.0),
        env,
        max(horizon // 5, 100),
        batch,
        rng=rng,
        env_rng=env_rng,
        fallback=False,
        progress=stage(progress, f"ours, {batch} runs at once"),
    )

    have_peer = mabwiser_available()
    peer_regret: FloatArray | None = None
    peer_success = math.nan
    peer_dps = math.nan
    if have_peer:
        _, env_rng = rngs(seed)
        # The very draws our simulate() consumed: both libraries face the same outcomes.
        outcomes = outcome_table(env, horizon, runs, env_rng)
        peer_regret, success, peer_s = run_mabwiser(outcomes, rates, pure.steps, seed, progress)
        peer_success = float(success.mean())
        peer_dps = horizon * runs / peer_s

    bound = float(lai_robbins_bound(RATES, horizon))
    rows: list[list[object]] = []
    for name, res in ours.items():
        s = res.summary()
        rows.append(
            [
                name,
                f"{s['regret']:,.1f} ± {s['regret_ci']:.1f}",
                pct(s["first_success"]),
                f"{rate(res.decisions_per_second)} ({res.engine})",
            ]
        )
    rows.append(
        [
            f"ours: TS (pure), {batch} runs per simulate call",
            "",
            "",
            f"{rate(wide.decisions_per_second)} ({wide.engine})",
        ]
    )
    if peer_regret is not None:
        final = peer_regret[-1]
        ci = 1.96 * final.std(ddof=1) / math.sqrt(runs) if runs > 1 else 0.0
        rows.append(
            [
                "MABWiser TS (predict + partial_fit)",
                f"{final.mean():,.1f} ± {ci:.1f}",
                pct(peer_success),
                rate(peer_dps),
            ]
        )
    rows.append(["Lai–Robbins bound", f"{bound:,.1f}", "", ""])

    if have_peer:
        speed = (
            f"Measured in this run: our simulator ({wide.engine} engine) makes "
            f"{rate(wide.decisions_per_second)} decisions with {batch} "
            f"runs per call, {wide.decisions_per_second / peer_dps:,.0f}× MABWiser's "
            f"{rate(peer_dps)}; with only the {runs} runs of the regret comparison per call it "
            f"is {pure.decisions_per_second / peer_dps:,.0f}× faster."
        )
    else:
        speed = "MABWiser is not installed (`pip install mabwiser`): only our side was measured."

    _plot(ours, peer_regret, pure.steps, png_path, horizon, runs, peer_dps, wide)

    text = f"""# Peers: our Thompson Sampling and MABWiser's on the same world

K = {K} paths (0.5 and nine at 0.4), {runs} runs of {horizon:,} requests, seed {seed}, one
attempt per request. Both libraries see identical outcomes: MABWiser is fed the outcome
table our simulator draws from the same seed. Both use Beta(1, 1) priors; "pure" is our
`ThompsonSampling(explore=0.0)`, the same model as MABWiser's; the Router's default adds a
2% exploration floor. Regret: mean ± 95% CI at T.

{table(["policy", "regret at T", "1st-attempt success", "decisions/s (engine)"], rows)}

{speed} The regret of the two pure Thompson Samplers should agree within the confidence
intervals: they are the same algorithm with different random streams.

![regret and throughput]({png_path.name})

Reproduce: `python -m simulations.{NAME}{" --quick" if quick else ""} --seed {seed}`.
"""
    md_path.write_text(text)
    return md_path


def _plot(
    ours: dict[str, SimulationResult],
    peer_regret: FloatArray | None,
    steps: np.ndarray[Any, np.dtype[np.intp]],
    png_path: Path,
    horizon: int,
    runs: int,
    peer_dps: float,
    wide: SimulationResult,
) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    ax = axes[0]
    for res in ours.values():
        regret_curve(ax, res)
    if peer_regret is not None:
        mean = peer_regret.mean(axis=1)
        half = 1.96 * peer_regret.std(axis=1, ddof=1) / math.sqrt(runs) if runs > 1 else 0 * mean
        (line,) = ax.plot(steps, mean, label="MABWiser TS", lw=1.6, color="tab:green")
        ax.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.2, lw=0)
    ax.plot(steps, lai_robbins_bound(RATES, steps), "k--", lw=1.2, label="Lai–Robbins bound")
    ax.set_xscale("log")
    ax.set_xlim(10, horizon)
    ax.set_xlabel("requests (log scale)")
    ax.set_ylabel("cumulative regret (mean, 95% band)")
    ax.set_title(f"same outcomes, {runs} runs")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)

    ax = axes[1]
    labels = [f"ours\n{wide.replications} runs/call", f"ours\n{runs} runs/call"]
    values = [wide.decisions_per_second, next(iter(ours.values())).decisions_per_second]
    if math.isfinite(peer_dps):
        labels.append("MABWiser")
        values.append(peer_dps)
    bars = ax.bar(labels, values, color=["tab:blue", "tab:cyan", "tab:green"][: len(values)])
    ax.bar_label(bars, labels=[rate(v) for v in values], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("decisions per second (K = 10, one core)")
    ax.set_title("throughput, measured in one run")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    command_line(NAME, run)
