"""The simulator's step loop: :func:`simulate` checks its arguments, picks an engine and
hands the arrays of one run to it; :func:`compare` runs several policies on one world.

Two engines fill the same arrays: :func:`_run_numpy` runs any policy with numpy, and
the compiled kernel (:mod:`adaptive_router.simulation.kernel`, needs numba) runs
:class:`~adaptive_router.policies.thompson.ThompsonSampling` ~3.5x faster with the same choices,
outcomes and counts, bit for bit.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from adaptive_router._imports import install_hint
from adaptive_router.policies.objectives import ObjectiveThompsonSampling, expected_costs
from adaptive_router.policies.thompson import (
    FloatArray,
    IntArray,
    Policy,
    ThompsonSampling,
    after_failure_generator,
    decay_factor,
    takes_after_failure,
)
from adaptive_router.simulation.baselines import StepAware, policy_label
from adaptive_router.simulation.environment import BoolArray, Environment, FinalPath, stationary
from adaptive_router.simulation.results import SimulationResult

__all__ = ["Engine", "compare", "rngs", "simulate"]


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
    engine: str,
    policy: Policy,
    rng: np.random.Generator,
    env_rng: np.random.Generator,
    after_rng: np.random.Generator | None,
) -> bool:
    """Whether :func:`simulate` runs the compiled loop; explains when ``"numba"`` can't."""
    if engine not in ("auto", "numpy", "numba"):
        raise ValueError(f"engine must be 'auto', 'numpy' or 'numba', got {engine!r}")
    if engine == "numpy":
        return False
    why = None
    if isinstance(policy, ObjectiveThompsonSampling):
        why = (
            "the compiled kernel ranks by success probability only; a policy with an "
            "objective learns costs and latencies per path, which the numpy engine does"
        )
    elif type(policy) is not ThompsonSampling:
        why = f"it compiles ThompsonSampling only, not {type(policy).__name__}"
    elif rng is env_rng:
        # numpy interleaves one stream's policy and environment draws; the kernel keeps
        # two states and could not write both back.
        why = "rng and env_rng are the same generator (rngs() gives two independent ones)"
    elif after_rng is rng or after_rng is env_rng:
        why = (
            "rng cannot spawn the after-failure draws' generator (numpy < 1.25, or no "
            "seed sequence); pass numpy.random.Generator(numpy.random.SFC64(seed))"
        )
    elif not (
        isinstance(rng.bit_generator, np.random.SFC64)
        and isinstance(env_rng.bit_generator, np.random.SFC64)
    ):
        why = (
            "it reproduces numpy's SFC64 streams only; pass "
            "numpy.random.Generator(numpy.random.SFC64(seed)) as rng and env_rng (rngs() does)"
        )
    elif importlib.util.find_spec("numba") is None:
        why = install_hint("sim", "the compiled engine")
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


