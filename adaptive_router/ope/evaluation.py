"""Off-policy estimators: what another policy would have scored on logged decisions.

Every logged decision i carries the reward r_i of the action the router took, the
probability p_i with which the router took it (its propensity, see
``adaptive_router.policies.propensity``), and the probability π_i that the *target* policy would
take that same action. With importance weights w_i = π_i / p_i:

* **IPS** (inverse propensity scoring): V = (1/n) Σ w_i r_i. Unbiased whenever p_i > 0
  wherever π_i > 0, also for adaptively collected logs (each term has conditional mean
  V given the past, so the sum is a martingale); its variance grows with the weights.
* **SNIPS** (self-normalised IPS): V = Σ w_i r_i / Σ w_i. Slightly biased (O(1/n)),
  usually much lower variance, and always inside the range of the rewards.
* **DR** (doubly robust): V = (1/n) Σ [ d_i + w_i (r_i − r̂_i) ] with r̂_i a reward
  model's prediction for the logged action and d_i = Σ_a π(a | x_i) r̂(x_i, a) its
  prediction under the target. Unbiased if either the propensities or the model are
  right; lower variance than IPS when the model is decent. Fit the model on other rows
  (a split, or cross-fitting) so that r̂_i does not depend on r_i.

Intervals (95%) are not the normal approximation value ± 1.96 standard errors alone: that
one collapses to a point when the few rows that carry the weight agree (one row, reward 1:
"1 – 1") and covers the truth in 79–84% of cases, not 95%, when the effective sample size
ESS = (Σ w)² / Σ w² is between 5 and 100. Each estimate's interval is the union of its
own (with a Student-t quantile on ESS − 1 degrees of freedom) and a floor: the Wilson
score interval of a rate measured on ESS independent requests
(:mod:`adaptive_router.ope.confidence`, which says what it assumes). Rewards lie in known
``bounds``: [0, 1] for success; for costs and latencies the caller states them. In the
seeded coverage simulation
(:mod:`adaptive_router.simulation.experiments.ope_coverage`) the intervals of all three
estimators cover the truth in at least 90% of the cases of every world with
5 <= ESS <= 100.

Below :data:`MIN_ESS` the point estimate rests on a handful of rows: :func:`estimate`
warns (:class:`LowEffectiveSampleSize`) and :func:`evaluate` gives no value, only the
interval and the reason.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from adaptive_router._checks import seconds
from adaptive_router.ope.confidence import ess_interval, reward_bounds
from adaptive_router.ope.targets import Target, check_mapping, target_policy, target_snapshot
from adaptive_router.outcomes import Outcome
from adaptive_router.policies.contextual_decision import AnyDecision
from adaptive_router.policies.logged_decision import LoggedDecision
from adaptive_router.policies.propensity import (
    decision_probabilities,
    decision_propensities,
    propensities,
)
from adaptive_router.policies.thompson import IntArray
from adaptive_router.stores import Store, open_store
from adaptive_router.stores.base import OutcomeUpdates

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

FloatArray = NDArray[np.float64]
Method = Literal["ips", "snips", "dr"]
METHODS: tuple[str, ...] = ("ips", "snips", "dr")

#: Two-sided 95% normal quantile.
Z95 = 1.959963984540054
#: The intervals' confidence level.
LEVEL = 0.95
#: Below this effective sample size :func:`estimate` warns and :func:`evaluate` gives no
#: point value. At ESS 20 a success rate's estimate has a standard error of up to
#: 0.5 / √20 ≈ 0.11; below it, in the coverage simulation (``ope_coverage``), a quarter of
#: the point estimates are off by 0.12 or more (0.17 below ESS 10) and the median 95%
#: interval of a success rate is 0.48 wide (0.67 below ESS 10; see the README).
MIN_ESS = 20.0
#: The largest share of logged requests :func:`evaluate` skips for an unknown reward (an
#: attempt of unknown cost) before refusing: the skipped ones are not a random sample.
MAX_MISSING_REWARD = 0.05


class LowEffectiveSampleSize(UserWarning):
    """The logs barely cover the target policy: a few rows carry most of the weight, so
    the point estimate is noise (the interval says so by its width)."""


@dataclass(frozen=True)
class Estimate:
    """An off-policy estimate of the target policy's mean reward, with a 95% interval.

    ``low``/``high``: the interval (see the module docstring), within ``bounds``, the
    range the rewards were assumed to lie in. ``std_error``: the estimator's standard
    error (the sandwich one for SNIPS).
    """

    value: float
    low: float
    high: float
    n: int
    method: str
    effective_sample_size: float
    std_error: float
    bounds: tuple[float, float] = (0.0, 1.0)

    def __str__(self) -> str:
        return (
            f"{self.method}: {self.value:.4f} [{self.low:.4f}, {self.high:.4f}] "
            f"(n={self.n}, ESS={self.effective_sample_size:.0f})"
        )


def _vector(name: str, values: ArrayLike) -> FloatArray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers") from None
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be one-dimensional (one entry per decision), got {arr.shape}"
        )
    return arr


def _finite(name: str, arr: FloatArray) -> None:
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name} must be finite; {name}[{bad}] = {arr[bad]!r} (drop such rows)")


def importance_weights(propensities: ArrayLike, target_probs: ArrayLike) -> FloatArray:
    """w_i = π_i / p_i, validated: propensities in (0, 1], target probabilities in [0, 1]."""
    p = _vector("propensities", propensities)
    t = _vector("target_probs", target_probs)
    if p.shape != t.shape:
        raise ValueError(
            f"propensities has {p.shape[0]} entries and target_probs {t.shape[0]}: "
            "one of each per decision"
        )
    bad = np.flatnonzero(~((p > 0.0) & (p <= 1.0)))
    if bad.size:
        raise ValueError(
            f"propensities must be in (0, 1]; propensities[{bad[0]}] = {p[bad[0]]!r}. A "
            "decision logged with probability 0 cannot be reweighted: drop rows without "
            "a propensity (fallback attempts, choose() decisions)"
        )
    bad = np.flatnonzero(~((t >= 0.0) & (t <= 1.0)))
    if bad.size:
        raise ValueError(f"target_probs must be in [0, 1]; target_probs[{bad[0]}] = {t[bad[0]]!r}")
    w: FloatArray = t / p
    return w


def effective_sample_size(weights: ArrayLike) -> float:
    """Kish's effective sample size (Σ w)² / Σ w² (0 when every weight is 0)."""
    w = np.asarray(weights, dtype=np.float64)
    sq = float(np.dot(w, w))
    return float(w.sum() ** 2 / sq) if sq > 0 else 0.0


