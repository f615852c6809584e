"""Contextual Thompson Sampling: per path a Bayesian linear model of success on features.

Decision math without I/O. Each path k has a linear model of the reward (1 for a success,
0 for a failure, or a score in [0, 1]) on the request's hashed features x (see
:mod:`adaptive_router.features`) plus a bias, ``y = xᵀw_k + noise``, with a Gaussian prior
``w_k ~ N(m0, τ² I)`` and Gaussian noise of variance σ² (Bayesian linear regression; the
Bernoulli reward's variance is at most 0.25, the default σ²). The posterior is Gaussian:

    P_k = I/τ² + A_k/σ²,   Σ_k = P_k⁻¹,   μ_k = Σ_k (m0/τ² + b_k/σ²)

where ``A_k = Σ_i w_i x_i x_iᵀ`` and ``b_k = Σ_i w_i y_i x_i`` are **additive sufficient
statistics** (:class:`LinearStats`), with w_i the observation's decay weight relative to
the newest observation, exactly as the Beta evidence decays
(:func:`~adaptive_router.policies.thompson.fold`). Adding any partition of the outcomes in any order
and merging gives the same A and b (to rounding), which is what lets a store persist them
under one upsert and many processes add to them.

A decision draws each path's score ``S_k ~ N(xᵀμ_k, v · xᵀΣ_k x)`` — a one-dimensional draw
per path: only the request's non-zero features enter, so a decision costs O(K · nnz²)
whatever the dimension — ranks by ``S_k - λ·c_k`` under a spend target (see
:mod:`~adaptive_router.policies.pacing`), and with probability ε puts a uniformly chosen
path first (the exploration floor, as in
:class:`~adaptive_router.policies.thompson.ThompsonSampling`).
``v`` (``variance_scale``) shrinks the posterior's spread for the draw: full-variance
Thompson Sampling over a few hundred weights explores longer than a few thousand requests
can repay (measured on MMLU, benchmarks/mmlu_replay.py). Because every score is an
independent Gaussian, the probability of each first choice is a one-dimensional integral,
computed exactly by :func:`~adaptive_router.policies.gaussian.first_choice_probabilities`
from what the decision logs (:class:`ContextualDecision`).

Cold start: the bias's prior mean is the path's ordinary (Beta) success rate, and the
Beta evidence the linear statistics have not absorbed (decayed weight beyond theirs: a
context or a feature function new to a path with a history) counts as that many
observations of the bias alone. Evidence is counted once: as the linear statistics catch
up, the pseudo-observations fade.

The posterior (Σ, μ per path) is cached and updated per observation by Sherman–Morrison,
O(D²) for D = dim + 1. With a half-life every observation also decays the old evidence,
which is not a rank-one change; the cache then counts evidence in the frame of its last
refactorisation (up to ``refresh_tolerance`` = 1% heavier than the decayed sums) and is
refactorised from the statistics, O(D³), when that drift would exceed it, or after
``4·D`` rank-one updates (bounding rounding drift). The statistics themselves are always
exact.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import linalg
from scipy.linalg.blas import dger as _dger

from adaptive_router.features import DEFAULT_DIM, SparseVector
from adaptive_router.policies.gaussian import first_choice_probabilities
from adaptive_router.policies.thompson import TINY, decay_factor

__all__ = [
    "MAX_DIM",
    "ContextualDecision",
    "ContextualThompsonSampling",
    "LinearModel",
    "LinearStats",
    "with_bias",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

#: The largest hashed dimension: a path's covariance holds (dim+1)² floats (128 MiB at
#: 4,096) and a refresh refactorises it, so a larger one stalls requests for seconds.
MAX_DIM = 4096

#: Variance of a score below this is treated as this (a sd of 1e-9): rounding in the
#: rank-one updates must not make a quadratic form of a positive definite matrix ≤ 0.
_VAR_FLOOR = 1e-18


@functools.lru_cache(maxsize=512)
def _upper(n: int) -> tuple[IntArray, IntArray, FloatArray]:
    """The n × n upper triangle, diagonal included, row by row: each entry's row and
    column, and its multiplicity in a symmetric quadratic form (1 on the diagonal, 2 off
    it): ``xᵀSx = Σ_{a≤b} mult · x_a x_b S_ab`` for symmetric S."""
    rows, cols = np.triu_indices(n)
    mult: FloatArray = np.where(rows == cols, 1.0, 2.0)
    return rows.astype(np.intp), cols.astype(np.intp), mult


def _pairs(idx: IntArray, val: FloatArray, d: int) -> tuple[IntArray, FloatArray]:
    """The request's upper block: flat indices into a d × d matrix and ``x_a x_b``, in
    :func:`_upper` order (two takes per array, in place: a third faster than outer
    products of all n² pairs)."""
    rows, cols, _ = _upper(idx.shape[0])
    flat: IntArray = idx.take(rows)
    flat *= d
    flat += idx.take(cols)
    prod: FloatArray = val.take(rows)
    prod *= val.take(cols)
    return flat, prod


_BIAS_VALUE = np.ones(1)


#: The largest GER (m · n entries) OpenBLAS runs on the calling thread: above
#: ``2048 · GEMM_MULTITHREAD_THRESHOLD`` (4 unless built otherwise) it splits the update
#: over its thread pool (interface/ger.c). A rank-one update of a (D + 1)² covariance is
#: far above it at any useful D, and threads competing for busy cores made each update
#: 10-100x slower; :meth:`LinearModel._rank_one` stays below it in column blocks. Other
#: BLAS builds may thread differently: then the blocks only cost their call overhead.
_GER_SERIAL = 8192


def _vec_mat(x: FloatArray, m: FloatArray) -> FloatArray:
    """``x @ m`` by numpy's own loops (einsum without optimisation never calls BLAS): on
    the decision and update path a BLAS gemv of this size (nnz × D, K × nnz²/2) would be
    split over threads, which on busy cores costs milliseconds, and a library must not
    change the process's BLAS threading."""
    out: FloatArray = np.einsum("i,ij->j", x, m)
    return out


