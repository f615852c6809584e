"""A spend target: keep the average spend per request at B by a price per dollar.

Decision math without I/O. ``target_usd_per_request = B`` asks for the most successes
subject to an average spend per request of at most B. Its Lagrangian relaxation gives
each path the value ``θ_k - λ·c_k`` (θ_k its drawn chance of success, c_k its expected
cost of one attempt in dollars, λ ≥ 0 a price per dollar), and the dual variable λ is
learned from realized spend (primal–dual pacing; Balseiro & Gur 2019 for budgets, Xia et
al. 2015 for budgeted Thompson Sampling). Here λ is the lazily projected sum of the
spend errors (dual averaging)::

    λ = max(0, gain · E / B),   E = Σ_i w_i (c_i - B) / B = (spend_w - B · requests_w) / B

where c_i is request i's realized spend (all its attempts) and w_i its decay weight. When
requests overspend, E and λ grow and dearer paths lose value; when B exceeds what the
best path costs, E goes negative and stays there, λ = 0 and the choice is by θ alone:
the router never pays for nothing. ``gain`` is the change in the dimensionless price
``λ·B`` per request that overspends by B.

Why the sum rather than the usual step ``λ ← max(0, λ + η (c - B))``: the state is then
two decayed sums, ``spend_w`` and ``requests_w``, which add up across processes and
arrive in any order exactly like the evidence (:func:`~adaptive_router.policies.thompson.fold`), so
every process of a task sharing them through the store computes one price, and a restart
resumes it. The projected step instead depends on the order of requests. With a
half-life the sums forget, which bounds how much unspent budget can be banked (E ≥
-requests_w) and leaves the window's average above B by ``λ·B / (gain · requests_w)``
(under 1% once the window holds ~1,000 requests at the default gain); without one,
the target holds for the average since the start.

Paths whose cost is unknown (no attempt with a measured cost, no prior): see
:func:`paced_costs`.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from adaptive_router.errors import ConfigurationError
from adaptive_router.policies.thompson import TINY, decay_factor

__all__ = [
    "DEFAULT_GAIN",
    "MIN_TARGET_USD",
    "SpendPacer",
    "SpendStats",
    "SpendStatus",
    "check_target_usd_per_request",
    "paced_costs",
]

#: The smallest target: λ divides by B², which underflows to 0 for B below ~1e-154 (an
#: infinite price); a billionth of a dollar is far below any metered call's cost.
MIN_TARGET_USD = 1e-9

#: The change in ``λ·B`` per request that overspends by B. Large enough that the price
#: settles within tens of requests, small enough that one dear request moves it little.
DEFAULT_GAIN = 0.005


def check_target_usd_per_request(value: object, parameter: str = "target_usd_per_request") -> float:
    """``value`` as a float if it is a finite number of at least :data:`MIN_TARGET_USD`
    dollars (any real number type: int, float, numpy scalars, Decimal), else
    :class:`ConfigurationError` naming ``parameter``."""
    # numpy's bool is no numbers.Real; the built-in bool is one, and no amount.
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Decimal)):
        raise ConfigurationError(
            f"{parameter} must be a number of dollars > 0 such as 0.002, got {reprlib.repr(value)}"
        )
    try:
        v = float(value)
    except OverflowError:  # an int beyond any float
        v = math.inf
    if not (math.isfinite(v) and v >= MIN_TARGET_USD):
        raise ConfigurationError(
            f"{parameter} must be a finite number of dollars of at least {MIN_TARGET_USD:g} "
            f"such as 0.002, got {reprlib.repr(value)}"
        )
    return v


@dataclass(slots=True)
class SpendStats:
    """Decayed spend and request sums, relative to ``ref_time`` (the newest request's
    time), plus plain totals. Additive: :meth:`merge` of any partition of the requests
    equals folding them all, in any order (what a store's upsert relies on)."""

    spend_w: float = 0.0
    requests_w: float = 0.0
    ref_time: float = 0.0
    requests: int = 0
    spend_usd: float = 0.0

    def fold(self, cost_usd: float | None, at: float, half_life: float | None) -> None:
        """Add one request's realized spend (all its attempts; None = not metered, 0)."""
        self.add(_check_cost(cost_usd), 1, at, half_life)

    def add(self, spend_usd: float, requests: int, at: float, half_life: float | None) -> None:
        """Add ``spend_usd`` spent at ``at`` by ``requests`` requests (0 for a later
        attempt of a request already counted: a store folds attempt by attempt, each
        request counted at its first attempt). ``spend_usd`` is a checked cost >= 0 (a
        negative change only from :meth:`revise`, which keeps the sums at 0 or above)."""
        keep = decay_factor(at - self.ref_time, half_life)
        add = decay_factor(self.ref_time - at, half_life)
        self.spend_w = (0.0 if self.spend_w < TINY else self.spend_w * keep) + spend_usd * add
        self.requests_w = (0.0 if self.requests_w < TINY else self.requests_w * keep) + (
            requests * add
        )
        self.ref_time = max(self.ref_time, at)
        self.requests += requests
        self.spend_usd += spend_usd

    def revise(self, change_usd: float, at: float, half_life: float | None) -> None:
        """A cost already added at ``at`` changed by ``change_usd`` (a late call of a
        written attempt; negative when its cost became unknown, which counts as $0): the
        sums move as if it had been added with its new value, no request added."""
        self.add(change_usd, 0, at, half_life)
        # A part removed was added with the same weight: only rounding goes below 0.
        self.spend_w = max(0.0, self.spend_w)
        self.spend_usd = max(0.0, self.spend_usd)

    def decayed(self, now: float, half_life: float | None) -> SpendStats:
        """A copy with both decayed sums decayed on to ``now`` (the window as of now;
        ``now`` before ``ref_time`` leaves them as they are)."""
        f = decay_factor(now - self.ref_time, half_life)
        return SpendStats(
            self.spend_w * f,
            self.requests_w * f,
            max(now, self.ref_time),
            self.requests,
            self.spend_usd,
        )

    def merge(self, other: SpendStats, half_life: float | None) -> SpendStats:
        """The sums of both, relative to the newer ``ref_time``."""
        ref = max(self.ref_time, other.ref_time)
        a = decay_factor(ref - self.ref_time, half_life)
        b = decay_factor(ref - other.ref_time, half_life)
        return SpendStats(
            spend_w=self.spend_w * a + other.spend_w * b,
            requests_w=self.requests_w * a + other.requests_w * b,
            ref_time=ref,
            requests=self.requests + other.requests,
            spend_usd=self.spend_usd + other.spend_usd,
        )

    @property
    def mean_spend_usd(self) -> float | None:
        """Realized spend per request over the window (decayed), None before any."""
        return self.spend_w / self.requests_w if self.requests_w > 0.0 else None


def _check_cost(cost_usd: float | None) -> float:
    if cost_usd is None:
        return 0.0
    c = float(cost_usd)
    if not (math.isfinite(c) and c >= 0.0):
        raise ValueError(f"cost_usd must be a finite number >= 0 (or None), got {cost_usd!r}")
    return c


class SpendPacer:
    """The price per dollar λ that keeps average spend per request at ``target``.

    ``observe(cost_usd, at)`` after every request (its total realized spend; None when
    nothing was metered, counted as 0), ``price`` before the next decision. ``half_life``
    is in the clock's unit (seconds for the Router, steps for the simulator), None = the
    whole history. ``stats`` is the shared state (see :class:`SpendStats`).
    """

    def __init__(
        self,
        target_usd_per_request: float,
        half_life: float | None = None,
        gain: float = DEFAULT_GAIN,
        stats: SpendStats | None = None,
    ) -> None:
        self.target = check_target_usd_per_request(target_usd_per_request)
        if half_life is not None and not (
            isinstance(half_life, (int, float)) and math.isfinite(half_life) and half_life > 0
        ):
            raise ConfigurationError(f"half_life must be > 0 (or None), got {half_life!r}")
        if isinstance(gain, bool) or not (
            isinstance(gain, (int, float)) and math.isfinite(gain) and gain > 0
        ):
            raise ConfigurationError(f"gain must be a finite number > 0, got {gain!r}")
        self.half_life = None if half_life is None else float(half_life)
        self.gain = float(gain)
        self.stats = SpendStats() if stats is None else stats

    def __repr__(self) -> str:
        return (
            f"SpendPacer(target_usd_per_request={self.target!r}, half_life={self.half_life!r}, "
            f"gain={self.gain!r}, price={self.price:.6g})"
        )

    def observe(self, cost_usd: float | None, at: float) -> None:
        """Fold one finished request's total spend into the window."""
        self.stats.fold(cost_usd, at, self.half_life)

    @property
    def overspend(self) -> float:
        """E: the decayed sum of ``(spend - B) / B`` over requests (negative = under)."""
        st = self.stats
        return (st.spend_w - self.target * st.requests_w) / self.target

    @property
    def price(self) -> float:
        """λ, dollars⁻¹ in units of success probability: ``max(0, gain · E / B)``."""
        return max(0.0, self.gain * self.overspend / self.target)


@dataclass(frozen=True, slots=True)
class SpendStatus:
    """A task's spend against its target, as priced at one moment.

    ``realized_usd_per_request`` is the average spend per request over the recent window
    (decayed with the task's half-life; every attempt of a request counts; None before
    any request), ``window_requests`` the decayed number of requests it averages over,
    ``price_per_usd`` the price λ per dollar that ranks paths by ``θ - λ·c`` (0 when the
    window spends under the target, or without a target), ``requests`` and
    ``spend_usd`` all-time totals (attempts whose cost was not metered count as $0).
    """

    target_usd_per_request: float | None
    realized_usd_per_request: float | None
    price_per_usd: float
    window_requests: float
    requests: int
    spend_usd: float

    @classmethod
    def of(
        cls,
        stats: SpendStats,
        target_usd_per_request: float | None,
        half_life: float | None,
        now: float,
        gain: float = DEFAULT_GAIN,
    ) -> SpendStatus:
        """The status of ``stats`` (a task's sums) decayed to ``now``."""
        st = stats.decayed(now, half_life)
        price = 0.0
        if target_usd_per_request is not None:
            price = SpendPacer(target_usd_per_request, half_life, gain, st).price
        return cls(
            target_usd_per_request,
            st.mean_spend_usd,
            price,
            st.requests_w,
            st.requests,
            st.spend_usd,
        )

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready (the CLI's and the dashboard's ``spend``)."""
        return {
            "target_usd_per_request": self.target_usd_per_request,
            "realized_usd_per_request": self.realized_usd_per_request,
            "price_per_usd": self.price_per_usd,
            "window_requests": self.window_requests,
            "requests": self.requests,
            "spend_usd": self.spend_usd,
        }


def paced_costs(
    means: Sequence[float | None], priors: Sequence[float | None] | None = None
) -> list[float]:
    """Per-path cost of one attempt for choosing under a spend target.

    A path's learned mean cost where it has one (None or NaN = none), else its prior
    (``expected_cost_usd``), else the dearest cost known for any path: under a budget an
    unmeasured path must not look free, and the exploration floor still sends it the
    occasional request that measures it. A path never metered (an attempt's cost stays
    unknown) keeps that pessimistic cost, and its attempts add nothing to realized spend.
    When no path has a known cost, all are 0: the target cannot tell paths apart by
    cost, and the choice is by success alone.
    """
    m = [math.nan if v is None else float(v) for v in means]
    if priors is not None:
        if len(priors) != len(m):
            raise ValueError(f"expected_cost_usd: {len(priors)} priors for {len(m)} paths")
        p = [math.nan if v is None else float(v) for v in priors]
        m = [pv if math.isnan(mv) else mv for mv, pv in zip(m, p, strict=True)]
    bad = [v for v in m if not math.isnan(v) and not (0.0 <= v < math.inf)]
    if bad:
        raise ValueError(f"costs must be finite and >= 0 per path, got {bad}")
    known = [v for v in m if not math.isnan(v)]
    fill = max(known) if known else 0.0
    return [fill if math.isnan(v) else v for v in m]
