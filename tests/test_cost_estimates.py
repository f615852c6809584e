"""``Path(estimate_cost_usd=...)``: a path priced per request where the router weighs cost
(a spend target, ``objective="cost"``, ``max_cost_usd``), bad estimates refused or logged."""

from __future__ import annotations

import logging
import math
import random
from typing import Any

import pytest
from conftest import StepClock

from adaptive_router import AllPathsFailed, Budget, Learning, Objective, Path, Router
from adaptive_router.errors import ConfigurationError
from adaptive_router.outcomes import Result, Usage

SHORT, LONG = "q" * 100, "q" * 2000
#: The dear path costs 1e-5 USD per character of the request; the cheap one a flat 1e-4.
PER_CHAR, CHEAP = 1e-5, 1e-4
TARGET = 0.004


def _paths(seed: int, estimate: bool, called: list[str]) -> list[Path]:
    rng = random.Random(seed)

    def dear(text: str) -> Result:
        called.append("dear")
        return Result(rng.random() < 0.9, Usage(cost_usd=len(text) * PER_CHAR))

    def cheap(text: str) -> Result:
        called.append("cheap")
        return Result(rng.random() < 0.6, Usage(cost_usd=CHEAP))

    est = (lambda text: len(text) * PER_CHAR) if estimate else None
    return [
        Path(dear, name="dear", estimate_cost_usd=est),
        Path(cheap, name="cheap", estimate_cost_usd=(lambda text: CHEAP) if estimate else None),
    ]


def _serve(estimate: bool, n: int, seed: int = 3) -> dict[str, Any]:
    """``n`` requests, long or short at random, under the spend target; the second half's
    figures and the router's spend status."""
    called: list[str] = []
    lengths = random.Random(seed + 1)
    picks: dict[str, list[str]] = {SHORT: [], LONG: []}
    ok = 0
    with Router(
        _paths(seed, estimate, called),
        bool,
        "priced",
        store="memory://",
        objective=Objective(target_usd_per_request=TARGET),
        budget=Budget(max_attempts=1),
        learning=Learning(seed=seed, clock=StepClock(step=1.0)),
    ) as router:
        for i in range(n):
            text = SHORT if lengths.random() < 0.5 else LONG
            try:
                router.run(text)
                ok += i >= n // 2
            except AllPathsFailed:
                pass
            if i >= n // 2:
                picks[text].append(called[-1])
        spend = router.spend()
    return {
        "dear_short": picks[SHORT].count("dear") / len(picks[SHORT]),
        "dear_long": picks[LONG].count("dear") / len(picks[LONG]),
        "success": ok / (n - n // 2),
        "spend": spend.realized_usd_per_request,
    }


def test_a_spend_target_buys_the_dear_path_where_the_request_makes_it_cheap() -> None:
    a, b = _serve(estimate=True, n=3000), _serve(estimate=False, n=3000)
    # Per request: the dear path for nearly every short request (it costs 0.001 there),
    # for few long ones (0.02). By the learned mean (~0.01 for both lengths) the router
    # cannot tell them apart.
    assert a["dear_short"] > 0.9 and a["dear_long"] < 0.5
    assert abs(b["dear_short"] - b["dear_long"]) < 0.1
    # The same money buys more successes.
    assert a["success"] > b["success"] + 0.04
    assert a["spend"] == pytest.approx(TARGET, rel=0.05)
    assert b["spend"] == pytest.approx(TARGET, rel=0.05)


def test_objective_cost_and_max_cost_usd_judge_the_request_estimate() -> None:
    seen: list[str] = []

    def dear(text: str) -> str:
        seen.append("dear")
        return "dear"

    def cheap(text: str) -> str:
        seen.append("cheap")
        return "cheap"

    paths = [
        Path(dear, name="dear", estimate_cost_usd=lambda text: len(text) * PER_CHAR),
        Path(cheap, name="cheap", expected_cost_usd=0.005),
    ]
    with Router(
        paths,
        bool,
        "capped",
        store="memory://",
        budget=Budget(max_cost_usd=0.01, max_attempts=1),
        learning=Learning(seed=0),
    ) as router:
        for _ in range(30):
            assert router.run(LONG) == "cheap"  # dear: 0.02 > 0.01, refused before a call
        assert seen == ["cheap"] * 30
        seen.clear()
        router.run(SHORT)  # 0.001: allowed, so a request may go either way
        assert seen in (["dear"], ["cheap"])
    paths = [
        Path(lambda text: "dear", name="dear", estimate_cost_usd=lambda t: len(t) * PER_CHAR),
        Path(lambda text: "cheap", name="cheap", expected_cost_usd=0.005),
    ]
    with Router(
        paths, bool, "cost", store="memory://", objective="cost", learning=Learning(seed=0)
    ) as router:
        # Equal (prior) success: the cheaper path per request goes first.
        assert [router.choose(SHORT).path for _ in range(50)].count("dear") > 40
        assert [router.choose(LONG).path for _ in range(50)].count("cheap") > 40


def _usd(fn: Any) -> dict[str, Any]:
    return {"estimate_cost_usd": fn}


def _tokens(fn: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "expected_tokens": fn}


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (_usd(lambda text: math.nan), "got nan"),
        (_usd(lambda text: -0.01), "got -0.01"),
        (_usd(lambda text: math.inf), "got inf"),
        (_usd(lambda text: "0.01"), "got '0.01'"),
        (_usd(lambda text: True), "got True"),
        (_usd(lambda text: 1 / 0), "estimate_cost_usd raised ZeroDivisionError"),
        # Tokens per request (priced at the model's price) are checked the same way.
        (_tokens(lambda text: (1, -1)), "got (1, -1)"),
        (_tokens(lambda text: (1.5, 2)), "got (1.5, 2)"),
        (_tokens(lambda text: 12), "got 12"),
        (_tokens(lambda text: (True, 1)), "got (True, 1)"),
        # Beyond any context window; priced, it would overflow a float.
        (_tokens(lambda text: (10**400, 1)), "two ints in [0, 10**12], got (1000"),
        (_tokens(lambda text: 1 / 0), "expected_tokens raised ZeroDivisionError"),
    ],
)
def test_a_bad_estimate_raises_in_choose_and_is_logged_once_in_run(
    bad: dict[str, Any], says: str, caplog: pytest.LogCaptureFixture
) -> None:
    paths = [
        Path(lambda text: text, name="bad", **bad),
        Path(lambda text: text, name="fine", estimate_cost_usd=lambda text: 0.001),
    ]
    with Router(
        paths,
        bool,
        "estimates",
        store="memory://",
        objective=Objective(target_usd_per_request=0.01),
        learning=Learning(seed=0),
    ) as router:
        with pytest.raises(ValueError, match=r"path 'bad': ") as err:
            router.choose("x")
        assert says in str(err.value)
        named = "expected_tokens" if "expected_tokens" in bad else "estimate_cost_usd"
        assert f"path 'bad': {named} " in str(err.value)
        # A decision without the request's arguments is priced by the learned costs.
        assert router.choose().path in ("bad", "fine")
        with caplog.at_level(logging.WARNING, logger="adaptive_router"):
            assert [router.run("x") for _ in range(5)] == ["x"] * 5
        warned = [r for r in caplog.records if "ranked by learned costs" in r.getMessage()]
        assert len(warned) == 1
        assert "path 'bad'" in warned[0].getMessage() and says in warned[0].getMessage()
        assert sum(s.attempts for s in router.stats()) == 5