def _mat_vec(m: FloatArray, x: FloatArray) -> FloatArray:
    """``m @ x`` without BLAS (see :func:`_vec_mat`)."""
    out: FloatArray = np.einsum("ij,j->i", m, x)
    return out


def with_bias(x: SparseVector | None, dim: int) -> tuple[IntArray, FloatArray]:
    """The request in the model's coordinates: the hashed features (indices in
    ``[0, dim)``) and the bias, index ``dim``, value 1.0. ``x=None``: the bias alone."""
    if x is None:
        return np.array([dim], dtype=np.intp), np.ones(1)
    idx, val = x
    n = idx.shape[0]
    if n:
        if idx[0] < 0 or idx[-1] >= dim:
            raise ValueError(
                f"feature indices must lie in [0, {dim}) for a model of dimension {dim}, got "
                f"{int(idx[0])}..{int(idx[-1])}: hash features with the policy's dim"
            )
        if n > 1 and not (idx[1:] > idx[:-1]).all():
            raise ValueError("feature indices must be ascending and unique (see hash_features)")
    out_idx: IntArray = np.concatenate((idx, (dim,))).astype(np.intp, copy=False)
    out_val: FloatArray = np.concatenate((val, _BIAS_VALUE))
    return out_idx, out_val


#: When the lazy decay factor of :class:`LinearStats` falls below this, it is folded into
#: the sums (so that the stored sums never grow towards overflow).
_MIN_SCALE = 1e-100


