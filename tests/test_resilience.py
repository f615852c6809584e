"""Tests for adaptive_router.resilience: each component alone, with injected clocks and sleeps."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import multiprocessing
import operator
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
import redis
from limits.storage import RedisStorage, storage_from_string
from tenacity import stop_after_attempt, stop_after_delay, wait_fixed

from adaptive_router.errors import ConfigurationError
from adaptive_router.outcomes import ErrorKind
from adaptive_router.paths import Path
from adaptive_router.resilience import (
    RETRYABLE,
    BreakerOpenError,
    BreakerState,
    CallTimeoutError,
    CircuitBreaker,
    RateLimit,
    RateLimitExceeded,
    RetryPolicy,
    RetryState,
    abandoned_calls,
    acall_with_timeout,
    call_with_timeout,
    classify,
    redact_url,
    retry_after,
    to_daemon_thread,
)
from adaptive_router.resilience.timeouts import _DaemonThreadPool, check_timeout

REDIS_URL = "redis://127.0.0.1:6379"
URL = "https://api.example.test/v1/messages"


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


class FakeClock:
    """Monotonic seconds that only move when told to (or when the fake sleep sleeps)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def h2_response(status: int, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, headers=headers, request=httpx2.Request("POST", URL))


def h1_response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("POST", URL))


@functools.cache
def sdk_clients() -> tuple[openai.OpenAI, anthropic.Anthropic]:
    # Never used to send anything: only their error factories, i.e. what the SDKs raise.
    return openai.OpenAI(api_key="test", max_retries=0), anthropic.Anthropic(api_key="test")


def openai_error(status: int, body: object = None, **headers: str) -> openai.APIStatusError:
    response = h2_response(status, headers)
    return sdk_clients()[0]._make_status_error("x", body=body, response=response)


def anthropic_error(status: int, body: object = None, **headers: str) -> anthropic.APIStatusError:
    response = h2_response(status, headers)
    return sdk_clients()[1]._make_status_error("x", body=body, response=response)


class Flaky:
    """Raises the given exceptions in turn, then returns 'ok'; counts calls."""

    def __init__(self, *errors: BaseException, clock: FakeClock | None = None, cost: float = 0.0):
        self.errors = list(errors)
        self.calls = 0
        self.clock = clock
        self.cost = cost
        self.started: list[float] = []

    def __call__(self) -> str:
        self.calls += 1
        if self.clock is not None:
            self.started.append(self.clock.now)
            self.clock.advance(self.cost)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def server_error() -> openai.InternalServerError:
    err = openai_error(503)
    assert isinstance(err, openai.InternalServerError)
    return err


# --------------------------------------------------------------------------------------
# classify
# --------------------------------------------------------------------------------------

OPENAI_STATUS_CLASSES = [
    (openai.BadRequestError, 400, ErrorKind.CLIENT_ERROR),
    (openai.AuthenticationError, 401, ErrorKind.AUTH_ERROR),
    (openai.PermissionDeniedError, 403, ErrorKind.AUTH_ERROR),
    (openai.NotFoundError, 404, ErrorKind.CLIENT_ERROR),
    (openai.ConflictError, 409, ErrorKind.CLIENT_ERROR),
    (openai.UnprocessableEntityError, 422, ErrorKind.CLIENT_ERROR),
    (openai.RateLimitError, 429, ErrorKind.RATE_LIMITED),
    (openai.InternalServerError, 500, ErrorKind.SERVER_ERROR),
    (openai.InternalServerError, 503, ErrorKind.SERVER_ERROR),
    (openai.APIStatusError, 418, ErrorKind.CLIENT_ERROR),
]

ANTHROPIC_STATUS_CLASSES = [
    (anthropic.BadRequestError, 400, ErrorKind.CLIENT_ERROR),
    (anthropic.AuthenticationError, 401, ErrorKind.AUTH_ERROR),
    (anthropic.PaymentRequiredError, 402, ErrorKind.CLIENT_ERROR),
    (anthropic.PermissionDeniedError, 403, ErrorKind.AUTH_ERROR),
    (anthropic.NotFoundError, 404, ErrorKind.CLIENT_ERROR),
    (anthropic.RequestTimeoutError, 408, ErrorKind.TIMEOUT),
    (anthropic.ConflictError, 409, ErrorKind.CLIENT_ERROR),
    (anthropic.PreconditionFailedError, 412, ErrorKind.CLIENT_ERROR),
    (anthropic.ContentTooLargeError, 413, ErrorKind.CLIENT_ERROR),
    (anthropic.UnprocessableEntityError, 422, ErrorKind.CLIENT_ERROR),
    (anthropic.RateLimitError, 429, ErrorKind.RATE_LIMITED),
    (anthropic.RequestHeaderFieldsTooLargeError, 431, ErrorKind.CLIENT_ERROR),
    (anthropic.ClientClosedRequestError, 499, ErrorKind.CLIENT_ERROR),
    (anthropic.InternalServerError, 500, ErrorKind.SERVER_ERROR),
    (anthropic.HTTPNotImplementedError, 501, ErrorKind.SERVER_ERROR),
    (anthropic.ServiceUnavailableError, 503, ErrorKind.SERVER_ERROR),
    (anthropic.GatewayTimeoutError, 504, ErrorKind.SERVER_ERROR),
    (anthropic.OverloadedError, 529, ErrorKind.SERVER_ERROR),
]


@pytest.mark.parametrize(("cls", "status", "kind"), OPENAI_STATUS_CLASSES)
def test_classify_openai_status_errors(cls: type[Exception], status: int, kind: ErrorKind) -> None:
    direct = cls("boom", response=h2_response(status), body=None)  # type: ignore[call-arg]
    assert classify(direct) is kind
    made = openai_error(status)  # what the SDK itself raises for that status
    assert type(made) is cls
    assert classify(made) is kind


