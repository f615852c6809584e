"""Router-level objectives (issue 15): ``objective="cost"`` / ``"latency"`` reorder the
learned paths by expected cost / time to a success, and request budgets
(``max_attempts``, ``request_timeout``, ``max_cost_usd``) bound one request."""

from __future__ import annotations

import asyncio
import math
import random
import time
import types
from collections.abc import Callable
from typing import Any

import pytest

import adaptive_router
from adaptive_router import AllPathsFailed, Budget, Learning, Path, Router
from adaptive_router.errors import ConfigurationError
from adaptive_router.outcomes import Result, Usage
from adaptive_router.policies.objectives import Objective, ObjectiveThompsonSampling
from adaptive_router.policies.thompson import ThompsonSampling
from adaptive_router.router import attempts as attempts_module
from adaptive_router.router import budgets as budgets_module


def _bernoulli_path(
    name: str, p: float, cost: float, seed: int, calls: list[str], **kw: Any
) -> Path:
    rng = random.Random(seed)

    def fn() -> Result:
        calls.append(name)
        return Result("ok" if rng.random() < p else "bad", Usage(cost_usd=cost))

    return Path(fn, name=name, timeout=None, retry=None, breaker=None, **kw)


def _simulate(objective: str, n: int = 3000) -> tuple[list[str], list[float], int]:
    """Run ``n`` requests over (0.93, $0.010) and (0.90, $0.001) with a free fallback;
    returns each request's first path, each request's cost, and the requests that
    succeeded before the fallback."""
    calls: list[str] = []
    now = [1_000_000.0]
    paths = [
        _bernoulli_path("premium", 0.93, 0.010, 11, calls),
        _bernoulli_path("budget", 0.90, 0.001, 12, calls),
    ]

    def fallback() -> str:
        calls.append("fallback")
        return "ok"

    router = Router(
        paths,
        success_fn=lambda v: v == "ok",
        task="cost-objective",
        store="memory://",
        fallback=Path(fallback, name="fallback", timeout=None, retry=None),
        objective=objective,
        learning=Learning(seed=2026, clock=lambda: now[0]),
    )
    cost = {"premium": 0.010, "budget": 0.001, "fallback": 0.0}
    first: list[str] = []
    per_request: list[float] = []
    before_fallback = 0
    with router:
        for _ in range(n):
            start = len(calls)
            assert router.run() == "ok"
            these = calls[start:]
            first.append(these[0])
            per_request.append(sum(cost[c] for c in these))
            before_fallback += "fallback" not in these
            now[0] += 1.0
    return first, per_request, before_fallback


def test_cost_objective_moves_traffic_to_the_cheap_path_at_the_same_success() -> None:
    first, costs, ok = _simulate("cost")
    base_first, base_costs, base_ok = _simulate("success")
    cheap_share = first[-1000:].count("budget") / 1000
    assert cheap_share >= 0.75, cheap_share
    assert base_first[-1000:].count("budget") / 1000 < 0.5  # the default prefers premium
    assert sum(costs) / len(costs) <= 0.5 * sum(base_costs) / len(base_costs)
    assert abs(ok - base_ok) / 3000 <= 0.02


def test_success_objective_is_plain_thompson_sampling() -> None:
    assert adaptive_router.Objective is Objective
    assert "ObjectiveThompsonSampling" in adaptive_router.__all__
    r = Router([lambda: 1], success_fn=bool, task="t", store="memory://")
    assert type(r.policy) is ThompsonSampling and r.objective.name == "success"
    r.close()
    c = Router([lambda: 1], success_fn=bool, task="t", store="memory://", objective="cost")
    assert isinstance(c.policy, ObjectiveThompsonSampling) and c.objective.name == "cost"
    c.close()
    o = Objective(cost_weight=1.0, usd_per_second=0.01)
    r2 = Router([lambda: 1], success_fn=bool, task="t", store="memory://", objective=o)
    assert isinstance(r2.policy, ObjectiveThompsonSampling) and r2.policy.objective is o
    r2.close()


