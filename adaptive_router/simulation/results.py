"""What a simulation measured: :class:`SimulationResult` (regret, traffic shares, success,
fallback, cost and latency per replication) and :func:`adaptation_lag`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from adaptive_router.policies.thompson import FloatArray, IntArray
from adaptive_router.simulation.environment import BoolArray

__all__ = [
    "LAG_HOLD",
    "LAG_THRESHOLD",
    "LAG_WINDOW",
    "SimulationResult",
    "adaptation_lag",
    "adaptation_lags",
]


#: The adaptation-lag criterion's defaults (see :func:`adaptation_lags`): from the lag on,
#: the path's share of first attempts stays under ``LAG_THRESHOLD`` over every span of at
#: least ``LAG_WINDOW`` requests to the end of the run, which must go on for at least
#: ``LAG_HOLD`` requests after it.
LAG_THRESHOLD = 0.10
LAG_WINDOW = 100
LAG_HOLD = 1_000


def _settled(counts: FloatArray, threshold: float, window: int, hold: int) -> FloatArray:
    """The lag of each column of ``counts`` (per step: how much of the step went to the path,
    shape ``(T, R)``): the first step ``s <= T - hold`` such that the path's share of steps
    ``s … t - 1`` is below ``threshold`` for every ``t`` from ``s + window`` to ``T``."""
    n, cols = counts.shape
    lags = np.full(cols, math.inf)
    if n < hold:
        return lags
    # share of [s, t) < threshold  <=>  d[t] < d[s], with d[t] = (count before t) - threshold·t;
    # so s qualifies when the largest d[t] over t >= s + window is below d[s].
    d = np.concatenate([np.zeros((1, cols)), np.cumsum(counts, axis=0)])
    d -= threshold * np.arange(n + 1, dtype=np.float64)[:, None]
    later_max = np.maximum.accumulate(d[::-1], axis=0)[::-1]
    starts = np.arange(n - hold + 1)
    # The tolerance keeps a share exactly at the threshold (10 of 100) from counting as under.
    ok = later_max[starts + window] - d[starts] < -1e-9
    hit = ok.any(axis=0)
    lags[hit] = np.argmax(ok[:, hit], axis=0)
    return lags


def _check_lag_args(threshold: float, window: int, hold: int) -> None:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be a share in (0, 1], got {threshold!r}")
    if window < 1 or hold < window:
        raise ValueError(
            f"window must be >= 1 request and hold >= window, got window={window!r}, hold={hold!r}"
        )


def adaptation_lag(
    share: FloatArray,
    since: int,
    threshold: float = LAG_THRESHOLD,
    window: int = LAG_WINDOW,
    hold: int = LAG_HOLD,
) -> float:
    """Requests served after step ``since`` before a path's first-attempt share falls under
    ``threshold`` for good, on the run-averaged traffic curve: the criterion of
    :func:`adaptation_lags` applied to ``share``, the path's first-attempt share per step
    averaged over replications.

    0 means it was under from the start; ``inf`` that it never settled under, or not early
    enough to be watched for ``hold`` requests before the horizon.
    """
    _check_lag_args(threshold, window, hold)
    tail = np.asarray(share, dtype=np.float64)[since:]
    return float(_settled(tail[:, None], threshold, window, hold)[0])


def adaptation_lags(
    first: IntArray,
    path: int,
    since: int,
    threshold: float = LAG_THRESHOLD,
    window: int = LAG_WINDOW,
    hold: int = LAG_HOLD,
) -> FloatArray:
    """The adaptation lag of each replication on its own, shape ``(R,)``; ``inf`` for a run
    that never meets the criterion (report those as *not adapted*, never as a number).

    ``first`` is the first path of every request of every replication, shape ``(T, R)``
    (``SimulationResult.trace_first``). A run's lag is the first request ``s`` after
    ``since`` from which ``path``'s share of first attempts stays under ``threshold`` for
    the rest of the run: over requests ``s … t`` for every ``t`` at least ``window``
    requests later, up to the horizon, which must lie at least ``hold`` requests after
    ``s``. With the defaults: under 10% of first attempts, counted from ``s``, at every
    span of 100 requests or more, watched for at least 1,000 requests.

    A path whose long-run share is above the threshold cannot meet this by chance, given a
    watch long enough: its share counted from any request tends to its long-run share, so
    only a swing of traffic that lasts from ``s`` to the horizon could pass. Short
    half-lives between close paths swing traffic for hundreds of requests or more; give
    such runs a longer ``hold`` (the half-life sweep watches a quarter of the time to the
    next incident). Simpler criteria can be met by chance: one window of 10 requests
    without the path (this function's earlier definition) is met within a few hundred
    requests by a path that still leads a third of them, and even under 10% in each of
    100 consecutive 100-request windows is met by short half-lives that send a quarter of
    first attempts to the path in bursts. The mean of these lags is not the lag of the
    run-averaged traffic curve: one run's late exploration keeps the averaged curve up.
    """
    _check_lag_args(threshold, window, hold)
    on = (np.asarray(first)[since:] == path).astype(np.float64)
    return _settled(on, threshold, window, hold)


@dataclass
class SimulationResult:
    """Everything one :func:`simulate` call measured.

    Per-replication arrays have length ``R``; ``steps``/``regret`` are sampled at
    checkpoints; ``first_success`` and ``share`` are per step, averaged over replications.
    """

    label: str
    env_label: str
    names: tuple[str, ...]
    horizon: int
    replications: int
    steps: IntArray
    """Checkpoints: number of requests served so far, shape ``(C,)``."""
    regret: FloatArray
    """Cumulative pseudo-regret at each checkpoint, shape ``(C, R)``.

    Σ_t max_k p_t(k) − p_t(first_t): the expected first-attempt successes lost to the oracle.
    """
    first_success: FloatArray
    """Mean first-attempt success per step, shape ``(T,)``."""
    share: FloatArray
    """Mean first-attempt share of each path per step, shape ``(T, K)``."""
    first_success_rate: FloatArray
    request_success_rate: FloatArray
    """Requests for which some learned path succeeded (fallbacks included), per replication."""
    fallback_rate: FloatArray
    """Requests whose first attempt failed and that went on to another path."""
    final_fallback_rate: FloatArray
    """Requests served by the final always-works path (every learned path tried failed)."""
    attempts_per_request: FloatArray
    cost_per_1k: FloatArray | None
    """USD per 1,000 requests, every attempt (and the final path) included."""
    latency_ms: FloatArray | None
    """Mean time per request, attempts in sequence."""
    step_cost: FloatArray | None
    """Mean cost of each step's request (USD), shape ``(T,)``."""
    seconds: float
    rank_seconds: float | None
    """Time in ``policy.rank`` alone; None for the compiled engine, which fuses the step."""
    rates: FloatArray = field(repr=False)
    """The true rate table, shape ``(T, K)``."""
    trace_first: IntArray | None = field(default=None, repr=False)
    """With ``trace=True``: the first path of every request, shape ``(T, R)``."""
    trace_outcomes: BoolArray | None = field(default=None, repr=False)
    """With ``trace=True``: every path's drawn outcome, shape ``(T, R, K)``."""
    trace_order: IntArray | None = field(default=None, repr=False)
    """With ``trace=True``: the whole ranked order of every request, shape ``(T, R, K)``
    (the fallback chain ``Router.run`` walks; ``[..., 0]`` is ``trace_first``). Where the
    first attempt succeeded the positions after it were never walked nor drawn from the
    after-failure evidence: they follow the first-attempt draws (see ``simulate``)."""
    engine: str = "numpy"
    """Which step loop ran: ``"numpy"`` or ``"numba"`` (see :func:`simulate`)."""

    @property
    def decisions(self) -> int:
        """Routing decisions made (requests × replications)."""
        return self.horizon * self.replications

    @property
    def decisions_per_second(self) -> float:
        """End to end: environment, bookkeeping and policy."""
        return self.decisions / self.seconds if self.seconds > 0 else math.inf

    @property
    def rank_decisions_per_second(self) -> float:
        """The policy's ``rank`` calls alone (NaN for the compiled engine: not separable)."""
        if self.rank_seconds is None:
            return math.nan
        return self.decisions / self.rank_seconds if self.rank_seconds > 0 else math.inf

    @property
    def final_regret(self) -> FloatArray:
        """Cumulative regret at the horizon, per replication."""
        out: FloatArray = self.regret[-1]
        return out

    def regret_mean(self) -> FloatArray:
        """Mean cumulative regret at each checkpoint."""
        out: FloatArray = self.regret.mean(axis=1)
        return out

    def regret_band(self, z: float = 1.96) -> tuple[FloatArray, FloatArray]:
        """Normal confidence band of the mean regret (``z`` = 1.96: 95%)."""
        mean = self.regret_mean()
        half = z * _sem(self.regret)
        return mean - half, mean + half

    def regret_at(self, step: int) -> FloatArray:
        """Cumulative regret after ``step`` requests (nearest checkpoint at or before), per run."""
        i = int(np.searchsorted(self.steps, step, side="right")) - 1
        if i < 0:
            return np.zeros(self.replications)
        out: FloatArray = self.regret[i]
        return out

    def adaptation_lag(
        self,
        path: int,
        since: int,
        threshold: float = LAG_THRESHOLD,
        window: int = LAG_WINDOW,
        hold: int = LAG_HOLD,
    ) -> float:
        """Requests after ``since`` until ``path`` gets under ``threshold`` of first attempts
        and stays there (:func:`adaptation_lag`, on the run-averaged traffic curve).

        ``inf`` if it never does (the static order, for instance).
        """
        return adaptation_lag(self.share[:, path], since, threshold, window, hold)

    def share_binned(self, bins: int) -> tuple[FloatArray, FloatArray]:
        """Traffic share in ``bins`` equal blocks: (block centres, shares ``(bins, K)``)."""
        edges = np.linspace(0, self.horizon, bins + 1).astype(int)
        shares = np.add.reduceat(self.share, edges[:-1], axis=0) / np.diff(edges)[:, None]
        centres = (edges[:-1] + edges[1:]) / 2.0
        return centres, shares

    def summary(self) -> dict[str, float]:
        """Scalar means over replications, for tables."""
        out = {
            "regret": float(self.final_regret.mean()),
            "regret_ci": float(1.96 * _sem(self.final_regret[None, :])[0]),
            "first_success": float(self.first_success_rate.mean()),
            "request_success": float(self.request_success_rate.mean()),
            "fallback_rate": float(self.fallback_rate.mean()),
            "final_fallback_rate": float(self.final_fallback_rate.mean()),
            "attempts": float(self.attempts_per_request.mean()),
            "decisions_per_second": self.decisions_per_second,
            "rank_decisions_per_second": self.rank_decisions_per_second,
        }
        if self.cost_per_1k is not None:
            out["cost_per_1k"] = float(self.cost_per_1k.mean())
        if self.latency_ms is not None:
            out["latency_ms"] = float(self.latency_ms.mean())
        return out


def _sem(values: FloatArray) -> FloatArray:
    """Standard error of the mean over the last axis (0 with one replication)."""
    r = values.shape[-1]
    if r < 2:
        return np.zeros(values.shape[:-1])
    out: FloatArray = values.std(axis=-1, ddof=1) / math.sqrt(r)
    return out
