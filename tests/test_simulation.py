"""The offline simulator: known bandit behaviour, determinism, agreement with the live Router."""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adaptive_router import AllPathsFailed, Router, ThompsonSampling
from adaptive_router import Path as RoutePath
from adaptive_router.policy import Policy
from adaptive_router.simulation import (
    UCB1,
    Environment,
    EpsilonGreedy,
    FinalPath,
    Oracle,
    SimulationResult,
    StaticOrder,
    UniformRandom,
    abrupt,
    bernoulli_kl,
    compare,
    drift,
    lai_robbins_bound,
    lai_robbins_constant,
    outcome_table,
    recovery,
    rngs,
    simulate,
    stationary,
)

THREE = [0.9, 0.7, 0.5]


def run(
    policy: Policy, env: Environment, horizon: int, runs: int, seed: int = 0, **kw: Any
) -> SimulationResult:
    rng, env_rng = rngs(seed)
    return simulate(policy, env, horizon, runs, rng=rng, env_rng=env_rng, **kw)


# -- known behaviour of the production policy ------------------------------------------------


def test_thompson_sampling_settles_on_the_best_path() -> None:
    res = run(ThompsonSampling(), stationary(THREE), 3_000, 200, fallback=False)
    late = res.share[-500:].mean(axis=0)
    assert late[0] >= 0.85, late
    assert res.first_success_rate.mean() > 0.85


def test_regret_grows_sublinearly() -> None:
    # Pure TS: the exploration floor adds a deliberate linear term, tested separately below.
    res = run(ThompsonSampling(explore=0.0), stationary(THREE), 8_000, 200, fallback=False)
    at_t, at_2t = res.regret_at(4_000).mean(), res.regret_at(8_000).mean()
    assert 0 < at_2t < 1.6 * at_t, (at_t, at_2t)
    # ...and it is far from the linear regret of not learning at all.
    uniform = run(UniformRandom(), stationary(THREE), 8_000, 50, fallback=False)
    assert at_2t < 0.1 * uniform.final_regret.mean()


def test_exploration_floor_costs_what_it_should() -> None:
    # 2% of requests go to a uniform path: extra regret ≈ 0.02 × mean gap × T.
    pure = run(ThompsonSampling(explore=0.0), stationary(THREE), 8_000, 100, fallback=False)
    floor = run(ThompsonSampling(explore=0.02), stationary(THREE), 8_000, 100, fallback=False)
    expected = 0.02 * np.mean([0.0, 0.2, 0.4]) * 8_000
    extra = floor.final_regret.mean() - pure.final_regret.mean()
    assert 0.5 * expected < extra < 1.5 * expected, (extra, expected)


def test_oracle_has_zero_regret_even_when_the_world_changes() -> None:
    for env in (stationary(THREE), abrupt(THREE, 0, 300, 0.1), drift(THREE, 0, 100, 600, 0.2)):
        res = run(Oracle(), env, 1_000, 20)
        assert np.all(res.regret == 0.0)


def test_static_order_never_adapts_but_a_half_life_does() -> None:
    env = abrupt([0.95, 0.85, 0.6], path=0, at=1_000, to=0.3)
    static = run(StaticOrder([0, 1, 2]), env, 2_000, 100)
    assert math.isinf(static.adaptation_lag(path=0, since=1_000))
    assert np.all(static.share[:, 0] == 1.0)

    with_hl = run(ThompsonSampling(half_life=100), env, 2_000, 100)
    lag = with_hl.adaptation_lag(path=0, since=1_000)
    assert lag <= 150, lag
    without = run(ThompsonSampling(), env, 2_000, 100)
    assert without.adaptation_lag(path=0, since=1_000) > 2 * lag
    assert with_hl.first_success[1_200:].mean() > static.first_success[1_200:].mean() + 0.4


def test_recovery_is_noticed_thanks_to_the_exploration_floor() -> None:
    env = recovery([0.9, 0.6], path=0, down_at=500, up_at=1_500, low=0.1)
    res = run(ThompsonSampling(half_life=100), env, 3_000, 100)
    assert res.share[900:1_500, 0].mean() < 0.1  # abandoned while broken
    assert res.share[-500:, 0].mean() > 0.8  # and back once it works again


def test_delayed_feedback_delays_learning() -> None:
    d = 50
    env = stationary(THREE, delay=d)
    res = run(ThompsonSampling(explore=0.0), env, 2_000, 200, fallback=False)
    # Nothing is visible for the first d requests: every path is as likely as any other.
    np.testing.assert_allclose(res.share[:d].mean(axis=0), 1 / 3, atol=0.03)
    assert res.share[-300:, 0].mean() > 0.85  # it learns all the same
    now = run(ThompsonSampling(explore=0.0), stationary(THREE), 2_000, 200, fallback=False)
    assert res.final_regret.mean() > now.final_regret.mean()


# -- measures ---------------------------------------------------------------------------------


