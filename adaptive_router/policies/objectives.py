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
:class:`~adaptive_router.policies.thompson.ThompsonSampling`), and paths are ranked by ascending
``key_i = c_i / θ_i``; given the after-failure evidence, the paths after the first by
``c_i / θ'_i`` with θ' drawn from it (each position by the success probability that applies
there: a path tried second only sees the inputs the first one failed on). The first choice
depends on the first-attempt evidence and the costs alone, so its probability stays the
one-dimensional integral below. ``c_i`` is the objective's per-attempt cost: dollars for
``"cost"``, seconds for ``"latency"``, ``c_i + rate · t_i`` for an :class:`Objective`
with a rate. With ``objective="success"`` every c_i is 1 and the order is bit-identical to
``ThompsonSampling.rank``.

Why point estimates of c_i (decayed means of the evidence) rather than drawing them from
a posterior too, as Budgeted Thompson Sampling (Xia et al. 2015) does: per-attempt cost
and latency of an LLM call vary little around their mean compared with the uncertainty
about success, and with a point estimate the probability of each decision stays a
one-dimensional integral that :mod:`adaptive_router.policies.propensity` computes exactly from
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

from adaptive_router.errors import ConfigurationError
from adaptive_router.policies.pacing import check_target_usd_per_request
from adaptive_router.policies.thompson import FloatArray, IntArray, ThompsonSampling, explore_first

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
        raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}")
    v = float(value)
    if math.isnan(v) or v < 0.0 or math.isinf(v):
        raise ConfigurationError(f"{name} must be a finite number >= 0, got {value!r}")
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

    ``target_usd_per_request``: a spend target B (dollars, at least 1e-9): the most successes
    subject to an average spend per request of at most B over the recent window (the
    task's half-life). Paths are then ranked by ``θ - λ·c`` (θ drawn from the path's
    posterior, c its expected cost of one attempt in dollars, λ >= 0 the price per dollar
    the router learns from realized spend; see :mod:`adaptive_router.policies.pacing`),
    every position of the order alike, each by the θ of its position's evidence. Every
    attempt of a request counts toward its spend, retries of other paths and the final
    fallback included: to keep one attempt per request, use ``Budget(max_attempts=1)``.
    When B exceeds what the best path costs, λ stays 0 and the choice is by θ alone.
    Paths of unknown cost count as the dearest known one
    (:func:`~adaptive_router.policies.pacing.paced_costs`). It prices dollars only:
    leave ``cost_weight``, ``usd_per_second`` and ``success_value_usd`` at their
    defaults. ``Objective(target_usd_per_request=0.002)`` is its usual form.
    """

    cost_weight: float = 1.0
    usd_per_second: float = 0.0
    success_value_usd: float | None = None
    name: str = "custom"
    target_usd_per_request: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cost_weight", _non_negative("cost_weight", self.cost_weight))
        object.__setattr__(
            self, "usd_per_second", _non_negative("usd_per_second", self.usd_per_second)
        )
        if self.success_value_usd is not None:
            v = _non_negative("success_value_usd", self.success_value_usd)
            object.__setattr__(self, "success_value_usd", v)
        if self.target_usd_per_request is not None:
            b = check_target_usd_per_request(self.target_usd_per_request)
            object.__setattr__(self, "target_usd_per_request", b)
            if (
                self.cost_weight != 1.0
                or self.usd_per_second != 0.0
                or self.success_value_usd is not None
            ):
                raise ConfigurationError(
                    "target_usd_per_request prices dollars of spend only: leave cost_weight "
                    "(1), usd_per_second (0) and success_value_usd (None) at their defaults, "
                    "or drop the target"
                )
            if self.name == "custom":
                object.__setattr__(self, "name", "spend target")

    @property
    def paced(self) -> bool:
        """True with a spend target: ranking by ``θ - λ·c``."""
        return self.target_usd_per_request is not None

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
    if not isinstance(means, np.ndarray):
        return np.array(_expected_one(means, priors, parameter), dtype=np.float64)
    m = np.array(means, dtype=np.float64)
    if priors is not None:
        pri = np.array(_check_priors(priors, m.shape[-1], parameter), dtype=np.float64)
        m = np.where(np.isnan(m), pri, m)
    known = ~np.isnan(m)
    count = known.sum(axis=-1, keepdims=True)
    total = np.where(known, m, 0.0).sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        fill = np.where(count > 0, total / np.maximum(count, 1), 1.0)
    out: FloatArray = np.where(known, m, fill)
    return out


def _check_priors(priors: Sequence[float | None], k: int, parameter: str) -> list[float]:
    """Priors as floats (NaN = none); negative or infinite ones raise naming ``parameter``."""
    if len(priors) != k:
        raise ValueError(f"{parameter}: {len(priors)} priors for {k} paths")
    out = [math.nan if p is None else float(p) for p in priors]
    bad = [p for p in out if not math.isnan(p) and not (0.0 <= p < math.inf)]
    if bad:
        raise ValueError(f"{parameter} must be finite and >= 0 per path, got {bad}")
    return out


def _expected_one(
    means: Sequence[float | None], priors: Sequence[float | None] | None, parameter: str
) -> list[float]:
    """:func:`expected_costs` for one request in plain Python (the Router's hot path: a
    few floats, where numpy's per-call overhead would dominate)."""
    m = [math.nan if v is None else float(v) for v in means]
    if priors is not None:
        pri = _check_priors(priors, len(m), parameter)
        m = [p if math.isnan(v) else v for v, p in zip(m, pri, strict=True)]
    known = [v for v in m if not math.isnan(v)]
    fill = sum(known) / len(known) if known else 1.0
    return [fill if math.isnan(v) else v for v in m]


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
        self,
        costs: FloatArray | Sequence[float] | None,
        latencies_ms: FloatArray | Sequence[float] | None,
    ) -> FloatArray | None:
        """The per-attempt objective cost c_i (None for the success objective)."""
        obj = self.objective
        if obj.ranks_by_success:
            return None
        usd = None if costs is None else np.asarray(costs, np.float64)
        lat_s = None if latencies_ms is None else np.asarray(latencies_ms, np.float64) / 1000.0
        c = obj.per_attempt(usd, lat_s)
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
        after_successes: FloatArray | None = None,
        after_failures: FloatArray | None = None,
        after_rng: np.random.Generator | None = None,
        costs: FloatArray | Sequence[float] | None = None,
        latencies: FloatArray | Sequence[float] | None = None,
        price: float = 0.0,
    ) -> IntArray:
        """Path indices best-first: the first by ascending c_i / θ_i (θ from the
        first-attempt evidence; the explored path first with probability ε), the others,
        given ``after_successes``/``after_failures``, by ascending c_i / θ'_i with θ' drawn
        from their after-failure posteriors (see :meth:`ThompsonSampling.rank`), else by
        c_i / θ_i. Each position is ranked by the success probability that applies there.

        With a spend target (:attr:`Objective.paced`) the key is ``-(θ_i - price · c_i)``
        instead, ``price`` being λ (dollars⁻¹, from
        :class:`~adaptive_router.policies.pacing.SpendPacer`): descending θ − λ·c, and at
        ``price=0`` the order of :meth:`ThompsonSampling.rank` (same draws)."""
        if self.objective.ranks_by_success:
            return super().rank(
                successes, failures, rng, after_successes, after_failures, after_rng
            )
        if successes.ndim == 1:
            one = self._rank_one_cost(successes, failures, rng, costs, latencies, price)
            order: IntArray = np.array(one, dtype=np.intp)
        else:
            c = self.attempt_costs(costs, latencies)
            assert c is not None  # not ranking by success
            theta = self.sample(successes, failures, rng)
            key = self._keys(np.broadcast_to(c, theta.shape), theta, price)
            # Below every key: the explored path goes first.
            explore_first(key, rng, self.explore, -np.inf)
            order = self._by_key(key)
        return self._then_later(
            order,
            after_successes,
            after_failures,
            after_rng or rng,
            costs=costs,
            latencies=latencies,
            price=price,
        )

    def rank_later(
        self,
        first: IntArray | int,
        after_successes: FloatArray,
        after_failures: FloatArray,
        rng: np.random.Generator,
        costs: FloatArray | Sequence[float] | None = None,
        latencies: FloatArray | Sequence[float] | None = None,
        price: float = 0.0,
    ) -> IntArray:
        """The paths other than ``first`` best-first (see
        :meth:`ThompsonSampling.rank_later`): by ascending c_i / θ'_i (under a spend target
        descending θ'_i − λ·c_i), θ' drawn from the after-failure posteriors; ``costs``,
        ``latencies`` and ``price`` as :meth:`rank` took them for the first choice."""
        if self.objective.ranks_by_success:
            return super().rank_later(first, after_successes, after_failures, rng)
        if after_successes.ndim == 1:
            return np.array(
                self._later_one_cost(
                    int(first), after_successes, after_failures, rng, costs, latencies, price
                ),
                dtype=np.intp,
            )
        c = self.attempt_costs(costs, latencies)
        assert c is not None  # not ranking by success
        first = np.asarray(first)
        rest, theta2 = self.sample_rest(first, after_successes, after_failures, rng)
        k = after_successes.shape[-1]
        c_rest = np.take_along_axis(np.broadcast_to(c, (*first.shape, k)), rest, -1)
        return np.take_along_axis(rest, self._by_key(self._keys(c_rest, theta2, price)), axis=-1)

    def _keys(self, c: FloatArray, theta: FloatArray, price: float) -> FloatArray:
        """The sort keys of per-attempt costs ``c`` at draws ``theta`` (ascending is best)."""
        if self.objective.paced:
            return np.array(price * c - theta, dtype=np.float64)
        with np.errstate(divide="ignore"):
            return np.array(c / theta, dtype=np.float64)

    def _by_key(self, key: FloatArray) -> IntArray:
        """Indices by ascending ``key`` (last axis); with ``success_value_usd``, those whose
        key exceeds it behind the others, keeping their key order."""
        order: IntArray = np.argsort(key, axis=-1, kind="stable")
        v = self.objective.success_value_usd
        if v is not None:
            # A stable sort on "over" after the key.
            over = np.take_along_axis(key > v, order, axis=-1)
            order = np.take_along_axis(order, np.argsort(over, axis=-1, kind="stable"), -1)
        return order

    def _per_attempt_one(
        self,
        costs: FloatArray | Sequence[float] | None,
        latencies: FloatArray | Sequence[float] | None,
        k: int,
    ) -> list[float]:
        """Each path's per-attempt objective cost c_i, in plain floats."""
        obj = self.objective
        w, rate = obj.cost_weight, obj.usd_per_second
        cs = _floats(costs, k, "costs") if w else None
        ls = _floats(latencies, k, "latencies") if rate else None
        out = []
        for i in range(k):
            c = (w * cs[i] if cs is not None else 0.0) + (
                rate * (ls[i] / 1000.0) if ls is not None else 0.0
            )
            if not c >= 0.0:  # NaN too
                raise ValueError(
                    f"costs and latencies must be >= 0 and not NaN, got {c!r} for path {i}"
                )
            out.append(max(c, MIN_COST))
        return out

    def _key_one(self, c: float, theta: float, price: float) -> float:
        if self.objective.paced:
            return price * c - theta
        return c / theta if theta > 0.0 else math.inf

    def _sorted_one(self, key: dict[int, float]) -> list[int]:
        """The keys' paths by ascending key (those over ``success_value_usd`` last)."""
        v = self.objective.success_value_usd
        if v is None:
            return sorted(key, key=key.__getitem__)
        return sorted(key, key=lambda i: (key[i] > v, key[i]))

    def _rank_one_cost(
        self,
        successes: FloatArray,
        failures: FloatArray,
        rng: np.random.Generator,
        costs: FloatArray | Sequence[float] | None,
        latencies: FloatArray | Sequence[float] | None,
        price: float = 0.0,
    ) -> list[int]:
        """The Router's case, in plain Python floats: scalar draws consume the generator as
        ThompsonSampling's do, and the per-attempt costs are computed without numpy's
        per-call overhead (a few µs per request instead of tens)."""
        k = successes.shape[0]
        per_attempt = self._per_attempt_one(costs, latencies, k)
        a0, b0 = self.prior
        draw = rng.beta
        key = {
            i: self._key_one(per_attempt[i], draw(a0 + s, b0 + f), price)
            for i, (s, f) in enumerate(zip(successes.tolist(), failures.tolist(), strict=True))
        }
        if self.explore > 0.0 and rng.random() < self.explore:
            key[int(rng.integers(0, k))] = -math.inf
        return self._sorted_one(key)

    def _later_one_cost(
        self,
        first: int,
        after_successes: FloatArray,
        after_failures: FloatArray,
        rng: np.random.Generator,
        costs: FloatArray | Sequence[float] | None,
        latencies: FloatArray | Sequence[float] | None,
        price: float,
    ) -> list[int]:
        """:meth:`rank_later` for one request, in plain floats."""
        s2, f2 = after_successes.tolist(), after_failures.tolist()
        per_attempt = self._per_attempt_one(costs, latencies, len(s2))
        a0, b0 = self.prior
        draw = rng.beta
        key = {
            j: self._key_one(per_attempt[j], draw(a0 + s2[j], b0 + f2[j]), price)
            for j in range(len(s2))
            if j != first
        }
        return self._sorted_one(key)


def _floats(values: FloatArray | Sequence[float] | None, k: int, name: str) -> list[float]:
    if values is None:
        raise ValueError(f"this objective needs {name} per path (fill with expected_costs())")
    out = values.tolist() if isinstance(values, np.ndarray) else [float(v) for v in values]
    if len(out) == 1 and k > 1:
        out = out * k
    if len(out) != k:
        raise ValueError(f"{name} has {len(out)} entries for {k} paths")
    return out
