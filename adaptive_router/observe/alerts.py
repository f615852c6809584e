"""Alerts on cost, budget, success rate, breakers and lost outcomes, as an Observer.

An alert is logged (WARNING or ERROR, with the figures in ``extra``), counted in
``adaptive_router_alerts_total`` when prometheus-client is installed, and passed to every
``on_alert`` callback. Alerts are rate-limited per (kind, task, path): after one fires, the
same alert stays quiet for ``cooldown``, so a storm of a thousand expensive calls gives one
alert (the next one carries how many were suppressed), not a thousand.

Rolling windows are a fixed ring of time buckets, so memory stays constant however much
traffic passes; a window of ``W`` seconds with ``B`` buckets covers between ``W·(B-1)/B``
and ``W`` seconds of history.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any

import adaptive_router.observe.metrics as metrics
from adaptive_router import forks
from adaptive_router.observe.observers import Observer
from adaptive_router.outcomes import Outcome

logger = logging.getLogger(__name__)

__all__ = ["Alert", "AlertKind", "Alerts", "RollingWindow"]


class AlertKind(str, Enum):
    """What an alert is about; compares equal to its string value."""

    CALL_COST = "call_cost"
    TASK_SPEND = "task_spend"
    SUCCESS_RATE = "success_rate"
    BREAKER_OPEN = "breaker_open"
    OUTCOMES_DROPPED = "outcomes_dropped"


_LEVELS = {
    AlertKind.CALL_COST: logging.WARNING,
    AlertKind.TASK_SPEND: logging.ERROR,
    AlertKind.SUCCESS_RATE: logging.ERROR,
    AlertKind.BREAKER_OPEN: logging.ERROR,
    AlertKind.OUTCOMES_DROPPED: logging.ERROR,
}


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. For events (a breaker opening, outcomes dropped) ``value`` is a count
    and ``threshold`` 0; ``suppressed`` counts the same alert's triggers swallowed by the
    cooldown since it last fired."""

    kind: str
    task: str
    path: str | None
    value: float
    threshold: float
    message: str
    at: float
    suppressed: int = 0


