"""Waits inside a request respect its ``request_timeout``: a rate-limit wait
(``mode="wait"``) is cut to the request's time left, and a retry whose wait would outlast
it is not announced in the log as a next attempt. Sync and async."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import pytest

from adaptive_router import AllPathsFailed, Budget, Path, Resilience, Router
from adaptive_router.resilience import RateLimit, RetryPolicy


def _exhausted_wait_limit(asked: list[float]) -> RateLimit:
    """A real per-minute limit in ``wait`` mode, used up: its next slot frees in ~60 s,
    within ``max_wait_s``. A wait is recorded, then the window is cleared (a minute is
    too long for a test) so that a router that did wait goes on to call the path."""
    limit: RateLimit

    def sleep(seconds: float) -> None:
        asked.append(seconds)
        limit.clear()

    async def asleep(seconds: float) -> None:
        asked.append(seconds)
        limit.clear()

    limit = RateLimit(
        requests_per_minute=1,
        key=f"budget-wait-{uuid.uuid4().hex}",
        mode="wait",
        max_wait_s=65.0,
        sleep=sleep,
        asleep=asleep,
    )
    assert limit.try_acquire()  # the minute's only request
    return limit


def _go(router: Router, how: str) -> Any:
    if how == "run":
        return router.run()
    return asyncio.run(router.arun())


@pytest.mark.parametrize("how", ["run", "arun"])
def test_a_rate_limit_wait_is_cut_by_the_request_timeout(how: str) -> None:
    asked: list[float] = []
    limit = _exhausted_wait_limit(asked)
    with Router(
        [Path(lambda: "a", name="a", rate_limit=limit, timeout=None)],
        success_fn=bool,
        task="budget-wait",
        store="memory://",
        budget=Budget(request_timeout=0.5),
        resilience=Resilience(retry=None),
    ) as router:
        started = time.perf_counter()
        with pytest.raises(AllPathsFailed) as err:
            _go(router, how)
        elapsed = time.perf_counter() - started
    # The slot frees in ~60 s, the request has 0.5 s: no wait at all, the path is skipped.
    assert asked == []
    assert elapsed < 0.5, elapsed
    (skipped,) = err.value.attempts
    assert skipped.skipped and skipped.kind == "rate_limited"
    assert "request_timeout" in (skipped.error or "")


@pytest.mark.parametrize("how", ["run", "arun"])
def test_a_rate_limit_wait_within_the_request_timeout_still_waits(how: str) -> None:
    asked: list[float] = []
    limit = _exhausted_wait_limit(asked)
    with Router(
        [Path(lambda: "a", name="a", rate_limit=limit, timeout=None)],
        success_fn=bool,
        task="budget-wait-ok",
        store="memory://",
        budget=Budget(request_timeout=100.0),
        resilience=Resilience(retry=None),
    ) as router:
        assert _go(router, how) == "a"
    assert len(asked) == 1 and 50.0 < asked[0] <= 60.0


def test_rate_limit_wait_deadline_takes_the_sooner_of_max_wait_and_time_left() -> None:
    now = [100.0]
    limit = RateLimit(requests_per_minute=1, mode="wait", max_wait_s=10.0, clock=lambda: now[0])
    assert limit.wait_deadline() == 110.0
    assert limit.wait_deadline(3.0) == 103.0
    assert limit.wait_deadline(30.0) == 110.0
    assert limit.wait_deadline(-1.0) == 100.0  # no time left: no wait


@pytest.mark.parametrize("how", ["run", "arun"])
def test_a_retry_stopped_by_the_request_timeout_announces_no_next_attempt(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    waits = [0.01, 2.0, 2.0, 2.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    async def asleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    policy = RetryPolicy(
        attempts=5,
        budget_s=None,
        wait=lambda rs: waits[rs.attempt_number - 1],
        sleep=sleep,
        asleep=asleep,
    )
    calls = []

    def refused() -> str:
        calls.append(1)
        raise ConnectionError("refused")

    caplog.set_level(logging.WARNING, logger="adaptive_router.resilience.retry")
    with Router(
        [Path(refused, name="a", retry=policy, timeout=None)],
        success_fn=bool,
        task="budget-retry",
        store="memory://",
        fallback=Path(lambda: "fb", name="fb", timeout=None),
        budget=Budget(request_timeout=0.5),
    ) as router:
        started = time.perf_counter()
        assert _go(router, how) == "fb"
        elapsed = time.perf_counter() - started
    assert slept == [0.01] and len(calls) == 2
    assert elapsed < 0.5, elapsed
    retry_lines = [r for r in caplog.records if r.name == "adaptive_router.resilience.retry"]
    messages = [r.getMessage() for r in retry_lines]
    # One retry was made and announced; the 2 s wait that the 0.5 s budget cannot hold
    # is reported as giving up, never as a "next attempt in 2.000 s".
    assert messages[0] == "retrying a: attempt 1 failed with connection; next attempt in 0.010 s"
    assert len(messages) == 2, messages
    assert not any("next attempt in 2.000" in m for m in messages)
    giving_up = retry_lines[1]
    assert giving_up.getMessage().startswith("giving up on a after 2 attempts: the wait would")
    assert "request_timeout" in giving_up.getMessage()
    assert giving_up.reason == "request_timeout"  # type: ignore[attr-defined]
    assert giving_up.wait_s == 2.0  # type: ignore[attr-defined]
    assert 0.0 < giving_up.time_left_s < 0.5  # type: ignore[attr-defined]
