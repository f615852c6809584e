"""Cost- and latency-aware ranking: reach a success at the lowest cost or in the least time.

When every request tries paths in turn until one succeeds, whether it succeeds does not
depend on the order; the order decides the money and the time it takes. Ascending
``c/p`` (cost per attempt over success probability) minimizes the expected cost to a
success (Simon & Kadane 1975). The Router's policy with an objective draws θ from each
Beta posterior as Thompson Sampling does and ranks by ``c/θ``
(:class:`adaptive_router.policies.objectives.ObjectiveThompsonSampling`); here it runs against
the oracle that knows the true ``c/p`` (and ``t/p``) order, every fixed order (the best
picked in hindsight), the quality-first chain teams hand-write, LiteLLM's blend
``0.7·θ + 0.3·(1 − normalized price)`` and the success objective (today's default), in
four worlds; and the router with its 2% exploration floor lowered and off, paired on
the same outcomes, to say what the floor costs.

Run: ``python -m adaptive_router.simulation.experiments.cost_aware [--quick]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaptive_router.policies.objectives import ObjectiveThompsonSampling
from adaptive_router.policies.thompson import FloatArray, Policy
from adaptive_router.simulation import (
    BlendedScore,
    Environment,
    FinalPath,
    RatioOracle,
    SimulationResult,
    abrupt,
    all_fixed_orders,
    compare,
    quality_first,
    stationary,
)
from adaptive_router.simulation.experiments import degradation
from adaptive_router.simulation.experiments._common import (
    Progress,
    command_line,
    output_paths,
    pct,
    pyplot,
    stage,
    table,
)
from adaptive_router.simulation.experiments.half_life_sweep import recommended_half_life

NAME = "cost_aware"
HORIZON = 10_000
FINAL = FinalPath("cached-answer", latency_ms=5.0, cost_usd=0.0)
#: The half-life every learning policy gets (the sweep's rule for one incident per horizon).
HALF_LIFE = recommended_half_life(HORIZON)

COST = "router, objective cost"
LOW_FLOOR = "router, objective cost, 0.5% exploration floor"
NO_FLOOR = "router, objective cost, no exploration floor"
LATENCY = "router, objective latency"
SUCCESS = "router, objective success (default)"
BLEND = "LiteLLM blend 0.7·θ + 0.3·(1 − price)"
QUALITY = "quality-first chain"
COST_ORACLE = "oracle: true c/p order"
LATENCY_ORACLE = "oracle: true t/p order"


@dataclass(frozen=True)
class World:
    """One world: its environment and the success rates a team would believe at the start."""

    key: str
    title: str
    env: Environment
    initial_rates: tuple[float, ...]
    short: tuple[str, ...]


def worlds(horizon: int) -> list[World]:
    """(i) two paths nearly as good, 10× apart in price; (ii) the degradation world;
    (iii) a latency world where the fastest path is not the cheapest; (iv) the flip."""
    flip_at = horizon * 3 // 10
    deg_at = horizon * 3 // 10
    return [
        World(
            "i",
            "(i) two paths nearly as good, 10× apart in price",
            stationary(
                [0.93, 0.90],
                names=("large", "small"),
                cost_usd=(0.010, 0.001),
                latency_ms=(1200.0, 600.0),
                final=FINAL,
                label="near-equal",
            ),
            (0.93, 0.90),
            ("large", "small"),
        ),
        World(
            "ii",
            f"(ii) degradation: large drops 0.95 → 0.30 at request {deg_at:,}",
            degradation.three_paths(deg_at),
            degradation.RATES,
            degradation.SHORT,
        ),
        World(
            "iii",
            "(iii) latency: the fast path is flaky and dear, the steady one slow and cheap",
            stationary(
                [0.70, 0.97, 0.85],
                names=("fast", "steady", "mid"),
                cost_usd=(0.006, 0.001, 0.003),
                latency_ms=(250.0, 1500.0, 700.0),
                final=FINAL,
                label="latency",
            ),
            (0.70, 0.97, 0.85),
            ("fast", "steady", "mid"),
        ),
        World(
            "iv",
            f"(iv) the cost order flips: A 0.95 → 0.30 at request {flip_at:,}",
            abrupt(
                [0.95, 0.50],
                path=0,
                at=flip_at,
                to=0.30,
                names=("A", "B"),
                cost_usd=(0.004, 0.003),
                latency_ms=(600.0, 500.0),
                final=FINAL,
                label="flip",
            ),
            (0.95, 0.50),
            ("A", "B"),
        ),
    ]


def policies(world: World) -> dict[str, Policy]:
    """Every contender in one world, keyed by table label."""
    env = world.env
    assert env.cost_usd is not None and env.latency_ms is not None
    out: dict[str, Policy] = {
        COST: ObjectiveThompsonSampling(half_life=HALF_LIFE, objective="cost"),
        LOW_FLOOR: ObjectiveThompsonSampling(half_life=HALF_LIFE, objective="cost", explore=0.005),
        NO_FLOOR: ObjectiveThompsonSampling(half_life=HALF_LIFE, objective="cost", explore=0.0),
        LATENCY: ObjectiveThompsonSampling(half_life=HALF_LIFE, objective="latency"),
        SUCCESS: ObjectiveThompsonSampling(half_life=HALF_LIFE, objective="success"),
        BLEND: BlendedScore(env.cost_usd, half_life=HALF_LIFE),
        QUALITY: quality_first(world.initial_rates),
        COST_ORACLE: RatioOracle.for_objective("cost", env.cost_usd, env.latency_ms),
        LATENCY_ORACLE: RatioOracle.for_objective("latency", env.cost_usd, env.latency_ms),
    }
    out.update(all_fixed_orders(env.n_paths, world.short))
    return out


@dataclass
class Row:
    """Per-run figures of one policy in one world (arrays over runs)."""

    cost_after: FloatArray  # USD per 1,000 requests after the warm-up
    cost_total: FloatArray  # USD over the whole run
    seconds_total: FloatArray  # latency over the whole run, seconds
    first_success: FloatArray
    latency_ms: FloatArray


def per_run(res: SimulationResult, env: Environment, warmup: int) -> Row:
    """Cost and latency per run from the trace: the chain each request went down."""
    assert res.trace_order is not None and res.trace_outcomes is not None
    assert env.cost_usd is not None and env.latency_ms is not None
    cost = np.asarray(env.cost_usd)
    lat = np.asarray(env.latency_ms)
    final = env.final or FinalPath("none")
    horizon, runs, _ = res.trace_order.shape
    per_step_cost = np.empty((horizon, runs))
    per_step_lat = np.empty((horizon, runs))
    chunk = 1000
    for t0 in range(0, horizon, chunk):
        order = res.trace_order[t0 : t0 + chunk]
        ok = np.take_along_axis(res.trace_outcomes[t0 : t0 + chunk], order, axis=2)
        failed = np.logical_and.accumulate(~ok, axis=2)
        tried = np.ones_like(ok)
        tried[..., 1:] = failed[..., :-1]
        all_failed = failed[..., -1]
        per_step_cost[t0 : t0 + chunk] = (tried * cost[order]).sum(axis=2) + all_failed * (
            final.cost_usd
        )
        per_step_lat[t0 : t0 + chunk] = (tried * lat[order]).sum(axis=2) + all_failed * (
            final.latency_ms
        )
    return Row(
        cost_after=1000.0 * per_step_cost[warmup:].mean(axis=0),
        cost_total=per_step_cost.sum(axis=0),
        seconds_total=per_step_lat.sum(axis=0) / 1000.0,
        first_success=res.first_success_rate,
        latency_ms=per_step_lat.mean(axis=0),
    )


def _ci(x: FloatArray) -> float:
    return 1.96 * float(x.std(ddof=1)) / math.sqrt(x.size) if x.size > 1 else 0.0


def _paired(x: FloatArray, ref: FloatArray, unit: str, digits: int) -> str:
    d = x - ref
    return f"{unit}{d.mean():,.{digits}f} ± {_ci(d):,.{digits}f}"


@dataclass
class WorldResult:
    world: World
    rows: dict[str, Row]
    best_fixed: str
    best_fixed_latency: str


def run_world(
    world: World, horizon: int, runs: int, seed: int, warmup: int, progress: Progress | None
) -> WorldResult:
    rows: dict[str, Row] = {}
    for name, policy in policies(world).items():
        res = compare(
            {name: policy},
            world.env,
            horizon,
            runs,
            seed,
            trace=True,
            checkpoints=20,
            progress=stage(progress, f"{world.key}: {name}"),
        )[name]
        rows[name] = per_run(res, world.env, warmup)
        del res
    fixed = [n for n in rows if n.startswith("fixed: ")]
    best = min(fixed, key=lambda n: rows[n].cost_after.mean())
    best_lat = min(fixed, key=lambda n: rows[n].latency_ms.mean())
    return WorldResult(world, rows, best, best_lat)


HEADER = [
    "policy",
    "cost / 1k req after the first {warmup:,}",
    "1st-attempt success",
    "mean latency ms",
    "regret $ (vs c/p oracle)",
    "regret s (vs t/p oracle)",
]


def _table(w: WorldResult, warmup: int) -> str:
    rows = w.rows
    oracle_c, oracle_t = rows[COST_ORACLE], rows[LATENCY_ORACLE]
    shown = [COST, LOW_FLOOR, NO_FLOOR, LATENCY, SUCCESS, BLEND, QUALITY]
    fixed = {w.best_fixed: "best fixed order for cost in hindsight"}
    fixed.setdefault(w.best_fixed_latency, "best fixed order for latency in hindsight")
    body = []
    for name in [*shown, *fixed, COST_ORACLE, LATENCY_ORACLE]:
        r = rows[name]
        label = f"{name} ({fixed[name]})" if name in fixed else name
        body.append(
            [
                label,
                f"${r.cost_after.mean():.3f} ± {_ci(r.cost_after):.3f}",
                pct(float(r.first_success.mean())),
                f"{r.latency_ms.mean():.0f}",
                _paired(r.cost_total, oracle_c.cost_total, "$", 3),
                _paired(r.seconds_total, oracle_t.seconds_total, "", 0),
            ]
        )
    header = [h.format(warmup=warmup) for h in HEADER]
    return table(header, body)


def targets(results: dict[str, WorldResult]) -> list[tuple[str, float, float, bool]]:
    """The issue's targets: (description, figure, target, met)."""

    def cost(world: str, name: str) -> float:
        return float(results[world].rows[name].cost_after.mean())

    out = []
    for world in ("i", "ii"):
        ratio = cost(world, COST) / cost(world, COST_ORACLE)
        out.append((f"({world}) router ÷ oracle, cost per 1k", ratio, 1.07, ratio <= 1.07))
    ratio = cost("ii", COST) / cost("ii", BLEND)
    out.append(("(ii) router ÷ LiteLLM blend, cost per 1k", ratio, 0.70, ratio <= 0.70))
    best = results["iv"].best_fixed
    ratio = cost("iv", COST) / cost("iv", best)
    out.append(("(iv) router ÷ best fixed order in hindsight", ratio, 1.0, ratio < 1.0))
    return out


