"""The Router's observers: metrics, tracing and alerts by default, then the user's."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adaptive_router.errors import ConfigurationError
from adaptive_router.log_throttle import ThrottledLog
from adaptive_router.observe import metrics as metrics_mod
from adaptive_router.observe import tracing as tracing_mod
from adaptive_router.observe.alerts import Alert, Alerts
from adaptive_router.observe.metrics import PrometheusMetrics
from adaptive_router.observe.observers import CallbackObserver, Observer, Observers
from adaptive_router.observe.tracing import Tracing
from adaptive_router.outcomes import Outcome, Posterior
from adaptive_router.router.recorder import Recorder
from adaptive_router.router.settings import PathSettings

__all__ = ["build_observers", "forward_events"]

OutcomeCallbacks = Callable[[Outcome], Any] | Sequence[Callable[[Outcome], Any]] | None
AlertCallbacks = Callable[[Alert], Any] | Sequence[Callable[[Alert], Any]] | None


def build_observers(
    metrics: bool,
    tracing: bool | None,
    alerts: Alerts | None,
    on_alert: AlertCallbacks,
    observers: Sequence[Observer],
    on_outcome: OutcomeCallbacks,
    clock: Callable[[], float],
) -> tuple[Observers, PrometheusMetrics | None, Alerts]:
    """``(observers, the Prometheus observer or None, the alerts)`` (see ``Router``)."""
    defaults: list[Observer] = []
    prometheus: PrometheusMetrics | None = None
    if metrics and metrics_mod.AVAILABLE:
        prometheus = PrometheusMetrics()
        defaults.append(prometheus)
    if tracing is None:
        # Spans cost ~10 us a request; only pay for them when someone collects them.
        tracing = tracing_mod.AVAILABLE and tracing_mod.configured()
    if tracing and tracing_mod.AVAILABLE:
        defaults.append(Tracing())
    # The router's clock drives the alert windows (simulations, tests).
    chosen = alerts if alerts is not None else Alerts(on_alert=on_alert, clock=clock)
    defaults.append(chosen)
    return Observers([*defaults, *_user_observers(observers, on_outcome)]), prometheus, chosen


def _user_observers(observers: Sequence[Observer], on_outcome: OutcomeCallbacks) -> list[Observer]:
    items = list(observers)
    for obs in items:
        if not isinstance(obs, Observer):
            raise ConfigurationError(
                f"observers must be Observer instances, got {type(obs).__name__}"
            )
    if on_outcome is not None:
        callbacks = [on_outcome] if callable(on_outcome) else list(on_outcome)
        for cb in callbacks:
            if not callable(cb):
                raise ConfigurationError(f"on_outcome must be callable(s), got {cb!r}")
        items.append(CallbackObserver(callbacks))
    return items


def forward_events(
    observers: Observers,
    task: str,
    settings: Mapping[str, PathSettings],
    recorder: Recorder,
    posteriors: Callable[[], Sequence[Posterior]],
    log: ThrottledLog | None = None,
) -> list[Callable[[], None]]:
    """Tell ``observers`` when a path's breaker changes state, when the write buffer
    drops outcomes or the store rejects some, when ``log`` holds a warning back, and when
    the cache is refreshed (with the posterior means). Returns the callables that undo
    the breaker subscriptions (a breaker can outlive a router)."""

    def breaker_changed(name: str, _breaker: str, old: Any, new: Any) -> None:
        observers.emit(
            "breaker_changed", task, name, getattr(old, "value", old), getattr(new, "value", new)
        )

    def dropped(count: int, total: int) -> None:
        observers.emit("outcomes_dropped", task, count, total)

    def rejected(count: int, total: int) -> None:
        observers.emit("outcomes_rejected", task, count, total)

    def refreshed() -> None:
        observers.emit("posteriors_changed", task, {p.path: p.mean for p in posteriors()})

    recorder.on_drop = dropped
    recorder.on_reject = rejected
    if log is not None:
        log.on_suppressed = lambda key: observers.emit(
            "log_lines_suppressed", task, str(key[0]) if isinstance(key, tuple) else str(key)
        )
    recorder.on_refresh = refreshed
    # Bound to the path's name: a user's breaker may carry another name.
    return [
        st.breaker.on_change(functools.partial(breaker_changed, name))
        for name, st in settings.items()
        if st.breaker is not None
    ]
