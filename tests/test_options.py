"""The Router's constructor: a few parameters and five option groups, every option
checked where it is defined, with a ConfigurationError naming it."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import FrozenInstanceError, fields
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from conftest import StepClock

import adaptive_router
from adaptive_router import (
    Budget,
    ConfigurationError,
    Learning,
    Objective,
    Observability,
    Path,
    Persistence,
    Resilience,
    Router,
    ThompsonSampling,
)
from adaptive_router.observe.alerts import Alerts
from adaptive_router.observe.observers import Observer
from adaptive_router.resilience import CircuitBreaker, RateLimit, RetryPolicy


def _ok(x: Any = None) -> str:
    return "ok"


async def _aok() -> str:
    return "ok"


def _router(**kw: Any) -> Router:
    args: dict[str, Any] = {
        "paths": [Path(_ok, name="a")],
        "success_fn": bool,
        "task": "options",
        "store": "memory://",
    }
    args.update(kw)
    return Router(**args)


# (what is built, the parameter the error must name, how)
BAD: list[tuple[str, str, Callable[[], object]]] = [
    # -- Router ------------------------------------------------------------------------
    ("Router", "paths", lambda: _router(paths="abc")),
    ("Router", "paths", lambda: _router(paths=[])),
    ("Router", "paths", lambda: _router(paths=5)),
    ("Router", "paths", lambda: _router(paths=[Path(_ok, name="a"), Path(_ok, name="a")])),
    ("Router", "success_fn", lambda: _router(success_fn=1)),
    ("Router", "success_fn", lambda: _router(success_fn=None)),
    ("Router", "score_fn", lambda: _router(success_fn=None, score_fn=1)),
    ("Router", "score_fn", lambda: _router(score_fn=lambda r: 1.0)),
    ("Router", "task", lambda: _router(task=None)),
    ("Router", "task", lambda: _router(task="")),
    ("Router", "task", lambda: _router(task=5)),
    ("Router", "task", lambda: _router(task="x" * 300)),
    ("Router", "store", lambda: _router(store=5)),
    ("Router", "store", lambda: _router(store="redis://localhost")),
    ("Router", "fallback", lambda: _router(fallback=1)),
    ("Router", "objective", lambda: _router(objective="fast")),
    ("Router", "objective", lambda: _router(objective=1)),
    ("Router", "features", lambda: _router(features={"len": 1})),
    ("Router", "half_life", lambda: _router(half_life=-1)),
    ("Router", "half_life", lambda: _router(half_life="1h")),
    ("Router", "half_life", lambda: _router(half_life=math.nan)),
    (
        "Router",
        "half_life",
        lambda: _router(learning=Learning(policy=ThompsonSampling()), half_life=60),
    ),
    (
        "Router",
        "objective",
        lambda: _router(learning=Learning(policy=ThompsonSampling()), objective="cost"),
    ),
    ("Router", "budget", lambda: _router(budget=1)),
    ("Router", "budget", lambda: _router(budget={"max_attempts": 1})),
    ("Router", "learning", lambda: _router(learning=Resilience())),
    ("Router", "resilience", lambda: _router(resilience={"timeout": 1})),
    ("Router", "persistence", lambda: _router(persistence="sync")),
    ("Router", "observability", lambda: _router(observability=True)),
    # -- Learning ------------------------------------------------------------------------
    ("Learning", "prior", lambda: Learning(prior=(0, 1))),
    ("Learning", "prior", lambda: Learning(prior=1)),  # type: ignore[arg-type]
    ("Learning", "prior", lambda: Learning(prior=(1, 2, 3))),  # type: ignore[arg-type]
    ("Learning", "prior", lambda: Learning(prior="ab")),  # type: ignore[arg-type]
    ("Learning", "prior", lambda: Learning(prior=(1, math.inf))),
    ("Learning", "explore", lambda: Learning(explore=1.5)),
    ("Learning", "explore", lambda: Learning(explore=-0.1)),
    ("Learning", "explore", lambda: Learning(explore="x")),  # type: ignore[arg-type]
    ("Learning", "explore", lambda: Learning(explore=True)),
    ("Learning", "policy", lambda: Learning(policy="ts")),  # type: ignore[arg-type]
    ("Learning", "policy", lambda: Learning(policy=ThompsonSampling(), explore=0.1)),
    ("Learning", "seed", lambda: Learning(seed=-1)),
    ("Learning", "seed", lambda: Learning(seed=1.5)),  # type: ignore[arg-type]
    ("Learning", "seed", lambda: Learning(seed="x")),  # type: ignore[arg-type]
    ("Learning", "seed", lambda: Learning(seed=True)),
    ("Learning", "clock", lambda: Learning(clock=5)),  # type: ignore[arg-type]
    ("Learning", "min_score", lambda: Learning(min_score=2)),
    ("Learning", "min_score", lambda: Learning(min_score="x")),  # type: ignore[arg-type]
    ("Learning", "min_score", lambda: Learning(min_score=True)),
    ("Learning", "context_fn", lambda: Learning(context_fn=1)),  # type: ignore[arg-type]
    ("Learning", "max_contexts", lambda: Learning(max_contexts=0)),
    ("Learning", "max_contexts", lambda: Learning(max_contexts=1.5)),  # type: ignore[arg-type]
    ("Learning", "max_contexts", lambda: Learning(max_contexts=True)),
    ("Learning", "context_prior_strength", lambda: Learning(context_prior_strength=-1)),
    ("Learning", "context_prior_strength", lambda: Learning(context_prior_strength=math.nan)),
    ("Learning", "context_prior_strength", lambda: Learning(context_prior_strength="x")),  # type: ignore[arg-type]
    # -- Resilience ----------------------------------------------------------------------
    ("Resilience", "timeout", lambda: Resilience(timeout=0)),
    ("Resilience", "timeout", lambda: Resilience(timeout=-1)),
    ("Resilience", "timeout", lambda: Resilience(timeout="30s")),  # type: ignore[arg-type]
    ("Resilience", "timeout", lambda: Resilience(timeout=math.inf)),
    ("Resilience", "timeout", lambda: Resilience(timeout=True)),
    ("Resilience", "timeout", lambda: Resilience(timeout=timedelta(0))),
    ("Resilience", "retry", lambda: Resilience(retry=3)),  # type: ignore[arg-type]
    ("Resilience", "retry", lambda: Resilience(retry="default")),  # type: ignore[arg-type]
    ("Resilience", "breaker", lambda: Resilience(breaker=5)),  # type: ignore[arg-type]
    ("Resilience", "breaker", lambda: Resilience(breaker="x")),  # type: ignore[arg-type]
    # -- Persistence ---------------------------------------------------------------------
    ("Persistence", "durability", lambda: Persistence(durability="fast")),
    ("Persistence", "durability", lambda: Persistence(durability=1)),  # type: ignore[arg-type]
    ("Persistence", "flush_interval", lambda: Persistence(flush_interval=0)),
    ("Persistence", "flush_interval", lambda: Persistence(flush_interval=2)),
    ("Persistence", "flush_interval", lambda: Persistence(flush_interval="x")),  # type: ignore[arg-type]
    ("Persistence", "refresh_interval", lambda: Persistence(refresh_interval=0)),
    ("Persistence", "refresh_interval", lambda: Persistence(refresh_interval=None)),  # type: ignore[arg-type]
    ("Persistence", "max_buffer", lambda: Persistence(max_buffer=0)),
    ("Persistence", "max_buffer", lambda: Persistence(max_buffer=1.5)),  # type: ignore[arg-type]
    ("Persistence", "max_buffer", lambda: Persistence(max_buffer=True)),
    ("Persistence", "pending_ttl", lambda: Persistence(pending_ttl=0)),
    ("Persistence", "pending_ttl", lambda: Persistence(pending_ttl="1h")),  # type: ignore[arg-type]
    ("Persistence", "on_expired", lambda: Persistence(on_expired="ignore")),
    ("Persistence", "start_without_store", lambda: Persistence(start_without_store="yes")),  # type: ignore[arg-type]
    ("Persistence", "start_without_store", lambda: Persistence(start_without_store=1)),  # type: ignore[arg-type]
    ("Persistence", "log_decisions", lambda: Persistence(log_decisions="no")),  # type: ignore[arg-type]
    # -- Observability -------------------------------------------------------------------
    ("Observability", "metrics", lambda: Observability(metrics="yes")),  # type: ignore[arg-type]
    ("Observability", "metrics", lambda: Observability(metrics=1)),  # type: ignore[arg-type]
    ("Observability", "metrics_registry", lambda: Observability(metrics_registry="x")),
    ("Observability", "tracing", lambda: Observability(tracing="on")),  # type: ignore[arg-type]
    ("Observability", "alerts", lambda: Observability(alerts=1)),  # type: ignore[arg-type]
    ("Observability", "on_alert", lambda: Observability(alerts=Alerts(), on_alert=print)),
    ("Observability", "on_alert", lambda: Observability(on_alert=1)),  # type: ignore[arg-type]
    ("Observability", "on_alert", lambda: Observability(on_alert=[print, 1])),  # type: ignore[list-item]
    ("Observability", "observers", lambda: Observability(observers=[1])),  # type: ignore[list-item]
    ("Observability", "observers", lambda: Observability(observers=Observer())),  # type: ignore[arg-type]
    ("Observability", "observers", lambda: Observability(observers=1)),  # type: ignore[arg-type]
    ("Observability", "on_outcome", lambda: Observability(on_outcome=1)),  # type: ignore[arg-type]
    ("Observability", "on_outcome", lambda: Observability(on_outcome=[1])),  # type: ignore[list-item]
    ("Observability", "on_outcome", lambda: Observability(on_outcome="print")),  # type: ignore[arg-type]
    ("Observability", "capture_usage", lambda: Observability(capture_usage="yes")),  # type: ignore[arg-type]
    ("Observability", "capture_usage", lambda: Observability(capture_usage=1)),  # type: ignore[arg-type]
    ("Observability", "prices", lambda: Observability(prices=[1])),  # type: ignore[arg-type]
    ("Observability", "prices", lambda: Observability(prices={"m": 1})),  # type: ignore[dict-item]
    ("Observability", "prices", lambda: Observability(prices={"m": (-1.0, 1.0)})),
    ("Observability", "prices", lambda: Observability(prices={1: (1.0, 1.0)})),  # type: ignore[dict-item]
    ("Observability", "prices", lambda: Observability(prices="gpt-4o")),  # type: ignore[arg-type]
    ("Observability", "heartbeat", lambda: Observability(heartbeat=0)),
    ("Observability", "heartbeat", lambda: Observability(heartbeat="5s")),  # type: ignore[arg-type]
    ("Observability", "heartbeat", lambda: Observability(heartbeat=-1)),
    # -- Budget --------------------------------------------------------------------------
    ("Budget", "max_attempts", lambda: Budget(max_attempts=0)),
    ("Budget", "max_attempts", lambda: Budget(max_attempts=1.5)),  # type: ignore[arg-type]
    ("Budget", "max_attempts", lambda: Budget(max_attempts=True)),
    ("Budget", "max_attempts", lambda: Budget(max_attempts="2")),  # type: ignore[arg-type]
    ("Budget", "request_timeout", lambda: Budget(request_timeout=0)),
    ("Budget", "request_timeout", lambda: Budget(request_timeout=-1)),
    ("Budget", "request_timeout", lambda: Budget(request_timeout="5")),  # type: ignore[arg-type]
    ("Budget", "request_timeout", lambda: Budget(request_timeout=math.inf)),
    ("Budget", "max_cost_usd", lambda: Budget(max_cost_usd=-1)),
    ("Budget", "max_cost_usd", lambda: Budget(max_cost_usd=math.nan)),
    ("Budget", "max_cost_usd", lambda: Budget(max_cost_usd="0.1")),  # type: ignore[arg-type]
    ("Budget", "max_cost_usd", lambda: Budget(max_cost_usd=True)),
    # -- Path ----------------------------------------------------------------------------
    ("Path", "fn", lambda: Path(1)),  # type: ignore[arg-type]
    ("Path", "name", lambda: Path(_ok, name="")),
    ("Path", "name", lambda: Path(_ok, name=5)),  # type: ignore[arg-type]
    ("Path", "name", lambda: Path(_ok, name="a\x00b")),
    ("Path", "model", lambda: Path(_ok, model=5)),  # type: ignore[arg-type]
    ("Path", "model", lambda: Path(_ok, model=" ")),
    ("Path", "timeout", lambda: Path(_ok, timeout=0)),
    ("Path", "timeout", lambda: Path(_ok, timeout="10")),  # type: ignore[arg-type]
    ("Path", "retry", lambda: Path(_ok, retry=3)),  # type: ignore[arg-type]
    ("Path", "breaker", lambda: Path(_ok, breaker=3)),  # type: ignore[arg-type]
    ("Path", "rate_limit", lambda: Path(_ok, rate_limit=5)),  # type: ignore[arg-type]
    ("Path", "afn", lambda: Path(_ok, afn=_ok)),  # type: ignore[arg-type]
    ("Path", "enforces_timeout", lambda: Path(_ok, enforces_timeout="yes")),  # type: ignore[arg-type]
    ("Path", "metadata", lambda: Path(_ok, metadata="x")),  # type: ignore[arg-type]
    ("Path", "expected_cost_usd", lambda: Path(_ok, expected_cost_usd=-1)),
    ("Path", "expected_latency_ms", lambda: Path(_ok, expected_latency_ms="x")),  # type: ignore[arg-type]
    ("Path", "expected_tokens", lambda: Path(_ok, model="gpt-4o", expected_tokens=(1,))),  # type: ignore[arg-type]
    ("Path", "expected_tokens", lambda: Path(_ok, expected_tokens=(1, 2))),
    ("Path", "cost_usd", lambda: Path(_ok, cost_usd=-1)),
    # -- Objective -----------------------------------------------------------------------
    ("Objective", "cost_weight", lambda: Objective(cost_weight=-1)),
    ("Objective", "cost_weight", lambda: Objective(cost_weight="x")),  # type: ignore[arg-type]
    ("Objective", "usd_per_second", lambda: Objective(usd_per_second=math.nan)),
    ("Objective", "success_value_usd", lambda: Objective(success_value_usd=-1)),
    # -- RetryPolicy ---------------------------------------------------------------------
    ("RetryPolicy", "attempts", lambda: RetryPolicy(attempts=0)),
    ("RetryPolicy", "attempts", lambda: RetryPolicy(attempts=1.5)),  # type: ignore[arg-type]
    ("RetryPolicy", "budget_s", lambda: RetryPolicy(budget_s=0)),
    ("RetryPolicy", "initial", lambda: RetryPolicy(initial=0)),
    ("RetryPolicy", "max_wait", lambda: RetryPolicy(max_wait=-1)),
    ("RetryPolicy", "retry_on", lambda: RetryPolicy(retry_on=["client_error"])),
    ("RetryPolicy", "retry_on", lambda: RetryPolicy(retry_on=["bogus"])),
    ("RetryPolicy", "rng", lambda: RetryPolicy(rng="x")),  # type: ignore[arg-type]
    # -- CircuitBreaker ------------------------------------------------------------------
    ("CircuitBreaker", "failure_threshold", lambda: CircuitBreaker(failure_threshold=0)),
    ("CircuitBreaker", "failure_rate", lambda: CircuitBreaker(failure_rate=2)),
    ("CircuitBreaker", "window", lambda: CircuitBreaker(window=0)),
    ("CircuitBreaker", "min_calls", lambda: CircuitBreaker(min_calls=0)),
    ("CircuitBreaker", "reset_timeout_s", lambda: CircuitBreaker(reset_timeout_s=0)),
    # -- RateLimit -----------------------------------------------------------------------
    ("RateLimit", "requests_per_minute", lambda: RateLimit(requests_per_minute=0)),
    ("RateLimit", "tokens_per_minute", lambda: RateLimit(tokens_per_minute=-1)),
    ("RateLimit", "requests_per_minute", lambda: RateLimit()),
    ("RateLimit", "mode", lambda: RateLimit(requests_per_minute=1, mode="block")),
    ("RateLimit", "key", lambda: RateLimit(requests_per_minute=1, key="")),
    ("RateLimit", "storage", lambda: RateLimit(requests_per_minute=1, storage=5)),  # type: ignore[arg-type]
    ("RateLimit", "max_wait_s", lambda: RateLimit(requests_per_minute=1, max_wait_s=-1)),
]


@pytest.mark.parametrize(
    ("where", "parameter", "build"),
    BAD,
    ids=[f"{i:03d}-{w}-{p}" for i, (w, p, _) in enumerate(BAD)],
)
def test_a_bad_argument_raises_a_configuration_error_naming_it(
    where: str, parameter: str, build: Callable[[], object]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        made = build()
        if isinstance(made, Router):  # never: close what should not have been built
            made.close()
    assert parameter in str(caught.value), (where, str(caught.value))


def test_the_table_covers_every_option_of_every_group() -> None:
    """~100 bad arguments, and each field of the groups (and of Budget) among them."""
    assert len(BAD) >= 100
    named = {(w, p) for w, p, _ in BAD}
    for group in (Learning, Resilience, Persistence, Observability, Budget):
        for f in fields(group):
            if f.init:
                assert (group.__name__, f.name) in named, (group.__name__, f.name)


def test_the_constructor_takes_at_most_15_parameters_each_listed_once() -> None:
    params = inspect.signature(Router.__init__).parameters
    assert len(params) <= 15  # self included
    group_fields = {
        f.name for g in (Learning, Resilience, Persistence, Observability) for f in fields(g)
    }
    # A field of a group is never also a Router parameter (one place for each option).
    assert group_fields & set(params) == set()
    assert list(params)[:7] == [
        "self",
        "paths",
        "success_fn",
        "task",
        "store",
        "fallback",
        "objective",
    ]


def test_the_groups_are_exported_frozen_and_their_defaults_are_the_routers() -> None:
    for name in ("Budget", "Learning", "Resilience", "Persistence", "Observability"):
        assert name in adaptive_router.__all__
        assert getattr(adaptive_router, name).__module__.startswith("adaptive_router.router")
    with pytest.raises(FrozenInstanceError):
        Learning().explore = 0.5  # type: ignore[misc]
    with _router() as router:
        cfg = router.config
        assert (cfg.learning, cfg.resilience, cfg.persistence, cfg.observability) == (
            Learning(),
            Resilience(),
            Persistence(),
            Observability(),
        )
        assert cfg.budget == Budget() and not cfg.budget.active
        assert router.path_settings["a"].timeout == 30.0
        assert cfg.persistence.pending_ttl == 3600.0 and cfg.observability.heartbeat == 5.0


def test_every_duration_takes_a_timedelta_and_is_kept_in_seconds() -> None:
    assert Resilience(timeout=timedelta(seconds=2)).timeout == 2.0
    assert Path(_ok, timeout=timedelta(milliseconds=250)).timeout == 0.25
    p = Persistence(
        flush_interval=timedelta(milliseconds=200),
        refresh_interval=timedelta(seconds=3),
        pending_ttl=timedelta(minutes=5),
    )
    assert (p.flush_interval, p.refresh_interval, p.pending_ttl) == (0.2, 3.0, 300.0)
    assert Observability(heartbeat=timedelta(seconds=7)).heartbeat == 7.0
    assert Budget(request_timeout=timedelta(seconds=4)).request_timeout == 4.0
    assert RetryPolicy(budget_s=timedelta(seconds=9)).budget_s == 9.0
    with _router(
        half_life=timedelta(minutes=1),
        resilience=Resilience(timeout=timedelta(seconds=2)),
        persistence=Persistence(pending_ttl=timedelta(minutes=2)),
        budget=Budget(request_timeout=timedelta(seconds=5)),
    ) as router:
        assert router.half_life == 60.0
        assert router.path_settings["a"].timeout == 2.0
        assert router.budget.request_timeout == 5.0


def test_callbacks_are_kept_as_tuples_and_a_single_callable_is_one() -> None:
    seen: list[Any] = []
    obs = Observability(on_outcome=seen.append, on_alert=[print])
    assert obs.on_outcome == (seen.append,) and obs.on_alert == (print,)
    with _router(observability=obs) as router:
        router.run()
    assert [o.path for o in seen] == ["a"]


def test_seed_and_clock_drive_the_router() -> None:
    clock = StepClock(1_000.0)
    with _router(learning=Learning(seed=np.random.default_rng(3), clock=clock)) as a:
        assert a.clock is clock
        a.run()
        (outcome,) = a.store.outcomes("options")
        assert outcome.created_at == 1_000.0
    draws = []
    for _ in range(2):
        with _router(paths=[Path(_ok, name=n) for n in "abcd"], learning=Learning(seed=11)) as r:
            draws.append([r.choose().path for _ in range(20)])
    assert draws[0] == draws[1]


def test_the_readme_common_case_runs_as_written() -> None:
    """``Router(paths, success_fn, task, store=..., fallback=..., objective=...)`` and the
    quick start's ``half_life`` keep working without any option group."""
    with Router(
        paths=[Path(_ok, name="gpt-4o"), Path(_ok, name="claude")],
        success_fn=lambda r: r == "ok",
        task="readme",
        store="memory://",
        fallback=Path(_ok, name="regex"),
        objective="success",
        half_life=timedelta(minutes=10),
    ) as router:
        assert router.run("2x widget") == "ok"
        assert [p.path for p in router.posteriors()] == ["gpt-4o", "claude", "regex"]
    with Router([_ok], bool, "positional", "memory://", _aok, "cost") as r:
        assert r.objective.name == "cost" and r.fallback is not None
