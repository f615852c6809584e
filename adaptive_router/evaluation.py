"""Off-policy estimators: what another policy would have scored on logged decisions.

Every logged decision i carries the reward r_i of the action the router took, the
probability p_i with which the router took it (its propensity, see
``adaptive_router.propensity``), and the probability π_i that the *target* policy would
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

Intervals (95%) are normal approximations, which is what the coverage test in
``tests/test_evaluation.py`` checks (≥ 85% coverage where the effective sample size is
≥ 100): for IPS and DR, the sample standard deviation of the per-row terms over √n
(both are means of terms with finite variance when the weights are bounded); for
SNIPS, the delta-method (sandwich) variance of a ratio estimator,
Σ w_i² (r_i − V)² / (Σ w_i)². A bootstrap would not fix what breaks the normal
approximation here (a handful of huge weights) and costs far more; the effective
sample size ESS = (Σ w)² / Σ w² measures that risk and a
:class:`LowEffectiveSampleSize` warning is raised when it is small.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
Method = Literal["ips", "snips", "dr"]
METHODS: tuple[str, ...] = ("ips", "snips", "dr")

#: Two-sided 95% normal quantile.
Z95 = 1.959963984540054
#: Below this effective sample size (or below MIN_ESS_FRACTION of n) a warning is raised.
MIN_ESS = 100.0
MIN_ESS_FRACTION = 0.01


class LowEffectiveSampleSize(UserWarning):
    """The logs barely cover the target policy: a few rows carry most of the weight, so
    the estimate is noisy and its normal-approximation interval may be too narrow."""


@dataclass(frozen=True)
class Estimate:
    """An off-policy estimate of the target policy's mean reward, with a 95% interval."""

    value: float
    low: float
    high: float
    n: int
    method: str
    effective_sample_size: float
    std_error: float

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
    warn: bool = True,
) -> Estimate:
    """Estimate the target policy's mean reward from logged decisions.

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
        warn: emit :class:`LowEffectiveSampleSize` when ESS < 100 or < 1% of n.

    Raises:
        ValueError: naming the argument, for empty input, different lengths, NaN or
            infinite rewards, propensities outside (0, 1], an unknown method, or DR
            without a reward model.
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
    ess = effective_sample_size(w)
    if warn and (ess < MIN_ESS or ess < MIN_ESS_FRACTION * n):
        warnings.warn(
            f"effective sample size {ess:.1f} of {n} logged decisions: the logs barely "
            "cover the target policy, so the estimate is noisy and its interval unreliable",
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
    half = Z95 * se
    return Estimate(value, value - half, value + half, n, method, ess, se)


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