def estimate(
    rewards: ArrayLike,
    propensities: ArrayLike,
    target_probs: ArrayLike,
    method: Method = "snips",
    *,
    reward_model: ArrayLike | None = None,
    reward_matrix: ArrayLike | None = None,
    target_matrix: ArrayLike | None = None,
    direct: ArrayLike | None = None,
    bounds: tuple[float, float] | None = None,
    warn: bool = True,
) -> Estimate:
    """Estimate the target policy's mean reward from logged decisions.

    Rows are read in log order (the interval's bets use only earlier rows).

    Args:
        rewards: reward of each logged decision (success 0/1, or minus cost, ...).
        propensities: probability with which the logging policy took the logged action,
            in (0, 1].
        target_probs: probability with which the target policy takes the logged action,
            in [0, 1].
        method: ``"ips"``, ``"snips"`` or ``"dr"`` (see the module docstring).
        reward_model: DR only: the reward model's prediction r̂_i for the logged action.
        reward_matrix, target_matrix: DR only, shape (n, K): the model's prediction for
            every action and the target's probability of every action; their row-wise
            inner product is the direct term d_i. Alternatively pass ``direct`` (n,).
        bounds: ``(low, high)``, the range every reward lies in, which the interval
            needs. None: ``(0, 1)`` when every reward lies there, else the observed range
            widened to include 0 — an assumption (a target whose rewards go beyond what
            was logged gets too narrow an interval); give the true range when you know it.
        warn: emit :class:`LowEffectiveSampleSize` when ESS < :data:`MIN_ESS`.

    Raises:
        ValueError: naming the argument, for empty input, different lengths, NaN or
            infinite rewards, propensities outside (0, 1], an unknown method, DR without
            a reward model, or rewards outside ``bounds``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    r = _vector("rewards", rewards)
    if r.size == 0:
        raise ValueError("rewards is empty: there are no logged decisions to estimate from")
    _finite("rewards", r)
    w = importance_weights(propensities, target_probs)
    if w.shape != r.shape:
        raise ValueError(
            f"rewards has {r.shape[0]} entries and propensities {w.shape[0]}: "
            "one of each per decision"
        )
    n = r.size
    lo, hi = reward_bounds(r, bounds)
    ess = effective_sample_size(w)
    if warn and ess < MIN_ESS:
        warnings.warn(
            f"effective sample size {ess:.1f} of {n} logged decisions is below {MIN_ESS:g}: "
            "the logs barely cover the target policy, so the point estimate is noise (the "
            "interval is wide, as it should be)",
            LowEffectiveSampleSize,
            stacklevel=2,
        )
    if method == "ips":
        terms = w * r
        value = float(terms.mean())
        se = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    elif method == "snips":
        total = float(w.sum())
        if total <= 0.0:
            raise ValueError(
                "target_probs is 0 on every logged decision: the logs say nothing about "
                "this target (SNIPS divides by the sum of the weights)"
            )
        value = float(np.dot(w, r) / total)
        se = float(math.sqrt(float(np.sum(w * w * (r - value) ** 2))) / total)
    else:
        d = _direct_term(n, reward_matrix, target_matrix, direct)
        if reward_model is None:
            raise ValueError(
                "reward_model is required for method='dr': the model's predicted reward "
                "for each logged action, shape (n,)"
            )
        rhat = _vector("reward_model", reward_model)
        if rhat.shape != r.shape:
            raise ValueError(f"reward_model has {rhat.shape[0]} entries for {n} decisions")
        _finite("reward_model", rhat)
        terms = d + w * (r - rhat)
        value = float(terms.mean())
        se = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    low, high = ess_interval(value, se, ess, (lo, hi), LEVEL)
    return Estimate(value, low, high, n, method, ess, se, (lo, hi))


def _direct_term(
    n: int,
    reward_matrix: ArrayLike | None,
    target_matrix: ArrayLike | None,
    direct: ArrayLike | None,
) -> FloatArray:
    if direct is not None:
        if reward_matrix is not None or target_matrix is not None:
            raise ValueError("pass either direct or reward_matrix with target_matrix, not both")
        d = _vector("direct", direct)
        if d.shape != (n,):
            raise ValueError(f"direct has {d.shape[0]} entries for {n} decisions")
        _finite("direct", d)
        return d
    if reward_matrix is None or target_matrix is None:
        raise ValueError(
            "method='dr' needs the model's value of the target: reward_matrix and "
            "target_matrix (both (n, K)), or direct (n,)"
        )
    rm = np.asarray(reward_matrix, dtype=np.float64)
    tm = np.asarray(target_matrix, dtype=np.float64)
    if rm.ndim != 2 or rm.shape[0] != n:
        raise ValueError(f"reward_matrix must have shape (n={n}, K), got {rm.shape}")
    if tm.shape != rm.shape:
        raise ValueError(
            f"target_matrix must have reward_matrix's shape {rm.shape}, got {tm.shape}"
        )
    _finite("reward_matrix", rm.ravel())
    if not (np.all(tm >= 0) and np.allclose(tm.sum(axis=1), 1.0, atol=1e-6)):
        raise ValueError("target_matrix rows must be probability distributions (>= 0, sum 1)")
    out: FloatArray = np.einsum("nk,nk->n", rm, tm)
    return out


# -- evaluating a target policy on a store's logged decisions -----------------------------

#: Rewards :func:`evaluate` knows. ``success``, ``attempt_cost`` and ``attempt_latency`` are
#: the first attempt's; ``cost`` and ``latency`` the whole request's (all attempts).
REWARDS: tuple[str, ...] = ("success", "cost", "latency", "attempt_cost", "attempt_latency")
#: Per-request rewards: the rest of the order matters too (see :func:`evaluate`).
_PER_REQUEST = ("cost", "latency")


@dataclass(frozen=True)
class Evaluation:
    """What a target policy would have scored on a store's logged traffic.

    ``estimate``: the estimator's output (its ``low``, ``high`` and ESS are also properties
    here). ``value``: the point estimate, or None when the effective sample size is below
    ``min_ess``; ``reason`` then says why (the ESS, the threshold, what to do) and
    ``estimate.value`` keeps the estimator's number for whoever accepts the noise (the
    CLI's ``--allow-low-ess``). The interval is given either way. ``logged``: the mean reward
    the router actually got on the same rows. ``rows``: first attempts used.
    ``without_propensity``: first attempts in the window that carry no logged decision
    (rows from before decisions were logged, ``choose()`` decisions, the final fallback
    going first, other policies), skipped. ``missing_reward``: logged requests skipped
    because the reward was unknown (an attempt of unknown cost); ``missing_share`` of them.
    ``computed``: propensities computed now (the router had deferred them).
    """

    estimate: Estimate
    target: str
    reward: str
    logged: float
    rows: int
    without_propensity: int
    missing_reward: int
    computed: int
    min_ess: float = MIN_ESS
    reason: str | None = None

    @property
    def value(self) -> float | None:
        return None if self.reason is not None else self.estimate.value

    @property
    def low(self) -> float:
        return self.estimate.low

    @property
    def high(self) -> float:
        return self.estimate.high

    @property
    def n(self) -> int:
        return self.estimate.n

    @property
    def method(self) -> str:
        return self.estimate.method

    @property
    def effective_sample_size(self) -> float:
        return self.estimate.effective_sample_size

    @property
    def missing_share(self) -> float:
        """Share of the logged requests skipped for an unknown reward."""
        return self.missing_reward / (self.rows + self.missing_reward)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types (the CLI's ``--json``); ``value`` is None (null) below the
        minimum effective sample size, with ``reason``."""
        e = self.estimate
        return {
            "target": self.target,
            "reward": self.reward,
            "method": e.method,
            "value": self.value,
            "low": e.low,
            "high": e.high,
            "bounds": list(e.bounds),
            "std_error": e.std_error if math.isfinite(e.std_error) else None,
            "n": e.n,
            "effective_sample_size": e.effective_sample_size,
            "min_ess": self.min_ess,
            "reason": self.reason,
            "logged": self.logged,
            "rows": self.rows,
            "without_propensity": self.without_propensity,
            "missing_reward": self.missing_reward,
            "missing_share": self.missing_share,
            "computed": self.computed,
        }

    def __str__(self) -> str:
        if self.reason is not None:
            return f"{self.target} ({self.reward}): no estimate. {self.reason}"
        return (
            f"{self.target} ({self.reward}): {self.estimate} vs logged {self.logged:.4g}; "
            f"{self.without_propensity} rows without propensity skipped"
        )


