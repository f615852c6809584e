"""Baseline policies to compare Thompson Sampling with: a fixed fallback chain, random
order, ε-greedy, UCB1 and an oracle that knows the true rates.

Each has the :class:`~adaptive_router.policies.thompson.Policy` interface the Router calls,
``rank(successes, failures, rng)`` with a ``half_life``, so it runs in the simulator
and behind a live Router alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from adaptive_router.policies.objectives import MIN_COST, Objective, resolve_objective
from adaptive_router.policies.thompson import FloatArray, IntArray, Policy, check_prior

__all__ = [
    "UCB1",
    "BlendedScore",
    "EpsilonGreedy",
    "Oracle",
    "RatioOracle",
    "StaticOrder",
    "StepAware",
    "UniformRandom",
    "all_fixed_orders",
    "policy_label",
    "quality_first",
]


@runtime_checkable
class StepAware(Protocol):
    """A policy that must be told the step and the true rates before each ``rank`` (the oracle)."""

    def at_step(self, step: int, rates: FloatArray) -> None:
        """Called by the simulator just before ``rank`` at ``step`` (0-based)."""
        ...


class StaticOrder:
    """Always the same order: try A, then B, then C — the fallback chain teams write by hand."""

    half_life: float | None = None

    def __init__(self, order: Sequence[int] | None = None) -> None:
        self.order: IntArray | None = None if order is None else np.asarray(order, dtype=np.intp)
        self.name = "static order"

    def __repr__(self) -> str:
        return f"StaticOrder({None if self.order is None else self.order.tolist()})"

    def rank(
        self, successes: FloatArray, failures: FloatArray, rng: np.random.Generator
    ) -> IntArray:
        """``order`` (default ``0, 1, ..., K-1``) for every batch row; ignores the evidence."""
        k = successes.shape[-1]
        order = np.arange(k, dtype=np.intp) if self.order is None else self.order
        if order.shape != (k,) or sorted(order.tolist()) != list(range(k)):
            raise ValueError(f"StaticOrder: order must be a permutation of 0..{k - 1}")
        return np.broadcast_to(order, successes.shape)


class UniformRandom:
    """A uniformly random order per request: the no-learning baseline."""

    half_life: float | None = None

    def __init__(self) -> None:
        self.name = "uniform random"

    def __repr__(self) -> str:
        return "UniformRandom()"

    def rank(
        self, successes: FloatArray, failures: FloatArray, rng: np.random.Generator
    ) -> IntArray:
        """A random permutation per batch row."""
        return np.argsort(rng.random(successes.shape), axis=-1)


class EpsilonGreedy:
    """Best empirical mean first; with probability ``epsilon`` a random order instead.

    Paths never tried rank first (their mean counts as +inf), so each is tried once.
    """

    def __init__(self, epsilon: float = 0.1, half_life: float | None = None) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.half_life = half_life
        self.name = f"ε-greedy (ε={epsilon:g})"

    def __repr__(self) -> str:
        return f"EpsilonGreedy(epsilon={self.epsilon}, half_life={self.half_life})"

    def rank(
        self, successes: FloatArray, failures: FloatArray, rng: np.random.Generator
    ) -> IntArray:
        """Greedy order by empirical mean, a random permutation for exploring rows."""
        n = successes + failures
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(n > 0, successes / n, np.inf)
        order = np.argsort(-mean, axis=-1, kind="stable")
        if self.epsilon > 0.0:
            exploring = rng.random(successes.shape[:-1]) < self.epsilon
            if np.any(exploring):
                shuffled = np.argsort(rng.random(successes.shape), axis=-1)
                order = np.where(exploring[..., None], shuffled, order)
        return order


class UCB1:
    """UCB1 (Auer et al. 2002): mean + sqrt(2 ln n / n_k), untried paths first.

    Counts are derived from the evidence itself (``n_k = s_k + f_k``, ``n = Σ n_k``),
    so the policy needs no step counter and works unchanged behind the Router.
    """

    def __init__(self, half_life: float | None = None) -> None:
        self.half_life = half_life
        self.name = "UCB1"

    def __repr__(self) -> str:
        return f"UCB1(half_life={self.half_life})"

    def rank(
        self, successes: FloatArray, failures: FloatArray, rng: np.random.Generator
    ) -> IntArray:
        """Paths by descending upper confidence bound."""
        n = successes + failures
        # Decayed sums can total < 1; log(1) = 0 keeps the bonus defined (and zero) there.
        total = np.maximum(n.sum(axis=-1, keepdims=True), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            index = np.where(n > 0, successes / n + np.sqrt(2.0 * np.log(total) / n), np.inf)
        return np.argsort(-index, axis=-1, kind="stable")


class Oracle:
    """Knows the current true success rates and ranks by them: zero regret by definition.

    The simulator calls :meth:`at_step` before each ``rank`` (see :class:`StepAware`).
    """

    half_life: float | None = None

    def __init__(self) -> None:
        self.name = "oracle"
        self._order: IntArray | None = None

    def __repr__(self) -> str:
        return "Oracle()"

    def at_step(self, step: int, rates: FloatArray) -> None:
        """Learn the true rates of this step."""
        self._order = np.argsort(-np.asarray(rates, dtype=np.float64), kind="stable")

    def rank(
        self, successes: FloatArray, failures: FloatArray, rng: np.random.Generator
    ) -> IntArray:
        """Paths by descending true rate."""
        if self._order is None:
            raise RuntimeError("Oracle.rank before at_step: only the simulator can drive an oracle")
        return np.broadcast_to(self._order, successes.shape)


class RatioOracle:
    """Knows the true rates and per-attempt costs: ranks by ascending ``c_i / p_i``.

    For independent paths tried until the first success this is the order with the least
    expected cost (or, with latencies, time) to a success (Simon & Kadane 1975), so it is
    the reference for regret in dollars and seconds. ``per_attempt``: the objective's cost
    of one attempt per path (see :meth:`for_objective`).
    """

    half_life: float | None = None

    def __init__(self, per_attempt: Sequence[float], name: str = "oracle (c/p)") -> None:
        c = np.asarray(per_attempt, dtype=np.float64)
        if c.ndim != 1 or np.any(~np.isfinite(c)) or np.any(c < 0):
            raise ValueError(f"per_attempt must be finite costs >= 0, got {per_attempt!r}")
        self.per_attempt = np.maximum(c, MIN_COST)
        self.name = name
        self._order: IntArray | None = None

    @classmethod
    def for_objective(
        cls,
        objective: str | Objective,
        cost_usd: Sequence[float] | None,
        latency_ms: Sequence[float] | None,
        name: str | None = None,
    ) -> RatioOracle:
        """The oracle of an objective, from an environment's true costs and latencies."""
        obj = resolve_objective(objective)
        if obj.ranks_by_success:
            raise ValueError("objective 'success' has no per-attempt cost: use Oracle()")
        costs = None if cost_usd is None else np.asarray(cost_usd, dtype=np.float64)
        lat_s = None if latency_ms is None else np.asarray(latency_ms, dtype=np.float64) / 1000
        return cls(obj.per_attempt(costs, lat_s).tolist(), name or f"oracle ({obj.name})")

    def __repr__(self) -> str:
        return f"RatioOracle({self.per_attempt.tolist()})"

    def at_step(self, step: int, rates: FloatArray) -> None:
        """Learn the true rates of this step."""
        p = np.asarray(rates, dtype=np.float64)
        with np.errstate(divide="ignore"):
            key = np.where(p > 0, self.per_attempt / np.where(p > 0, p, 1.0), np.inf)
        self._order = np.argsort(key, kind="stable")

    def rank(
        self, successes: FloatArray, failures: FloatArray, rng: np.random.Generator
    ) -> IntArray:
        """Paths by ascending true cost to a success."""
        if self._order is None:
            raise RuntimeError("RatioOracle.rank before at_step: only the simulator drives it")
        return np.broadcast_to(self._order, successes.shape)


