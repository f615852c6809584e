"""How often off-policy evaluation's 95% intervals cover the truth where the logs barely
cover the target: effective sample sizes of 5 to 100.

Worlds of three paths with known success rates are routed by the real
:class:`~adaptive_router.policies.thompson.ThompsonSampling` policy, each decision logged with its
exact propensity (:func:`~adaptive_router.policies.propensity.first_choice_probabilities`), as the
router logs them. Every run's first 20, 50, 120, 300 and 1,000 requests are evaluated for
four targets — "always path j" for each path and the uniform mix — whose true success
rate is known. A case is one (world, run, prefix, target); the table pools the cases by
effective sample size (ESS) and gives, per estimator, how often the interval of
:func:`~adaptive_router.ope.evaluation.estimate` held the truth, how often the normal
approximation value ± 1.96 standard errors (what the intervals were before) did, the
median width, and how far the point estimate was from the truth.

Worlds: close rates and no floor (Thompson Sampling explores by itself), far rates with a
10% floor, one dominant path with a 5% floor, three good paths, very high rates, rare
successes, and two contexts whose best paths differ (each context learned on its own, so
weights and rewards correlate).

Run: ``python -m adaptive_router.simulation.experiments.ope_coverage [--runs N]
[--seed S] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from adaptive_router.ope.evaluation import METHODS, Z95, Estimate, LowEffectiveSampleSize, estimate
from adaptive_router.policies.propensity import first_choice_probabilities
from adaptive_router.policies.thompson import ThompsonSampling
from adaptive_router.simulation.experiments._common import default_results_dir

NAME = "ope_coverage"
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

HORIZONS = (20, 50, 120, 300, 1000)
#: ESS buckets of the table (lower bound inclusive).
BUCKETS = ((5.0, 10.0), (10.0, 20.0), (20.0, 50.0), (50.0, 100.0))


@dataclass(frozen=True)
class World:
    """Success rates per context (rows) and path (columns), contexts equally likely."""

    name: str
    rates: tuple[tuple[float, ...], ...]
    explore: float

    @property
    def matrix(self) -> FloatArray:
        return np.array(self.rates, dtype=np.float64)


WORLDS = (
    World("close rates, no floor", ((0.55, 0.5, 0.45),), 0.0),
    World("far rates, 10% floor", ((0.7, 0.4, 0.2),), 0.1),
    World("one dominant path, 5% floor", ((0.95, 0.6, 0.3),), 0.05),
    World("three good paths, no floor", ((0.9, 0.85, 0.8),), 0.0),
    World("very high rates, 5% floor", ((0.98, 0.95, 0.9),), 0.05),
    World("rare successes, 10% floor", ((0.05, 0.03, 0.01),), 0.1),
    World("two contexts, 5% floor", ((0.9, 0.5, 0.2), (0.3, 0.6, 0.8)), 0.05),
)


@dataclass(frozen=True)
class Logs:
    """``runs`` logged runs of ``steps`` requests: first path, success, and the first-choice
    probability of every path, shapes (runs, steps) and (runs, steps, K)."""

    actions: IntArray
    rewards: FloatArray
    propensities: FloatArray


def thompson_logs(world: World, runs: int, steps: int, seed: int) -> Logs:
    """Route ``runs`` independent runs with the real policy (batched over runs), one
    evidence table per context; log every decision's evidence and its propensities."""
    rng = np.random.default_rng(seed)
    rates = world.matrix
    contexts, k = rates.shape
    policy = ThompsonSampling(prior=(1.0, 1.0), explore=world.explore)
    s = np.zeros((runs, contexts, k))
    f = np.zeros((runs, contexts, k))
    actions = np.empty((runs, steps), dtype=np.intp)
    rewards = np.empty((runs, steps))
    alpha = np.empty((runs, steps, k))
    beta = np.empty((runs, steps, k))
    rows = np.arange(runs)
    for step in range(steps):
        c = rng.integers(0, contexts, runs)
        succ, fail = s[rows, c], f[rows, c]
        alpha[:, step], beta[:, step] = 1.0 + succ, 1.0 + fail
        a = policy.rank(succ, fail, rng)[:, 0]
        r = (rng.random(runs) < rates[c, a]).astype(np.float64)
        s[rows, c, a] += r
        f[rows, c, a] += 1.0 - r
        actions[:, step], rewards[:, step] = a, r
    prop = first_choice_probabilities(
        alpha.reshape(-1, k), beta.reshape(-1, k), explore=world.explore
    ).reshape(runs, steps, k)
    return Logs(actions, rewards, prop)


@dataclass(frozen=True)
class Case:
    """One target evaluated on one run's first ``horizon`` requests."""

    world: str
    horizon: int
    target: str
    truth: float
    estimates: dict[str, Estimate]

    @property
    def ess(self) -> float:
        return self.estimates["snips"].effective_sample_size


def _reward_model(actions: IntArray, rewards: FloatArray, k: int) -> FloatArray:
    """Each path's mean success over the other half of the rows (even/odd), the half's
    mean for a path it never saw: the cross-fitted model ``evaluate()`` uses for DR."""
    n = actions.size
    fold = np.arange(n) % 2
    out = np.empty((n, k))
    for half in (0, 1):
        other = fold != half
        base = float(rewards[other].mean()) if other.any() else float(rewards.mean())
        for j in range(k):
            hits = rewards[other & (actions == j)]
            out[fold == half, j] = hits.mean() if hits.size else base
    return out