def evaluate(
    store: Store | Engine | str | None,
    task: str,
    target: Target,
    *,
    window: timedelta | float | None = None,
    context: str | None = None,
    method: Method = "snips",
    reward: str = "success",
    now: float | None = None,
    save: bool = True,
    min_ess: float = MIN_ESS,
    max_missing_reward: float = MAX_MISSING_REWARD,
) -> Evaluation:
    """Estimate what ``target`` would have scored on the task's logged requests.

    Each routed request's first attempt carries the evidence its decision used and its
    propensity (``Outcome.decision``, ``Outcome.propensity``); this reweights those first
    attempts to the target's probability of the same first choice.

    Args:
        store: what ``Router(store=...)`` takes: a URL (``"sqlite:///router.db"``,
            ``"postgresql://user@host/db"``, ``"memory://"``), an SQLAlchemy Engine, a
            Store, or None for the router's default SQLite file. A store opened here from a
            URL or Engine is closed before returning; a Store passed in is left open.
        task: the task name.
        target: a path name (always attempted first when available), a mapping
            ``{path: probability}`` (first choice drawn from it), an objective
            (``"success"``, ``"cost"``, ``"latency"`` or an
            :class:`~adaptive_router.policies.objectives.Objective`: the logged router's prior and
            exploration, ranking by that objective), or a
            :class:`~adaptive_router.policies.thompson.ThompsonSampling` /
            :class:`~adaptive_router.policies.objectives.ObjectiveThompsonSampling` —
            evaluated on the
            evidence each decision logged. A string naming a path is the path. Where the
            target's path was unavailable (breaker open, rate limited, over budget) it
            could not have been attempted either: the logged choice stands (weight 1).
            A feature router's decisions (contextual scores, not Beta evidence) take a
            path name or a mapping; an objective or a policy there is a ValueError. A
            spend target (``Objective(target_usd_per_request=...)``) is a ValueError
            anywhere: the price it ranks by depends on its own spend, which the logs do not
            show.
        window: only requests at most this old (timedelta or seconds; None = all).
        context: only this routing context ("" = requests without one; None = all).
        method: ``"snips"``, ``"ips"`` or ``"dr"`` (reward model: each path's mean reward
            over the other half of the rows, cross-fitted).
        reward: ``"success"`` (the first attempt's), ``"attempt_cost"`` (USD) and
            ``"attempt_latency"`` (ms) of the first attempt — always estimable — or
            ``"cost"`` / ``"latency"`` per request, all attempts included. Those depend on
            the order after the first choice, which a first-attempt propensity does not
            cover: they are estimated only where at most two learned paths were available
            (the first choice then fixes the order), and refused otherwise. Success lies
            in [0, 1]; costs and latencies are bounded by 0 and the largest one logged in
            the window, an assumption the interval rests on.
        now: the reference time for ``window`` (default: ``time.time()``).
        save: store the propensities computed now (the router defers them under load).
        min_ess: below this effective sample size the result has no ``value``, only the
            interval and a ``reason``. 0 always gives a value.
        max_missing_reward: the largest share of logged requests that may be skipped for
            an unknown reward (cost or latency not recorded) before refusing; 1.0 accepts
            any.

    Raises:
        ValueError: naming the argument, for an unknown path or reward, an empty window,
            a window without logged decisions, a per-request reward the logs do not
            support, or more requests of unknown reward than ``max_missing_reward``.
        ConfigurationError: for a store argument that is not a URL, Engine or Store.
        StoreUnavailableError: when a database given by URL cannot be reached (the
            message never shows its password).
    """
    if reward not in REWARDS:
        raise ValueError(f"reward must be one of {', '.join(REWARDS)}; got {reward!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if isinstance(min_ess, bool) or not (
        isinstance(min_ess, (int, float)) and math.isfinite(min_ess) and min_ess >= 0
    ):
        raise ValueError(f"min_ess must be a number >= 0 (0 always gives a value), got {min_ess!r}")
    if isinstance(max_missing_reward, bool) or not (
        isinstance(max_missing_reward, (int, float)) and 0.0 <= max_missing_reward <= 1.0
    ):
        raise ValueError(
            f"max_missing_reward must be a share in [0, 1], got {max_missing_reward!r}"
        )
    secs = seconds(window, "window", allow_none=True) if window is not None else None
    since = None if secs is None else (time.time() if now is None else now) - secs
    owned = not isinstance(store, Store)
    opened = open_store(store)
    try:
        rows = opened.outcomes(task, since)
        where = f"task {task!r}" + ("" if secs is None else f" in the last {secs:g} s")
        if context is not None:
            rows = [o for o in rows if o.context == context]
            where += f", context {context!r}"
        return _evaluate(
            opened, task, rows, where, target, method, reward, save, min_ess, max_missing_reward
        )
    finally:
        if owned:
            opened.close()


