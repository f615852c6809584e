"""Propensities: the exact probability that Thompson Sampling attempted each path first.

Decision math without I/O. Off-policy evaluation (``adaptive_router.ope.evaluation``)
needs, for every logged decision, the probability with which the router made it.
For :class:`~adaptive_router.policies.thompson.ThompsonSampling` that probability has no closed
form but is a one-dimensional integral, computed here exactly up to quadrature error
(< 2e-4 against ``scipy.integrate.quad`` in the tests, well inside the 3e-3 they
allow against 10⁶-draw Monte Carlo of the policy itself).

What a decision used, and what the router must log to recompute it later, is an
:class:`EvidenceSnapshot`: per learned path the Beta posterior ``(α, β)``, whether the
path was skipped at attempt time (breaker open, rate limit exhausted), and — for an
objective ranking by cost or latency to a success — the path's point cost; plus the
exploration floor ``ε``. Computing a propensity costs tens to hundreds of µs (see
``benchmarks/propensity.py``), far more than routing one request, so the router logs
the snapshot and :func:`propensities` computes them later, in vectorised batches.

The model, following ``ThompsonSampling.rank`` and the Router:

* θ_i ~ Beta(α_i, β_i) independently; paths are ranked by descending θ_i, or, with an
  objective, by ascending key_i = c_i / θ_i (expected cost or time to a success, c_i > 0
  a known point estimate). Ties have probability zero (continuous θ).
* With probability ε one of the K learned paths, chosen uniformly (skipped or not),
  is put first; the others keep their sampled order.
* Skipped paths are passed over at attempt time, so the path *attempted* first is the
  first non-skipped path of that order. If the floor picked a skipped path, the first
  attempt is therefore the sampled best among the non-skipped paths.

Hence, with S the non-skipped paths, T_i = P(i is best among S by the sampled ranking)
and m = |skipped|::

    P(attempted first = i) = (1 - ε) T_i + ε (1/K + (m/K) T_i)     for i in S, else 0.

For the TS part, substitute y_j = θ_j / c_j (c_j = 1 without an objective): a path is
better when its y is larger, so T_i = ∫ g_i(y) Π_{j∈S, j≠i} G_j(y) dy with
g_j(y) = c_j f_j(c_j y) and G_j(y) = F_j(c_j y) the Beta density and CDF scaled.

Quadrature: sharp posteriors (α + β ~ 10⁴, standard deviation ~ 0.005) beside wide ones
defeat any fixed grid on [0, 1]. So each decision gets its own grid: breakpoints at
every path's mean ± (0, 2, 5, 12) standard deviations (in y, clipped to the support),
plus points graded toward the ends of each support (where Beta densities with α or
β < 1 are singular), and Gauss–Legendre nodes on each panel between consecutive
breakpoints, ~256 nodes in all. Every density and every CDF step then falls on panels
sized to it. The CDFs are integrated from the densities on the same panels (spectral
integration), as accurate and ~10x cheaper than the incomplete beta function, which
costs ~1.6 µs per call near the mean of a sharp posterior.
If every learned path was skipped, the fallback went first and every row entry is 0.

Under a spend target the order is by descending θ_i − λ·c_i (``shifts`` d_i = λ·c_i):
substitute y = θ_j − d_j instead, so g_j(y) = f_j(y + d_j) and G_j(y) = F_j(y + d_j) on
the shifted supports [−d_j, 1 − d_j]; the grid's breakpoints move with them.

Decisions of a feature router
(:class:`~adaptive_router.policies.contextual_decision.GaussianDecision`) have Gaussian
scores: :func:`decision_propensities` computes theirs with
:func:`adaptive_router.policies.gaussian.batch_first_choice_probabilities`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from adaptive_router.policies.contextual_decision import AnyDecision, GaussianDecision
from adaptive_router.policies.logged_decision import LoggedDecision

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Breakpoints per path, in standard deviations around the mean. ±12 sd leaves < 1e-6 of
#: the mass outside even for the skewed Beta(1, β) (an exponential: e^-13).
_OFFSETS = np.array([-12.0, -5.0, -2.0, 0.0, 2.0, 5.0, 12.0])
#: Panels graded toward the ends of the support, where a density with α < 1 or β < 1
#: (a prior below 1 with little evidence) is singular and one with α or β near 1 has a
#: singular derivative: polynomial rules converge slowly on such panels unless they are short.
_ENDS = np.array([1e-6, 1e-4, 1e-2])
#: Total quadrature nodes per decision (spread over the panels).
NODES = 256
#: Decisions computed per vectorised chunk (bounds the (chunk, K, nodes) temporaries).
CHUNK = 64


@dataclass(frozen=True)
class EvidenceSnapshot:
    """What one routing decision used: enough to recompute its propensities later.

    ``alpha``/``beta`` are the posterior parameters the policy sampled from (the prior
    plus the decayed success and failure weights), one per learned path in the order
    the router lists them (the final fallback is not a learned path). ``explore`` is the
    exploration floor ε. ``skipped`` marks paths passed over at attempt time (open
    breaker, exhausted rate limit); ``costs`` are the objective's per-path point costs
    (cost or latency of one attempt; ranking by cost / θ), or None to rank by θ.
    """

    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    explore: float = 0.0
    skipped: tuple[bool, ...] | None = None
    costs: tuple[float, ...] | None = None
    shifts: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        k = len(self.alpha)
        if k == 0:
            raise ValueError("alpha must list at least one path's posterior α")
        if len(self.beta) != k:
            raise ValueError(f"beta has {len(self.beta)} entries, alpha has {k}: one per path")
        if self.skipped is not None and len(self.skipped) != k:
            raise ValueError(f"skipped has {len(self.skipped)} entries, alpha has {k}")
        if self.costs is not None and len(self.costs) != k:
            raise ValueError(f"costs has {len(self.costs)} entries, alpha has {k}")
        if self.shifts is not None and len(self.shifts) != k:
            raise ValueError(f"shifts has {len(self.shifts)} entries, alpha has {k}")

    @property
    def k(self) -> int:
        """Number of learned paths."""
        return len(self.alpha)


@dataclass(frozen=True)
class SnapshotBatch:
    """Many decisions over the same K paths, as arrays: ``alpha``, ``beta``, ``skipped``
    and ``costs`` of shape ``(n, K)``, ``explore`` of shape ``(n,)``. ``costs`` all 1.0
    ranks by θ (Thompson Sampling's default objective). ``shifts`` (n, K) or None: rank by
    θ − shift (a spend target's λ·c; ``costs`` then all 1.0)."""

    alpha: FloatArray
    beta: FloatArray
    explore: FloatArray
    skipped: BoolArray
    costs: FloatArray
    shifts: FloatArray | None = None

    @classmethod
    def from_arrays(
        cls,
        alpha: object,
        beta: object,
        *,
        explore: object = 0.0,
        skipped: object = None,
        costs: object = None,
        shifts: object = None,
    ) -> SnapshotBatch:
        """Validate and broadcast arrays into a batch; a 1-D ``alpha`` is one decision."""
        a = np.atleast_2d(np.asarray(alpha, dtype=np.float64))
        b = np.atleast_2d(np.asarray(beta, dtype=np.float64))
        if a.ndim != 2 or a.shape != b.shape:
            raise ValueError(
                f"alpha and beta must both have shape (n, K); got {a.shape} and {b.shape}"
            )
        n, k = a.shape
        if k == 0:
            raise ValueError("alpha must list at least one path per decision (K >= 1)")
        if not (np.all(np.isfinite(a)) and np.all(a > 0)):
            raise ValueError("alpha must be finite and > 0 (the prior α is > 0)")
        if not (np.all(np.isfinite(b)) and np.all(b > 0)):
            raise ValueError("beta must be finite and > 0 (the prior β is > 0)")
        eps = np.broadcast_to(np.asarray(explore, dtype=np.float64), (n,)).copy()
        if not np.all((eps >= 0.0) & (eps < 1.0)):
            raise ValueError("explore must be a probability in [0, 1)")
        if skipped is None:
            skip = np.zeros((n, k), dtype=np.bool_)
        else:
            skip = np.broadcast_to(np.asarray(skipped, dtype=np.bool_), (n, k)).copy()
        if costs is None:
            c = np.ones((n, k))
        else:
            c = np.broadcast_to(np.asarray(costs, dtype=np.float64), (n, k)).copy()
            if not (np.all(np.isfinite(c)) and np.all(c > 0)):
                raise ValueError(
                    "costs must be finite and > 0 (a point estimate of cost or latency per "
                    "attempt); pass costs=None to rank by success probability"
                )
        d = None
        if shifts is not None:
            d = np.broadcast_to(np.asarray(shifts, dtype=np.float64), (n, k)).copy()
            if not (np.all(np.isfinite(d)) and np.all(d >= 0)):
                raise ValueError("shifts must be finite and >= 0 (a spend target's λ·c)")
            if not np.all(c == 1.0):
                raise ValueError("shifts rank by θ - shift: leave costs=None with them")
        return cls(a, b, eps, skip, c, d)

    def __len__(self) -> int:
        return int(self.alpha.shape[0])


@functools.lru_cache(maxsize=64)
def _rule(m: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Gauss–Legendre nodes and weights on [-1, 1], and the matrix Q with
    (Q f)_i = ∫_{-1}^{t_i} p(t) dt for p the polynomial interpolating f at the nodes."""
    t, w = np.polynomial.legendre.leggauss(m)
    vander = np.polynomial.legendre.legvander(t, m - 1)
    antideriv = np.stack(
        [
            np.polynomial.legendre.legval(t, np.polynomial.legendre.legint(np.eye(m)[j], lbnd=-1))
            for j in range(m)
        ],
        axis=1,
    )
    # The interpolant's Legendre coefficients are c_j = (2j + 1)/2 · Σ_i w_i P_j(t_i) f_i
    # (the rule is exact for P_j times a polynomial of degree < m): the Vandermonde
    # matrix's inverse in closed form, equal to np.linalg.inv's within 5e-15, and free of
    # the inversion's rounding at large m.
    inverse = ((2.0 * np.arange(m) + 1.0) / 2.0)[:, None] * vander.T * w
    q: FloatArray = antideriv @ inverse
    return t, w, q


def _beta_moments(a: FloatArray, b: FloatArray) -> tuple[FloatArray, FloatArray]:
    s = a + b
    return a / s, np.sqrt(a * b / (s * s * (s + 1.0)))


#: math.lgamma over an array (an object array back: see :func:`_log_beta`).
_lgamma = np.frompyfunc(math.lgamma, 1, 1)


def _log_beta(a: FloatArray, b: FloatArray) -> FloatArray:
    """log B(a, b), without scipy: importing ``scipy.special`` would add ~20 MB to every
    routing process that logs decisions, for three functions. The log-gamma difference
    loses ~1e-10 (absolute, at a + b ~ 10⁵; 7e-7 at 10⁸) against ``scipy.special.betaln``
    to cancellation: a relative error that small in a density is far inside the
    quadrature's own. A batch has n·K entries, so the Python-level call costs little."""
    out: FloatArray = np.asarray(_lgamma(a) + _lgamma(b) - _lgamma(a + b), dtype=np.float64)
    return out


def _log_pdf(x: FloatArray, a: FloatArray, b: FloatArray, log_beta: FloatArray) -> FloatArray:
    # Only called where 0 < x < 1 (the live nodes), so plain logs are finite and need no
    # xlogy-style 0·log 0 guard.
    result: FloatArray = (a - 1.0) * np.log(x) + (b - 1.0) * np.log1p(-x) - log_beta
    return result


def _best_probabilities(
    a: FloatArray,
    b: FloatArray,
    c: FloatArray,
    skip: BoolArray,
    shift: FloatArray | None = None,
) -> FloatArray:
    """T_i: probability that path i is best among the non-skipped paths, shape (n, K);
    ``shift`` (with c all 1): by θ − shift rather than θ / c."""
    n, k = a.shape
    mean, sd = _beta_moments(a, b)
    if shift is None:
        # Breakpoints in y = θ / c, clipped to each path's support [0, 1/c]; plus the ends.
        lo = np.zeros((n, 1))
        hi = (1.0 / c).max(axis=1, keepdims=True)
        pts = (mean[..., None] + sd[..., None] * _OFFSETS).clip(0.0, 1.0) / c[..., None]
        near0 = _ENDS / c.max(axis=1, keepdims=True)
        near1 = ((1.0 - _ENDS) / c[..., None]).reshape(n, -1)
    else:
        # y = θ - d: each path's support is [-d, 1 - d], both ends graded for each path.
        d3 = shift[..., None]
        lo = (-shift).min(axis=1, keepdims=True)
        hi = (1.0 - shift).max(axis=1, keepdims=True)
        pts = (mean[..., None] + sd[..., None] * _OFFSETS).clip(0.0, 1.0) - d3
        near0 = (_ENDS - d3).reshape(n, -1)
        near1 = ((1.0 - _ENDS) - d3).reshape(n, -1)
    bps = np.concatenate([lo, near0, pts.reshape(n, -1), near1, hi], axis=1)
    bps = np.sort(bps, axis=1)
    panels = bps.shape[1] - 1
    # Shifted supports end inside the grid, where a density with α or β < 1 is singular:
    # at least 8 nodes a panel there (4 left errors of ~1e-3 against adaptive quadrature).
    per_panel = max(4 if shift is None else 8, math.ceil(NODES / panels))
    t, w, q = _rule(per_panel)
    left, width = bps[:, :-1], np.diff(bps, axis=1)
    y = (left[..., None] + width[..., None] * (t + 1.0) / 2.0).reshape(n, 1, -1)
    wy = (width[..., None] * w / 2.0).reshape(n, -1)
    # x_j = c_j · y (or y + d_j): each path's θ at the common abscissa, shape (n, K, nodes).
    x = c[..., None] * y if shift is None else y + shift[..., None]
    # Beyond ±12 sd of its mean a path's density is negligible: evaluate it only where it
    # is not (for a sharp posterior, a few panels out of many).
    m3, s3 = mean[..., None], sd[..., None]
    live = (x > 0.0) & (x < 1.0) & (np.abs(x - m3) <= -_OFFSETS[0] * s3) & ~skip[..., None]
    idx = np.nonzero(live)
    log_b = _log_beta(a, b)[idx[:2]]
    dens = np.zeros(x.shape)
    dens[idx] = np.exp(_log_pdf(x[idx], a[idx[:2]], b[idx[:2]], log_b)) * c[idx[:2]]
    # CDFs by integrating the densities on the same grid (Legendre spectral integration
    # within each panel, cumulative sums across panels) rather than by the incomplete
    # beta function, which costs ~1.6 µs per call near the mean of a sharp posterior.
    # Normalising by the total mass makes every CDF end at exactly 1.
    half = (width / 2.0)[:, None, :, None]
    d4 = dens.reshape(n, k, panels, per_panel)
    within = (d4 @ q.T) * half
    mass = (d4 @ w) * half[..., 0]
    before = np.cumsum(mass, axis=2) - mass
    total = mass.sum(axis=2)[..., None, None]
    cdf = ((before[..., None] + within) / np.where(total > 0, total, 1.0)).clip(0.0, 1.0)
    cdf = cdf.reshape(n, k, -1)
    # A skipped path never beats anyone: its CDF is 1 and its density 0.
    cdf = np.where(skip[..., None], 1.0, cdf)
    dens = np.where(skip[..., None], 0.0, dens)
    # Π_{j≠i} G_j by prefix and suffix products (no division by a CDF that may be 0).
    ones = np.ones((n, 1, y.shape[-1]))
    prefix = np.cumprod(np.concatenate([ones, cdf[:, :-1]], axis=1), axis=1)
    suffix = np.cumprod(np.concatenate([ones, cdf[:, :0:-1]], axis=1), axis=1)[:, ::-1]
    out: FloatArray = np.einsum("nkm,nm->nk", dens * prefix * suffix, wy)
    return out


def _first_probabilities(batch: SnapshotBatch) -> FloatArray:
    k = batch.alpha.shape[1]
    skip = batch.skipped
    ts = _best_probabilities(batch.alpha, batch.beta, batch.costs, skip, batch.shifts)
    # Quadrature error leaves sums within ~1e-6 of 1; renormalise so that the logged
    # propensities of a decision are a distribution.
    total = ts.sum(axis=1, keepdims=True)
    any_open = ~skip.all(axis=1, keepdims=True)
    ts = np.where(any_open & (total > 0), ts / np.where(total > 0, total, 1.0), 0.0)
    eps = batch.explore[:, None]
    m = skip.sum(axis=1, keepdims=True)
    floor = np.where(skip, 0.0, 1.0 / k)
    p = (1.0 - eps) * ts + eps * (floor + (m / k) * ts)
    result: FloatArray = np.where(any_open, p, 0.0)
    return result


def first_choice_probabilities(
    alpha: object,
    beta: object,
    *,
    explore: object = 0.0,
    skipped: object = None,
    costs: object = None,
    shifts: object = None,
) -> FloatArray:
    """P(path i was attempted first) for a batch of decisions over the same K paths.

    ``alpha``, ``beta`` (and ``skipped``, ``costs``, ``shifts`` if given) have shape
    ``(n, K)`` or ``(K,)`` for one decision; ``explore`` is a scalar or shape ``(n,)``.
    ``costs`` rank by c / θ; ``shifts`` (a spend target's λ·c, >= 0) by θ − shift.
    Returns shape ``(n, K)``; each row sums to 1 unless every path was skipped (then it
    is all 0: the fallback went first).
    """
    batch = SnapshotBatch.from_arrays(
        alpha, beta, explore=explore, skipped=skipped, costs=costs, shifts=shifts
    )
    return _batched(batch)


def _batched(batch: SnapshotBatch) -> FloatArray:
    n = len(batch)
    out = np.empty(batch.alpha.shape)
    for start in range(0, n, CHUNK):
        sl = slice(start, start + CHUNK)
        out[sl] = _first_probabilities(
            SnapshotBatch(
                batch.alpha[sl],
                batch.beta[sl],
                batch.explore[sl],
                batch.skipped[sl],
                batch.costs[sl],
                None if batch.shifts is None else batch.shifts[sl],
            )
        )
    return out


def propensities(snapshots: Sequence[EvidenceSnapshot] | SnapshotBatch) -> list[FloatArray]:
    """First-attempt probabilities of many logged decisions, in their order.

    Snapshots may have different numbers of paths; they are grouped by K and computed in
    vectorised batches. Entry ``r`` is the length-K array of decision ``r``; the
    propensity of the logged decision is the entry of the path it attempted first.
    """
    if isinstance(snapshots, SnapshotBatch):
        return list(_batched(snapshots))
    groups: dict[tuple[int, bool], list[int]] = {}
    for r, snap in enumerate(snapshots):
        if not isinstance(snap, EvidenceSnapshot):
            raise TypeError(
                f"snapshots[{r}] is {type(snap).__name__}; pass EvidenceSnapshot objects "
                "or one SnapshotBatch"
            )
        groups.setdefault((snap.k, snap.shifts is not None), []).append(r)
    result: list[FloatArray] = [np.empty(0)] * len(snapshots)
    for (k, shifted), rows in groups.items():
        snaps = [snapshots[r] for r in rows]
        batch = SnapshotBatch.from_arrays(
            [s.alpha for s in snaps],
            [s.beta for s in snaps],
            explore=[s.explore for s in snaps],
            skipped=[s.skipped or (False,) * k for s in snaps],
            costs=[s.costs or (1.0,) * k for s in snaps],
            shifts=[s.shifts or (0.0,) * k for s in snaps] if shifted else None,
        )
        for r, row in zip(rows, _batched(batch), strict=True):
            result[r] = row
    return result


def logged_propensities(
    snapshots: Sequence[EvidenceSnapshot], attempted: Sequence[int]
) -> FloatArray:
    """The propensity of each logged decision: P(the path it attempted first), shape (n,).

    ``attempted[r]`` is the index (into the snapshot's paths) of decision r's first attempt.
    """
    if len(snapshots) != len(attempted):
        raise ValueError(
            f"attempted has {len(attempted)} entries for {len(snapshots)} snapshots: "
            "one attempted path index per decision"
        )
    rows = propensities(snapshots)
    out = np.empty(len(rows))
    for r, (row, i) in enumerate(zip(rows, attempted, strict=True)):
        if not 0 <= int(i) < row.shape[0]:
            raise ValueError(f"attempted[{r}] = {i} is not a path index in 0..{row.shape[0] - 1}")
        out[r] = row[int(i)]
    return out


#: Per-attempt objective costs are floored here, as ``ObjectiveThompsonSampling`` does.
_MIN_COST = 1e-12


def objective_costs(
    objective: tuple[float, float], costs_usd: object, latencies_ms: object
) -> tuple[float, ...]:
    """The per-attempt objective cost c_i = w · cost + rate · latency_s (floored at 1e-12)
    of ``objective = (cost_weight, usd_per_second)``, as the ranking computed it."""
    w, rate = objective
    cs = [float(v) for v in np.asarray(costs_usd, dtype=np.float64)] if w else None
    ls = [float(v) for v in np.asarray(latencies_ms, dtype=np.float64)] if rate else None
    k = len(cs if cs is not None else ls or [])
    return tuple(
        max(
            (w * cs[i] if cs is not None else 0.0)
            + (rate * ls[i] / 1000.0 if ls is not None else 0.0),
            _MIN_COST,
        )
        for i in range(k)
    )


def decision_snapshot(decision: LoggedDecision) -> EvidenceSnapshot:
    """The :class:`EvidenceSnapshot` of a logged Beta decision (for its propensities)."""
    costs = shifts = None
    if decision.price is not None:
        # As ObjectiveThompsonSampling charges them: λ · max(c, MIN_COST).
        lam = decision.price
        shifts = tuple(lam * max(float(c), _MIN_COST) for c in _as_list(decision.costs_usd))
    elif decision.objective is not None and any(decision.objective):
        costs = objective_costs(decision.objective, decision.costs_usd, decision.latencies_ms)
    return EvidenceSnapshot(
        decision.alpha,
        decision.beta,
        explore=decision.explore,
        skipped=decision.skipped,
        costs=costs,
        shifts=shifts,
    )


def _as_list(values: object) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _gaussian_rows(decisions: Sequence[GaussianDecision]) -> list[FloatArray]:
    """First-choice probabilities of contextual decisions, batched by K."""
    from adaptive_router.policies.gaussian import batch_first_choice_probabilities

    groups: dict[int, list[int]] = {}
    for r, d in enumerate(decisions):
        groups.setdefault(d.k, []).append(r)
    out: list[FloatArray] = [np.empty(0)] * len(decisions)
    for k, rows in groups.items():
        ds = [decisions[r] for r in rows]
        shifts = [
            [d.price * c for c in _as_list(d.costs_usd)] if d.costs_usd is not None else [0.0] * k
            for d in ds
        ]
        probs = batch_first_choice_probabilities(
            [_as_list(d.means) for d in ds],
            [_as_list(d.sds) for d in ds],
            shifts=shifts,
            explore=[d.explore for d in ds],
            skipped=[d.skipped_flags for d in ds],
        )
        for r, row in zip(rows, probs, strict=True):
            out[r] = row
    return out


def decision_probabilities(decisions: Sequence[AnyDecision]) -> list[FloatArray]:
    """Each logged decision's probability of every first choice (entry r has its K
    entries), Beta and contextual records alike, in vectorised batches."""
    out: list[FloatArray] = [np.empty(0)] * len(decisions)
    beta = [r for r, d in enumerate(decisions) if isinstance(d, LoggedDecision)]
    gauss = [r for r, d in enumerate(decisions) if isinstance(d, GaussianDecision)]
    if beta:
        rows = propensities([decision_snapshot(decisions[r]) for r in beta])  # type: ignore[arg-type]
        for r, row in zip(beta, rows, strict=True):
            out[r] = row
    if gauss:
        rows = _gaussian_rows([decisions[r] for r in gauss])  # type: ignore[misc]
        for r, row in zip(gauss, rows, strict=True):
            out[r] = row
    return out


def decision_propensities(decisions: Sequence[AnyDecision]) -> FloatArray:
    """P(the logged first attempt) of each logged decision (Beta or contextual), in
    vectorised batches; NaN where the record does not name a learned path as attempted
    first."""
    out = np.full(len(decisions), np.nan)
    rows = [
        r for r, d in enumerate(decisions) if d.first is not None and d.index(d.first) is not None
    ]
    if not rows:
        return out
    picked = [decisions[r] for r in rows]
    probs = decision_probabilities(picked)
    for r, d, row in zip(rows, picked, probs, strict=True):
        out[r] = row[int(d.index(d.first or "") or 0)]
    return out
