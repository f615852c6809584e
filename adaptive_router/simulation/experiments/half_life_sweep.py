"""How long should the router remember? Stationary regret against the cost of an incident.

A half-life makes old evidence count less, so the router notices a degraded path
sooner but never becomes fully sure of the best path either (it keeps paying for
exploration in a world that does not change). This sweep measures both sides, with
intervals over runs, in three worlds (the demo's wide gap between paths, close paths, a
mild drop) and three incident rates, and turns the result into a rule for choosing a
half-life, whose √N scaling it then tests on an incident rate the fit did not see.

"One incident every N requests" means N requests of calm history before each drop, so
every incident rate gets its own drop run: N calm requests, then the drop, then the N
requests until the next incident would come (a drop measured after a fixed, shorter
history understates what long memories pay when incidents are rare).

Run: ``python -m adaptive_router.simulation.experiments.half_life_sweep [--quick]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaptive_router.policies.thompson import FloatArray, ThompsonSampling
from adaptive_router.simulation import (
    Environment,
    FinalPath,
    SimulationResult,
    abrupt,
    adaptation_lags,
    compare,
)
from adaptive_router.simulation.experiments._common import (
    Progress,
    command_line,
    output_paths,
    pyplot,
    stage,
    table,
)
from adaptive_router.simulation.results import LAG_HOLD, LAG_THRESHOLD, LAG_WINDOW

NAME = "half_life_sweep"
HALF_LIVES: tuple[float | None, ...] = (25, 50, 100, 200, 400, 800, 1600, 3200, 6400, None)
#: Requests between incidents (N). Regret per 1,000 requests = steady rate + what one drop
#: costs over the N requests after it (beyond the steady rate of the changed world) / N.
INTERVALS = (2_000, 10_000, 50_000)
#: The √N rule is fitted on these intervals; the others test it out of sample.
FIT_ON = (2_000, 10_000)
QUICK_INTERVALS = (1_200, 2_000, 3_000)
BOOTSTRAP = 1_000
#: The rule this sweep recommends, ``half-life ≈ RULE_C × √(requests between incidents)``:
#: the constant fitted on the ``FIT_ON`` intervals of every world, rounded, i.e. the one
#: whose prediction the sweep tests on the other intervals (it prints the fits it finds
#: next to this value). The ``degradation`` experiment evaluates it on worlds it never saw.
RULE_C = 2.6


def recommended_half_life(requests_between_incidents: float) -> float:
    """The sweep's rule: ``RULE_C × √N`` requests, rounded to two significant digits."""
    if not requests_between_incidents > 0:
        raise ValueError(
            f"requests_between_incidents must be > 0, got {requests_between_incidents!r}"
        )
    h = RULE_C * math.sqrt(requests_between_incidents)
    return float(f"{h:.2g}")


# -- the √N rule: fitting and predicting (pure functions, tested without simulating) --------


def refine_best(half_lives: Sequence[float], regret: Sequence[float]) -> float:
    """The best half-life between grid points: the vertex, in log(half-life), of the
    parabola through the grid's lowest point and its two neighbours.

    ``half_lives`` is an increasing grid of finite half-lives, ``regret`` the regret per
    1,000 requests of each. At an edge of the grid, or when the three points do not curve
    upwards, the grid's lowest point itself; the vertex never leaves the neighbours' span.
    """
    h = np.asarray(half_lives, dtype=np.float64)
    y = np.asarray(regret, dtype=np.float64)
    if h.ndim != 1 or h.shape != y.shape or h.size == 0:
        raise ValueError("half_lives and regret must be 1-D sequences of the same, non-zero size")
    if np.any(h <= 0) or np.any(np.diff(h) <= 0):
        raise ValueError(f"half_lives must be positive and increasing, got {h.tolist()}")
    i = int(np.argmin(y))
    if i == 0 or i == h.size - 1:
        return float(h[i])
    x = np.log(h[i - 1 : i + 2])
    a, b, _ = np.polyfit(x, y[i - 1 : i + 2], 2)
    if a <= 0:
        return float(h[i])
    vertex = float(np.clip(-b / (2 * a), x[0], x[2]))
    return math.exp(vertex)