def _evaluate(
    store: Store,
    task: str,
    rows: list[Outcome],
    where: str,
    target: Target,
    method: Method,
    reward: str,
    save: bool,
    min_ess: float,
    max_missing_reward: float,
) -> Evaluation:
    """:func:`evaluate` on the rows read (arguments validated)."""
    firsts = [o for o in rows if o.attempt == 1 and not o.skipped]
    if not firsts:
        raise ValueError(f"window: no logged requests of {where}")
    logged = [o for o in firsts if o.decision_data is not None]
    without = len(firsts) - len(logged)
    if not logged:
        raise ValueError(
            f"window: none of the {len(firsts)} requests of {where} logged its decision "
            "(rows from before decision logging, choose() decisions, or a policy other "
            "than Thompson Sampling): nothing to evaluate"
        )
    decisions = [d for d in (o.decision for o in logged) if d is not None]
    computed = _fill_propensities(store, task, logged, decisions, save)
    rewards, keep = _rewards(rows, logged, reward)
    if reward in _PER_REQUEST:
        widest = max(sum(not s for s in d.skipped_flags) for d in decisions)
        if widest > 2:
            raise ValueError(
                f"reward={reward!r} is per request: it depends on the order of every path "
                "tried, and a first-attempt propensity only covers the first choice. The "
                "logs support it where at most two learned paths could be attempted (the "
                f"first choice then fixes the order); decisions here had up to {widest}. "
                f"Use reward='attempt_{reward}' (the first attempt's) instead"
            )
    if not keep:
        raise ValueError(f"reward: no row of {where} has a known {reward!r}")
    _check_missing(len(logged) - len(keep), len(logged), reward, max_missing_reward)
    decisions = [decisions[i] for i in keep]
    chosen = [logged[i] for i in keep]
    r = rewards[keep]
    p = np.array([o.propensity for o in chosen], dtype=np.float64)
    label, matrix = _target_matrix(target, decisions, rows)
    first = np.array([d.index(o.path) for d, o in zip(decisions, chosen, strict=True)])
    # Rows of the matrix over different path sets are padded to the widest.
    pi = matrix[np.arange(len(chosen)), first]
    kwargs: dict[str, Any] = {}
    if method == "dr":
        rm = _reward_matrix(decisions, first, r, matrix.shape[1])
        kwargs = {
            "reward_model": rm[np.arange(len(chosen)), first],
            "reward_matrix": rm,
            "target_matrix": matrix,
        }
    # Success is a probability; a cost or latency is >= 0 and, by assumption, no larger
    # than the largest one logged (all zero: no assumption beyond estimate()'s default).
    top = float(r.max())
    bounds = (0.0, 1.0) if reward == "success" else ((0.0, top) if top > 0.0 else None)
    est = estimate(r, p, pi, method, bounds=bounds, warn=False, **kwargs)
    reason = None
    if est.effective_sample_size < min_ess:
        reason = (
            f"effective sample size {est.effective_sample_size:.1f} is below the minimum "
            f"{min_ess:g}: of {len(chosen)} logged requests of {where}, too few made the "
            f"choices {label} would make for a point estimate (its 95% interval is "
            f"{est.low:.4g} to {est.high:.4g}). Collect more traffic (a longer "
            "window, or a larger exploration floor so the router tries those paths first "
            "more often), or accept a noisy estimate with min_ess=0 (CLI: --allow-low-ess)"
        )
    return Evaluation(
        est,
        label,
        reward,
        float(r.mean()),
        len(chosen),
        without,
        len(logged) - len(keep),
        computed,
        min_ess,
        reason,
    )


