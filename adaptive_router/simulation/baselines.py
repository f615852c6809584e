"""Baseline policies to compare Thompson Sampling with: a fixed fallback chain, random
order, ε-greedy, UCB1 and an oracle that knows the true rates.

Each has the :class:`~adaptive_router.policy.Policy` interface the Router calls,
``rank(successes, failures, rng)`` with a ``half_life``, so it runs in the simulator
and behind a live Router alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from adaptive_router.policy import FloatArray, IntArray, Policy

__all__ = [
    "UCB1",
    "EpsilonGreedy",
    "Oracle",
    "StaticOrder",
    "StepAware",
    "UniformRandom",
    "policy_label",
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
