"""Replaying the contextual policy: requests with features, one decision and one outcome each.

:func:`replay` runs :class:`~adaptive_router.policies.contextual.ContextualThompsonSampling`
over a sequence of requests whose every path's reward and cost are known (a logged data
set such as ``benchmarks/data/routellm-mmlu``, or a synthetic world): per request it ranks
the paths for the request's features, attempts the first, and learns from its reward, as
the live policy objects do, under an optional spend target
(:class:`~adaptive_router.policies.pacing.SpendPacer`). Per step, in this order:

1. the price λ (:attr:`SpendPacer.price <adaptive_router.policies.pacing.SpendPacer.price>`)
   and each path's cost for the spend term, its mean cost per attempt so far
   (:func:`~adaptive_router.policies.pacing.paced_costs`);
2. :meth:`ContextualThompsonSampling.rank
   <adaptive_router.policies.contextual.ContextualThompsonSampling.rank>`, the first path
   attempted;
3. :meth:`LinearModel.observe <adaptive_router.policies.contextual.LinearModel.observe>` of
   its reward at the step's time, then the path's Beta evidence (successes, failures, cost,
   decayed by :func:`~adaptive_router.policies.thompson.fold`) and
   :meth:`LinearModel.cold_start <adaptive_router.policies.contextual.LinearModel.cold_start>`
   from it, as the Router keeps both;
4. the pacer's :meth:`~adaptive_router.policies.pacing.SpendPacer.observe` of the cost.

The clock advances one unit per request (``half_life`` in requests, as in
:mod:`~adaptive_router.simulation.engine`).

Two engines run it: ``"numpy"`` calls the policy objects themselves (the reference), and
``"numba"`` runs the same steps compiled (:func:`~adaptive_router.simulation.kernel.run_contextual`,
needs numba), drawing from the same SFC64 generator in the same order: the same decisions,
the same statistics bit for bit, the cached posterior equal to rounding (BLAS sums in its
own order), tested in ``tests/test_simulation_contextual.py``. Measured in
``benchmarks/contextual.py``: the compiled replay at the default dimension.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from adaptive_router._imports import install_hint
from adaptive_router.features import SparseVector
from adaptive_router.policies.contextual import ContextualThompsonSampling, with_bias
from adaptive_router.policies.pacing import DEFAULT_GAIN, SpendPacer, paced_costs
from adaptive_router.policies.thompson import TINY, decay_factor, fold

__all__ = ["ContextualReplay", "Requests", "replay"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
ContextualEngine = Literal["auto", "numpy", "numba"]


@dataclass(frozen=True)
class ContextualReplay:
    """What a replay did and learned.

    ``choices``/``prices``/``rewards``/``spend``: per step, the path attempted, the price λ
    it was chosen under, its reward and its cost. ``xx``/``xy`` (K × D × D, K × D): each
    path's sufficient statistics (:attr:`LinearStats.xx
    <adaptive_router.policies.contextual.LinearStats.xx>`, ``.xy``), ``mean``/``cov`` its
    cached posterior, ``spend_w``/``requests_w`` the pacer's decayed sums.
    """

    choices: IntArray
    prices: FloatArray
    rewards: FloatArray
    spend: FloatArray
    xx: FloatArray
    xy: FloatArray
    mean: FloatArray
    cov: FloatArray
    spend_w: float
    requests_w: float
    engine: str


def _csr(vectors: Sequence[SparseVector | None], dim: int) -> tuple[IntArray, IntArray, FloatArray]:
    """The requests with their bias (index ``dim``, value 1.0, last in each row), as CSR
    arrays; indices checked as :func:`~adaptive_router.policies.contextual.with_bias`
    checks them, for all rows at once."""
    empty = (np.zeros(0, dtype=np.intp), np.zeros(0))
    parts = [empty if v is None else v for v in vectors]
    lengths = np.array([p[0].shape[0] for p in parts], dtype=np.intp) + 1
    indptr = np.zeros(len(parts) + 1, dtype=np.intp)
    np.cumsum(lengths, out=indptr[1:])
    total = int(indptr[-1])
    bias_at = indptr[1:] - 1
    is_feature = np.ones(total, dtype=bool)
    is_feature[bias_at] = False
    indices = np.full(total, dim, dtype=np.intp)
    values = np.ones(total)
    if total > len(parts):
        indices[is_feature] = np.concatenate([p[0] for p in parts])
        values[is_feature] = np.concatenate([p[1] for p in parts])
        feats = indices[is_feature]
        if feats.min() < 0 or feats.max() >= dim:
            raise ValueError(
                f"feature indices must lie in [0, {dim}) for a model of dimension {dim}: "
                "hash features with the policy's dim"
            )
        # Within a row each index exceeds the one before (the bias, = dim, ends the row).
        step = np.diff(indices)
        step[bias_at[:-1]] = 1  # across rows: not compared
        if np.any(step <= 0):
            raise ValueError("feature indices must be ascending and unique (see hash_features)")
    return indptr, indices, values


@dataclass(frozen=True)
class Requests:
    """Requests' hashed features for :func:`replay`, validated and laid out once (CSR, the
    bias last in each row): build it with :meth:`of` to replay the same requests many
    times without re-checking them."""

    dim: int
    indptr: IntArray
    indices: IntArray
    values: FloatArray

    @classmethod
    def of(cls, vectors: Sequence[SparseVector | None], dim: int) -> Requests:
        """``vectors[i]``: request i's features hashed at ``dim`` (None: none)."""
        return cls(dim, *_csr(vectors, dim))

    def __len__(self) -> int:
        return int(self.indptr.shape[0]) - 1

    def vector(self, i: int) -> SparseVector | None:
        """Request i's features as a sparse vector (the bias left out)."""
        lo, hi = int(self.indptr[i]), int(self.indptr[i + 1]) - 1
        if hi == lo:
            return None
        return SparseVector(self.indices[lo:hi], self.values[lo:hi])


def _check_table(name: str, table: object, n: int) -> FloatArray:
    a = np.asarray(table, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != n or a.shape[1] < 1:
        raise ValueError(f"{name} must have shape (requests, paths) = ({n}, K), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


def _use_numba(engine: str, rng: np.random.Generator) -> bool:
    if engine not in ("auto", "numpy", "numba"):
        raise ValueError(f"engine must be 'auto', 'numpy' or 'numba', got {engine!r}")
    if engine == "numpy":
        return False
    why = None
    if not isinstance(rng.bit_generator, np.random.SFC64):
        why = (
            "it reproduces numpy's SFC64 stream only; pass "
            "numpy.random.Generator(numpy.random.SFC64(seed)) as rng"
        )
    elif importlib.util.find_spec("numba") is None:
        why = install_hint("sim", "the compiled engine")
    if why is None:
        return True
    if engine == "numba":
        raise ValueError(f"engine='numba' cannot run this replay: {why}")
    return False


def replay(
    policy: ContextualThompsonSampling,
    vectors: Sequence[SparseVector | None] | Requests,
    rewards: object,
    costs: object,
    *,
    rng: np.random.Generator,
    order: Sequence[int] | NDArray[np.integer] | None = None,
    target_usd_per_request: float | None = None,
    gain: float = DEFAULT_GAIN,
    pacer_half_life: float | None = None,
    engine: ContextualEngine = "auto",
) -> ContextualReplay:
    """Replay ``policy`` over requests: one decision, one attempt and one outcome each.

    ``vectors[i]``: request i's hashed features (None: none), or the same as
    :class:`Requests` (built once for many replays); ``rewards[i, k]`` in [0, 1]
    and ``costs[i, k]`` ≥ 0 (USD): what path k returns and costs for request i. ``order``:
    the requests in the order they arrive (default: 0..N-1; a request may recur).
    ``target_usd_per_request``: a spend target paced by a :class:`SpendPacer` with
    ``gain`` and ``pacer_half_life`` (None: choose by success alone). ``rng`` is consumed
    only by the policy's draws. ``engine``: "numba" (compiled, needs numba and an SFC64
    ``rng``), "numpy" (the policy objects) or "auto" (numba when it can).
    """
    if isinstance(vectors, Requests):
        if vectors.dim != policy.dim:
            raise ValueError(
                f"requests hashed at dim {vectors.dim} for a policy of dim {policy.dim}"
            )
        requests = vectors
    else:
        requests = Requests.of(vectors, policy.dim)
    n = len(requests)
    r = _check_table("rewards", rewards, n)
    c = _check_table("costs", costs, n)
    if r.shape != c.shape:
        raise ValueError(f"rewards {r.shape} and costs {c.shape} must have the same shape")
    if np.any((r < 0.0) | (r > 1.0)):
        raise ValueError("rewards must be in [0, 1]")
    if np.any(c < 0.0):
        raise ValueError("costs must be >= 0")
    steps: IntArray = (
        np.arange(n, dtype=np.intp) if order is None else np.asarray(order, dtype=np.intp)
    )
    if steps.ndim != 1 or (steps.size and (steps.min() < 0 or steps.max() >= n)):
        raise ValueError(f"order must be request indices in [0, {n})")
    pacer = (
        None
        if target_usd_per_request is None
        else SpendPacer(target_usd_per_request, half_life=pacer_half_life, gain=gain)
    )
    if _use_numba(engine, rng):
        return _replay_numba(policy, requests, r, c, steps, pacer, rng)
    return _replay_numpy(policy, requests, r, c, steps, pacer, rng)


def _replay_numpy(
    policy: ContextualThompsonSampling,
    requests: Requests,
    rewards: FloatArray,
    costs: FloatArray,
    steps: IntArray,
    pacer: SpendPacer | None,
    rng: np.random.Generator,
) -> ContextualReplay:
    """The reference: the policy objects, one request at a time."""
    k_paths = rewards.shape[1]
    model = policy.new_model(k_paths)
    vectors = [requests.vector(i) for i in range(len(requests))]
    coords = [with_bias(v, policy.dim) for v in vectors]
    beta = [(0.0, 0.0, 0.0)] * k_paths  # (successes_w, failures_w, ref_time)
    spent = [(0.0, 0.0, 0.0)] * k_paths  # (cost_w, attempts_w, ref_time)
    t_n = steps.shape[0]
    choices = np.empty(t_n, dtype=np.intp)
    prices = np.empty(t_n)
    for t, i in enumerate(steps.tolist()):
        at = float(t)
        price = 0.0 if pacer is None else pacer.price
        means: list[float | None] = [cw / nw if nw > 0.0 else None for cw, nw, _ in spent]
        decision = policy.rank(model, vectors[i], rng, paced_costs(means), price)
        k = int(decision.order[0])
        choices[t], prices[t] = k, price
        y, cost = float(rewards[i, k]), float(costs[i, k])
        idx, val = coords[i]
        model.observe(k, idx, val, y, at)
        beta[k] = fold(beta[k], y, at, policy.half_life)
        cost_w, attempts_w, ref = spent[k]
        keep = decay_factor(at - ref, policy.half_life)
        add = decay_factor(ref - at, policy.half_life)
        spent[k] = (
            (0.0 if cost_w < TINY else cost_w * keep) + cost * add,
            (0.0 if attempts_w < TINY else attempts_w * keep) + add,
            max(ref, at),
        )
        model.cold_start(k, beta[k][0], beta[k][1])
        if pacer is not None:
            pacer.observe(cost, at)
    rows = steps
    return ContextualReplay(
        choices=choices,
        prices=prices,
        rewards=rewards[rows, choices],
        spend=costs[rows, choices],
        xx=np.stack([s.xx for s in model.stats]),
        xy=np.stack([s.xy for s in model.stats]),
        mean=model.mean.copy(),
        cov=model.cov.copy(),
        spend_w=0.0 if pacer is None else pacer.stats.spend_w,
        requests_w=0.0 if pacer is None else pacer.stats.requests_w,
        engine="numpy",
    )


def _replay_numba(
    policy: ContextualThompsonSampling,
    requests: Requests,
    rewards: FloatArray,
    costs: FloatArray,
    steps: IntArray,
    pacer: SpendPacer | None,
    rng: np.random.Generator,
) -> ContextualReplay:
    """The same steps compiled (simulation.kernel.run_contextual), its arguments:

    ``params``: τ², σ², the variance scale, ε, the half-life (0: none), the refresh
    tolerance, the target (0: none), the gain, the pacer's half-life (0: none); the data:
    the requests' CSR features with the bias last (indptr, indices, values), the request
    of each step, rewards and costs (N × K); the model (in/out): cov, mean, the raw
    statistics xx (upper triangle) and xy, per path (lazy decay factor, ref_time, count,
    the cache's frame, updates since the refactorisation, and the Beta and cost evidence
    s_w, f_w, cost_w, attempts_w), the bias prior (mean, pseudo-observations), the pacer
    (spend_w, requests_w, ref_time, requests, spend_usd); out: each step's path and price.
    """
    import adaptive_router.simulation.kernel as kernel

    k_paths = rewards.shape[1]
    d = policy.dim + 1
    model = policy.new_model(k_paths)  # the prior's posterior, as the numpy engine starts
    indptr, indices, values = requests.indptr, requests.indices, requests.values
    params = np.array(
        [
            policy.prior_variance,
            policy.noise_variance,
            policy.variance_scale,
            policy.explore,
            0.0 if policy.half_life is None else policy.half_life,
            policy.refresh_tolerance,
            0.0 if pacer is None else pacer.target,
            DEFAULT_GAIN if pacer is None else pacer.gain,
            0.0 if pacer is None or pacer.half_life is None else pacer.half_life,
        ]
    )
    cov = model.cov.copy()
    mean = model.mean.copy()
    xx = np.zeros((k_paths, d, d))
    xy = np.zeros((k_paths, d))
    path_state = np.zeros((k_paths, 9))
    path_state[:, 0] = 1.0  # the lazy decay factor
    path_state[:, 3] = 1.0  # the cache's frame
    bias = np.zeros((k_paths, 2))
    bias[:, 0] = 0.5  # new_model's bias prior mean
    pacer_state = np.zeros(5)
    choices = np.empty(steps.shape[0], dtype=np.intp)
    prices = np.empty(steps.shape[0])
    words = kernel.get_state(rng)
    kernel.run_contextual(
        words,
        params,
        (indptr, indices, values, steps, rewards, costs),
        (cov, mean, xx, xy, path_state, bias, pacer_state),
        (choices, prices),
    )
    kernel.set_state(rng, words)
    scale = path_state[:, 0]
    full = xx * scale[:, None, None]
    full[np.abs(full) < TINY] = 0.0
    full = full + np.transpose(full, (0, 2, 1)) - full * np.eye(d)[None]
    sums = xy * scale[:, None]
    sums[np.abs(sums) < TINY] = 0.0
    return ContextualReplay(
        choices=choices,
        prices=prices,
        rewards=rewards[steps, choices],
        spend=costs[steps, choices],
        xx=full,
        xy=sums,
        mean=mean,
        cov=cov,
        spend_w=float(pacer_state[0]),
        requests_w=float(pacer_state[1]),
        engine="numba",
    )
