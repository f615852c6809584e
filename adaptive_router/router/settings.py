"""The Router's parameters, validated (:class:`RouterConfig`), and each path's resolved
resilience settings (:class:`PathSettings`: its own value, else the router default)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from numbers import Integral
from typing import Any, cast

import numpy as np

from adaptive_router._checks import seconds
from adaptive_router.errors import ConfigurationError
from adaptive_router.paths import Inherit, Path, as_path, check_name, is_async
from adaptive_router.policies.objectives import (
    Objective,
    ObjectiveThompsonSampling,
    resolve_objective,
)
from adaptive_router.policies.thompson import Policy, ThompsonSampling
from adaptive_router.resilience import CircuitBreaker, RateLimit, RetryPolicy
from adaptive_router.router.budgets import Budget
from adaptive_router.router.options import (
    BreakerSpec,
    Learning,
    Observability,
    Persistence,
    Resilience,
    default_breaker,
)

__all__ = [
    "BreakerSpec",
    "PathSettings",
    "RouterConfig",
    "default_breaker",
    "resolve_settings",
    "router_config",
]


@dataclass(frozen=True, slots=True)
class PathSettings:
    """A path's resolved resilience settings (path value, else the router default)."""

    timeout: float | None
    retry: RetryPolicy | None
    breaker: CircuitBreaker | None
    rate_limit: RateLimit | None


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
    resilience: Resilience,
    seed: int | np.random.Generator | None,
) -> dict[str, PathSettings]:
    """Each path's settings by name; the final ``fallback`` never gets a default breaker.

    ``retry=INHERIT`` means the default :class:`RetryPolicy`, its jitter seeded from an
    int ``seed`` (reproducible) but drawn from its own stream, so routing consumes the
    router's generator exactly as the simulator does.
    """
    default_timeout = resilience.timeout_s
    retry, breaker = resilience.retry, resilience.breaker
    if isinstance(retry, Inherit):
        retry = RetryPolicy(rng=int(seed) if isinstance(seed, Integral) else None)
    settings: dict[str, PathSettings] = {}
    for p in paths:
        name = p.name or ""
        b: CircuitBreaker | None
        if isinstance(p.breaker, Inherit):
            b = None if breaker is None or p is fallback else _make_breaker(breaker, name)
        else:
            b = p.breaker
        settings[name] = PathSettings(
            timeout=default_timeout
            if isinstance(p.timeout, Inherit)
            else cast("float | None", p.timeout),
            retry=retry if isinstance(p.retry, Inherit) else p.retry,
            breaker=b,
            rate_limit=p.rate_limit,
        )
    return settings


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """The Router's validated parameters (those that need no I/O): the option groups as
    given, and what is derived from them."""

    paths: list[Path]
    fallback: Path | None
    task: str
    success_fn: Callable[[Any], Any] | None
    score_fn: Callable[[Any], Any] | None
    policy: Policy
    objective: Objective
    rng: np.random.Generator
    clock: Callable[[], float]
    budget: Budget
    learning: Learning
    resilience: Resilience
    persistence: Persistence
    observability: Observability
    features: Callable[..., Any] | None = None
    #: The contextual policy (ContextualThompsonSampling) of a feature router, else None.
    contextual: Any = None

    @property
    def half_life(self) -> float | None:
        """The policy's half-life: its one owner."""
        return self.policy.half_life


def _group(name: str, value: object, kind: type[Any]) -> Any:
    """An option group as given, or its defaults for None."""
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise ConfigurationError(
            f"{name} must be a {kind.__name__}(...) or None, got {type(value).__name__}; "
            f"e.g. {name}={kind.__name__}()"
        )
    return value