def _check_missing(missing: int, total: int, reward: str, limit: float) -> None:
    """Refuse when more than ``limit`` of the logged requests have an unknown reward."""
    share = missing / total
    if share <= limit:
        return
    what = "cost" if reward.endswith("cost") else "latency"
    raise ValueError(
        f"reward={reward!r}: {missing} of {total} logged requests ({share:.1%}) have an "
        f"unknown {what}, more than max_missing_reward={limit:g} ({limit:.0%}). They are "
        "not a random sample (an unknown cost is typically an attempt without a known "
        "price, such as a fallback that calls no priced model), so skipping them would "
        f"bias the estimate. Make those attempts' {what} known, or pass "
        f"max_missing_reward={min(1.0, math.ceil(share * 100) / 100):g} "
        "(CLI: --max-missing-reward) to skip them anyway"
    )


def _fill_propensities(
    store: Store, task: str, logged: list[Outcome], decisions: list[AnyDecision], save: bool
) -> int:
    """Compute the propensities the router deferred (vectorised), store them if ``save``
    (and the store can: :class:`OutcomeUpdates`); ``decisions`` are ``logged``'s, decoded."""
    todo = [i for i, o in enumerate(logged) if o.propensity is None]
    if not todo:
        return 0
    values = decision_propensities([decisions[i] for i in todo])
    rows = []
    for i, v in zip(todo, values.tolist(), strict=True):
        o = logged[i]
        o.propensity = v
        rows.append((o.request_id, o.attempt, v))
    if save and isinstance(store, OutcomeUpdates):
        store.set_propensities(task, rows)
    return len(todo)


