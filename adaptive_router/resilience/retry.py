"""Retries: :class:`RetryPolicy` (full jitter, bounded attempts and time, ``Retry-After``
honoured) and :class:`RetryState`, what one retried call did.

The stop and wait strategies are tenacity's; the loop is ours (see :class:`RetryPolicy`).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import tenacity
from tenacity.stop import stop_after_attempt, stop_after_delay, stop_base
from tenacity.wait import wait_base, wait_exponential, wait_random_exponential

from adaptive_router import forks
from adaptive_router._checks import check_callables
from adaptive_router.errors import ConfigurationError
from adaptive_router.log_throttle import ThrottledLog
from adaptive_router.outcomes import ErrorKind
from adaptive_router.resilience.classify import RETRYABLE, classify, retry_after
from adaptive_router.resilience.timeouts import asyncio_sleep, check_seconds

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["FullJitter", "RetryPolicy", "RetryRun", "RetryState"]


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
    ``"budget"``, ``"retry_after_exceeds_budget"`` or ``"request_timeout"`` (the wait
    would outlast the caller's time left); it is ``None`` after a success.
    """

    path: str | None = None
    attempts: int = 0
    retries: int = 0
    waited_s: float = 0.0
    waits: list[float] = field(default_factory=list)
    kinds: list[ErrorKind] = field(default_factory=list)
    stop_reason: str | None = None

    def first_try_succeeded(self) -> None:
        """Record a call that succeeded at once (a reused state is reset first)."""
        if self.attempts != 0 or self.kinds:
            self._reset()
        self.attempts = 1

    def _reset(self) -> None:
        self.attempts = 0
        self.retries = 0
        self.waited_s = 0.0
        self.waits = []
        self.kinds = []
        self.stop_reason = None


#: What each ``stop_reason`` means, for the "giving up" log line.
_STOP_REASONS = {
    "attempts": "no attempts left",
    "budget": "retry time budget spent",
    "retry_after_exceeds_budget": "the server's Retry-After exceeds the time budget",
    "stop": "the custom stop condition said so",
    "request_timeout": "the wait would outlast the request's time left (request_timeout)",
}


