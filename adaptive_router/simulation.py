"""Offline simulator: what would the router have done?

The simulator runs ``R`` independent replications of a routing problem at once
with numpy and asks the policy for a ranking through the very same call the
live :class:`~adaptive_router.Router` makes, ``policy.rank(successes, failures,
rng)``, with arrays of shape ``(R, K)``. Pass it a
:class:`~adaptive_router.policy.ThompsonSampling` (or ``router.policy`` itself)
and the result describes the code users run; there is no second Thompson
Sampling implementation here.

Time is counted in requests (*steps*). A policy's ``half_life`` is read in
steps: after every step the decayed sums are multiplied by
``decay_factor(1, half_life) = 0.5 ** (1 / half_life)``, which is exactly what
the Router computes when its clock advances one second per request and its
``half_life`` is that many seconds. For live traffic at ``r`` requests per
second, a half-life of ``h`` steps is ``h / r`` seconds. (The Router also zeroes
evidence older than ``MAX_HALF_LIVES`` half-lives; repeated multiplication has taken it
below 1e-18 by then, so the two agree to float rounding.)

An attempt is one Bernoulli draw with the path's current success rate: retries,
timeouts, breakers and rate limits, which the Router applies inside an attempt, are
not modelled.

Two independent generators keep runs reproducible and comparisons fair:
``rng`` is consumed only by ``policy.rank`` (as in the Router, where nothing
else touches the router's generator), ``env_rng`` only by the environment,
which draws every path's outcome at every step (``env_rng.random((R, K))``)
whether or not the path is tried. Policies run with the same ``env_rng`` seed
therefore face the same outcomes (common random numbers), and
:func:`outcome_table` reproduces the draws for replaying them elsewhere.

Example::

    import numpy as np
    from adaptive_router.policy import ThompsonSampling
    from adaptive_router.simulation import abrupt, rngs, simulate

    env = abrupt([0.95, 0.85, 0.6], path=0, at=3_000, to=0.3)
    rng, env_rng = rngs(7)
    res = simulate(ThompsonSampling(half_life=200), env, 10_000, 100, rng=rng, env_rng=env_rng)
    res.adaptation_lag(path=0, since=3_000)
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from adaptive_router.policy import FloatArray, IntArray, Policy, ThompsonSampling, decay_factor

BoolArray = NDArray[np.bool_]

__all__ = [
    "UCB1",
    "Change",
    "Environment",
    "EpsilonGreedy",
    "FinalPath",
    "Oracle",
    "SimulationResult",
    "StaticOrder",
    "StepAware",
    "UniformRandom",
    "abrupt",
    "adaptation_lag",
    "adaptation_lags",
    "bernoulli_kl",
    "compare",
    "drift",
    "lai_robbins_bound",
    "lai_robbins_constant",
    "outcome_table",
    "policy_label",
    "recovery",
    "rngs",
    "simulate",
    "stationary",
]


# -- baselines -------------------------------------------------------------------------------


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


# -- environments ----------------------------------------------------------------------------


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


# -- results ----------------------------------------------------------------------------------


def adaptation_lag(
    share: FloatArray, since: int, threshold: float = 0.10, window: int = 10
) -> float:
    """Requests served after step ``since`` before a path's first-attempt share falls under
    ``threshold``: the start of the first run of ``window`` requests averaging below it.

    ``share`` is the path's first-attempt share per step, averaged over replications
    (the window smooths the replication noise). 0 means it never got traffic after
    ``since``; ``inf`` that it kept at least ``threshold`` until the horizon.
    """
    tail = np.asarray(share, dtype=np.float64)[since:]
    if tail.size < window:
        return math.inf
    rolling = np.convolve(tail, np.ones(window) / window, mode="valid")
    below = np.flatnonzero(rolling < threshold)
    return float(below[0]) if below.size else math.inf


def adaptation_lags(
    first: IntArray, path: int, since: int, threshold: float = 0.10, window: int = 10
) -> FloatArray:
    """:func:`adaptation_lag` of each replication on its own, shape ``(R,)``.

    ``first`` is the first path of every request of every replication, shape ``(T, R)``
    (``SimulationResult.trace_first``). A run's lag is the start of its first ``window``
    requests after ``since`` in which ``path`` was first on fewer than ``threshold`` of
    them. The mean of these is not the lag of the run-averaged traffic curve: one run's
    late exploration keeps the averaged curve above the threshold for longer.
    """
    on = np.asarray(first)[since:] == path
    lags = np.full(on.shape[1], math.inf)
    if on.shape[0] < window:
        return lags
    csum = np.concatenate([np.zeros((1, on.shape[1])), np.cumsum(on, axis=0)])
    rolling = (csum[window:] - csum[:-window]) / window
    below = rolling < threshold
    hit = below.any(axis=0)
    lags[hit] = np.argmax(below[:, hit], axis=0)
    return lags


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
    (the fallback chain ``Router.run`` walks; ``[..., 0]`` is ``trace_first``)."""
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
        self, path: int, since: int, threshold: float = 0.10, window: int = 10
    ) -> float:
        """Requests after ``since`` until ``path`` gets under ``threshold`` of first attempts.

        ``inf`` if it never does (the static order, for instance).
        """
        return adaptation_lag(self.share[:, path], since, threshold, window)

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