def _rewards(
    rows: list[Outcome], logged: list[Outcome], reward: str
) -> tuple[FloatArray, list[int]]:
    """Each logged row's reward, and the indices of the rows where it is known."""
    if reward == "success":
        return np.array([1.0 if o.success else 0.0 for o in logged]), list(range(len(logged)))
    field = "cost_usd" if reward.endswith("cost") else "latency_ms"
    if reward.startswith("attempt_"):
        vals = [getattr(o, field) for o in logged]
    else:
        by_request: dict[str, list[Outcome]] = {}
        for o in rows:
            if not o.skipped:
                by_request.setdefault(o.request_id, []).append(o)
        vals = []
        for o in logged:
            parts = [getattr(a, field) for a in by_request.get(o.request_id, [])]
            vals.append(None if any(v is None for v in parts) else float(sum(parts)))
    keep = [i for i, v in enumerate(vals) if v is not None and math.isfinite(v)]
    return np.array([v if v is not None else math.nan for v in vals], dtype=np.float64), keep


def _target_matrix(
    target: Target, decisions: list[AnyDecision], rows: list[Outcome]
) -> tuple[str, FloatArray]:
    """A label for the target and its first-choice probabilities, shape (n, K max)."""
    width = max(d.k for d in decisions)
    known = sorted({p for d in decisions for p in d.paths})
    out = np.zeros((len(decisions), width))
    if isinstance(target, str) and target in known:
        target = {target: 1.0}
        label = f"always {next(iter(target))}"
    elif isinstance(target, Mapping):
        label = "mix " + ", ".join(f"{k}={v:g}" for k, v in target.items())
    else:
        label = ""
    if isinstance(target, Mapping):
        q = check_mapping(target, known)
        logging_rows: list[FloatArray] | None = None
        for r, d in enumerate(decisions):
            row = np.array(
                [0.0 if s else q.get(p, 0.0) for p, s in zip(d.paths, d.skipped_flags, strict=True)]
            )
            if row.sum() > 0:
                out[r, : d.k] = row / row.sum()
            else:  # the target's paths were all unavailable: the logged choice stands
                if logging_rows is None:
                    logging_rows = decision_probabilities(decisions)
                out[r, : d.k] = logging_rows[r]
        return label, out
    policy, inherit = target_policy(target, known)
    contextual = sum(not isinstance(d, LoggedDecision) for d in decisions)
    if contextual:
        raise ValueError(
            f"target: {contextual} of the {len(decisions)} logged decisions are a feature "
            "router's (contextual scores, not Beta evidence), which an objective or a "
            "Thompson Sampling policy cannot be replayed on; evaluate a path name or a "
            "{path: probability} mapping there (or narrow the window or context to the "
            "decisions of a router without features)"
        )
    betas = [d for d in decisions if isinstance(d, LoggedDecision)]
    if not label:
        label = f"objective {policy.objective.name}" if inherit else repr(policy)  # type: ignore[attr-defined]
    costs = _window_costs(rows)
    snaps = [target_snapshot(policy, inherit, d, costs) for d in betas]
    for r, row in enumerate(propensities(snaps)):
        out[r, : row.shape[0]] = row
    return label, out