class RetryPolicy:
    """Retries with full jitter, a bounded number of attempts and a bounded total time.

    Only exceptions whose :func:`classify` kind is in ``retry_on`` are retried, never
    ``client_error`` or ``auth_error``; anything not an ``Exception`` (KeyboardInterrupt,
    SystemExit, asyncio.CancelledError) passes straight through. A ``Retry-After`` from the server
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
        budget_s: float | timedelta | None = 30.0,
        initial: float | timedelta = 0.5,
        max_wait: float | timedelta = 8.0,
        retry_on: Iterable[ErrorKind | str] = RETRYABLE,
        rng: random.Random | int | None = None,
        *,
        stop: stop_base | Callable[[tenacity.RetryCallState], bool] | None = None,
        wait: wait_base | Callable[[tenacity.RetryCallState], float] | None = None,
        honor_retry_after: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio_sleep,
        name: str | None = None,
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigurationError(
                f"attempts must be an int >= 1 (1 = no retries), got {attempts!r}"
            )
        budget = None if budget_s is None else check_seconds("budget_s", budget_s)
        first_wait = check_seconds("initial", initial)
        longest_wait = check_seconds("max_wait", max_wait)
        try:
            kinds = frozenset(ErrorKind(k) for k in retry_on)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"retry_on must be error kinds such as {sorted(k.value for k in RETRYABLE)}, "
                f"got {retry_on!r}"
            ) from None
        for never in (ErrorKind.CLIENT_ERROR, ErrorKind.AUTH_ERROR):
            if never in kinds:
                raise ConfigurationError(
                    f"retry_on must not contain {never.value}: it fails the same way every "
                    "time (a 4xx, refused or missing credentials)"
                )
        for label, strategy in (("stop", stop), ("wait", wait)):
            if strategy is not None and not callable(strategy):
                raise ConfigurationError(
                    f"{label} must be a tenacity {label} strategy (e.g. "
                    f"tenacity.{'stop_after_attempt(3)' if label == 'stop' else 'wait_fixed(1)'})"
                    f" or None, got {strategy!r}"
                )
        if not isinstance(honor_retry_after, bool):
            raise ConfigurationError(
                f"honor_retry_after must be True or False, got {honor_retry_after!r}"
            )
        check_callables(clock=clock, sleep=sleep, asleep=asleep)
        if isinstance(rng, bool):
            raise ConfigurationError(
                f"rng must be a random.Random, an int seed or None, got {rng!r}"
            )
        if rng is None:
            rng = random.Random()
            # Forked workers must not draw the same jitter and retry in step.
            forks.reseed_in_child(rng)
        elif isinstance(rng, int):
            rng = random.Random(rng)
        elif not isinstance(rng, random.Random):
            raise ConfigurationError(
                f"rng must be a random.Random, an int seed or None, got {rng!r}"
            )
        self.attempts = attempts
        self.budget_s = budget
        self.retry_on = kinds
        self.honor_retry_after = honor_retry_after
        self.name = name
        self._custom_stop = stop is not None
        if stop is None:
            stop = stop_after_attempt(attempts)
            if budget is not None:
                stop = stop | stop_after_delay(budget)
        self.stop = stop
        self.wait = wait if wait is not None else FullJitter(first_wait, longest_wait, rng)
        self._clock = clock
        self._sleep = sleep
        self._asleep = asleep
        # The object tenacity's RetryCallState points back to; only strategies read it.
        self._retrying = tenacity.Retrying(stop=self.stop, wait=self.wait, reraise=True)

    @property
    def clock(self) -> Callable[[], float]:
        """The clock every strategy reads (``time.monotonic`` unless injected)."""
        return self._clock

    @property
    def sleep(self) -> Callable[[float], None]:
        """How the blocking loops wait between attempts."""
        return self._sleep

    @property
    def asleep(self) -> Callable[[float], Awaitable[None]]:
        """How the asyncio loops wait between attempts."""
        return self._asleep

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
        For a policy used on its own: a router's paths (``run``, ``arun``, ``check``) are
        retried by its request core, which drives the same :class:`RetryRun` decisions.
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
        run = RetryRun(self, fn, args, kwargs, retry_state, start)
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
        run = RetryRun(self, fn, args, kwargs, retry_state, start)
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
        state.first_try_succeeded()


class RetryRun:
    """The decisions of one retried call after its first failure, without I/O: the sync
    and async loops of :class:`RetryPolicy` and the router's request core drive it.

    :meth:`failed` says how long to wait before the next attempt (or None: stop and
    re-raise); the caller sleeps that long and reports it with :meth:`slept`. ``start``
    is ``policy.clock()`` read just before the first attempt. ``log``: a throttle for
    the "retrying" and "giving up" warnings (the router's: the first per path, kind and
    window, then a count); None logs every one.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        state: RetryState | None,
        start: float,
        log: ThrottledLog | None = None,
    ) -> None:
        self.policy = policy
        self.log = log
        self.state = state if state is not None else RetryState(path=policy.name)
        self.state._reset()
        self.label = self.state.path or policy.name or getattr(fn, "__qualname__", repr(fn))
        self.tstate = tenacity.RetryCallState(policy._retrying, fn=fn, args=args, kwargs=kwargs)
        self.start = start
        self.tstate.start_time = self.start
        self.state.attempts = 1

    def succeeded(self) -> None:
        self.state.stop_reason = None

    def failed(self, exc: Exception, time_left: float | None = None) -> float | None:
        """The delay before the next attempt, or None to stop (and re-raise ``exc``).

        ``time_left``: seconds the caller has left overall (the router's
        ``request_timeout``); a wait of that long or longer stops retrying, decided here
        so that the log says "giving up" rather than announcing an attempt that will
        not be made.
        """
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
        if time_left is not None and delay >= time_left:
            return self._stop("request_timeout", kind, exc, wait_s=delay, time_left_s=time_left)
        self._warn(
            ("retrying", self.label, kind.value),
            "retrying %s: attempt %d failed with %s; next attempt in %.3f s",
            (self.label, ts.attempt_number, kind.value, delay),
            "retried %s after %s %d more times in the last %g s",
            (self.label, kind.value),
            {
                "path": self.label,
                "attempt": ts.attempt_number,
                "kind": kind.value,
                "wait_s": delay,
                "retry_after_s": server,
                "elapsed_s": elapsed,
            },
        )
        return delay

    def _warn(
        self,
        key: tuple[str | None, ...],
        msg: str,
        args: tuple[Any, ...],
        summary: str,
        summary_args: tuple[Any, ...],
        extra: dict[str, Any],
    ) -> None:
        if self.log is None:
            logger.warning(msg, *args, extra=extra)
        else:
            self.log.log(key, msg, args, summary, summary_args, extra, logger=logger)

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
        wait_s: float | None = None,
        time_left_s: float | None = None,
    ) -> float | None:
        """Record why retrying stops; returns None, the "don't retry" delay."""
        self.state.stop_reason = reason
        # A lone failure is the caller's to log; only say something when retrying was tried.
        if reason != "not_retryable" and (self.state.retries or retry_after_s is not None):
            timing = {} if wait_s is None else {"wait_s": wait_s, "time_left_s": time_left_s}
            why = _STOP_REASONS.get(reason, reason)
            self._warn(
                ("giving_up", self.label, reason),
                "giving up on %s after %d attempts: %s; last failure %s",
                (self.label, self.state.attempts, why, kind.value),
                "gave up on %s (%s) %d more times in the last %g s",
                (self.label, why),
                {
                    "path": self.label,
                    "attempts": self.state.attempts,
                    "kind": kind.value,
                    "reason": reason,
                    "retry_after_s": retry_after_s,
                    "waited_s": self.state.waited_s,
                    "error": f"{type(exc).__name__}: {exc}"[:500],
                    **timing,
                },
            )
        return None