@pytest.mark.parametrize(("cls", "status", "kind"), ANTHROPIC_STATUS_CLASSES)
def test_classify_anthropic_status_errors(
    cls: type[Exception], status: int, kind: ErrorKind
) -> None:
    direct = cls("boom", response=h2_response(status), body=None)  # type: ignore[call-arg]
    assert classify(direct) is kind
    made = anthropic_error(status)
    assert type(made) is cls
    assert classify(made) is kind


def test_anthropic_529_is_overloaded_error_and_server_error() -> None:
    err = anthropic_error(
        529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    assert isinstance(err, anthropic.OverloadedError)
    assert isinstance(err, anthropic.InternalServerError)
    assert classify(err) is ErrorKind.SERVER_ERROR
    # The openai SDK has no 529 class: anything >= 500 is its InternalServerError.
    assert type(openai_error(529)) is openai.InternalServerError
    assert classify(openai_error(529)) is ErrorKind.SERVER_ERROR


def test_classify_midstream_errors_by_body_type() -> None:
    # Anthropic reports an overload during streaming as an SSE error event on a 200 response.
    overloaded = anthropic.APIStatusError(
        "overloaded",
        response=h2_response(200),
        body={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    assert classify(overloaded) is ErrorKind.SERVER_ERROR
    limited = anthropic.APIStatusError(
        "rl",
        response=h2_response(200),
        body={"type": "error", "error": {"type": "rate_limit_error"}},
    )
    assert classify(limited) is ErrorKind.RATE_LIMITED
    # openai raises a bare APIError (no status) for a streamed error event.
    streamed = openai.APIError(
        "An error occurred during streaming",
        httpx2.Request("POST", URL),
        body={"type": "server_error", "message": "boom"},
    )
    assert classify(streamed) is ErrorKind.SERVER_ERROR


def test_quota_429s_are_client_errors_not_rate_limits() -> None:
    quota = openai_error(
        429, {"error": {"type": "insufficient_quota", "code": "insufficient_quota", "message": "m"}}
    )
    assert isinstance(quota, openai.RateLimitError)
    assert classify(quota) is ErrorKind.CLIENT_ERROR
    spend = anthropic_error(
        429,
        {
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "m",
                "details": {"error_code": "enforced_spend_limit_reached"},
            },
        },
    )
    assert isinstance(spend, anthropic.RateLimitError)
    assert classify(spend) is ErrorKind.CLIENT_ERROR
    assert classify(openai_error(429, {"error": {"type": "requests"}})) is ErrorKind.RATE_LIMITED


def test_classify_connection_and_timeout_errors() -> None:
    h2req = httpx2.Request("POST", URL)
    h1req = httpx.Request("POST", URL)
    assert classify(openai.APITimeoutError(request=h2req)) is ErrorKind.TIMEOUT
    assert classify(anthropic.APITimeoutError(request=h2req)) is ErrorKind.TIMEOUT
    assert classify(openai.APIConnectionError(request=h2req)) is ErrorKind.CONNECTION
    assert classify(anthropic.APIConnectionError(request=h2req)) is ErrorKind.CONNECTION
    for mod, req in ((httpx, h1req), (httpx2, h2req)):
        assert classify(mod.ReadTimeout("slow", request=req)) is ErrorKind.TIMEOUT
        assert classify(mod.ConnectTimeout("slow", request=req)) is ErrorKind.TIMEOUT
        assert classify(mod.ConnectError("refused", request=req)) is ErrorKind.CONNECTION
        assert classify(mod.ReadError("reset", request=req)) is ErrorKind.CONNECTION
        assert classify(mod.RemoteProtocolError("gone", request=req)) is ErrorKind.CONNECTION
    assert classify(TimeoutError()) is ErrorKind.TIMEOUT
    assert classify(TimeoutError()) is ErrorKind.TIMEOUT
    assert classify(CallTimeoutError(1.0)) is ErrorKind.TIMEOUT
    assert classify(ConnectionResetError()) is ErrorKind.CONNECTION
    assert classify(ConnectionRefusedError()) is ErrorKind.CONNECTION
    assert classify(BrokenPipeError()) is ErrorKind.CONNECTION


def test_classify_plain_http_status_errors() -> None:
    def status_error(mod: Any, response: Any) -> Exception:
        return mod.HTTPStatusError("bad", request=response.request, response=response)  # type: ignore[no-any-return]

    for mod, make in ((httpx, h1_response), (httpx2, h2_response)):
        assert classify(status_error(mod, make(429))) is ErrorKind.RATE_LIMITED
        assert classify(status_error(mod, make(502))) is ErrorKind.SERVER_ERROR
        assert classify(status_error(mod, make(529))) is ErrorKind.SERVER_ERROR
        assert classify(status_error(mod, make(404))) is ErrorKind.CLIENT_ERROR
        assert classify(status_error(mod, make(408))) is ErrorKind.TIMEOUT


def test_classify_declared_kind_causes_and_fallback() -> None:
    class InvalidOutput(ValueError):
        kind = "invalid_output"

    class Empty(Exception):
        kind = ErrorKind.EMPTY

    class Odd(Exception):
        kind = "not-a-kind"

    assert classify(InvalidOutput()) is ErrorKind.INVALID_OUTPUT
    assert classify(Empty()) is ErrorKind.EMPTY
    assert classify(Odd()) is ErrorKind.EXCEPTION
    assert classify(ValueError("x")) is ErrorKind.EXCEPTION
    assert classify(KeyboardInterrupt()) is ErrorKind.EXCEPTION
    assert classify(BreakerOpenError("p")) is ErrorKind.BREAKER_OPEN
    assert classify(RateLimitExceeded("k")) is ErrorKind.RATE_LIMITED
    # A wrapper keeps the kind of what it wraps (explicit `raise ... from`).
    try:
        try:
            raise openai_error(429)
        except openai.RateLimitError as inner:
            raise RuntimeError("extraction failed") from inner
    except RuntimeError as outer:
        assert classify(outer) is ErrorKind.RATE_LIMITED
    retryable = {ErrorKind.RATE_LIMITED, ErrorKind.TIMEOUT, ErrorKind.SERVER_ERROR}
    assert retryable | {ErrorKind.CONNECTION} == RETRYABLE


# --------------------------------------------------------------------------------------
# retry_after
# --------------------------------------------------------------------------------------


def test_retry_after_seconds_ms_and_dates() -> None:
    assert retry_after(openai_error(429, **{"retry-after": "3"})) == 3.0
    assert retry_after(openai_error(429, **{"retry-after": "1.5"})) == 1.5
    assert retry_after(openai_error(429, **{"retry-after": "-4"})) == 0.0
    # retry-after-ms is more precise and wins.
    both = openai_error(429, **{"retry-after-ms": "250", "retry-after": "1"})
    assert retry_after(both) == 0.25
    now = 1_700_000_000.0
    date = format_datetime(datetime.fromtimestamp(now + 30, tz=UTC), usegmt=True)
    assert retry_after(anthropic_error(529, **{"retry-after": date}), now=now) == 30.0
    past = format_datetime(datetime.fromtimestamp(now - 30, tz=UTC), usegmt=True)
    assert retry_after(anthropic_error(529, **{"retry-after": past}), now=now) == 0.0
    assert retry_after(openai_error(429, **{"retry-after": "soon"})) is None
    assert retry_after(openai_error(429)) is None
    assert retry_after(ValueError()) is None
    http_error = httpx.HTTPStatusError(
        "x", request=httpx.Request("GET", URL), response=h1_response(503, {"Retry-After": "7"})
    )
    assert retry_after(http_error) == 7.0

    class WithHeaders(Exception):
        def __init__(self) -> None:
            self.headers = {"Retry-After": "2"}  # a plain, case-sensitive dict

    assert retry_after(WithHeaders()) == 2.0


# --------------------------------------------------------------------------------------
# RetryPolicy
# --------------------------------------------------------------------------------------


def expected_jitter(seed: int, initial: float, max_wait: float, n: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0, min(max_wait, initial * 2**i)) for i in range(n)]


def test_retry_succeeds_after_retryable_failures_with_seeded_jitter() -> None:
    clock = FakeClock()
    policy = RetryPolicy(
        attempts=4, initial=0.5, max_wait=8.0, rng=7, clock=clock, sleep=clock.sleep
    )
    fn = Flaky(server_error(), openai.APITimeoutError(request=httpx2.Request("GET", URL)))
    state = RetryState(path="gpt")
    assert policy.call(fn, retry_state=state) == "ok"
    expected = expected_jitter(7, 0.5, 8.0, 2)
    assert fn.calls == 3
    assert state.attempts == 3
    assert state.retries == 2
    assert state.kinds == [ErrorKind.SERVER_ERROR, ErrorKind.TIMEOUT]
    assert state.waits == expected
    assert clock.sleeps == expected
    assert state.waited_s == pytest.approx(sum(expected))
    assert state.stop_reason is None


def test_client_and_auth_errors_are_never_retried() -> None:
    clock = FakeClock()
    policy = RetryPolicy(attempts=5, clock=clock, sleep=clock.sleep)
    for err in (
        openai_error(400),
        anthropic_error(401),
        openai_error(403),
        openai_error(404),
        anthropic_error(422),
    ):
        fn = Flaky(err)
        state = RetryState()
        with pytest.raises(type(err)) as info:
            policy.call(fn, retry_state=state)
        assert info.value is err
        assert fn.calls == 1
        assert state.retries == 0
        assert state.stop_reason == "not_retryable"
    assert clock.sleeps == []
    with pytest.raises(ValueError, match="client_error"):
        RetryPolicy(retry_on={ErrorKind.CLIENT_ERROR, ErrorKind.TIMEOUT})
    with pytest.raises(ValueError, match="auth_error"):
        RetryPolicy(retry_on={ErrorKind.AUTH_ERROR, ErrorKind.TIMEOUT})


def test_non_retryable_kinds_and_base_exceptions_pass_through() -> None:
    clock = FakeClock()
    policy = RetryPolicy(attempts=5, clock=clock, sleep=clock.sleep)
    fn = Flaky(ValueError("bug"))
    with pytest.raises(ValueError):
        policy.call(fn)
    assert fn.calls == 1
    for exc in (KeyboardInterrupt(), SystemExit(2)):
        fn = Flaky(exc)
        with pytest.raises(type(exc)):
            policy.call(fn)
        assert fn.calls == 1
    assert clock.sleeps == []


def test_attempts_exhausted_logs_each_retry(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    policy = RetryPolicy(attempts=3, rng=1, clock=clock, sleep=clock.sleep)
    fn = Flaky(*(server_error() for _ in range(5)))
    state = RetryState(path="claude")
    with (
        caplog.at_level(logging.WARNING, logger="adaptive_router.resilience"),
        pytest.raises(openai.InternalServerError),
    ):
        policy.call(fn, retry_state=state)
    assert fn.calls == 3
    assert state.retries == 2
    assert state.stop_reason == "attempts"
    retries = [r for r in caplog.records if r.getMessage().startswith("retrying")]
    assert [r.attempt for r in retries] == [1, 2]  # type: ignore[attr-defined]
    assert {r.kind for r in retries} == {"server_error"}  # type: ignore[attr-defined]
    assert {r.path for r in retries} == {"claude"}  # type: ignore[attr-defined]
    assert [r.wait_s for r in retries] == expected_jitter(1, 0.5, 8.0, 2)  # type: ignore[attr-defined]
    assert all(r.levelno == logging.WARNING for r in retries)
    gave_up = [r for r in caplog.records if r.getMessage().startswith("giving up")]
    assert len(gave_up) == 1
    assert gave_up[0].reason == "attempts"  # type: ignore[attr-defined]
    # The message reads as a sentence, not "after 3 attempts (attempts)".
    assert gave_up[0].getMessage() == (
        "giving up on claude after 3 attempts: no attempts left; last failure server_error"
    )


def test_retry_after_is_honoured_over_jitter() -> None:
    clock = FakeClock()
    policy = RetryPolicy(attempts=3, initial=0.5, rng=3, clock=clock, sleep=clock.sleep)
    fn = Flaky(
        openai_error(429, **{"retry-after": "2"}), anthropic_error(529, **{"retry-after-ms": "10"})
    )
    state = RetryState()
    assert policy.call(fn, retry_state=state) == "ok"
    jitter = expected_jitter(3, 0.5, 8.0, 2)
    assert state.waits == [2.0, max(jitter[1], 0.01)]
    assert state.kinds == [ErrorKind.RATE_LIMITED, ErrorKind.SERVER_ERROR]


def test_retry_after_beyond_the_budget_stops_at_once() -> None:
    clock = FakeClock()
    policy = RetryPolicy(attempts=5, budget_s=5.0, clock=clock, sleep=clock.sleep)
    fn = Flaky(openai_error(429, **{"retry-after": "10"}))
    state = RetryState()
    with pytest.raises(openai.RateLimitError):
        policy.call(fn, retry_state=state)
    assert fn.calls == 1
    assert clock.sleeps == []
    assert state.stop_reason == "retry_after_exceeds_budget"


def test_budget_caps_total_time() -> None:
    clock = FakeClock()
    # Each attempt takes 1 s and waits are a fixed 5 s: only the budget can cut them.
    policy = RetryPolicy(
        attempts=10, budget_s=4.0, wait=wait_fixed(5), clock=clock, sleep=clock.sleep
    )
    fn = Flaky(*(server_error() for _ in range(10)), clock=clock, cost=1.0)
    state = RetryState()
    with pytest.raises(openai.InternalServerError):
        policy.call(fn, retry_state=state)
    start = 1000.0
    assert fn.started == [start, start + 4.0]  # the only wait was cut from 5 s to 3 s
    assert state.waits == [3.0]
    assert state.stop_reason == "budget"
    assert max(t - start for t in fn.started) <= 4.0

    # Retry-After within the budget is honoured, but the wait still ends by the budget.
    clock = FakeClock()
    policy = RetryPolicy(attempts=10, budget_s=10.0, rng=0, clock=clock, sleep=clock.sleep)
    fn = Flaky(
        *(openai_error(429, **{"retry-after": "4"}) for _ in range(10)), clock=clock, cost=1.0
    )
    state = RetryState()
    with pytest.raises(openai.RateLimitError):
        policy.call(fn, retry_state=state)
    assert state.waits == [4.0, 4.0]  # attempts at 0, 5, 10; after 10 s nothing is left
    assert fn.started == [1000.0, 1005.0, 1010.0]
    assert state.stop_reason == "budget"


def test_tenacity_strategies_compose_and_follow_the_injected_clock() -> None:
    clock = FakeClock()
    policy = RetryPolicy(
        budget_s=None,
        stop=stop_after_attempt(10) | stop_after_delay(2.5),
        wait=wait_fixed(1),
        clock=clock,
        sleep=clock.sleep,
    )
    fn = Flaky(*(server_error() for _ in range(10)))
    state = RetryState()
    with pytest.raises(openai.InternalServerError):
        policy.call(fn, retry_state=state)
    # Failures at t = 0, 1, 2, 3; at 3 s, 3 >= 2.5 stops it.
    assert fn.calls == 4
    assert state.waits == [1.0, 1.0, 1.0]
    assert state.stop_reason == "stop"


def test_retry_none_and_validation() -> None:
    clock = FakeClock()
    policy = RetryPolicy.none()
    fn = Flaky(server_error())
    state = RetryState()
    with pytest.raises(openai.InternalServerError):
        policy.call(fn, retry_state=state)
    assert (fn.calls, state.retries, state.stop_reason) == (1, 0, "attempts")
    for kwargs in ({"attempts": 0}, {"budget_s": -1.0}, {"initial": 0.0}, {"max_wait": math.nan}):
        with pytest.raises(ValueError):
            RetryPolicy(**kwargs, clock=clock)
    # Accepted once, they raised out of run() at the first retryable failure.
    for name, bad in (("stop", 5), ("wait", 5), ("honor_retry_after", "no"), ("sleep", 1)):
        with pytest.raises(ConfigurationError, match=f"^{name} must be"):
            RetryPolicy(**{name: bad})


def test_retry_passes_arguments_and_state_is_reset() -> None:
    clock = FakeClock()
    policy = RetryPolicy(attempts=3, rng=0, clock=clock, sleep=clock.sleep)
    calls: list[tuple[Any, ...]] = []

    def fn(a: int, b: int = 0, *, retry: bool = False) -> int:
        calls.append((a, b, retry))
        if len(calls) == 1:
            raise server_error()
        return a + b

    state = RetryState(retries=99)
    assert policy.call(fn, 1, b=2, retry=True, retry_state=state) == 3
    assert calls == [(1, 2, True), (1, 2, True)]
    assert state.retries == 1


def test_retry_policy_is_safe_to_share_between_threads() -> None:
    policy = RetryPolicy(attempts=3, initial=0.001, max_wait=0.002, rng=5)
    results: dict[int, RetryState] = {}

    def worker(i: int) -> None:
        fn = Flaky(*(server_error() for _ in range(i % 3)))
        state = RetryState()
        assert policy.call(fn, retry_state=state) == "ok"
        results[i] = state

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: s.retries for i, s in results.items()} == {i: i % 3 for i in range(8)}


def test_acall_retries_with_async_sleep_and_never_swallows_cancellation() -> None:
    clock = FakeClock()
    policy = RetryPolicy(attempts=3, rng=9, clock=clock, asleep=clock.asleep)

    async def main() -> None:
        errors = [server_error(), ConnectionResetError()]
        calls = 0

        async def fn(x: int) -> int:
            nonlocal calls
            calls += 1
            if errors:
                raise errors.pop(0)
            return x * 2

        state = RetryState()
        assert await policy.acall(fn, 21, retry_state=state) == 42
        assert calls == 3
        assert state.waits == expected_jitter(9, 0.5, 8.0, 2)
        assert state.kinds == [ErrorKind.SERVER_ERROR, ErrorKind.CONNECTION]

        cancelled = 0

        async def cancelled_fn() -> None:
            nonlocal cancelled
            cancelled += 1
            raise asyncio.CancelledError

        with pytest.raises(asyncio.CancelledError):
            await policy.acall(cancelled_fn)
        assert cancelled == 1

        with pytest.raises(anthropic.BadRequestError):
            await policy.acall(_raise_async, anthropic_error(400))

    asyncio.run(main())
    assert clock.sleeps == expected_jitter(9, 0.5, 8.0, 2)


async def _raise_async(exc: BaseException) -> None:
    raise exc


# --------------------------------------------------------------------------------------
# Timeouts
# --------------------------------------------------------------------------------------


def test_sync_timeout_returns_control_quickly() -> None:
    baseline = abandoned_calls()
    finished = threading.Event()

    def slow() -> str:
        time.sleep(1.0)
        finished.set()
        return "late"

    start = time.monotonic()
    with pytest.raises(CallTimeoutError) as info:
        call_with_timeout(slow, 0.1)
    elapsed = time.monotonic() - start
    assert elapsed < 0.5
    assert info.value.timeout_s == 0.1
    assert isinstance(info.value, TimeoutError)
    assert classify(info.value) is ErrorKind.TIMEOUT
    assert abandoned_calls() == baseline + 1  # the worker goes on by itself...
    assert finished.wait(2.0)
    deadline = time.monotonic() + 2.0
    while abandoned_calls() != baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    assert abandoned_calls() == baseline  # ...and is no longer counted once it ends


def test_sync_timeout_passes_results_errors_and_context_through() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("request-1")
    assert call_with_timeout(lambda a, b=0: a + b, 1.0, 2, b=3) == 5
    assert call_with_timeout(var.get, 1.0) == "request-1"
    with pytest.raises(KeyError):
        call_with_timeout({}.__getitem__, 1.0, "missing")
    own = TimeoutError("the callee's own timeout")

    def raises_timeout() -> None:
        raise own

    with pytest.raises(TimeoutError) as info:
        call_with_timeout(raises_timeout, 1.0)
    assert info.value is own  # not mistaken for ours


def test_hung_calls_do_not_starve_later_calls() -> None:
    release = threading.Event()
    try:
        for _ in range(12):
            with pytest.raises(CallTimeoutError):
                call_with_timeout(release.wait, 0.02, 5.0)
        start = time.monotonic()
        assert call_with_timeout(lambda: "fast", 0.5) == "fast"
        assert time.monotonic() - start < 0.3
    finally:
        release.set()


def test_daemon_pool_loses_no_work_while_workers_retire() -> None:
    # Workers retire after 1 ms idle, so submissions race with retirements all the time.
    pool = _DaemonThreadPool(max_idle=2, idle_timeout_s=0.001)
    failures: list[str] = []

    def submitter(i: int) -> None:
        rng = random.Random(i)
        for j in range(200):
            if rng.random() < 0.05:
                time.sleep(0.002)
            try:
                assert pool.submit(operator.mul, i, j).result(timeout=5) == i * j
            except Exception as exc:  # collected: an assert in a thread would be lost
                failures.append(repr(exc))

    threads = [threading.Thread(target=submitter, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("adaptive-router"))


@pytest.mark.parametrize("bad", [0, -1, 0.0, math.nan, math.inf, "1", True, None])
def test_timeout_must_be_positive(bad: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        call_with_timeout(lambda: None, bad)
    with pytest.raises(ValueError, match="timeout"):
        asyncio.run(acall_with_timeout(asyncio.sleep, bad, 0))


def test_one_timeout_check_names_the_setting_everywhere() -> None:
    # paths, the router, the providers and call_with_timeout share one check
    # (resilience.timeouts): the same ConfigurationError, naming what was wrong.
    with pytest.raises(ConfigurationError, match=r"^timeout must be a finite number"):
        call_with_timeout(lambda: None, -1)
    with pytest.raises(ConfigurationError, match=r"^timeout must be a number of seconds"):
        asyncio.run(acall_with_timeout(asyncio.sleep, "1", 0))
    with pytest.raises(
        ConfigurationError,
        match=r"^path 'x' timeout must be a finite number of seconds > 0 \(or None",
    ):
        Path(lambda: 1, name="x", timeout=math.inf)
    with pytest.raises(ConfigurationError, match=r"^max_wait_s must be a finite number"):
        RateLimit(requests_per_minute=1, max_wait_s=0)
    assert check_timeout("t", None) is None and check_timeout("t", 2) == 2.0


def test_async_timeout_cancels_the_coroutine() -> None:
    cancelled = False

    async def slow() -> str:
        nonlocal cancelled
        try:
            await asyncio.sleep(1.0)
        except asyncio.CancelledError:
            cancelled = True
            raise
        return "late"

    async def main() -> None:
        start = time.monotonic()
        with pytest.raises(CallTimeoutError) as info:
            await acall_with_timeout(slow, 0.1)
        assert time.monotonic() - start < 0.5
        assert classify(info.value) is ErrorKind.TIMEOUT
        assert cancelled
        assert await acall_with_timeout(_double, 1.0, 4) == 8
        own = TimeoutError("own")
        with pytest.raises(TimeoutError) as own_info:
            await acall_with_timeout(_raise_async, 1.0, own)
        assert own_info.value is own
        # A sync function gets an async timeout through the daemon pool.
        start = time.monotonic()
        with pytest.raises(CallTimeoutError):
            await acall_with_timeout(to_daemon_thread, 0.1, time.sleep, 0.6)
        assert time.monotonic() - start < 0.5
        assert await acall_with_timeout(to_daemon_thread, 1.0, sum, [1, 2]) == 3

    asyncio.run(main())


async def _double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


# --------------------------------------------------------------------------------------
# CircuitBreaker
# --------------------------------------------------------------------------------------


def test_breaker_opens_on_consecutive_failures_and_recovers_through_a_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=30.0, clock=clock, name="gpt")
    seen: list[tuple[str, BreakerState, BreakerState]] = []
    breaker.on_change(lambda name, old, new: seen.append((name, old, new)))
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    breaker.record_success()  # breaks the run
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure(ErrorKind.TIMEOUT)
    assert breaker.state is BreakerState.OPEN
    assert breaker.state == "open"
    assert not breaker.allow()
    assert not breaker.available
    clock.advance(29.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.available
    assert breaker.state is BreakerState.OPEN  # only allow() moves it on
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    assert not breaker.available
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    closed, open_, half = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
    assert seen == [("gpt", closed, open_), ("gpt", open_, half), ("gpt", half, closed)]


def test_failed_probe_reopens_and_restarts_the_timer() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=10.0, clock=clock)
    breaker.record_failure()
    clock.advance(10.0)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.advance(9.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN


def test_breaker_opens_on_failure_rate_with_min_calls() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=None, failure_rate=0.5, window=6, min_calls=4, clock=clock
    )
    for _ in range(3):
        breaker.record_failure()  # 100% failing, but only 3 calls: not enough evidence
    assert breaker.state is BreakerState.CLOSED
    breaker.record_success()  # 3 of 4 failed, but only a failure can trip it
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()  # 4 of 5
    assert breaker.state is BreakerState.OPEN

    breaker = CircuitBreaker(
        failure_threshold=None, failure_rate=0.5, window=4, min_calls=4, clock=clock
    )
    for ok in (False, True, True, True, True, False, True):  # the window slides
        if ok:
            breaker.record_success()
        else:
            breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED  # last 4: S S F S, 1 failure in 4
    breaker.record_failure()  # last 4: S F S F, 2 failures in 4
    assert breaker.state is BreakerState.OPEN


def test_half_open_admits_at_most_max_probes_under_threads() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=1, reset_timeout_s=5.0, half_open_max_calls=3, clock=clock
    )
    breaker.record_failure()
    for _ in range(20):
        assert breaker.state is BreakerState.OPEN
        clock.advance(5.0)
        barrier = threading.Barrier(8)
        allowed: list[bool] = []
        lock = threading.Lock()

        def probe(barrier: threading.Barrier, allowed: list[bool], lock: threading.Lock) -> None:
            barrier.wait()
            ok = breaker.allow()
            with lock:
                allowed.append(ok)

        threads = [threading.Thread(target=probe, args=(barrier, allowed, lock)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(allowed) == [False] * 5 + [True] * 3
        assert breaker.state is BreakerState.HALF_OPEN
        breaker.record_failure()  # a probe failed: open again for the next round


def test_probe_slots_are_released_and_reclaimed() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=5.0, clock=clock)
    breaker.record_failure()
    clock.advance(5.0)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release()  # the caller decided not to call after all
    assert breaker.allow()
    clock.advance(4.9)
    assert not breaker.allow()
    clock.advance(0.1)  # the reserved probe never reported: its slot is reclaimed
    assert breaker.allow()


def test_late_results_do_not_move_an_open_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=5.0, clock=clock)
    breaker.record_failure()
    breaker.record_success()  # a call that started before it opened
    assert breaker.state is BreakerState.OPEN
    clock.advance(5.0)
    assert breaker.allow()
    breaker.record_success()
    breaker.record_success()  # a second, stale result changes nothing
    assert breaker.state is BreakerState.CLOSED


def test_a_breaker_copy_has_the_settings_and_clock_and_a_state_of_its_own() -> None:
    clock = FakeClock()
    template = CircuitBreaker(
        failure_threshold=2,
        failure_rate=0.5,
        window=8,
        min_calls=4,
        reset_timeout_s=5.0,
        half_open_max_calls=2,
        clock=clock,
        name="template",
    )
    seen: list[str] = []
    template.on_change(lambda name, old, new: seen.append(name))
    template.record_failure()
    copy = template.copy(name="a")
    assert (
        copy.name,
        copy.failure_threshold,
        copy.failure_rate,
        copy.window,
        copy.min_calls,
        copy.reset_timeout_s,
        copy.half_open_max_calls,
    ) == ("a", 2, 0.5, 8, 4, 5.0, 2)
    assert template.copy().name == "template"
    copy.record_failure()  # the template's failure is not counted here: one so far
    assert copy.state is BreakerState.CLOSED
    copy.record_failure()
    assert copy.state is BreakerState.OPEN and template.state is BreakerState.CLOSED
    assert seen == []  # listeners stay with the template
    clock.advance(4.9)
    assert not copy.allow()
    clock.advance(0.1)  # the copy reads the template's clock
    assert copy.allow() and copy.state is BreakerState.HALF_OPEN


def test_breaker_logs_transitions_and_survives_bad_listeners(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=1.0, clock=clock, name="claude")

    def broken(name: str, old: BreakerState, new: BreakerState) -> None:
        raise RuntimeError("metrics down")

    calls: list[BreakerState] = []
    breaker.on_change(broken)
    unsubscribe = breaker.on_change(lambda n, o, new: calls.append(new))
    with caplog.at_level(logging.INFO, logger="adaptive_router.resilience"):
        breaker.record_failure()
        breaker.record_failure(ErrorKind.SERVER_ERROR)
        clock.advance(1.0)
        assert breaker.allow()
        breaker.record_success()
    records = [r for r in caplog.records if hasattr(r, "to_state")]
    assert [(r.levelno, r.from_state, r.to_state) for r in records] == [  # type: ignore[attr-defined]
        (logging.ERROR, "closed", "open"),
        (logging.WARNING, "open", "half_open"),
        (logging.INFO, "half_open", "closed"),
    ]
    assert {r.breaker for r in records} == {"claude"}  # type: ignore[attr-defined]
    assert records[0].reason == "2 consecutive failures (server_error)"  # type: ignore[attr-defined]
    assert calls == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
    assert any(r.getMessage() == "circuit breaker listener raised" for r in caplog.records)
    unsubscribe()
    breaker.record_failure()
    breaker.record_failure()
    assert len(calls) == 3


def test_breaker_validation() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="never open"):
        CircuitBreaker(failure_threshold=None)
    with pytest.raises(ValueError, match="failure_rate"):
        CircuitBreaker(failure_rate=1.5)
    with pytest.raises(ValueError, match="min_calls"):
        CircuitBreaker(failure_rate=0.5, window=5, min_calls=6)
    with pytest.raises(ValueError, match="reset_timeout_s"):
        CircuitBreaker(reset_timeout_s=0)
    with pytest.raises(ValueError, match="half_open_max_calls"):
        CircuitBreaker(half_open_max_calls=0)
    with pytest.raises(ValueError, match="clock must be a callable"):
        CircuitBreaker(clock=5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# RateLimit (memory)
# --------------------------------------------------------------------------------------


def unique_key() -> str:
    return f"test-{uuid.uuid4().hex}"


def test_request_budget_is_exhausted_and_keys_are_separate() -> None:
    key = unique_key()
    limit = RateLimit(requests_per_minute=3, key=key)
    assert limit.available()
    assert [limit.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert not limit.available()
    assert not limit.acquire()  # skip mode: no waiting
    # Same storage URL and key in one process: one budget.
    assert not RateLimit(requests_per_minute=3, key=key).try_acquire()
    assert RateLimit(requests_per_minute=3, key=unique_key()).try_acquire()
    assert 55.0 < limit.retry_in() <= 60.0
    limit.clear()
    assert limit.try_acquire()


def test_token_budget_checks_estimates_and_charges_actuals() -> None:
    limit = RateLimit(tokens_per_minute=1000, key=unique_key())
    assert limit.try_acquire(tokens=1000)
    limit.record_tokens(900)
    assert not limit.try_acquire(tokens=200)
    assert limit.try_acquire(tokens=100)  # an estimate is checked, not charged
    assert limit.try_acquire(tokens=100)
    limit.record_tokens(500)  # beyond the budget: still charged, they were spent
    assert not limit.try_acquire()
    assert not limit.try_acquire(tokens=1)
    assert limit.retry_in(tokens=1) > 0


def test_tokens_and_requests_together() -> None:
    limit = RateLimit(requests_per_minute=2, tokens_per_minute=100, key=unique_key())
    assert not limit.try_acquire(tokens=101)  # can never fit: refused, no slot taken
    assert limit.try_acquire(tokens=60)
    limit.record_tokens(60)
    assert not limit.try_acquire(tokens=60)  # tokens refuse it, and no request slot is used
    assert limit.try_acquire(tokens=40)
    assert not limit.try_acquire(tokens=0)  # now the request budget is spent
    with pytest.raises(ValueError, match="tokens"):
        limit.try_acquire(tokens=-1)


def test_wait_mode_sleeps_until_the_window_frees() -> None:
    clock = FakeClock()
    key = unique_key()
    limit = RateLimit(requests_per_minute=1, key=key, mode="wait", max_wait_s=90.0, clock=clock)
    assert limit.acquire()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # time passes: here, the window empties
        sleeps.append(seconds)
        clock.advance(seconds)
        limit.clear()

    waiting = RateLimit(
        requests_per_minute=1, key=key, mode="wait", max_wait_s=90.0, clock=clock, sleep=sleep
    )
    assert waiting.acquire()
    assert len(sleeps) == 1
    assert 58.0 < sleeps[0] <= 60.0

    # Still exhausted after every wait: gives up once max_wait_s is spent.
    stuck = RateLimit(
        requests_per_minute=1,
        key=key,
        mode="wait",
        max_wait_s=130.0,
        clock=clock,
        sleep=clock.sleep,
    )
    clock.sleeps.clear()
    assert not stuck.acquire()
    assert len(clock.sleeps) == 2
    assert all(58.0 < s <= 60.0 for s in clock.sleeps)

    # A wait that cannot succeed within max_wait_s is not even started.
    clock.sleeps.clear()
    short = RateLimit(
        requests_per_minute=1, key=key, mode="wait", max_wait_s=5.0, clock=clock, sleep=clock.sleep
    )
    assert not short.acquire()
    assert clock.sleeps == []


def test_async_acquire_waits_without_blocking() -> None:
    clock = FakeClock()
    key = unique_key()
    sleeps: list[float] = []

    async def asleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)
        limit.clear()
        await asyncio.sleep(0)

    limit = RateLimit(
        requests_per_minute=1, key=key, mode="wait", max_wait_s=90.0, clock=clock, asleep=asleep
    )

    async def main() -> None:
        assert await limit.aacquire()
        assert await limit.aacquire()

    asyncio.run(main())
    assert len(sleeps) == 1
    assert 58.0 < sleeps[0] <= 60.0


def test_rate_limit_validation_and_password_redaction(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="requests_per_minute, tokens_per_minute"):
        RateLimit()
    with pytest.raises(ValueError, match="requests_per_minute"):
        RateLimit(requests_per_minute=0)
    with pytest.raises(ValueError, match="mode"):
        RateLimit(requests_per_minute=1, mode="block")
    with pytest.raises(ValueError, match="max_wait_s"):
        RateLimit(requests_per_minute=1, max_wait_s=0)
    with pytest.raises(ValueError) as info:
        RateLimit(requests_per_minute=1, storage="bogus://user:hunter2@host:1")
    assert "hunter2" not in str(info.value)
    assert "user:***@host" in str(info.value)
    with pytest.raises(ValueError, match="sync scheme"):
        RateLimit(requests_per_minute=1, storage="async+memory://")
    # "no" was taken as true: with Redis down, the opposite of what was asked.
    with pytest.raises(ValueError, match="fail_open must be True or False"):
        RateLimit(requests_per_minute=1, fail_open="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="storage_options must be a mapping"):
        RateLimit(requests_per_minute=1, storage_options=5)  # type: ignore[arg-type]

    assert redact_url("redis://:s3cret@localhost:6379/0") == "redis://:***@localhost:6379/0"
    assert (
        redact_url("redis://u:p@h:1/0?password=x&db=1") == "redis://u:***@h:1/0?password=***&db=1"
    )
    assert redact_url("redis://localhost:6379") == "redis://localhost:6379"

    # Redis on a closed port: fails open (or closed), and the password is never shown.
    url = "redis://:hunter2@127.0.0.1:1"
    with caplog.at_level(logging.WARNING, logger="adaptive_router.resilience"):
        open_limit = RateLimit(requests_per_minute=1, storage=url, key=unique_key())
        assert open_limit.try_acquire()
        closed_limit = RateLimit(
            requests_per_minute=1, storage=url, key=unique_key(), fail_open=False
        )
        assert not closed_limit.try_acquire()
    assert "hunter2" not in repr(open_limit)
    assert caplog.records
    for record in caplog.records:
        assert "hunter2" not in record.getMessage()
        assert "hunter2" not in repr(record.__dict__)


# --------------------------------------------------------------------------------------
# RateLimit (Redis, shared between storages and processes)
# --------------------------------------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5, socket_timeout=1.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis is required in CI at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    prefix = f"adaptive-router-test-{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.mark.parametrize(
    "options", [{"bogus_option": 1}, {"socket_timeout": -1.0}], ids=["unknown", "refused"]
)
def test_redis_options_redis_py_refuses_fail_open_with_the_warning_naming_them(
    redis_prefix: str, options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # redis-py makes its connection at first use, so such options raised TypeError or
    # ValueError out of every run() (no fallback, nothing recorded).
    key = f"{redis_prefix}:opts"
    with caplog.at_level(logging.WARNING, logger="adaptive_router.resilience"):
        open_limit = RateLimit(
            requests_per_minute=1, storage=REDIS_URL, key=key, storage_options=options
        )
        assert [open_limit.try_acquire() for _ in range(3)] == [True] * 3
        shut = RateLimit(
            requests_per_minute=1,
            storage=REDIS_URL,
            key=key,
            storage_options=options,
            fail_open=False,
        )
        assert not shut.try_acquire()
    said = [r.getMessage() for r in caplog.records]
    assert said and all("rate-limit storage failed" in m for m in said)
    assert any(
        "TypeError" in repr(r.__dict__) or "ValueError" in repr(r.__dict__) for r in caplog.records
    )


def test_redis_budget_is_shared_between_storage_instances(redis_prefix: str) -> None:
    first = storage_from_string(REDIS_URL, key_prefix=redis_prefix)
    second = storage_from_string(REDIS_URL, key_prefix=redis_prefix)
    assert isinstance(first, RedisStorage)
    assert isinstance(second, RedisStorage)
    assert first is not second
    a = RateLimit(requests_per_minute=5, tokens_per_minute=1000, storage=first, key="gpt")
    b = RateLimit(requests_per_minute=5, tokens_per_minute=1000, storage=second, key="gpt")
    results = [a.try_acquire(), b.try_acquire(), a.try_acquire(), b.try_acquire()]
    results += [a.try_acquire(), b.try_acquire()]
    assert results == [True] * 5 + [False]
    assert 55.0 < b.retry_in() <= 60.0

    a2 = RateLimit(tokens_per_minute=1000, storage=first, key="claude")
    b2 = RateLimit(tokens_per_minute=1000, storage=second, key="claude")
    a2.record_tokens(900)
    assert not b2.try_acquire(tokens=200)
    assert b2.try_acquire(tokens=100)
    b2.record_tokens(150)
    assert not a2.try_acquire()


# Each child runs this source rather than a function of this module: unpickling a function
# would make every child import this test module, and with it openai and anthropic, which
# takes seconds; the children need nothing but adaptive_router.resilience.
_CHILD_SOURCE = """
from adaptive_router.resilience import RateLimit

limit = RateLimit(
    requests_per_minute=20,
    storage=url,
    key=key,
    storage_options={"key_prefix": prefix},
    fail_open=False,
)
limit.available()  # connect before the race starts
start.wait(60)
out.put(sum(limit.try_acquire() for _ in range(tries)))
"""


def test_redis_budget_is_shared_between_processes(redis_prefix: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start = ctx.Barrier(3)  # both children and this process: they race from the same moment
    env = {"url": REDIS_URL, "key": "shared", "prefix": redis_prefix, "tries": 15}
    procs = [
        ctx.Process(target=exec, args=(_CHILD_SOURCE, {**env, "start": start, "out": out}))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    try:
        start.wait(60)
        counts = [out.get(timeout=30) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    # Alone, each would get 15; together they share the one budget of 20.
    assert sum(counts) == 20
    assert all(5 <= c <= 15 for c in counts)
