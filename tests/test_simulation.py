"""The offline simulator: known bandit behaviour, determinism, agreement with the live Router."""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adaptive_router import AllPathsFailed, Router, ThompsonSampling
from adaptive_router import Path as RoutePath
from adaptive_router.policy import Policy
from adaptive_router.simulation import (
    UCB1,
    Change,
    Environment,
    EpsilonGreedy,
    FinalPath,
    Oracle,
    SimulationResult,
    StaticOrder,
    UniformRandom,
    abrupt,
    adaptation_lag,
    adaptation_lags,
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
from adaptive_router.simulation.experiments import peers as peers_mod

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


@dataclass(frozen=True)
class Case:
    """One identity check: a world, the policy's settings, the Router's set-up."""

    env: Environment
    half_life: float | None
    explore: float
    kind: str = "pcg64"  # the generator: "pcg64" drives the numpy engine, "sfc64" numba
    store: str = "memory://"
    default_retry: bool = True  # the Router's own retry policy, transient errors included
    steps: int = 400
    seed: int = 1234


#: Path A falls from 0.7 to 0.2 at request 150, C climbs from 0.6 to 0.9 at 260.
CHANGING = Environment(
    (0.7, 0.5, 0.6), changes=(Change(0, 150, 0.2), Change(2, 260, 0.9)), final=FinalPath()
)
STATIONARY = stationary([0.7, 0.5, 0.6])


def live_and_simulated(case: Case) -> tuple[list[list[int]], list[list[int]]]:
    """Every request's whole ranked order from a live Router and from the simulator.

    The Router serves ``case.steps`` requests through ``run()`` on outcomes drawn by the
    simulator's environment stream, its clock advancing one second per request; the
    simulator runs a ``ThompsonSampling`` built from the case (not the Router's own
    object, so that a change confined to the Router shows). With ``default_retry`` some
    attempts first raise a transient ``ConnectionError`` that the Router's default retry
    policy retries (its jitter is recorded instead of slept); the attempt's outcome is
    the drawn one either way, as the simulator models an attempt. With a SQL store the
    cache is reloaded from the database after every request, so the SQL decay arithmetic
    drives the ranking.
    """
    env, k = case.env, case.env.n_paths
    clock = ManualClock()
    drawn = outcome_table(env, case.steps, 1, rngs(9)[1])[:, 0, :]
    transient = np.random.default_rng(5).random((case.steps, k)) < 0.05
    step = 0
    calls: list[int] = []
    raised: set[tuple[int, int]] = set()

    def path(i: int) -> RoutePath:
        def call() -> str | None:
            calls.append(i)
            if case.default_retry and transient[step, i] and (step, i) not in raised:
                raised.add((step, i))
                raise ConnectionError("transient")
            return "ok" if drawn[step, i] else None

        return RoutePath(call, name="ABC"[i])

    seed: int | np.random.Generator = (
        case.seed if case.kind == "pcg64" else generator(case.kind, case.seed)
    )
    extra: dict[str, Any] = {} if case.default_retry else {"retry": None}
    router = Router(
        [path(i) for i in range(k)],
        success_fn=lambda r: r is not None,
        task="crosscheck",
        store=case.store,
        fallback=(lambda: "cached") if env.final is not None else None,
        half_life=case.half_life,
        explore=case.explore,
        seed=seed,
        clock=clock,
        durability="sync",
        **extra,
    )
    waits: list[float] = []
    if case.default_retry:
        retry = router.path_settings["A"].retry
        assert retry is not None and type(retry.wait).__name__ == "FullJitter"
        retry._sleep = waits.append  # record the jitter instead of sleeping it
    live: list[list[int]] = []
    rank = router.ranking.rank

    def recording_rank(now: float, context: str = "") -> list[RoutePath]:
        order = rank(now, context)
        live.append(["ABC".index(p.name) for p in order if p.name in ("A", "B", "C")])
        return order

    router.ranking.rank = recording_rank  # type: ignore[method-assign]
    try:
        for step in range(case.steps):  # the paths read `step`
            calls.clear()
            with contextlib.suppress(AllPathsFailed):
                router.run()
            # The Router walked its order until a path succeeded.
            walked = [c for i, c in enumerate(calls) if i == 0 or c != calls[i - 1]]
            ok_at = [j for j in live[-1] if drawn[step, j]]
            expect = live[-1][: live[-1].index(ok_at[0]) + 1] if ok_at else live[-1]
            assert walked == expect, (step, walked, expect)
            clock.now += 1.0
            if not case.store.startswith("memory"):
                router.refresh()
    finally:
        router.close()
    if case.default_retry:
        assert len(waits) == len(raised) > 0  # the default retry policy did retry

    sim = simulate(
        ThompsonSampling(half_life=case.half_life, explore=case.explore),
        env,
        case.steps,
        1,
        rng=generator(case.kind, case.seed),
        env_rng=rngs(9)[1],
        trace=True,
        engine="numpy" if case.kind == "pcg64" else "numba",
    )
    assert sim.trace_order is not None
    return live, sim.trace_order[:, 0, :].tolist()


def assert_identical(case: Case) -> None:
    live, sim = live_and_simulated(case)
    assert len(live) == len(sim) == case.steps
    mismatch = [t for t in range(case.steps) if live[t] != sim[t]]
    assert not mismatch, f"first different order at request {mismatch[0]}: {len(mismatch)} differ"
    assert len({o[0] for o in live}) == case.env.n_paths  # not trivially one path


CASES = {
    "stationary-no-retry": Case(STATIONARY, None, 0.02, default_retry=False),
    "stationary-half-life-numba": Case(STATIONARY, 40.0, 0.1, kind="sfc64"),
    "pure": Case(STATIONARY, None, 0.0),
    "change-points-half-life": Case(CHANGING, 25.0, 0.02),
    "change-points-half-life-numba": Case(CHANGING, 25.0, 0.02, kind="sfc64"),
    "change-points-no-half-life": Case(CHANGING, None, 0.05, kind="sfc64"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_simulator_and_router_rank_alike(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)  # every fallback is logged at WARNING
    assert_identical(CASES[name])


@pytest.mark.parametrize("kind", ["pcg64", "sfc64"])
def test_simulator_and_router_rank_alike_on_sql_stores(
    kind: str, sql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    assert_identical(Case(CHANGING, 25.0, 0.02, kind=kind, store=sql_url, steps=300))


# -- the identity check catches what it should ------------------------------------------------


def _decay_one_step_early(monkeypatch: pytest.MonkeyPatch) -> None:
    from adaptive_router.router.ranking import Ranking

    evidence = Ranking.evidence

    def early(self: Ranking, now: float, context: str = "", after: bool = False) -> Any:
        return evidence(self, now + 1.0, context, after)

    monkeypatch.setattr(Ranking, "evidence", early)


def _doubled_half_life(monkeypatch: pytest.MonkeyPatch) -> None:
    # Everywhere the router's in-process cache decays evidence: reading it (the recorder
    # decays each path's weights to now) and folding outcomes into it.
    import adaptive_router.router.recorder as recorder_module

    decay = recorder_module.decay_factor

    def doubled(elapsed: float, half_life: float | None) -> float:
        return decay(elapsed, None if half_life is None else 2 * half_life)

    monkeypatch.setattr(recorder_module, "decay_factor", doubled)
    fold = recorder_module.fold_evidence

    def fold_doubled(ev: Any, o: Any, half_life: float | None) -> None:
        fold(ev, o, None if half_life is None else 2 * half_life)

    monkeypatch.setattr(recorder_module, "fold_evidence", fold_doubled)


def _no_exploration_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    import adaptive_router.router.settings as settings_module

    def without_floor(
        prior: tuple[float, float] = (1.0, 1.0),
        half_life: float | None = None,
        explore: float = 0.02,
    ) -> ThompsonSampling:
        return ThompsonSampling(prior, half_life, 0.0)

    monkeypatch.setattr(settings_module, "ThompsonSampling", without_floor)


def _routing_draw_for_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # The old bug: the default retry policy seeded from one draw of the routing generator.
    # (now: any draw from the routing generator while the router is being built)
    from adaptive_router.router.ranking import Ranking

    init = Ranking.__init__

    def seeded_from_rng(self: Ranking, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.rng.random()

    monkeypatch.setattr(Ranking, "__init__", seeded_from_rng)


def _after_failure_folded_into_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # The old bias: every attempt folded into one posterior, first attempts and attempts
    # made after another path failed alike.
    import adaptive_router.stores.memory as memory_module
    from adaptive_router.stores.base import fold_outcome

    def mixed(ev: Any, o: Any, half_life: float | None) -> None:
        fold_outcome(ev.first, o, half_life)

    monkeypatch.setattr(memory_module, "fold_evidence", mixed)


MUTATIONS = {
    "after-failure attempts folded into first-attempt evidence": _after_failure_folded_into_first,
    "decay one step early": _decay_one_step_early,
    "doubled half-life": _doubled_half_life,
    "no exploration floor": _no_exploration_floor,
    "retry policy draws from the routing generator": _routing_draw_for_retries,
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
@pytest.mark.parametrize("name", ["change-points-half-life", "change-points-half-life-numba"])
def test_the_identity_check_catches_mutations_of_the_router(
    mutation: str, name: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    MUTATIONS[mutation](monkeypatch)
    with pytest.raises(AssertionError, match="first different order"):
        assert_identical(CASES[name])


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


@pytest.mark.parametrize(
    "name", ["chapelle_li", "cost_aware", "degradation", "half_life_sweep", "peers"]
)
def test_experiments_quick(name: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from adaptive_router.simulation.experiments import EXPERIMENTS

    md = EXPERIMENTS[name](quick=True, out=tmp_path, horizon=400 if name == "peers" else None)
    assert md.exists() and md.with_suffix(".png").stat().st_size > 10_000
    text = md.read_text()
    assert "|" in text and md.with_suffix(".png").name in text
    for phrase in SAYS[name]:
        if phrase.startswith("MABWiser") and not peers_mod.mabwiser_available():
            continue  # an optional extra ([peers]); its row is left out without it
        assert phrase in text, phrase


#: What each experiment's page must say: what is measured, like for like, out of sample.
SAYS = {
    "chapelle_li": ["default − pure, paired over the", "naive 0.02 × (K−1)/K × ε × T"],
    "cost_aware": [
        "### (i) two paths nearly as good",
        "### (iv) the cost order flips",
        "best fixed order for cost in hindsight",
        "LiteLLM blend 0.7·θ + 0.3·(1 − price)",
        "regret $ (vs c/p oracle)",
        "## Where a fixed order does as well",
        "(iv) router ÷ best fixed order in hindsight",
    ],
    "degradation": [
        "fixed: large → small → rules",
        "fixed: small → rules → large",
        "fixed: rules → small → large",
        "optimizes",
        "Out of sample",
        "best grid half-life in hindsight",
        "mean of per-run lags",
        "lag of the mean curve",
    ],
    "half_life_sweep": [
        "### wide gap",
        "### close paths",
        "### mild drop",
        "bootstrap",
        "mean of per-run lags",
        "√(requests between incidents)",
        " ± ",
    ],
    "peers": [
        "`policy.rank` + evidence update, per request",
        "live Router `choose` + `report`, per request",
        "MABWiser: `predict` + `partial_fit`, per request",
        "batched simulator, environment draws included",
    ],
}


def test_adaptation_lags_per_run_differ_from_the_lag_of_the_mean_curve() -> None:
    # Run 0 leaves path 0 at once; run 1 keeps giving it 1 request in 5 until step 60.
    first = np.ones((100, 2), dtype=np.intp)
    first[:60:5, 1] = 0
    lags = adaptation_lags(first, path=0, since=0)
    assert lags.tolist() == [0.0, 56.0]
    share = (first == 0).mean(axis=1)
    # The averaged curve sits at 10% (not under it) while run 1 is still exploring.
    assert adaptation_lag(share, since=0) == 51.0
    assert lags.mean() == 28.0
    never = adaptation_lags(np.zeros((50, 1), dtype=np.intp), path=0, since=0)
    assert never.tolist() == [math.inf]


def test_trace_order_is_the_whole_ranked_chain() -> None:
    res = run(StaticOrder([2, 0, 1]), stationary(THREE), 5, 3, trace=True)
    assert res.trace_order is not None and res.trace_first is not None
    assert res.trace_order.shape == (5, 3, 3)
    assert np.all(res.trace_order == np.array([2, 0, 1]))
    assert np.all(res.trace_first == 2)


def test_half_life_rule_grows_with_the_square_root_of_the_incident_interval() -> None:
    from adaptive_router.simulation.experiments.half_life_sweep import RULE_C, recommended_half_life

    assert recommended_half_life(10_000) == pytest.approx(RULE_C * 100, rel=0.05)
    assert recommended_half_life(40_000) == pytest.approx(2 * recommended_half_life(10_000), 0.05)
