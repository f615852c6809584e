"""The Router's option groups: frozen dataclasses, each checked in its ``__post_init__``.

``Router(paths, success_fn, task, store=..., fallback=..., objective=...)`` is the common
case; everything else is grouped here by what it is about, so a constructor call names
only what it changes::

    Router(paths, ok, "extract", half_life=600,
           learning=Learning(explore=0.05, seed=1),
           resilience=Resilience(timeout=10, retry=None),
           persistence=Persistence(durability="sync"),
           observability=Observability(metrics=False, heartbeat=None))

A wrong value raises :class:`~adaptive_router.errors.ConfigurationError` where the group
is built, naming the field and what it accepts. Durations are seconds or a ``timedelta``
and are kept as float seconds. The request budgets are :class:`~adaptive_router.router.
budgets.Budget`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from numbers import Integral
from typing import Any, Literal, cast

import numpy as np

from adaptive_router._checks import seconds
from adaptive_router._imports import require
from adaptive_router.errors import ConfigurationError
from adaptive_router.metering.prices import Pricer
from adaptive_router.observe.alerts import Alert, Alerts
from adaptive_router.observe.observers import Observer
from adaptive_router.outcomes import Outcome
from adaptive_router.paths import INHERIT, Inherit
from adaptive_router.policies.thompson import Policy, check_explore, check_prior
from adaptive_router.resilience import CircuitBreaker, RetryPolicy
from adaptive_router.resilience.timeouts import check_timeout
from adaptive_router.router.heartbeat import DEFAULT_INTERVAL_S

__all__ = [
    "BreakerSpec",
    "Learning",
    "Observability",
    "Persistence",
    "Resilience",
    "default_breaker",
]

#: A router-wide breaker: a template (each path gets a copy) or a factory by path name.
BreakerSpec = CircuitBreaker | Callable[[str], CircuitBreaker]

Callbacks = Callable[[Any], Any] | Sequence[Callable[[Any], Any]] | None


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


def _set(obj: object, name: str, value: object) -> None:
    """Store a checked (normalised) value on a frozen dataclass."""
    object.__setattr__(obj, name, value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")
    return value


def _count(name: str, value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < 1:
        raise ConfigurationError(f"{name} must be an int >= 1 ({what}), got {value!r}")
    return int(value)


def _callable(name: str, value: object, what: str) -> None:
    if value is not None and not callable(value):
        raise ConfigurationError(f"{name} must be {what} or None, got {value!r}")


def _callbacks(name: str, value: object, what: str) -> tuple[Callable[[Any], Any], ...]:
    """``None``, one callable or a sequence of them, as a tuple."""
    if value is None:
        return ()
    if callable(value):
        return (value,)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigurationError(
            f"{name} must be a callable({what}), a list of them or None, got {value!r}"
        )
    for cb in value:
        if not callable(cb):
            raise ConfigurationError(
                f"{name} must be a callable({what}), a list of them or None; {cb!r} is not callable"
            )
    return tuple(value)


@dataclass(frozen=True, slots=True)
class Learning:
    """How the router learns and draws (the half-life is ``Router(half_life=...)``).

    ``prior``: the Beta prior ``(alpha, beta)`` of every path. ``explore``: probability in
    [0, 1) that a uniformly chosen path goes first (the exploration floor). ``policy``: a
    :class:`~adaptive_router.policies.thompson.Policy` instead of ``ThompsonSampling(prior,
    half_life, explore)`` (then leave ``prior`` and ``explore`` alone). ``seed``: an int
    >= 0 or a ``numpy.random.Generator`` for the draws (reproducible routing; an int also
    seeds the default retry jitter). ``clock``: epoch seconds (default ``time.time``): the
    time evidence decays by and outcomes are stamped with. ``min_score``: with
    ``score_fn``, the score at which an attempt passes. ``context_fn(*args, **kwargs) ->
    str`` picks a request's context (or pass ``context=`` to ``run``); at most
    ``max_contexts`` of them per router (those it found in the store, and those it let
    in, reported or not; a request past it raises ValueError); a context borrows at most
    ``context_prior_strength`` pseudo-observations per path from the task level.
    """

    prior: tuple[float, float] = (1.0, 1.0)
    explore: float = 0.02
    policy: Policy | None = None
    seed: int | np.random.Generator | None = None
    clock: Callable[[], float] | None = None
    min_score: float = 0.5
    context_fn: Callable[..., str] | None = None
    max_contexts: int = 1000
    context_prior_strength: float = 10.0

    def __post_init__(self) -> None:
        _set(self, "prior", check_prior(self.prior))
        _set(self, "explore", check_explore(self.explore))
        if self.policy is not None and not isinstance(self.policy, Policy):
            raise ConfigurationError(
                "policy must be a Policy (with half_life and rank(successes, failures, "
                f"rng), e.g. ThompsonSampling(...)) or None, got {self.policy!r}"
            )
        if self.policy is not None and (self.prior, self.explore) != ((1.0, 1.0), 0.02):
            raise ConfigurationError(
                "policy: give a policy or prior/explore, not both (the policy has its own)"
            )
        seed = self.seed
        if not (
            seed is None
            or isinstance(seed, np.random.Generator)
            or (isinstance(seed, Integral) and not isinstance(seed, bool) and int(seed) >= 0)
        ):
            raise ConfigurationError(
                f"seed must be an int >= 0, a numpy.random.Generator or None, got {seed!r}"
            )
        _callable("clock", self.clock, "a callable returning epoch seconds")
        score = self.min_score
        if (
            isinstance(score, bool)
            or not isinstance(score, (int, float))
            or not (0.0 <= score <= 1.0)
        ):
            raise ConfigurationError(f"min_score must be a number in [0, 1], got {score!r}")
        _set(self, "min_score", float(score))
        _callable("context_fn", self.context_fn, "a callable(*args, **kwargs) -> str")
        _set(self, "max_contexts", _count("max_contexts", self.max_contexts, "named contexts"))
        strength = self.context_prior_strength
        if (
            isinstance(strength, bool)
            or not isinstance(strength, (int, float))
            or not (math.isfinite(strength) and strength >= 0)
        ):
            raise ConfigurationError(
                "context_prior_strength must be a number >= 0 (pseudo-observations borrowed "
                f"from the task level), got {strength!r}"
            )
        _set(self, "context_prior_strength", float(strength))

    def generator(self) -> np.random.Generator:
        """The draws' generator: ``seed`` itself when it is one, else seeded from it."""
        if isinstance(self.seed, np.random.Generator):
            return self.seed
        return np.random.default_rng(None if self.seed is None else int(self.seed))


