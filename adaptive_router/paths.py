"""A path: one candidate way of doing the task, with its own settings."""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from adaptive_router.errors import ConfigurationError
from adaptive_router.outcomes import MAX_TOKENS
from adaptive_router.resilience import CircuitBreaker, RateLimit, RetryPolicy
from adaptive_router.resilience.timeouts import check_timeout

MAX_NAME_LENGTH = 255


class Inherit:
    """Sentinel: take the router-wide default for this setting."""

    _instance: Inherit | None = None

    def __new__(cls) -> Inherit:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "INHERIT"


#: A Path setting left at ``INHERIT`` takes the Router's default (``timeout=``, ``retry=``,
#: ``breaker=``); set it to ``None`` to switch the feature off for that path.
INHERIT = Inherit()
#: The old private spelling, kept so that code importing it keeps working.
_Inherit = Inherit


@dataclass(eq=False)
class Path:
    """Wraps a callable as a routable path, with its own resilience settings.

    ``name`` defaults to the callable's qualified name and must be unique within a
    router; ``model`` names the model the path calls (used for pricing).
    ``timeout`` (seconds), ``retry`` (:class:`~adaptive_router.resilience.RetryPolicy`)
    and ``breaker`` (:class:`~adaptive_router.resilience.CircuitBreaker`) default to the
    router's settings; ``None`` switches one off for this path (e.g. ``timeout=None`` for
    an in-process regex, which then runs in the caller's thread with no hand-off cost).
    ``rate_limit`` (:class:`~adaptive_router.resilience.RateLimit`) is per path only.
    ``afn`` is an optional async implementation that :meth:`Router.arun` prefers.
    ``expected_cost_usd`` / ``expected_latency_ms``: what one attempt is expected to cost
    and take before the router has measured it (the prior of ``objective="cost"`` /
    ``"latency"`` and of ``max_cost_usd``); measured means replace them.
    ``expected_tokens=(input, output)``: the tokens one attempt is expected to use; a path
    with a ``model`` and no ``expected_cost_usd`` then gets the model's price for them
    (priced by the router's ``prices``/genai-prices, once, when the router is built) as
    its cost prior. ``expected_cost_usd`` wins when both are given. It may instead be a
    function of the request's arguments (``expected_tokens(*args, **kwargs)``) returning
    ``(input, output)`` for that request: the router prices it at the model's price per
    request, as it would ``estimate_cost_usd`` (which wins when both are given), and the
    path then has no cost prior (provider paths build one with ``price_each_request=True``).
    ``cost_usd``: what one attempt costs, declared, for a path whose calls report no
    usage (a regex, a local model, a flat-priced API). It is the cost of every attempt
    whose cost is otherwise unknown: usage the path returns (a :class:`Result`) or its
    metered SDK calls win, and an attempt that got no billable answer (an error status,
    a refused connection) stays $0. With it, ``costs()`` is complete (not a lower bound)
    once every path's cost is known; it is also the path's cost prior when
    ``expected_cost_usd`` is not given.
    ``estimate_cost_usd``: a function of the request's arguments (called as the path would
    be, ``estimate_cost_usd(*args, **kwargs)``) returning what calling this path on this
    request is expected to cost in USD, or None for no estimate. Where the router weighs
    cost (a spend target's ``θ - λ·c``, ``objective="cost"``, ``max_cost_usd``), it
    replaces the path's learned mean cost for that request: calls whose price grows with
    the input (tokens) are then bought where they gain most per dollar, not at the mean.
    It is not called when nothing weighs cost. Bad estimates: see :meth:`Router.run` and
    :meth:`Router.choose`.
    ``enforces_timeout`` marks a path that applies ``timeout`` itself (provider paths pass
    it to the SDK), so the router does not wrap it in a watchdog thread.
    A bare callable given to :class:`Router` becomes ``Path(fn)``.
    """

    fn: Callable[..., Any]
    name: str | None = None
    model: str | None = None
    timeout: float | timedelta | Inherit | None = INHERIT
    retry: RetryPolicy | Inherit | None = INHERIT
    breaker: CircuitBreaker | Inherit | None = INHERIT
    rate_limit: RateLimit | None = None
    afn: Callable[..., Awaitable[Any]] | None = None
    enforces_timeout: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    expected_cost_usd: float | None = None
    expected_latency_ms: float | None = None
    expected_tokens: tuple[int, int] | Callable[..., tuple[int, int]] | None = None
    cost_usd: float | None = None
    estimate_cost_usd: Callable[..., float | None] | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise ConfigurationError(
                f"paths: {self.fn!r} is not callable; pass a function or Path(fn, name=...)"
            )
        if self.name is None:
            self.name = default_name(self.fn)
        check_name("path name", self.name)
        if self.model is not None and not (isinstance(self.model, str) and self.model.strip()):
            raise ConfigurationError(
                f"path {self.name!r}: model must be a model name such as 'gpt-4o' or None, "
                f"got {self.model!r}"
            )
        if not isinstance(self.metadata, dict):
            raise ConfigurationError(
                f"path {self.name!r}: metadata must be a dict, got {self.metadata!r}"
            )
        if not isinstance(self.enforces_timeout, bool):
            raise ConfigurationError(
                f"path {self.name!r}: enforces_timeout must be True or False, "
                f"got {self.enforces_timeout!r}"
            )
        self.is_async = is_async(self.fn)
        if self.afn is not None and not is_async(self.afn):
            raise ConfigurationError(f"path {self.name!r}: afn must be an async function")
        if not isinstance(self.timeout, Inherit):
            self.timeout = check_timeout(f"path {self.name!r} timeout", self.timeout)
        for attr, kind in (("retry", RetryPolicy), ("breaker", CircuitBreaker)):
            value = getattr(self, attr)
            if not (value is None or isinstance(value, (Inherit, kind))):
                raise ConfigurationError(
                    f"path {self.name!r}: {attr} must be a {kind.__name__} or None, "
                    f"got {type(value).__name__}"
                )
        for attr in ("expected_cost_usd", "expected_latency_ms"):
            value = getattr(self, attr)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigurationError(
                    f"path {self.name!r}: {attr} must be a finite number >= 0 (the prior "
                    f"per attempt before the path has data) or None, got {value!r}"
                )
        cost = self.cost_usd
        if cost is not None:
            if (
                isinstance(cost, bool)
                or not isinstance(cost, (int, float))
                or not math.isfinite(cost)
                or cost < 0
            ):
                raise ConfigurationError(
                    f"path {self.name!r}: cost_usd must be a finite number >= 0 (the declared "
                    f"cost of one attempt, e.g. cost_usd=0.0 for a regex) or None, got {cost!r}"
                )
            self.cost_usd = float(cost)
        if self.estimate_cost_usd is not None and not callable(self.estimate_cost_usd):
            raise ConfigurationError(
                f"path {self.name!r}: estimate_cost_usd must be a function of the request's "
                "arguments returning USD (e.g. lambda prompt: len(prompt) / 4 * 10e-6) or "
                f"None, got {self.estimate_cost_usd!r}"
            )
        if self.expected_tokens is not None:
            self.expected_tokens = _check_tokens(self.name, self.model, self.expected_tokens)
        if not (self.rate_limit is None or isinstance(self.rate_limit, RateLimit)):
            raise ConfigurationError(
                f"path {self.name!r}: rate_limit must be a RateLimit or None, "
                f"got {type(self.rate_limit).__name__}"
            )

    def __repr__(self) -> str:
        return f"Path(name={self.name!r}, model={self.model!r})"


