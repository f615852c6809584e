"""The Router's parameters, validated (:class:`RouterConfig`), and each path's resolved
resilience settings (:class:`PathSettings`: its own value, else the router default)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from adaptive_router._checks import seconds
from adaptive_router.errors import ConfigurationError
from adaptive_router.objectives import Objective, ObjectiveThompsonSampling, resolve_objective
from adaptive_router.paths import Inherit, Path, as_path, check_name
from adaptive_router.policy import Policy, ThompsonSampling
from adaptive_router.resilience import CircuitBreaker, RateLimit, RetryPolicy
from adaptive_router.resilience.timeouts import check_timeout
from adaptive_router.router.budgets import Budget, check_budget

__all__ = [
    "BreakerSpec",
    "PathSettings",
    "RouterConfig",
    "default_breaker",
    "resolve_settings",
    "router_config",
]

#: A router-wide breaker: a template (each path gets a copy) or a factory by path name.
BreakerSpec = CircuitBreaker | Callable[[str], CircuitBreaker]


@dataclass(frozen=True, slots=True)
class PathSettings:
    """A path's resolved resilience settings (path value, else the router default)."""

    timeout: float | None
    retry: RetryPolicy | None
    breaker: CircuitBreaker | None
    rate_limit: RateLimit | None


def default_breaker(name: str) -> CircuitBreaker:
    """The router's default per-path breaker: opens after 5 consecutive failures or a
    50% failure rate over the last 20 calls (at least 10), probes again after 30 s."""
    return CircuitBreaker(
        failure_threshold=5,
        failure_rate=0.5,
        window=20,
        min_calls=10,
        reset_timeout_s=30.0,
        name=name,
    )


def _make_breaker(spec: BreakerSpec, name: str) -> CircuitBreaker:
    if isinstance(spec, CircuitBreaker):
        # A breaker given router-wide is a template: each path gets its own state.
        return spec.copy(name=name)
    made = spec(name)
    if not isinstance(made, CircuitBreaker):
        raise ConfigurationError("breaker factory must return a CircuitBreaker")
    return made


def resolve_settings(
    paths: Iterable[Path],
    fallback: Path | None,
    timeout: float | None,
    retry: RetryPolicy | Inherit | None,
    breaker: BreakerSpec | None,
    seed: int | np.random.Generator | None,
) -> dict[str, PathSettings]:
    """Each path's settings by name; the final ``fallback`` never gets a default breaker.

    ``retry=INHERIT`` means the default :class:`RetryPolicy`, its jitter seeded from an
    int ``seed`` (reproducible) but drawn from its own stream, so routing consumes the
    router's generator exactly as the simulator does.
    """
    default_timeout = check_timeout("timeout", timeout)
    if isinstance(retry, Inherit):
        retry = RetryPolicy(rng=seed if isinstance(seed, int) else None)
    elif not (retry is None or isinstance(retry, RetryPolicy)):
        raise ConfigurationError(f"retry must be a RetryPolicy or None, got {retry!r}")
    if not (breaker is None or isinstance(breaker, CircuitBreaker) or callable(breaker)):
        raise ConfigurationError(
            "breaker must be a CircuitBreaker (a template: each path gets its own), "
            "a factory name -> CircuitBreaker, or None"
        )
    settings: dict[str, PathSettings] = {}
    for p in paths:
        name = p.name or ""
        b: CircuitBreaker | None
        if isinstance(p.breaker, Inherit):
            b = None if breaker is None or p is fallback else _make_breaker(breaker, name)
        else:
            b = p.breaker
        settings[name] = PathSettings(
            timeout=default_timeout if isinstance(p.timeout, Inherit) else p.timeout,
            retry=retry if isinstance(p.retry, Inherit) else p.retry,
            breaker=b,
            rate_limit=p.rate_limit,
        )
    return settings


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """The Router's validated constructor parameters (those that need no I/O)."""

    paths: list[Path]
    fallback: Path | None
    task: str
    success_fn: Callable[[Any], Any] | None
    score_fn: Callable[[Any], Any] | None
    min_score: float
    context_fn: Callable[..., str] | None
    max_contexts: int
    context_prior_strength: float
    durability: str
    on_expired: str
    pending_ttl: float
    clock: Callable[[], float]
    rng: np.random.Generator
    policy: Policy
    objective: Objective
    budget: Budget
    start_without_store: bool = False

    @property
    def half_life(self) -> float | None:
        """The policy's half-life: its one owner."""
        return self.policy.half_life