def router_config(
    paths: Sequence[Path | Callable[..., Any]],
    success_fn: Callable[[Any], Any] | None,
    task: str | None,
    fallback: Path | Callable[..., Any] | None,
    objective: str | Objective,
    score_fn: Callable[[Any], Any] | None,
    features: object,
    half_life: timedelta | float | None,
    groups: tuple[object, object, object, object, object],
) -> RouterConfig:
    """Validate the :class:`~adaptive_router.Router` parameters (see there); ``groups`` is
    ``(budget, learning, resilience, persistence, observability)``. A
    :class:`ConfigurationError` names the first wrong one and the fix."""
    if isinstance(paths, (str, bytes)) or not isinstance(paths, Iterable):
        raise ConfigurationError("paths must be a list of callables or Path objects")
    path_list = [as_path(p) for p in paths]
    if not path_list:
        raise ConfigurationError("paths is empty; give at least one callable or Path")
    if fallback is not None and not (isinstance(fallback, Path) or callable(fallback)):
        raise ConfigurationError(
            f"fallback must be a callable or a Path (tried last, never ranked) or None, "
            f"got {fallback!r}"
        )
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
    for what, fn in (("success_fn", success_fn), ("score_fn", score_fn)):
        if fn is not None and not callable(fn):
            raise ConfigurationError(f"{what} must be callable, got {fn!r}")
        if fn is not None and is_async(fn):
            # Its coroutine is no verdict: every attempt would count against its path.
            raise ConfigurationError(
                f"{what} must be a plain function: it is called on each result as the "
                "request finishes, and an async one returns a coroutine, not a verdict; "
                "judge with an LLM through adaptive_router.judges.llm_judge (sync and "
                "async paths alike), or run your coroutine inside a sync function"
            )
    if features is not None and not callable(features):
        raise ConfigurationError(
            "features must be a function (*args, **kwargs) -> {name: number | str | bool}, "
            "such as adaptive_router.features.text_features(), or None; "
            f"got {type(features).__name__}"
        )
    task = check_name("task", task)
    half_life_s = seconds(half_life, "half_life", allow_none=True)
    budget = _group("budget", groups[0], Budget)
    learning: Learning = _group("learning", groups[1], Learning)
    resilience = _group("resilience", groups[2], Resilience)
    persistence = _group("persistence", groups[3], Persistence)
    observability = _group("observability", groups[4], Observability)
    try:
        goal = resolve_objective(objective)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    policy = learning.policy
    if policy is not None and not goal.ranks_by_success:
        raise ConfigurationError(
            "objective: give an objective or a policy, not both (pass "
            "Learning(policy=ObjectiveThompsonSampling(..., objective=...)) to combine them)"
        )
    if policy is not None and policy.half_life != half_life_s:
        raise ConfigurationError(
            f"half_life ({half_life_s}) and learning.policy.half_life ({policy.half_life}) "
            "disagree; set the same value on both"
        )
    chosen: Policy
    if policy is not None:
        chosen = policy
    elif goal.ranks_by_success:
        # The success objective keeps plain Thompson Sampling: bit-identical choices.
        chosen = ThompsonSampling(learning.prior, half_life_s, learning.explore)
    else:
        chosen = ObjectiveThompsonSampling(learning.prior, half_life_s, learning.explore, goal)
    if isinstance(chosen, ObjectiveThompsonSampling):
        goal = chosen.objective
    contextual = None
    if features is not None:
        contextual = _contextual(features, goal, policy, learning, half_life_s)
    return RouterConfig(
        paths=path_list,
        fallback=final,
        task=task,
        success_fn=success_fn,
        score_fn=score_fn,
        policy=chosen,
        objective=goal,
        rng=learning.generator(),
        clock=learning.clock or time.time,
        budget=budget,
        learning=learning,
        resilience=resilience,
        persistence=persistence,
        observability=observability,
        features=cast("Callable[..., Any] | None", features),
        contextual=contextual,
    )


def _contextual(
    features: object,
    goal: Objective,
    policy: Policy | None,
    learning: Learning,
    half_life_s: float | None,
) -> Any:
    """The contextual policy of ``Router(features=...)``: its dimension is ``features.dim``
    (``text_features(dim=...)`` has one), else the default."""
    if policy is not None:
        raise ConfigurationError(
            "features: a feature router ranks with its own contextual policy; give "
            "learning.prior/explore, not learning.policy"
        )
    if not (goal.ranks_by_success or goal.paced):
        raise ConfigurationError(
            "features: rank by success (objective='success') or under a spend target "
            "(Objective(target_usd_per_request=...)); the cost and latency objectives "
            "(c / θ) have no contextual form yet"
        )
    # Imported only for a feature router: the contextual policy needs scipy.
    from adaptive_router.features import DEFAULT_DIM
    from adaptive_router.policies.contextual import MAX_DIM, ContextualThompsonSampling

    dim = getattr(features, "dim", DEFAULT_DIM)
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
        raise ConfigurationError(
            f"features.dim must be an int in [1, {MAX_DIM}] (each path keeps a full "
            f"(dim+1)² covariance), got {dim!r}"
        )
    return ContextualThompsonSampling(dim, explore=learning.explore, half_life=half_life_s)