def test_fallback_rate_cost_and_latency_are_counted_per_attempt() -> None:
    env = stationary(
        [0.0, 1.0],
        cost_usd=[0.01, 0.002],
        latency_ms=[1000.0, 200.0],
    )
    res = run(StaticOrder([0, 1]), env, 100, 3)
    assert np.all(res.first_success_rate == 0.0)
    assert np.all(res.request_success_rate == 1.0)
    assert np.all(res.fallback_rate == 1.0)
    assert np.all(res.attempts_per_request == 2.0)
    np.testing.assert_allclose(res.cost_per_1k, 12.0)  # (0.01 + 0.002) × 1000
    np.testing.assert_allclose(res.latency_ms, 1200.0)

    broken = stationary([0.0, 0.0], cost_usd=[0.01, 0.002], final=FinalPath("cache", 5.0, 0.001))
    res = run(StaticOrder(), broken, 100, 3)
    assert np.all(res.request_success_rate == 0.0)
    assert np.all(res.final_fallback_rate == 1.0)
    np.testing.assert_allclose(res.cost_per_1k, 13.0)

    one_shot = run(StaticOrder([0, 1]), env, 100, 3, fallback=False)  # choose/report: no chain
    assert np.all(one_shot.attempts_per_request == 1.0)
    assert np.all(one_shot.request_success_rate == 0.0)


def test_rate_schedules() -> None:
    tab = drift([0.9, 0.5], path=0, start=10, end=19, to=0.4).rate_table(30)
    assert tab[9, 0] == pytest.approx(0.9)
    assert tab[14, 0] == pytest.approx(0.9 - 0.5 * 5 / 10)
    assert tab[19, 0] == pytest.approx(0.4) and tab[29, 0] == pytest.approx(0.4)
    assert np.all(tab[:, 1] == 0.5)
    tab = recovery([0.9, 0.5], path=0, down_at=5, up_at=8, low=0.2).rate_table(10)
    assert tab[:, 0].tolist() == pytest.approx([0.9] * 5 + [0.2] * 3 + [0.9] * 2)
    with pytest.raises(ValueError, match="rates"):
        stationary([1.2, 0.5])
    with pytest.raises(ValueError, match="delay"):
        stationary([0.5], delay=-1)


def test_lai_robbins_bound_hand_computed() -> None:
    # KL(0.4 ‖ 0.5) = 0.4 ln 0.8 + 0.6 ln 1.2 = 0.0201355...; two suboptimal arms, gap 0.1.
    kl = 0.4 * math.log(0.8) + 0.6 * math.log(1.2)
    assert float(bernoulli_kl(0.4, 0.5)) == pytest.approx(kl)
    assert lai_robbins_constant([0.5, 0.4, 0.4]) == pytest.approx(2 * 0.1 / kl)
    assert float(lai_robbins_bound([0.5, 0.4, 0.4], 1_000)) == pytest.approx(68.6126555609585)
    assert lai_robbins_constant([0.5, 0.5]) == 0.0  # ties cost nothing
    assert lai_robbins_constant([1.0, 0.5]) == 0.0  # a perfect arm is found in finite time
    np.testing.assert_allclose(lai_robbins_bound([0.5, 0.4], [1, math.e]), [0.0, 0.1 / kl])


# -- reproducibility --------------------------------------------------------------------------


def test_same_seed_same_arrays_other_seed_other_arrays() -> None:
    env = abrupt(THREE, 0, 200, 0.2, delay=3, cost_usd=[0.01, 0.0, 0.0])
    a = run(ThompsonSampling(half_life=50), env, 500, 20, seed=5, trace=True)
    b = run(ThompsonSampling(half_life=50), env, 500, 20, seed=5, trace=True)
    c = run(ThompsonSampling(half_life=50), env, 500, 20, seed=6, trace=True)
    for name in (
        "regret",
        "share",
        "first_success",
        "cost_per_1k",
        "trace_first",
        "trace_outcomes",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert not np.array_equal(a.trace_first, c.trace_first)


def test_policies_face_the_same_outcomes() -> None:
    env = stationary(THREE)
    res = compare({"ts": ThompsonSampling(), "ucb": UCB1()}, env, 300, 4, seed=3, trace=True)
    np.testing.assert_array_equal(res["ts"].trace_outcomes, res["ucb"].trace_outcomes)
    _, env_rng = rngs(3)
    np.testing.assert_array_equal(outcome_table(env, 300, 4, env_rng), res["ts"].trace_outcomes)


@pytest.mark.parametrize(
    "policy", [StaticOrder([2, 0, 1]), UniformRandom(), EpsilonGreedy(0.3), UCB1()], ids=repr
)
def test_baselines_rank_batches_and_drive_a_live_router(policy: Policy) -> None:
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, (7, 3)).astype(float)
    order = policy.rank(s, s[::-1].copy(), rng)
    assert order.shape == (7, 3)
    assert np.all(np.sort(order, axis=-1) == np.arange(3))
    # The same object works behind the Router (1-D arrays, one request at a time).
    with Router(
        [RoutePath(lambda: "ok", name=n) for n in "ABC"],
        success_fn=bool,
        task="t",
        store="memory://",
        policy=policy,
    ) as router:
        assert router.run() == "ok"


