"""Prometheus metrics: a scripted run scraped over HTTP, registries, the no-op fallback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import urllib.request
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from adaptive_router import (
    AllPathsFailed,
    MemoryStore,
    Observability,
    Outcome,
    Path,
    Persistence,
    Resilience,
    Router,
)
from adaptive_router.observe.metrics import PrometheusMetrics, serve_metrics
from adaptive_router.outcomes import Result, Usage
from adaptive_router.resilience import CircuitBreaker, RetryPolicy


class Script:
    """A path that plays back fixed steps: values are returned, exceptions raised."""

    def __init__(self, steps: Iterable[Any]) -> None:
        self.steps = deque(steps)

    def __call__(self) -> Any:
        step = self.steps.popleft()
        if isinstance(step, BaseException):
            raise step
        return step


def _price(inp: int, out: int) -> float:
    return float(calc_price(PriceUsage(input_tokens=inp, output_tokens=out), "gpt-4o").total_price)


def scripted_run(observers: Sequence[Any]) -> tuple[Router, Router]:
    """Six requests on task 'scripted' and two on task 'down' (see the expected values)."""
    main = Script(
        [
            Result("ok", Usage(1000, 500)),  # r1: success
            "bad",  # r2: rejected -> fallback
            TimeoutError("slow"),  # r3: a timeout, retried once, then success
            Result("ok", Usage(200, 100)),
            TimeoutError("slow"),  # r4: timeout twice -> attempt kind timeout -> fallback
            TimeoutError("slow"),
            "bad",  # r5: rejected -> fallback
            "bad",  # r6: rejected -> fallback rejected too -> AllPathsFailed
        ]
    )
    fb = Script(["fb", "fb", "fb", "bad"])
    retry = RetryPolicy(attempts=2, initial=1e-6, sleep=lambda _s: None)
    a = Router(
        [Path(main, name="main", model="gpt-4o", timeout=None, retry=retry)],
        lambda v: v != "bad",
        "scripted",
        store="memory://",
        fallback=Path(fb, name="fb", timeout=None, retry=None),
        resilience=Resilience(breaker=None),
        persistence=Persistence(durability="sync"),
        observability=Observability(observers=observers),
    )
    for _ in range(5):
        a.run()
    with pytest.raises(AllPathsFailed):
        a.run()

    def down() -> None:
        raise ConnectionError("refused")

    b = Router(
        [Path(down, name="down", timeout=None, retry=None, breaker=CircuitBreaker(1))],
        bool,
        "down",
        store="memory://",
        fallback=Path(lambda: "ok", name="fb2", timeout=None),
        persistence=Persistence(durability="sync"),
        observability=Observability(observers=observers),
    )
    b.run()  # down fails, its breaker opens, fb2 answers
    b.run()  # down is skipped (breaker open), fb2 answers
    return a, b


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_scripted_run_scraped_over_http() -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry)
    a, b = scripted_run([metrics])
    metrics.bind(a.task, lambda: a.buffered_outcomes, a.health())
    a.refresh()  # publishes the posterior means
    server = serve_metrics(0, addr="127.0.0.1", registry=registry)
    try:
        got = scrape(server.port)
    finally:
        server.close()
        a.close()
        b.close()

    def v(name: str, **labels: str) -> float | None:
        return got.get(("adaptive_router_" + name, frozenset(labels.items())))

    s = {"task": "scripted"}
    main, fb = {**s, "path": "main"}, {**s, "path": "fb"}
    assert v("requests_total", **s, success="true") == 5
    assert v("requests_total", **s, success="false") == 1
    assert v("attempts_total", **main) == 6  # r3's retry is inside one attempt
    assert v("attempts_total", **fb) == 4
    assert v("outcomes_total", **main, success="true", kind="none") == 2
    assert v("outcomes_total", **main, success="false", kind="rejected") == 3
    assert v("outcomes_total", **main, success="false", kind="timeout") == 1
    assert v("outcomes_total", **fb, success="true", kind="none") == 3
    assert v("outcomes_total", **fb, success="false", kind="rejected") == 1
    # Timeouts are their own counter: the retried timeout of r3 ended in a success, so only
    # r4's attempt counts; both retries count in retries_total.
    assert v("timeouts_total", **main) == 1
    assert v("timeouts_total", **fb) == 0
    assert v("retries_total", **main) == 2
    assert v("fallbacks_total", **s, from_path="main", to_path="fb") == 4
    assert v("tokens_total", **main, direction="input") == 1200
    assert v("tokens_total", **main, direction="output") == 600
    assert v("cost_usd_total", **main) == pytest.approx(_price(1000, 500) + _price(200, 100))
    assert v("unpriced_attempts_total", **main) == 4  # no usage: unknown, not $0
    assert v("unpriced_attempts_total", **fb) == 4
    assert v("latency_seconds_count", **main) == 6
    assert v("buffered_outcomes", **s) == 0
    # First attempts: Beta(1 + 2 successes, 1 + 4 failures); the fallback only ever ran
    # after "main" failed, so its first-attempt posterior is the prior's (its record,
    # Beta(1 + 3, 1 + 1), is after a failure).
    assert v("posterior_mean", **main) == pytest.approx(3 / 8)
    assert v("posterior_mean", **fb) == pytest.approx(1 / 2)

    d = {"task": "down", "path": "down"}
    assert v("breaker_state", **d) == 2  # open
    assert v("skipped_total", **d, kind="breaker_open") == 1
    assert v("outcomes_total", **d, success="false", kind="connection") == 1
    assert v("attempts_total", **d) == 1
    assert v("requests_total", task="down", success="true") == 2
    assert v("fallbacks_total", task="down", from_path="down", to_path="fb2") == 1
    assert v("timeouts_total", **d) == 0


def test_metrics_are_created_once_per_registry() -> None:
    reg1, reg2 = CollectorRegistry(), CollectorRegistry()
    observers = [PrometheusMetrics(reg1), PrometheusMetrics(reg1), PrometheusMetrics(reg2)]
    # The global registry too: several routers in one process must not collide.
    PrometheusMetrics()
    PrometheusMetrics(REGISTRY)
    for m in observers:
        with Router(
            [Path(lambda: 1, name="p", timeout=None)],
            bool,
            "shared",
            store="memory://",
            observability=Observability(observers=[m]),
        ) as r:
            r.run()
    assert reg1.get_sample_value(
        "adaptive_router_requests_total", {"task": "shared", "success": "true"}
    ) == (2)
    assert reg2.get_sample_value(
        "adaptive_router_requests_total", {"task": "shared", "success": "true"}
    ) == (1)


def test_dropped_and_buffered_outcomes() -> None:
    class BrokenStore(MemoryStore):
        down = False

        def write(self, outcomes: Sequence[Outcome], half_life: float | None) -> int:
            if self.down:
                raise ConnectionError("database unreachable")
            return super().write(outcomes, half_life)

    registry = CollectorRegistry()
    store = BrokenStore()
    with Router(
        [Path(lambda: 1, name="p", timeout=None)],
        bool,
        "outage",
        store=store,
        persistence=Persistence(max_buffer=5, flush_interval=1.0),
        observability=Observability(metrics_registry=registry),
    ) as r:
        store.down = True
        for _ in range(12):
            r.run()
        r.flush()
        labels = {"task": "outage"}
        assert registry.get_sample_value("adaptive_router_buffered_outcomes", labels) == 5
        assert (
            registry.get_sample_value("adaptive_router_dropped_outcomes_total", labels)
            == r.dropped_outcomes
            == 7
        )
        store.down = False


def test_serve_metrics_validates_the_port() -> None:
    with pytest.raises(ValueError, match="port"):
        serve_metrics(70000)


def test_without_prometheus_client_everything_is_a_no_op() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["prometheus_client"] = None  # makes `import prometheus_client` fail
        from adaptive_router import Observability, Path, Router
        from adaptive_router.observe.metrics import (
            AVAILABLE,
            PrometheusMetrics,
            count_alert,
            serve_metrics,
        )
        assert not AVAILABLE
        m = PrometheusMetrics()
        assert not m.enabled
        with Router([Path(lambda: 1, name="p", timeout=None)], bool, "t", store="memory://",
                    observability=Observability(observers=[m])) as r:
            assert r.metrics is None
            m.bind("t", lambda: 0, r.health())
            r.run()
        count_alert("call_cost", "t")
        try:
            serve_metrics(0)
        except RuntimeError as exc:
            assert "adaptive-router[metrics]" in str(exc)
        else:
            raise AssertionError("serve_metrics should say what to install")
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