@dataclass(frozen=True)
class Gap:
    """Paired difference of cost per 1,000 requests (after the warm-up), ``a − b``, run by
    run on the same outcomes."""

    mean: float  # USD per 1,000 requests
    ci: float  # 95% half-width
    relative: float  # a's mean ÷ b's mean − 1

    def text(self) -> str:
        return f"{_sign(self.mean)}${abs(self.mean):.3f} ± {self.ci:.3f}"

    def percent(self) -> str:
        return f"{_sign(self.relative)}{abs(100 * self.relative):.1f}%"


def _sign(x: float) -> str:
    return "+" if x >= 0 else "−"


def paired_gap(a: Row, b: Row) -> Gap:
    """``a − b`` in cost per 1,000 requests, paired over runs."""
    d = a.cost_after - b.cost_after
    return Gap(float(d.mean()), _ci(d), float(a.cost_after.mean() / b.cost_after.mean() - 1))


SUMMARY_HEADER = [
    "world",
    "router (cost objective)",
    "oracle (true c/p order)",
    "best fixed order in hindsight",
    "LiteLLM blend",
    "router − blend, paired",
    "router without the floor",
    "the floor's cost, paired",
]


def summary_table(results: dict[str, WorldResult]) -> str:
    """Cost per 1,000 requests after the warm-up in every world, with the paired gaps the
    reading quotes (the README shows this table)."""
    body = []
    for key, w in results.items():
        r = w.rows
        blend, floor = paired_gap(r[COST], r[BLEND]), paired_gap(r[COST], r[NO_FLOOR])
        body.append(
            [
                f"({key})",
                f"${r[COST].cost_after.mean():.3f}",
                f"${r[COST_ORACLE].cost_after.mean():.3f}",
                f"${r[w.best_fixed].cost_after.mean():.3f} "
                f"({w.best_fixed.removeprefix('fixed: ')})",
                f"${r[BLEND].cost_after.mean():.3f}",
                f"{blend.text()} ({blend.percent()})",
                f"${r[NO_FLOOR].cost_after.mean():.3f}",
                f"{floor.text()} ({floor.percent()})",
            ]
        )
    return table(SUMMARY_HEADER, body)


