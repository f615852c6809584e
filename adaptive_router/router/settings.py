"""Per-path resilience settings: each path's own value, else the router-wide default."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from adaptive_router.errors import ConfigurationError
from adaptive_router.paths import Inherit, Path
from adaptive_router.resilience import CircuitBreaker, RateLimit, RetryPolicy
from adaptive_router.resilience.timeouts import check_timeout

__all__ = ["BreakerSpec", "PathSettings", "default_breaker", "resolve_settings"]

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
