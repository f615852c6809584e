"""The resilience settings as the Router applies them around each attempt."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from conftest import StepClock

from adaptive_router import AllPathsFailed, Learning, Observability, Path, Resilience, Router
from adaptive_router.outcomes import Result, Usage
from adaptive_router.resilience import CircuitBreaker, RateLimit, RetryPolicy


def no_sleep_retry(attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, budget_s=30.0, rng=1, sleep=lambda s: None)


def test_hanging_sync_path_is_cut_at_its_timeout() -> None:
    def hang() -> str:
        time.sleep(3)
        return "late"

    with Router(
        [Path(hang, name="hang", timeout=0.3, retry=None)],
        bool,
        "hang",
        store="memory://",
        fallback=Path(lambda: "fb", name="fb"),
    ) as r:
        start = time.monotonic()
        assert r.run() == "fb"
        elapsed = time.monotonic() - start
        stats = {s.path: s for s in r.stats()}
    assert elapsed < 0.3 + 0.5, elapsed
    assert stats["hang"].timeouts == 1 and stats["hang"].errors == {"timeout": 1}


def test_async_path_timeout_in_arun() -> None:
    async def slow() -> str:
        await asyncio.sleep(3)
        return "late"

    with Router(
        [Path(slow, name="slow", timeout=0.2, retry=None)], bool, "aslow", store="memory://"
    ) as r:
        start = time.monotonic()
        with pytest.raises(AllPathsFailed) as info:
            asyncio.run(r.arun())
    assert time.monotonic() - start < 0.7
    assert info.value.attempts[0].kind == "timeout"


def test_retries_are_counted_on_the_outcome() -> None:
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("reset by peer")
        return "ok"

    with Router(
        [Path(flaky, name="flaky", retry=no_sleep_retry(), timeout=None)],
        bool,
        "retry",
        store="memory://",
    ) as r:
        assert r.run() == "ok"
        (row,) = r.store.outcomes("retry")
    assert calls["n"] == 3
    assert (row.success, row.retries, row.attempt) == (True, 2, 1)


def test_non_retryable_errors_are_tried_once() -> None:
    calls = {"n": 0}

    def broken() -> str:
        calls["n"] += 1
        raise ValueError("bad input")

    with (
        Router(
            [Path(broken, name="broken", retry=no_sleep_retry(5), timeout=None)],
            bool,
            "once",
            store="memory://",
        ) as r,
        pytest.raises(AllPathsFailed) as info,
    ):
        r.run()
    assert calls["n"] == 1
    assert info.value.attempts[0].kind == "exception" and info.value.attempts[0].retries == 0


def test_open_breaker_skips_the_path_without_recording_it() -> None:
    clock = StepClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=10.0, clock=clock, name="bad")
    calls = {"bad": 0}

    def bad() -> None:
        calls["bad"] += 1
        raise ConnectionError("down")

    with Router(
        [Path(bad, name="bad", breaker=breaker, retry=None, timeout=None)],
        bool,
        "breaker",
        store="memory://",
        fallback=Path(lambda: "fb", name="fb", timeout=None),
        learning=Learning(clock=clock),
    ) as r:
        for _ in range(3):
            assert r.run() == "fb"
        assert r.health()["bad"] == "open"
        assert r.run() == "fb"
        assert calls["bad"] == 3  # skipped while open
        rows = r.store.outcomes("breaker")
        assert [o.path for o in rows].count("bad") == 3  # the skip is not an outcome
        clock.advance(11)
        assert r.run() == "fb"  # half-open probe, fails, opens again
        assert calls["bad"] == 4 and r.health()["bad"] == "open"

    with Router(
        [
            Path(
                bad,
                name="bad",
                breaker=CircuitBreaker(failure_threshold=1),
                retry=None,
                timeout=None,
            )
        ],
        bool,
        "breaker2",
        store="memory://",
    ) as r2:
        with pytest.raises(AllPathsFailed):
            r2.run()
        with pytest.raises(AllPathsFailed) as info:
            r2.run()
    (skip,) = info.value.attempts
    assert (skip.kind, skip.skipped, skip.attempt) == ("breaker_open", True, 0)


def test_when_the_fallback_fails_too_every_attempt_is_listed_skips_included() -> None:
    def down() -> None:
        raise ConnectionError("down")

    def refused() -> None:
        raise ValueError("fallback broken too")

    with Router(
        [
            Path(down, name="open", breaker=CircuitBreaker(failure_threshold=1), retry=None),
            Path(down, name="down", retry=None),
        ],
        bool,
        "all-fail",
        store="memory://",
        fallback=Path(refused, name="fb", retry=None),
        learning=Learning(seed=0),
    ) as r:
        with pytest.raises(AllPathsFailed):
            r.run()  # every path is tried and fails: "open"'s breaker opens
        assert r.health()["open"] == "open"
        with pytest.raises(AllPathsFailed) as info:
            r.run()
    got = [(a.path, a.kind, a.skipped) for a in info.value.attempts]
    assert got == [
        ("down", "connection", False),
        ("open", "breaker_open", True),
        ("fb", "exception", False),
    ]
    assert "fallback broken too" in str(info.value)


def _recovering(
    task: str, judge: Callable[[Any], Any] = bool
) -> tuple[Router, dict[str, bool], StepClock]:
    """A router whose path ``s`` fails until ``state["up"]``, behind a breaker that opens
    after two failures and half-opens 5 s later; the fallback answers "fb". Both failures
    are made: the breaker is open on return."""
    clock = StepClock()
    state = {"up": False}

    def sometimes() -> str:
        if not state["up"]:
            raise ConnectionError("down")
        return "ok"

    b = CircuitBreaker(failure_threshold=2, reset_timeout_s=5.0, clock=clock, name="s")
    router = Router(
        [Path(sometimes, name="s", breaker=b, retry=None, timeout=None)],
        judge,
        task,
        store="memory://",
        fallback=Path(lambda: "fb", name="fb", timeout=None),
        learning=Learning(clock=clock),
    )
    router.run()
    router.run()
    assert router.health()["s"] == "open"
    return router, state, clock


def test_breaker_recovers_through_half_open() -> None:
    r, state, clock = _recovering("recover")
    with r:
        state["up"] = True
        clock.advance(6)
        assert r.run() == "ok"
        assert r.health()["s"] == "closed"


def test_a_path_its_breaker_keeps_from_being_called_takes_no_rate_limit_slot() -> None:
    # The limit is shared (one key, as across processes on Redis); the breakers are not.
    clock = StepClock()
    limit = RateLimit(requests_per_minute=10, key="rl-breaker-first")
    limit.clear()
    calls = {"down": 0, "up": 0}

    def down() -> str:
        calls["down"] += 1
        raise ConnectionError("down")

    def up() -> str:
        calls["up"] += 1
        return "ok"

    def router(fn: Any, task: str) -> Router:
        breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=60.0, clock=clock, name="x")
        return Router(
            [Path(fn, name="x", rate_limit=limit, breaker=breaker, retry=None, timeout=None)],
            bool,
            task,
            store="memory://",
            fallback=Path(lambda: "fb", name="fb", timeout=None),
            learning=Learning(clock=clock),
        )

    with router(down, "a") as a, router(up, "b") as b:
        assert [a.run() for _ in range(10)] == ["fb"] * 10
        assert [b.run() for _ in range(5)] == ["ok"] * 5
    assert calls == {"down": 1, "up": 5}  # a's 9 skipped requests spent no slot


def test_a_judge_that_raises_gives_back_a_half_open_probe_slot() -> None:
    judge_ok = {"now": False}

    def judge(value: str) -> bool:
        if value == "ok" and not judge_ok["now"]:
            raise RuntimeError("judge down")  # on the path's answer only
        return bool(value)

    r, state, clock = _recovering("probe-slot", judge)
    with r:
        state["up"] = True
        clock.advance(6)
        assert r.run() == "fb"  # the probe: called, its judge raises (no verdict)
        assert r.health()["s"] == "half_open"
        judge_ok["now"] = True
        assert r.run() == "ok"  # the next request probes at once, and closes it
        assert r.health()["s"] == "closed"


def test_rejected_output_does_not_trip_the_breaker() -> None:
    b = CircuitBreaker(failure_threshold=2)
    with Router(
        [Path(lambda: "", name="empty", breaker=b, timeout=None)],
        bool,
        "rej",
        store="memory://",
        fallback=Path(lambda: "x", name="fb", timeout=None),
    ) as r:
        for _ in range(5):
            r.run()
        assert r.health()["empty"] == "closed"


def test_rate_limited_path_is_skipped() -> None:
    limit = RateLimit(requests_per_minute=2, key="rl-test-skip")
    limit.clear()
    hits = {"n": 0}

    def limited() -> str:
        hits["n"] += 1
        return "primary"

    with Router(
        [Path(limited, name="limited", rate_limit=limit, timeout=None)],
        bool,
        "rl",
        store="memory://",
        fallback=Path(lambda: "fb", name="fb", timeout=None),
    ) as r:
        results = [r.run() for _ in range(4)]
    assert results == ["primary", "primary", "fb", "fb"]
    assert hits["n"] == 2


def test_result_usage_is_recorded_and_unwrapped() -> None:
    def priced() -> Result:
        return Result({"qty": 2}, Usage(input_tokens=120, output_tokens=30, cost_usd=0.0021))

    seen: list[Any] = []

    def judge(value: Any) -> bool:
        seen.append(value)
        return True

    with Router([Path(priced, name="p", timeout=None)], judge, "usage", store="memory://") as r:
        assert r.run() == {"qty": 2}
        (row,) = r.store.outcomes("usage")
    assert seen == [{"qty": 2}]
    assert (row.input_tokens, row.output_tokens, row.cost_usd) == (120, 30, 0.0021)


def test_router_defaults_apply_and_paths_override() -> None:
    with Router(
        [Path(lambda: 1, name="a"), Path(lambda: 1, name="b", timeout=2.0, breaker=None)],
        bool,
        "defaults",
        store="memory://",
        fallback=Path(lambda: 1, name="fb"),
        resilience=Resilience(timeout=7.0),
    ) as r:
        a, b, fb = r.path_settings["a"], r.path_settings["b"], r.path_settings["fb"]
        assert (a.timeout, b.timeout, fb.timeout) == (7.0, 2.0, 7.0)
        assert a.breaker is not None and b.breaker is None and fb.breaker is None
        assert a.retry is not None and a.retry is b.retry
        assert r.health() == {"a": "closed", "b": "none", "fb": "none"}
    with pytest.raises(ValueError, match="timeout"):
        Path(lambda: 1, name="x", timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        Router([lambda: 1], bool, "t", store="memory://", resilience=Resilience(timeout=0))


def test_router_wide_breaker_is_a_template_per_path() -> None:
    template = CircuitBreaker(failure_threshold=2, reset_timeout_s=60.0)

    def down() -> None:
        raise ConnectionError("down")

    with Router(
        [
            Path(down, name="a", timeout=None, retry=None),
            Path(down, name="b", timeout=None, retry=None),
        ],
        bool,
        "tmpl",
        store="memory://",
        fallback=Path(lambda: "fb", name="fb", timeout=None),
        resilience=Resilience(breaker=template),
    ) as r:
        a, b = r.path_settings["a"].breaker, r.path_settings["b"].breaker
        assert a is not None and b is not None and a is not b and a is not template
        for _ in range(2):
            r.run()
        assert r.health() == {"a": "open", "b": "open", "fb": "none"}
        assert template.state.value == "closed"  # the template itself is never used


def test_a_breaker_shared_between_routers_lets_closed_routers_go() -> None:
    shared = CircuitBreaker(failure_threshold=1)
    refs = []
    for i in range(3):
        router = Router(
            [Path(lambda: "ok", name="a", breaker=shared, timeout=None)],
            bool,
            f"shared-{i}",
            store="memory://",
            # An observer: the router also reports breaker moves.
            observability=Observability(on_outcome=lambda o: None),
        )
        assert router.run() == "ok"
        assert len(shared._listeners) == 2  # the router's state tracking and its observers
        router.close()
        assert shared._listeners == []
        refs.append(weakref.ref(router))
        del router
    gc.collect()
    assert [r() for r in refs] == [None, None, None]
