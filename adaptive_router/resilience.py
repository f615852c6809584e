"""Resilience components: error classification, retries, timeouts, breakers and rate limits.

Each piece is a small object that works on its own (and is tested alone); the
router composes them per path as rate limit -> breaker -> timeout -> retry -> call.
All of them are thread-safe, none blocks an event loop for longer than a storage
round trip, and each takes an injectable ``clock`` (monotonic seconds) and, where
it draws random numbers, a seedable :class:`random.Random`, so tests are exact.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import email.utils
import functools
import itertools
import logging
import math
import queue
import random
import socket
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from enum import Enum
from typing import Any, TypeVar

import tenacity
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.errors import StorageError
from limits.storage import SlidingWindowCounterSupport, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from tenacity.stop import stop_after_attempt, stop_after_delay, stop_base
from tenacity.wait import wait_base, wait_exponential, wait_random_exponential

from adaptive_router._checks import redact, redact_url
from adaptive_router.outcomes import ErrorKind

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = [
    "RETRYABLE",
    "BreakerOpenError",
    "BreakerState",
    "CallTimeoutError",
    "CircuitBreaker",
    "FullJitter",
    "RateLimit",
    "RateLimitExceeded",
    "RetryPolicy",
    "RetryState",
    "abandoned_calls",
    "acall_with_timeout",
    "call_with_timeout",
    "classify",
    "redact_url",
    "retry_after",
    "to_daemon_thread",
]

#: Kinds worth trying again: the same request may well succeed a moment later.
RETRYABLE: frozenset[ErrorKind] = frozenset(
    {ErrorKind.RATE_LIMITED, ErrorKind.TIMEOUT, ErrorKind.SERVER_ERROR, ErrorKind.CONNECTION}
)


# --------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------

# Exception classes are looked up in sys.modules instead of imported: an exception from a
# library that was never imported cannot exist, and importing openai/anthropic here would
# add seconds to every `import adaptive_router`, even for users of neither.
_TIMEOUT_NAMES: tuple[tuple[str, str], ...] = (
    ("httpx", "TimeoutException"),
    ("httpx2", "TimeoutException"),  # what openai>=3 and anthropic>=2 are built on
    ("openai", "APITimeoutError"),
    ("anthropic", "APITimeoutError"),
    ("requests", "Timeout"),
)
_CONNECTION_NAMES: tuple[tuple[str, str], ...] = (
    ("httpx", "NetworkError"),
    ("httpx", "RemoteProtocolError"),  # "server disconnected without sending a response"
    ("httpx", "ProxyError"),
    ("httpx2", "NetworkError"),
    ("httpx2", "RemoteProtocolError"),
    ("httpx2", "ProxyError"),
    ("openai", "APIConnectionError"),
    ("anthropic", "APIConnectionError"),
    ("requests", "ConnectionError"),
)
_BUILTIN_TIMEOUTS: tuple[type[BaseException], ...] = (
    TimeoutError,
    asyncio.TimeoutError,  # a distinct class before Python 3.11
    concurrent.futures.TimeoutError,  # likewise
)
_BUILTIN_CONNECTION: tuple[type[BaseException], ...] = (ConnectionError, socket.gaierror)

# The error "type" in an SDK error body. It matters when the HTTP status does not: Anthropic
# reports an overload that happens mid-stream as an SSE error event on a 200 response, so
# the SDK raises APIStatusError with status_code 200 and type "overloaded_error".
_ERROR_TYPE_KINDS: dict[str, ErrorKind] = {
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
    "overloaded_error": ErrorKind.SERVER_ERROR,
    "api_error": ErrorKind.SERVER_ERROR,
    "server_error": ErrorKind.SERVER_ERROR,
    "service_unavailable": ErrorKind.SERVER_ERROR,
    "timeout_error": ErrorKind.TIMEOUT,
    "invalid_request_error": ErrorKind.CLIENT_ERROR,
    "authentication_error": ErrorKind.CLIENT_ERROR,
    "permission_error": ErrorKind.CLIENT_ERROR,
    "not_found_error": ErrorKind.CLIENT_ERROR,
    "billing_error": ErrorKind.CLIENT_ERROR,
    "insufficient_quota": ErrorKind.CLIENT_ERROR,
}

# A 429 that means "out of money", not "slow down": waiting does not help, so it must not
# burn the retry budget (OpenAI sends 429 insufficient_quota; Anthropic 429 with these
# error codes when a spend limit is reached).
_QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "billing_hard_limit_reached",
        "enforced_spend_limit_reached",
        "contract_spend_limit_reached",
    }
)

_MAX_CAUSE_DEPTH = 5


def classify(exc: BaseException) -> ErrorKind:
    """Map an exception to the :class:`ErrorKind` the router records and retries on.

    In order: an exception with a ``kind`` attribute holding an ErrorKind (or its value)
    is that kind; timeouts (builtin, asyncio, httpx/httpx2, SDK ``APITimeoutError``) are
    ``timeout``; an HTTP status (``status_code`` on the exception or its ``response``)
    decides next: 429 ``rate_limited`` (but a quota/spend-limit 429 is ``client_error``),
    408 ``timeout``, 5xx including Anthropic's 529 ``server_error``, other 4xx
    ``client_error``; then the SDK error body's type (mid-stream errors arrive with a
    200 status); then connection failures are ``connection``. Anything else is
    ``exception``. When an exception is unrecognised, its explicit cause
    (``raise ... from err``) is classified instead, so wrapping an SDK error keeps its kind.
    """
    current: BaseException | None = exc
    for _ in range(_MAX_CAUSE_DEPTH):
        if current is None:
            break
        kind = _classify_one(current)
        if kind is not ErrorKind.EXCEPTION:
            return kind
        current = current.__cause__
    return ErrorKind.EXCEPTION


def _classify_one(exc: BaseException) -> ErrorKind:
    declared = _declared_kind(exc)
    if declared is not None:
        return declared
    if isinstance(exc, _BUILTIN_TIMEOUTS + _loaded_classes(_TIMEOUT_NAMES)):
        return ErrorKind.TIMEOUT
    status = _status_code(exc)
    if status is not None:
        by_status = _kind_for_status(status, exc)
        if by_status is not None:
            return by_status
    by_type = _kind_from_error_body(exc)
    if by_type is not None:
        return by_type
    if isinstance(exc, _BUILTIN_CONNECTION + _loaded_classes(_CONNECTION_NAMES)):
        return ErrorKind.CONNECTION
    return ErrorKind.EXCEPTION


def _loaded_classes(names: Iterable[tuple[str, str]]) -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    for module_name, attr in names:
        module = sys.modules.get(module_name)
        cls = getattr(module, attr, None) if module is not None else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def _safe_attr(obj: object, name: str) -> Any:
    # Some exception properties raise when unset (httpx's RequestError.request does).
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _declared_kind(exc: BaseException) -> ErrorKind | None:
    kind = _safe_attr(exc, "kind")
    if isinstance(kind, ErrorKind):
        return kind
    if isinstance(kind, str):
        try:
            return ErrorKind(kind)
        except ValueError:
            return None
    return None


def _as_status(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


def _status_code(exc: BaseException) -> int | None:
    for value in (
        _safe_attr(exc, "status_code"),  # openai/anthropic APIStatusError
        _safe_attr(_safe_attr(exc, "response"), "status_code"),  # httpx/requests HTTPError
        _safe_attr(exc, "status"),  # aiohttp ClientResponseError
    ):
        status = _as_status(value)
        if status is not None:
            return status
    return None


def _error_codes(exc: BaseException) -> set[str]:
    codes = {_safe_attr(exc, "code"), _safe_attr(exc, "error_code")}
    return {c for c in codes if isinstance(c, str)}


def _kind_for_status(status: int, exc: BaseException) -> ErrorKind | None:
    if status == 429:
        if _error_codes(exc) & _QUOTA_CODES:
            return ErrorKind.CLIENT_ERROR
        return ErrorKind.RATE_LIMITED
    if status == 408:
        return ErrorKind.TIMEOUT
    if 500 <= status <= 599:
        return ErrorKind.SERVER_ERROR
    if 400 <= status <= 499:
        return ErrorKind.CLIENT_ERROR
    return None


def _kind_from_error_body(exc: BaseException) -> ErrorKind | None:
    # Only SDK API errors carry a `body`; an arbitrary `.type` attribute means nothing.
    if not hasattr(exc, "body"):
        return None
    body = _safe_attr(exc, "body")
    candidates: list[object] = [_safe_attr(exc, "type"), *_error_codes(exc)]
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping):
            candidates.append(inner.get("type"))
        candidates.append(body.get("type"))
    for candidate in candidates:
        if isinstance(candidate, str) and candidate in _ERROR_TYPE_KINDS:
            return _ERROR_TYPE_KINDS[candidate]
    return None


def retry_after(exc: BaseException, *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from the exception's response headers.

    Reads ``retry-after-ms`` (OpenAI, milliseconds) first, then ``Retry-After`` as
    seconds or an HTTP date (relative to ``now``, epoch seconds, default ``time.time()``).
    Returns ``None`` when there is no usable header; never a negative number.
    """
    headers = _safe_attr(_safe_attr(exc, "response"), "headers")
    if headers is None:
        headers = _safe_attr(exc, "headers")
    if headers is None:
        return None
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        seconds = _parse_seconds(millis)
        if seconds is not None:
            return seconds / 1000.0
    value = _header(headers, "retry-after")
    if value is None:
        return None
    seconds = _parse_seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # HTTP dates are always GMT
    reference = time.time() if now is None else now
    return max(0.0, when.timestamp() - reference)


