"""The compiled engine: numpy's SFC64 draws bit for bit, and the numpy engine's results."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numba import njit

from adaptive_router import ThompsonSampling
from adaptive_router.simulation import (
    UCB1,
    Environment,
    FinalPath,
    SimulationResult,
    abrupt,
    kernel,
    recovery,
    rngs,
    simulate,
    stationary,
)


def sfc(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.SFC64(seed))


SHARED = sfc(99)


# -- the draws ---------------------------------------------------------------------------------


@njit(error_model="numpy")
def _betas(words: Any, a: Any, b: Any, out: Any) -> None:
    st = kernel.pack(words)
    for i in range(a.size):
        da, ca = kernel.gamma_setup(a[i])
        db, cb = kernel.gamma_setup(b[i])
        out[i], st = kernel.beta(st, a[i], b[i], da, ca, db, cb)
    kernel.unpack(st, words)


@njit(error_model="numpy")
def _sequence(words: Any, n: int, rng_max: int, floats: Any, ints: Any) -> None:
    st = kernel.pack(words)
    for i in range(n):
        floats[0, i], st = kernel.normal(st)
    for i in range(n):
        floats[1, i], st = kernel.exponential(st)
    for i in range(n):
        ints[i], st = kernel.bounded(st, rng_max)
    for i in range(n):
        floats[2, i], st = kernel.next_double(st)
    kernel.unpack(st, words)


def test_beta_draws_are_numpys_in_every_branch() -> None:
    # Johnk (both <= 1), shape < 1 and shape == 1 gammas, Marsaglia–Tsang small and large.
    grid = np.array([0.05, 0.3, 0.999, 1.0, 1.0000001, 1.5, 2.0, 7.3, 100.0, 1e5])
    a = np.tile(np.repeat(grid, grid.size), 300)
    b = np.tile(np.tile(grid, grid.size), 300)
    ours, theirs = sfc(11), sfc(11)
    words = kernel.get_state(ours)
    out = np.empty(a.size)
    _betas(words, a, b, out)
    kernel.set_state(ours, words)
    np.testing.assert_array_equal(out, theirs.beta(a, b))
    # The generator handed back continues where numpy's own would be.
    assert ours.random(5).tolist() == theirs.random(5).tolist()


@pytest.mark.parametrize("high", [2, 3, 10, 2**31 + 12_345])
def test_normal_exponential_integers_uniforms_are_numpys(high: int) -> None:
    # 2**31 + 12345 makes Lemire's rejection loop run about half the time.
    n = 400_000
    ours, theirs = sfc(high), sfc(high)
    words = kernel.get_state(ours)
    floats = np.empty((3, n))
    ints = np.empty(n, dtype=np.int64)
    _sequence(words, n, high - 1, floats, ints)
    kernel.set_state(ours, words)
    normals = theirs.standard_normal(n)
    exponentials = theirs.standard_exponential(n)
    np.testing.assert_array_equal(floats[0], normals)
    np.testing.assert_array_equal(floats[1], exponentials)
    np.testing.assert_array_equal(ints, theirs.integers(0, high, size=n))
    np.testing.assert_array_equal(floats[2], theirs.random(n))
    # The ziggurats' tails (beyond their last layer) were drawn too, and matched.
    assert np.abs(normals).max() > 3.6541528853610088
    assert exponentials.max() > 7.69711747013105
    # numpy's buffered half of a 64-bit draw survives the hand-over.
    assert ours.integers(0, 7, size=3).tolist() == theirs.integers(0, 7, size=3).tolist()
    assert ours.random() == theirs.random()


def test_only_sfc64_states_can_be_lifted() -> None:
    with pytest.raises(TypeError, match=r"SFC64.*PCG64|PCG64.*SFC64"):
        kernel.get_state(np.random.default_rng(0))


# -- the engines agree -------------------------------------------------------------------------

EXACT = (
    "steps",
    "regret",
    "first_success",
    "share",
    "first_success_rate",
    "request_success_rate",
    "fallback_rate",
    "final_fallback_rate",
    "attempts_per_request",
    "cost_per_1k",
    "latency_ms",
    "trace_first",
    "trace_outcomes",
    "trace_order",
)

ENVS = {
    "stationary": stationary([0.5, 0.45, 0.4, 0.45]),
    "one path": stationary([0.7]),
    "priced, final, delayed": abrupt(
        [0.9, 0.6, 0.7],
        path=0,
        at=100,
        to=0.2,
        cost_usd=[0.01, 0.002, 0.001],
        latency_ms=[900.0, 400.0, 20.0],
        final=FinalPath(cost_usd=0.0001, latency_ms=1.0),
        delay=3,
    ),
    "recovery": recovery([0.8, 0.6], path=0, down_at=50, up_at=150, low=0.1, cost_usd=[0.02, 0.01]),
}
POLICIES = {
    "default": ThompsonSampling(),
    "pure": ThompsonSampling(explore=0.0),
    "half-life, explore 0.3": ThompsonSampling(half_life=25.0, explore=0.3),
    "Jeffreys prior": ThompsonSampling(prior=(0.5, 0.5), explore=0.05),
    "heavy prior": ThompsonSampling(prior=(20.0, 3.0), half_life=400.0),
}


def both(
    policy: ThompsonSampling, env: Environment, horizon: int, runs: int, **kw: Any
) -> tuple[SimulationResult, SimulationResult, list[float], list[float]]:
    out = []
    tails = []
    for engine in ("numpy", "numba"):
        rng, env_rng = rngs(5)
        out.append(
            simulate(policy, env, horizon, runs, rng=rng, env_rng=env_rng, engine=engine, **kw)
        )
        tails.append([rng.random(), env_rng.random()])
    return out[0], out[1], tails[0], tails[1]


@pytest.mark.parametrize("env_name", list(ENVS))
@pytest.mark.parametrize("policy_name", list(POLICIES))
@pytest.mark.parametrize("fallback", [True, False])
def test_compiled_engine_reproduces_the_numpy_engine(
    env_name: str, policy_name: str, fallback: bool
) -> None:
    slow, fast, slow_tail, fast_tail = both(
        POLICIES[policy_name], ENVS[env_name], 240, 37, fallback=fallback, trace=True
    )
    assert (slow.engine, fast.engine) == ("numpy", "numba")
    for name in EXACT:
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), err_msg=name)
    if slow.step_cost is not None:
        # A mean over replications: numpy sums pairwise, the loop in order.
        np.testing.assert_allclose(fast.step_cost, slow.step_cost, rtol=1e-12)
    assert fast_tail == slow_tail  # both generators left in the same state
    assert fast.rank_seconds is None and slow.rank_seconds is not None


def test_one_replication_is_the_routers_call_in_both_engines() -> None:
    # R = 1 makes the numpy engine call rank with 1-D arrays (the Router's own call).
    slow, fast, slow_tail, fast_tail = both(
        ThompsonSampling(half_life=40.0, explore=0.1), ENVS["priced, final, delayed"], 500, 1
    )
    assert fast.engine == "numba"
    np.testing.assert_array_equal(fast.regret, slow.regret)
    np.testing.assert_array_equal(fast.share, slow.share)
    assert fast_tail == slow_tail


def test_progress_ticks_do_not_change_the_run() -> None:
    env = ENVS["priced, final, delayed"]
    ticks: list[tuple[int, int]] = []
    rng, env_rng = rngs(3)
    ticked = simulate(
        ThompsonSampling(),
        env,
        450,
        9,
        rng=rng,
        env_rng=env_rng,
        progress=lambda d, t: ticks.append((d, t)),
    )
    rng, env_rng = rngs(3)
    quiet = simulate(ThompsonSampling(), env, 450, 9, rng=rng, env_rng=env_rng)
    assert ticked.engine == quiet.engine == "numba"
    assert [d for d, _ in ticks] == [*range(4, 450, 4), 450]
    assert {t for _, t in ticks} == {450}
    np.testing.assert_array_equal(ticked.regret, quiet.regret)
    np.testing.assert_array_equal(ticked.share, quiet.share)


@pytest.mark.parametrize("engine", ["numpy", "numba"])
def test_after_failure_draws_never_touch_the_first_choices(engine: str) -> None:
    # The later positions' θ' come from a generator spawned from rng, drawn for the
    # requests whose first attempt failed: a run with fallback (which draws them) and one
    # without (which never walks on) make the same first choices (first-attempt evidence
    # alone ranks them) and leave rng in the same state.
    env = stationary([0.5, 0.45, 0.4, 0.45])
    runs, tails = [], []
    for fallback in (True, False):
        rng, env_rng = rngs(8)
        runs.append(
            simulate(
                ThompsonSampling(half_life=30.0, explore=0.1),
                env,
                300,
                7,
                rng=rng,
                env_rng=env_rng,
                fallback=fallback,
                trace=True,
                engine=engine,  # type: ignore[arg-type]
            )
        )
        tails.append(rng.random())
    walked, plain = runs
    np.testing.assert_array_equal(walked.share, plain.share)
    np.testing.assert_array_equal(walked.regret, plain.regret)
    assert tails[0] == tails[1]
    assert walked.trace_order is not None and plain.trace_order is not None
    assert walked.engine == plain.engine == engine
    # Only the walks past a failed first attempt were reordered by the after-failure draws.
    assert walked.trace_outcomes is not None
    first = walked.trace_order[..., :1]
    first_ok = np.take_along_axis(walked.trace_outcomes, first, -1)[..., 0]
    np.testing.assert_array_equal(walked.trace_order[first_ok], plain.trace_order[first_ok])
    assert not np.array_equal(walked.trace_order[~first_ok], plain.trace_order[~first_ok])


def test_later_positions_follow_the_after_failure_evidence() -> None:
    # The compiled engine orders the paths after the first by their after-failure draws
    # (outcomes are independent here, so after a failure each path keeps its rate): once
    # learned, path 1 (0.6) comes second after path 0 (0.9), ahead of path 2 (0.3).
    env = stationary([0.9, 0.6, 0.3])
    rng, env_rng = rngs(12)
    res = simulate(ThompsonSampling(), env, 3_000, 20, rng=rng, env_rng=env_rng, trace=True)
    assert res.engine == "numba" and res.trace_order is not None
    assert res.trace_outcomes is not None
    late = res.trace_order[1_000:]
    # Walked on: the first attempt failed (elsewhere the later positions were never drawn).
    failed = ~np.take_along_axis(res.trace_outcomes[1_000:], late[..., :1], -1)[..., 0]
    first_is_0 = (late[:, :, 0] == 0) & failed
    second = late[:, :, 1][first_is_0]
    assert (second == 1).mean() > 0.9


# -- choosing the engine -----------------------------------------------------------------------


def test_auto_uses_numpy_where_the_kernel_does_not_apply() -> None:
    env = stationary([0.6, 0.4])
    rng, env_rng = rngs(1)
    assert simulate(UCB1(), env, 20, 3, rng=rng, env_rng=env_rng).engine == "numpy"
    pcg = simulate(ThompsonSampling(), env, 20, 3, rng=np.random.default_rng(1), env_rng=env_rng)
    assert pcg.engine == "numpy"
    rng, env_rng = rngs(1)
    assert simulate(ThompsonSampling(), env, 20, 3, rng=rng, env_rng=env_rng).engine == "numba"


@pytest.mark.parametrize(
    ("policy", "rng", "message"),
    [
        (UCB1(), sfc(1), "ThompsonSampling only, not UCB1"),
        (ThompsonSampling(), np.random.default_rng(1), r"SFC64\(seed\)"),
        (ThompsonSampling(), SHARED, "the same generator"),
    ],
)
def test_asking_for_numba_where_it_cannot_run_says_why(
    policy: Any, rng: np.random.Generator, message: str
) -> None:
    env_rng = SHARED if rng is SHARED else sfc(2)
    with pytest.raises(ValueError, match=message):
        simulate(policy, stationary([0.6, 0.4]), 10, 2, rng=rng, env_rng=env_rng, engine="numba")


def test_one_generator_for_both_roles_runs_on_numpy() -> None:
    # numpy interleaves the two roles' draws on one stream; auto must not pretend otherwise.
    one = sfc(4)
    res = simulate(ThompsonSampling(), stationary([0.6, 0.4]), 50, 3, rng=one, env_rng=one)
    assert res.engine == "numpy"


def test_unknown_engine_is_rejected() -> None:
    with pytest.raises(ValueError, match="engine must be 'auto', 'numpy' or 'numba'"):
        simulate(
            ThompsonSampling(),
            stationary([0.6]),
            10,
            1,
            rng=sfc(1),
            env_rng=sfc(2),
            engine="gpu",  # type: ignore[arg-type]
        )


def test_without_numba_auto_falls_back_and_numba_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "numba" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    env = stationary([0.6, 0.4])
    assert simulate(ThompsonSampling(), env, 10, 2, rng=sfc(1), env_rng=sfc(2)).engine == "numpy"
    with pytest.raises(ValueError, match=r"adaptive-router\[sim\]"):
        simulate(ThompsonSampling(), env, 10, 2, rng=sfc(1), env_rng=sfc(2), engine="numba")


def test_every_configuration_shares_one_compiled_kernel() -> None:
    # Argument types never vary (absent costs, traces and delays are empty arrays, not
    # None), so the warm-up compiles the one specialisation every run uses.
    for fallback in (True, False):
        _, fast, _, _ = both(ThompsonSampling(), ENVS["recovery"], 30, 2, fallback=fallback)
        assert fast.engine == "numba"
    assert len(kernel.run_thompson.signatures) == 1


CACHE_PROBE = """
import json
from adaptive_router import ThompsonSampling
from adaptive_router.simulation import kernel, rngs, simulate, stationary
rng, env_rng = rngs(3)
simulate(ThompsonSampling(), stationary([0.6, 0.4]), 5, 2, rng=rng, env_rng=env_rng, engine="numba")
stats = kernel.run_thompson.stats
print(json.dumps({
    "path": stats.cache_path,
    "hits": sum(stats.cache_hits.values()),
    "misses": sum(stats.cache_misses.values()),
}))
"""


def test_a_fresh_process_loads_the_kernel_from_the_disk_cache() -> None:
    # numba caches machine code in the __pycache__ beside the kernel's file, keyed on that
    # file: a process that finds it loads the kernel (~0.5 s) instead of compiling (~6 s).
    simulate(ThompsonSampling(), stationary([0.6, 0.4]), 5, 2, rng=sfc(1), env_rng=sfc(2))
    done = subprocess.run(
        [sys.executable, "-c", CACHE_PROBE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    assert stats == {
        "path": str(Path(kernel.__file__).parent / "__pycache__"),
        "hits": 1,
        "misses": 0,
    }