@dataclass(frozen=True, slots=True)
class Resilience:
    """Router-wide defaults for every path that leaves them at ``INHERIT``.

    ``timeout``: seconds (or a ``timedelta``) per call, ``None`` = no limit. ``retry``: a
    :class:`~adaptive_router.resilience.RetryPolicy`, ``None`` = no retries, ``INHERIT``
    = the default ``RetryPolicy()`` (its jitter seeded by an int ``Learning.seed``).
    ``breaker``: a :class:`~adaptive_router.resilience.CircuitBreaker` template (each path
    gets its own copy), a factory ``name -> CircuitBreaker``, or ``None``; the final
    fallback never gets one.
    """

    timeout: float | timedelta | None = 30.0
    retry: RetryPolicy | Inherit | None = INHERIT
    breaker: BreakerSpec | None = default_breaker

    def __post_init__(self) -> None:
        _set(self, "timeout", check_timeout("timeout", self.timeout))
        if not (self.retry is None or isinstance(self.retry, (RetryPolicy, Inherit))):
            raise ConfigurationError(
                f"retry must be a RetryPolicy, None (no retries) or INHERIT (the default), "
                f"got {self.retry!r}"
            )
        if not (
            self.breaker is None
            or isinstance(self.breaker, CircuitBreaker)
            or callable(self.breaker)
        ):
            raise ConfigurationError(
                "breaker must be a CircuitBreaker (a template: each path gets its own), "
                f"a factory name -> CircuitBreaker, or None, got {self.breaker!r}"
            )

    @property
    def timeout_s(self) -> float | None:
        """``timeout`` in seconds (None: no limit)."""
        return cast("float | None", self.timeout)