def router_config(
    paths: Sequence[Path | Callable[..., Any]],
    *,
    success_fn: Callable[[Any], Any] | None,
    score_fn: Callable[[Any], Any] | None,
    task: str | None,
    fallback: Path | Callable[..., Any] | None,
    prior: tuple[float, float],
    half_life: timedelta | float | None,
    explore: float,
    seed: int | np.random.Generator | None,
    clock: Callable[[], float] | None,
    durability: str,
    pending_ttl: timedelta | float,
    on_expired: str,
    flush_interval: float,
    refresh_interval: float,
    max_buffer: int,
    policy: Policy | None,
    min_score: float,
    context_fn: Callable[..., str] | None,
    max_contexts: int,
    context_prior_strength: float,
    objective: str | Objective = "success",
    max_attempts: int | None = None,
    request_timeout: float | None = None,
    max_cost_usd: float | None = None,
    start_without_store: bool = False,
) -> RouterConfig:
    """Validate the :class:`~adaptive_router.Router` parameters (see there); a
    :class:`ConfigurationError` names the first wrong one and the fix."""
    if isinstance(paths, (str, bytes)) or not isinstance(paths, Iterable):
        raise ConfigurationError("paths must be a list of callables or Path objects")
    path_list = [as_path(p) for p in paths]
    if not path_list:
        raise ConfigurationError("paths is empty; give at least one callable or Path")
    final = as_path(fallback) if fallback is not None else None
    names = [p.name for p in path_list] + ([final.name] if final else [])
    dupes = sorted({n for n in names if names.count(n) > 1 and n is not None})
    if dupes:
        raise ConfigurationError(
            f"paths: duplicate path names {dupes}; give each Path(fn, name=...) a unique name"
        )
    if (success_fn is None) == (score_fn is None):
        given = "both" if success_fn is not None else "neither"
        raise ConfigurationError(
            f"give exactly one of success_fn (result -> bool) and score_fn "
            f"(result -> 0..1); {given} was given"
        )
    if task is None:
        raise ConfigurationError(
            "task is required: the name under which evidence is kept, e.g. task='extract'"
        )
    for what, fn in (
        ("success_fn", success_fn),
        ("score_fn", score_fn),
        ("context_fn", context_fn),
    ):
        if fn is not None and not callable(fn):
            raise ConfigurationError(f"{what} must be callable, got {fn!r}")
    if (
        isinstance(min_score, bool)
        or not isinstance(min_score, (int, float))
        or not (0.0 <= min_score <= 1.0)
    ):
        raise ConfigurationError(f"min_score must be a number in [0, 1], got {min_score!r}")
    if isinstance(max_contexts, bool) or not isinstance(max_contexts, int) or max_contexts < 1:
        raise ConfigurationError(f"max_contexts must be an int >= 1, got {max_contexts!r}")
    if not (
        isinstance(context_prior_strength, (int, float))
        and math.isfinite(context_prior_strength)
        and context_prior_strength >= 0
    ):
        raise ConfigurationError(
            "context_prior_strength must be a number >= 0 (pseudo-observations borrowed "
            f"from the task level), got {context_prior_strength!r}"
        )
    task = check_name("task", task)
    if durability not in ("batch", "sync"):
        raise ConfigurationError(f"durability must be 'batch' or 'sync', got {durability!r}")
    if on_expired not in ("failure", "drop"):
        raise ConfigurationError(f"on_expired must be 'failure' or 'drop', got {on_expired!r}")
    ttl = seconds(pending_ttl, "pending_ttl", allow_none=False) or 0.0
    half_life_s = seconds(half_life, "half_life", allow_none=True)
    for name, value in (
        ("flush_interval", flush_interval),
        ("refresh_interval", refresh_interval),
    ):
        seconds(value, name, allow_none=False)
    if flush_interval > 1.0:
        raise ConfigurationError("flush_interval must be <= 1 second")
    if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
        raise ConfigurationError(f"max_buffer must be an int >= 1, got {max_buffer!r}")
    if clock is not None and not callable(clock):
        raise ConfigurationError("clock must be a callable returning epoch seconds")
    if isinstance(seed, np.random.Generator):
        rng = seed
    elif seed is None or (isinstance(seed, int) and not isinstance(seed, bool)):
        rng = np.random.default_rng(seed)
    else:
        raise ConfigurationError(f"seed must be an int, a numpy Generator or None, got {seed!r}")
    try:
        goal = resolve_objective(objective)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    if policy is not None and not goal.ranks_by_success:
        raise ConfigurationError(
            "objective: give an objective or a policy, not both (pass "
            "policy=ObjectiveThompsonSampling(..., objective=...) to combine them)"
        )
    budget = check_budget(max_attempts, request_timeout, max_cost_usd)
    if not isinstance(start_without_store, bool):
        raise ConfigurationError(
            f"start_without_store must be True or False, got {start_without_store!r}"
        )
    try:
        chosen: Policy
        if policy is not None:
            chosen = policy
        elif goal.ranks_by_success:
            # The success objective keeps plain Thompson Sampling: bit-identical choices.
            chosen = ThompsonSampling(prior, half_life_s, explore)
        else:
            chosen = ObjectiveThompsonSampling(prior, half_life_s, explore, goal)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    if isinstance(chosen, ObjectiveThompsonSampling):
        goal = chosen.objective
    if policy is not None and policy.half_life != half_life_s:
        raise ConfigurationError("policy.half_life and half_life disagree; set one of them")
    return RouterConfig(
        paths=path_list,
        fallback=final,
        task=task,
        success_fn=success_fn,
        score_fn=score_fn,
        min_score=float(min_score),
        context_fn=context_fn,
        max_contexts=max_contexts,
        context_prior_strength=float(context_prior_strength),
        durability=durability,
        on_expired=on_expired,
        pending_ttl=ttl,
        clock=clock or time.time,
        rng=rng,
        policy=chosen,
        objective=goal,
        budget=budget,
        start_without_store=start_without_store,
    )
