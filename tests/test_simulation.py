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

from adaptive_router import (
    AllPathsFailed,
    Learning,
    Persistence,
    Resilience,
    Router,
    ThompsonSampling,
)
from adaptive_router import Path as RoutePath
from adaptive_router.policies.thompson import Policy
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
    # 2,000 requests after the drop: a lag is only confirmed with 1,000 requests after it.
    env = abrupt([0.95, 0.85, 0.6], path=0, at=1_000, to=0.3)
    static = run(StaticOrder([0, 1, 2]), env, 3_000, 100)
    assert math.isinf(static.adaptation_lag(path=0, since=1_000))
    assert np.all(static.share[:, 0] == 1.0)

    with_hl = run(ThompsonSampling(half_life=100), env, 3_000, 100)
    lag = with_hl.adaptation_lag(path=0, since=1_000)
    assert lag <= 150, lag
    without = run(ThompsonSampling(), env, 3_000, 100)
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
        learning=Learning(policy=policy),
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
    """Every request's walk (its learned paths in the order tried, until one succeeded)
    from a live Router and from the simulator: the paths after the first are drawn only
    when the first attempt failed, so nothing after a success was ever ranked.

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
    resilience = Resilience() if case.default_retry else Resilience(retry=None)
    router = Router(
        [path(i) for i in range(k)],
        success_fn=lambda r: r is not None,
        task="crosscheck",
        store=case.store,
        fallback=(lambda: "cached") if env.final is not None else None,
        half_life=case.half_life,
        resilience=resilience,
        learning=Learning(explore=case.explore, seed=seed, clock=clock),
        persistence=Persistence(durability="sync"),
    )
    waits: list[float] = []
    if case.default_retry:
        retry = router.path_settings["A"].retry
        assert retry is not None and type(retry.wait).__name__ == "FullJitter"
        retry._sleep = waits.append  # record the jitter instead of sleeping it
    live: list[list[int]] = []
    try:
        for step in range(case.steps):  # noqa: B007 (the paths read `step`)
            calls.clear()
            with contextlib.suppress(AllPathsFailed):
                router.run()
            # The learned paths the Router walked until one succeeded (a retry calls its
            # path again; the final fallback is not among them).
            live.append([c for i, c in enumerate(calls) if i == 0 or c != calls[i - 1]])
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
    assert sim.trace_order is not None and sim.trace_outcomes is not None
    np.testing.assert_array_equal(sim.trace_outcomes[:, 0, :], drawn)
    walked = []
    for order, ok in zip(sim.trace_order[:, 0, :].tolist(), drawn.tolist(), strict=True):
        at = next((n for n, j in enumerate(order) if ok[j]), len(order) - 1)
        walked.append(order[: at + 1])
    return live, walked


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
        learning=Learning(seed=seed, clock=clock),
        resilience=Resilience(retry=None),  # see test_simulator_and_router_pick_the_same_paths
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
        "router − blend, paired",
        "the floor's cost, paired",
        "router, objective cost, no exploration floor",
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
        "the runs that never did are counted, not averaged in",
    ],
    "half_life_sweep": [
        "### wide gap",
        "### close paths",
        "### mild drop",
        "bootstrap",
        "lag (not adapted)",
        "the drop after N calm requests",
        "√(requests between incidents)",
        "## The √N scaling out of sample",
        "within the best's interval",
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
    # Run 0 leaves path 0 at once; run 1 keeps giving it 1 request in 4 until step 600.
    first = np.ones((2_000, 2), dtype=np.intp)
    first[:600:4, 1] = 0
    lags = adaptation_lags(first, path=0, since=0)
    # From 561 on, run 1's share is 9 of the next 100 (564, 568, ..., 596) and falls after;
    # from 560 it is 10 of 100, not under 10%.
    assert lags.tolist() == [0.0, 561.0]
    share = (first == 0).mean(axis=1)
    # The averaged curve is at 12.5% while run 1 explores: under 10% over [s, s + 100) once
    # fewer than 20 of run 1's requests remain in it, i.e. from 521 (19 of them: 9.5%; from
    # 520, 20 of them: exactly 10%, not under).
    assert adaptation_lag(share, since=0) == 521.0
    assert lags.mean() == 280.5
    never = adaptation_lags(np.zeros((1_500, 1), dtype=np.intp), path=0, since=0)
    assert never.tolist() == [math.inf]


def _old_lags(first: np.ndarray, path: int, window: int = 10) -> np.ndarray:
    """The per-run lag the simulator used before: the start of the first ``window``
    requests in which ``path`` led fewer than 10% (with 10, none) of them."""
    on = (first == path).astype(float)
    csum = np.concatenate([np.zeros((1, on.shape[1])), np.cumsum(on, axis=0)])
    below = (csum[window:] - csum[:-window]) / window < 0.10
    return np.where(below.any(axis=0), np.argmax(below, axis=0), math.inf)


def test_adaptation_lag_is_not_met_by_chance() -> None:
    rng = np.random.default_rng(24)
    steps = 7_000
    first = np.ones((steps, 3), dtype=np.intp)
    # Run 0 never adapts: path 0 leads a third of its requests at random, to the end.
    first[:, 0] = np.where(rng.random(steps) < 0.32, 0, 1)
    # Run 1 never adapts either, in bursts: 300 requests on path 0, 700 off, repeated (30%).
    first[:, 1] = np.where(np.arange(steps) % 1_000 < 300, 0, 1)
    # Run 2 adapts at 500: path 0 first on every request before, on 1 in 50 after (2%).
    first[:500, 2] = 0
    first[500::50, 2] = 0
    old = _old_lags(first, path=0)
    assert old[0] < 500 and old[1] == 300.0  # both scored as adapted by the old definition
    new = adaptation_lags(first, path=0, since=0)
    assert math.isinf(new[0]) and math.isinf(new[1])
    # From 493: 7 more on path 0 (493-499), then 500 and 550: 9 of the next 100, and less
    # over every longer span; from 492 it would be 10 of 100.
    assert new[2] == 493.0
    # Rolling windows alone (100 windows of 100 in a row under 10%) pass run 1 too.
    csum = np.concatenate([np.zeros(1), np.cumsum(first[:, 1] == 0)])
    under = (csum[100:] - csum[:-100]) / 100 < 0.10
    assert any(under[s : s + 100].all() for s in range(under.size - 100))


def test_adaptation_lag_of_a_share_curve_and_bad_arguments() -> None:
    # Half the traffic, then 15% for 300 requests, then 2%: the share over [s, s + 100) falls
    # under 10% at s = 539 (61 × 0.15 + 39 × 0.02 = 9.93 of 100; at 538, 10.06).
    share = np.r_[np.full(300, 0.5), np.full(300, 0.15), np.full(1_400, 0.02)]
    assert adaptation_lag(share, since=0) == 539.0
    assert adaptation_lag(share, since=100) == 439.0
    # A dip under 10% that does not last is not adaptation.
    dip = np.r_[np.full(200, 0.5), np.full(150, 0.0), np.full(2_000, 0.3)]
    assert math.isinf(adaptation_lag(dip, since=0))
    # Too short to watch for LAG_HOLD requests after the lag.
    assert math.isinf(adaptation_lag(np.zeros(999), since=0))
    assert adaptation_lag(np.zeros(1_000), since=0) == 0.0
    with pytest.raises(ValueError, match="threshold"):
        adaptation_lag(share, since=0, threshold=0.0)
    with pytest.raises(ValueError, match="hold >= window"):
        adaptation_lags(np.zeros((10, 1), dtype=np.intp), path=0, since=0, window=100, hold=50)


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


def test_half_life_rule_fit_recovers_sqrt_n_and_predicts_out_of_sample() -> None:
    """The sweep's fitting code on synthetic regret curves with a known optimum: steady
    rate a/h plus one drop's cost b·h every N requests is lowest at h* = √(a·N / (1000 b))."""
    from adaptive_router.simulation.experiments.half_life_sweep import (
        HALF_LIVES,
        Verdict,
        fit_exponent,
        fit_rule,
        refine_best,
    )

    grid = [h for h in HALF_LIVES if h is not None]
    rng = np.random.default_rng(7)

    def per_1k(h: float, n: int, a: float, b: float, power: float = 1.0) -> float:
        return a / h**power + b * h / n * 1000

    def best(n: int, a: float, b: float, power: float = 1.0) -> float:
        noisy = [per_1k(h, n, a, b, power) * (1 + 0.01 * rng.standard_normal()) for h in grid]
        return refine_best(grid, noisy)

    a, b = 2_000.0, 0.3  # 20 per 1,000 at h = 100; a drop costs 120 at h = 400
    true_c = math.sqrt(a / (1000 * b))  # 2.58
    c_fit = fit_rule([(n, best(n, a, b)) for n in (2_000, 10_000)])
    assert c_fit == pytest.approx(true_c, rel=0.15)
    assert fit_exponent({"w": [(n, best(n, a, b)) for n in (2_000, 10_000, 50_000)]}) == (
        pytest.approx(0.5, abs=0.1)
    )
    # Out of sample: the rule fitted on 2,000 and 10,000 predicts for 50,000.
    n_test = 50_000
    predicted = c_fit * math.sqrt(n_test)
    optimum = true_c * math.sqrt(n_test)
    verdict = Verdict(
        predicted=predicted,
        regret=per_1k(predicted, n_test, a, b),
        best=optimum,
        best_regret=per_1k(optimum, n_test, a, b),
        best_ci=0.02 * per_1k(optimum, n_test, a, b),
    )
    assert verdict.within
    # A rule off by 4× is not within 2% of the best.
    far = Verdict(4 * optimum, per_1k(4 * optimum, n_test, a, b), optimum, verdict.best_regret, 0.1)
    assert not far.within
    # A steady rate falling as a/h² moves the optimum as N^(1/3): the fit sees it is not √N.
    cube = {"w": [(n, best(n, 2e5, b, power=2.0)) for n in (2_000, 10_000, 50_000)]}
    assert fit_exponent(cube) == pytest.approx(1 / 3, abs=0.08)