def _small_dollars(x: float) -> str:
    return "a tenth of a cent" if x < 0.001 else f"${x:.3f}"


def _settled_gap(results: dict[str, WorldResult]) -> float:
    """The largest cost gap (per 1,000 requests) between the router without its floor and
    the oracle, over the worlds where the cost-optimal order never changes."""
    return max(
        abs(paired_gap(results[k].rows[NO_FLOOR], results[k].rows[COST_ORACLE]).mean)
        for k in ("i", "ii", "iii")
        if k in results
    )


def _blend_and_floor(results: dict[str, WorldResult]) -> str:
    """The reading of the router against the blend and of the floor, from the paired gaps."""
    blend_lines = []
    floor_lines = []
    for key, w in results.items():
        r = w.rows
        gap = paired_gap(r[COST], r[BLEND])
        if gap.mean - gap.ci > 0:
            verdict = (
                f"the blend is cheaper: the router pays ${gap.mean:.3f} ± {gap.ci:.3f} more per "
                f"1,000 requests ({gap.percent()})"
            )
        elif gap.mean + gap.ci < 0:
            verdict = (
                f"the router is cheaper by ${-gap.mean:.3f} ± {gap.ci:.3f} per 1,000 requests "
                f"({gap.percent()})"
            )
        else:
            verdict = f"no difference at this number of runs ({gap.text()} per 1,000)"
        blend_lines.append(f"- ({key}): {verdict}.")
        floor = paired_gap(r[COST], r[NO_FLOOR])
        low = paired_gap(r[LOW_FLOOR], r[NO_FLOOR])
        to_oracle = paired_gap(r[NO_FLOOR], r[COST_ORACLE])
        to_blend = paired_gap(r[NO_FLOOR], r[BLEND])
        floor_lines.append(
            f"- ({key}): the 2% floor costs {floor.text()} per 1,000 requests "
            f"({floor.percent()}), a 0.5% floor {low.text()}. Without the floor "
            f"the router costs ${r[NO_FLOOR].cost_after.mean():.3f}: {to_oracle.text()} from "
            f"the oracle and {to_blend.text()} from the blend."
        )
    return (
        "Router (cost objective) − LiteLLM blend, cost per 1,000 requests after the warm-up, "
        "paired over runs on the same outcomes (± 95% interval):\n\n"
        + "\n".join(blend_lines)
        + "\n\nThe Router's exploration floor sends 2% of first attempts to a uniformly "
        "chosen path, whatever it costs; the blend has none. The same router with the floor "
        "at 0.5% and off, paired with it on the same outcomes:\n\n" + "\n".join(floor_lines)
    )


