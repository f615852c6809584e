"""Objectives: rank paths by expected cost or time to a success instead of success alone.

Decision math without I/O. When a request tries paths in turn until one succeeds,
*whether* it succeeds does not depend on the order; the order decides how much money
and time it takes. For independent paths with success probabilities p_i and per-attempt
costs c_i, the order minimizing the expected cost to the first success is ascending
``c_i / p_i`` (optimal sequential search, Simon & Kadane 1975: swapping two adjacent
paths i, j changes the expected cost by ``c_j p_i - c_i p_j`` times the probability of
reaching them, so ascending ratio is optimal). A final always-works fallback after every
learned path adds ``c_final Π(1 - p_i)``, the same for every order.

:class:`ObjectiveThompsonSampling` keeps Thompson Sampling's exploration: θ_i is drawn
from each Beta posterior (the *same* draws, from the same generator, in the same order as
:class:`~adaptive_router.policy.ThompsonSampling`), and paths are ranked by ascending
``key_i = c_i / θ_i``. ``c_i`` is the objective's per-attempt cost: dollars for
``"cost"``, seconds for ``"latency"``, ``c_i + rate · t_i`` for an :class:`Objective`
with a rate. With ``objective="success"`` every c_i is 1 and the order is bit-identical to
``ThompsonSampling.rank``.

Why point estimates of c_i (decayed means of the evidence) rather than drawing them from
a posterior too, as Budgeted Thompson Sampling (Xia et al. 2015) does: per-attempt cost
and latency of an LLM call vary little around their mean compared with the uncertainty
about success, and with a point estimate the probability of each decision stays a
one-dimensional integral that :mod:`adaptive_router.propensity` computes exactly from
the logged ``(α, β, c)`` (it handles ``key = c / θ``); a second random draw per path
would make off-policy evaluation need the cost posteriors too.

Before a path has cost (or latency) data, its c_i is, in this order: the caller's prior
(``expected_cost_usd`` / ``expected_latency_ms`` per path, ``nan`` = none), else the
mean over the paths that do have data, else — no path has any — all equal, so the
ranking falls back to the success order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from adaptive_router.policy import FloatArray, IntArray, ThompsonSampling

__all__ = [
    "OBJECTIVE_NAMES",
    "Objective",
    "ObjectiveName",
    "ObjectiveThompsonSampling",
    "expected_costs",
    "resolve_objective",
]

ObjectiveName = Literal["success", "cost", "latency"]
OBJECTIVE_NAMES: tuple[str, ...] = ("success", "cost", "latency")

#: Per-attempt costs are floored here so that a free path (c = 0) still has a finite,
#: positive key: free paths then rank among themselves by θ, and the propensity
#: integral (which needs c > 0) stays defined.
MIN_COST = 1e-12


def _non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    v = float(value)
    if math.isnan(v) or v < 0.0 or math.isinf(v):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


@dataclass(frozen=True)
class Objective:
    """What a request should minimize on its way to a success.

    The per-attempt cost of path i is ``cost_weight · c_i + usd_per_second · t_i``
    (c_i in dollars, t_i in seconds), and paths are ranked by that divided by their
    sampled success probability: the expected cost (in dollars, latency priced at
    ``usd_per_second``) to reach a success. ``Objective(cost_weight=0, usd_per_second=1)``
    ranks by expected time to a success in seconds.

    ``success_value_usd``: what one success is worth; a path whose expected cost to a
    success exceeds it is tried only after every other learned path (a fallback only).
    None: no such cut.
    """

    cost_weight: float = 1.0
    usd_per_second: float = 0.0
    success_value_usd: float | None = None
    name: str = "custom"

    def __post_init__(self) -> None:
        object.__setattr__(self, "cost_weight", _non_negative("cost_weight", self.cost_weight))
        object.__setattr__(
            self, "usd_per_second", _non_negative("usd_per_second", self.usd_per_second)
        )
        if self.success_value_usd is not None:
            v = _non_negative("success_value_usd", self.success_value_usd)
            object.__setattr__(self, "success_value_usd", v)

    @property
    def ranks_by_success(self) -> bool:
        """True when neither cost nor latency counts: plain Thompson Sampling order."""
        return self.cost_weight == 0.0 and self.usd_per_second == 0.0

    @property
    def uses_cost(self) -> bool:
        return self.cost_weight > 0.0

    @property
    def uses_latency(self) -> bool:
        return self.usd_per_second > 0.0

    def per_attempt(self, costs: FloatArray | None, latencies_s: FloatArray | None) -> FloatArray:
        """Per-attempt objective cost ``cost_weight · c + usd_per_second · t`` (arrays of the
        same shape; a term whose weight is 0 may be None)."""
        total: FloatArray | None = None
        if self.uses_cost:
            if costs is None:
                raise ValueError("this objective needs costs (expected cost per attempt)")
            total = self.cost_weight * np.asarray(costs, dtype=np.float64)
        if self.uses_latency:
            if latencies_s is None:
                raise ValueError("this objective needs latencies (seconds per attempt)")
            lat = self.usd_per_second * np.asarray(latencies_s, dtype=np.float64)
            total = lat if total is None else total + lat
        if total is None:
            raise ValueError("a success objective has no per-attempt cost")
        return total


#: The named objectives. "latency" measures seconds with a unit rate, so its keys are
#: expected seconds to a success.
_NAMED: dict[str, Objective] = {
    "success": Objective(cost_weight=0.0, usd_per_second=0.0, name="success"),
    "cost": Objective(cost_weight=1.0, usd_per_second=0.0, name="cost"),
    "latency": Objective(cost_weight=0.0, usd_per_second=1.0, name="latency"),
}


def resolve_objective(objective: str | Objective | None) -> Objective:
    """``"success"`` | ``"cost"`` | ``"latency"`` | an :class:`Objective` (None = success)."""
    if objective is None:
        return _NAMED["success"]
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, str):
        found = _NAMED.get(objective)
        if found is None:
            raise ValueError(
                f"objective must be one of {', '.join(map(repr, OBJECTIVE_NAMES))} or an "
                f"Objective(cost_weight=..., usd_per_second=...), got {objective!r}"
            )
        return found
    raise ValueError(
        "objective must be 'success', 'cost', 'latency' or an Objective(...), "
        f"got {type(objective).__name__}"
    )


def expected_costs(
    means: Sequence[float | None] | FloatArray,
    priors: Sequence[float | None] | None = None,
    *,
    parameter: str = "expected cost",
) -> FloatArray:
    """Point estimates per path (last axis): the learned mean where there is one (not NaN),
    else the caller's prior, else the mean of the paths with data, else 1.0 for all
    (every path equal: the ranking falls back to the success order).

    ``means`` may carry batch dimensions ``(..., K)``; ``priors`` has K entries (None or
    NaN = no prior). Negative or infinite priors raise, naming ``parameter``.
    """
    m = np.array(
        [np.nan if v is None else v for v in means] if isinstance(means, Sequence) else means,
        dtype=np.float64,
    )
    if priors is not None:
        if len(priors) != m.shape[-1]:
            raise ValueError(f"{parameter}: {len(priors)} priors for {m.shape[-1]} paths")
        pri = np.array([np.nan if p is None else float(p) for p in priors], dtype=np.float64)
        bad = ~np.isnan(pri) & ~((pri >= 0.0) & np.isfinite(pri))
        if np.any(bad):
            raise ValueError(
                f"{parameter} must be finite and >= 0 per path, got {pri[bad].tolist()}"
            )
        m = np.where(np.isnan(m), pri, m)
    known = ~np.isnan(m)
    count = known.sum(axis=-1, keepdims=True)
    total = np.where(known, m, 0.0).sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        fill = np.where(count > 0, total / np.maximum(count, 1), 1.0)
    out: FloatArray = np.where(known, m, fill)
    return out


class ObjectiveThompsonSampling(ThompsonSampling):
    """Thompson Sampling that orders by expected cost (or time) to a success.

    ``rank(successes, failures, rng, costs=None, latencies=None)``: ``costs`` are the
    per-attempt point estimates in dollars, ``latencies`` in **milliseconds** (as the
    stores and the simulator keep them), both shaped like ``successes`` (``(..., K)``) or
    ``(K,)``, already filled for paths without data (see :func:`expected_costs`). The
    generator is consumed exactly as :meth:`ThompsonSampling.rank` consumes it, so with
    the success objective the order is identical, and any objective sees the same θ draws.
    """

    def __init__(
        self,
        prior: tuple[float, float] = (1.0, 1.0),
        half_life: float | None = None,
        explore: float = 0.02,
        objective: str | Objective = "cost",
    ) -> None:
        super().__init__(prior=prior, half_life=half_life, explore=explore)
        self.objective = resolve_objective(objective)

    def __repr__(self) -> str:
        return (
            f"ObjectiveThompsonSampling(prior={self.prior}, half_life={self.half_life}, "
            f"explore={self.explore}, objective={self.objective!r})"
        )

    @property
    def name(self) -> str:
        """The simulator's label."""
        hl = "no half-life" if self.half_life is None else f"half-life {self.half_life:g}"
        return f"TS, objective {self.objective.name} ({hl})"

    def attempt_costs(
        self, costs: FloatArray | None, latencies_ms: FloatArray | None
    ) -> FloatArray | None:
        """The per-attempt objective cost c_i (None for the success objective)."""
        obj = self.objective
        if obj.ranks_by_success:
            return None
        lat_s = None if latencies_ms is None else np.asarray(latencies_ms, np.float64) / 1000.0
        c = obj.per_attempt(costs, lat_s)
        if np.any(np.isnan(c)) or np.any(c < 0.0):
            raise ValueError(
                "costs and latencies must be >= 0 and not NaN (fill paths without data "
                "with expected_costs())"
            )
        return np.maximum(c, MIN_COST)

    def rank(
        self,
        successes: FloatArray,
        failures: FloatArray,
        rng: np.random.Generator,
        costs: FloatArray | None = None,
        latencies: FloatArray | None = None,
    ) -> IntArray:
        """Path indices best-first: ascending c_i / θ_i, explored path first with prob ε."""
        c = self.attempt_costs(costs, latencies)
        if c is None:
            return super().rank(successes, failures, rng)
        if successes.ndim == 1:
            return self._rank_one_cost(successes, failures, rng, c)
        theta = self.sample(successes, failures, rng)
        with np.errstate(divide="ignore"):
            key = np.broadcast_to(c, theta.shape) / theta
        key = np.array(key, dtype=np.float64)
        if self.explore > 0.0:
            k = theta.shape[-1]
            batch = theta.shape[:-1]
            exploring = rng.random(batch) < self.explore
            if np.any(exploring):
                pick = rng.integers(0, k, size=batch)
                current = np.take_along_axis(key, pick[..., None], -1)[..., 0]
                # -1 is below every key (keys are >= 0): the explored path goes first.
                np.put_along_axis(
                    key, pick[..., None], np.where(exploring, -1.0, current)[..., None], axis=-1
                )
        order: IntArray = np.argsort(key, axis=-1, kind="stable")
        v = self.objective.success_value_usd
        if v is not None:
            # Paths whose expected cost to a success exceeds its value go behind the
            # others, keeping their key order (a stable sort on "over" after the key).
            over = np.take_along_axis(key > v, order, axis=-1)
            order = np.take_along_axis(order, np.argsort(over, axis=-1, kind="stable"), -1)
        return order

    def _rank_one_cost(
        self,
        successes: FloatArray,
        failures: FloatArray,
        rng: np.random.Generator,
        c: FloatArray,
    ) -> IntArray:
        """The Router's case: scalar draws consume the generator as ThompsonSampling's does."""
        a0, b0 = self.prior
        draw = rng.beta
        cs = np.broadcast_to(c, successes.shape).tolist()
        key = []
        for s, f, ci in zip(successes.tolist(), failures.tolist(), cs, strict=True):
            theta = draw(a0 + s, b0 + f)
            key.append(ci / theta if theta > 0.0 else math.inf)
        if self.explore > 0.0 and rng.random() < self.explore:
            key[int(rng.integers(0, len(key)))] = -1.0
        v = self.objective.success_value_usd
        if v is None:
            order = sorted(range(len(key)), key=key.__getitem__)
        else:
            order = sorted(range(len(key)), key=lambda i: (key[i] > v, key[i]))
        return np.array(order, dtype=np.intp)