def _window_costs(rows: list[Outcome]) -> dict[str, tuple[float, float]]:
    """Mean cost (USD) and latency (ms) per attempt of each path over the rows: the
    objective's inputs where the decisions did not log them (NaN: never measured)."""
    acc: dict[str, list[float]] = {}
    for o in rows:
        if o.skipped:
            continue
        a = acc.setdefault(o.path, [0.0, 0.0, 0.0, 0.0])
        if o.cost_usd is not None:
            a[0] += o.cost_usd
            a[1] += 1
        if o.latency_ms is not None:
            a[2] += o.latency_ms
            a[3] += 1
    return {
        p: (a[0] / a[1] if a[1] else math.nan, a[2] / a[3] if a[3] else math.nan)
        for p, a in acc.items()
    }


def _reward_matrix(
    decisions: list[AnyDecision], first: IntArray, r: FloatArray, width: int
) -> FloatArray:
    """Cross-fitted reward model: each path's mean reward over the other half of the rows
    (by position: even and odd rows), the half's mean for a path it never saw."""
    n = len(decisions)
    fold = np.arange(n) % 2
    out = np.zeros((n, width))
    for k in (0, 1):
        other = fold != k
        base = float(r[other].mean()) if other.any() else float(r.mean())
        sums: dict[str, list[float]] = {}
        for i in np.flatnonzero(other):
            name = decisions[i].paths[first[i]]
            acc = sums.setdefault(name, [0.0, 0.0])
            acc[0] += r[i]
            acc[1] += 1
        for i in np.flatnonzero(fold == k):
            d = decisions[i]
            for j, name in enumerate(d.paths):
                seen = sums.get(name)
                out[i, j] = seen[0] / seen[1] if seen else base
    return out