def test_latency_objective_prefers_the_fastest_time_to_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Latency is measured with time.perf_counter around each call: a controllable
    # counter that each path advances by its latency stands in for real waiting.
    tick = [0.0]
    fake = types.SimpleNamespace(perf_counter=lambda: tick[0], time=time.time, time_ns=time.time_ns)
    monkeypatch.setattr(attempts_module, "time", fake)
    monkeypatch.setattr(budgets_module, "time", fake)

    def run(objective: str) -> list[str]:
        calls: list[str] = []

        def timed(name: str, p: float, ms: float, seed: int) -> Path:
            rng = random.Random(seed)

            def fn() -> str:
                calls.append(name)
                tick[0] += ms / 1000.0
                return "ok" if rng.random() < p else "bad"

            return Path(fn, name=name, timeout=None, retry=None, breaker=None)

        router = Router(
            [timed("slow", 0.95, 400.0, 1), timed("fast", 0.85, 40.0, 2)],
            success_fn=lambda v: v == "ok",
            task="latency-objective",
            store="memory://",
            fallback=Path(lambda: "ok", name="fb", timeout=None, retry=None),
            objective=objective,
            learning=Learning(seed=5),
        )
        first = []
        with router:
            for _ in range(1500):
                start = len(calls)
                router.run()
                first.append(calls[start])
            post = {p.path: p for p in router.posteriors()}
        assert post["slow"].expected_latency_ms == pytest.approx(400.0)
        assert post["fast"].expected_latency_ms == pytest.approx(40.0)
        return first[-500:]

    assert run("latency").count("fast") / 500 >= 0.75
    assert run("success").count("fast") / 500 < 0.5


def test_posteriors_show_expected_cost_and_latency_prior_then_measured() -> None:
    calls: list[str] = []
    router = Router(
        [
            _bernoulli_path("a", 1.0, 0.002, 1, calls, expected_cost_usd=0.5),
            _bernoulli_path("b", 1.0, 0.002, 2, calls, expected_latency_ms=250.0),
        ],
        success_fn=lambda v: v == "ok",
        task="post",
        store="memory://",
        learning=Learning(seed=1),
    )
    with router:
        before = {p.path: p for p in router.posteriors()}
        assert before["a"].expected_cost_usd == 0.5 and before["a"].expected_latency_ms is None
        assert before["b"].expected_cost_usd is None and before["b"].expected_latency_ms == 250.0
        for _ in range(20):
            router.run()
        after = {p.path: p for p in router.posteriors()}
        used = {c for c in calls}
        for name in used:
            assert after[name].expected_cost_usd == pytest.approx(0.002)
            assert after[name].expected_latency_ms is not None
            assert after[name].expected_latency_ms < 250.0


def _failing(name: str, calls: list[str], sleep_s: float = 0.0, **kw: Any) -> Path:
    def fn() -> str:
        calls.append(name)
        if sleep_s:
            time.sleep(sleep_s)
        return "bad"

    return Path(fn, name=name, **kw)


def test_max_attempts_one_tries_one_learned_path_then_the_fallback() -> None:
    calls: list[str] = []
    router = Router(
        [_failing(n, calls) for n in "abc"],
        success_fn=lambda v: v == "ok",
        task="max-attempts",
        store="memory://",
        fallback=Path(lambda: "ok", name="fb"),
        budget=Budget(max_attempts=1),
        learning=Learning(seed=3),
    )
    with router:
        for _ in range(5):
            calls.clear()
            assert router.run() == "ok"
            assert len(calls) == 1
    no_fallback = Router(
        [_failing(n, calls) for n in "abc"],
        success_fn=lambda v: v == "ok",
        task="max-attempts-2",
        store="memory://",
        budget=Budget(max_attempts=2),
        learning=Learning(seed=3),
    )
    with no_fallback, pytest.raises(AllPathsFailed) as err:
        calls.clear()
        no_fallback.run()
    assert len(calls) == 2
    kinds = [a.kind for a in err.value.attempts]
    assert kinds.count("rejected") == 2 and kinds.count("max_attempts") == 1
    skipped = [a for a in err.value.attempts if a.kind == "max_attempts"]
    assert skipped[0].skipped and "max_attempts=2" in (skipped[0].error or "")


def _slow_router(calls: list[str], fallback: bool) -> Router:
    return Router(
        [_failing(n, calls, sleep_s=0.3) for n in "abcd"],
        success_fn=lambda v: v != "bad",
        task="request-timeout",
        store="memory://",
        fallback=Path(lambda: "fallback answer", name="fb") if fallback else None,
        budget=Budget(request_timeout=0.5),
        learning=Learning(seed=4),
    )