def test_numpy_estimates_are_numbers() -> None:
    import numpy as np

    paths = [
        Path(lambda t: t, name="a", estimate_cost_usd=lambda t: np.float32(0.25)),
        Path(lambda t: t, name="b", estimate_cost_usd=lambda t: np.int64(0)),
        Path(lambda t: t, name="c"),
    ]
    with Router(paths, bool, "np", store="memory://", objective="cost") as router:
        assert router.ranking.request_costs(("q",), {}) == [0.25, 0.0, None]


def test_an_estimator_that_is_not_a_function_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="estimate_cost_usd must be a function"):
        Path(lambda: 1, name="p", estimate_cost_usd=0.01)  # type: ignore[arg-type]


def test_an_estimator_is_not_called_when_nothing_weighs_cost() -> None:
    calls: list[str] = []

    def estimate(text: str) -> float:
        calls.append(text)
        return 0.001

    def router(**kw: Any) -> Router:
        paths = [
            Path(lambda t: t, name="a", estimate_cost_usd=estimate),
            Path(lambda t: t, name="b"),
        ]
        return Router(paths, bool, "plain", store="memory://", learning=Learning(seed=0), **kw)

    for kw in ({}, {"objective": "latency"}, {"budget": Budget(max_attempts=1)}):
        with router(**kw) as r:
            assert r.run("hello") == "hello" and r.choose("hello").path in ("a", "b")
    assert calls == []
    for kw in (
        {"objective": "cost"},
        {"budget": Budget(max_cost_usd=1.0)},
        {"objective": Objective(target_usd_per_request=0.01)},
    ):
        with router(**kw) as r:
            r.run("hello")
        assert calls == ["hello"], kw
        calls.clear()
