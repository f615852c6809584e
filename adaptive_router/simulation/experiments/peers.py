"""Our Thompson Sampling next to MABWiser's, on the same seeded world.

MABWiser (Fidelity's bandit library, optional: ``pip install mabwiser``) is driven the
way an online service would drive it — ``predict()`` then ``partial_fit()`` per
request — on exactly the outcomes our simulator draws (:func:`outcome_table`), so the
regret curves are comparable run for run.

Speed is compared like for like, per request, in one process with the contenders
interleaved in rounds: our policy's ``rank`` plus the evidence update, the live Router's
``choose`` + ``report`` (memory store), and MABWiser's ``predict`` + ``partial_fit``. The
batched simulator's rate is shown beside them for what it is: many replications per call,
environment draws included, not one service answering one request. Without MABWiser the
tables show our side only.

Run: ``python -m adaptive_router.simulation.experiments.peers [--quick]``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_router.policies.thompson import FloatArray, ThompsonSampling
from adaptive_router.simulation import (
    SimulationResult,
    lai_robbins_bound,
    outcome_table,
    rngs,
    simulate,
    stationary,
)
from adaptive_router.simulation.experiments._common import (
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

#: A loop of ``n`` single-request decisions, returning the seconds it took.
Loop = Callable[[int], float]


def _rank_loop(seed: int) -> Loop:
    """``ThompsonSampling.rank`` on K evidence sums, then the chosen path's outcome added:
    the policy's share of one live request, without the Router around it."""
    policy = ThompsonSampling()
    rng = np.random.default_rng(seed)
    env = np.random.default_rng(seed + 1)
    succ, fail = np.zeros(K), np.zeros(K)
    rates = np.asarray(RATES)

    def loop(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            arm = int(policy.rank(succ, fail, rng)[0])
            if env.random() < rates[arm]:
                succ[arm] += 1.0
            else:
                fail[arm] += 1.0
        return time.perf_counter() - t0

    return loop


def _router_loop(seed: int) -> tuple[Loop, Callable[[], None]]:
    """The live Router's ``choose()`` + ``report()`` per request on the memory store."""
    from adaptive_router import Learning, Router
    from adaptive_router import Path as RoutePath

    # Quiet for the timing only: the caller's logging level comes back on close.
    logger = logging.getLogger("adaptive_router")
    level = logger.level
    logger.setLevel(logging.ERROR)
    router = Router(
        [RoutePath(lambda: True, name=f"p{i}") for i in range(K)],
        bool,
        task="peers-speed",
        store="memory://",
        learning=Learning(seed=seed),
    )
    env = np.random.default_rng(seed + 1)
    rate_of = {f"p{i}": r for i, r in enumerate(RATES)}

    def loop(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            d = router.choose()
            router.report(d.request_id, success=bool(env.random() < rate_of[d.path]))
        return time.perf_counter() - t0

    def close() -> None:
        router.close()
        logger.setLevel(level)

    return loop, close


def _mabwiser_loop(seed: int) -> Loop:
    """MABWiser's ``predict()`` + ``partial_fit()`` per request."""
    from mabwiser.mab import MAB, LearningPolicy

    mab = MAB(list(range(K)), LearningPolicy.ThompsonSampling(), seed=seed)
    mab.fit(np.array([], dtype=np.int64), np.array([], dtype=np.float64))
    env = np.random.default_rng(seed + 1)

    def loop(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            arm = mab.predict()
            mab.partial_fit([arm], [int(env.random() < RATES[arm])])
        return time.perf_counter() - t0

    return loop


def per_request_rates(
    n: int, rounds: int, seed: int, progress: Progress | None = None
) -> dict[str, tuple[float, list[float]]]:
    """Decisions/s of each per-request loop: (overall, per round), interleaved in rounds so
    that the machine's slow and fast phases hit every contender alike."""
    loops: dict[str, Loop] = {"rank": _rank_loop(seed)}
    router_loop, close = _router_loop(seed)
    loops["router"] = router_loop
    if mabwiser_available():
        loops["mabwiser"] = _mabwiser_loop(seed)
    per_round = max(n // rounds, 1)
    spent: dict[str, list[float]] = {name: [] for name in loops}
    try:
        for loop in loops.values():
            loop(max(per_round // 5, 50))  # warm-up
        for i in range(rounds):
            for name, loop in loops.items():
                spent[name].append(loop(per_round))
            if progress is not None:
                progress("per-request loops", i + 1, rounds)
    finally:
        close()
    return {
        name: (per_round * rounds / sum(secs), [per_round / s for s in secs])
        for name, secs in spent.items()
    }


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
    if have_peer:
        _, env_rng = rngs(seed)
        # The very draws our simulate() consumed: both libraries face the same outcomes.
        outcomes = outcome_table(env, horizon, runs, env_rng)
        peer_regret, success, _ = run_mabwiser(outcomes, rates, pure.steps, seed, progress)
        peer_success = float(success.mean())

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
                "per request: below",
            ]
        )
    rows.append(["Lai–Robbins bound", f"{bound:,.1f}", "", ""])

    n, rounds = (2_000, 2) if quick else (20_000, 10)
    speeds = per_request_rates(n, rounds, seed, progress)
    speed_rows: list[list[object]] = []
    labels = {
        "rank": "ours: `policy.rank` + evidence update, per request",
        "router": "ours: live Router `choose` + `report`, per request (memory store)",
        "mabwiser": "MABWiser: `predict` + `partial_fit`, per request",
    }
    peer_rate = speeds["mabwiser"][0] if "mabwiser" in speeds else math.nan
    for key, label in labels.items():
        if key not in speeds:
            continue
        overall, by_round = speeds[key]
        speed_rows.append(
            [
                label,
                rate(overall),
                f"{rate(min(by_round))} – {rate(max(by_round))}",
                f"{overall / peer_rate:.1f}×" if math.isfinite(peer_rate) else "",
            ]
        )
    speed_rows.append(
        [
            f"batched simulator, environment draws included, {batch} replications per call "
            f"({wide.engine})",
            rate(wide.decisions_per_second),
            "one call",
            f"{wide.decisions_per_second / peer_rate:,.0f}×" if math.isfinite(peer_rate) else "",
        ]
    )
    if math.isfinite(peer_rate):
        speed = (
            f"Per request, like for like, our policy decides "
            f"{speeds['rank'][0] / peer_rate:.1f}× as fast as MABWiser and the live Router "
            f"(choose + report, which also stores a pending decision, validates the report "
            f"and feeds metrics) {speeds['router'][0] / peer_rate:.1f}× as fast. The batched "
            f"simulator's {wide.decisions_per_second / peer_rate:,.0f}× is not a per-request "
            f"speed: it runs {batch} independent replications per call in compiled code and "
            f"is what makes thousands of simulated runs cheap."
        )
    else:
        speed = "MABWiser is not installed (`pip install mabwiser`): only our side was measured."
    speed_table = table(
        ["what is timed", "decisions/s", f"range over {rounds} rounds", "÷ MABWiser"],
        speed_rows,
    )

    _plot(ours, peer_regret, pure.steps, png_path, horizon, runs, speeds, wide)

    text = f"""# Peers: our Thompson Sampling and MABWiser's on the same world

K = {K} paths (0.5 and nine at 0.4), {runs} runs of {horizon:,} requests, seed {seed}, one
attempt per request. Both libraries see identical outcomes: MABWiser is fed the outcome
table our simulator draws from the same seed. Both use Beta(1, 1) priors; "pure" is our
`ThompsonSampling(explore=0.0)`, the same model as MABWiser's; the Router's default adds a
2% exploration floor. Regret: mean ± 95% CI at T.

{table(["policy", "regret at T", "1st-attempt success", "simulator decisions/s (engine)"], rows)}

The regret of the two pure Thompson Samplers should agree within the confidence
intervals: they are the same algorithm with different random streams. The last column
is the simulator's rate for that row's {runs} runs per call (environment included).

## Speed, per request

K = {K}, {n:,} decisions per contender in {rounds} interleaved rounds, one process.

{speed_table}

{speed}

![regret and throughput]({png_path.name})

Reproduce: `python -m {__package__}.{NAME}{" --quick" if quick else ""} --seed {seed}`.
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
    speeds: dict[str, tuple[float, list[float]]],
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
    names = {
        "rank": "policy.rank\n+ update",
        "router": "Router\nchoose+report",
        "mabwiser": "MABWiser\npredict+fit",
    }
    labels = [names[key] for key in names if key in speeds]
    values = [speeds[key][0] for key in names if key in speeds]
    labels.append(f"simulator\n(batched,\n{wide.replications} runs/call)")
    values.append(wide.decisions_per_second)
    colors = [*["tab:blue", "tab:cyan", "tab:green"][: len(values) - 1], "lightgrey"]
    bars = ax.bar(labels, values, color=colors)
    ax.bar_label(bars, labels=[rate(v) for v in values], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("decisions per second (K = 10, one core)")
    ax.set_title("per request (coloured) and batched (grey), one run")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    command_line(NAME, run)