class BlendedScore:
    """LiteLLM's adaptive-router blend: ``score = w·θ + (1 - w)·(1 - normalized price)``.

    θ ~ Beta(prior + evidence) as in Thompson Sampling; the price is normalized min-max
    over the paths (cheapest 0, dearest 1; all 0 when prices are equal), ``w = 0.7`` by
    default. Paths are tried in descending score. An ad-hoc blend of a probability and a
    price, kept as the baseline the issue compares against; latency is not scored.
    """

    def __init__(
        self,
        prices: Sequence[float],
        quality_weight: float = 0.7,
        prior: tuple[float, float] = (1.0, 1.0),
        half_life: float | None = None,
    ) -> None:
        p = np.asarray(prices, dtype=np.float64)
        if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any(p < 0):
            raise ValueError(f"prices must be finite numbers >= 0, got {prices!r}")
        if not 0.0 <= quality_weight <= 1.0:
            raise ValueError(f"quality_weight must be in [0, 1], got {quality_weight!r}")
        span = float(p.max() - p.min())
        self.normalized = (p - p.min()) / span if span > 0 else np.zeros_like(p)
        self.quality_weight = float(quality_weight)
        self.prior = check_prior(prior)
        self.half_life = half_life
        self.name = f"blend {quality_weight:g}·θ + {1 - quality_weight:g}·(1 - price)"

    def __repr__(self) -> str:
        return f"BlendedScore(quality_weight={self.quality_weight})"

    def rank(
        self, successes: FloatArray, failures: FloatArray, rng: np.random.Generator
    ) -> IntArray:
        """Paths by descending blended score."""
        if successes.shape[-1] != self.normalized.size:
            raise ValueError(
                f"BlendedScore has {self.normalized.size} prices for {successes.shape[-1]} paths"
            )
        theta = rng.beta(self.prior[0] + successes, self.prior[1] + failures)
        w = self.quality_weight
        score = w * theta + (1.0 - w) * (1.0 - self.normalized)
        return np.argsort(-score, axis=-1, kind="stable")


