"""Watching a router: observers, Prometheus metrics, OpenTelemetry tracing and alerts,
one module each (prices and usage live in :mod:`adaptive_router.metering`).

Every module here sits below the router: it reads outcomes and never imports the router.
"""

from adaptive_router.observe.alerts import Alert, AlertKind, Alerts
from adaptive_router.observe.metrics import MetricsServer, PrometheusMetrics, serve_metrics
from adaptive_router.observe.observers import CallbackObserver, Observer, Observers
from adaptive_router.observe.tracing import Tracing

__all__ = [
    "Alert",
    "AlertKind",
    "Alerts",
    "CallbackObserver",
    "MetricsServer",
    "Observer",
    "Observers",
    "PrometheusMetrics",
    "Tracing",
    "serve_metrics",
]
