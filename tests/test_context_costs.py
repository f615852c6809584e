"""Per-context expected cost and latency: a path cheap in one context and dear in another
is ranked by the context's own cost, mixed with the task level like success evidence."""

from __future__ import annotations

import pathlib
import random

import pytest

from adaptive_router import Budget, Learning, Path, Router
from adaptive_router.outcomes import Result, Usage
from adaptive_router.router.context_costs import mixed_means

#: Per-attempt cost of each path in each context: "a" is cheap on short inputs and dear
#: on long ones, "b" the other way round. Task-level means are equal ($0.0055 each).
COSTS = {("a", "short"): 0.001, ("a", "long"): 0.010, ("b", "short"): 0.010, ("b", "long"): 0.001}


def _router(calls: list[tuple[str, str]], store: str = "memory://", **kw: object) -> Router:
    def path(name: str, p: float, seed: int) -> Path:
        rng = random.Random(seed)

        def fn(kind: str) -> Result:
            calls.append((name, kind))
            return Result("ok" if rng.random() < p else "bad", Usage(cost_usd=COSTS[name, kind]))

        return Path(fn, name=name, timeout=None, retry=None, breaker=None)

    now = [1_000_000.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    return Router(
        [path("a", 0.92, 1), path("b", 0.90, 2)],
        success_fn=lambda v: v == "ok",
        task="context-costs",
        store=store,
        fallback=Path(lambda kind: "ok", name="fb", timeout=None, retry=None),
        learning=Learning(seed=7, clock=clock),
        **kw,  # type: ignore[arg-type]
    )


def _first_choices(router: Router, calls: list[tuple[str, str]], n: int) -> dict[str, list[str]]:
    first: dict[str, list[str]] = {"short": [], "long": []}
    for i in range(n):
        kind = "short" if i % 2 == 0 else "long"
        start = len(calls)
        assert router.run(kind, context=kind) == "ok"
        first[kind].append(calls[start][0])
    return first


def test_cost_objective_routes_each_context_to_its_own_cheap_path() -> None:
    calls: list[tuple[str, str]] = []
    with _router(calls, objective="cost") as router:
        first = _first_choices(router, calls, 3000)
        post = {c: {p.path: p for p in router.posteriors(context=c)} for c in ("short", "long")}
        task_level = {p.path: p for p in router.posteriors()}
    short = first["short"][-500:].count("a") / 500
    long_ = first["long"][-500:].count("b") / 500
    # With task-level costs only, one path wins in both contexts (measured: 98.6% and 1.6%).
    print(f"cheap-path share of first attempts: short {short:.1%}, long {long_:.1%}")
    assert short >= 0.75, short
    assert long_ >= 0.75, long_
    # The context's own mean dominates its capped task-level prior (10 pseudo-attempts).
    assert post["short"]["a"].expected_cost_usd == pytest.approx(0.001, rel=0.15)
    assert post["long"]["a"].expected_cost_usd == pytest.approx(0.010, rel=0.15)
    assert post["short"]["b"].expected_cost_usd == pytest.approx(0.010, rel=0.15)
    # The task level mixes both contexts' attempts.
    assert 0.0015 < (task_level["a"].expected_cost_usd or 0.0) < 0.009


def test_success_objective_ignores_per_context_costs() -> None:
    calls: list[tuple[str, str]] = []
    with _router(calls) as router:
        first = _first_choices(router, calls, 1000)
    # The default objective ranks by success alone: "a" (0.92) leads in both contexts.
    assert first["short"][-300:].count("a") / 300 > 0.5
    assert first["long"][-300:].count("a") / 300 > 0.5


def test_max_cost_judges_a_path_by_its_cost_in_the_context(tmp_path: pathlib.Path) -> None:
    store = f"sqlite:///{tmp_path}/costs.db"
    calls: list[tuple[str, str]] = []
    with _router(calls, store=store, objective="cost") as router:
        _first_choices(router, calls, 400)
    calls.clear()
    # A budget of $0.005 per request: "a" is affordable on short inputs only, "b" on long
    # ones (task level, both cost $0.0055 and both would be refused).
    with _router(calls, store=store, objective="cost", budget=Budget(max_cost_usd=0.005)) as router:
        for kind in ("short", "long") * 50:
            assert router.run(kind, context=kind) == "ok"
        known = {c: router.ranking.known_costs(0.0, c) for c in ("short", "long")}
    assert {n for n, k in calls if k == "short"} == {"a"}
    assert {n for n, k in calls if k == "long"} == {"b"}
    assert known["short"]["a"] < 0.005 < known["short"]["b"]
    assert known["long"]["b"] < 0.005 < known["long"]["a"]


def test_mixed_means_cap_the_task_level_like_success_evidence() -> None:
    # Task level: 100 attempts at $0.005 mean; the context's own: 10 attempts at $0.001.
    task = {"p": (0.5, 100.0, 50_000.0, 100.0, 1000.0)}
    own = {"p": (0.01, 10.0, 1_000.0, 10.0, 1000.0)}
    costs, lat = mixed_means(["p", "q"], task, own, now=1000.0, half_life=None, strength=10.0)
    # Task level scaled to 10 pseudo-attempts ($0.05, 5,000 ms) plus the context's own.
    assert costs == [pytest.approx((0.05 + 0.01) / 20.0), None]
    assert lat == [pytest.approx((5_000.0 + 1_000.0) / 20.0), None]
    # Under the cap the task level counts in full.
    costs, _ = mixed_means(["p"], task, own, now=1000.0, half_life=None, strength=1e9)
    assert costs == [pytest.approx(0.51 / 110.0)]
    # No context evidence: the task level's mean; no task evidence: the context's.
    assert mixed_means(["p"], task, {}, 1000.0, None, 10.0)[0] == [pytest.approx(0.005)]
    assert mixed_means(["p"], {}, own, 1000.0, None, 10.0)[0] == [pytest.approx(0.001)]


def test_mixed_means_decay_each_row_to_now() -> None:
    # Same weight in both rows, but the task row is one half-life older than the
    # context's: it counts half, so the mean leans 2:1 to the context's.
    task = {"p": (3.0, 1.0, 0.0, 0.0, 900.0)}
    own = {"p": (0.0, 1.0, 0.0, 0.0, 1000.0)}
    costs, lat = mixed_means(["p"], task, own, now=1000.0, half_life=100.0, strength=10.0)
    assert costs == [pytest.approx(1.5 / 1.5)]  # without decay: 3 / 2
    assert lat == [None]