@dataclass(frozen=True, slots=True)
class Persistence:
    """How outcomes reach the store.

    ``durability``: ``"batch"`` (write-behind, one transaction per batch, at most
    ``flush_interval`` seconds of outcomes at risk in a crash) or ``"sync"`` (written
    before ``run`` returns). ``flush_interval`` (<= 1 s) and ``refresh_interval``: the
    writer's cadence and the cache's reload from the store. ``max_buffer``: outcomes (and
    held decisions) kept in memory while the store is unreachable, oldest dropped and
    counted. ``pending_ttl``: a ``choose`` not reported within it is counted as a failure
    (``on_expired="failure"``, kind ``expired``) or forgotten (``"drop"``).
    ``start_without_store``: start even if the database is unreachable (route from the
    priors, buffer, and run the start-up checks once it is reached). ``log_decisions``:
    keep each routed request's decision evidence and propensity for off-policy evaluation.
    """

    durability: str = "batch"
    flush_interval: float | timedelta = 0.5
    refresh_interval: float | timedelta = 1.0
    max_buffer: int = 100_000
    pending_ttl: float | timedelta = 3600.0
    on_expired: str = "failure"
    start_without_store: bool = False
    log_decisions: bool = True

    def __post_init__(self) -> None:
        if self.durability not in ("batch", "sync"):
            raise ConfigurationError(
                f"durability must be 'batch' or 'sync', got {self.durability!r}"
            )
        for name in ("flush_interval", "refresh_interval", "pending_ttl"):
            _set(self, name, seconds(getattr(self, name), name, allow_none=False))
        if self.flush_interval_s > 1.0:
            raise ConfigurationError(
                "flush_interval must be <= 1 second (the crash window), "
                f"got {self.flush_interval!r}"
            )
        _set(self, "max_buffer", _count("max_buffer", self.max_buffer, "outcomes held"))
        if self.on_expired not in ("failure", "drop"):
            raise ConfigurationError(
                f"on_expired must be 'failure' or 'drop', got {self.on_expired!r}"
            )
        _flag("start_without_store", self.start_without_store)
        _flag("log_decisions", self.log_decisions)

    @property
    def flush_interval_s(self) -> float:
        """``flush_interval`` in seconds."""
        return cast(float, self.flush_interval)

    @property
    def refresh_interval_s(self) -> float:
        """``refresh_interval`` in seconds."""
        return cast(float, self.refresh_interval)

    @property
    def pending_ttl_s(self) -> float:
        """``pending_ttl`` in seconds."""
        return cast(float, self.pending_ttl)


