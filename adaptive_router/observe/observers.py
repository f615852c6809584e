"""Hooks around every request: the seam for metrics, alerts, tracing and user callbacks.

An :class:`Observer` receives the life of each request. The Router calls observers
synchronously in the request's thread, so each method must be cheap; a method that
raises is logged (once per observer and method) and never breaks the request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from adaptive_router.outcomes import Outcome

logger = logging.getLogger(__name__)


class Observer:
    """Base class with no-op methods: override what you need."""

    def request_started(self, task: str, request_id: str) -> None:
        """A ``run``/``arun``/``choose`` began."""

    def attempt_started(self, task: str, request_id: str, path: str, attempt: int) -> None:
        """A path is about to be called (not for skipped paths)."""

    def attempt_finished(self, outcome: Outcome) -> None:
        """An attempt ended (skipped ones too: ``outcome.skipped``)."""

    def request_finished(
        self, task: str, request_id: str, attempts: Sequence[Outcome], success: bool
    ) -> None:
        """The request returned a result (``success``) or raised ``AllPathsFailed``."""

    def breaker_changed(self, task: str, path: str, old: str, new: str) -> None:
        """A path's circuit breaker moved between ``closed``, ``open`` and ``half_open``."""

    def outcomes_dropped(self, task: str, count: int, total: int) -> None:
        """The write buffer overflowed during a store outage (``total`` so far)."""

    def outcomes_rejected(self, task: str, count: int, total: int) -> None:
        """The store rejected ``count`` outcomes for their values (``total`` so far); the
        rest of their batch was written. Called from the writer thread."""

    def log_lines_suppressed(self, task: str, line: str) -> None:
        """A repeated warning of kind ``line`` (``retrying``, ``failed``, ``fallback``...)
        was held back by the router's per-window log throttle."""

    def posteriors_changed(self, task: str, means: dict[str, float]) -> None:
        """Posterior means after the cache was refreshed from the store (about once a second)."""


class CallbackObserver(Observer):
    """Feeds each recorded outcome to plain callables (``Router(on_outcome=...)``)."""

    def __init__(self, callbacks: Sequence[Callable[[Outcome], Any]]) -> None:
        self.callbacks = list(callbacks)
        self.failures = [0] * len(self.callbacks)

    def attempt_finished(self, outcome: Outcome) -> None:
        if outcome.skipped:
            return
        for i, cb in enumerate(self.callbacks):
            try:
                cb(outcome)
            except Exception:  # a user's hook must never break a request
                self.failures[i] += 1
                # The first failure with its traceback; a broken hook must not flood logs.
                log = logger.exception if self.failures[i] == 1 else logger.debug
                log(
                    "on_outcome callback failed",
                    extra={
                        "callback": getattr(cb, "__qualname__", repr(cb)),
                        "failures": self.failures[i],
                    },
                )


class Observers:
    """Fans one call out to many observers, isolating each one's failures.

    Only observers that override a hook are called for it: the Router emits four events
    per request, and most observers (metrics, callbacks) override one or two of them, so
    skipping the inherited no-ops keeps them off the hot path.
    """

    def __init__(self, observers: Sequence[Observer]) -> None:
        self.items = list(observers)
        self._warned: set[tuple[int, str]] = set()
        self._hooks: dict[str, list[tuple[Any, Callable[..., Any]]]] = {}

    def __bool__(self) -> bool:
        return bool(self.items)

    def _bind(self, method: str) -> list[tuple[Any, Callable[..., Any]]]:
        noop = getattr(Observer, method, None)
        hooks = [
            (obs, getattr(obs, method))
            for obs in self.items
            if noop is None
            or getattr(type(obs), method, None) is not noop
            or method in getattr(obs, "__dict__", ())
        ]
        self._hooks[method] = hooks
        return hooks

    def emit(self, method: str, *args: Any) -> None:
        hooks = self._hooks.get(method)
        if hooks is None:
            hooks = self._bind(method)
        for obs, hook in hooks:
            try:
                hook(*args)
            except Exception:
                key = (id(obs), method)
                if key not in self._warned:
                    self._warned.add(key)
                    logger.exception(
                        "observer %s failed in %s; the request goes on (logged once)",
                        type(obs).__name__,
                        method,
                        extra={"observer": type(obs).__name__, "hook": method},
                    )
