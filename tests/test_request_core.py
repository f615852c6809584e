"""The request core: ``run``, ``arun`` and ``check`` are loops over one object that decides
without I/O, so how they wait and reach the network is theirs — ``arun`` never blocks its
event loop on a rate limit (its waits, its Redis round trips) or a backpressure flush."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import pytest
import redis
from netproxy import CuttableProxy

from adaptive_router import Observability, Path, Persistence, Resilience, Result, Router, Usage
from adaptive_router.outcomes import Outcome
from adaptive_router.resilience import CircuitBreaker, RateLimit, RetryPolicy
from adaptive_router.router.attempts import DONE, Acquire, Attempts, Call, Charge, Sleep
from adaptive_router.stores import SQLStore, Store


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


# --------------------------------------------------------------------------------------
# I/O is the loops': a Redis rate limit and a backpressure flush never block arun's loop
# --------------------------------------------------------------------------------------

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


class LoopTicks:
    """Counts the ticks of a task on an event loop (1 ms sleeps); :meth:`wait` lets
    another thread hold until the loop has ticked again, which it can only do if nothing
    blocks it. While ``active``, every held operation is counted in ``held``, and one the
    loop never let through (5 s: a blocked loop) in ``stalled``."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.n = 0
        self.active = False
        self.held = 0
        self.stalled = 0

    async def tick(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(0.001)
            with self.cond:
                self.n += 1
                self.cond.notify_all()

    def wait(self, ticks: int = 2) -> None:
        if not self.active:
            return
        with self.cond:
            target = self.n + ticks
            self.held += 1
            if not self.cond.wait_for(lambda: self.n >= target, timeout=5.0):
                self.stalled += 1


async def _while_ticking(ticks: LoopTicks, work: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``work`` with ``ticks`` counting this loop's ticks and holding operations."""
    stop = asyncio.Event()
    ticker = asyncio.create_task(ticks.tick(stop))
    ticks.active = True
    try:
        return await work()
    finally:
        ticks.active = False
        stop.set()
        await ticker


class HeldProxy(CuttableProxy):
    """A proxy in front of Redis that forwards each command only once the event loop
    under test has ticked twice since it arrived: a command sent by a blocking client on
    that loop would wait for ticks that cannot come."""

    def __init__(self, ticks: LoopTicks) -> None:
        super().__init__(REDIS_HOST, REDIS_PORT)
        self.ticks = ticks

    def before_upstream(self) -> None:
        self.ticks.wait()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the real Redis at 127.0.0.1:6379."""
    client = redis.Redis(
        host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=0.5, socket_timeout=1.0
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis is required in CI at {REDIS_HOST}:{REDIS_PORT}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}")
    prefix = f"ar-core-{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def test_arun_never_blocks_its_loop_on_a_redis_rate_limit(
    redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    ticks = LoopTicks()
    proxy = HeldProxy(ticks)
    direct = RateLimit(
        requests_per_minute=1,
        storage=f"redis://{REDIS_HOST}:{REDIS_PORT}",
        key="shared",
        storage_options={"key_prefix": redis_prefix},
    )
    assert direct.try_acquire()  # the minute's only request, taken by another client
    asked: list[float] = []

    async def asleep(seconds: float) -> None:
        asked.append(seconds)
        await asyncio.to_thread(direct.clear)  # the window is a minute: free it now

    limit = RateLimit(
        requests_per_minute=1,
        storage=f"redis://{REDIS_HOST}:{proxy.port}",  # the same Redis, through the proxy
        key="shared",
        storage_options={"key_prefix": redis_prefix},
        mode="wait",
        max_wait_s=65.0,
        asleep=asleep,
    )
    router = Router(
        [Path(lambda: "ok", name="a", rate_limit=limit)],
        success_fn=bool,
        task="core-redis",
        store="memory://",
        resilience=Resilience(retry=None),
    )
    try:
        with router, caplog.at_level(logging.WARNING, logger="adaptive_router"):
            value = asyncio.run(_while_ticking(ticks, router.arun))
    finally:
        proxy.close()
    assert value == "ok"
    # Refused, the wait estimated (~60 s, within max_wait_s) and taken after it: through
    # Redis each time (a blocking client would have failed open at once, with a warning).
    assert len(asked) == 1 and 50.0 < asked[0] <= 60.0
    assert not [r for r in caplog.records if "rate-limit storage failed" in r.getMessage()]
    # Every command waited for the loop to tick, and the loop always did.
    assert ticks.held >= 3
    assert ticks.stalled == 0


def test_run_and_arun_share_one_redis_budget(redis_prefix: str) -> None:
    """The sync storage (run) and limits' async storage (arun) hold the same keys."""
    limit = RateLimit(
        requests_per_minute=3,
        tokens_per_minute=1_000,
        storage=f"redis://{REDIS_HOST}:{REDIS_PORT}",
        key="both",
        storage_options={"key_prefix": redis_prefix},
    )
    assert limit.take() is None and limit.take() is None  # two slots, blocking

    async def from_the_loop() -> tuple[float | None, float | None]:
        first = await limit.atake()  # the third slot
        await limit.arecord_tokens(995)
        return first, await limit.atake()

    first, fourth = asyncio.run(from_the_loop())
    assert first is None and fourth == math.inf  # skip mode: no estimate, no wait
    assert not limit.available()  # seen by the blocking side too
    tokens = RateLimit(
        tokens_per_minute=1_000,
        storage=f"redis://{REDIS_HOST}:{REDIS_PORT}",
        key="both",
        storage_options={"key_prefix": redis_prefix},
    )
    assert not tokens.try_acquire(tokens=10)  # the 995 tokens charged from the loop count
    assert tokens.try_acquire(tokens=5)


def _sockets() -> int:
    """This process's open sockets (Linux: the links in /proc/self/fd)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own, closed by now
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def test_each_event_loop_gets_its_own_redis_client_closed_with_the_loop(
    redis_prefix: str,
) -> None:
    """redis-py's asyncio connections belong to their loop: a limit used from one
    ``asyncio.run`` after another takes a slot on each, and leaves no socket behind."""
    limit = RateLimit(
        requests_per_minute=20,
        storage=f"redis://{REDIS_HOST}:{REDIS_PORT}",
        key="loops",
        storage_options={"key_prefix": redis_prefix},
    )
    before = _sockets()
    taken = [asyncio.run(limit.atake()) for _ in range(20)]
    gc.collect()
    assert taken == [None] * 20
    assert _sockets() <= before  # each loop's connection closed as its loop shut down
    assert not limit.try_acquire()  # the 20 slots all came from the one budget


def test_a_redis_limit_under_asyncio_fails_open_or_closed_without_its_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "redis://:hunter2@127.0.0.1:1"  # nothing listens there

    async def both() -> tuple[float | None, float | None]:
        opened = RateLimit(requests_per_minute=1, storage=url, key=uuid.uuid4().hex)
        closed = RateLimit(
            requests_per_minute=1, storage=url, key=uuid.uuid4().hex, fail_open=False
        )
        await opened.arecord_tokens(5)  # no token budget: nothing to charge, no error
        return await opened.atake(), await closed.atake()

    with caplog.at_level(logging.WARNING, logger="adaptive_router.resilience"):
        allowed, refused = asyncio.run(both())
    assert allowed is None and refused == math.inf
    assert len(caplog.records) == 2
    for record in caplog.records:
        assert "rate-limit storage failed" in record.getMessage()
        assert "hunter2" not in repr(record.__dict__)


_IN_ARUN: contextvars.ContextVar[bool] = contextvars.ContextVar("in_arun", default=False)


class HeldSQLStore(SQLStore):
    """A real SQLite store whose writes wait for the loop under test to tick (see
    :class:`LoopTicks`) and say where they ran."""

    def __init__(self, url: str, ticks: LoopTicks) -> None:
        super().__init__(url)
        self.ticks = ticks
        self.loop_thread: int | None = None
        self.on_loop = 0  # writes made on the event loop's thread: it was blocked
        self.for_arun = 0  # writes made for an arun call (its context followed them)
        self.threads: list[int] = []

    def write(self, outcomes: Sequence[Outcome], half_life: float | None) -> int:
        self.threads.append(threading.get_ident())
        if self.ticks.active:
            if threading.get_ident() == self.loop_thread:
                self.on_loop += 1
            else:
                self.ticks.wait()
            self.for_arun += _IN_ARUN.get()
        return super().write(outcomes, half_life)


def _backpressured(store: Store, task: str) -> Router:
    """A batch router whose write buffer is behind after 5 outcomes (max_buffer=5): the
    recorder asks its caller to flush then; its writer thread waits its full second."""
    return Router(
        [Path(lambda: "ok", name="a", timeout=None)],
        success_fn=bool,
        task=task,
        store=store,
        resilience=Resilience(retry=None),
        persistence=Persistence(max_buffer=5, flush_interval=1.0, log_decisions=False),
        observability=Observability(heartbeat=None),
    )


def test_arun_makes_a_backpressure_flush_off_its_loop(sqlite_url: str) -> None:
    ticks = LoopTicks()
    store = HeldSQLStore(sqlite_url, ticks)
    router = _backpressured(store, "core-backpressure")

    async def requests() -> list[Any]:
        store.loop_thread = threading.get_ident()
        _IN_ARUN.set(True)  # this task's context: followed into arun's worker threads
        return [await router.arun() for _ in range(12)]

    with router:
        values = asyncio.run(_while_ticking(ticks, requests))
        assert router.buffered_outcomes < 5  # flushed under backpressure, not dropped
    assert values == ["ok"] * 12 and router.dropped_outcomes == 0
    assert store.for_arun >= 2  # the flushes arun made (after the 5th and the 10th)
    assert store.on_loop == 0 and ticks.stalled == 0
    assert len(store.outcomes("core-backpressure")) == 12


def test_run_makes_a_backpressure_flush_in_its_own_thread(sqlite_url: str) -> None:
    store = HeldSQLStore(sqlite_url, LoopTicks())
    with _backpressured(store, "core-backpressure-sync") as router:
        for _ in range(5):
            router.run()
        assert threading.get_ident() in store.threads  # written before run returned
        assert router.buffered_outcomes == 0


# --------------------------------------------------------------------------------------
# The core's rate-limit steps, driven by hand: no I/O of its own
# --------------------------------------------------------------------------------------


def _no_io(limit: RateLimit, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every storage operation of ``limit`` fail the test: the core must not do I/O."""

    def io(*_: Any, **__: Any) -> Any:
        raise AssertionError("the request core reached the rate-limit storage")

    for name in ("take", "atake", "try_acquire", "available", "record_tokens", "acquire"):
        monkeypatch.setattr(limit, name, io)


def test_the_core_asks_the_loop_to_acquire_wait_and_charge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit = RateLimit(
        requests_per_minute=10, tokens_per_minute=1_000, key=uuid.uuid4().hex, mode="wait"
    )
    _no_io(limit, monkeypatch)
    path = Path(lambda: "ok", name="a", rate_limit=limit, retry=None)
    with Router([path], success_fn=bool, task="core-acquire", store="memory://") as router:
        req = Attempts(router._core, "rid", "", [router.paths[0]], (), {})
        assert req.step == Acquire(limit)
        req.acquired(3.0)  # refused: room in 3 s, within max_wait_s (10 s)
        wait = req.step
        assert isinstance(wait, Sleep) and wait.seconds == 3.0 and wait.asleep == limit.asleep
        req.slept(3.0)
        assert req.step == Acquire(limit)  # take again after the wait
        req.acquired(None)  # taken
        call = req.step
        assert isinstance(call, Call) and call.path.name == "a"
        req.returned(Result("ok", Usage(input_tokens=7, output_tokens=3)), time.perf_counter())
        assert req.step == Charge(limit, 10)  # the tokens it used, charged by the loop
        req.charged()
        assert req.step is DONE
    assert req.value == "ok" and [o.success for o in req.attempts] == [True]


def test_the_core_skips_a_path_whose_limit_frees_too_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit = RateLimit(requests_per_minute=1, key=uuid.uuid4().hex, mode="wait", max_wait_s=5.0)
    _no_io(limit, monkeypatch)
    paths = [Path(lambda: "a", name="a", rate_limit=limit), Path(lambda: "b", name="b")]
    with Router(paths, success_fn=bool, task="core-late", store="memory://") as router:
        req = Attempts(router._core, "rid", "", list(router.paths), (), {})
        assert req.step == Acquire(limit)
        req.acquired(59.0)  # the minute's slot frees after max_wait_s
        call = req.step
        assert isinstance(call, Call) and call.path.name == "b"
        req.returned("b", time.perf_counter())
        assert req.step is DONE
    skipped, done = req.attempts
    assert (skipped.path, skipped.kind, skipped.skipped) == ("a", "rate_limited", True)
    assert (done.path, done.success) == ("b", True)


def test_a_rate_limit_wait_after_a_retried_path_takes_the_next_paths_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a path that retried, a wait for the next path's rate limit is that limit's:
    the next step is another Acquire, not a call that skips the limit (nor a retry)."""
    limit = RateLimit(requests_per_minute=1, key=uuid.uuid4().hex, mode="wait", max_wait_s=65)
    _no_io(limit, monkeypatch)
    policy = RetryPolicy(attempts=2, initial=0.1, rng=1, sleep=lambda _: None)
    paths = [
        Path(lambda: "a", name="a", retry=policy),
        Path(lambda: "b", name="b", rate_limit=limit, retry=None),
    ]
    with Router(paths, success_fn=bool, task="core-after-retry", store="memory://") as router:
        req = Attempts(router._core, "rid", "", list(router.paths), (), {})
        req.raised(ConnectionError("refused"), time.perf_counter())
        retry_wait = req.step
        assert isinstance(retry_wait, Sleep)
        req.slept(retry_wait.seconds)
        req.raised(ConnectionError("refused"), time.perf_counter())  # attempts spent
        assert req.step == Acquire(limit)
        req.acquired(30.0)
        limit_wait = req.step
        assert isinstance(limit_wait, Sleep) and limit_wait.seconds == 30.0
        req.slept(30.0)
        assert req.step == Acquire(limit)
        req.acquired(None)
        call = req.step
        assert isinstance(call, Call) and call.path.name == "b"
        req.returned("b", time.perf_counter())
    failed, ok = req.attempts
    assert (failed.path, failed.kind, failed.retries) == ("a", "connection", 1)
    assert (ok.path, ok.success) == ("b", True)


# --------------------------------------------------------------------------------------
# check() through the request core: one retry loop
# --------------------------------------------------------------------------------------


def test_check_walks_every_sample_through_the_request_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def second_loop(*_: Any, **__: Any) -> Any:
        raise AssertionError("check() used RetryPolicy.call")

    monkeypatch.setattr(RetryPolicy, "call", second_loop)
    waits: list[float] = []
    policy = RetryPolicy(attempts=3, initial=0.5, rng=1, sleep=waits.append)
    limit = RateLimit(requests_per_minute=1, key=uuid.uuid4().hex)
    assert limit.try_acquire()  # exhausted: run() would skip the path
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=60.0, name="a")
    breaker.trip("test")  # open: run() would skip it too
    calls: dict[str, int] = {}

    def once_refused(text: str) -> str:
        calls[text] = calls.get(text, 0) + 1
        if calls[text] == 1:
            raise ConnectionError("refused")
        return text

    path = Path(once_refused, name="a", retry=policy, breaker=breaker, rate_limit=limit)
    with Router([path], success_fn=bool, task="core-check", store="memory://") as router:
        (report,) = router.check(["x", "y"])
        assert router.store.outcomes("core-check") == []
        assert router.health() == {"a": "open"}  # the breaker heard nothing
    assert (report.runs, report.successes, report.errors) == (2, 2, {})
    assert calls == {"x": 2, "y": 2} and len(waits) == 2  # each retried once, after a wait
    assert not limit.available()  # its slot untouched: still the one taken above


def test_async_with_closes_the_router_off_its_loop(sqlite_url: str) -> None:
    # A lifespan shutdown that called close() blocked the loop for its final flush.
    ticks = LoopTicks()
    store = HeldSQLStore(sqlite_url, ticks)
    router = Router(
        [Path(lambda: "ok", name="a", timeout=None)],
        success_fn=bool,
        task="core-aclose",
        store=store,
        persistence=Persistence(flush_interval=1.0, log_decisions=False),
        observability=Observability(heartbeat=None),
    )

    async def serve() -> list[Any]:
        store.loop_thread = threading.get_ident()
        async with router as r:
            return [await r.arun() for _ in range(5)]

    values = asyncio.run(_while_ticking(ticks, serve))
    assert values == ["ok"] * 5
    assert store.on_loop == 0 and ticks.stalled == 0
    assert store.threads and store.loop_thread not in store.threads
    with pytest.raises(RuntimeError, match="closed"):
        router.run()
    assert len(store.outcomes("core-aclose")) == 5