def test_refine_best_interpolates_between_grid_points() -> None:
    from adaptive_router.simulation.experiments.half_life_sweep import refine_best

    grid = [100.0, 200.0, 400.0, 800.0, 1600.0]
    # Exactly quadratic in log(h) with its vertex at 300: recovered exactly.
    assert refine_best(grid, [(math.log(h / 300)) ** 2 for h in grid]) == pytest.approx(300)
    # The lowest point at an edge of the grid, or no upward curvature: the grid point itself.
    assert refine_best(grid, [1.0, 2.0, 3.0, 4.0, 5.0]) == 100.0
    # Lopsided: the vertex leans towards the lower neighbour and stays between the two.
    lopsided = refine_best(grid, [5.0, 4.0, 1.0, 3.0, 4.0])
    assert 400.0 < lopsided < 800.0
    with pytest.raises(ValueError, match="increasing"):
        refine_best([200.0, 100.0], [1.0, 2.0])


def test_cost_aware_gaps_are_paired_over_runs() -> None:
    from adaptive_router.simulation.experiments.cost_aware import Row, paired_gap

    def row(cost: list[float]) -> Row:
        c = np.asarray(cost)
        return Row(cost_after=c, cost_total=c, seconds_total=c, first_success=c, latency_ms=c)

    # Run-to-run spread is large but the difference is the same in every run: paired, the
    # interval is 0; unpaired it would be about ±1.
    a, b = row([1.0, 2.0, 3.0, 4.0]), row([0.9, 1.9, 2.9, 3.9])
    gap = paired_gap(a, b)
    assert gap.mean == pytest.approx(0.1)
    assert gap.ci == pytest.approx(0.0, abs=1e-12)
    assert gap.relative == pytest.approx(2.5 / 2.4 - 1)
    assert gap.text() == "+$0.100 ± 0.000" and gap.percent() == "+4.2%"
    assert paired_gap(b, a).text() == "−$0.100 ± 0.000"