def cases(
    world: World,
    runs: int,
    seed: int,
    horizons: Sequence[int] = HORIZONS,
) -> list[Case]:
    """Every (run, horizon, target) case of ``world``, each estimated by every method."""
    logs = thompson_logs(world, runs, max(horizons), seed)
    rates = world.matrix
    k = rates.shape[1]
    truths = rates.mean(axis=0)
    targets = {f"always path {j}": np.eye(k)[j] for j in range(k)}
    targets["uniform"] = np.full(k, 1.0 / k)
    out = []
    for run in range(runs):
        for n in horizons:
            a, r = logs.actions[run, :n], logs.rewards[run, :n]
            p = logs.propensities[run, np.arange(n), a]
            model = _reward_model(a, r, k)
            for name, target in targets.items():
                t = target[a]
                if not np.any(t > 0):
                    continue  # the target never made a logged choice: nothing to weigh
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", LowEffectiveSampleSize)
                    ests = {m: estimate(r, p, t, m) for m in ("ips", "snips")}
                    ests["dr"] = estimate(
                        r,
                        p,
                        t,
                        "dr",
                        reward_model=model[np.arange(n), a],
                        reward_matrix=model,
                        target_matrix=np.tile(target, (n, 1)),
                    )
                out.append(Case(world.name, n, name, float(target @ truths), ests))
    return out


def all_cases(runs: int, seed: int, horizons: Sequence[int] = HORIZONS) -> list[Case]:
    """The cases of every world (world i seeded with ``seed + i``)."""
    return [c for i, w in enumerate(WORLDS) for c in cases(w, runs, seed + i, horizons)]


def in_range(pool: Sequence[Case], low: float = 5.0, high: float = 100.0) -> list[Case]:
    """The cases with ``low <= ESS <= high``."""
    return [c for c in pool if low <= c.ess <= high]


def covered(case: Case, method: str) -> bool:
    """Whether the method's interval holds the truth."""
    e = case.estimates[method]
    return e.low <= case.truth <= e.high


def normal_covered(case: Case, method: str) -> bool:
    """Whether value ± 1.96 standard errors (the normal approximation) holds the truth."""
    e = case.estimates[method]
    return abs(e.value - case.truth) <= Z95 * e.std_error


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    label: str
    count: int
    coverage: dict[str, float]
    normal: dict[str, float]
    width: float
    error: float


def row(label: str, pool: Sequence[Case]) -> Row:
    """Coverage per method (ours and normal), the median width of the SNIPS interval,
    and the 75th percentile of the SNIPS point's absolute error."""
    return Row(
        label,
        len(pool),
        {m: float(np.mean([covered(c, m) for c in pool])) for m in METHODS},
        {m: float(np.mean([normal_covered(c, m) for c in pool])) for m in METHODS},
        float(np.median([c.estimates["snips"].high - c.estimates["snips"].low for c in pool])),
        float(np.quantile([abs(c.estimates["snips"].value - c.truth) for c in pool], 0.75)),
    )


def table(pool: Sequence[Case]) -> list[Row]:
    """Rows per ESS bucket, the 5–100 total, per world (5–100), and ESS > 100."""
    rows = [row(f"ESS {lo:g}–{hi:g}", [c for c in pool if lo <= c.ess < hi]) for lo, hi in BUCKETS]
    rows.append(row("**ESS 5–100, all**", in_range(pool)))
    for w in WORLDS:
        rows.append(row(f"  {w.name}", [c for c in in_range(pool) if c.world == w.name]))
    rows.append(row("ESS > 100", [c for c in pool if c.ess > 100.0]))
    return rows


def render(rows: Sequence[Row], runs: int, seed: int, seconds: float) -> str:
    """The results page."""
    pct = "{:.1%}".format
    lines = [
        "# Coverage of off-policy intervals at low effective sample size",
        "",
        f"{len(WORLDS)} worlds × {runs} runs of the real Thompson Sampling policy, each run's "
        f"first {', '.join(map(str, HORIZONS))} requests, 4 targets (always path j, uniform "
        "mix): a case is one (world, run, prefix, target). Coverage: share of cases whose "
        "95% interval holds the true success rate; *interval* is what `estimate()` and "
        "`evaluate()` give (the estimator's own interval joined with the Wilson floor on "
        "the ESS), *normal* is value ± 1.96 standard errors alone. Width: median width of "
        "the SNIPS interval. Error: 75th percentile of |SNIPS − truth|.",
        "",
        "| cases | n | interval SNIPS | interval IPS | interval DR | normal SNIPS "
        "| normal IPS | normal DR | width | error |",
        "|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.label} | {r.count:,} | "
            + " | ".join(pct(r.coverage[m]) for m in ("snips", "ips", "dr"))
            + " | "
            + " | ".join(pct(r.normal[m]) for m in ("snips", "ips", "dr"))
            + f" | {r.width:.2f} | {r.error:.2f} |"
        )
    lines += [
        "",
        f"Seed {seed}; {seconds:.0f} s. Reproduce: "
        f"`python -m adaptive_router.simulation.experiments.ope_coverage --runs {runs} "
        f"--seed {seed}`.",
        "",
    ]
    return "\n".join(lines)


def run(runs: int = 40, seed: int = 0, out: Path | None = None) -> Path:
    """Simulate, tabulate, write ``ope_coverage.md``; its path."""
    start = time.perf_counter()
    pool = all_cases(runs, seed)
    text = render(table(pool), runs, seed, time.perf_counter() - start)
    folder = out if out is not None else default_results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{NAME}.md"
    path.write_text(text)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: simulate and write the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or NAME).splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per world (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first world")
    parser.add_argument(
        "--out", type=Path, help=f"results folder (default {default_results_dir()})"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    path = run(args.runs, args.seed, args.out)
    print(path.read_text())
    print(f"written to {path}")


if __name__ == "__main__":
    main()