def test_request_timeout_cuts_the_request_and_runs_the_fallback() -> None:
    calls: list[str] = []
    with _slow_router(calls, fallback=True) as router:
        started = time.perf_counter()
        answer = router.run()
        elapsed = time.perf_counter() - started
    assert answer == "fallback answer"
    assert elapsed < 0.8, elapsed
    assert len(calls) == 2  # the second path's call was cut at the deadline


def test_request_timeout_arun() -> None:
    calls: list[str] = []

    async def main() -> tuple[Any, float]:
        with _slow_router(calls, fallback=True) as router:
            started = time.perf_counter()
            answer = await router.arun()
            return answer, time.perf_counter() - started

    answer, elapsed = asyncio.run(main())
    assert answer == "fallback answer"
    assert elapsed < 0.8, elapsed


def test_request_timeout_without_fallback_says_so() -> None:
    calls: list[str] = []
    with _slow_router(calls, fallback=False) as router, pytest.raises(AllPathsFailed) as err:
        router.run()
    kinds = [a.kind for a in err.value.attempts]
    assert kinds[:2] == ["rejected", "timeout"], kinds
    assert kinds[2:] == ["request_timeout", "request_timeout"], kinds
    assert "request_timeout=0.5" in (err.value.attempts[-1].error or "")


def test_max_cost_skips_a_path_expected_to_cost_more_than_is_left() -> None:
    calls: list[str] = []
    router = Router(
        [
            _failing("cheap", calls, expected_cost_usd=0.002),
            _failing("pricey", calls, expected_cost_usd=0.05),
        ],
        success_fn=lambda v: v == "ok",
        task="max-cost",
        store="memory://",
        fallback=Path(lambda: "ok", name="fb"),
        budget=Budget(max_cost_usd=0.01),
        learning=Learning(seed=5),
    )
    with router:
        for _ in range(10):
            assert router.run() == "ok"
    assert calls == ["cheap"] * 10
    no_fb = Router(
        [_failing("pricey", calls, expected_cost_usd=0.05)],
        success_fn=lambda v: v == "ok",
        task="max-cost-2",
        store="memory://",
        budget=Budget(max_cost_usd=0.01),
    )
    with no_fb, pytest.raises(AllPathsFailed) as err:
        no_fb.run()
    (skip,) = err.value.attempts
    assert skip.skipped and skip.kind == "over_budget"
    assert "max_cost_usd=0.01" in (skip.error or "")


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"objective": "speed"}, "objective"),
        ({"objective": 3}, "objective"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 1.5}, "max_attempts"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"request_timeout": -1.0}, "request_timeout"),
        ({"request_timeout": math.nan}, "request_timeout"),
        ({"max_cost_usd": -0.01}, "max_cost_usd"),
        ({"max_cost_usd": math.nan}, "max_cost_usd"),
        ({"objective": "cost", "policy": ThompsonSampling()}, "objective"),
    ],
)
def test_bad_objective_and_budgets_name_the_parameter(
    kwargs: dict[str, Any], parameter: str
) -> None:
    with pytest.raises(ConfigurationError, match=parameter):
        budget = {k: kwargs.pop(k) for k in list(kwargs) if k in BUDGET_FIELDS}
        policy = kwargs.pop("policy", None)
        Router(
            [lambda: 1],
            success_fn=bool,
            task="t",
            store="memory://",
            budget=Budget(**budget),
            learning=Learning(policy=policy),
            **kwargs,
        )


BUDGET_FIELDS = ("max_attempts", "request_timeout", "max_cost_usd")


@pytest.mark.parametrize("attr", ["expected_cost_usd", "expected_latency_ms"])
@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf, "1"])
def test_bad_path_priors_name_the_parameter(attr: str, value: Any) -> None:
    fn: Callable[[], int] = lambda: 1  # noqa: E731
    with pytest.raises(ConfigurationError, match=attr):
        Path(fn, name="p", **{attr: value})


def test_a_cut_timeout_is_never_zero_or_negative() -> None:
    from adaptive_router.router.budgets import MIN_TIMEOUT_S, Budget, RequestBudget

    spent = RequestBudget(Budget(request_timeout=1.0), time.perf_counter() - 5.0, {}, "fb")
    assert spent.cut(30.0) == MIN_TIMEOUT_S
    assert spent.cut(None) == MIN_TIMEOUT_S
    fresh = Budget(request_timeout=10.0).start("fb")
    assert fresh.cut(2.0) == 2.0
    assert 9.0 < (fresh.cut(None) or 0.0) <= 10.0
    assert not fresh.limits("fb") and fresh.limits("a")
