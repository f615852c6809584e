"""The request core: ``run`` and ``arun`` are loops over one object that decides without
I/O, so how they wait is theirs — ``arun`` never blocks its event loop on a rate limit."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from adaptive_router import Path, Resilience, Router
from adaptive_router.resilience import RateLimit, RetryPolicy
from adaptive_router.router.attempts import DONE, Attempts, Call, Sleep


def _exhausted_wait_limit() -> tuple[RateLimit, list[float]]:
    """A real per-minute limit in ``wait`` mode, used up, whose waits are 0.3 s of real
    waiting (blocking for ``sleep``, asyncio for ``asleep``) after which the window is
    cleared: the limits library's windows are a minute long, too long for a test."""
    asked: list[float] = []
    limit: RateLimit

    def sleep(seconds: float) -> None:
        asked.append(seconds)
        time.sleep(0.3)
        limit.clear()

    async def asleep(seconds: float) -> None:
        asked.append(seconds)
        await asyncio.sleep(0.3)
        limit.clear()

    limit = RateLimit(
        requests_per_minute=1,
        key=f"core-{uuid.uuid4().hex}",
        mode="wait",
        max_wait_s=65.0,
        sleep=sleep,
        asleep=asleep,
    )
    assert limit.try_acquire()  # the minute's only request
    return limit, asked


def test_arun_waits_for_a_rate_limit_without_blocking_the_event_loop() -> None:
    limit, asked = _exhausted_wait_limit()
    router = Router(
        [Path(lambda: "ok", name="a", rate_limit=limit)],
        success_fn=bool,
        task="core-wait",
        store="memory://",
        resilience=Resilience(retry=None),
    )

    async def main() -> tuple[str, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.02)
        before = ticks
        value = await router.arun()
        during = ticks - before
        stop.set()
        await task
        return value, during

    with router:
        value, during = asyncio.run(main())
    assert value == "ok"
    # It waited for the window (~60 s estimated, within max_wait_s) exactly once...
    assert len(asked) == 1 and 50.0 < asked[0] <= 60.0
    # ...and the other task kept ticking through the 0.3 s of waiting (a blocking sleep
    # on the loop would leave it at 0 or 1).
    assert during >= 10


def test_run_waits_for_a_rate_limit_with_the_limits_blocking_sleep() -> None:
    limit, asked = _exhausted_wait_limit()
    with Router(
        [Path(lambda: "ok", name="a", rate_limit=limit)],
        success_fn=bool,
        task="core-wait-sync",
        store="memory://",
        resilience=Resilience(retry=None),
    ) as router:
        assert router.run() == "ok"
    assert len(asked) == 1 and 50.0 < asked[0] <= 60.0


def test_the_core_says_call_sleep_and_done_and_records_the_retry() -> None:
    """Driven by hand, without I/O: a failure becomes a Sleep of the retry's delay, then
    the same path is called again; its success ends the request with one outcome."""
    waits: list[float] = []
    policy = RetryPolicy(attempts=3, initial=0.5, rng=1, sleep=waits.append)
    router = Router(
        [Path(lambda: "ok", name="a", retry=policy)],
        success_fn=bool,
        task="core-steps",
        store="memory://",
    )
    with router:
        req = Attempts(router._core, "rid", "", [router.paths[0]], (), {})
        step = req.step
        assert isinstance(step, Call) and step.path.name == "a" and step.timeout_s == 30.0
        req.raised(ConnectionError("refused"), time.perf_counter())
        sleep = req.step
        assert isinstance(sleep, Sleep) and 0.0 <= sleep.seconds <= 0.5
        assert sleep.sleep is policy.sleep
        req.slept(sleep.seconds)
        again = req.step
        assert isinstance(again, Call) and again.path.name == "a"
        req.returned("fine", time.perf_counter())
        assert req.step is DONE
    assert req.value == "fine"
    assert [(o.path, o.attempt, o.success, o.retries) for o in req.attempts] == [("a", 1, True, 1)]


@pytest.mark.parametrize("mode", ["skip", "wait"])
def test_a_limit_that_cannot_free_in_time_skips_the_path(mode: str) -> None:
    asked: list[float] = []
    limit = RateLimit(
        requests_per_minute=1,
        key=f"core-{uuid.uuid4().hex}",
        mode=mode,
        max_wait_s=5.0,  # the minute's slot frees in ~60 s: not worth waiting for
        sleep=asked.append,
    )
    assert limit.try_acquire()
    with Router(
        [Path(lambda: "a", name="a", rate_limit=limit)],
        success_fn=bool,
        task="core-skip",
        store="memory://",
        fallback=Path(lambda: "fb", name="fb"),
    ) as router:
        assert router.run() == "fb"
    assert asked == []