def fit_rule(best: Sequence[tuple[float, float]]) -> float:
    """``C`` of ``half-life = C × √N`` from ``(N, best half-life)`` pairs: least squares in
    log space, i.e. the geometric mean of best ÷ √N."""
    if not best:
        raise ValueError("fit_rule needs at least one (N, best half-life) pair")
    logs = [math.log(h) - 0.5 * math.log(n) for n, h in best]
    return math.exp(sum(logs) / len(logs))


def fit_exponent(best: Mapping[str, Sequence[tuple[float, float]]]) -> float:
    """The exponent γ of ``best half-life ∝ N^γ``, least squares in log space with an
    intercept per world (``{world: [(N, best), ...]}``): 0.5 if the √N rule holds."""
    xs: list[float] = []
    ys: list[float] = []
    for pairs in best.values():
        if len(pairs) < 2:
            continue
        lx = [math.log(n) for n, _ in pairs]
        ly = [math.log(h) for _, h in pairs]
        mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
        xs += [v - mx for v in lx]
        ys += [v - my for v in ly]
    denom = sum(v * v for v in xs)
    if denom == 0:
        raise ValueError("fit_exponent needs two different N in at least one world")
    return sum(a * b for a, b in zip(xs, ys, strict=True)) / denom


@dataclass(frozen=True)
class Verdict:
    """The rule's prediction at one N against the best grid half-life there."""

    predicted: float  # the half-life the rule predicts
    regret: float  # its regret per 1,000 requests
    best: float | None  # the best grid half-life (None: no half-life)
    best_regret: float
    best_ci: float  # 95% half-width of the best's regret

    @property
    def within(self) -> bool:
        """Whether the prediction's regret lies within the best's 95% interval (or below)."""
        return self.regret <= self.best_regret + self.best_ci


# -- the worlds and the measurements ---------------------------------------------------------


@dataclass(frozen=True)
class World:
    """Three paths tried in ranked order; at the drop the first path falls to ``drop_to``."""

    name: str
    rates: tuple[float, float, float]
    drop_to: float

    @property
    def after(self) -> tuple[float, float, float]:
        """The rates once the first path has dropped."""
        return (self.drop_to, self.rates[1], self.rates[2])

    def env(self, at: int | None = None, *, changed: bool = False) -> Environment:
        """Calm (before the drop, or ``changed``: after it, for ever), or dropping at ``at``."""
        names = ("large-model", "small-model", "rules")
        final = FinalPath("cached-answer")
        rates = self.after if changed else self.rates
        if at is None:
            return Environment(rates, names=names, final=final, label=self.name)
        return abrupt(self.rates, path=0, at=at, to=self.drop_to, names=names, final=final)


WORLDS = (
    World("wide gap (the demo)", (0.95, 0.85, 0.60), 0.30),
    World("close paths", (0.90, 0.88, 0.85), 0.60),
    World("mild drop", (0.95, 0.85, 0.60), 0.80),
)


def _label(h: float | None) -> str:
    return "none" if h is None else f"{h:g}"


