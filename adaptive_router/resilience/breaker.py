"""The circuit breaker: :class:`CircuitBreaker` stops calling a failing path for a while,
then lets a few probes test it; :class:`BreakerState` names its states."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from enum import Enum

from adaptive_router import forks
from adaptive_router._checks import check_callables
from adaptive_router.errors import ConfigurationError
from adaptive_router.outcomes import ErrorKind
from adaptive_router.resilience.timeouts import check_seconds

logger = logging.getLogger(__name__)

__all__ = ["BreakerListener", "BreakerOpenError", "BreakerState", "CircuitBreaker"]


class BreakerState(str, Enum):
    """A circuit breaker's state; compares equal to its string value."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BreakerListener = Callable[[str, BreakerState, BreakerState], None]

# The log level of each transition (a trip's opening is logged lower, see trip()).
_LEVELS = {
    BreakerState.OPEN: logging.ERROR,
    BreakerState.HALF_OPEN: logging.WARNING,
    BreakerState.CLOSED: logging.INFO,
}


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

    :meth:`trip` opens it at once, for a failure no wait can fix (refused credentials).
    Every transition is logged (opening at ERROR, or WARNING for a trip whose cause the
    caller logs; half-open at WARNING, closing at INFO) and passed to the
    :meth:`on_change` listeners, in order, under the breaker's (re-entrant) lock: keep
    listeners fast. All operations are short and never block
    on I/O, so the breaker is safe from threads and from asyncio code alike.
    """

    def __init__(
        self,
        failure_threshold: int | None = 5,
        failure_rate: float | None = None,
        window: int = 20,
        min_calls: int = 10,
        reset_timeout_s: float | timedelta = 30.0,
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
            raise ConfigurationError(
                f"failure_threshold must be an int >= 1 or None, got {failure_threshold!r}"
            )
        if failure_rate is not None and (
            isinstance(failure_rate, bool)
            or not isinstance(failure_rate, (int, float))
            or not 0 < failure_rate <= 1
        ):
            raise ConfigurationError(
                f"failure_rate must be in (0, 1] or None, got {failure_rate!r}"
            )
        if failure_threshold is None and failure_rate is None:
            raise ConfigurationError(
                "set failure_threshold, failure_rate or both; the breaker would never open"
            )
        for label, value in (("window", window), ("min_calls", min_calls)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{label} must be an int >= 1, got {value!r}")
        if min_calls > window:
            raise ConfigurationError(f"min_calls ({min_calls}) must be <= window ({window})")
        if (
            isinstance(half_open_max_calls, bool)
            or not isinstance(half_open_max_calls, int)
            or half_open_max_calls < 1
        ):
            raise ConfigurationError(
                f"half_open_max_calls must be an int >= 1, got {half_open_max_calls!r}"
            )
        check_callables(clock=clock)
        self.name = name
        self.failure_threshold = failure_threshold
        self.failure_rate = None if failure_rate is None else float(failure_rate)
        self.window = window
        self.min_calls = min_calls
        self.reset_timeout_s = check_seconds("reset_timeout_s", reset_timeout_s)
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._lock = threading.RLock()
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._recent: deque[bool] = deque(maxlen=window)  # True = failure
        self._opened_at = 0.0
        self._probes: list[float] = []  # start times of the probes in flight
        self._listeners: list[BreakerListener] = []
        forks.follow(self)

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self.state.value!r})"

    def _after_fork_in_child(self) -> None:
        # A forked child keeps the breaker's state (the parent's failures are as recent
        # for it); the lock is renewed: a parent thread may have held it at the fork.
        self._lock = threading.RLock()

    def copy(self, *, name: str | None = None) -> CircuitBreaker:
        """A new breaker with these settings and clock, and a state of its own: closed,
        no failures counted, no listeners (``name`` defaults to this one's).

        This is how a router-wide breaker works as a template: each path gets a copy.
        """
        return CircuitBreaker(
            failure_threshold=self.failure_threshold,
            failure_rate=self.failure_rate,
            window=self.window,
            min_calls=self.min_calls,
            reset_timeout_s=self.reset_timeout_s,
            half_open_max_calls=self.half_open_max_calls,
            clock=self._clock,
            name=self.name if name is None else name,
        )

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
            if self._state is BreakerState.CLOSED:
                return True  # every attempt asks: no clock read when the answer is known
            now = self._clock()
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

    def trip(self, reason: str) -> None:
        """Open now, whatever the counts: for a failure that every call will repeat until
        someone fixes it (refused or missing credentials, kind ``auth_error``).

        From closed, or half-open (a probe's answer), the breaker opens and its timer
        starts; an open breaker keeps its timer, so concurrent failures do not extend it.
        After ``reset_timeout_s`` it lets probes through as usual. The opening is logged
        at WARNING, not ERROR: whoever trips it logs the cause, once.
        """
        with self._lock:
            if self._state is BreakerState.OPEN:
                return
            self._probes = []
            self._opened_at = self._clock()
            self._transition(BreakerState.OPEN, reason, level=logging.WARNING)

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

    def _transition(self, new: BreakerState, reason: str, level: int | None = None) -> None:
        old, self._state = self._state, new
        if level is None:
            level = _LEVELS[new]
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