def _header(headers: Any, name: str) -> str | None:
    try:
        value = headers.get(name)
        if value is None:
            # A plain dict is case-sensitive; HTTP header names are not.
            value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    except Exception:
        return None
    return value.strip() if isinstance(value, str) else None


def _parse_seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


# --------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------


class FullJitter(wait_random_exponential):
    """tenacity's full-jitter wait, drawing from a given :class:`random.Random`.

    ``wait_random_exponential`` uses the global ``random`` module, so a seeded test could
    not predict its waits. The wait before retry *n* is uniform in
    ``[0, min(max, multiplier * 2**(n-1))]``.
    """

    def __init__(
        self,
        multiplier: float = 1.0,
        max: float = 60.0,  # tenacity's own name for it
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(multiplier=multiplier, max=max)
        self.rng = rng if rng is not None else random.Random()

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        high = wait_exponential.__call__(self, retry_state)
        return self.rng.uniform(self.min, high)


@dataclass
class RetryState:
    """What one :meth:`RetryPolicy.call` did; pass one in and read it afterwards.

    It is filled in whether the call returns or raises, so the router can record
    the number of retries of a failed attempt too. ``path`` labels the log lines.
    ``stop_reason`` says why retrying stopped after a failure: ``"not_retryable"``,
    ``"attempts"`` (the attempt limit), ``"stop"`` (a custom tenacity stop),
    ``"budget"`` or ``"retry_after_exceeds_budget"``; it is ``None`` after a success.
    """

    path: str | None = None
    attempts: int = 0
    retries: int = 0
    waited_s: float = 0.0
    waits: list[float] = field(default_factory=list)
    kinds: list[ErrorKind] = field(default_factory=list)
    stop_reason: str | None = None

    def _reset(self) -> None:
        self.attempts = 0
        self.retries = 0
        self.waited_s = 0.0
        self.waits = []
        self.kinds = []
        self.stop_reason = None


async def _asyncio_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class RetryPolicy:
    """Retries with full jitter, a bounded number of attempts and a bounded total time.

    Only exceptions whose :func:`classify` kind is in ``retry_on`` are retried, never
    ``client_error``; anything not an ``Exception`` (KeyboardInterrupt, SystemExit,
    asyncio.CancelledError) passes straight through. A ``Retry-After`` from the server
    is honoured: the wait is ``max(jitter, retry_after)``. ``budget_s`` bounds the time
    from the first attempt to the start of the last: a wait is cut so that it ends by
    the budget, and when the server asks for longer than what is left, retrying stops.

    The stop and wait strategies are tenacity objects and compose as usual: by default
    ``stop_after_attempt(attempts) | stop_after_delay(budget_s)`` and
    ``FullJitter(initial, max_wait, rng)``; pass ``stop=``/``wait=`` to replace them
    (``budget_s`` still applies). The loop itself is ours rather than tenacity's
    ``Retrying``: tenacity stamps attempts with ``time.monotonic`` directly and keeps
    per-thread state on the controller, whereas here the injected ``clock`` drives
    every strategy (so ``stop_after_delay`` works with a fake clock) and each call has
    its own state (so one policy serves many threads and tasks at once).
    """

    def __init__(
        self,
        attempts: int = 3,
        budget_s: float | None = 30.0,
        initial: float = 0.5,
        max_wait: float = 8.0,
        retry_on: Iterable[ErrorKind | str] = RETRYABLE,
        rng: random.Random | int | None = None,
        *,
        stop: stop_base | Callable[[tenacity.RetryCallState], bool] | None = None,
        wait: wait_base | Callable[[tenacity.RetryCallState], float] | None = None,
        honor_retry_after: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = _asyncio_sleep,
        name: str | None = None,
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"attempts must be an int >= 1 (1 = no retries), got {attempts!r}")
        if budget_s is not None:
            _check_positive("budget_s", budget_s)
        _check_positive("initial", initial)
        _check_positive("max_wait", max_wait)
        kinds = frozenset(ErrorKind(k) for k in retry_on)
        if ErrorKind.CLIENT_ERROR in kinds:
            raise ValueError(
                "retry_on must not contain client_error: a 4xx fails the same way every time"
            )
        if isinstance(rng, bool):
            raise ValueError(f"rng must be a random.Random, an int seed or None, got {rng!r}")
        if rng is None or isinstance(rng, int):
            rng = random.Random(rng)
        elif not isinstance(rng, random.Random):
            raise ValueError(f"rng must be a random.Random, an int seed or None, got {rng!r}")
        self.attempts = attempts
        self.budget_s = budget_s
        self.retry_on = kinds
        self.honor_retry_after = honor_retry_after
        self.name = name
        self._custom_stop = stop is not None
        if stop is None:
            stop = stop_after_attempt(attempts)
            if budget_s is not None:
                stop = stop | stop_after_delay(budget_s)
        self.stop = stop
        self.wait = wait if wait is not None else FullJitter(initial, max_wait, rng)
        self._clock = clock
        self._sleep = sleep
        self._asleep = asleep
        # The object tenacity's RetryCallState points back to; only strategies read it.
        self._retrying = tenacity.Retrying(stop=self.stop, wait=self.wait, reraise=True)

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that makes exactly one attempt."""
        return cls(attempts=1, budget_s=None)

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(attempts={self.attempts}, budget_s={self.budget_s}, "
            f"retry_on={sorted(k.value for k in self.retry_on)})"
        )

    def call(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        retry_state: RetryState | None = None,
        **kwargs: Any,
    ) -> T:
        """Call ``fn(*args, **kwargs)``, retrying retryable failures; return its result.

        On final failure the last exception is re-raised unchanged. ``retry_state`` (reset
        at the start) receives the attempts, retries, waits and stop reason either way.
        """
        start = self._clock()
        try:
            value = fn(*args, **kwargs)
        except Exception as first:
            failure: Exception = first
        else:
            # The common case costs no bookkeeping beyond the state's counters.
            _first_try_succeeded(retry_state)
            return value
        run = _RetryRun(self, fn, args, kwargs, retry_state, start)
        while True:
            delay = run.failed(failure)
            if delay is None:
                raise failure
            self._sleep(delay)
            run.slept(delay)
            try:
                value = fn(*args, **kwargs)
            except Exception as exc:
                failure = exc
            else:
                run.succeeded()
                return value

    async def acall(
        self,
        fn: Callable[..., Awaitable[T]],
        /,
        *args: Any,
        retry_state: RetryState | None = None,
        **kwargs: Any,
    ) -> T:
        """The asyncio twin of :meth:`call`: awaits ``fn(*args, **kwargs)`` and sleeps with
        the async sleep, so the event loop keeps running between attempts."""
        start = self._clock()
        try:
            value = await fn(*args, **kwargs)
        except Exception as first:
            failure: Exception = first
        else:
            _first_try_succeeded(retry_state)
            return value
        run = _RetryRun(self, fn, args, kwargs, retry_state, start)
        while True:
            delay = run.failed(failure)
            if delay is None:
                raise failure
            await self._asleep(delay)
            run.slept(delay)
            try:
                value = await fn(*args, **kwargs)
            except Exception as exc:
                failure = exc
            else:
                run.succeeded()
                return value


def _first_try_succeeded(state: RetryState | None) -> None:
    if state is not None:
        if state.attempts != 0 or state.kinds:  # a reused state object
            state._reset()
        state.attempts = 1


class _RetryRun:
    """The decisions of one retried call, shared by the sync and async loops."""

    def __init__(
        self,
        policy: RetryPolicy,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        state: RetryState | None,
        start: float,
    ) -> None:
        self.policy = policy
        self.state = state if state is not None else RetryState(path=policy.name)
        self.state._reset()
        self.label = self.state.path or policy.name or getattr(fn, "__qualname__", repr(fn))
        self.tstate = tenacity.RetryCallState(policy._retrying, fn=fn, args=args, kwargs=kwargs)
        self.start = start
        self.tstate.start_time = self.start
        self.state.attempts = 1

    def succeeded(self) -> None:
        self.state.stop_reason = None

    def failed(self, exc: Exception) -> float | None:
        """The delay before the next attempt, or None to stop (and re-raise ``exc``)."""
        policy, state, ts = self.policy, self.state, self.tstate
        kind = classify(exc)
        state.kinds.append(kind)
        now = policy._clock()
        ts.outcome = tenacity.Future.construct(ts.attempt_number, exc, True)
        ts.outcome_timestamp = now
        if kind not in policy.retry_on:
            return self._stop("not_retryable", kind, exc)
        elapsed = now - self.start
        remaining = math.inf if policy.budget_s is None else policy.budget_s - elapsed
        if remaining <= 0:
            return self._stop("budget", kind, exc)
        jitter = float(policy.wait(ts))
        server = retry_after(exc) if policy.honor_retry_after else None
        if server is not None and server > remaining:
            return self._stop("retry_after_exceeds_budget", kind, exc, retry_after_s=server)
        delay = min(max(jitter, server or 0.0), remaining)
        ts.upcoming_sleep = delay
        if policy.stop(ts):
            if policy._custom_stop:
                reason = "stop"
            elif ts.attempt_number >= policy.attempts:
                reason = "attempts"
            else:
                reason = "budget"
            return self._stop(reason, kind, exc)
        logger.warning(
            "retrying %s: attempt %d failed with %s; next attempt in %.3f s",
            self.label,
            ts.attempt_number,
            kind.value,
            delay,
            extra={
                "path": self.label,
                "attempt": ts.attempt_number,
                "kind": kind.value,
                "wait_s": delay,
                "retry_after_s": server,
                "elapsed_s": elapsed,
            },
        )
        return delay

    def slept(self, delay: float) -> None:
        state, ts = self.state, self.tstate
        ts.idle_for += delay
        ts.prepare_for_next_attempt()
        state.retries += 1
        state.attempts += 1
        state.waits.append(delay)
        state.waited_s += delay

    def _stop(
        self,
        reason: str,
        kind: ErrorKind,
        exc: Exception,
        *,
        retry_after_s: float | None = None,
    ) -> float | None:
        """Record why retrying stops; returns None, the "don't retry" delay."""
        self.state.stop_reason = reason
        # A lone failure is the caller's to log; only say something when retrying was tried.
        if reason != "not_retryable" and (self.state.retries or retry_after_s is not None):
            logger.warning(
                "giving up on %s after %d attempts: %s; last failure %s",
                self.label,
                self.state.attempts,
                _STOP_REASONS.get(reason, reason),
                kind.value,
                extra={
                    "path": self.label,
                    "attempts": self.state.attempts,
                    "kind": kind.value,
                    "reason": reason,
                    "retry_after_s": retry_after_s,
                    "waited_s": self.state.waited_s,
                    "error": f"{type(exc).__name__}: {exc}"[:500],
                },
            )
        return None


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------
# Timeouts
# --------------------------------------------------------------------------------------


class CallTimeoutError(TimeoutError):
    """A call did not finish within its timeout. Classified as ``timeout``."""

    kind = ErrorKind.TIMEOUT

    def __init__(self, timeout_s: float, what: str = "call") -> None:
        super().__init__(f"{what} did not finish within {timeout_s:g} s")
        self.timeout_s = timeout_s


class _Call:
    """One :func:`call_with_timeout` call handed to a worker thread.

    A ``Future`` plus ``concurrent.futures.wait`` cost ~50 µs a call more than the thread
    hand-off itself (conditions, a waiter, callbacks); this is the hand-off alone: the
    worker claims the call (a caller that timed out first claims it instead, so it never
    starts), runs it and releases ``done``.
    """

    __slots__ = ("call", "claim", "ctx", "done", "error", "finished", "on_finish", "value")

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call
        self.ctx = contextvars.copy_context()
        self.claim = threading.Lock()
        self.done = threading.Lock()
        self.done.acquire()
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = False  # guarded by _abandoned_lock, as is on_finish
        self.on_finish: Callable[[_Call], None] | None = None

    def run(self) -> None:
        if not self.claim.acquire(blocking=False):
            return  # its caller timed out before it started
        try:
            self.value = self.ctx.run(self.call)
        except BaseException as exc:  # handed to the caller, who re-raises it
            self.error = exc
        self.done.release()
        with _abandoned_lock:
            self.finished = True
            on_finish = self.on_finish
        if on_finish is not None:
            on_finish(self)


class _DaemonThreadPool:
    """A cached pool of daemon threads: reuses idle workers, starts one when none is idle.

    Not a ThreadPoolExecutor, on purpose. A call that hangs past its timeout keeps its
    thread; in a fixed-size executor a few such calls would leave later calls queued
    behind them (timing out without ever running), and executor threads are joined at
    interpreter exit, so one hung call would stop the process from exiting. Here a
    call never waits for a thread, and daemon threads don't hold up exit.
    """

    def __init__(self, max_idle: int = 8, idle_timeout_s: float = 30.0) -> None:
        self._lock = threading.Lock()
        self._idle = 0  # waiting workers not yet claimed by a submitted item
        self._max_idle = max_idle
        self._idle_timeout_s = idle_timeout_s
        self._work: queue.SimpleQueue[
            tuple[concurrent.futures.Future[Any], contextvars.Context, Callable[[], Any]] | _Call
        ] = queue.SimpleQueue()
        self._ids = itertools.count(1)

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._claim_worker()
        # Like asyncio.to_thread: the call sees the caller's contextvars (request ids, spans).
        self._work.put((fut, contextvars.copy_context(), functools.partial(fn, *args, **kwargs)))
        return fut

    def _claim_worker(self) -> None:
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        if spawn:
            threading.Thread(
                target=self._worker, name=f"adaptive-router-call-{next(self._ids)}", daemon=True
            ).start()

    def start(self, job: _Call) -> None:
        """Hand ``job`` to a worker: call_with_timeout's lean path (no Future to settle)."""
        self._claim_worker()
        self._work.put(job)

    def _worker(self) -> None:
        while True:
            try:
                item = self._work.get(timeout=self._idle_timeout_s)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # nobody is counting on this worker: retire it
                        self._idle -= 1
                        return
                continue
            if isinstance(item, _Call):
                item.run()
            else:
                fut, ctx, call = item
                if fut.set_running_or_notify_cancel():
                    try:
                        result = ctx.run(call)
                    except BaseException as exc:  # handed to the caller, who re-raises it
                        fut.set_exception(exc)
                    else:
                        fut.set_result(result)
                del fut, ctx, call
            del item  # don't keep the last result alive while idle
            with self._lock:
                if self._idle >= self._max_idle:
                    return
                self._idle += 1


_POOL = _DaemonThreadPool()
_abandoned_lock = threading.Lock()
_abandoned = 0


def abandoned_calls() -> int:
    """How many timed-out sync calls are still running in their worker threads."""
    return _abandoned


def _abandon_call(job: _Call, timeout_s: float, started: float) -> None:
    global _abandoned

    def finished(job: _Call) -> None:
        global _abandoned
        with _abandoned_lock:
            _abandoned -= 1
        logger.debug(
            "a call abandoned after its timeout has finished",
            extra={
                "timeout_s": timeout_s,
                "ran_s": time.monotonic() - started,
                "raised": None if job.error is None else repr(job.error),
            },
        )

    with _abandoned_lock:
        if job.finished:  # it finished between the timeout and now
            return
        _abandoned += 1
        job.on_finish = finished


def _check_timeout(timeout_s: object) -> float:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)):
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout_s!r}")
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout_s!r}")
    return float(timeout_s)