def _steady(res: SimulationResult) -> FloatArray:
    """Regret per 1,000 requests over the second half of a calm run, per run (between the
    checkpoints nearest the middle and the end, divided by their exact distance)."""
    i = int(np.searchsorted(res.steps, res.horizon // 2, side="right")) - 1
    out: FloatArray = (res.regret[-1] - res.regret[i]) / (res.steps[-1] - res.steps[i]) * 1000
    return out


@dataclass
class Drop:
    """The drop after N calm requests, per run."""

    regret: FloatArray  # regret over the N requests after the drop
    lags: FloatArray  # adaptation lag; inf: not adapted within those N requests

    def lag_text(self) -> str:
        adapted = self.lags[np.isfinite(self.lags)]
        never = self.lags.size - adapted.size
        mean = f"{adapted.mean():,.0f}" if adapted.size else "–"
        return mean if never == 0 else f"{mean} ({never} not)"


@dataclass
class Cell:
    """One half-life in one world: per-run measures."""

    steady: FloatArray  # regret / 1k over the second half of a calm run
    steady_after: FloatArray  # the same in the changed world
    drops: dict[int, Drop]

    def excess(self, n: int) -> float:
        """What one drop costs over the N requests after it, beyond the changed world's
        steady rate."""
        return float(self.drops[n].regret.mean() - self.steady_after.mean() * n / 1000)

    def per_1k(self, n: int) -> float:
        return float(self.steady.mean()) + self.excess(n) / n * 1000

    def per_1k_ci(self, n: int) -> float:
        parts = (self.steady, self.drops[n].regret / n * 1000, self.steady_after)
        return 1.96 * math.sqrt(sum(float(x.var(ddof=1)) / x.size for x in parts if x.size > 1))


def _drop_run(
    world: World, h: float | None, n: int, runs: int, seed: int, progress: Progress | None
) -> Drop:
    """N calm requests, the drop, N more; the regret and lag of those N, from the trace."""
    lbl = f"{world.name}, half-life {_label(h)}, drop after {n:,}"
    res = compare(
        {lbl: ThompsonSampling(half_life=h)},
        world.env(n),
        2 * n,
        runs,
        seed,
        trace=True,
        checkpoints=20,
        progress=stage(progress, lbl),
    )[lbl]
    assert res.trace_first is not None
    first = res.trace_first[n:]
    rates = res.rates[n:]
    lost = rates.max(axis=1)[:, None] - np.take_along_axis(rates, first, axis=1)
    lags = adaptation_lags(res.trace_first, path=0, since=n, hold=lag_hold(n))
    return Drop(regret=lost.sum(axis=0), lags=lags)


def lag_hold(n: int) -> int:
    """Requests a run is watched after its lag: a quarter of the N requests to the next
    incident, at least ``LAG_HOLD``. Short memories swing traffic for hundreds or thousands
    of requests when two paths are close; over a longer watch such a swing cannot pass for
    adaptation."""
    return max(LAG_HOLD, n // 4)


def _calm(
    env: Environment, h: float | None, horizon: int, runs: int, seed: int, progress: Progress | None
) -> FloatArray:
    lbl = f"{env.label}, half-life {_label(h)}, calm"
    res = compare(
        {lbl: ThompsonSampling(half_life=h)},
        env,
        horizon,
        runs,
        seed,
        checkpoints=400,
        progress=stage(progress, lbl),
    )[lbl]
    return _steady(res)


def _measure(
    world: World,
    half_lives: Sequence[float | None],
    intervals: Sequence[int],
    horizon: int,
    runs: int,
    seed: int,
    cache: dict[tuple[tuple[float, ...], float | None], FloatArray],
    progress: Progress | None,
) -> dict[float | None, Cell]:
    """Calm runs (seed), drop runs (seed + 1) and changed-world calm runs (seed + 2)."""
    cells: dict[float | None, Cell] = {}
    for h in half_lives:
        if (world.rates, h) not in cache:
            cache[world.rates, h] = _calm(world.env(), h, horizon, runs, seed, progress)
        if (world.after, h) not in cache:
            after = world.env(changed=True)
            cache[world.after, h] = _calm(after, h, horizon, runs, seed + 2, progress)
        cells[h] = Cell(
            steady=cache[world.rates, h],
            steady_after=cache[world.after, h],
            drops={n: _drop_run(world, h, n, runs, seed + 1, progress) for n in intervals},
        )
    return cells


def _bootstrap_best(
    cells: dict[float | None, Cell], n: int, rng: np.random.Generator, boots: int
) -> dict[float | None, float]:
    """Share of bootstrap resamples (runs resampled with replacement, each kind of run on
    its own) in which each half-life has the lowest regret per 1,000 requests."""
    keys = list(cells)
    steady = np.stack([cells[h].steady for h in keys])  # (H, R)
    after = np.stack([cells[h].steady_after for h in keys])
    drop = np.stack([cells[h].drops[n].regret / n * 1000 for h in keys])
    wins = np.zeros(len(keys))
    for _ in range(boots):
        i, j, k = (rng.integers(0, x.shape[1], x.shape[1]) for x in (steady, drop, after))
        value = steady[:, i].mean(axis=1) + drop[:, j].mean(axis=1) - after[:, k].mean(axis=1)
        wins[int(np.argmin(value))] += 1
    return {h: wins[m] / boots for m, h in enumerate(keys)}


def _best(cells: dict[float | None, Cell], n: int) -> tuple[float | None, float]:
    """(lowest-mean grid half-life, its refined value between grid points) at interval n."""
    winner = min(cells, key=lambda h: cells[h].per_1k(n))
    finite = sorted(h for h in cells if h is not None)
    if winner is None:
        return None, math.inf
    return winner, refine_best(finite, [cells[h].per_1k(n) for h in finite])


def run(
    *,
    quick: bool = False,
    seed: int = 0,
    horizon: int | None = None,
    runs: int | None = None,
    out: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Run the sweep; write ``half_life_sweep.md`` and ``.png``; return the markdown path.

    ``horizon`` is the length of the calm runs that measure the steady rate; the drop runs
    are 2N long for each interval N.
    """
    horizon = horizon or (1_500 if quick else 20_000)
    runs = runs or (5 if quick else 200)
    intervals = QUICK_INTERVALS if quick else INTERVALS
    fit_on = intervals[: len(FIT_ON)]
    tested = [n for n in intervals if n not in fit_on]
    md_path, png_path = output_paths(NAME, out, quick)
    boot_rng = np.random.default_rng(seed)
    boots = 100 if quick else BOOTSTRAP

    cache: dict[tuple[tuple[float, ...], float | None], FloatArray] = {}
    results = {
        w.name: _measure(w, HALF_LIVES, intervals, horizon, runs, seed, cache, progress)
        for w in WORLDS
    }
    best = {(w.name, n): _best(results[w.name], n) for w in WORLDS for n in intervals}
    shares = {
        (w.name, n): _bootstrap_best(results[w.name], n, boot_rng, boots)
        for w in WORLDS
        for n in intervals
    }

    # The √N rule, fitted on the first intervals, predicted for the others: the predicted
    # half-life is run on the same seeds and compared with the best of the grid there.
    fitted_pairs = [
        (n, best[w.name, n][1]) for w in WORLDS for n in fit_on if best[w.name, n][0] is not None
    ]
    c_fit = fit_rule(fitted_pairs)
    verdicts: dict[tuple[str, int], Verdict] = {}
    for w in WORLDS:
        for n in tested:
            h_pred = float(f"{c_fit * math.sqrt(n):.2g}")
            pred = _measure(w, [h_pred], [n], horizon, runs, seed, cache, progress)[h_pred]
            winner = best[w.name, n][0]
            verdicts[w.name, n] = Verdict(
                predicted=h_pred,
                regret=pred.per_1k(n),
                best=winner,
                best_regret=results[w.name][winner].per_1k(n),
                best_ci=results[w.name][winner].per_1k_ci(n),
            )
    all_pairs = {
        w.name: [(n, best[w.name, n][1]) for n in intervals if best[w.name, n][0] is not None]
        for w in WORLDS
    }
    c_all = fit_rule([p for pairs in all_pairs.values() for p in pairs])
    per_world_c = {name: fit_rule(pairs) for name, pairs in all_pairs.items() if pairs}
    gamma = fit_exponent(all_pairs)
    per_world_gamma = {
        name: fit_exponent({name: pairs}) for name, pairs in all_pairs.items() if len(pairs) > 1
    }

    _plot(results, intervals, best, c_all, verdicts, png_path)
    text = _page(
        results=results,
        intervals=intervals,
        fit_on=fit_on,
        best=best,
        shares=shares,
        verdicts=verdicts,
        c_fit=c_fit,
        c_all=c_all,
        per_world_c=per_world_c,
        gamma=gamma,
        per_world_gamma=per_world_gamma,
        horizon=horizon,
        runs=runs,
        seed=seed,
        boots=boots,
        png_name=png_path.name,
        quick=quick,
    )
    md_path.write_text(text)
    return md_path


def _ci(x: FloatArray) -> float:
    return 1.96 * float(x.std(ddof=1)) / math.sqrt(x.size) if x.size > 1 else 0.0


def _flatness(
    results: dict[str, dict[float | None, Cell]],
    intervals: Sequence[int],
    best: dict[tuple[str, int], tuple[float | None, float]],
) -> str:
    """What missing the best grid half-life by a factor of two costs, each way."""
    finite = [h for h in HALF_LIVES if h is not None]
    short: list[float] = []  # relative extra regret at half the best
    long: list[float] = []  # ... at twice the best
    for name, cells in results.items():
        for n in intervals:
            winner = best[name, n][0]
            if winner is None or winner not in finite[1:-1]:
                continue
            i = finite.index(winner)
            base = cells[winner].per_1k(n)
            short.append(cells[finite[i - 1]].per_1k(n) / base - 1)
            long.append(cells[finite[i + 1]].per_1k(n) / base - 1)
    if not short:
        return ""
    cheaper = sum(s < t for s, t in zip(short, long, strict=True))
    advice = " When unsure, err short." if cheaper > len(short) / 2 else ""
    return (
        f"Missing the best grid half-life by a factor of two costs {100 * min(short):.0f}–"
        f"{100 * max(short):.0f}% more regret when too short (half the best) and "
        f"{100 * min(long):.0f}–{100 * max(long):.0f}% when too long (twice the best), over "
        f"the {len(short)} world × interval cells with a best inside the grid; too short is "
        f"the cheaper mistake in {cheaper} of them.{advice}"
    )


def _page(
    *,
    results: dict[str, dict[float | None, Cell]],
    intervals: Sequence[int],
    fit_on: Sequence[int],
    best: dict[tuple[str, int], tuple[float | None, float]],
    shares: dict[tuple[str, int], dict[float | None, float]],
    verdicts: dict[tuple[str, int], Verdict],
    c_fit: float,
    c_all: float,
    per_world_c: dict[str, float],
    gamma: float,
    per_world_gamma: dict[str, float],
    horizon: int,
    runs: int,
    seed: int,
    boots: int,
    png_name: str,
    quick: bool,
) -> str:
    sections = []
    for w in WORLDS:
        cells = results[w.name]
        rows = []
        for h, c in cells.items():
            row: list[object] = [_label(h), f"{c.steady.mean():.2f} ± {_ci(c.steady):.2f}"]
            for n in intervals:
                mark = " **best**" if best[w.name, n][0] == h else ""
                row += [
                    f"{round(c.excess(n)):,}",
                    c.drops[n].lag_text(),
                    f"{c.per_1k(n):.2f} ± {c.per_1k_ci(n):.2f}{mark}",
                ]
            rows.append(row)
        header = ["half-life", "steady regret / 1k"]
        for n in intervals:
            header += [f"N = {n:,}: drop cost", "lag (not adapted)", "regret / 1k"]
        rates = ", ".join(f"{r:g}" for r in w.rates)
        sections.append(
            f"### {w.name}: paths {rates}; the first drops to {w.drop_to:g}\n\n"
            f"{table(header, rows)}"
        )

    summary_rows = []
    for w in WORLDS:
        cells = results[w.name]
        for n in intervals:
            winner, refined = best[w.name, n]
            contenders = sorted(
                ((s, h) for h, s in shares[w.name, n].items() if s >= 0.05), key=lambda x: -x[0]
            )
            summary_rows.append(
                [
                    w.name,
                    f"{n:,}",
                    _label(winner),
                    ", ".join(f"{_label(h)} ({100 * s:.0f}%)" for s, h in contenders),
                    f"{cells[winner].per_1k(n):.2f} ± {cells[winner].per_1k_ci(n):.2f}",
                    f"{cells[None].per_1k(n):.2f} ± {cells[None].per_1k_ci(n):.2f}",
                    "–" if winner is None else f"{refined:,.0f}",
                    "–" if winner is None else f"{refined / math.sqrt(n):.1f}",
                    _label(recommended_half_life(n)),
                ]
            )
    summary = table(
        [
            "world",
            "one drop every N",
            "lowest mean regret",
            "best in bootstrap resamples (≥ 5%)",
            "its regret / 1k",
            "no half-life",
            "best between grid points",
            "÷ √N",
            f"rule {RULE_C:g}·√N",
        ],
        summary_rows,
    )
    tested = [n for n in intervals if n not in fit_on]
    verdict_rows = [
        [
            w.name,
            f"{n:,}",
            f"{v.predicted:g}",
            f"{v.regret:.2f}",
            _label(v.best),
            f"{v.best_regret:.2f} ± {v.best_ci:.2f}",
            "yes" if v.within else "**no**",
        ]
        for w in WORLDS
        for n in tested
        for v in [verdicts[w.name, n]]
    ]
    verdict_table = table(
        [
            "world",
            "N (not in the fit)",
            f"predicted half-life {c_fit:.1f}·√N",
            "its regret / 1k",
            "best of the grid",
            "best's regret / 1k",
            "within the best's interval",
        ],
        verdict_rows,
    )
    n_within = sum(v.within for v in verdicts.values())
    fit_text = " and ".join(f"{n:,}" for n in fit_on)
    tested_text = " and ".join(f"{n:,}" for n in tested)
    worlds_c = ", ".join(
        f"{name} {c:.1f} (N^{per_world_gamma[name]:.2f})"
        if name in per_world_gamma
        else f"{name} {c:.1f}"
        for name, c in per_world_c.items()
    )
    none_wins = [f"{w} (N = {n:,})" for (w, n), (h, _) in best.items() if h is None]
    none_text = (
        "Not using a half-life is never the best setting here"
        if not none_wins
        else "Not using a half-life is the best setting only for " + ", ".join(none_wins)
    )
    close, mild = results["close paths"], results["mild drop"]
    n_big = intervals[-1]
    close_best, mild_best = best["close paths", n_big][0], best["mild drop", n_big][0]
    flat_text = _flatness(results, intervals, best)
    # Close paths: the steady rate falls slowly until the half-life holds enough evidence
    # to tell paths a few points apart, so the best half-life can grow faster than √N.
    close_gamma = per_world_gamma.get("close paths", 0.5)
    faster = close_gamma > 0.65
    close_clause = "; longer when the paths are within a few points of each other" if faster else ""
    close_text = (
        "Where two paths differ by a few points, the steady rate falls slowly until the "
        "half-life holds enough evidence to tell them apart, so there the best half-life "
        f"grows faster than √N (N^{close_gamma:.2f} with close paths). "
        if faster
        else ""
    )
    h_rule = recommended_half_life(10_000)
    lag_rule = (
        f"under {100 * LAG_THRESHOLD:g}% of first attempts for good: counted from the lag, "
        f"its share stays under {100 * LAG_THRESHOLD:g}% over every span of {LAG_WINDOW} "
        "requests or more until the next incident, which must be at least a quarter of N "
        f"(and {LAG_HOLD:,} requests) away"
    )
    return f"""# Half-life sweep: stationary regret against the cost of an incident

Three paths tried in ranked order until one succeeds, then an always-works cached answer,
under the production `ThompsonSampling` with each half-life (in requests), {runs} runs
per setting, seed {seed}. "One incident every N requests" is measured as a cycle of N
requests:

- **calm** ({horizon:,} requests, nothing changes): "steady regret / 1k" is the regret rate
  over the second half, what the setting costs when nothing breaks.
- **the drop after N calm requests**: a run of N requests of the calm world — the history
  a policy has when incidents come every N requests — then the first path drops, then N
  more requests, until the next incident would come. "Drop cost" is the regret over those
  N requests beyond what the same policy pays over N requests once it has settled in the
  changed world (its steady rate in a calm run of that world). The cost of an incident
  grows with the history before it for long memories: without a half-life, 10× the history
  is roughly 10× the evidence to unlearn.
- "regret / 1k" for one drop every N: steady rate + drop cost / N × 1,000. Regret still
  owed N requests after a drop is not counted (the next cycle's history starts there), so
  long half-lives at small N are, if anything, flattered.
- "Lag": requests after the drop until the dropped path is {lag_rule}; per run, averaged
  over the runs that got there; "(k not)" counts the runs that did not and are left out
  of the mean. A path that keeps, say, a fifth of first attempts cannot meet this by
  chance: its share counted from any request tends to its long-run share, and the watch
  is longer than the swings of traffic that short half-lives make between close paths.

Regret is expected first-attempt failures beyond the oracle's. Intervals are mean ± 95%
(1.96 standard errors over runs; calm, drop and changed-world runs are independent).
**best** marks the lowest mean in each column; the bootstrap (runs resampled {boots:,}
times) says how often each half-life comes out lowest, so settings that share the wins
are tied at this number of runs.

{chr(10).join(f"{s}{chr(10)}" for s in sections)}
## Which half-life, when

{summary}

"Best between grid points" is the vertex of a parabola through the grid's lowest point and
its two neighbours (regret against log half-life); the grid itself doubles.

**The rule: half-life ≈ {RULE_C:g} × √(requests between incidents), whenever incidents
recur{close_clause}.** Forgetting costs a
steady rate that falls as the half-life grows, and an incident costs regret that grows
with the half-life (the lag does), so the sum is lowest near √(a·N/b) if the steady rate
falls as a/half-life: the best half-life then grows with the square root of the time
between incidents, not in proportion to it. The rule's constant is best ÷ √N fitted on
N = {fit_text} ({c_fit:.2f}; the rule uses {RULE_C:g}), the one whose prediction is tested
out of sample below; fitted on every interval it is {c_all:.2f}. Per world, with the
exponent fitted freely: {worlds_c}; all worlds together (an intercept per world)
N^{gamma:.2f}.
{close_text}At one drop every 10,000 requests the rule gives {_label(h_rule)} requests.

{none_text}: without a half-life, each incident's cost grows with the history before it
(10× the history is 10× the evidence to unlearn), so rare incidents do not make
forgetting unnecessary; the table above shows the drop cost growing with N. With close
paths at one drop every {n_big:,} requests, no half-life costs
{close[None].per_1k(n_big):.1f} ± {close[None].per_1k_ci(n_big):.1f} per 1,000 requests
against {close[close_best].per_1k(n_big):.1f} ± {close[close_best].per_1k_ci(n_big):.1f}
with a half-life of {_label(close_best)}; after a mild drop,
{mild[None].per_1k(n_big):.1f} ± {mild[None].per_1k_ci(n_big):.1f} against
{mild[mild_best].per_1k(n_big):.1f} ± {mild[mild_best].per_1k_ci(n_big):.1f} at
{_label(mild_best)}. (Counting a drop's cost over a fixed few thousand requests after it,
rather than until the next incident, cuts most of it off when nothing is forgotten: after
a mild drop the dropped path keeps most first attempts for longer than that.)

{flat_text}

## The √N scaling out of sample

Fitted on N = {fit_text} only, best ÷ √N has geometric mean {c_fit:.2f}. The rule with
that constant predicts a half-life for N = {tested_text}, which the fit never saw; that
half-life was then run (same seeds) and compared with the best of the whole grid there:

{verdict_table}

The prediction's regret lies within the 95% interval of the grid's best (or below it) in
{n_within} of {len(verdicts)} worlds.

The Router's `half_life` is in seconds: divide by the task's request rate (at 10
requests/s, {_label(h_rule)} requests is {h_rule / 10:g} s).

![stationary regret against the cost of an incident]({png_name})

Reproduce: `python -m {__package__}.{NAME}{" --quick" if quick else ""} --seed {seed}`.
"""


def _plot(
    results: dict[str, dict[float | None, Cell]],
    intervals: Sequence[int],
    best: dict[tuple[str, int], tuple[float | None, float]],
    c_all: float,
    verdicts: dict[tuple[str, int], Verdict],
    png_path: Path,
) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    ax = axes[0]
    x = np.arange(len(HALF_LIVES))
    colors = dict(zip(results, ("tab:blue", "tab:orange", "tab:green"), strict=False))
    for name, cells in results.items():
        for n, style in zip(intervals, ("-", "--", ":"), strict=True):
            y = [cells[h].per_1k(n) for h in HALF_LIVES]
            ax.plot(x, y, style, color=colors.get(name), label=f"{name}, drop every {n:,}")
    ax.set_xticks(x, [_label(h) for h in HALF_LIVES])
    ax.set_xlabel("half-life (requests)")
    ax.set_ylabel("regret per 1,000 requests")
    ax.set_yscale("log")
    ax.set_title("steady rate + drop cost / N")
    ax.legend(fontsize=6, ncol=1)
    ax.grid(alpha=0.3)

    ax = axes[1]
    grid = np.geomspace(min(intervals), max(intervals), 50)
    ax.plot(grid, RULE_C * np.sqrt(grid), "k-", lw=1, label=f"the rule, {RULE_C:g}·√N")
    ax.plot(grid, c_all * np.sqrt(grid), "k:", lw=1, label=f"{c_all:.1f}·√N (fit on every N)")
    for name in results:
        pts = [(n, best[name, n][1]) for n in intervals if best[name, n][0] is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", color=colors.get(name), label=name)
    pred = list(verdicts.items())
    ax.plot(
        [n for (_, n), _ in pred],
        [v.predicted for _, v in pred],
        "kx",
        ms=9,
        label="predicted from the fit on the smaller N",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(list(intervals), [f"{n:,}" for n in intervals])
    ax.minorticks_off()
    ax.set_xlabel("requests between incidents N")
    ax.set_ylabel("best half-life (requests)")
    ax.set_title("best half-life (between grid points) against N, log–log")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def sweep_worlds() -> Sequence[World]:
    """The worlds the sweep tunes on (``degradation`` keeps its evaluation worlds apart)."""
    return WORLDS


if __name__ == "__main__":
    command_line(NAME, run)