def _check_tokens(
    name: str, model: str | None, value: object
) -> tuple[int, int] | Callable[..., tuple[int, int]]:
    """``expected_tokens`` as ``(input, output)``, two ints in [0, 10¹²], or a function of the
    request returning them (checked per request), on a path with a model (the tokens are
    priced at the model's price; without one they would say nothing)."""
    counts = value if callable(value) else token_pair(value)
    if counts is None:
        raise ConfigurationError(
            f"path {name!r}: expected_tokens must be (input_tokens, output_tokens), two "
            f"ints in [0, 10**12] per attempt (e.g. expected_tokens=(1200, 300)), a function "
            f"of the request returning them, or None; got {value!r}"
        )
    if model is None:
        raise ConfigurationError(
            f"path {name!r}: expected_tokens is priced at the path's model, and it has none; "
            "give model=... or state the cost itself with expected_cost_usd=... (per "
            "request: estimate_cost_usd=...)"
        )
    return counts


def token_pair(value: object) -> tuple[int, int] | None:
    """``value`` as ``(input, output)`` tokens, two ints in [0, :data:`MAX_TOKENS`] (numpy's
    too), else None."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else ()
    counts = [int(n) for n in pair if isinstance(n, numbers.Integral) and not isinstance(n, bool)]
    if len(pair) != 2 or len(counts) != 2 or min(counts) < 0 or max(counts) > MAX_TOKENS:
        return None
    return (counts[0], counts[1])


def default_name(fn: Callable[..., Any]) -> str:
    target = fn.func if isinstance(fn, functools.partial) else fn
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if name is None:
        name = type(target).__qualname__
    return str(name)


def check_name(what: str, name: object) -> str:
    if not isinstance(name, str) or not name or not name.strip():
        raise ConfigurationError(f"{what} must be a non-empty string, got {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigurationError(
            f"{what} is {len(name)} characters; the limit is {MAX_NAME_LENGTH}"
        )
    if "\x00" in name:
        raise ConfigurationError(f"{what} {name!r} contains a NUL byte, which databases reject")
    return name


def is_async(fn: object) -> bool:
    """Whether calling ``fn`` makes a coroutine: an ``async def``, or an object whose
    ``__call__`` is one (``functools.partial`` of either, nested too, included)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    # An instance's __call__ is looked up on its type (its class or a base), as a call does.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(type(fn), "__call__", None)  # noqa: B004 - its coroutine-ness, not callability
    )


def as_path(p: Path | Callable[..., Any]) -> Path:
    if isinstance(p, Path):
        return p
    return Path(p)
