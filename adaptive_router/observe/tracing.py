"""OpenTelemetry spans for requests and attempts, as an Observer.

With ``opentelemetry-api`` installed, every request becomes an
``adaptive_router.request`` span and every path call an ``adaptive_router.attempt`` span
under it, with the task, path, attempt number, error kind, tokens, cost and retries as
attributes. Without it :class:`Tracing` does nothing. Spans go wherever the application's
``TracerProvider`` sends them (the API alone records nothing).

While an attempt runs, its span is the current span, so spans an instrumented SDK creates
inside an async path nest under it (sync paths that run in a worker thread for their
timeout do not inherit the context: threads do not copy it).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from adaptive_router import forks
from adaptive_router.observe.observers import Observer
from adaptive_router.outcomes import Outcome
from adaptive_router.version import __version__

if TYPE_CHECKING:
    from opentelemetry import context as otel_context
    from opentelemetry import trace

logger = logging.getLogger(__name__)

__all__ = ["ATTEMPT_SPAN", "AVAILABLE", "REQUEST_SPAN", "Tracing", "configured"]

#: True when opentelemetry-api is installed (found, not imported: see :func:`_load`).
AVAILABLE = find_spec("opentelemetry") is not None
REQUEST_SPAN = "adaptive_router.request"
_loaded = False


def _load() -> bool:
    """Import the OpenTelemetry API when tracing is first used, not with the package;
    False when it is not installed."""
    global trace, otel_context, _loaded
    if not _loaded:
        try:
            from opentelemetry import context as otel_context
            from opentelemetry import trace
        except ImportError:  # the no-op path, tested in a subprocess
            return False
        _loaded = True
    return True


def configured() -> bool:
    """True when the application has installed a real TracerProvider (the API alone
    only hands out no-op tracers, whose spans would cost time and record nothing)."""
    if "opentelemetry.trace" not in sys.modules and not os.environ.get(
        "OTEL_PYTHON_TRACER_PROVIDER"
    ):
        # Installing a provider takes importing the API or naming one for it to load:
        # nobody did, so the API is not imported just to find that out.
        return False
    if not _load():
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


ATTEMPT_SPAN = "adaptive_router.attempt"
_NS = "adaptive_router."


def _outcome_attributes(o: Outcome) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        _NS + "path": o.path,
        _NS + "attempt": o.attempt,
        _NS + "success": o.success,
        _NS + "retries": o.retries,
    }
    if o.kind is not None:
        attrs[_NS + "kind"] = o.kind
    if o.latency_ms is not None:
        attrs[_NS + "latency_ms"] = o.latency_ms
    if o.input_tokens is not None:
        attrs[_NS + "input_tokens"] = o.input_tokens
        # The OpenTelemetry GenAI semantic conventions' names, which backends chart.
        attrs["gen_ai.usage.input_tokens"] = o.input_tokens
    if o.output_tokens is not None:
        attrs[_NS + "output_tokens"] = o.output_tokens
        attrs["gen_ai.usage.output_tokens"] = o.output_tokens
    if o.cost_usd is not None:
        attrs[_NS + "cost_usd"] = o.cost_usd
    # Newer Outcome fields, read defensively so traces work across versions.
    score = getattr(o, "score", None)
    if score is not None:
        attrs[_NS + "score"] = score
    context = getattr(o, "context", "")
    if context:
        attrs[_NS + "context"] = context
    return attrs


class Tracing(Observer):
    """Creates a span per request and per attempt (a no-op without opentelemetry-api).

    ``tracer_provider`` defaults to the global one. Spans of requests that never finish
    in this process (a ``choose`` reported elsewhere) are ended after ``max_open`` newer
    requests, marked ``adaptive_router.abandoned``, so memory stays bounded.
    """

    def __init__(self, tracer_provider: Any = None, *, max_open: int = 10_000) -> None:
        if isinstance(max_open, bool) or not isinstance(max_open, int) or max_open < 1:
            raise ValueError(f"max_open must be an int >= 1, got {max_open!r}")
        self.enabled = _load()
        self.max_open = max_open
        self._tracer: Any = None
        if self.enabled:
            self._tracer = trace.get_tracer(
                "adaptive_router", __version__, tracer_provider=tracer_provider
            )
        self._lock = threading.Lock()
        self._requests: OrderedDict[str, Any] = OrderedDict()
        self._attempts: dict[tuple[str, int], tuple[Any, Any]] = {}
        forks.follow(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # a parent thread may have held it at the fork

    def request_started(self, task: str, request_id: str) -> None:
        if self._tracer is None:
            return
        span = self._tracer.start_span(
            REQUEST_SPAN,
            attributes={_NS + "task": task, _NS + "request_id": request_id},
        )
        evicted: list[Any] = []
        with self._lock:
            self._requests[request_id] = span
            while len(self._requests) > self.max_open:
                evicted.append(self._requests.popitem(last=False)[1])
        for old in evicted:
            old.set_attribute(_NS + "abandoned", True)
            old.end()

    def attempt_started(self, task: str, request_id: str, path: str, attempt: int) -> None:
        if self._tracer is None:
            return
        with self._lock:
            parent = self._requests.get(request_id)
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        span = self._tracer.start_span(
            ATTEMPT_SPAN,
            context=ctx,
            attributes={_NS + "task": task, _NS + "path": path, _NS + "attempt": attempt},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        with self._lock:
            self._attempts[(request_id, attempt)] = (span, token)

    def attempt_finished(self, outcome: Outcome) -> None:
        if self._tracer is None:
            return
        o = outcome
        with self._lock:
            parent = self._requests.get(o.request_id)
            entry = None if o.skipped else self._attempts.pop((o.request_id, o.attempt), None)
        if o.skipped:
            if parent is not None:
                parent.add_event(
                    "adaptive_router.skipped", {_NS + "path": o.path, _NS + "kind": o.kind or ""}
                )
            return
        if entry is None:
            # A report() of a choose(): no attempt_started came; the outcome completes the
            # request, so the attempt span is created and ended here, then the request's.
            self._report(o, parent)
            return
        span, token = entry
        try:
            otel_context.detach(token)
        except Exception:  # a context detached elsewhere must not break the request
            logger.debug("could not detach the attempt's trace context", exc_info=True)
        self._end(span, o)

    def _end(self, span: Any, o: Outcome) -> None:
        span.set_attributes(_outcome_attributes(o))
        if not o.success:
            span.set_status(trace.Status(trace.StatusCode.ERROR, o.kind or "failed"))
        span.end()

    def _report(self, o: Outcome, parent: Any) -> None:
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        span = self._tracer.start_span(
            ATTEMPT_SPAN, context=ctx, attributes={_NS + "task": o.task, _NS + "reported": True}
        )
        self._end(span, o)
        if parent is not None:
            with self._lock:
                self._requests.pop(o.request_id, None)
            self._finish_request(parent, [o], o.success)

    def request_finished(
        self, task: str, request_id: str, attempts: Sequence[Outcome], success: bool
    ) -> None:
        if self._tracer is None:
            return
        with self._lock:
            span = self._requests.pop(request_id, None)
        if span is not None:
            self._finish_request(span, attempts, success)

    def _finish_request(self, span: Any, attempts: Sequence[Outcome], success: bool) -> None:
        tried = [a for a in attempts if not a.skipped]
        costs = [a.cost_usd for a in tried if a.cost_usd is not None]
        attrs: dict[str, Any] = {
            _NS + "success": success,
            _NS + "attempts": len(tried),
            _NS + "skipped": len(attempts) - len(tried),
            _NS + "retries": sum(a.retries for a in tried),
        }
        if tried:
            attrs[_NS + "path"] = tried[-1].path
        if costs:
            attrs[_NS + "cost_usd"] = sum(costs)
        span.set_attributes(attrs)
        if not success:
            span.set_status(trace.Status(trace.StatusCode.ERROR, "all paths failed"))
        span.end()