def test_ucb1_tries_every_path_once_first() -> None:
    res = run(UCB1(), stationary(THREE), 3, 10, fallback=False, trace=True)
    assert res.trace_first is not None
    assert np.all(np.sort(res.trace_first, axis=0) == np.arange(3)[:, None])


# -- the simulator and the live Router choose alike -------------------------------------------


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def generator(kind: str, seed: int) -> np.random.Generator:
    """The Router's default generator (PCG64), or the SFC64 the compiled engine reproduces."""
    if kind == "pcg64":
        return np.random.default_rng(seed)
    return np.random.Generator(np.random.SFC64(seed))


@pytest.mark.parametrize(("kind", "engine"), [("pcg64", "numpy"), ("sfc64", "numba")])
@pytest.mark.parametrize(
    ("half_life", "explore", "final"),
    [(None, 0.02, True), (40.0, 0.1, False), (None, 0.0, False)],
)
def test_simulator_and_router_pick_the_same_paths(
    half_life: float | None,
    explore: float,
    final: bool,
    kind: str,
    engine: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR)  # every fallback is logged at WARNING
    steps, seed, k = 400, 1234, 3
    env = stationary([0.7, 0.5, 0.6], final=FinalPath() if final else None)
    clock = ManualClock()
    drawn = outcome_table(env, steps, 1, rngs(9)[1])[:, 0, :]
    step = 0
    calls: list[int] = []

    def path(i: int) -> RoutePath:
        def call() -> str | None:
            calls.append(i)
            return "ok" if drawn[step, i] else None

        return RoutePath(call, name="ABC"[i])

    router = Router(
        [path(i) for i in range(k)],
        success_fn=lambda r: r is not None,
        task="crosscheck",
        store="memory://",
        fallback=(lambda: "cached") if final else None,
        half_life=half_life,
        explore=explore,
        seed=generator(kind, seed),
        clock=clock,
        # A router-wide retry policy is seeded with one draw from the router's generator
        # at construction, which would shift the routing stream by one draw; the simulator
        # models one Bernoulli draw per attempt, without retries, anyway.
        retry=None,
    )
    live_first = []
    for step in range(steps):  # noqa: B007 - the paths read `step`
        calls.clear()
        with contextlib.suppress(AllPathsFailed):
            router.run()
        live_first.append(calls[0])
        clock.now += 1.0
    router.close()

    # The very policy object the Router runs, the Router's seed, the same outcomes.
    sim = simulate(
        router.policy,
        env,
        steps,
        1,
        rng=generator(kind, seed),
        env_rng=rngs(9)[1],
        trace=True,
        engine=engine,  # type: ignore[arg-type]
    )
    assert sim.engine == engine
    assert sim.trace_first is not None
    assert live_first == sim.trace_first[:, 0].tolist()
    assert len(set(live_first)) == k  # not trivially one path


def test_simulator_matches_choose_and_late_report(caplog: pytest.LogCaptureFixture) -> None:
    # Delayed feedback: the caller reports each decision `delay` requests later.
    caplog.set_level(logging.ERROR)
    steps, seed, delay = 300, 77, 5
    env = stationary([0.8, 0.4, 0.6], delay=delay)
    drawn = outcome_table(env, steps, 1, rngs(2)[1])[:, 0, :]
    clock = ManualClock()
    names = ["A", "B", "C"]
    router = Router(
        [RoutePath(lambda: None, name=n) for n in names],
        success_fn=bool,
        task="delayed",
        store="memory://",
        half_life=30.0,
        seed=seed,
        clock=clock,
        retry=None,  # see test_simulator_and_router_pick_the_same_paths
    )
    pending: list[tuple[str, int, int]] = []
    live_first = []
    for t in range(steps):
        decision = router.choose()
        i = names.index(decision.path)
        live_first.append(i)
        pending.append((decision.request_id, i, t))
        if t >= delay:
            rid, j, at = pending.pop(0)
            router.report(rid, success=bool(drawn[at, j]))
        clock.now += 1.0
    router.close()

    sim = simulate(
        router.policy,
        env,
        steps,
        1,
        rng=np.random.default_rng(seed),
        env_rng=rngs(2)[1],
        fallback=False,
        trace=True,
    )
    assert sim.trace_first is not None
    assert live_first == sim.trace_first[:, 0].tolist()


# -- the experiments run end to end at CI size ------------------------------------------------


@pytest.mark.parametrize("name", ["chapelle_li", "degradation", "half_life_sweep", "peers"])
def test_experiments_quick(name: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from simulations import EXPERIMENTS

    md = EXPERIMENTS[name](quick=True, out=tmp_path, horizon=400 if name == "peers" else None)
    assert md.exists() and md.with_suffix(".png").stat().st_size > 10_000
    text = md.read_text()
    assert "|" in text and md.with_suffix(".png").name in text
