"""Alerts: each fires once under a storm, never below its threshold, and is delivered three
ways (log, metric, callback)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import pytest
from conftest import StepClock
from prometheus_client import CollectorRegistry

from adaptive_router import (
    AllPathsFailed,
    Learning,
    MemoryStore,
    Observability,
    Outcome,
    Path,
    Persistence,
    Router,
)
from adaptive_router.observe.alerts import Alert, Alerts, RollingWindow
from adaptive_router.outcomes import Result, Usage
from adaptive_router.resilience import CircuitBreaker

STORM = 1000


def costly_router(alerts: Alerts, cost: float, clock: StepClock) -> Router:
    return Router(
        [Path(lambda: Result("ok", Usage(10, 10, cost_usd=cost)), name="big", timeout=None)],
        bool,
        "spend",
        store="memory://",
        learning=Learning(clock=clock),
        observability=Observability(alerts=alerts),
    )


def outcome(cost: float | None, path: str = "p", task: str = "t") -> Outcome:
    return Outcome("rid", task, path, 1, True, cost_usd=cost)


def test_call_cost_storm_gives_one_alert_logged_counted_and_called_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = StepClock()
    registry = CollectorRegistry()
    seen: list[Alert] = []
    alerts = Alerts(on_alert=seen.append, clock=clock, registry=registry)
    with (
        caplog.at_level(logging.WARNING, logger="adaptive_router.observe.alerts"),
        costly_router(alerts, 0.25, clock) as r,
    ):
        for _ in range(STORM):
            r.run()
    (alert,) = seen
    assert (alert.kind, alert.task, alert.path) == ("call_cost", "spend", "big")
    assert (alert.value, alert.threshold, alert.at) == (0.25, 0.10, clock.now)
    assert "$0.2500" in alert.message
    (record,) = [r for r in caplog.records if r.name == "adaptive_router.observe.alerts"]
    assert record.levelno == logging.WARNING
    assert record.__dict__["alert"] == "call_cost"
    assert record.__dict__["path"] == "big"
    assert record.__dict__["value"] == 0.25
    assert (
        registry.get_sample_value(
            "adaptive_router_alerts_total", {"task": "spend", "kind": "call_cost"}
        )
        == 1
    )
    assert alerts.counts == {"call_cost": 1}


def test_call_cost_fires_again_after_the_cooldown_with_the_suppressed_count() -> None:
    clock = StepClock()
    seen: list[Alert] = []
    alerts = Alerts(on_alert=seen.append, clock=clock, cooldown=60, registry=CollectorRegistry())
    for _ in range(STORM):
        alerts.attempt_finished(outcome(0.5))
    clock.advance(59.9)
    alerts.attempt_finished(outcome(0.5))
    assert len(seen) == 1
    clock.advance(0.1)
    alerts.attempt_finished(outcome(0.5))
    assert len(seen) == 2
    assert seen[1].suppressed == STORM
    # Rate-limited per (kind, task, path): another path has its own alert.
    alerts.attempt_finished(outcome(0.5, path="other"))
    assert [a.path for a in seen] == ["p", "p", "other"]


def test_call_cost_does_not_fire_at_or_below_the_threshold() -> None:
    seen: list[Alert] = []
    alerts = Alerts(on_alert=seen.append, registry=CollectorRegistry())
    for cost in (0.10, 0.0999, 0.0, None):
        for _ in range(STORM):
            alerts.attempt_finished(outcome(cost))
    assert seen == []
    off = Alerts(call_cost_usd=None, on_alert=seen.append, registry=CollectorRegistry())
    off.attempt_finished(outcome(100.0))
    assert seen == []


def test_budget_over_a_rolling_window() -> None:
    clock = StepClock()
    seen: list[Alert] = []
    alerts = Alerts(
        call_cost_usd=None,
        budget_usd=1.5,
        budget_window=3600,
        cooldown=600,
        on_alert=seen.append,
        clock=clock,
        registry=CollectorRegistry(),
    )
    with costly_router(alerts, 0.01, clock) as r:
        for _ in range(100):  # $1.00 spent: under the $1.50 budget
            r.run()
        assert seen == []
        for _ in range(STORM):  # crosses $1.50 at request 151, keeps spending
            r.run()
    (alert,) = [a for a in seen if a.kind == "task_spend"]
    assert (alert.task, alert.path, alert.threshold) == ("spend", None, 1.5)
    assert 1.5 < alert.value <= 1.52
    assert len(seen) == 1


def test_budget_window_forgets_old_spend() -> None:
    clock = StepClock()
    seen: list[Alert] = []
    alerts = Alerts(
        call_cost_usd=None,
        budget_usd=1.0,
        budget_window=600,
        cooldown=0,
        on_alert=seen.append,
        clock=clock,
        registry=CollectorRegistry(),
    )
    for _ in range(9):
        alerts.attempt_finished(outcome(0.1))
    clock.advance(700)  # the $0.90 left the window
    for _ in range(9):
        alerts.attempt_finished(outcome(0.1))
    assert seen == []
    for _ in range(2):
        alerts.attempt_finished(outcome(0.1))
    assert [round(a.value, 6) for a in seen] == [1.1]


def test_success_rate_floor_storm_and_min_requests() -> None:
    clock = StepClock()
    seen: list[Alert] = []
    alerts = Alerts(
        min_success_rate=0.9,
        min_requests=20,
        success_window=300,
        on_alert=seen.append,
        clock=clock,
        registry=CollectorRegistry(),
    )
    # 19 failures: too few requests to judge.
    for _ in range(19):
        alerts.request_finished("t", "r", [], False)
    assert seen == []
    for _ in range(STORM):
        alerts.request_finished("t", "r", [], False)
    (alert,) = seen
    assert (alert.kind, alert.task, alert.value, alert.threshold) == ("success_rate", "t", 0, 0.9)


def test_success_rate_at_the_floor_does_not_fire() -> None:
    clock = StepClock(step=0.1)
    seen: list[Alert] = []
    alerts = Alerts(
        min_success_rate=0.9, min_requests=20, on_alert=seen.append, clock=clock, registry=None
    )
    for i in range(STORM):  # the 10th of every 10 fails: never under 90% once judged
        alerts.request_finished("t", "r", [], i % 10 != 9)
    assert seen == []


def test_success_rate_alert_from_a_router() -> None:
    seen: list[Alert] = []

    def flaky(i: list[int] = [0]) -> str | None:  # noqa: B006 - a counter on purpose
        i[0] += 1
        return "ok" if i[0] % 2 else None

    alerts = Alerts(min_success_rate=0.8, min_requests=10, on_alert=seen.append)
    with Router(
        [Path(flaky, name="flaky", timeout=None)],
        bool,
        "half",
        store="memory://",
        observability=Observability(alerts=alerts),
    ) as r:
        for _ in range(STORM):
            with contextlib.suppress(AllPathsFailed):
                r.run()
    assert [(a.kind, a.task) for a in seen] == [("success_rate", "half")]
    assert seen[0].value == pytest.approx(0.5)


def test_breaker_open_storm(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Alert] = []
    alerts = Alerts(on_alert=seen.append, registry=CollectorRegistry())

    def down() -> None:
        raise ConnectionError("refused")

    # Each read of the breaker's clock moves it 2 s, past the 1 s reset timeout: every
    # request probes the path, fails and re-opens the breaker.
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=1.0, clock=StepClock(step=2.0))
    with (
        Router(
            [Path(down, name="down", timeout=None, retry=None, breaker=breaker)],
            bool,
            "brk",
            store="memory://",
            fallback=Path(lambda: "ok", name="fb", timeout=None),
            observability=Observability(alerts=alerts),
        ) as r,
        caplog.at_level(logging.ERROR, logger="adaptive_router.observe.alerts"),
    ):
        for _ in range(STORM):
            r.run()
    (alert,) = seen
    assert (alert.kind, alert.task, alert.path) == ("breaker_open", "brk", "down")
    mine = [rec.levelno for rec in caplog.records if rec.name == "adaptive_router.observe.alerts"]
    assert mine == [logging.ERROR]
    # Closing or going half-open is not an alert.
    quiet = Alerts(on_alert=seen.append, registry=CollectorRegistry())
    quiet.breaker_changed("brk", "down", "open", "half_open")
    quiet.breaker_changed("brk", "down", "half_open", "closed")
    assert len(seen) == 1


def test_outcomes_dropped_storm() -> None:
    class BrokenStore(MemoryStore):
        def write(self, outcomes: Sequence[Outcome], half_life: float | None) -> int:
            raise ConnectionError("database unreachable")

    seen: list[Alert] = []
    alerts = Alerts(on_alert=seen.append, registry=CollectorRegistry())
    router = Router(
        [Path(lambda: 1, name="p", timeout=None)],
        bool,
        "lost",
        store=BrokenStore(),
        persistence=Persistence(max_buffer=1, flush_interval=1.0),
        observability=Observability(alerts=alerts),
    )
    try:
        for _ in range(STORM):
            router.run()
    finally:
        router._recorder.store = MemoryStore()  # let close() flush somewhere
        router.close()
    (alert,) = seen
    assert (alert.kind, alert.task, alert.threshold) == ("outcomes_dropped", "lost", 0.0)
    assert alert.value >= 1
    assert router.dropped_outcomes >= STORM - 2
    alerts.outcomes_dropped("lost", 0, 5)  # nothing dropped: nothing to say
    assert len(seen) == 1


def test_a_failing_callback_is_logged_once_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Alert] = []

    def broken(alert: Alert) -> None:
        raise RuntimeError("pager down")

    clock = StepClock()
    alerts = Alerts(on_alert=[broken, seen.append], cooldown=0, clock=clock, registry=None)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            alerts.attempt_finished(outcome(1.0))
    assert len(seen) == 3
    assert sum("on_alert callback failed" in r.getMessage() for r in caplog.records) == 1


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="min_success_rate"):
        Alerts(min_success_rate=1.5)
    with pytest.raises(ValueError, match="budget_usd"):
        Alerts(budget_usd=-1)
    with pytest.raises(ValueError, match="min_requests"):
        Alerts(min_requests=0)
    with pytest.raises(ValueError, match="budget_window"):
        Alerts(budget_window=0)
    with pytest.raises(ValueError, match="on_alert"):
        Alerts(on_alert=[42])  # type: ignore[list-item]


def test_rolling_window_memory_is_bounded_and_old_buckets_expire() -> None:
    w = RollingWindow(60.0, buckets=6)  # 10-second buckets
    for t in range(100_000):
        w.add(float(t), 1.0)
    assert len(w._sums) == len(w._counts) == 6
    total, count = w.totals(99_999.0)
    assert count == total == 60  # the last six full buckets
    assert w.totals(99_999.0 + 15.0) == (40.0, 40)  # two buckets left the window
    w.add(99_000.0, 5.0)  # older than the window: ignored
    assert w.totals(99_999.0 + 15.0) == (40.0, 40)
    assert w.totals(99_999.0 + 60.0) == (0.0, 0)
    w.add(200_000.0, 0.1)
    w.add(200_001.0, 0.2)
    assert w.totals(200_001.0) == (pytest.approx(0.3), 2)
    assert w.totals(200_075.0) == (0.0, 0)  # exact zero after expiry, no float residue
