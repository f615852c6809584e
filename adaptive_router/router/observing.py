"""The Router's observers: metrics, tracing and alerts by default, then the user's; and the
recorder's events they hear of."""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adaptive_router.observe import metrics as metrics_mod
from adaptive_router.observe import tracing as tracing_mod
from adaptive_router.observe.alerts import Alerts
from adaptive_router.observe.metrics import PrometheusMetrics
from adaptive_router.observe.observers import CallbackObserver, Observer, Observers
from adaptive_router.observe.tracing import Tracing
from adaptive_router.outcomes import Posterior
from adaptive_router.router.options import Observability
from adaptive_router.router.settings import PathSettings

__all__ = ["Events", "build_observers", "events", "follow_breakers"]


def build_observers(
    options: Observability, clock: Callable[[], float]
) -> tuple[Observers, PrometheusMetrics | None, Alerts]:
    """``(observers, the Prometheus observer or None, the alerts)`` (see ``Router``)."""
    defaults: list[Observer] = []
    prometheus: PrometheusMetrics | None = None
    if options.metrics and metrics_mod.AVAILABLE:
        prometheus = PrometheusMetrics(options.metrics_registry)
        defaults.append(prometheus)
    tracing = options.tracing
    if tracing is None:
        # Spans cost ~10 us a request; only pay for them when someone collects them.
        tracing = tracing_mod.AVAILABLE and tracing_mod.configured()
    if tracing and tracing_mod.AVAILABLE:
        defaults.append(Tracing())
    chosen = options.alerts
    if chosen is None:
        # The router's clock drives the alert windows (simulations, tests); the alert
        # counter goes to the router's metrics registry.
        registry = prometheus.registry if prometheus is not None else None
        chosen = Alerts(on_alert=options.alert_callbacks, clock=clock, registry=registry)
    defaults.append(chosen)
    users: list[Observer] = list(options.observers)
    if options.outcome_callbacks:
        users.append(CallbackObserver(options.outcome_callbacks))
    return Observers([*defaults, *users]), prometheus, chosen


@dataclass(frozen=True, slots=True)
class Events:
    """What the recorder and the log throttle tell the observers (None: nobody listens)."""

    dropped: Callable[[int, int], None] | None = None
    rejected: Callable[[int, int], None] | None = None
    refreshed: Callable[[], None] | None = None
    suppressed: Callable[[Hashable], None] | None = None


def events(
    observers: Observers, task: str, posteriors: Callable[[], Sequence[Posterior]]
) -> Events:
    """The observers' ears on the write buffer dropping outcomes, the store rejecting
    some, the log throttle holding a warning back and the cache being refreshed (with the
    posterior means): given to the recorder and the throttle when they are built."""
    if not observers:
        return Events()

    def dropped(count: int, total: int) -> None:
        observers.emit("outcomes_dropped", task, count, total)

    def rejected(count: int, total: int) -> None:
        observers.emit("outcomes_rejected", task, count, total)

    def refreshed() -> None:
        observers.emit("posteriors_changed", task, {p.path: p.mean for p in posteriors()})

    def suppressed(key: Hashable) -> None:
        line = str(key[0]) if isinstance(key, tuple) else str(key)
        observers.emit("log_lines_suppressed", task, line)

    return Events(dropped, rejected, refreshed, suppressed)


def follow_breakers(
    observers: Observers, task: str, settings: Mapping[str, PathSettings]
) -> list[Callable[[], None]]:
    """Tell ``observers`` when a path's breaker changes state; returns the callables that
    undo the subscriptions (a breaker can outlive a router)."""
    if not observers:
        return []

    def breaker_changed(name: str, _breaker: str, old: Any, new: Any) -> None:
        observers.emit(
            "breaker_changed", task, name, getattr(old, "value", old), getattr(new, "value", new)
        )

    # Bound to the path's name: a user's breaker may carry another name.
    return [
        st.breaker.on_change(functools.partial(breaker_changed, name))
        for name, st in settings.items()
        if st.breaker is not None
    ]
