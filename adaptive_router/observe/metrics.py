"""Prometheus metrics for routers, as an :class:`~adaptive_router.observe.observers.Observer`.

``prometheus-client`` is an optional extra (``pip install 'adaptive-router[metrics]'``).
Without it :class:`PrometheusMetrics` is a silent no-op and :func:`serve_metrics` raises
with the install hint, so a router never fails for want of a metrics library.

Every metric is named ``adaptive_router_*`` and created once per registry, however many
routers (and observers) a process holds: they all feed the same series, told apart by the
``task`` and ``path`` labels. The registry is adaptive-router's own
(:func:`default_registry`) unless one is given: prometheus-client's global ``REGISTRY``
stays the application's, so a metric of its own named like one of ours never clashes.

=====================================================  ==========  =========================
name                                                   type        labels
=====================================================  ==========  =========================
``adaptive_router_requests_total``                     counter     task, success
``adaptive_router_attempts_total``                     counter     task, path
``adaptive_router_outcomes_total``                     counter     task, path, success, kind
``adaptive_router_skipped_total``                      counter     task, path, kind
``adaptive_router_retries_total``                      counter     task, path
``adaptive_router_fallbacks_total``                    counter     task, from_path, to_path
``adaptive_router_timeouts_total``                     counter     task, path
``adaptive_router_tokens_total``                       counter     task, path, direction
``adaptive_router_cost_usd_total``                     counter     task, path
``adaptive_router_unpriced_attempts_total``            counter     task, path
``adaptive_router_latency_seconds``                    histogram   task, path
``adaptive_router_breaker_state``                      gauge       task, path
``adaptive_router_posterior_mean``                     gauge       task, path
``adaptive_router_buffered_outcomes``                  gauge       task
``adaptive_router_dropped_outcomes_total``             counter     task
``adaptive_router_rejected_outcomes_total``            counter     task
``adaptive_router_suppressed_log_lines_total``         counter     task, line
``adaptive_router_alerts_total``                       counter     task, kind
=====================================================  ==========  =========================

``kind`` is the error kind, ``none`` for a success. ``breaker_state`` is 0 closed,
1 half-open, 2 open. A fallback is an attempt made because the previous path of the same
request failed (``from_path`` -> ``to_path``); skipped paths (breaker open, rate limit
exhausted) are counted in ``skipped_total``, not as attempts. An attempt without a known
cost adds to ``unpriced_attempts_total``, never $0 to ``cost_usd_total``.
``rejected_outcomes_total`` counts outcomes the store refused for their values (logged
with the field); ``suppressed_log_lines_total`` the warnings the router's per-window log
throttle held back, by ``line`` (``retrying``, ``giving_up``, ``failed``, ``fallback``,
``usage``, ``rejected``, ``judge``): each logged line plus these adds up to every event.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from adaptive_router._imports import install_hint
from adaptive_router.observe.observers import Observer
from adaptive_router.outcomes import ErrorKind, Outcome

if TYPE_CHECKING:
    import prometheus_client as prom

logger = logging.getLogger(__name__)

__all__ = [
    "AVAILABLE",
    "BREAKER_STATES",
    "LATENCY_BUCKETS",
    "PREFIX",
    "MetricsServer",
    "PrometheusMetrics",
    "count_alert",
    "default_registry",
    "serve_metrics",
]

#: True when prometheus-client is installed (found, not imported: see :func:`_load`).
AVAILABLE = find_spec("prometheus_client") is not None
_loaded = False


def _load() -> bool:
    """Import prometheus-client when metrics are first used (a router with metrics on, a
    server), not with the package; False when it is not installed."""
    global prom, _loaded
    if not _loaded:
        try:
            import prometheus_client as prom
        except ImportError:  # the no-op path, tested in a subprocess
            return False
        _loaded = True
    return True


PREFIX = "adaptive_router_"
#: Gauge values of ``adaptive_router_breaker_state``.
BREAKER_STATES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
#: Latency buckets (seconds): local paths take milliseconds, model calls up to minutes.
LATENCY_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
)
_TIMEOUT = ErrorKind.TIMEOUT.value


def _metric(registry: Any, cls: Any, name: str, doc: str, labels: Sequence[str], **kw: Any) -> Any:
    """Create a metric in ``registry``, or reuse the one already registered under ``name``.

    Reuse covers a registry that got our metrics some other way (a module reloaded in a
    notebook): the registry refuses a second registration, and raising there would break
    the router that asked.
    """
    try:
        return cls(PREFIX + name, doc, list(labels), registry=registry, **kw)
    except ValueError:
        names = getattr(registry, "_names_to_collectors", {})
        for candidate in (PREFIX + name, PREFIX + name + "_total"):
            if candidate in names:
                return names[candidate]
        raise


class _Families:
    """The metric families of one registry (created once, shared by every observer)."""

    def __init__(self, registry: Any) -> None:
        c, g, h = prom.Counter, prom.Gauge, prom.Histogram
        tp = ("task", "path")
        self.requests = _metric(
            registry, c, "requests", "Requests routed, by final result.", ("task", "success")
        )
        self.attempts = _metric(registry, c, "attempts", "Path calls made (not skipped).", tp)
        self.outcomes = _metric(
            registry,
            c,
            "outcomes",
            "Attempt outcomes by result and error kind ('none' for a success).",
            ("task", "path", "success", "kind"),
        )
        self.skipped = _metric(
            registry,
            c,
            "skipped",
            "Paths passed over without a call (breaker open, rate limit exhausted).",
            ("task", "path", "kind"),
        )
        self.retries = _metric(registry, c, "retries", "Retries inside attempts.", tp)
        self.fallbacks = _metric(
            registry,
            c,
            "fallbacks",
            "Attempts made because the previous path of the request failed.",
            ("task", "from_path", "to_path"),
        )
        self.timeouts = _metric(registry, c, "timeouts", "Attempts that timed out.", tp)
        self.tokens = _metric(
            registry,
            c,
            "tokens",
            "Tokens used, by direction (input or output).",
            ("task", "path", "direction"),
        )
        self.cost = _metric(registry, c, "cost_usd", "Known spend in US dollars.", tp)
        self.unpriced = _metric(
            registry, c, "unpriced_attempts", "Attempts whose cost is unknown (not $0).", tp
        )
        self.latency = _metric(
            registry,
            h,
            "latency_seconds",
            "Attempt latency, retries included.",
            tp,
            buckets=LATENCY_BUCKETS,
        )
        self.breaker = _metric(
            registry, g, "breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.", tp
        )
        self.posterior = _metric(
            registry,
            g,
            "posterior_mean",
            "Posterior mean success probability of first attempts (the path's success rate).",
            tp,
        )
        self.buffered = _metric(
            registry, g, "buffered_outcomes", "Outcomes recorded, not yet stored.", ("task",)
        )
        self.dropped = _metric(
            registry,
            c,
            "dropped_outcomes",
            "Outcomes lost to a full write buffer during a store outage.",
            ("task",),
        )
        self.rejected = _metric(
            registry,
            c,
            "rejected_outcomes",
            "Outcomes the store rejected for their values (the rest was written).",
            ("task",),
        )
        self.suppressed = _metric(
            registry,
            c,
            "suppressed_log_lines",
            "Repeated warnings held back by the per-window log throttle.",
            ("task", "line"),
        )
        self.alerts = _metric(registry, c, "alerts", "Alerts fired.", ("task", "kind"))
        # The write buffers that feed buffered_outcomes, per task (each router removes
        # its own when it closes).
        self.buffer_sources: dict[str, set[Any]] = {}


_FAMILIES: weakref.WeakKeyDictionary[Any, _Families] = weakref.WeakKeyDictionary()
_FAMILIES_LOCK = threading.Lock()


def _families(registry: Any) -> _Families:
    with _FAMILIES_LOCK:
        fams = _FAMILIES.get(registry)
        if fams is None:
            fams = _FAMILIES[registry] = _Families(registry)
        return fams


_DEFAULT: Any = None


def default_registry() -> Any:
    """adaptive-router's own ``CollectorRegistry``, where routers put their metrics unless
    given another (``Observability(metrics_registry=...)``): one per process, shared by
    every router (told apart by the ``task`` label), never prometheus-client's global
    ``REGISTRY``, so the application's own metrics cannot clash with ours whatever their
    names. :func:`serve_metrics` and ``router.serve_metrics()`` serve it; to expose it
    through an endpoint of your own, ``prometheus_client.generate_latest(registry)``.
    Raises ``RuntimeError`` without prometheus-client."""
    global _DEFAULT
    if not _load():
        raise RuntimeError(install_hint("metrics", "default_registry"))
    with _FAMILIES_LOCK:
        if _DEFAULT is None:
            _DEFAULT = prom.CollectorRegistry(auto_describe=True)
        return _DEFAULT


def count_alert(kind: str, task: str, registry: Any = None) -> None:
    """Add one to ``adaptive_router_alerts_total`` in ``registry`` (default:
    :func:`default_registry`); a no-op without prometheus-client."""
    if not _load():
        return
    _families(registry if registry is not None else default_registry()).alerts.labels(
        task=task, kind=kind
    ).inc()


class _PathSeries:
    """A (task, path)'s label children, looked up once: ``labels()`` costs a dict lookup
    under a lock per call, and an attempt touches up to eight series."""

    __slots__ = (
        "attempts",
        "cost",
        "fams",
        "input",
        "latency",
        "outcomes",
        "output",
        "path",
        "retries",
        "task",
        "timeouts",
        "unpriced",
    )

    def __init__(self, fams: _Families, task: str, path: str) -> None:
        self.fams, self.task, self.path = fams, task, path
        self.attempts = fams.attempts.labels(task, path)
        self.retries = fams.retries.labels(task, path)
        self.timeouts = fams.timeouts.labels(task, path)
        self.input = fams.tokens.labels(task, path, "input")
        self.output = fams.tokens.labels(task, path, "output")
        self.cost = fams.cost.labels(task, path)
        self.unpriced = fams.unpriced.labels(task, path)
        self.latency = fams.latency.labels(task, path)
        self.outcomes: dict[tuple[bool, str], Any] = {}

    def outcome(self, success: bool, kind: str) -> Any:
        child = self.outcomes.get((success, kind))
        if child is None:
            label = "true" if success else "false"
            child = self.outcomes[(success, kind)] = self.fams.outcomes.labels(
                self.task, self.path, label, kind
            )
        return child


class PrometheusMetrics(Observer):
    """Feeds every router event to the ``adaptive_router_*`` metrics of ``registry``.

    ``registry`` defaults to :func:`default_registry` (not prometheus-client's global
    ``REGISTRY``). Any number of these observers (one per router, say) may share a
    registry. Call :meth:`bind` to export a router's write-buffer size and its breakers'
    initial states as well.
    """

    def __init__(self, registry: Any = None) -> None:
        self.enabled = _load()
        self.registry: Any = None
        self._fams: _Families | None = None
        if self.enabled:
            self.registry = registry if registry is not None else default_registry()
            self._fams = _families(self.registry)
        self._series: dict[tuple[str, str], _PathSeries] = {}
        # The request counter's children by (task, success): labels() costs ~1 µs a call.
        self._requests: dict[tuple[str, bool], Any] = {}

    def _path(self, fams: _Families, task: str, path: str) -> _PathSeries:
        s = self._series.get((task, path))
        if s is None:
            # Racing threads may both build one; both bind the same underlying children.
            s = self._series[(task, path)] = _PathSeries(fams, task, path)
        return s

    def attempt_finished(self, outcome: Outcome) -> None:
        fams = self._fams
        if fams is None:
            return
        o = outcome
        if o.skipped:
            fams.skipped.labels(o.task, o.path, o.kind or "none").inc()
            return
        s = self._path(fams, o.task, o.path)
        s.attempts.inc()
        s.outcome(o.success, o.kind or "none").inc()
        if o.retries:
            s.retries.inc(o.retries)
        if o.kind == _TIMEOUT:
            s.timeouts.inc()
        if o.input_tokens:
            s.input.inc(o.input_tokens)
        if o.output_tokens:
            s.output.inc(o.output_tokens)
        if o.cost_usd is None:
            s.unpriced.inc()
        else:
            s.cost.inc(o.cost_usd)
        if o.latency_ms is not None:
            s.latency.observe(o.latency_ms / 1000.0)

    def request_finished(
        self, task: str, request_id: str, attempts: Sequence[Outcome], success: bool
    ) -> None:
        fams = self._fams
        if fams is None:
            return
        child = self._requests.get((task, success))
        if child is None:
            child = self._requests[(task, success)] = fams.requests.labels(
                task, "true" if success else "false"
            )
        child.inc()
        previous: str | None = None
        for a in attempts:
            if a.skipped:
                continue
            if previous is not None:
                fams.fallbacks.labels(task, previous, a.path).inc()
            previous = a.path

    def breaker_changed(self, task: str, path: str, old: str, new: str) -> None:
        if self._fams is not None and new in BREAKER_STATES:
            self._fams.breaker.labels(task, path).set(BREAKER_STATES[new])

    def outcomes_dropped(self, task: str, count: int, total: int) -> None:
        if self._fams is not None and count > 0:
            self._fams.dropped.labels(task).inc(count)

    def outcomes_rejected(self, task: str, count: int, total: int) -> None:
        if self._fams is not None and count > 0:
            self._fams.rejected.labels(task).inc(count)

    def log_lines_suppressed(self, task: str, line: str) -> None:
        if self._fams is not None:
            self._fams.suppressed.labels(task, line).inc()

    def posteriors_changed(self, task: str, means: dict[str, float]) -> None:
        if self._fams is None:
            return
        for path, mean in means.items():
            self._fams.posterior.labels(task, path).set(mean)

    def bind(
        self, task: str, buffered: Callable[[], int], breakers: Mapping[str, str]
    ) -> Callable[[], None]:
        """Export ``buffered()`` (a router's unwritten outcomes, read at scrape time) in
        ``adaptive_router_buffered_outcomes{task}`` — the routers of one task add up — and
        the ``breakers``' states (``{path: state}``). Returns the function that stops
        reading ``buffered`` (a closed router's buffer is empty: it adds nothing)."""
        fams = self._fams
        if fams is None:
            return _nothing
        source = _Source(buffered)
        with _FAMILIES_LOCK:
            sources = fams.buffer_sources.get(task)
            if sources is None:
                sources = fams.buffer_sources[task] = set()

                def total(sources: set[_Source] = sources) -> float:
                    return float(sum(s.read() for s in list(sources)))

                fams.buffered.labels(task).set_function(total)
            sources.add(source)
        for path, state in breakers.items():
            if state in BREAKER_STATES:
                fams.breaker.labels(task, path).set(BREAKER_STATES[state])

        def unbind() -> None:
            with _FAMILIES_LOCK:
                sources.discard(source)

        return unbind


class _Source:
    """One router's buffer size, as read by the scrape."""

    __slots__ = ("read",)

    def __init__(self, read: Callable[[], int]) -> None:
        self.read = read


def _nothing() -> None:
    """Nothing to undo."""


@dataclass
class MetricsServer:
    """A running ``/metrics`` HTTP endpoint; :meth:`close` stops it."""

    server: Any
    thread: threading.Thread
    closed: bool = False

    @property
    def port(self) -> int:
        """The port bound (useful after asking for port 0)."""
        return int(self.server.server_port)

    def close(self) -> None:
        """Stop serving and release the port (again: nothing)."""
        if self.closed:
            return
        self.closed = True
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_metrics(port: int, addr: str = "0.0.0.0", registry: Any = None) -> MetricsServer:
    """Serve ``registry`` (default: :func:`default_registry`) at
    ``http://addr:port/metrics`` from a daemon thread. ``port=0`` picks a free port (see
    :attr:`MetricsServer.port`)."""
    if not _load():
        raise RuntimeError(install_hint("metrics", "serve_metrics"))
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in 0..65535, got {port!r}")
    result = prom.start_http_server(
        port, addr=addr, registry=registry if registry is not None else default_registry()
    )
    if not isinstance(result, tuple):  # pragma: no cover - prometheus-client < 0.17
        raise RuntimeError("serve_metrics needs prometheus-client >= 0.17 (it returns the server)")
    server, thread = result
    logger.info("serving Prometheus metrics", extra={"addr": addr, "port": server.server_port})
    return MetricsServer(server, thread)
