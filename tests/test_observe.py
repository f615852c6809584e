"""Observers, on_outcome callbacks, path checks and pricing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from adaptive_router import AllPathsFailed, Observability, Outcome, Path, Router
from adaptive_router.metering.prices import Pricer
from adaptive_router.observe.observers import Observer
from adaptive_router.outcomes import Result, Usage
from adaptive_router.resilience import CircuitBreaker


class Recording(Observer):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def request_started(self, task: str, request_id: str) -> None:
        self.events.append(("start", task))

    def attempt_started(self, task: str, request_id: str, path: str, attempt: int) -> None:
        self.events.append(("attempt", path, attempt))

    def attempt_finished(self, outcome: Outcome) -> None:
        self.events.append(("done", outcome.path, outcome.kind, outcome.skipped))

    def request_finished(
        self, task: str, request_id: str, attempts: Sequence[Outcome], success: bool
    ) -> None:
        self.events.append(("end", len(attempts), success))

    def breaker_changed(self, task: str, path: str, old: str, new: str) -> None:
        self.events.append(("breaker", path, old, new))


def test_observer_sees_the_life_of_a_request() -> None:
    rec = Recording()

    def down() -> None:
        raise ConnectionError("x")

    b = CircuitBreaker(failure_threshold=1, name="some-other-name")
    with Router(
        [Path(down, name="down", breaker=b, retry=None, timeout=None)],
        bool,
        "obs",
        store="memory://",
        fallback=Path(lambda: "ok", name="fb", timeout=None),
        observability=Observability(observers=[rec]),
    ) as r:
        r.run()
        r.run()
    assert rec.events[:6] == [
        ("start", "obs"),
        ("attempt", "down", 1),
        ("breaker", "down", "closed", "open"),
        ("done", "down", "connection", False),
        ("attempt", "fb", 2),
        ("done", "fb", None, False),
    ]
    assert rec.events[6] == ("end", 2, True)
    assert rec.events[7:] == [
        ("start", "obs"),
        ("done", "down", "breaker_open", True),
        ("attempt", "fb", 1),
        ("done", "fb", None, False),
        ("end", 2, True),
    ]


def test_on_outcome_callbacks_and_a_failing_hook(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Outcome] = []

    def broken_hook(o: Outcome) -> None:
        raise RuntimeError("hook bug")

    with (
        Router(
            [Path(lambda: "", name="empty", timeout=None)],
            bool,
            "hooks",
            store="memory://",
            fallback=Path(lambda: 1, name="fb", timeout=None),
            observability=Observability(on_outcome=[seen.append, broken_hook]),
        ) as r,
        caplog.at_level(logging.ERROR),
    ):
        assert r.run() == 1
        assert r.run() == 1
    assert [(o.path, o.kind) for o in seen] == [("empty", "empty"), ("fb", None)] * 2
    assert sum("on_outcome callback failed" in m.getMessage() for m in caplog.records) == 1


def test_report_outcomes_reach_callbacks() -> None:
    seen: list[Outcome] = []
    with Router(
        [Path(lambda: 1, name="a", model="gpt-4o")],
        bool,
        "two",
        store="memory://",
        observability=Observability(on_outcome=seen.append),
    ) as r:
        d = r.choose()
        r.report(d.request_id, success=True, input_tokens=1000, output_tokens=500)
    (o,) = seen
    expected = calc_price(PriceUsage(input_tokens=1000, output_tokens=500), model_ref="gpt-4o")
    assert o.cost_usd == float(expected.total_price)


def test_check_runs_every_path_including_the_fallback() -> None:
    calls = {"n": 0}

    def half(x: int) -> int | None:
        calls["n"] += 1
        return x if x % 2 == 0 else None

    def boom(x: int) -> int:
        raise ValueError("no")

    with Router(
        [Path(half, name="half", timeout=None), Path(boom, name="boom", timeout=None)],
        lambda v: v is not None,
        "check",
        store="memory://",
        fallback=Path(lambda x: x, name="fb", timeout=None),
    ) as r:
        report = {c.path: c for c in r.check([1, 2, 3, 4])}
        assert r.store.outcomes("check") == []  # nothing recorded
        with pytest.raises(ValueError, match="samples"):
            r.check([])
    assert (report["half"].successes, report["half"].errors) == (2, {"empty": 2})
    assert report["half"].success_rate == 0.5
    assert (report["boom"].successes, report["boom"].errors) == (0, {"exception": 4})
    assert (report["fb"].runs, report["fb"].successes) == (4, 4)


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-6"])
def test_cost_is_priced_exactly_as_genai_prices(model: str) -> None:
    def call() -> Result:
        return Result("ok", Usage(input_tokens=1000, output_tokens=500))

    with Router(
        [Path(call, name="p", model=model, timeout=None)], bool, "price", store="memory://"
    ) as r:
        r.run()
        (row,) = r.store.outcomes("price")
    expected = calc_price(PriceUsage(input_tokens=1000, output_tokens=500), model_ref=model)
    assert row.cost_usd == float(expected.total_price)
    assert row.cost_usd > 0


def test_price_overrides_and_unknown_models(caplog: pytest.LogCaptureFixture) -> None:
    pricer = Pricer({"my-model": (2.0, 8.0)})
    assert pricer.cost("my-model", 1_000_000, 500_000) == pytest.approx(2.0 + 4.0)
    # An override has no cache rates: cached prompt tokens cost the plain input price.
    assert pricer.cost("my-model", 1_000_000, 0, cache_read_tokens=900_000) == pytest.approx(2.0)
    with caplog.at_level(logging.WARNING):
        assert pricer.cost("no-such-model-zz", 10, 10) is None
        assert pricer.cost("no-such-model-zz", 10, 10) is None
    assert sum("no price known" in m.getMessage() for m in caplog.records) == 1
    assert pricer.cost(None, 10, 10) is None
    assert pricer.cost("gpt-4o", None, None) is None
    with pytest.raises(ValueError, match="my-bad"):
        Pricer({"my-bad": (1.0,)})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="finite"):
        Pricer({"neg": (-1.0, 1.0)})


def test_path_reported_cost_wins_over_the_price_table() -> None:
    with Router(
        [
            Path(
                lambda: Result("x", Usage(10, 10, cost_usd=0.5)),
                name="p",
                model="gpt-4o",
                timeout=None,
            )
        ],
        bool,
        "own",
        store="memory://",
    ) as r:
        r.run()
        assert r.store.outcomes("own")[0].cost_usd == 0.5


def test_failed_request_is_observed_too() -> None:
    rec = Recording()
    with (
        Router(
            [Path(lambda: None, name="none", timeout=None)],
            bool,
            "fail",
            store="memory://",
            observability=Observability(observers=[rec]),
        ) as r,
        pytest.raises(AllPathsFailed),
    ):
        r.run()
    assert rec.events[-1] == ("end", 1, False)


def test_check_samples_can_spell_out_positional_and_keyword_arguments() -> None:
    def join(a: str, b: str, *, sep: str = "-") -> str:
        return a + sep + b

    with Router([Path(join, name="join", timeout=None)], bool, "spell", store="memory://") as r:
        (report,) = r.check(
            [{"$args": ["x", "y"]}, {"$args": ["x"], "$kwargs": {"b": "y", "sep": ""}}, ("x", "y")]
        )
    assert (report.runs, report.successes) == (3, 3)
    with pytest.raises(ValueError, match="'\\$args' must be a list"):
        r.check([{"$args": "xy"}])
    with pytest.raises(ValueError, match="'\\$kwargs' must be a mapping"):
        r.check([{"$kwargs": ["b"]}])
