"""OpenTelemetry spans per request and attempt (skipped cleanly without the SDK)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from adaptive_router import AllPathsFailed, Observability, Path, Router
from adaptive_router.observe.tracing import ATTEMPT_SPAN, REQUEST_SPAN, Tracing
from adaptive_router.outcomes import Result, Usage
from adaptive_router.resilience import CircuitBreaker, RetryPolicy

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
from opentelemetry import trace  # noqa: E402 - after the skip checks
from opentelemetry.trace import StatusCode  # noqa: E402

NS = "adaptive_router."


@pytest.fixture
def spans() -> Iterator[tuple[Any, Any]]:
    """A private TracerProvider recording into memory (the global one is left alone)."""
    exporter = in_memory.InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_request_and_attempt_spans_with_attributes(spans: tuple[Any, Any]) -> None:
    provider, exporter = spans
    calls = iter([TimeoutError("slow"), Result("bad", Usage(1000, 500, cost_usd=0.02))])

    def main() -> Any:
        step = next(calls)
        if isinstance(step, BaseException):
            raise step
        return step

    retry = RetryPolicy(attempts=2, initial=1e-6, sleep=lambda _s: None)
    with Router(
        [Path(main, name="main", timeout=None, retry=retry)],
        lambda v: v != "bad",
        "traced",
        store="memory://",
        fallback=Path(lambda: Result("ok", Usage(10, 5, cost_usd=0.001)), name="fb", timeout=None),
        observability=Observability(observers=[Tracing(provider)]),
    ) as r:
        assert r.run() == "ok"
    finished = exporter.get_finished_spans()
    (req,) = [s for s in finished if s.name == REQUEST_SPAN]
    attempts = sorted(
        (s for s in finished if s.name == ATTEMPT_SPAN), key=lambda s: s.attributes[NS + "attempt"]
    )
    assert [a.attributes[NS + "path"] for a in attempts] == ["main", "fb"]
    for a in attempts:
        assert a.parent is not None and a.parent.span_id == req.context.span_id
        assert a.context.trace_id == req.context.trace_id
        assert a.attributes[NS + "task"] == "traced"
    main_span, fb_span = attempts
    assert main_span.attributes[NS + "kind"] == "rejected"
    assert main_span.attributes[NS + "retries"] == 1
    assert main_span.attributes[NS + "input_tokens"] == 1000
    assert main_span.attributes["gen_ai.usage.output_tokens"] == 500
    assert main_span.attributes[NS + "cost_usd"] == 0.02
    assert main_span.status.status_code == StatusCode.ERROR
    assert fb_span.attributes[NS + "success"] is True
    assert NS + "kind" not in fb_span.attributes
    assert fb_span.status.status_code != StatusCode.ERROR
    assert req.attributes[NS + "task"] == "traced"
    assert req.attributes[NS + "success"] is True
    assert req.attributes[NS + "attempts"] == 2
    assert req.attributes[NS + "retries"] == 1
    assert req.attributes[NS + "path"] == "fb"
    assert req.attributes[NS + "cost_usd"] == pytest.approx(0.021)


def test_failed_request_and_skipped_path(spans: tuple[Any, Any]) -> None:
    provider, exporter = spans

    def down() -> None:
        raise ConnectionError("refused")

    with Router(
        [Path(down, name="down", timeout=None, retry=None, breaker=CircuitBreaker(1))],
        bool,
        "fails",
        store="memory://",
        observability=Observability(observers=[Tracing(provider)]),
    ) as r:
        for _ in range(2):
            with pytest.raises(AllPathsFailed):
                r.run()
    reqs = [s for s in exporter.get_finished_spans() if s.name == REQUEST_SPAN]
    assert [s.status.status_code for s in reqs] == [StatusCode.ERROR] * 2
    assert reqs[0].attributes[NS + "attempts"] == 1
    # The second request skipped the open breaker: an event, no attempt span.
    assert reqs[1].attributes[NS + "attempts"] == 0
    assert reqs[1].attributes[NS + "skipped"] == 1
    (event,) = reqs[1].events
    assert event.name == "adaptive_router.skipped"
    assert event.attributes[NS + "kind"] == "breaker_open"
    assert len([s for s in exporter.get_finished_spans() if s.name == ATTEMPT_SPAN]) == 1


def test_choose_and_report(spans: tuple[Any, Any]) -> None:
    provider, exporter = spans
    with Router(
        [Path(lambda: 1, name="a", timeout=None)],
        bool,
        "two-phase",
        store="memory://",
        observability=Observability(observers=[Tracing(provider)]),
    ) as r:
        d = r.choose()
        assert exporter.get_finished_spans() == ()  # the request is still open
        r.report(d.request_id, success=True, input_tokens=3, output_tokens=4, cost_usd=0.5)
    (attempt,) = [s for s in exporter.get_finished_spans() if s.name == ATTEMPT_SPAN]
    (req,) = [s for s in exporter.get_finished_spans() if s.name == REQUEST_SPAN]
    assert attempt.parent is not None and attempt.parent.span_id == req.context.span_id
    assert attempt.attributes[NS + "cost_usd"] == 0.5
    assert req.attributes[NS + "success"] is True


def test_async_path_spans_nest_under_the_attempt(spans: tuple[Any, Any]) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("sdk-under-test")

    async def call() -> str:
        # What an instrumented SDK does inside the path: a span in the current context.
        with tracer.start_as_current_span("http.request"):
            await asyncio.sleep(0)
        return "ok"

    async def main() -> None:
        with Router(
            [Path(call, name="async", timeout=5.0)],
            bool,
            "async",
            store="memory://",
            observability=Observability(observers=[Tracing(provider)]),
        ) as r:
            assert await r.arun() == "ok"

    asyncio.run(main())
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    inner, attempt = by_name["http.request"], by_name[ATTEMPT_SPAN]
    assert inner.parent is not None and inner.parent.span_id == attempt.context.span_id
    # The attempt's context is detached afterwards: nothing stays current.
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_unfinished_requests_are_bounded(spans: tuple[Any, Any]) -> None:
    provider, exporter = spans
    tracing = Tracing(provider, max_open=3)
    for i in range(5):
        tracing.request_started("t", f"r{i}")
    ended = exporter.get_finished_spans()
    assert len(ended) == 2
    assert all(s.attributes[NS + "abandoned"] is True for s in ended)
    assert len(tracing._requests) == 3


def test_without_opentelemetry_tracing_is_a_no_op() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # makes `import opentelemetry` fail
        from adaptive_router import Observability, Path, Router
        from adaptive_router.observe.tracing import AVAILABLE, Tracing
        assert not AVAILABLE
        t = Tracing()
        assert not t.enabled
        with Router([Path(lambda: 1, name="p", timeout=None)], bool, "t", store="memory://",
                    observability=Observability(observers=[t])) as r:
            r.run()
            r.report(r.choose().request_id, success=True)
        # Asked for by name, it says which extra is missing (it was silently off).
        try:
            Observability(tracing=True)
        except ImportError as exc:
            assert "needs the 'tracing' extra" in str(exc), exc
        else:
            raise AssertionError("tracing=True without OpenTelemetry was accepted")
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