class LinearStats:
    """One path's additive sufficient statistics, the bias as the last coordinate.

    ``xx`` = Σ w_i x_i x_iᵀ (D × D, symmetric), ``xy`` = Σ w_i y_i x_i (D), decayed sums
    relative to ``ref_time`` (the newest observation's time); ``count`` is the plain
    number of observations. ``weight`` (= ``xx[-1, -1]``) is the decayed number of
    observations and ``xy[-1]`` the decayed sum of rewards (the bias is always 1).

    Folding an outcome costs O(nnz²) even under decay: the sums are kept as raw arrays
    times one decay factor (applied when ``xx``/``xy`` are read, O(D²)), and only the
    upper triangle of ``xx`` is accumulated (it is symmetric).
    """

    __slots__ = ("_scale", "_xx", "_xy", "count", "ref_time")

    def __init__(
        self, xx: FloatArray, xy: FloatArray, ref_time: float = 0.0, count: int = 0
    ) -> None:
        d = xy.shape[0]
        if xx.shape != (d, d):
            raise ValueError(f"xx must be {d} x {d} for xy of length {d}, got {xx.shape}")
        self._xx = np.triu(np.asarray(xx, dtype=np.float64))
        self._xy = np.array(xy, dtype=np.float64)
        self._scale = 1.0
        self.ref_time = float(ref_time)
        self.count = int(count)

    @classmethod
    def zeros(cls, dim: int) -> LinearStats:
        """Empty statistics for ``dim`` hashed features (plus the bias)."""
        return cls(np.zeros((dim + 1, dim + 1)), np.zeros(dim + 1))

    @property
    def dim(self) -> int:
        """The hashed dimension (without the bias)."""
        return int(self._xy.shape[0]) - 1

    @property
    def xx(self) -> FloatArray:
        """Σ w x xᵀ, the full symmetric matrix (a new array)."""
        upper = self._materialised(self._xx)
        full: FloatArray = upper + upper.T
        full[np.diag_indices_from(full)] -= np.diagonal(upper)
        return full

    @property
    def xy(self) -> FloatArray:
        """Σ w y x (a new array)."""
        return self._materialised(self._xy)

    @property
    def weight(self) -> float:
        """Decayed number of observations."""
        return float(self._xx[-1, -1] * self._scale)

    def _materialised(self, raw: FloatArray) -> FloatArray:
        """``raw · scale`` with magnitudes below TINY snapped to 0 (the SQL store must do
        so: PostgreSQL raises on float underflow)."""
        out: FloatArray = raw * self._scale
        out[np.abs(out) < TINY] = 0.0
        return out

    def copy(self) -> LinearStats:
        return LinearStats(self.xx, self.xy, self.ref_time, self.count)

    def fold(
        self,
        idx: IntArray,
        val: FloatArray,
        reward: float,
        at: float,
        half_life: float | None,
        weight: float = 1.0,
    ) -> tuple[float, float]:
        """Add one observation (``idx``/``val`` from :func:`with_bias`) at time ``at``.

        Returns ``(keep, add)``: the factor the old sums were decayed by and the weight
        the new observation entered with (one of them is 1: the older side is decayed to
        the newer, as in :func:`~adaptive_router.policies.thompson.fold`).
        """
        keep = decay_factor(at - self.ref_time, half_life)
        add = decay_factor(self.ref_time - at, half_life)
        if keep != 1.0:
            self._scale *= keep
            if self._scale < _MIN_SCALE:
                self._xx = self._materialised(self._xx)
                self._xy = self._materialised(self._xy)
                self._scale = 1.0
        w = weight * add / self._scale
        # The observation's upper block, through the flat view (pairs are unique).
        flat, prod = _pairs(idx, val, self._xy.shape[0])
        prod *= w
        self._xx.reshape(-1)[flat] += prod
        self._xy[idx] += (w * reward) * val
        self.ref_time = max(self.ref_time, at)
        self.count += 1
        return keep, add

    def merge(self, other: LinearStats, half_life: float | None) -> LinearStats:
        """The statistics of both sets of observations, relative to the newer ``ref_time``:
        merging any partition equals folding every observation into one (to rounding)."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge dimension {other.dim} into dimension {self.dim}")
        ref = max(self.ref_time, other.ref_time)
        a = decay_factor(ref - self.ref_time, half_life)
        b = decay_factor(ref - other.ref_time, half_life)
        return LinearStats(
            self.xx * a + other.xx * b,
            self.xy * a + other.xy * b,
            ref,
            self.count + other.count,
        )


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


class LinearModel:
    """K paths' Gaussian posteriors over ``dim`` hashed features and a bias: the state a
    Router's cache (per task and context) or the simulator keeps.

    Built by :meth:`ContextualThompsonSampling.new_model`. ``stats[k]`` are path k's exact
    sufficient statistics; ``mean``/``cov`` (K × D, K × D × D) the cached posterior.
    """

    def __init__(
        self,
        n_paths: int,
        dim: int,
        *,
        prior_variance: float,
        noise_variance: float,
        half_life: float | None,
        refresh_tolerance: float,
        bias_prior_mean: float = 0.5,
    ) -> None:
        if isinstance(n_paths, bool) or not isinstance(n_paths, int) or n_paths < 1:
            raise ValueError(f"n_paths must be a positive integer, got {n_paths!r}")
        self.dim = dim
        self.prior_variance = prior_variance
        self.noise_variance = noise_variance
        self.half_life = half_life
        self.refresh_tolerance = refresh_tolerance
        #: Rank-one updates between refactorisations (bounds rounding drift).
        self.refresh_every = 4 * (dim + 1)
        d = dim + 1
        self.stats = [LinearStats.zeros(dim) for _ in range(n_paths)]
        self.cov = np.empty((n_paths, d, d))
        self.mean = np.zeros((n_paths, d))
        # The bias prior per path: its mean p̂ and the pseudo-observations of the cold start.
        self._bias_mean = np.full(n_paths, float(bias_prior_mean))
        self._bias_extra = np.zeros(n_paths)
        # The cache counts evidence 1/frame heavier than the decayed statistics do.
        self._frame = np.ones(n_paths)
        self._updates = np.zeros(n_paths, dtype=np.int64)
        for k in range(n_paths):
            self.refresh(k)

    @property
    def n_paths(self) -> int:
        return len(self.stats)

    def refresh(self, k: int) -> None:
        """Recompute path k's posterior from its statistics (O(D³))."""
        st, s2, t2 = self.stats[k], self.noise_variance, self.prior_variance
        b = self.dim
        prec = st.xx / s2
        prec[np.diag_indices_from(prec)] += 1.0 / t2
        prior_bb = 1.0 / t2 + self._bias_extra[k] / s2
        prec[b, b] += self._bias_extra[k] / s2
        h = st.xy / s2
        h[b] += self._bias_mean[k] * prior_bb
        factor = linalg.cho_factor(prec, lower=True, check_finite=False)
        cov = linalg.cho_solve(factor, np.eye(b + 1), check_finite=False)
        self.cov[k] = (cov + cov.T) * 0.5
        self.mean[k] = self.cov[k] @ h
        self._frame[k] = 1.0
        self._updates[k] = 0

    def load(self, k: int, stats: LinearStats) -> None:
        """Replace path k's statistics (e.g. the store's, merged with pending ones)."""
        if stats.dim != self.dim:
            raise ValueError(f"stats of dimension {stats.dim} for a model of dimension {self.dim}")
        self.stats[k] = stats
        self.refresh(k)

    def observe(
        self, k: int, idx: IntArray, val: FloatArray, reward: float, at: float, weight: float = 1.0
    ) -> None:
        """Fold one outcome of path k (``idx``/``val`` from :func:`with_bias`)."""
        if not (math.isfinite(reward) and 0.0 <= reward <= 1.0):
            raise ValueError(f"reward must be in [0, 1], got {reward!r}")
        keep, add = self.stats[k].fold(idx, val, reward, at, self.half_life, weight)
        self._frame[k] *= keep
        self._updates[k] += 1
        if self._frame[k] < 1.0 - self.refresh_tolerance or self._updates[k] >= self.refresh_every:
            self.refresh(k)
            return
        w = weight * add / (self._frame[k] * self.noise_variance)
        u = _vec_mat(val, self.cov[k, idx, :])
        q = float(u[idx] @ val)
        g = w / (1.0 + w * q)
        err = reward - float(self.mean[k, idx] @ val)
        self._rank_one(k, -g, u)
        self.mean[k] += (g * err) * u

    def cold_start(
        self,
        k: int,
        successes_w: float,
        failures_w: float,
        prior: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        """Start path k's bias from its ordinary evidence: prior mean the Beta posterior's
        mean, and the Beta weight beyond the linear statistics' as observations of the
        bias alone (O(D²): a rank-one change on the bias coordinate)."""
        a0, b0 = prior
        total = successes_w + failures_w
        p_hat = (a0 + successes_w) / (a0 + b0 + total)
        extra = max(0.0, total - self.stats[k].weight)
        s2, t2, b = self.noise_variance, self.prior_variance, self.dim
        delta = (extra - self._bias_extra[k]) / s2
        eta = p_hat * (1.0 / t2 + extra / s2) - self._bias_mean[k] * (
            1.0 / t2 + self._bias_extra[k] / s2
        )
        self._bias_mean[k], self._bias_extra[k] = p_hat, extra
        u = self.cov[k, b].copy()  # row b: contiguous (= column b, Σ is symmetric)
        g = delta / (1.0 + delta * u[b])
        mu_b = self.mean[k, b]
        if delta != 0.0:
            self._rank_one(k, -g, u)
        self.mean[k] += u * (eta * (1.0 - g * u[b]) - g * mu_b)

    def _rank_one(self, k: int, alpha: float, u: FloatArray) -> None:
        """``cov[k] += alpha · u uᵀ`` in place, by BLAS dger on the Fortran-ordered view of
        the (symmetric, C-ordered) matrix, in column blocks small enough that OpenBLAS runs
        each on the calling thread (:data:`_GER_SERIAL`): split over threads on a busy
        two-core machine, the update at D = 257 took milliseconds instead of tens of µs
        (benchmarks/contextual.py: the rows on busy cores). One pass, no D × D temporary."""
        view = self.cov[k].T
        d = u.shape[0]
        step = max(1, _GER_SERIAL // d)
        for j in range(0, d, step):
            block = view[:, j : j + step]  # columns of the view: Fortran-contiguous
            out = _dger(alpha, u, u[j : j + step], a=block, overwrite_a=True)
            # f2py hands back the block itself unless it had to copy; an identity test,
            # because reading ``.ctypes.data`` per block cost more than the update at D=1025.
            if out is not block:
                block[...] = out

    def predict(self, idx: IntArray, val: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Every path's posterior mean ``xᵀμ_k`` and variance ``xᵀΣ_k x`` of the score.

        Reads the upper triangle of each Σ_k's block at the request's features only:
        O(K · nnz²) however large the dimension. At 1,024 features and five paths that read
        is about half of a decision's cost (the K covariances, K · 8.4 MB, outgrow the
        cache: each entry is a separate memory access), the per-call overhead of some thirty
        numpy operations the other half (benchmarks/contextual.py)."""
        k, d = self.mean.shape
        means: FloatArray = _mat_vec(self.mean.take(idx, axis=1), val)
        flat, prod = _pairs(idx, val, d)
        prod *= _upper(idx.shape[0])[2]
        var: FloatArray = _mat_vec(self.cov.reshape(k, d * d).take(flat, axis=1), prod)
        np.maximum(var, _VAR_FLOOR, out=var)
        return means, var

    def influential(self, k: int, top: int = 10) -> list[tuple[int, float, float]]:
        """Path k's ``top`` hashed features by |posterior mean weight|: ``(index, mean,
        sd)``, largest first (the bias excluded)."""
        mu = self.mean[k, : self.dim]
        order = np.argsort(-np.abs(mu), kind="stable")[:top]
        sd = np.sqrt(np.maximum(np.diagonal(self.cov[k])[order], 0.0))
        return [(int(i), float(mu[i]), float(s)) for i, s in zip(order, sd, strict=True)]


@dataclass(frozen=True, slots=True)
class ContextualDecision:
    """One contextual decision: the order, and what its propensities are computed from.

    ``means``/``sds``: each path's score distribution (sd with the variance scale
    applied); ``costs``/``price``: the spend target's shift ``-price · costs`` (None/0
    without one); ``explore``: the exploration floor.
    """

    order: IntArray
    means: FloatArray
    sds: FloatArray
    explore: float
    costs: FloatArray | None = None
    price: float = 0.0
    scores: FloatArray = field(default_factory=lambda: np.zeros(0))

    def propensities(self, skipped: Sequence[bool] | None = None) -> FloatArray:
        """P(each path attempted first), exactly (see :mod:`.gaussian`)."""
        return first_choice_probabilities(
            self.means,
            self.sds,
            costs=self.costs,
            price=self.price,
            explore=self.explore,
            skipped=skipped,
        )


class ContextualThompsonSampling:
    """Thompson Sampling over per-path Bayesian linear models of the request's features.

    ``dim``: hashed features (the bias is added); ``prior_variance`` τ² of each weight;
    ``noise_variance`` σ² of a reward around its prediction; ``variance_scale`` v
    multiplies the score's posterior variance for the draw; ``explore`` the exploration
    floor; ``half_life`` in the clock's unit (None = no decay); ``refresh_tolerance`` the
    largest relative over-count of evidence the cached posterior may carry between
    refactorisations under decay. Stateless: the evidence is a :class:`LinearModel` from
    :meth:`new_model`.
    """

    def __init__(
        self,
        dim: int = DEFAULT_DIM,
        *,
        prior_variance: float = 1.0,
        noise_variance: float = 0.25,
        variance_scale: float = 0.1,
        explore: float = 0.02,
        half_life: float | None = None,
        refresh_tolerance: float = 0.01,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer such as {DEFAULT_DIM}, got {dim!r}")
        if dim > MAX_DIM:
            raise ValueError(
                f"dim={dim} is too large: each path keeps a full (dim+1)² covariance "
                f"({8 * (dim + 1) ** 2 / 2**20:,.0f} MiB per path) and refactorises it; use at "
                f"most {MAX_DIM} (the default {DEFAULT_DIM} suits most tasks)"
            )
        self.dim = dim
        self.prior_variance = _check_positive("prior_variance", prior_variance)
        self.noise_variance = _check_positive("noise_variance", noise_variance)
        self.variance_scale = _check_positive("variance_scale", variance_scale)
        if isinstance(explore, bool) or not (
            isinstance(explore, (int, float)) and 0.0 <= explore < 1.0
        ):
            raise ValueError(f"explore must be a probability in [0, 1), got {explore!r}")
        self.explore = float(explore)
        if half_life is not None:
            half_life = _check_positive("half_life", half_life)
        self.half_life = half_life
        if not (isinstance(refresh_tolerance, (int, float)) and 0.0 <= refresh_tolerance < 1.0):
            raise ValueError(f"refresh_tolerance must be in [0, 1), got {refresh_tolerance!r}")
        self.refresh_tolerance = float(refresh_tolerance)

    def __repr__(self) -> str:
        return (
            f"ContextualThompsonSampling(dim={self.dim}, prior_variance={self.prior_variance}, "
            f"noise_variance={self.noise_variance}, variance_scale={self.variance_scale}, "
            f"explore={self.explore}, half_life={self.half_life})"
        )

    def new_model(self, n_paths: int, bias_prior_mean: float = 0.5) -> LinearModel:
        """Empty evidence for ``n_paths`` paths under this policy's prior."""
        return LinearModel(
            n_paths,
            self.dim,
            prior_variance=self.prior_variance,
            noise_variance=self.noise_variance,
            half_life=self.half_life,
            refresh_tolerance=self.refresh_tolerance,
            bias_prior_mean=bias_prior_mean,
        )

    def rank(
        self,
        model: LinearModel,
        x: SparseVector | None,
        rng: np.random.Generator,
        costs: Sequence[float] | FloatArray | None = None,
        price: float = 0.0,
    ) -> ContextualDecision:
        """Path indices best-first for a request with features ``x`` (None: the bias alone).

        Draws one standard normal per path, then (with ``explore`` > 0) one uniform and,
        when exploring, one integer: the generator is consumed as ThompsonSampling's is.
        ``costs``/``price``: rank by ``S_k - price · costs_k`` (a spend target's price λ
        and the paths' costs per attempt, :func:`~.pacing.paced_costs`).
        """
        if not (math.isfinite(price) and price >= 0.0):
            raise ValueError(f"price must be a finite number >= 0, got {price!r}")
        idx, val = with_bias(x, self.dim)
        means, var = model.predict(idx, val)
        sds = np.sqrt(self.variance_scale * var)
        scores = means + sds * rng.standard_normal(means.shape[0])
        c = None
        if costs is not None:
            c = np.asarray(costs, dtype=np.float64)
            if c.shape != means.shape:
                raise ValueError(f"costs has {c.size} entries for {means.size} paths")
            if price:
                scores = scores - price * c
        if self.explore > 0.0 and rng.random() < self.explore:
            scores[int(rng.integers(0, scores.shape[0]))] = math.inf
        order: IntArray = np.argsort(-scores, kind="stable")
        return ContextualDecision(order, means, sds, self.explore, c, float(price), scores)

    def observe(
        self,
        model: LinearModel,
        k: int,
        x: SparseVector | None,
        reward: float,
        at: float,
    ) -> None:
        """Fold path k's outcome for a request with features ``x`` into ``model``."""
        idx, val = with_bias(x, self.dim)
        model.observe(k, idx, val, reward, at)
