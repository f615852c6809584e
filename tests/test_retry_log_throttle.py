"""Retry warnings are throttled like the path-failed and fallback lines: the first per
path, kind and window, then a count; the counts held back are in the metrics."""

from __future__ import annotations

import logging
import random
import uuid

import prometheus_client
import pytest
from conftest import StepClock

from adaptive_router import Outcome, Path, Router
from adaptive_router.resilience import RetryPolicy

RETRY_LOGGER = "adaptive_router.resilience.retry"


class ServerError(Exception):
    status_code = 503


def sample(name: str, task: str, **labels: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(
        f"adaptive_router_{name}", {"task": task, **labels}
    )
    return 0.0 if value is None else value


def flaky(name: str, rate: float, rng: random.Random) -> Path:
    def call() -> str:
        if rng.random() < rate:
            raise ServerError(f"{name}: 503 Service Unavailable")
        return name

    # No real waits: the test is about log lines.
    policy = RetryPolicy(attempts=3, budget_s=None, max_wait=0.002, rng=1, sleep=lambda _s: None)
    return Path(call, name=name, retry=policy)


def test_800_requests_at_server_errors_log_a_bounded_number_of_retry_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = f"retry-lines-{uuid.uuid4().hex[:8]}"
    rng = random.Random(11)
    attempts: list[Outcome] = []
    caplog.set_level(logging.WARNING, logger="adaptive_router")
    router = Router(
        [flaky("a", 0.10, rng), flaky("b", 0.15, rng)],
        bool,
        task,
        store="memory://",
        fallback=Path(lambda: "fb", name="fb"),
        breaker=None,
        seed=5,
        clock=StepClock(),  # the whole run is one log window
        on_outcome=attempts.append,
    )
    with router:
        for _ in range(800):
            router.run()
        logged_while_running = [r for r in caplog.records if r.levelno >= logging.WARNING]
    retries = sum(o.retries for o in attempts)
    assert retries > 80  # 10-15% of ~800 calls failed and were retried
    retry_lines = [r for r in caplog.records if r.name == RETRY_LOGGER]
    announced = [r for r in retry_lines if r.getMessage().startswith("retrying ")]
    held = [r for r in retry_lines if r.getMessage().startswith("retried ")]
    # One line per path and kind in the window (two paths, one kind) ...
    assert sorted((r.path, r.kind) for r in announced) == [  # type: ignore[attr-defined]
        ("a", "server_error"),
        ("b", "server_error"),
    ]
    # ... then, at close, one summary per path with the count held back: they add up.
    assert len(held) == 2
    assert len(announced) + sum(r.count for r in held) == retries  # type: ignore[attr-defined]
    assert sample("retries_total", task, path="a") + sample(
        "retries_total", task, path="b"
    ) == float(retries)
    assert sample("suppressed_log_lines_total", task, line="retrying") == float(retries - 2)
    # Every warning of the run, all kinds together, is a handful rather than one per retry.
    assert len(logged_while_running) <= 8, [r.getMessage() for r in logged_while_running]
    suppressed = sum(
        sample("suppressed_log_lines_total", task, line=line)
        for line in ("retrying", "giving_up", "failed", "fallback")
    )
    summaries = [r for r in caplog.records if "more times in the last" in r.getMessage()]
    assert suppressed == sum(r.count for r in summaries)  # type: ignore[attr-defined]


def test_a_retry_policy_on_its_own_still_logs_every_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Outside a router nothing is throttled (a RetryPolicy has no window of its own)."""
    calls = 0

    def fn() -> str:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise ServerError("503")
        return "ok"

    policy = RetryPolicy(attempts=2, budget_s=None, rng=1, sleep=lambda _s: None)
    caplog.set_level(logging.WARNING, logger=RETRY_LOGGER)
    for _ in range(20):
        assert policy.call(fn) == "ok"
    assert len([r for r in caplog.records if r.getMessage().startswith("retrying")]) == 20