@dataclass(frozen=True, slots=True)
class Observability:
    """What the router measures and tells.

    ``metrics``: Prometheus metrics (when prometheus-client is installed) in
    ``metrics_registry`` (default: adaptive-router's own registry,
    :func:`adaptive_router.observe.metrics.default_registry`, served by
    ``router.serve_metrics()``; pass ``prometheus_client.REGISTRY`` to put them in the
    global one). ``tracing``: OpenTelemetry spans (``None`` = when a tracer provider is
    configured). ``alerts``: the :class:`~adaptive_router.observe.Alerts` to use (default
    thresholds otherwise, calling ``on_alert``). ``observers``:
    :class:`~adaptive_router.observe.Observer` objects; ``on_outcome``: callables given
    every ``Outcome``. ``capture_usage``: meter the ``openai`` and ``anthropic`` SDK calls
    each attempt makes (``"include_usage"`` also asks chat streams for their usage).
    ``prices``: ``{"model": (input_usd_per_mtok, output_usd_per_mtok)}`` overrides or a
    :class:`~adaptive_router.metering.prices.Pricer`. ``heartbeat``: seconds between the
    router's health snapshots in its store, for the dashboard (``None``: off; a router
    that owns an in-process store writes none: nothing else could read them).
    """

    metrics: bool = True
    metrics_registry: Any = None
    tracing: bool | None = None
    alerts: Alerts | None = None
    on_alert: Callable[[Alert], Any] | Sequence[Callable[[Alert], Any]] | None = None
    observers: Sequence[Observer] = ()
    on_outcome: Callable[[Outcome], Any] | Sequence[Callable[[Outcome], Any]] | None = None
    capture_usage: bool | Literal["include_usage"] = True
    prices: Mapping[str, tuple[float, float]] | Pricer | None = None
    heartbeat: float | timedelta | None = DEFAULT_INTERVAL_S
    _pricer: Pricer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _flag("metrics", self.metrics)
        registry = self.metrics_registry
        if registry is not None and not (
            callable(getattr(registry, "register", None))
            and callable(getattr(registry, "collect", None))
        ):
            raise ConfigurationError(
                "metrics_registry must be a prometheus_client CollectorRegistry or None "
                f"(adaptive-router's own registry), got {registry!r}"
            )
        if not (self.tracing is None or isinstance(self.tracing, bool)):
            raise ConfigurationError(
                f"tracing must be True, False or None (when configured), got {self.tracing!r}"
            )
        if self.tracing is True:
            # Asked for by name: silence would leave the user looking for spans never made.
            require("opentelemetry", "tracing", "Observability(tracing=True)")
        if not (self.alerts is None or isinstance(self.alerts, Alerts)):
            raise ConfigurationError(
                f"alerts must be an Alerts(...) or None (default thresholds), got {self.alerts!r}"
            )
        _set(self, "on_alert", _callbacks("on_alert", self.on_alert, "Alert"))
        if self.alerts is not None and self.on_alert:
            raise ConfigurationError(
                "on_alert: give the callbacks to your Alerts(on_alert=...) when you pass alerts"
            )
        observers = self.observers
        if isinstance(observers, Observer) or not isinstance(observers, Sequence):
            raise ConfigurationError(
                f"observers must be a list of Observer instances, got {observers!r}"
            )
        for obs in observers:
            if not isinstance(obs, Observer):
                raise ConfigurationError(
                    f"observers must be Observer instances, got {type(obs).__name__}"
                )
        _set(self, "observers", tuple(observers))
        _set(self, "on_outcome", _callbacks("on_outcome", self.on_outcome, "Outcome"))
        if not isinstance(self.capture_usage, bool) and self.capture_usage != "include_usage":
            raise ConfigurationError(
                f"capture_usage must be True, False or 'include_usage', got {self.capture_usage!r}"
            )
        _set(self, "_pricer", _pricer(self.prices))
        if self.heartbeat is not None:
            _set(self, "heartbeat", seconds(self.heartbeat, "heartbeat", allow_none=False))

    @property
    def heartbeat_s(self) -> float | None:
        """``heartbeat`` in seconds (None: off)."""
        return cast("float | None", self.heartbeat)

    @property
    def outcome_callbacks(self) -> tuple[Callable[[Outcome], Any], ...]:
        """``on_outcome`` as a tuple of callables."""
        return cast("tuple[Callable[[Outcome], Any], ...]", self.on_outcome)

    @property
    def alert_callbacks(self) -> tuple[Callable[[Alert], Any], ...]:
        """``on_alert`` as a tuple of callables."""
        return cast("tuple[Callable[[Alert], Any], ...]", self.on_alert)

    @property
    def pricer(self) -> Pricer:
        """``prices`` as a :class:`Pricer` (made once, shared by the routers given this)."""
        return self._pricer


def _pricer(prices: object) -> Pricer:
    """``prices`` as a :class:`Pricer` (its overrides checked)."""
    if isinstance(prices, Pricer):
        return prices
    if prices is not None and not isinstance(prices, Mapping):
        raise ConfigurationError(
            "prices must be {model: (input_usd_per_mtok, output_usd_per_mtok)}, a Pricer "
            f"or None, got {prices!r}"
        )
    for model in prices or {}:
        if not isinstance(model, str):
            raise ConfigurationError(f"prices: model names must be strings, got {model!r}")
    try:
        return Pricer(prices)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
