"""The simulated world: paths with success rates that change over time (abruptly or
linearly), per-attempt costs and latencies, an optional final fallback, delayed feedback;
the scenario builders (:func:`stationary`, :func:`abrupt`, :func:`drift`,
:func:`recovery`) and the outcome draws (:func:`outcome_table`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from adaptive_router.policies.thompson import FloatArray

BoolArray = NDArray[np.bool_]

__all__ = [
    "BoolArray",
    "Change",
    "Environment",
    "FinalPath",
    "abrupt",
    "drift",
    "outcome_table",
    "recovery",
    "stationary",
]


@dataclass(frozen=True)
class Change:
    """Path ``path``'s success rate moves to ``to``.

    Abrupt at step ``start`` when ``end`` is None (or equal to ``start``);
    otherwise linear from the rate in force before ``start`` to ``to`` at ``end``.
    """

    path: int
    start: int
    to: float
    end: int | None = None


@dataclass(frozen=True)
class FinalPath:
    """A final always-works fallback path (cached answer, rules, human queue): not learned."""

    name: str = "fallback"
    latency_ms: float = 0.0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Environment:
    """Bernoulli paths whose success rates follow a piecewise-linear schedule.

    ``delay``: outcomes become visible to the policy ``delay`` requests later
    (0 = at once, as with ``run``; > 0 as with ``choose`` and a late ``report``).
    ``latency_ms`` and ``cost_usd`` are per attempt, per path (cost = tokens × price);
    ``final`` is an optional always-works path tried after every learned path failed.
    """

    rates: tuple[float, ...]
    changes: tuple[Change, ...] = ()
    delay: int = 0
    latency_ms: tuple[float, ...] | None = None
    cost_usd: tuple[float, ...] | None = None
    final: FinalPath | None = None
    names: tuple[str, ...] | None = None
    label: str = "bernoulli"

    def __post_init__(self) -> None:
        # Accept lists (and numpy arrays) but store tuples: the environment is immutable.
        for name in ("rates", "latency_ms", "cost_usd"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in value))
        if self.names is not None:
            object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "changes", tuple(self.changes))
        k = len(self.rates)
        if k < 1:
            raise ValueError("Environment needs at least one path rate")
        values = [*self.rates, *(c.to for c in self.changes)]
        if not all(0.0 <= float(r) <= 1.0 for r in values):
            raise ValueError(f"success rates must be in [0, 1], got {values}")
        for c in self.changes:
            if not 0 <= c.path < k:
                raise ValueError(f"Change.path {c.path} is not a path index (0..{k - 1})")
            if c.start < 0 or (c.end is not None and c.end < c.start):
                raise ValueError(f"Change needs 0 <= start <= end, got {c}")
        if isinstance(self.delay, bool) or not isinstance(self.delay, int) or self.delay < 0:
            raise ValueError(f"delay must be an int >= 0 (requests), got {self.delay!r}")
        for name, vec in (("latency_ms", self.latency_ms), ("cost_usd", self.cost_usd)):
            if vec is not None and len(vec) != k:
                raise ValueError(f"{name} needs one value per path ({k}), got {len(vec)}")
        if self.names is not None and len(self.names) != k:
            raise ValueError(f"names needs one name per path ({k}), got {len(self.names)}")

    @property
    def n_paths(self) -> int:
        """K, the number of learned paths."""
        return len(self.rates)

    @property
    def path_names(self) -> tuple[str, ...]:
        """Names for tables and plots (``names`` or A, B, C, ...)."""
        if self.names is not None:
            return self.names
        return tuple(chr(ord("A") + i) if i < 26 else f"P{i}" for i in range(self.n_paths))

    def rate_table(self, horizon: int) -> FloatArray:
        """True success rate of every path at every step, shape ``(horizon, K)``."""
        table = np.tile(np.asarray(self.rates, dtype=np.float64), (horizon, 1))
        for c in sorted(self.changes, key=lambda c: c.start):
            if c.start >= horizon:
                continue
            before = table[c.start - 1, c.path] if c.start > 0 else self.rates[c.path]
            end = c.start if c.end is None else c.end
            if end > c.start:
                ramp_to = min(end, horizon - 1)
                steps = np.arange(c.start, ramp_to + 1)
                table[c.start : ramp_to + 1, c.path] = before + (c.to - before) * (
                    (steps - c.start + 1) / (end - c.start + 1)
                )
                table[ramp_to + 1 :, c.path] = c.to
            else:
                table[c.start :, c.path] = c.to
        return table


def _env(
    rates: Sequence[float], changes: tuple[Change, ...], label: str, kwargs: dict[str, Any]
) -> Environment:
    kwargs.setdefault("label", label)
    return Environment(tuple(rates), changes, **kwargs)


def stationary(rates: Sequence[float], **kwargs: Any) -> Environment:
    """Paths with fixed success rates. ``kwargs``: the other :class:`Environment` fields."""
    return _env(rates, (), "stationary", kwargs)


def abrupt(rates: Sequence[float], path: int, at: int, to: float, **kwargs: Any) -> Environment:
    """Path ``path`` drops (or jumps) to rate ``to`` at step ``at``: an outage or a bad deploy."""
    return _env(rates, (Change(path, at, to),), "abrupt", kwargs)


def drift(
    rates: Sequence[float], path: int, start: int, end: int, to: float, **kwargs: Any
) -> Environment:
    """Path ``path`` moves linearly to rate ``to`` between steps ``start`` and ``end``."""
    return _env(rates, (Change(path, start, to, end),), "drift", kwargs)


def recovery(
    rates: Sequence[float], path: int, down_at: int, up_at: int, low: float, **kwargs: Any
) -> Environment:
    """Path ``path`` falls to ``low`` at ``down_at`` and gets good again at ``up_at``.

    Noticing the recovery needs exploration (or a half-life): a path that lost
    all traffic gets no new evidence.
    """
    if up_at <= down_at:
        raise ValueError("recovery needs up_at > down_at")
    back = float(rates[path])
    changes = (Change(path, down_at, low), Change(path, up_at, back))
    return _env(rates, changes, "recovery", kwargs)


def outcome_table(
    env: Environment, horizon: int, replications: int, env_rng: np.random.Generator
) -> BoolArray:
    """The outcomes :func:`simulate` draws from ``env_rng``, shape ``(horizon, R, K)``.

    ``[t, r, k]`` is whether path ``k`` would succeed if tried at step ``t`` of
    replication ``r``; use it to replay the same world through a live Router or
    another library.
    """
    rates = env.rate_table(horizon)
    # One (T, R, K) draw consumes the generator exactly like T successive (R, K) draws.
    draws: BoolArray = env_rng.random((horizon, replications, env.n_paths)) < rates[:, None, :]
    return draws