class RollingWindow:
    """A sum and a count over the last ``window_s`` seconds, in ``buckets`` time slots.

    Constant memory and O(1) work per call (amortised): running totals are kept, and as
    time moves on, the slots that fall out of the window are subtracted and reset. An
    event older than the window is ignored; a clock that steps back is read as "now is
    the newest time seen". Not thread-safe by itself (:class:`Alerts` holds a lock).
    """

    __slots__ = ("_count", "_counts", "_head", "_sum", "_sums", "buckets", "width")

    def __init__(self, window_s: float, buckets: int = 60) -> None:
        if not (window_s > 0 and math.isfinite(window_s)):
            raise ValueError(f"window must be a positive number of seconds, got {window_s!r}")
        if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
            raise ValueError(f"buckets must be an int >= 1, got {buckets!r}")
        self.buckets = buckets
        self.width = window_s / buckets
        self._sums = [0.0] * buckets
        self._counts = [0] * buckets
        self._sum = 0.0
        self._count = 0
        self._head: int | None = None  # the newest bucket number seen

    def _advance(self, b: int) -> None:
        head = self._head
        if head is not None and b <= head:
            return
        if head is None or b - head >= self.buckets:
            # Everything is older than the window: start afresh (exact zeros, no drift).
            self._sums = [0.0] * self.buckets
            self._counts = [0] * self.buckets
            self._sum = 0.0
            self._count = 0
        else:
            for bid in range(head + 1, b + 1):
                i = bid % self.buckets
                self._sum -= self._sums[i]
                self._count -= self._counts[i]
                self._sums[i] = 0.0
                self._counts[i] = 0
            if self._count == 0:
                self._sum = 0.0  # no float residue from the subtractions
        self._head = b

    def add(self, now: float, value: float = 1.0, count: int = 1) -> None:
        """Add ``value`` (and ``count`` events) at time ``now``."""
        b = int(now // self.width)
        self._advance(b)
        assert self._head is not None
        if b <= self._head - self.buckets:
            return  # older than the window
        i = b % self.buckets
        self._sums[i] += value
        self._counts[i] += count
        self._sum += value
        self._count += count

    def totals(self, now: float) -> tuple[float, int]:
        """``(sum, count)`` of what was added in the window ending at ``now``."""
        self._advance(int(now // self.width))
        return self._sum, self._count


def _seconds(name: str, value: timedelta | float) -> float:
    secs = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(secs, bool) or not isinstance(secs, (int, float)) or not secs >= 0:
        raise ValueError(f"{name} must be a timedelta or seconds >= 0, got {value!r}")
    if not math.isfinite(secs):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(secs)


def _threshold(name: str, value: float | None, *, upper: float | None = None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0 or None, got {value!r}")
    if upper is not None and value > upper:
        raise ValueError(f"{name} must be <= {upper}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


class Alerts(Observer):
    """Watches a router's traffic and raises :class:`Alert` s.

    Parameters
    ----------
    call_cost_usd:
        Alert when one attempt costs more than this (default $0.10). None: off.
    budget_usd, budget_window:
        Alert when a task's known spend over the rolling ``budget_window`` exceeds
        ``budget_usd``. None: off.
    min_success_rate, success_window, min_requests:
        Alert when the share of a task's requests that succeeded (after fallbacks) over
        ``success_window`` falls below ``min_success_rate`` — judged only once the window
        holds ``min_requests`` requests, so a couple of early failures don't page anyone.
    breaker_open, outcomes_dropped:
        Alert when a path's circuit breaker opens; when the write buffer overflows during
        a store outage and outcomes are lost.
    cooldown:
        After an alert fires, the same (kind, task, path) stays quiet this long.
    on_alert:
        Callable(s) receiving each :class:`Alert`. One that raises is logged, never
        propagated: alerting must not break a request.
    clock:
        Epoch seconds (default ``time.time``); inject one to drive windows in tests.
    buckets:
        Time slots per rolling window (resolution vs. a little memory).
    registry:
        Prometheus registry for ``adaptive_router_alerts_total`` (default: the global).
    """

    def __init__(
        self,
        *,
        call_cost_usd: float | None = 0.10,
        budget_usd: float | None = None,
        budget_window: timedelta | float = timedelta(hours=1),
        min_success_rate: float | None = None,
        success_window: timedelta | float = timedelta(minutes=10),
        min_requests: int = 20,
        breaker_open: bool = True,
        outcomes_dropped: bool = True,
        cooldown: timedelta | float = timedelta(minutes=10),
        on_alert: Callable[[Alert], Any] | Sequence[Callable[[Alert], Any]] | None = None,
        clock: Callable[[], float] = time.time,
        buckets: int = 60,
        registry: Any = None,
    ) -> None:
        self.call_cost_usd = _threshold("call_cost_usd", call_cost_usd)
        self.budget_usd = _threshold("budget_usd", budget_usd)
        self.min_success_rate = _threshold("min_success_rate", min_success_rate, upper=1.0)
        self.budget_window_s = _seconds("budget_window", budget_window)
        self.success_window_s = _seconds("success_window", success_window)
        self.cooldown_s = _seconds("cooldown", cooldown)
        if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 1:
            raise ValueError(f"min_requests must be an int >= 1, got {min_requests!r}")
        if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
            raise ValueError(f"buckets must be an int >= 1, got {buckets!r}")
        for name, window in (
            ("budget_window", self.budget_window_s),
            ("success_window", self.success_window_s),
        ):
            if window <= 0:
                raise ValueError(f"{name} must be positive")
        self.min_requests = min_requests
        self.breaker_open = breaker_open
        self.outcomes_dropped_enabled = outcomes_dropped
        if on_alert is None:
            callbacks: list[Callable[[Alert], Any]] = []
        elif callable(on_alert):
            callbacks = [on_alert]
        else:
            callbacks = list(on_alert)
        for cb in callbacks:
            if not callable(cb):
                raise ValueError(f"on_alert must be callable(s), got {cb!r}")
        self.callbacks = callbacks
        self.clock = clock
        self.buckets = buckets
        self.registry = registry
        #: Alerts fired so far, by kind (in-process; the metric is the durable count).
        self.counts: Counter[str] = Counter()
        #: The most recent alerts (bounded).
        self.recent: deque[Alert] = deque(maxlen=100)
        self._lock = threading.Lock()
        self._spend: dict[str, RollingWindow] = {}
        self._requests: dict[str, RollingWindow] = {}
        self._last: dict[tuple[str, str, str | None], float] = {}
        self._suppressed: Counter[tuple[str, str, str | None]] = Counter()
        self._callback_failures = [0] * len(callbacks)
        forks.follow(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # a parent thread may have held it at the fork

    # -- observer hooks ------------------------------------------------------------
    def attempt_finished(self, outcome: Outcome) -> None:
        cost = outcome.cost_usd
        if outcome.skipped or cost is None:
            return
        task, path = outcome.task, outcome.path
        if self.call_cost_usd is not None and cost > self.call_cost_usd:
            self._fire(
                AlertKind.CALL_COST,
                task,
                path,
                cost,
                self.call_cost_usd,
                f"one call of path {path!r} (task {task!r}) cost ${cost:.4f}, "
                f"over the ${self.call_cost_usd:.4f} per-call threshold",
            )
        if self.budget_usd is not None:
            now = self.clock()
            with self._lock:
                window = self._spend.get(task)
                if window is None:
                    window = self._spend[task] = RollingWindow(self.budget_window_s, self.buckets)
                window.add(now, cost)
                spent, _ = window.totals(now)
            if spent > self.budget_usd:
                self._fire(
                    AlertKind.TASK_SPEND,
                    task,
                    None,
                    spent,
                    self.budget_usd,
                    f"task {task!r} spent ${spent:.4f} in the last "
                    f"{self.budget_window_s:g} s, over its ${self.budget_usd:.4f} budget",
                )

    def request_finished(
        self, task: str, request_id: str, attempts: Sequence[Outcome], success: bool
    ) -> None:
        if self.min_success_rate is None:
            return
        now = self.clock()
        with self._lock:
            window = self._requests.get(task)
            if window is None:
                window = self._requests[task] = RollingWindow(self.success_window_s, self.buckets)
            window.add(now, 1.0 if success else 0.0)
            ok, n = window.totals(now)
        if n < self.min_requests:
            return
        rate = ok / n
        if rate < self.min_success_rate:
            self._fire(
                AlertKind.SUCCESS_RATE,
                task,
                None,
                rate,
                self.min_success_rate,
                f"task {task!r}: {rate:.1%} of the last {n} requests succeeded "
                f"({self.success_window_s:g} s window), under the {self.min_success_rate:.1%} "
                "floor",
            )

    def breaker_changed(self, task: str, path: str, old: str, new: str) -> None:
        if self.breaker_open and new == "open":
            self._fire(
                AlertKind.BREAKER_OPEN,
                task,
                path,
                1.0,
                0.0,
                f"circuit breaker of path {path!r} (task {task!r}) opened (was {old}); "
                "the path is skipped until it recovers",
            )

    def outcomes_dropped(self, task: str, count: int, total: int) -> None:
        if self.outcomes_dropped_enabled and count > 0:
            self._fire(
                AlertKind.OUTCOMES_DROPPED,
                task,
                None,
                float(total),
                0.0,
                f"task {task!r}: the outcome buffer is full during a store outage; "
                f"{total} outcomes lost so far",
            )

    # -- firing --------------------------------------------------------------------
    def _fire(
        self,
        kind: AlertKind,
        task: str,
        path: str | None,
        value: float,
        threshold: float,
        message: str,
    ) -> Alert | None:
        key = (kind.value, task, path)
        with self._lock:
            now = self.clock()
            last = self._last.get(key)
            if last is not None and now - last < self.cooldown_s:
                self._suppressed[key] += 1
                return None
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
            alert = Alert(kind.value, task, path, value, threshold, message, now, suppressed)
            self.counts[kind.value] += 1
            self.recent.append(alert)
        text = message + (f" ({suppressed} repeats suppressed)" if suppressed else "")
        logger.log(
            _LEVELS[kind],
            "alert %s: %s",
            kind.value,
            text,
            extra={
                "alert": kind.value,
                "task": task,
                "path": path,
                "value": value,
                "threshold": threshold,
                "suppressed": suppressed,
            },
        )
        try:
            metrics.count_alert(kind.value, task, self.registry)
        except Exception:  # a metrics problem must not hide the alert itself
            logger.debug("counting the alert failed", exc_info=True)
        for i, cb in enumerate(self.callbacks):
            try:
                cb(alert)
            except Exception:
                self._callback_failures[i] += 1
                # The first failure with its traceback; a broken hook must not flood logs.
                log = logger.exception if self._callback_failures[i] == 1 else logger.debug
                log(
                    "on_alert callback failed",
                    extra={
                        "callback": getattr(cb, "__qualname__", repr(cb)),
                        "failures": self._callback_failures[i],
                    },
                )
        return alert
