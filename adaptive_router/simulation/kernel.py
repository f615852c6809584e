"""The simulator's compiled engine: :func:`simulate`'s step loop for Thompson Sampling, in numba.

:func:`adaptive_router.simulation.simulate` runs any policy through numpy, one
``policy.rank`` call per step for all replications. For
:class:`~adaptive_router.policies.thompson.ThompsonSampling` that loop is bound by numpy's per-call
overhead and by ``Generator.beta`` (~20 M draws/s here), which caps K = 10 at ~1.5 M
decisions/s. :func:`run_thompson` fuses the same step (rank, outcomes, fallback,
bookkeeping) into one compiled loop over replications.

It is a second implementation of ``ThompsonSampling.rank`` (the price of ~4x), held to
the first bit for bit rather than by shared code. It draws from the same generators, in
the same order, with numpy's own algorithms: per step, one Beta draw for each
(replication, path) in C order from the first-attempt evidence, then (``explore > 0``)
``rng.random(R)`` and, if any replication explores, ``rng.integers(0, K, size=R)``: exactly
what ``ThompsonSampling.rank`` consumes for an ``(R, K)`` batch; when the later positions
are ranked by the after-failure evidence (``split``), one Beta draw for each path but
its first of each replication whose first attempt failed, row by row and by path index,
from the after-failure draws' own generator (as ``rank_later``); and the environment's
``env_rng.random((R, K))``. Like the numpy engine, it keeps the first attempt's outcome as
first-attempt evidence and the later attempts' as after-failure evidence. Given the same SFC64
generators it returns the numpy engine's results: the same choices, outcomes and counts,
bit for bit (``tests/test_simulation_kernel.py``).

**numpy's SFC64 draws, compiled.** numba can call a numpy ``Generator`` itself, but through
the bit generator's function pointer for every number (5.7 ns per uniform on this
project's 2-core EPYC), with the state in memory that every store may alias. Here SFC64's
four words travel as a tuple of ``uint64`` that LLVM keeps in registers and every draw is
inlined (the whole loop ran at ~4.3 M decisions/s through numba's ``Generator``, ~5.3 M
this way). Each sampler below is numpy's algorithm (``numpy/random/src/distributions/
distributions.c`` and ``sfc64.h``; the ziggurat tables are numpy's, as vendored by numba)
operation for operation, so the floats are bit-identical. A state is lifted from a
``Generator`` with :func:`get_state`, advanced here, and put back with :func:`set_state`;
the generator then continues exactly as if numpy had drawn the numbers. A state is
``(s0, s1, s2, s3, has_uint32, uinteger)``: SFC64's words plus numpy's buffered upper half
of the last 64-bit draw, which 32-bit draws (bounded integers) use.

One module on purpose: numba's on-disk cache is invalidated by changes to the file of the
cached function only, so samplers kept in another file could leave a stale kernel behind.

Why hand-written: no library runs a bandit *and* reproduces numpy's streams; MABWiser's
Thompson Sampling makes ~10^4 decisions per second (``benchmarks/simulator.py``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit
from numba.np.random import _constants as zig

__all__ = ["get_state", "run_contextual", "run_thompson", "set_state"]

# -- numpy's SFC64 draws ----------------------------------------------------------------------


_U = np.uint64
_M52 = _U(0x000FFFFFFFFFFFFF)
_M32 = _U(0xFFFFFFFF)
_TO_DOUBLE = 1.0 / 9007199254740992.0

# numpy's ziggurat tables (ziggurat_constants.h). The normal's k and w side by side: one
# cache line per draw (the k's are integers < 2**52, exact as floats). The exponential's
# k-table compares against uint64 draws; numba vendors it as int64, which would make every
# comparison a float one.
_KWI = np.ascontiguousarray(
    np.stack([np.asarray(zig.ki_double, dtype=np.float64), zig.wi_double], axis=1)
)
_FI = np.asarray(zig.fi_double, dtype=np.float64)
_KE = np.asarray(zig.ke_double, dtype=np.uint64)
_WE = np.asarray(zig.we_double, dtype=np.float64)
_FE = np.asarray(zig.fe_double, dtype=np.float64)
_NOR_R = float(zig.ziggurat_nor_r)
_NOR_INV_R = float(zig.ziggurat_nor_inv_r)
_EXP_R = float(zig.ziggurat_exp_r)

_inline = njit(inline="always", error_model="numpy")
#: Rare branches stay out of line: inlining them into the hot loop made it ~20% slower
#: (instruction cache), measured with benchmarks/simulator.py.
_cold = njit(error_model="numpy")


def get_state(rng: np.random.Generator) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """The state of an SFC64 ``Generator`` as six ``uint64`` (see the module docstring)."""
    if not isinstance(rng.bit_generator, np.random.SFC64):
        raise TypeError(
            "the compiled simulator reproduces numpy's SFC64 stream only; got a "
            f"{type(rng.bit_generator).__name__} generator — pass "
            "numpy.random.Generator(numpy.random.SFC64(seed)) (simulation.rngs does)"
        )
    state = rng.bit_generator.state
    return np.array(
        [*state["state"]["state"], state["has_uint32"], state["uinteger"]], dtype=np.uint64
    )


def set_state(rng: np.random.Generator, words: np.ndarray[Any, np.dtype[np.uint64]]) -> None:
    """Put a state advanced in compiled code back into ``rng``."""
    rng.bit_generator.state = {
        "bit_generator": "SFC64",
        "state": {"state": np.array(words[:4], dtype=np.uint64)},
        "has_uint32": int(words[4]),
        "uinteger": int(words[5]),
    }


@_inline
def pack(words: Any) -> Any:
    """Array of six words -> state tuple."""
    return (words[0], words[1], words[2], words[3], words[4], words[5])


@_inline
def unpack(st: Any, words: Any) -> None:
    """State tuple -> array of six words."""
    for i in range(6):
        words[i] = st[i]


@_inline
def next64(st: Any) -> Any:
    """sfc64_next: one 64-bit draw."""
    s0, s1, s2, s3, has32, buf = st
    tmp = s0 + s1 + s3
    return tmp, (
        s1 ^ (s1 >> _U(11)),
        s2 + (s2 << _U(3)),
        ((s2 << _U(24)) | (s2 >> _U(40))) + tmp,
        s3 + _U(1),
        has32,
        buf,
    )


@_inline
def next_double(st: Any) -> Any:
    """``Generator.random()``: 53 random bits in [0, 1)."""
    r, st = next64(st)
    # Through int64: < 2**53 either way, and x86 converts signed integers in one instruction.
    return np.int64(r >> _U(11)) * _TO_DOUBLE, st


@_inline
def next32(st: Any) -> Any:
    """sfc64_next32: the low half of a 64-bit draw, the high half kept for the next call."""
    if st[4]:
        return st[5], (st[0], st[1], st[2], st[3], _U(0), _U(0))
    r, st = next64(st)
    return r & _M32, (st[0], st[1], st[2], st[3], _U(1), r >> _U(32))


@_inline
def bounded(st: Any, rng_max: Any) -> Any:
    """``Generator.integers(0, rng_max + 1)`` for 0 < rng_max < 2**32 - 1 (Lemire's method)."""
    excl = _U(rng_max) + _U(1)
    u, st = next32(st)
    m = u * excl
    leftover = m & _M32
    if leftover < excl:
        threshold = (_M32 - _U(rng_max)) % excl
        while leftover < threshold:
            u, st = next32(st)
            m = u * excl
            leftover = m & _M32
    return np.int64(m >> _U(32)), st


@_inline
def normal(st: Any) -> Any:
    """``Generator.standard_normal()`` (ziggurat)."""
    while True:
        r, st = next64(st)
        idx = r & _U(0xFF)
        r >>= _U(8)
        rabs = (r >> _U(1)) & _M52
        # rabs < 2**52, so comparing it as a float against k is exact.
        f_abs = np.float64(np.int64(rabs))
        x = f_abs * _KWI[idx, 1]
        if r & _U(1):
            x = -x
        if f_abs < _KWI[idx, 0]:
            return x, st
        done, x, st = _normal_edge(st, idx, rabs, x)
        if done:
            return x, st


@_cold
def _normal_edge(st: Any, idx: Any, rabs: Any, x: float) -> Any:
    """The ziggurat's base strip and wedges (~1% of draws): ``(accepted, x, state)``."""
    if idx == 0:
        while True:
            u1, st = next_double(st)
            u2, st = next_double(st)
            xx = -_NOR_INV_R * np.log1p(-u1)
            yy = -np.log1p(-u2)
            if yy + yy > xx * xx:
                if (rabs >> _U(8)) & _U(1):
                    return True, -(_NOR_R + xx), st
                return True, _NOR_R + xx, st
    u, st = next_double(st)
    if (_FI[idx - 1] - _FI[idx]) * u + _FI[idx] < math.exp(-0.5 * x * x):
        return True, x, st
    return False, x, st


@_inline
def exponential(st: Any) -> Any:
    """``Generator.standard_exponential()`` (ziggurat)."""
    while True:
        ri, st = next64(st)
        ri >>= _U(3)
        idx = ri & _U(0xFF)
        ri >>= _U(8)
        x = np.int64(ri) * _WE[idx]
        if ri < _KE[idx]:
            return x, st
        u, st = next_double(st)
        if idx == 0:
            return _EXP_R - np.log1p(-u), st
        if (_FE[idx - 1] - _FE[idx]) * u + _FE[idx] < math.exp(-x):
            return x, st


@_inline
def gamma_setup(shape: float) -> Any:
    """Marsaglia–Tsang constants ``(d, c)`` for ``shape > 1``, computed as numpy does.

    Cached by the caller for as long as ``shape`` is unchanged: one square root and one
    division fewer per draw, with bit-identical results.
    """
    d = shape - 1.0 / 3.0
    return d, 1.0 / math.sqrt(9.0 * d)


@_inline
def gamma(st: Any, shape: float, d: float, c: float) -> Any:
    """``Generator.standard_gamma(shape)``; ``(d, c) = gamma_setup(shape)`` when shape > 1."""
    if shape > 1.0:  # numpy tests the rare cases first; the result is the same
        while True:
            while True:
                x, st = normal(st)
                v = 1.0 + c * x
                if v > 0.0:
                    break
            v = v * v * v
            u, st = next_double(st)
            if u < 1.0 - 0.0331 * (x * x) * (x * x):
                return d * v, st
            if math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
                return d * v, st
    return _gamma_small(st, shape)


@_cold
def _gamma_small(st: Any, shape: float) -> Any:
    """``standard_gamma`` for 0 <= shape <= 1 (evidence-free paths, light priors)."""
    if shape == 1.0:
        return exponential(st)
    if shape == 0.0:
        return 0.0, st
    while True:
        u, st = next_double(st)
        v, st = exponential(st)
        if u <= 1.0 - shape:
            x = u ** (1.0 / shape)
            if x <= v:
                return x, st
        else:
            y = -math.log((1.0 - u) / shape)
            x = (1.0 - shape + shape * y) ** (1.0 / shape)
            if x <= v + y:
                return x, st


@_inline
def beta(st: Any, a: float, b: float, da: float, ca: float, db: float, cb: float) -> Any:
    """``Generator.beta(a, b)``; ``(da, ca)``, ``(db, cb)`` from :func:`gamma_setup`."""
    if a <= 1.0 and b <= 1.0:
        return _johnk(st, a, b)
    ga, st = gamma(st, a, da, ca)
    gb, st = gamma(st, b, db, cb)
    return ga / (ga + gb), st


@_cold
def _johnk(st: Any, a: float, b: float) -> Any:
    """``Generator.beta`` for a, b <= 1: Jöhnk's algorithm, as numpy."""
    while True:
        u, st = next_double(st)
        v, st = next_double(st)
        x = u ** (1.0 / a)
        y = v ** (1.0 / b)
        xpy = x + y
        if xpy <= 1.0 and u + v > 0.0:
            if xpy > 0.0:
                return x / xpy, st
            log_x = math.log(u) / a
            log_y = math.log(v) / b
            log_m = max(log_x, log_y)
            log_x -= log_m
            log_y -= log_m
            return math.exp(log_x - math.log(math.exp(log_x) + math.exp(log_y))), st


# -- the simulation step ----------------------------------------------------------------------


@_inline
def _refresh(setup: Any, succ: Any, fail: Any, r: int, j: int, a0: float, b0: float) -> None:
    """Cache θ's two shapes and their Marsaglia–Tsang constants (a sqrt and a division each)."""
    a, b = a0 + succ[r, j], b0 + fail[r, j]
    setup[r, j, 0] = a
    setup[r, j, 1], setup[r, j, 2] = gamma_setup(a)
    setup[r, j, 3] = b
    setup[r, j, 4], setup[r, j, 5] = gamma_setup(b)


@_inline
def _draw(st: Any, arm: Any) -> Any:
    """θ for one (replication, path) from its cached ``setup`` row: ``rng.beta(a, b)``."""
    return beta(st, arm[0], arm[3], arm[1], arm[2], arm[4], arm[5])


@njit(cache=True, error_model="numpy")
def run_thompson(
    policy_words: Any,  # uint64[6] SFC64 state of the policy's generator (in/out)
    env_words: Any,  # uint64[6] SFC64 state of the environment's generator (in/out)
    after_words: Any,  # uint64[6] SFC64 state of the after-failure draws' generator (in/out)
    params: Any,  # float64[4]: prior alpha, prior beta, explore, keep (decay per step)
    rates: Any,  # (T, K) success rate of each path at each step
    best: Any,  # (T,) best rate per step
    t_start: int,
    t_stop: int,
    succ: Any,  # (R, K) decayed first-attempt successes (in/out)
    fail: Any,  # (R, K) decayed first-attempt failures (in/out)
    succ2: Any,  # (R, K) decayed successes after a failure (in/out)
    fail2: Any,  # (R, K) decayed failures after a failure (in/out)
    pend_s: Any,  # (D, R, K) first attempts waiting for delayed feedback (in/out)
    pend_f: Any,
    pend_s2: Any,  # (D, R, K) later attempts waiting for delayed feedback (in/out)
    pend_f2: Any,
    fallback: bool,
    split: bool,  # rank positions 2.. by the after-failure evidence, drawn from after_words
    cost: Any,  # (K + 1,) per-attempt cost; [K] = the final path's
    latency: Any,  # (K + 1,) per-attempt latency; [K] = the final path's
    has_final: bool,
    marks: Any,  # checkpoint steps (1-based), ascending
    mark_state: Any,  # int64[1]: next checkpoint index (in/out)
    regret: Any,  # (len(marks), R) out
    cum: Any,  # (R,) cumulative regret (in/out)
    share: Any,  # (T, K) first attempts per path (out)
    first_success: Any,  # (T,) out
    step_cost: Any,  # (T,) out
    counts: Any,  # (R, 7): first ok, request ok, fallback, final, attempts, cost, latency
    trace: bool,
    trace_order: Any,  # (T, R, K) out when trace: the whole ranked order
    trace_ok: Any,  # (T, R, K) out when trace
) -> None:
    """Run steps ``[t_start, t_stop)`` of a Thompson Sampling simulation in place.

    Every array is owned by :func:`~adaptive_router.simulation.simulate`, which calls this
    once, or once per progress tick; see there for the meaning of each measure.
    """
    n_rep, k = succ.shape
    a0, b0, explore, keep = params[0], params[1], params[2], params[3]
    delay = pend_s.shape[0]
    p_st = pack(policy_words)
    e_st = pack(env_words)
    a_st = pack(after_words)

    theta = np.empty((n_rep, k))
    theta2 = np.empty(k)  # a row's θ' of every path but its first (that slot unused)
    outcomes = np.empty((n_rep, k), dtype=np.bool_)
    below = np.empty(k, dtype=np.int64)
    exploring = np.zeros(n_rep, dtype=np.bool_)
    order = np.empty(k, dtype=np.int64)
    tried = np.zeros(k, dtype=np.bool_)
    setup = np.empty((n_rep, k, 6))
    setup2 = np.empty((n_rep, k, 6) if split else (0, 0, 6))
    theta_flat = theta.reshape(n_rep * k)
    setup_flat = setup.reshape(n_rep * k, 6)
    for r in range(n_rep):
        for j in range(k):
            _refresh(setup, succ, fail, r, j, a0, b0)
            if split:
                _refresh(setup2, succ2, fail2, r, j, a0, b0)
    mark_i = mark_state[0]
    ranked = fallback and k > 1  # the whole order matters, not just the first path
    full = (ranked or trace) and k > 1  # sort the whole order (traced even without fallback)

    for t in range(t_start, t_stop):
        p = rates[t]
        # ThompsonSampling.rank on the (R, K) batch: every θ, then the exploration draws.
        for i in range(n_rep * k):  # C order, as rng.beta fills an (R, K) array
            theta_flat[i], p_st = _draw(p_st, setup_flat[i])
        if explore > 0.0:
            any_exploring = False
            for r in range(n_rep):
                u, p_st = next_double(p_st)
                exploring[r] = u < explore
                any_exploring = any_exploring or exploring[r]
            if any_exploring:
                for r in range(n_rep):
                    pick = 0
                    if k > 1:
                        pick, p_st = bounded(p_st, k - 1)
                    if exploring[r]:
                        theta[r, pick] = 2.0  # θ <= 1, so the explored path goes first
        # The environment: every path's outcome, tried or not (env_rng.random((R, K))). A
        # loop of its own: interleaved with the θ draws, two generators' states compete for
        # registers and each outcome costs ~3x more.
        # u = m / 2**53 < p  <=>  m < ceil(p * 2**53) for the integer m behind u: the same
        # outcome as numpy's `env_rng.random() < p`, compared without converting m.
        for j in range(k):
            below[j] = np.int64(math.ceil(p[j] * 9007199254740992.0))
        for r in range(n_rep):
            for j in range(k):
                m, e_st = next64(e_st)
                outcomes[r, j] = np.int64(m >> np.uint64(11)) < below[j]
        n_first_ok = 0
        cost_sum = 0.0
        for r in range(n_rep):
            ok = outcomes[r]
            # argsort(-theta, kind="stable"): descending, ties by index.
            if full:
                for i in range(k):
                    cur = i
                    m = i
                    while m > 0 and theta[r, order[m - 1]] < theta[r, cur]:
                        order[m] = order[m - 1]
                        m -= 1
                    order[m] = cur
            else:
                # The first maximum, written as selects: a data-dependent branch here
                # mispredicts about once per row.
                first = 0
                top = theta[r, 0]
                for j in range(1, k):
                    v = theta[r, j]
                    better = v > top
                    first = j if better else first
                    top = v if better else top
                order[0] = first
            first = order[0]
            first_ok = ok[first]
            if split and ranked and not first_ok:
                # The first attempt failed: the others by descending θ' (ties by index),
                # drawn now, each path but the first by index (ThompsonSampling.rank_later).
                # A request whose first attempt succeeds draws none, as in the Router.
                m_len = 1
                for cur in range(k):
                    if cur == first:
                        continue
                    theta2[cur], a_st = _draw(a_st, setup2[r, cur])
                    m = m_len
                    while m > 1 and theta2[order[m - 1]] < theta2[cur]:
                        order[m] = order[m - 1]
                        m -= 1
                    order[m] = cur
                    m_len += 1
            cum[r] += best[t] - p[first]
            share[t, first] += 1.0
            n_first_ok += first_ok
            counts[r, 0] += first_ok

            attempts = 1
            all_failed = not first_ok
            if ranked and not first_ok:
                while attempts < k:
                    attempts += 1
                    if ok[order[attempts - 1]]:
                        all_failed = False
                        break
            counts[r, 1] += not all_failed
            counts[r, 4] += attempts
            if has_final:
                counts[r, 3] += all_failed
                counts[r, 2] += not first_ok
            else:
                counts[r, 2] += attempts > 1
            # tried @ cost sums in path order, as numpy's matmul does.
            if attempts == 1:
                req_cost = cost[first]
                req_lat = latency[first]
            else:
                for i in range(attempts):
                    tried[order[i]] = True
                req_cost = 0.0
                req_lat = 0.0
                for j in range(k):
                    if tried[j]:
                        req_cost += cost[j]
                        req_lat += latency[j]
                        tried[j] = False
            if has_final and all_failed:
                req_cost += cost[k]
            counts[r, 5] += req_cost
            cost_sum += req_cost
            counts[r, 6] += req_lat
            if has_final and all_failed:
                counts[r, 6] += latency[k]
            if trace:
                for j in range(k):
                    trace_order[t, r, j] = order[j]
                    trace_ok[t, r, j] = ok[j]

            # -- evidence, as the Router records it: the first attempt's as first-attempt
            # evidence, the later attempts' as after-failure evidence -----------------------
            if delay > 0:
                slot = t % delay
                for j in range(k):
                    if pend_s[slot, r, j]:
                        succ[r, j] += 1.0
                    if pend_f[slot, r, j]:
                        fail[r, j] += 1.0
                    if pend_s2[slot, r, j]:
                        succ2[r, j] += 1.0
                    if pend_f2[slot, r, j]:
                        fail2[r, j] += 1.0
                    pend_s[slot, r, j] = False
                    pend_f[slot, r, j] = False
                    pend_s2[slot, r, j] = False
                    pend_f2[slot, r, j] = False
                j = order[0]
                if ok[j]:
                    pend_s[slot, r, j] = True
                else:
                    pend_f[slot, r, j] = True
                for i in range(1, attempts):
                    j = order[i]
                    if ok[j]:
                        pend_s2[slot, r, j] = True
                    else:
                        pend_f2[slot, r, j] = True
                if keep == 1.0:
                    for j in range(k):
                        _refresh(setup, succ, fail, r, j, a0, b0)
                        if split:
                            _refresh(setup2, succ2, fail2, r, j, a0, b0)
            else:
                # Branch-free: an outcome is a coin flip the predictor can't learn, and
                # adding 0.0 leaves a sum unchanged, as numpy's `succ += new_s` does.
                j = order[0]
                hit = 1.0 if ok[j] else 0.0
                succ[r, j] += hit
                fail[r, j] += 1.0 - hit
                if keep == 1.0:
                    _refresh(setup, succ, fail, r, j, a0, b0)
                for i in range(1, attempts):
                    j = order[i]
                    hit = 1.0 if ok[j] else 0.0
                    succ2[r, j] += hit
                    fail2[r, j] += 1.0 - hit
                    if keep == 1.0 and split:
                        _refresh(setup2, succ2, fail2, r, j, a0, b0)
            if keep != 1.0:
                for j in range(k):
                    succ[r, j] *= keep
                    fail[r, j] *= keep
                    succ2[r, j] *= keep
                    fail2[r, j] *= keep
                    _refresh(setup, succ, fail, r, j, a0, b0)
                    if split:
                        _refresh(setup2, succ2, fail2, r, j, a0, b0)

        first_success[t] = n_first_ok / n_rep
        step_cost[t] = cost_sum / n_rep
        if mark_i < marks.size and t + 1 == marks[mark_i]:
            for r in range(n_rep):
                regret[mark_i, r] = cum[r]
            mark_i += 1

    mark_state[0] = mark_i
    unpack(p_st, policy_words)
    unpack(e_st, env_words)
    unpack(a_st, after_words)


# -- the contextual policy: ContextualThompsonSampling + LinearModel + SpendPacer, compiled ---
# (the same draws, statistics bit for bit, the posterior to rounding: simulation.contextual)

_TINY = 1e-200  # adaptive_router.policies.thompson.TINY
_MAX_HALF_LIVES = 60.0  # adaptive_router.policies.thompson.MAX_HALF_LIVES
_MIN_SCALE = 1e-100  # adaptive_router.policies.contextual._MIN_SCALE


@_inline
def _decay(elapsed: float, half_life: float) -> float:
    """decay_factor (half_life <= 0: none)."""
    if half_life <= 0.0 or elapsed <= 0.0:
        return 1.0
    halvings = elapsed / half_life
    if halvings > _MAX_HALF_LIVES:
        return 0.0
    return math.pow(0.5, halvings)


@_inline
def _snap(value: float, factor: float) -> float:
    """adaptive_router.policies.thompson._scale: a sum below TINY is zeroed before decaying."""
    return 0.0 if value < _TINY else value * factor


@_cold
def _ctx_refresh(
    k: int, cov: Any, mean: Any, xx: Any, xy: Any, scale: Any, bias: Any, s2: float, t2: float
) -> None:
    """LinearModel.refresh: path k's posterior from its statistics (O(D³))."""
    d = xy.shape[1]
    up = xx[k] * scale[k]
    h = xy[k] * scale[k]
    for v in (up.reshape(-1), h):
        v[np.abs(v) < _TINY] = 0.0
    prec = (up + up.T - np.diag(np.diag(up))) / s2
    for i in range(d):
        prec[i, i] += 1.0 / t2
    prec[d - 1, d - 1] += bias[k, 1] / s2
    h /= s2
    h[d - 1] += bias[k, 0] * (1.0 / t2 + bias[k, 1] / s2)
    c = np.linalg.inv(prec)
    cov[k] = (c + c.T) * 0.5
    mean[k] = cov[k] @ h


@_inline
def _ctx_rank_one(ck: Any, alpha: float, u: Any) -> None:
    """``ck += alpha · u uᵀ`` (row by row: the inner loop vectorises)."""
    d = u.shape[0]
    for i in range(d):
        ai = alpha * u[i]
        row = ck[i]
        for j in range(d):
            row[j] += u[j] * ai


@njit(cache=True, error_model="numpy")
def run_contextual(policy_words: Any, params: Any, data: Any, model: Any, out: Any) -> None:
    """Decide, observe and pace for every step; the arguments are described where
    simulation.contextual._replay_numba builds them."""
    indptr, indices, values, rows, rewards, costs = data
    cov, mean, xx, xy, path_state, bias, pacer = model
    choices, prices = out
    k_paths = mean.shape[0]
    d = mean.shape[1]
    b = d - 1
    t2, s2, vs, explore = params[0], params[1], params[2], params[3]
    half_life, tol, target, gain = params[4], params[5], params[6], params[7]
    pacer_half_life = params[8]
    refresh_every = 4 * d
    st = pack(policy_words)
    score = np.empty(k_paths)
    cbar = np.empty(k_paths)
    u = np.empty(d)
    for t in range(rows.shape[0]):
        at = float(t)
        r = rows[t]
        lo, hi = indptr[r], indptr[r + 1]
        # -- SpendPacer.price and paced_costs -------------------------------------------
        price = 0.0
        if target > 0.0:
            over = (pacer[0] - target * pacer[1]) / target
            price = max(0.0, gain * over / target)
        fill = 0.0
        for k in range(k_paths):
            cbar[k] = path_state[k, 7] / path_state[k, 8] if path_state[k, 8] > 0.0 else -1.0
            fill = max(fill, cbar[k])
        for k in range(k_paths):
            cbar[k] = fill if cbar[k] < 0.0 else cbar[k]
        # -- ContextualThompsonSampling.rank ----------------------------------------------
        for k in range(k_paths):
            m = 0.0
            v = 0.0
            ck = cov[k]
            for a in range(lo, hi):
                ia = indices[a]
                xa = values[a]
                m += mean[k, ia] * xa
                row = ck[ia]
                acc = 0.0
                for c in range(a + 1, hi):
                    acc += row[indices[c]] * values[c]
                v += xa * (2.0 * acc + xa * row[ia])
            z, st = normal(st)
            score[k] = np.sqrt(vs * max(v, 1e-18)) * z + m
            if price != 0.0:
                score[k] -= price * cbar[k]
        if explore > 0.0:
            e, st = next_double(st)
            if e < explore:
                pick = 0
                if k_paths > 1:
                    pick, st = bounded(st, k_paths - 1)
                score[pick] = np.inf
        first = 0
        for k in range(1, k_paths):
            if score[k] > score[first]:
                first = k
        choices[t] = first
        prices[t] = price
        y = rewards[r, first]
        spend = costs[r, first]
        ps = path_state[first]
        # -- LinearStats.fold ---------------------------------------------------------------
        keep = _decay(at - ps[1], half_life)
        add = _decay(ps[1] - at, half_life)
        if keep != 1.0:
            ps[0] *= keep
            if ps[0] < _MIN_SCALE:  # fold the lazy factor into the sums before it underflows
                xx[first] *= ps[0]
                xy[first] *= ps[0]
                for v in (xx[first].reshape(-1), xy[first]):
                    v[np.abs(v) < _TINY] = 0.0
                ps[0] = 1.0
        w = 1.0 * add / ps[0]
        for a in range(lo, hi):
            ia = indices[a]
            xa = values[a]
            for c in range(a, hi):
                xx[first, ia, indices[c]] += (xa * values[c]) * w
        wy = w * y
        for a in range(lo, hi):
            xy[first, indices[a]] += wy * values[a]
        ps[1] = max(ps[1], at)
        ps[2] += 1.0
        # -- LinearModel.observe: refactorise, or a Sherman–Morrison update ------------------
        ps[3] *= keep
        ps[4] += 1.0
        ck = cov[first]
        if ps[3] < 1.0 - tol or ps[4] >= refresh_every:
            _ctx_refresh(first, cov, mean, xx, xy, path_state[:, 0], bias, s2, t2)
            ps[3] = 1.0
            ps[4] = 0.0
        else:
            w2 = 1.0 * add / (ps[3] * s2)
            u[:] = 0.0
            for a in range(lo, hi):
                xa = values[a]
                row = ck[indices[a]]
                for j in range(d):
                    u[j] += xa * row[j]
            q = 0.0
            pred = 0.0
            for a in range(lo, hi):
                q += u[indices[a]] * values[a]
                pred += mean[first, indices[a]] * values[a]
            g = w2 / (1.0 + w2 * q)
            _ctx_rank_one(ck, -g, u)
            mean[first] += (g * (y - pred)) * u
        # -- the path's Beta and cost evidence (policy.fold), then LinearModel.cold_start -----
        ps[5] = _snap(ps[5], keep) + y * add
        ps[6] = _snap(ps[6], keep) + (1.0 - y) * add
        ps[7] = _snap(ps[7], keep) + spend * add
        ps[8] = _snap(ps[8], keep) + add
        total = ps[5] + ps[6]
        p_hat = (1.0 + ps[5]) / (2.0 + total)
        extra = max(0.0, total - xx[first, b, b] * ps[0])
        delta = (extra - bias[first, 1]) / s2
        eta = p_hat * (1.0 / t2 + extra / s2) - bias[first, 0] * (1.0 / t2 + bias[first, 1] / s2)
        bias[first, 0] = p_hat
        bias[first, 1] = extra
        u[:] = ck[b]  # = column b (Σ is symmetric), read as the policy objects read it
        g = delta / (1.0 + delta * u[b])
        mu_b = mean[first, b]
        if delta != 0.0:
            _ctx_rank_one(ck, -g, u)
        mean[first] += u * (eta * (1.0 - g * u[b]) - g * mu_b)
        # -- SpendStats.fold (with a spend target) ------------------------------------------
        if target > 0.0:
            pk = _decay(at - pacer[2], pacer_half_life)
            pa = _decay(pacer[2] - at, pacer_half_life)
            pacer[0] = (0.0 if pacer[0] < _TINY else pacer[0] * pk) + spend * pa
            pacer[1] = (0.0 if pacer[1] < _TINY else pacer[1] * pk) + pa
            pacer[2] = max(pacer[2], at)
            pacer[3] += 1.0
            pacer[4] += spend
    unpack(st, policy_words)