def call_with_timeout(fn: Callable[..., T], timeout_s: float, /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a worker thread; wait at most ``timeout_s`` seconds.

    Returns its result or re-raises its exception. When the time is up it raises
    :class:`CallTimeoutError` (a ``TimeoutError``, kind ``timeout``) at once, but Python
    cannot stop a thread: the call goes on in its (daemon) worker thread until it
    returns by itself, and its result is discarded. Give SDK clients their own timeout
    too, so abandoned calls end; :func:`abandoned_calls` counts those still running.
    """
    seconds = _check_timeout(timeout_s)
    started = time.monotonic()
    job = _Call(functools.partial(fn, *args, **kwargs) if args or kwargs else fn)
    _POOL.start(job)
    if not job.done.acquire(timeout=seconds):
        if not job.claim.acquire(blocking=False):  # it is running: abandon it
            _abandon_call(job, seconds, started)
        raise CallTimeoutError(seconds)
    if job.error is not None:
        error, job.error = job.error, None
        raise error
    value: T = job.value
    return value


async def acall_with_timeout(
    coro_fn: Callable[..., Awaitable[T]], timeout_s: float, /, *args: Any, **kwargs: Any
) -> T:
    """Await ``coro_fn(*args, **kwargs)`` for at most ``timeout_s`` seconds.

    On timeout the awaitable is cancelled and :class:`CallTimeoutError` is raised.
    Uses ``asyncio.wait_for`` (``asyncio.timeout`` needs Python 3.11). A sync function
    can be given a timeout from async code with
    ``await acall_with_timeout(to_daemon_thread, t, fn, *args)``.
    """
    seconds = _check_timeout(timeout_s)
    try:
        return await asyncio.wait_for(coro_fn(*args, **kwargs), seconds)
    except TimeoutError as exc:
        # wait_for's own timeout is raised from the CancelledError of the inner task;
        # a TimeoutError the coroutine raised itself is passed on as it is.
        if isinstance(exc.__cause__, asyncio.CancelledError):
            raise CallTimeoutError(seconds) from None
        raise


async def to_daemon_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a sync function in the shared daemon-thread pool and await its result.

    Like ``asyncio.to_thread``, but a call that hangs never takes a thread from the
    loop's bounded default executor, and never delays interpreter exit.
    """
    return await asyncio.wrap_future(_POOL.submit(fn, *args, **kwargs))


# --------------------------------------------------------------------------------------
# Circuit breaker
# --------------------------------------------------------------------------------------


class BreakerState(str, Enum):
    """A circuit breaker's state; compares equal to its string value."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BreakerListener = Callable[[str, BreakerState, BreakerState], None]


class BreakerOpenError(Exception):
    """Raised by a caller that found its breaker open. Classified as ``breaker_open``."""

    kind = ErrorKind.BREAKER_OPEN

    def __init__(self, name: str) -> None:
        super().__init__(f"circuit breaker {name!r} is open")
        self.name = name


class CircuitBreaker:
    """Stops calling a failing path for a while, then lets a few probes test it.

    Closed: every call is allowed. It opens after ``failure_threshold`` consecutive
    failures, or, with ``failure_rate`` set, when at least ``min_calls`` of the last
    ``window`` calls were recorded and the share of failures among them reaches
    ``failure_rate``. Open: nothing is allowed until ``reset_timeout_s`` has passed;
    the next :meth:`allow` then moves it to half-open. Half-open: at most
    ``half_open_max_calls`` probes run at once; a probe success closes it, a probe
    failure re-opens it and restarts the timer. A probe slot that is never reported
    (the caller was cancelled) is reclaimed after ``reset_timeout_s``; call
    :meth:`release` to return an unused slot at once.

    Every transition is logged (opening at ERROR, half-open at WARNING, closing at
    INFO) and passed to the :meth:`on_change` listeners, in order, under the breaker's
    (re-entrant) lock: keep listeners fast. All operations are short and never block
    on I/O, so the breaker is safe from threads and from asyncio code alike.
    """

    def __init__(
        self,
        failure_threshold: int | None = 5,
        failure_rate: float | None = None,
        window: int = 20,
        min_calls: int = 10,
        reset_timeout_s: float = 30.0,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
        *,
        name: str = "breaker",
    ) -> None:
        if failure_threshold is not None and (
            isinstance(failure_threshold, bool)
            or not isinstance(failure_threshold, int)
            or failure_threshold < 1
        ):
            raise ValueError(
                f"failure_threshold must be an int >= 1 or None, got {failure_threshold!r}"
            )
        if failure_rate is not None and (
            isinstance(failure_rate, bool)
            or not isinstance(failure_rate, (int, float))
            or not 0 < failure_rate <= 1
        ):
            raise ValueError(f"failure_rate must be in (0, 1] or None, got {failure_rate!r}")
        if failure_threshold is None and failure_rate is None:
            raise ValueError(
                "set failure_threshold, failure_rate or both; the breaker would never open"
            )
        for label, value in (("window", window), ("min_calls", min_calls)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be an int >= 1, got {value!r}")
        if min_calls > window:
            raise ValueError(f"min_calls ({min_calls}) must be <= window ({window})")
        if (
            isinstance(half_open_max_calls, bool)
            or not isinstance(half_open_max_calls, int)
            or half_open_max_calls < 1
        ):
            raise ValueError(
                f"half_open_max_calls must be an int >= 1, got {half_open_max_calls!r}"
            )
        self.name = name
        self.failure_threshold = failure_threshold
        self.failure_rate = None if failure_rate is None else float(failure_rate)
        self.window = window
        self.min_calls = min_calls
        self.reset_timeout_s = _check_positive("reset_timeout_s", reset_timeout_s)
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._lock = threading.RLock()
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._recent: deque[bool] = deque(maxlen=window)  # True = failure
        self._opened_at = 0.0
        self._probes: list[float] = []  # start times of the probes in flight
        self._listeners: list[BreakerListener] = []

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self.state.value!r})"

    @property
    def state(self) -> BreakerState:
        """The current state. An open breaker stays open until :meth:`allow` is called."""
        with self._lock:
            return self._state

    @property
    def available(self) -> bool:
        """Would :meth:`allow` return True now? Reserves nothing (for ranking paths)."""
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                return now - self._opened_at >= self.reset_timeout_s
            return len(self._live_probes(now)) < self.half_open_max_calls

    def allow(self) -> bool:
        """May a call go ahead? In half-open state a True reserves one probe slot,
        which :meth:`record_success`, :meth:`record_failure` or :meth:`release` frees."""
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                if now - self._opened_at < self.reset_timeout_s:
                    return False
                self._probes = []
                self._transition(
                    BreakerState.HALF_OPEN, f"{self.reset_timeout_s:g} s since it opened"
                )
            self._probes = self._live_probes(now)
            if len(self._probes) >= self.half_open_max_calls:
                return False
            self._probes.append(now)
            return True

    def record_success(self) -> None:
        """Report that an allowed call succeeded."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                self._consecutive = 0
                self._recent.append(False)
            elif self._state is BreakerState.HALF_OPEN and self._probes:
                self._probes.pop(0)
                self._consecutive = 0
                self._recent.clear()
                self._transition(BreakerState.CLOSED, "probe succeeded")
            # Open, or half-open with no probe out: a late result from before it opened.

    def record_failure(self, kind: ErrorKind | str | None = None) -> None:
        """Report that an allowed call failed; ``kind`` only enriches the log."""
        label = kind.value if isinstance(kind, ErrorKind) else kind
        what = f" ({label})" if label else ""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                self._consecutive += 1
                self._recent.append(True)
                reason = self._open_reason()
                if reason is not None:
                    self._open(reason + what)
            elif self._state is BreakerState.HALF_OPEN and self._probes:
                self._probes = []
                self._open("probe failed" + what)

    def release(self) -> None:
        """Give back a probe slot that :meth:`allow` reserved but was not used."""
        with self._lock:
            if self._state is BreakerState.HALF_OPEN and self._probes:
                self._probes.pop()

    def on_change(self, callback: BreakerListener) -> Callable[[], None]:
        """Call ``callback(name, old_state, new_state)`` on every transition.

        Returns a function that unsubscribes it. A listener that raises is logged
        and otherwise ignored: metrics must not break routing.
        """
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    # -- internals (called with the lock held) -----------------------------------------
    def _live_probes(self, now: float) -> list[float]:
        return [t for t in self._probes if now - t < self.reset_timeout_s]

    def _open_reason(self) -> str | None:
        if self.failure_threshold is not None and self._consecutive >= self.failure_threshold:
            return f"{self._consecutive} consecutive failures"
        if self.failure_rate is not None and len(self._recent) >= self.min_calls:
            failures = sum(self._recent)
            rate = failures / len(self._recent)
            if rate >= self.failure_rate:
                return (
                    f"failure rate {rate:.0%} ({failures}/{len(self._recent)}) "
                    f">= {self.failure_rate:.0%}"
                )
        return None

    def _open(self, reason: str) -> None:
        self._opened_at = self._clock()
        self._transition(BreakerState.OPEN, reason)

    def _transition(self, new: BreakerState, reason: str) -> None:
        old, self._state = self._state, new
        level = {
            BreakerState.OPEN: logging.ERROR,
            BreakerState.HALF_OPEN: logging.WARNING,
            BreakerState.CLOSED: logging.INFO,
        }[new]
        logger.log(
            level,
            "circuit breaker %s: %s -> %s (%s)",
            self.name,
            old.value,
            new.value,
            reason,
            extra={
                "breaker": self.name,
                "path": self.name,
                "from_state": old.value,
                "to_state": new.value,
                "reason": reason,
            },
        )
        for listener in list(self._listeners):
            try:
                listener(self.name, old, new)
            except Exception:
                logger.exception("circuit breaker listener raised", extra={"breaker": self.name})


# --------------------------------------------------------------------------------------
# Rate limits
# --------------------------------------------------------------------------------------


class RateLimitExceeded(Exception):
    """Raised by a caller that found its rate limit exhausted. Kind ``rate_limited``."""

    kind = ErrorKind.RATE_LIMITED

    def __init__(self, key: str, retry_in_s: float | None = None) -> None:
        hint = f"; retry in {retry_in_s:.2f} s" if retry_in_s is not None else ""
        super().__init__(f"rate limit {key!r} exhausted{hint}")
        self.key = key
        self.retry_in_s = retry_in_s


#: What each ``stop_reason`` means, for the "giving up" log line.
_STOP_REASONS = {
    "attempts": "no attempts left",
    "budget": "retry time budget spent",
    "retry_after_exceeds_budget": "the server's Retry-After exceeds the time budget",
    "stop": "the custom stop condition said so",
}


_STORAGES: dict[tuple[str, tuple[tuple[str, str], ...]], Storage] = {}
_STORAGES_LOCK = threading.Lock()


def _open_storage(url: str, options: Mapping[str, Any]) -> Storage:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme.startswith("async+"):
        raise ValueError(
            f"storage {redact_url(url)!r}: use the sync scheme ({scheme[len('async+') :]}://); "
            "RateLimit does its waiting asynchronously in aacquire()"
        )
    opts: dict[str, Any] = {"wrap_exceptions": True}
    if scheme.startswith(("redis", "rediss", "valkey")):
        # Without socket timeouts a hung Redis would hang every routed call.
        opts.update(socket_connect_timeout=1.0, socket_timeout=1.0)
    opts.update(options)
    cache_key = (url, tuple(sorted((k, repr(v)) for k, v in opts.items())))
    with _STORAGES_LOCK:
        storage = _STORAGES.get(cache_key)
        if storage is None:
            try:
                made = storage_from_string(url, **opts)
            except LimitsConfigurationError as exc:
                # The library's message repeats the URL, password included.
                raise ValueError(
                    f"storage {redact_url(url)!r} is not usable: "
                    f"{redact(str(exc), url)}; "
                    "use 'memory://' or 'redis://[:password@]host:port[/db]'"
                ) from None
            if not isinstance(made, Storage):
                raise ValueError(f"storage {redact_url(url)!r} is not a sync storage")
            storage = made
            _STORAGES[cache_key] = storage
        return storage


class RateLimit:
    """A requests-per-minute and/or tokens-per-minute budget, local or shared via Redis.

    ``storage`` is a ``limits`` storage URL or object. Storages are shared per URL within
    a process, and with ``redis://`` every process using the same ``key`` (and limits)
    draws from one budget. :meth:`try_acquire` takes a request slot if the request
    budget has one and the token budget has room for the *estimated* tokens;
    :meth:`record_tokens` then charges the tokens the call really used (the estimate is
    only checked, never charged, so tokens are counted once). ``mode="wait"`` makes
    :meth:`acquire` wait up to ``max_wait_s`` for the budget to free up.

    Strategies: requests use ``MovingWindowRateLimiter``, exact (one timestamp per
    request, an O(log n) lookup in Redis) and able to say exactly when the next slot
    frees. Tokens use ``SlidingWindowCounterRateLimiter``: a moving window stores one
    entry per unit, i.e. per token, which is prohibitive at 100k tokens a minute, while
    the sliding counter is O(1) whatever the cost and, unlike a fixed window, does not
    allow double the budget across a window boundary.

    If the storage is unreachable the limit *fails open* (allows the call, logs a
    warning at most every 30 s) unless ``fail_open=False``: a rate-limiter outage should
    not stop routing, and the provider's own 429s still protect it.

    Async: the ``limits.aio`` twins would need a second storage (``async+redis://``)
    and a duplicate code path; storage checks are one fast round trip, so
    :meth:`aacquire` runs them synchronously and only does its *waiting* with
    ``asyncio.sleep``, which is where blocking would hurt.
    """

    def __init__(
        self,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        storage: str | Storage = "memory://",
        key: str = "default",
        mode: str = "skip",
        max_wait_s: float = 10.0,
        *,
        storage_options: Mapping[str, Any] | None = None,
        fail_open: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = _asyncio_sleep,
    ) -> None:
        for label, value in (
            ("requests_per_minute", requests_per_minute),
            ("tokens_per_minute", tokens_per_minute),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{label} must be an int >= 1 or None, got {value!r}")
        if requests_per_minute is None and tokens_per_minute is None:
            raise ValueError("set requests_per_minute, tokens_per_minute or both")
        if mode not in ("skip", "wait"):
            raise ValueError(f"mode must be 'skip' or 'wait', got {mode!r}")
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        self.max_wait_s = _check_positive("max_wait_s", max_wait_s)
        self.mode = mode
        self.key = key
        self.fail_open = fail_open
        self._secret_source: str | None = None
        if isinstance(storage, str):
            self.storage_url = redact_url(storage)
            self._secret_source = storage
            self.storage = _open_storage(storage, storage_options or {})
        elif isinstance(storage, Storage):
            self.storage_url = f"<{type(storage).__name__}>"
            self.storage = storage
        else:
            raise ValueError(f"storage must be a limits storage URL or Storage, got {storage!r}")
        self._requests = (
            RateLimitItemPerMinute(requests_per_minute, namespace="adaptive_router:requests")
            if requests_per_minute is not None
            else None
        )
        self._tokens = (
            RateLimitItemPerMinute(tokens_per_minute, namespace="adaptive_router:tokens")
            if tokens_per_minute is not None
            else None
        )
        try:
            self._request_limiter = MovingWindowRateLimiter(self.storage)
            self._token_limiter = SlidingWindowCounterRateLimiter(self.storage)
        except NotImplementedError:
            # limits' own signal that a storage lacks these window types (not a stub here).
            raise ValueError(
                f"storage {self.storage_url} supports neither moving nor sliding windows; "
                "use 'memory://' or 'redis://'"
            ) from None
        errors: tuple[type[Exception], ...] = (StorageError,)
        if not self.storage.wrap_exceptions:  # a Storage object the caller built
            try:
                base = self.storage.base_exceptions
                errors += base if isinstance(base, tuple) else (base,)
            except Exception:  # its optional dependency is missing: nothing to add
                pass
        self._storage_errors = errors
        self._clock = clock
        self._sleep = sleep
        self._asleep = asleep
        self._warn_lock = threading.Lock()
        self._last_warning: float | None = None

    @property
    def requests_per_minute(self) -> int | None:
        return self._requests.amount if self._requests is not None else None

    @property
    def tokens_per_minute(self) -> int | None:
        return self._tokens.amount if self._tokens is not None else None

    def __repr__(self) -> str:
        return (
            f"RateLimit(requests_per_minute={self.requests_per_minute}, "
            f"tokens_per_minute={self.tokens_per_minute}, storage={self.storage_url!r}, "
            f"key={self.key!r}, mode={self.mode!r})"
        )

    # -- public API ----------------------------------------------------------------------
    def try_acquire(self, tokens: int = 0) -> bool:
        """Take a request slot now if the budgets allow ``tokens`` more; never waits."""
        cost = self._check_tokens(tokens)
        if cost is None:
            return False
        return self._guarded(lambda: self._take(cost), "try_acquire")

    def available(self, tokens: int = 0) -> bool:
        """Would :meth:`try_acquire` succeed now? Takes nothing (for ranking paths)."""
        cost = self._check_tokens(tokens)
        if cost is None:
            return False
        return self._guarded(lambda: self._test(cost), "available")

    def acquire(self, tokens: int = 0) -> bool:
        """:meth:`try_acquire`, and in ``"wait"`` mode wait up to ``max_wait_s`` for room.

        Returns False at once when the budget cannot free up within what is left of
        ``max_wait_s`` (no pointless sleeping).
        """
        deadline = self._clock() + self.max_wait_s
        while True:
            if self.try_acquire(tokens):
                return True
            delay = self._next_wait(tokens, deadline)
            if delay is None:
                return False
            self._sleep(delay)

    async def aacquire(self, tokens: int = 0) -> bool:
        """The asyncio twin of :meth:`acquire`: it sleeps without blocking the loop."""
        deadline = self._clock() + self.max_wait_s
        while True:
            if self.try_acquire(tokens):
                return True
            delay = self._next_wait(tokens, deadline)
            if delay is None:
                return False
            await self._asleep(delay)

    def record_tokens(self, n: int) -> None:
        """Charge the tokens a call used to the token budget (even beyond it: they were
        spent, and later calls should wait for them to age out)."""
        count = self._check_tokens(n, for_charge=True)
        if self._tokens is None or not count:
            return
        item = self._tokens
        storage = self.storage
        if not isinstance(storage, SlidingWindowCounterSupport):
            return
        # Through the storage with an unreachable limit: the limiter's hit() refuses a
        # charge that would overshoot, and an actual usage must never be refused.
        self._guarded(
            lambda: storage.acquire_sliding_window_entry(
                item.key_for(self.key), 2**52, item.get_expiry(), count
            ),
            "record_tokens",
        )

    def retry_in(self, tokens: int = 0) -> float:
        """Estimated seconds until :meth:`try_acquire` could succeed (0 if it could now)."""
        cost = self._check_tokens(tokens)
        if cost is None:
            return math.inf
        try:
            return self._estimate_wait(cost)
        except self._storage_errors:
            return 0.0

    def clear(self) -> None:
        """Forget all usage of this key (tests, admin)."""
        if self._requests is not None:
            self._request_limiter.clear(self._requests, self.key)
        if self._tokens is not None:
            self._token_limiter.clear(self._tokens, self.key)

    # -- internals -----------------------------------------------------------------------
    def _check_tokens(self, tokens: object, *, for_charge: bool = False) -> int | None:
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"tokens must be an int >= 0, got {tokens!r}")
        if not for_charge and self._tokens is not None and tokens > self._tokens.amount:
            self._warn(
                "a request estimated above the whole token budget can never be admitted",
                tokens=tokens,
            )
            return None
        return tokens

    def _test(self, tokens: int) -> bool:
        if self._tokens is not None and not self._token_limiter.test(
            self._tokens, self.key, cost=max(tokens, 1)
        ):
            return False
        return self._requests is None or self._request_limiter.test(self._requests, self.key)

    def _take(self, tokens: int) -> bool:
        # Tokens are checked first because that check consumes nothing; the request
        # slot, taken last, is then consumed only if the call will actually go ahead.
        if self._tokens is not None and not self._token_limiter.test(
            self._tokens, self.key, cost=max(tokens, 1)
        ):
            return False
        return self._requests is None or self._request_limiter.hit(self._requests, self.key)

    def _next_wait(self, tokens: int, deadline: float) -> float | None:
        if self.mode != "wait":
            return None
        left = deadline - self._clock()
        if left <= 0:
            return None
        cost = self._check_tokens(tokens)
        if cost is None:
            return None
        try:
            delay = self._estimate_wait(cost)
        except self._storage_errors:
            return None
        if delay > left:
            return None
        # A floor so that an estimate of ~0 (another caller took the slot) can't spin.
        return max(delay, 0.01)

    def _estimate_wait(self, tokens: int) -> float:
        # limits timestamps entries with time.time(), so its reset times are epoch seconds.
        now = time.time()
        wait = 0.0
        if self._requests is not None:
            stats = self._request_limiter.get_window_stats(self._requests, self.key)
            if stats.remaining < 1:
                wait = max(wait, stats.reset_time - now)
        if self._tokens is not None and isinstance(self.storage, SlidingWindowCounterSupport):
            wait = max(wait, self._token_wait(self._tokens, self.storage, max(tokens, 1)))
        return max(0.0, wait)

    def _token_wait(
        self, item: RateLimitItem, storage: SlidingWindowCounterSupport, cost: int
    ) -> float:
        # The sliding counter weighs the previous window by the share of it still inside
        # the last minute, so the count decays linearly; solve for when `cost` fits.
        # get_window_stats only says when *one* unit frees, which would mean many tiny
        # sleeps for a large request.
        expiry = float(item.get_expiry())
        prev, prev_ttl, cur, _ = storage.get_sliding_window(item.key_for(self.key), int(expiry))
        target = item.amount - cost  # the weighted count must drop to this
        if prev * prev_ttl / expiry + cur <= target:
            return 0.0
        if cur <= target:
            return prev_ttl - (target - cur) * expiry / prev
        # Only once the current window has become the previous one can it decay.
        return prev_ttl + expiry * (1 - target / cur)

    def _guarded(self, op: Callable[[], Any], what: str) -> bool:
        try:
            return bool(op())
        except self._storage_errors as exc:
            error = f"{type(exc).__name__}: {exc}"
            error = redact(error, self._secret_source)
            self._warn(
                "rate-limit storage failed; "
                + ("allowing the call" if self.fail_open else "refusing the call"),
                operation=what,
                error=error[:300],
            )
            return self.fail_open

    def _warn(self, message: str, **extra: Any) -> None:
        now = self._clock()
        with self._warn_lock:
            if self._last_warning is not None and now - self._last_warning < 30.0:
                return
            self._last_warning = now
        logger.warning(
            message,
            extra={"rate_limit_key": self.key, "storage": self.storage_url, **extra},
        )