# -- the simulator -----------------------------------------------------------------------------


def rngs(seed: int | Sequence[int]) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent ``(policy rng, environment rng)`` generators from one seed.

    Both are numpy SFC64 generators, the bit generator whose stream the compiled engine
    reproduces (numpy's default PCG64 would need 128-bit arithmetic in the inner loop).
    """
    policy_seq, env_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.Generator(np.random.SFC64(policy_seq)), np.random.Generator(
        np.random.SFC64(env_seq)
    )


Engine = Literal["auto", "numpy", "numba"]


def _compiled_engine(
    engine: str, policy: Policy, rng: np.random.Generator, env_rng: np.random.Generator
) -> bool:
    """Whether :func:`simulate` runs the compiled loop; explains when ``"numba"`` can't."""
    if engine not in ("auto", "numpy", "numba"):
        raise ValueError(f"engine must be 'auto', 'numpy' or 'numba', got {engine!r}")
    if engine == "numpy":
        return False
    why = None
    if type(policy) is not ThompsonSampling:
        why = f"it compiles ThompsonSampling only, not {type(policy).__name__}"
    elif rng is env_rng:
        # numpy interleaves one stream's policy and environment draws; the kernel keeps
        # two states and could not write both back.
        why = "rng and env_rng are the same generator (rngs() gives two independent ones)"
    elif not (
        isinstance(rng.bit_generator, np.random.SFC64)
        and isinstance(env_rng.bit_generator, np.random.SFC64)
    ):
        why = (
            "it reproduces numpy's SFC64 streams only; pass "
            "numpy.random.Generator(numpy.random.SFC64(seed)) as rng and env_rng (rngs() does)"
        )
    elif importlib.util.find_spec("numba") is None:
        why = "numba is not installed: pip install 'adaptive-router[sim]'"
    if why is None:
        return True
    if engine == "numba":
        raise ValueError(f"engine='numba' cannot run this simulation: {why}")
    return False


def _checkpoints(horizon: int, n: int) -> IntArray:
    # Log-spaced for the early curve (and log-x plots), linear for the rest.
    pts = np.concatenate(
        [np.geomspace(1, horizon, max(n // 2, 2)), np.linspace(1, horizon, max(n // 2, 2))]
    )
    out: IntArray = np.unique(np.round(pts).astype(np.intp))
    return out


def simulate(
    policy: Policy,
    env: Environment,
    horizon: int,
    replications: int = 1,
    *,
    rng: np.random.Generator,
    env_rng: np.random.Generator,
    fallback: bool = True,
    checkpoints: int = 200,
    trace: bool = False,
    progress: Callable[[int, int], None] | None = None,
    label: str | None = None,
    engine: Engine = "auto",
) -> SimulationResult:
    """Serve ``horizon`` requests in each of ``replications`` independent worlds.

    Per step: ``policy.rank`` orders the paths of every replication from the
    (decayed) evidence; the first path is attempted; with ``fallback=True`` the
    next ranked path is tried on failure until one succeeds, as ``Router.run``
    does, then ``env.final`` if every learned path failed. Every attempt's
    outcome is evidence (the Router records every attempt too), visible to the
    policy ``env.delay`` requests later and added with full weight then, as
    ``Router.report`` stamps an outcome with the report time. After each step
    the sums are multiplied by ``0.5 ** (1 / half_life)`` (see the module
    docstring). With ``fallback=False`` only the first path is tried, as with
    ``choose``/``report``.

    With ``replications=1``, ``rank`` gets 1-D arrays of length K, exactly the
    call ``Router`` makes; nothing else consumes ``rng``, so a Router built with
    the same seed, policy settings and outcomes (clock advancing one second per
    request) picks the same paths, in the same fallback order. (The Router's default
    retry policy draws its jitter from a ``random.Random`` of its own, seeded with the
    router's int seed, never from the routing generator.)

    ``progress(done, total)`` is called every ~1% of the steps (for progress bars).

    ``engine``: ``"numpy"`` runs the loop above for any policy; ``"numba"`` runs the
    same step compiled (:mod:`adaptive_router.simulation_kernel`, ~3.5x faster), for a
    :class:`ThompsonSampling` with SFC64 generators (as :func:`rngs` makes) and numba
    installed; ``"auto"`` (default) picks ``"numba"`` when it can. Both engines consume
    the generators identically, so they give the same choices, outcomes and counts; float
    sums (cost per step) agree to rounding.
    """
    if not isinstance(policy, Policy):
        raise TypeError(
            f"policy must have rank(successes, failures, rng) and half_life: {policy!r}"
        )
    if horizon < 1 or replications < 1:
        raise ValueError("horizon and replications must be >= 1")
    k, r = env.n_paths, replications
    rates = env.rate_table(horizon)
    best = rates.max(axis=1)
    keep = decay_factor(1.0, policy.half_life)
    step_aware = policy if isinstance(policy, StepAware) else None

    succ = np.zeros((r, k))
    fail = np.zeros((r, k))
    rows = np.arange(r)
    delay = env.delay
    pend_s = np.zeros((delay, r, k), dtype=np.bool_)
    pend_f = np.zeros((delay, r, k), dtype=np.bool_)

    marks = _checkpoints(horizon, checkpoints)
    regret = np.empty((marks.size, r))
    mark_i = 0
    cum = np.zeros(r)
    share = np.zeros((horizon, k))
    first_success = np.empty(horizon)
    counts = np.zeros((r, 7))  # the compiled engine's layout (a row per replication)
    n_first_ok, n_req_ok, n_fallback, n_final, n_attempts, total_cost, total_lat = counts.T
    cost = None if env.cost_usd is None else np.asarray(env.cost_usd, dtype=np.float64)
    lat = None if env.latency_ms is None else np.asarray(env.latency_ms, dtype=np.float64)
    step_cost = None if cost is None else np.empty(horizon)
    final = env.final
    trace_order = np.empty((horizon, r, k), dtype=np.intp) if trace else None
    trace_ok = np.empty((horizon, r, k), dtype=np.bool_) if trace else None
    every = max(horizon // 100, 1)

    compiled = _compiled_engine(engine, policy, rng, env_rng)
    if compiled:
        _warm_up_kernel()
    rank_s: float | None = None  # the compiled engine fuses rank with the rest of the step
    start = time.perf_counter()
    if compiled:
        assert isinstance(policy, ThompsonSampling)
        _run_compiled(
            policy,
            env,
            rates,
            best,
            rng=rng,
            env_rng=env_rng,
            succ=succ,
            fail=fail,
            pend=(pend_s, pend_f),
            fallback=fallback,
            marks=marks,
            regret=regret,
            cum=cum,
            share=share,
            first_success=first_success,
            step_cost=step_cost,
            counts=counts,
            trace=(trace_order, trace_ok),
            progress=progress,
            every=every,
        )
    else:
        rank_s = 0.0
        for t in range(horizon):
            p = rates[t]
            if step_aware is not None:
                step_aware.at_step(t, p)
            t0 = time.perf_counter()
            if r == 1:
                # The Router's exact call: 1-D arrays. Keeps single runs step-for-step comparable.
                order = policy.rank(succ[0], fail[0], rng)[None, :]
            else:
                order = policy.rank(succ, fail, rng)
            rank_s += time.perf_counter() - t0
            first = order[:, 0]
            ok = env_rng.random((r, k)) < p
            first_ok = ok[rows, first]
            cum += best[t] - p[first]
            share[t] = np.bincount(first, minlength=k)
            first_success[t] = first_ok.mean()
            n_first_ok += first_ok

            if fallback and k > 1:
                ok_ord = np.take_along_axis(ok, order, axis=1)
                failed_so_far = np.logical_and.accumulate(~ok_ord, axis=1)
                tried_ord = np.empty((r, k), dtype=np.bool_)
                tried_ord[:, 0] = True
                tried_ord[:, 1:] = failed_so_far[:, :-1]
                tried = np.empty((r, k), dtype=np.bool_)
                np.put_along_axis(tried, order, tried_ord, axis=1)
                all_failed = failed_so_far[:, -1]
            else:
                tried = np.zeros((r, k), dtype=np.bool_)
                tried[rows, first] = True
                all_failed = ~first_ok
            n_req_ok += ~all_failed
            attempts = tried.sum(axis=1)
            n_attempts += attempts
            if final is not None:
                n_final += all_failed
                n_fallback += ~first_ok
            else:
                n_fallback += attempts > 1
            if cost is not None and step_cost is not None:
                req_cost = tried @ cost
                if final is not None:
                    req_cost += all_failed * final.cost_usd
                total_cost += req_cost
                step_cost[t] = req_cost.mean()
            if lat is not None:
                total_lat += tried @ lat
                if final is not None:
                    total_lat += all_failed * final.latency_ms
            if trace_order is not None and trace_ok is not None:
                trace_order[t] = order
                trace_ok[t] = ok

            new_s = tried & ok
            new_f = tried & ~ok
            if delay:
                slot = t % delay
                succ += pend_s[slot]
                fail += pend_f[slot]
                pend_s[slot] = new_s
                pend_f[slot] = new_f
            else:
                succ += new_s
                fail += new_f
            if keep != 1.0:
                succ *= keep
                fail *= keep

            if mark_i < marks.size and t + 1 == marks[mark_i]:
                regret[mark_i] = cum
                mark_i += 1
            if progress is not None and ((t + 1) % every == 0 or t + 1 == horizon):
                progress(t + 1, horizon)
    seconds = time.perf_counter() - start

    share /= r
    return SimulationResult(
        label=label or policy_label(policy),
        env_label=env.label,
        names=env.path_names,
        horizon=horizon,
        replications=r,
        steps=marks,
        regret=regret,
        first_success=first_success,
        share=share,
        first_success_rate=n_first_ok / horizon,
        request_success_rate=n_req_ok / horizon,
        fallback_rate=n_fallback / horizon,
        final_fallback_rate=n_final / horizon,
        attempts_per_request=n_attempts / horizon,
        cost_per_1k=None if cost is None else total_cost / horizon * 1000.0,
        latency_ms=None if lat is None else total_lat / horizon,
        step_cost=step_cost,
        seconds=seconds,
        rank_seconds=rank_s,
        rates=rates,
        trace_first=None if trace_order is None else trace_order[:, :, 0].copy(),
        trace_outcomes=trace_ok,
        trace_order=trace_order,
        engine="numba" if compiled else "numpy",
    )


_kernel_ready = False


def _warm_up_kernel() -> None:
    """Load (or, the first time on a machine, compile: ~6 s) the kernel before a timed run.

    numba compiles on first call and caches the machine code on disk; loading it still
    takes ~0.5 s per process, which would otherwise be charged to the first simulation's
    decisions per second. A one-step simulation through the real path does it once.
    """
    global _kernel_ready
    if _kernel_ready:
        return
    _kernel_ready = True  # before the call: simulate() below comes back here
    rng, env_rng = rngs(0)
    simulate(ThompsonSampling(), stationary([0.5]), 1, 1, rng=rng, env_rng=env_rng, engine="numba")


def _run_compiled(
    policy: ThompsonSampling,
    env: Environment,
    rates: FloatArray,
    best: FloatArray,
    *,
    rng: np.random.Generator,
    env_rng: np.random.Generator,
    succ: FloatArray,
    fail: FloatArray,
    pend: tuple[BoolArray, BoolArray],
    fallback: bool,
    marks: IntArray,
    regret: FloatArray,
    cum: FloatArray,
    share: FloatArray,
    first_success: FloatArray,
    step_cost: FloatArray | None,
    counts: FloatArray,
    trace: tuple[IntArray | None, BoolArray | None],
    progress: Callable[[int, int], None] | None,
    every: int,
) -> None:
    """Fill :func:`simulate`'s arrays with the compiled loop, ``every`` steps at a time.

    Chunks keep progress bars moving and Ctrl-C responsive; each costs one call (~50 µs).
    """
    from adaptive_router import simulation_kernel as kernel

    horizon, k = rates.shape
    keep = decay_factor(1.0, policy.half_life)
    params = np.array([policy.prior[0], policy.prior[1], policy.explore, keep])
    extra = np.zeros((2, k + 1))  # per-attempt cost and latency; [k] = the final path's
    if env.cost_usd is not None:
        extra[0, :k] = env.cost_usd
    if env.latency_ms is not None:
        extra[1, :k] = env.latency_ms
    if env.final is not None:
        extra[:, k] = (env.final.cost_usd, env.final.latency_ms)
    trace_order, trace_ok = trace
    policy_words, env_words = kernel.get_state(rng), kernel.get_state(env_rng)
    mark_state = np.zeros(1, dtype=np.int64)
    # Absent outputs as empty arrays, so that one compiled specialisation serves every run.
    marks64 = marks.astype(np.int64)
    step_out = step_cost if step_cost is not None else np.empty(horizon)
    order_out = trace_order if trace_order is not None else np.empty((0, 0, 0), dtype=np.intp)
    ok_out = trace_ok if trace_ok is not None else np.empty((0, 0, 0), dtype=np.bool_)
    for t0 in range(0, horizon, every):
        t1 = min(t0 + every, horizon)
        kernel.run_thompson(
            policy_words,
            env_words,
            params,
            rates,
            best,
            t0,
            t1,
            succ,
            fail,
            pend[0],
            pend[1],
            fallback,
            extra[0],
            extra[1],
            env.final is not None,
            marks64,
            mark_state,
            regret,
            cum,
            share,
            first_success,
            step_out,
            counts,
            trace_order is not None,
            order_out,
            ok_out,
        )
        # Written back after every chunk: an interrupted run leaves the generators where
        # the completed steps left them, as the numpy loop does.
        kernel.set_state(rng, policy_words)
        kernel.set_state(env_rng, env_words)
        if progress is not None:
            progress(t1, horizon)


def compare(
    policies: Mapping[str, Policy],
    env: Environment,
    horizon: int,
    replications: int,
    seed: int,
    **kwargs: Any,
) -> dict[str, SimulationResult]:
    """Run each policy on the same seeded world (common random numbers), keyed by label.

    ``kwargs`` go to :func:`simulate` (``fallback``, ``checkpoints``, ``progress``...).
    """
    out: dict[str, SimulationResult] = {}
    for name, policy in policies.items():
        rng, env_rng = rngs(seed)
        out[name] = simulate(
            policy,
            env,
            horizon,
            replications,
            rng=rng,
            env_rng=env_rng,
            label=name,
            **kwargs,
        )
    return out


# -- the Lai–Robbins lower bound ------------------------------------------------------------


def bernoulli_kl(p: ArrayLike, q: ArrayLike) -> FloatArray:
    """KL(Bernoulli(p) ‖ Bernoulli(q)) in nats; ``inf`` where q ∈ {0, 1} and p ≠ q."""
    p_arr = np.asarray(p, dtype=np.float64)
    q_arr = np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p_arr > 0, p_arr * np.log(p_arr / q_arr), 0.0)
        b = np.where(p_arr < 1, (1 - p_arr) * np.log((1 - p_arr) / (1 - q_arr)), 0.0)
    out: FloatArray = np.asarray(a + b, dtype=np.float64)
    return out


def lai_robbins_constant(rates: ArrayLike) -> float:
    """Σ over suboptimal arms of (μ* − μ_i) / KL(μ_i, μ*): regret grows like this × ln t.

    Arms tied with the best cost nothing; with μ* = 1 the KL is infinite and the
    bound is 0 (a perfect arm is identified in finite time).
    """
    mu = np.asarray(rates, dtype=np.float64)
    best = float(mu.max())
    sub = mu[mu < best]
    if sub.size == 0:
        return 0.0
    kl = bernoulli_kl(sub, best)
    with np.errstate(divide="ignore"):
        terms = np.where(np.isfinite(kl), (best - sub) / kl, 0.0)
    return float(terms.sum())


def lai_robbins_bound(rates: ArrayLike, t: ArrayLike) -> FloatArray:
    """Lai & Robbins (1985) asymptotic lower bound on Bernoulli regret after ``t`` pulls.

    Any consistent policy has ``liminf regret(t) / ln t >= lai_robbins_constant(rates)``;
    this returns ``constant × ln t`` (0 for t <= 1). It is asymptotic: at small t
    a good policy can sit below it.
    """
    tt = np.asarray(t, dtype=np.float64)
    out: FloatArray = lai_robbins_constant(rates) * np.log(np.maximum(tt, 1.0))
    return out
