"""Watching a router: observers, Prometheus metrics, OpenTelemetry tracing, alerts and
costs (the :class:`~adaptive_router.observe.costs.Pricer`), one module each.

Every module here sits below the router: it reads outcomes and never imports the router.
"""

from adaptive_router.observe.alerts import Alert, AlertKind, Alerts
from adaptive_router.observe.costs import Pricer
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
    "Pricer",
    "PrometheusMetrics",
    "Tracing",
    "serve_metrics",
]