def _reading(results: dict[str, WorldResult]) -> str:
    lines = []
    for key, w in results.items():
        rows = w.rows
        router = rows[COST].cost_after.mean()
        best = rows[w.best_fixed].cost_after.mean()
        oracle = rows[COST_ORACLE].cost_after.mean()
        if best <= router:
            verdict = (
                f"a fixed order does as well or better: {w.best_fixed.removeprefix('fixed: ')} "
                f"costs ${best:.3f} per 1,000 against the router's ${router:.3f} (the oracle "
                f"${oracle:.3f}) — but only chosen in hindsight, knowing the rates"
            )
        else:
            verdict = (
                f"the router (${router:.3f} per 1,000) beats every fixed order, the best of "
                f"which ({w.best_fixed.removeprefix('fixed: ')}) costs ${best:.3f}; the oracle "
                f"${oracle:.3f}"
            )
        lines.append(f"- ({key}): {verdict}.")
    return "\n".join(lines)


def run(
    *,
    quick: bool = False,
    seed: int = 0,
    horizon: int | None = None,
    runs: int | None = None,
    out: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Run the experiment; write ``cost_aware.md`` and ``.png``; return the markdown path."""
    horizon = horizon or (2_000 if quick else HORIZON)
    runs = runs or (20 if quick else 200)
    warmup = horizon // 10
    md_path, png_path = output_paths(NAME, out, quick)
    results = {w.key: run_world(w, horizon, runs, seed, warmup, progress) for w in worlds(horizon)}
    _plot(results, png_path)
    met = targets(results)
    sections = []
    for w in results.values():
        env = w.world.env
        assert env.cost_usd is not None and env.latency_ms is not None
        paths = ", ".join(
            f"`{n}` (p = {p:g}, ${c:g}, {t:g} ms)"
            for n, p, c, t in zip(
                env.path_names, w.world.initial_rates, env.cost_usd, env.latency_ms, strict=True
            )
        )
        sections.append(f"### {w.world.title}\n\nPaths: {paths}.\n\n{_table(w, warmup)}\n")
    target_rows = [
        [d, f"{fig:.3f}", f"{'<' if 'fixed' in d else '≤'} {tgt:g}", "met" if ok else "NOT met"]
        for d, fig, tgt, ok in met
    ]
    text = f"""# Cost- and latency-aware ranking

Every request goes down the ranked chain until a path succeeds, then an always-works
`{FINAL.name}` (free, {FINAL.latency_ms:g} ms), as `Router.run` does. So whether a request
succeeds does not depend on the order; the order decides what it costs and how long it
takes. The router with `objective="cost"` draws θ from each path's Beta posterior (the
same draws as Thompson Sampling) and tries paths by ascending `cost per attempt / θ`, the
expected cost to a success (Simon & Kadane's ratio index); `objective="latency"` by
`seconds per attempt / θ`. Cost and latency per attempt are learned from the attempts
(decayed means, half-life {HALF_LIFE:g} requests like the success evidence).

{runs} runs of {horizon:,} requests per policy and world, seed {seed}, the same outcomes for
every policy (common random numbers). Cost per 1,000 requests is measured after the first
{warmup:,} requests (± 95% interval over runs). Regret is the run's total cost (or time)
minus the oracle's on the same outcomes, paired per run: dollars against the true `c/p`
order, seconds against the true `t/p` order. "Best fixed order in hindsight": every fixed
order was run and the cheapest (or fastest) picked afterwards. LiteLLM's blend normalizes
prices min–max over the paths (cheapest 0, dearest 1); all learning policies use the same
half-life.

{chr(10).join(sections)}
## The issue's targets

{table(["target", "figure", "target", ""], target_rows)}

## Where a fixed order does as well

{_reading(results)}

Where the cost-optimal order never changes — (i) and (iii), and (ii), where the drop
leaves `rules` first whatever the large model does — the right fixed order, written down
by someone who knows the true rates and prices, is as cheap as the oracle and a little
cheaper than the router. That gap is the router's exploration floor: without it the
router is within {_small_dollars(_settled_gap(results))} per 1,000 requests of the oracle in those
three worlds (next section). The router's advantage is not needing that knowledge, and
following the world when the order flips (iv).

## Against LiteLLM's blend, and what the exploration floor costs

{summary_table(results)}

{_blend_and_floor(results)}

The blend's fixed 0.3 weight on price is what decides it: where the cheapest path is also
nearly as good, it puts that path first on every request, with no exploration; where it
is not, it keeps the wrong order (in (ii) it puts the small model first, 0.7 × 0.85 +
0.3 × 0.82 = 0.84 against 0.7 × 0.60 + 0.3 = 0.72 for rules, though rules costs less per
success). The floor is there so that a path that was abandoned and later recovers is
tried first again; in these four worlds no path recovers, so here it is pure cost.

![cost per 1,000 vs mean latency, first-attempt success as size]({png_path.name})

Reproduce: `python -m {__package__}.{NAME}{" --quick" if quick else ""} --seed {seed}`.
"""
    md_path.write_text(text)
    return md_path


def _plot(results: dict[str, WorldResult], png_path: Path) -> None:
    """Pareto view per world: cost per 1,000 (x) vs mean latency (y), marker size and
    colour from first-attempt success."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.6))
    styles = {
        COST: ("o", "tab:green"),
        LATENCY: ("s", "tab:blue"),
        SUCCESS: ("^", "tab:orange"),
        BLEND: ("D", "tab:red"),
        QUALITY: ("v", "tab:brown"),
        COST_ORACLE: ("*", "black"),
        LATENCY_ORACLE: ("P", "grey"),
    }
    for ax, w in zip(np.atleast_1d(axes), results.values(), strict=True):
        for name, r in w.rows.items():
            marker, color = styles.get(name, ("x", "tab:purple"))
            size = 40 + 400 * float(r.first_success.mean()) ** 4
            label = name if not name.startswith("fixed: ") else None
            ax.scatter(
                r.cost_after.mean(),
                r.latency_ms.mean(),
                s=size,
                marker=marker,
                color=color,
                alpha=0.8,
                label=label,
            )
            if name.startswith("fixed: "):
                ax.annotate(
                    name.removeprefix("fixed: "),
                    (r.cost_after.mean(), r.latency_ms.mean()),
                    fontsize=6,
                    alpha=0.7,
                )
        ax.set_title(w.world.title, fontsize=8)
        ax.set_xlabel("cost per 1,000 requests (USD)")
        ax.set_ylabel("mean latency per request (ms)")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=6, loc="best")
    fig.suptitle(
        "Lower-left is better; marker size grows with first-attempt success (x = fixed orders)"
    )
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    command_line(NAME, run)