def quality_first(rates: Sequence[float]) -> StaticOrder:
    """The chain teams hand-write: the best model first, then the next best, and so on
    (by the success rates they believe at the start)."""
    order = np.argsort(-np.asarray(rates, dtype=np.float64), kind="stable")
    chain = StaticOrder(order.tolist())
    chain.name = "quality-first chain"
    return chain


def all_fixed_orders(k: int, names: Sequence[str] | None = None) -> dict[str, StaticOrder]:
    """Every fixed order of ``k`` paths, keyed ``"fixed: a → b → c"``: run them all and
    pick the best afterwards for the best fixed order in hindsight."""
    labels = list(names) if names is not None else [str(i) for i in range(k)]
    out: dict[str, StaticOrder] = {}
    for order in itertools.permutations(range(k)):
        label = "fixed: " + " → ".join(labels[i] for i in order)
        policy = StaticOrder(list(order))
        policy.name = label
        out[label] = policy
    return out


def policy_label(policy: Policy) -> str:
    """A short human name: a baseline's ``name``, or ``TS`` with its settings."""
    name = getattr(policy, "name", None)
    if isinstance(name, str):
        return name
    hl = policy.half_life
    explore = getattr(policy, "explore", None)
    parts = [type(policy).__name__ if type(policy).__name__ != "ThompsonSampling" else "TS"]
    parts.append("no half-life" if hl is None else f"half-life {hl:g}")
    if explore is not None:
        parts.append(f"explore {explore:g}")
    return f"{parts[0]} ({', '.join(parts[1:])})"