@dataclass
class _Run:
    """The arrays one simulation fills, in the compiled kernel's layout; both engines
    write into them and :meth:`result` reads them."""

    env: Environment
    rates: FloatArray  # true rates (T, K)
    best: FloatArray  # the best rate per step (T,)
    succ: FloatArray  # (decayed) first-attempt evidence (R, K)
    fail: FloatArray
    succ2: FloatArray  # (decayed) evidence of attempts after a failure (R, K)
    fail2: FloatArray
    pend_s: BoolArray  # outcomes not yet visible (delay, R, K), a ring indexed by t % delay
    pend_f: BoolArray
    pend_s2: BoolArray  # the same for attempts after a failure
    pend_f2: BoolArray
    marks: IntArray  # checkpoints (C,)
    regret: FloatArray  # (C, R)
    cum: FloatArray  # cumulative regret (R,)
    share: FloatArray  # first attempts per path per step, summed over replications (T, K)
    first_success: FloatArray  # (T,)
    # Per replication (R, 7): first-attempt successes, request successes, fallbacks,
    # final-path uses, attempts, cost, latency.
    counts: FloatArray
    step_cost: FloatArray | None  # (T,)
    trace_order: IntArray | None  # (T, R, K)
    trace_ok: BoolArray | None  # (T, R, K)

    @classmethod
    def allocate(
        cls, env: Environment, horizon: int, replications: int, checkpoints: int, trace: bool
    ) -> _Run:
        k, r = env.n_paths, replications
        rates = env.rate_table(horizon)
        marks = _checkpoints(horizon, checkpoints)
        return cls(
            env=env,
            rates=rates,
            best=rates.max(axis=1),
            succ=np.zeros((r, k)),
            fail=np.zeros((r, k)),
            succ2=np.zeros((r, k)),
            fail2=np.zeros((r, k)),
            pend_s=np.zeros((env.delay, r, k), dtype=np.bool_),
            pend_f=np.zeros((env.delay, r, k), dtype=np.bool_),
            pend_s2=np.zeros((env.delay, r, k), dtype=np.bool_),
            pend_f2=np.zeros((env.delay, r, k), dtype=np.bool_),
            marks=marks,
            regret=np.empty((marks.size, r)),
            cum=np.zeros(r),
            share=np.zeros((horizon, k)),
            first_success=np.empty(horizon),
            counts=np.zeros((r, 7)),
            step_cost=None if env.cost_usd is None else np.empty(horizon),
            trace_order=np.empty((horizon, r, k), dtype=np.intp) if trace else None,
            trace_ok=np.empty((horizon, r, k), dtype=np.bool_) if trace else None,
        )

    def result(
        self, label: str, seconds: float, rank_seconds: float | None, engine: str
    ) -> SimulationResult:
        """The :class:`SimulationResult` of the filled arrays (call it once: it turns the
        summed shares into means in place)."""
        env = self.env
        horizon, r = self.first_success.size, self.cum.size
        self.share /= r
        n_first_ok, n_req_ok, n_fallback, n_final, n_attempts, total_cost, total_lat = self.counts.T
        return SimulationResult(
            label=label,
            env_label=env.label,
            names=env.path_names,
            horizon=horizon,
            replications=r,
            steps=self.marks,
            regret=self.regret,
            first_success=self.first_success,
            share=self.share,
            first_success_rate=n_first_ok / horizon,
            request_success_rate=n_req_ok / horizon,
            fallback_rate=n_fallback / horizon,
            final_fallback_rate=n_final / horizon,
            attempts_per_request=n_attempts / horizon,
            cost_per_1k=None if env.cost_usd is None else total_cost / horizon * 1000.0,
            latency_ms=None if env.latency_ms is None else total_lat / horizon,
            step_cost=self.step_cost,
            seconds=seconds,
            rank_seconds=rank_seconds,
            rates=self.rates,
            trace_first=None if self.trace_order is None else self.trace_order[:, :, 0].copy(),
            trace_outcomes=self.trace_ok,
            trace_order=self.trace_order,
            engine=engine,
        )


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
    outcome is evidence (the Router records every attempt too), kept as the Router
    keeps it: the first attempt's as first-attempt evidence (what ``rank`` gets as
    ``successes``/``failures``), the later attempts' as after-failure evidence (what a
    policy that takes it, :func:`~adaptive_router.policies.thompson.takes_after_failure`,
    ranks the later positions by in ``rank_later``, called as the Router calls it: only
    for a request whose first attempt failed), visible to the
    policy ``env.delay`` requests later and added with full weight then, as
    ``Router.report`` stamps an outcome with the report time. After each step
    the sums are multiplied by ``0.5 ** (1 / half_life)`` (see
    :mod:`adaptive_router.simulation`). With ``fallback=False`` only the first path
    is tried, as with ``choose``/``report`` (the after-failure evidence then stays empty).
    The traced order's positions after the first are those walked when the first attempt
    failed; where it succeeded (or without fallback), nothing walked on and they are in
    the order of the first-attempt draws.

    With ``replications=1``, ``rank`` gets 1-D arrays of length K, exactly the
    call ``Router`` makes; nothing else consumes ``rng``, so a Router built with
    the same seed, policy settings and outcomes (clock advancing one second per
    request) picks the same paths, in the same fallback order. (The Router's default
    retry policy draws its jitter from a ``random.Random`` of its own, seeded with the
    router's int seed, never from the routing generator.)

    ``progress(done, total)`` is called every ~1% of the steps (for progress bars).

    A policy with an objective
    (:class:`~adaptive_router.policies.objectives.ObjectiveThompsonSampling`) also learns
    each path's cost and latency per attempt as the stores do: decayed sums over the
    attempts it has seen (visible after the same delay, decayed with the same half-life),
    whose means it gets as ``rank(..., costs=, latencies=)``; before a path's first attempt,
    the mean of the paths seen (else all equal). Only the numpy engine runs it.

    ``engine``: ``"numpy"`` runs the loop above for any policy; ``"numba"`` runs the
    same step compiled (:mod:`adaptive_router.simulation.kernel`, ~3.5x faster), for a
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
    if isinstance(policy, ObjectiveThompsonSampling):
        obj = policy.objective
        if obj.uses_cost and env.cost_usd is None:
            raise ValueError(
                f"policy objective {obj.name!r} ranks by cost: give the environment cost_usd"
            )
        if obj.uses_latency and env.latency_ms is None:
            raise ValueError(
                f"policy objective {obj.name!r} ranks by latency: give the environment latency_ms"
            )
    run = _Run.allocate(env, horizon, replications, checkpoints, trace)
    every = max(horizon // 100, 1)
    # As the Router: with more than two paths, a policy that takes the after-failure
    # evidence ranks the later positions by it, drawing from a generator spawned from rng,
    # only for the requests whose first attempt failed (with fallback: else none walks on);
    # they never touch rng, so nothing else changes without them.
    after_rng = None
    if env.n_paths > 2 and takes_after_failure(policy):
        after_rng = after_failure_generator(rng)
    compiled = _compiled_engine(engine, policy, rng, env_rng, after_rng)
    if compiled:
        _warm_up_kernel()
    start = time.perf_counter()
    rank_s: float | None = None  # the compiled engine fuses rank with the rest of the step
    later = after_rng if fallback else None
    if compiled:
        _run_compiled(
            policy,
            run,
            rng=rng,
            env_rng=env_rng,
            after_rng=later,
            fallback=fallback,
            progress=progress,
            every=every,
        )
    else:
        rank_s = _run_numpy(
            policy,
            run,
            rng=rng,
            env_rng=env_rng,
            after_rng=later,
            fallback=fallback,
            progress=progress,
            every=every,
        )
    seconds = time.perf_counter() - start
    return run.result(
        label or policy_label(policy), seconds, rank_s, "numba" if compiled else "numpy"
    )


def _run_numpy(
    policy: Policy,
    run: _Run,
    *,
    rng: np.random.Generator,
    env_rng: np.random.Generator,
    after_rng: np.random.Generator | None,
    fallback: bool,
    progress: Callable[[int, int], None] | None,
    every: int,
) -> float:
    """Fill ``run`` with the numpy step loop (any policy); returns the seconds in ``rank``.
    ``after_rng``: pass the after-failure evidence, with this generator for its draws."""
    horizon, k = run.rates.shape
    r = run.cum.size
    keep = decay_factor(1.0, policy.half_life)
    step_aware = policy if isinstance(policy, StepAware) else None
    objective = policy if isinstance(policy, ObjectiveThompsonSampling) else None
    step = _NumpyStep(run, fallback, learn_costs=objective is not None)
    after = after_rng is not None
    generic: Any = policy  # rank's extra arguments are checked by takes_after_failure
    rank_s = 0.0
    mark_i = 0
    for t in range(horizon):
        p = run.rates[t]
        if step_aware is not None:
            step_aware.at_step(t, p)
        t0 = time.perf_counter()
        # With one replication, the Router's exact call: 1-D arrays. Keeps single runs
        # step-for-step comparable.
        rows = 0 if r == 1 else slice(None)
        later_kw: dict[str, Any] = {}
        if objective is not None:
            costs, lats = step.estimates()
            later_kw = {"costs": costs, "latencies": lats}
            order = objective.rank(
                run.succ[rows],
                run.fail[rows],
                rng,
                costs=None if costs is None else costs[rows],
                latencies=None if lats is None else lats[rows],
            )
        else:
            order = policy.rank(run.succ[rows], run.fail[rows], rng)
        if r == 1:
            order = order[None, :]
        rank_s += time.perf_counter() - t0
        ok = env_rng.random((r, k)) < p
        if after:
            # As the Router: the positions after the first are drawn (with after_rng) only
            # for the requests whose first attempt failed, which walk on to them.
            failed = ~ok[step.rows, order[:, 0]]
            if failed.any():
                t0 = time.perf_counter()
                # One replication: the Router's exact call (1-D arrays, an int first).
                sel = 0 if r == 1 else failed
                kw = {n: None if v is None else v[sel] for n, v in later_kw.items()}
                first = int(order[0, 0]) if r == 1 else order[failed, 0]
                later = generic.rank_later(first, run.succ2[sel], run.fail2[sel], after_rng, **kw)
                order[failed, 1:] = later
                rank_s += time.perf_counter() - t0
        tried = step.attempt(t, order, ok)
        step.learn(t, order[:, 0], tried, ok, keep)
        if mark_i < run.marks.size and t + 1 == run.marks[mark_i]:
            run.regret[mark_i] = run.cum
            mark_i += 1
        if progress is not None and ((t + 1) % every == 0 or t + 1 == horizon):
            progress(t + 1, horizon)
    return rank_s


class _NumpyStep:
    """The numpy engine's work for one step after ``rank``: the attempts, their
    bookkeeping, and the evidence they leave."""

    def __init__(self, run: _Run, fallback: bool, learn_costs: bool = False) -> None:
        env = run.env
        self.run = run
        self.fallback = fallback and env.n_paths > 1
        self.rows = np.arange(run.cum.size)
        self.final: FinalPath | None = env.final
        self.cost = None if env.cost_usd is None else np.asarray(env.cost_usd, dtype=np.float64)
        self.lat = None if env.latency_ms is None else np.asarray(env.latency_ms, dtype=np.float64)
        # Views into run.counts: adding to them fills it.
        (
            self.n_first_ok,
            self.n_req_ok,
            self.n_fallback,
            self.n_final,
            self.n_attempts,
            self.total_cost,
            self.total_lat,
        ) = run.counts.T
        # Decayed (sum, weight) of per-attempt cost and latency: the stores' cost_sum /
        # cost_weight and latency_sum / latency_weight, per replication.
        shape = run.succ.shape
        self.learn_costs = learn_costs
        self.cost_sum = np.zeros(shape) if learn_costs and self.cost is not None else None
        self.lat_sum = np.zeros(shape) if learn_costs and self.lat is not None else None
        self.seen_w = np.zeros(shape) if learn_costs else None

    def estimates(self) -> tuple[FloatArray | None, FloatArray | None]:
        """Per-path point estimates (mean cost USD, mean latency ms) from the evidence so
        far, paths not yet seen filled by :func:`expected_costs`."""
        w = self.seen_w
        if w is None:
            return None, None
        with np.errstate(invalid="ignore", divide="ignore"):
            costs = None if self.cost_sum is None else expected_costs(self.cost_sum / w)
            lats = None if self.lat_sum is None else expected_costs(self.lat_sum / w)
        return costs, lats

    def attempt(self, t: int, order: IntArray, ok: BoolArray) -> BoolArray:
        """Tally step ``t``: path ``order[:, 0]`` first, then (with fallback) the next
        ranked ones until one succeeds; ``ok`` is every path's outcome. Returns the
        paths tried, shape ``(R, K)``."""
        run, final = self.run, self.final
        p = run.rates[t]
        first = order[:, 0]
        first_ok = ok[self.rows, first]
        run.cum += run.best[t] - p[first]
        run.share[t] = np.bincount(first, minlength=p.size)
        run.first_success[t] = first_ok.mean()
        self.n_first_ok += first_ok
        tried, all_failed = self._tried(order, ok, first, first_ok)
        self.n_req_ok += ~all_failed
        attempts = tried.sum(axis=1)
        self.n_attempts += attempts
        if final is not None:
            self.n_final += all_failed
            self.n_fallback += ~first_ok
        else:
            self.n_fallback += attempts > 1
        if self.cost is not None and run.step_cost is not None:
            req_cost = tried @ self.cost
            if final is not None:
                req_cost += all_failed * final.cost_usd
            self.total_cost += req_cost
            run.step_cost[t] = req_cost.mean()
        if self.lat is not None:
            self.total_lat += tried @ self.lat
            if final is not None:
                self.total_lat += all_failed * final.latency_ms
        if run.trace_order is not None and run.trace_ok is not None:
            run.trace_order[t] = order
            run.trace_ok[t] = ok
        return tried

    def _tried(
        self, order: IntArray, ok: BoolArray, first: IntArray, first_ok: BoolArray
    ) -> tuple[BoolArray, BoolArray]:
        """(paths tried, whether every tried path failed), per replication."""
        r, k = ok.shape
        if not self.fallback:
            tried = np.zeros((r, k), dtype=np.bool_)
            tried[self.rows, first] = True
            return tried, ~first_ok
        ok_ord = np.take_along_axis(ok, order, axis=1)
        failed_so_far = np.logical_and.accumulate(~ok_ord, axis=1)
        tried_ord = np.empty((r, k), dtype=np.bool_)
        tried_ord[:, 0] = True
        tried_ord[:, 1:] = failed_so_far[:, :-1]
        tried = np.empty((r, k), dtype=np.bool_)
        np.put_along_axis(tried, order, tried_ord, axis=1)
        return tried, failed_so_far[:, -1]

    def learn(self, t: int, first: IntArray, tried: BoolArray, ok: BoolArray, keep: float) -> None:
        """Add step ``t``'s outcomes to the evidence (``delay`` steps later), then decay it:
        the first path's (``first``, per replication) to the first-attempt evidence, the
        other tried paths' to the after-failure evidence."""
        run = self.run
        at_first = np.zeros_like(tried)
        at_first[self.rows, first] = True
        new_s, new_f = tried & ok & at_first, tried & ~ok & at_first
        later = tried & ~at_first
        new_s2, new_f2 = later & ok, later & ~ok
        delay = run.pend_s.shape[0]
        if delay:
            slot = t % delay
            seen = run.pend_s[slot] | run.pend_f[slot] | run.pend_s2[slot] | run.pend_f2[slot]
            run.succ += run.pend_s[slot]
            run.fail += run.pend_f[slot]
            run.succ2 += run.pend_s2[slot]
            run.fail2 += run.pend_f2[slot]
            run.pend_s[slot] = new_s
            run.pend_f[slot] = new_f
            run.pend_s2[slot] = new_s2
            run.pend_f2[slot] = new_f2
        else:
            seen = tried
            run.succ += new_s
            run.fail += new_f
            run.succ2 += new_s2
            run.fail2 += new_f2
        if self.seen_w is not None:
            # Every attempt's cost and latency are known in the simulator; mean = sum / w.
            self.seen_w += seen
            if self.cost_sum is not None and self.cost is not None:
                self.cost_sum += seen * self.cost
            if self.lat_sum is not None and self.lat is not None:
                self.lat_sum += seen * self.lat
        if keep != 1.0:
            run.succ *= keep
            run.fail *= keep
            run.succ2 *= keep
            run.fail2 *= keep
            if self.seen_w is not None:
                self.seen_w *= keep
                if self.cost_sum is not None:
                    self.cost_sum *= keep
                if self.lat_sum is not None:
                    self.lat_sum *= keep


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
    policy: Policy,
    run: _Run,
    *,
    rng: np.random.Generator,
    env_rng: np.random.Generator,
    after_rng: np.random.Generator | None,
    fallback: bool,
    progress: Callable[[int, int], None] | None,
    every: int,
) -> None:
    """Fill ``run`` with the compiled loop, ``every`` steps at a time (``after_rng``: rank
    the later positions by the after-failure evidence, drawing from it).

    Chunks keep progress bars moving and Ctrl-C responsive; each costs one call (~50 µs).
    """
    import adaptive_router.simulation.kernel as kernel

    assert isinstance(policy, ThompsonSampling)  # _compiled_engine saw to it
    env = run.env
    horizon, k = run.rates.shape
    keep = decay_factor(1.0, policy.half_life)
    params = np.array([policy.prior[0], policy.prior[1], policy.explore, keep])
    extra = np.zeros((2, k + 1))  # per-attempt cost and latency; [k] = the final path's
    if env.cost_usd is not None:
        extra[0, :k] = env.cost_usd
    if env.latency_ms is not None:
        extra[1, :k] = env.latency_ms
    if env.final is not None:
        extra[:, k] = (env.final.cost_usd, env.final.latency_ms)
    policy_words, env_words = kernel.get_state(rng), kernel.get_state(env_rng)
    split = after_rng is not None
    after_words = kernel.get_state(after_rng) if after_rng is not None else policy_words.copy()
    mark_state = np.zeros(1, dtype=np.int64)
    # Absent outputs as empty arrays, so that one compiled specialisation serves every run.
    marks64 = run.marks.astype(np.int64)
    step_out = run.step_cost if run.step_cost is not None else np.empty(horizon)
    traced = run.trace_order is not None
    order_out = run.trace_order if run.trace_order is not None else np.empty((0, 0, 0), np.intp)
    ok_out = run.trace_ok if run.trace_ok is not None else np.empty((0, 0, 0), np.bool_)
    for t0 in range(0, horizon, every):
        t1 = min(t0 + every, horizon)
        kernel.run_thompson(
            policy_words,
            env_words,
            after_words,
            params,
            run.rates,
            run.best,
            t0,
            t1,
            run.succ,
            run.fail,
            run.succ2,
            run.fail2,
            run.pend_s,
            run.pend_f,
            run.pend_s2,
            run.pend_f2,
            fallback,
            split,
            extra[0],
            extra[1],
            env.final is not None,
            marks64,
            mark_state,
            run.regret,
            run.cum,
            run.share,
            run.first_success,
            step_out,
            run.counts,
            traced,
            order_out,
            ok_out,
        )
        # Written back after every chunk: an interrupted run leaves the generators where
        # the completed steps left them, as the numpy loop does.
        kernel.set_state(rng, policy_words)
        kernel.set_state(env_rng, env_words)
        if after_rng is not None:
            kernel.set_state(after_rng, after_words)
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
