"""Cost- and latency-aware ranking: the decision math, its evidence and the simulator."""

from __future__ import annotations

import copy
import math
import pathlib
from typing import Any

import numpy as np
import pytest

from adaptive_router import ThompsonSampling
from adaptive_router.errors import ConfigurationError
from adaptive_router.migrations import upgrade
from adaptive_router.outcomes import Outcome
from adaptive_router.policies.objectives import (
    Objective,
    ObjectiveThompsonSampling,
    expected_costs,
    resolve_objective,
)
from adaptive_router.policies.propensity import first_choice_probabilities
from adaptive_router.policies.thompson import decay_factor
from adaptive_router.simulation import (
    BlendedScore,
    Environment,
    FinalPath,
    RatioOracle,
    SimulationResult,
    all_fixed_orders,
    quality_first,
    rngs,
    simulate,
    stationary,
)
from adaptive_router.stores import MemoryStore, SQLStore

# -- objectives and their bad input ---------------------------------------------------------


def test_named_objectives_resolve() -> None:
    assert resolve_objective(None).ranks_by_success
    assert resolve_objective("success").ranks_by_success
    cost = resolve_objective("cost")
    assert (cost.cost_weight, cost.usd_per_second) == (1.0, 0.0)
    lat = resolve_objective("latency")
    assert (lat.cost_weight, lat.usd_per_second) == (0.0, 1.0)
    mine = Objective(cost_weight=1.0, usd_per_second=0.01)
    assert resolve_objective(mine) is mine


@pytest.mark.parametrize(
    ("make", "names"),
    [
        (lambda: resolve_objective("cheapest"), ["objective", "'cheapest'", "'cost'"]),
        (lambda: resolve_objective(3), ["objective", "int"]),
        (lambda: Objective(cost_weight=-1.0), ["cost_weight", "-1.0"]),
        (lambda: Objective(usd_per_second=math.nan), ["usd_per_second", "nan"]),
        (lambda: Objective(success_value_usd=-0.5), ["success_value_usd"]),
        (lambda: ObjectiveThompsonSampling(objective="fast"), ["objective", "'fast'"]),
        (lambda: expected_costs([None, 1.0], [-0.1, None]), ["expected cost", "-0.1"]),
        (
            lambda: expected_costs([None], [math.nan, 1.0], parameter="expected_latency_ms"),
            ["expected_latency_ms", "2 priors for 1 paths"],
        ),
        (lambda: expected_costs([None, 1.0], [math.inf, None]), ["expected cost", "inf"]),
    ],
)
def test_bad_input_names_the_parameter(make: Any, names: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        make()
    for n in names:
        assert n in str(info.value)


def test_expected_costs_learned_then_prior_then_mean_of_known_then_equal() -> None:
    est = expected_costs([0.002, None, None], [None, 0.05, None])
    assert est.tolist() == pytest.approx([0.002, 0.05, (0.002 + 0.05) / 2])
    # A learned mean wins over the prior.
    assert expected_costs([0.003, None], [0.5, None]).tolist() == [0.003, 0.003]
    # Nothing known: all equal, the ranking falls back to success order.
    assert expected_costs([None, None, None]).tolist() == [1.0, 1.0, 1.0]
    batch = expected_costs(np.array([[np.nan, 2.0], [np.nan, np.nan]]))
    assert batch.tolist() == [[2.0, 2.0], [1.0, 1.0]]


# -- the same draws as ThompsonSampling ------------------------------------------------------


def _evidence(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    return g.uniform(0, 30, shape), g.uniform(0, 30, shape)


@pytest.mark.parametrize("shape", [(4,), (64, 4), (8, 5, 3)])
def test_success_objective_is_bit_identical_to_thompson_sampling(shape: tuple[int, ...]) -> None:
    s, f = _evidence(1, shape)
    ts = ThompsonSampling(explore=0.3)
    ots = ObjectiveThompsonSampling(explore=0.3, objective="success")
    costs = np.full(shape, 0.01)
    for seed in range(30):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        assert np.array_equal(ts.rank(s, f, a), ots.rank(s, f, b, costs=costs))
        assert a.bit_generator.state == b.bit_generator.state


@pytest.mark.parametrize("shape", [(4,), (200, 4)])
def test_cost_objective_ranks_the_same_theta_by_cost_over_theta(shape: tuple[int, ...]) -> None:
    s, f = _evidence(2, shape)
    costs = np.array([0.010, 0.001, 0.004, 0.0])  # a free path too
    ots = ObjectiveThompsonSampling(explore=0.0, objective="cost")
    for seed in range(20):
        g = np.random.default_rng(seed)
        mirror = copy.deepcopy(g)
        order = ots.rank(s, f, g, costs=costs)
        if len(shape) == 1:
            theta = np.array([mirror.beta(1 + a, 1 + b) for a, b in zip(s, f, strict=True)])
        else:
            theta = mirror.beta(1 + s, 1 + f)
        key = np.maximum(costs, 1e-12) / theta
        assert np.array_equal(order, np.argsort(key, axis=-1, kind="stable"))
        assert g.bit_generator.state == mirror.bit_generator.state


def test_exploration_floor_puts_the_same_path_first_as_thompson_sampling() -> None:
    s, f = _evidence(3, (500, 3))
    costs = np.array([0.01, 0.002, 0.0005])
    ts_first = ThompsonSampling(explore=0.5).rank(s, f, np.random.default_rng(7))[:, 0]
    ots = ObjectiveThompsonSampling(explore=0.5, objective="cost")
    ots_first = ots.rank(s, f, np.random.default_rng(7), costs=costs)[:, 0]
    no_floor = ObjectiveThompsonSampling(explore=0.0, objective="cost")
    greedy_first = no_floor.rank(s, f, np.random.default_rng(7), costs=costs)[:, 0]
    # Where TS's first path is not its θ-best, the floor picked it: the objective's too.
    theta = np.random.default_rng(7).beta(1 + s, 1 + f)
    explored = ts_first != np.argmax(theta, axis=-1)
    assert explored.sum() > 50
    assert np.array_equal(ots_first[explored], ts_first[explored])
    assert np.array_equal(
        ots_first[~explored & (greedy_first == ots_first)],
        greedy_first[~explored & (greedy_first == ots_first)],
    )


def test_one_row_fast_path_equals_the_batch() -> None:
    s, f = _evidence(4, (5,))
    costs = np.array([0.01, 0.002, 0.003, 0.02, 0.0001])
    lat = np.array([900.0, 300.0, 1200.0, 50.0, 400.0])
    ots = ObjectiveThompsonSampling(explore=0.2, objective=Objective(1.0, 0.01))
    for seed in range(50):
        one = ots.rank(s, f, np.random.default_rng(seed), costs=costs, latencies=lat)
        batch = ots.rank(s[None], f[None], np.random.default_rng(seed), costs=costs, latencies=lat)[
            0
        ]
        assert one.tolist() == batch.tolist()


def test_a_path_dearer_than_a_success_is_only_a_fallback() -> None:
    # Path 0 is sure but costs $0.50 an attempt; a success is worth $0.10.
    s = np.array([1000.0, 10.0, 10.0])
    f = np.array([0.0, 10.0, 30.0])
    costs = np.array([0.50, 0.01, 0.02])
    ots = ObjectiveThompsonSampling(explore=0.0, objective=Objective(success_value_usd=0.10))
    for seed in range(20):
        for rows in (s, s[None].repeat(3, 0)):
            order = ots.rank(
                rows, np.broadcast_to(f, rows.shape), np.random.default_rng(seed), costs=costs
            )
            assert np.all(order[..., -1] == 0)
    plain = ObjectiveThompsonSampling(explore=0.0, objective="cost")
    assert plain.rank(s, f, np.random.default_rng(0), costs=np.array([0.011, 0.01, 0.02]))[0] == 0


def test_first_choice_frequencies_match_the_propensity_of_cost_over_theta() -> None:
    alpha, beta = np.array([9.0, 30.0, 4.0]), np.array([3.0, 10.0, 4.0])
    costs = np.array([0.010, 0.004, 0.002])
    ots = ObjectiveThompsonSampling(explore=0.1, objective="cost")
    n = 100_000
    first = ots.rank(
        np.broadcast_to(alpha - 1, (n, 3)),
        np.broadcast_to(beta - 1, (n, 3)),
        np.random.default_rng(5),
        costs=costs,
    )[:, 0]
    freq = np.bincount(first, minlength=3) / n
    exact = first_choice_probabilities(alpha[None], beta[None], explore=0.1, costs=costs[None])[0]
    assert freq == pytest.approx(exact, abs=0.006)


# -- evidence in the stores ----------------------------------------------------------------


def _outcomes() -> list[Outcome]:
    rows = []
    for i in range(40):
        rows.append(
            Outcome(
                request_id=f"r{i}",
                task="t",
                path="a",
                attempt=1,
                success=i % 3 != 0,
                latency_ms=None if i % 5 == 0 else 100.0 + i,
                cost_usd=None if i % 3 == 0 else 0.001 * (i % 7),
                # Out of order in time: late reports are added already decayed.
                created_at=1000.0 + (i * 37) % 40,
                context="c1" if i % 2 else "",
            )
        )
    return rows


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_store_cost_and_latency_sums_equal_a_replay(kind: str, tmp_path: pathlib.Path) -> None:
    store = MemoryStore() if kind == "memory" else SQLStore(f"sqlite:///{tmp_path}/e.db")
    rows = _outcomes()
    # In batches of several sizes (the SQL store folds small and large batches differently).
    store.write(rows[:3], 5.0)
    store.write(rows[3:25], 5.0)
    store.write(rows[25:], 5.0)
    store.write(rows[10:20], 5.0)  # a retried batch counts once
    by_ctx = store.load_contexts("t")
    for ctx, mine in (("", rows), ("c1", [o for o in rows if o.context == "c1"])):
        st = by_ctx[ctx]["a"].first
        ref = st.ref_time
        assert ref == max(o.created_at for o in mine)

        def replay(pairs: list[tuple[float, float]], ref: float = ref) -> float:
            return sum(v * decay_factor(ref - t, 5.0) for v, t in pairs)

        costed = [o for o in mine if o.cost_usd is not None]
        assert len(costed) < len(mine)
        assert st.cost_sum == pytest.approx(
            replay([(o.cost_usd or 0.0, o.created_at) for o in costed]), rel=1e-9
        )
        assert st.cost_weight == pytest.approx(replay([(1.0, o.created_at) for o in costed]))
        timed = [o for o in mine if o.latency_ms is not None]
        assert len(timed) < len(mine)
        assert st.latency_sum == pytest.approx(
            replay([(o.latency_ms or 0.0, o.created_at) for o in timed]), rel=1e-9
        )
        assert st.latency_weight == pytest.approx(replay([(1.0, o.created_at) for o in timed]))
        assert st.mean_cost_usd == pytest.approx(st.cost_sum / st.cost_weight)
        assert st.mean_latency_ms is not None and 100.0 <= st.mean_latency_ms <= 140.0
    store.close()


def test_path_state_without_cost_evidence_has_no_means() -> None:
    store = MemoryStore()
    store.write(
        [Outcome(request_id="x", task="t", path="a", attempt=1, success=True, created_at=1.0)],
        None,
    )
    st = store.load("t")["a"].first
    assert (st.cost_weight, st.mean_cost_usd, st.mean_latency_ms) == (0.0, None, None)


def test_a_store_on_an_old_schema_says_to_run_db_upgrade(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    upgrade(url, revision="0003_pending_model")
    for create in (True, False):
        with pytest.raises(ConfigurationError) as info:
            SQLStore(url, create=create)
        text = str(info.value)
        assert "adaptive-router db upgrade" in text and "path_stats.cost_sum" in text
        assert "path_stats.position" in text
    upgrade(url)
    SQLStore(url).close()


def test_a_store_before_0003_names_the_pending_model_column(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/older.db"
    upgrade(url, revision="0002_scores_contexts")
    with pytest.raises(ConfigurationError, match=r"pending_decisions\.model.*db upgrade"):
        SQLStore(url)


# -- baselines -------------------------------------------------------------------------------


def test_ratio_oracle_orders_by_true_cost_over_rate() -> None:
    oracle = RatioOracle.for_objective("cost", (0.010, 0.001, 0.004), None)
    oracle.at_step(0, np.array([0.93, 0.90, 0.0]))
    assert oracle.rank(np.zeros(3), np.zeros(3), np.random.default_rng()).tolist() == [1, 0, 2]
    lat = RatioOracle.for_objective("latency", None, (1500.0, 700.0, 150.0))
    lat.at_step(0, np.array([0.95, 0.85, 0.10]))
    # 1.5/0.95 = 1.58 s, 0.7/0.85 = 0.82 s, 0.15/0.1 = 1.5 s
    assert lat.rank(np.zeros(3), np.zeros(3), np.random.default_rng()).tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="needs costs"):
        RatioOracle.for_objective("cost", None, (1.0, 2.0))


def test_blend_scores_theta_and_normalized_price() -> None:
    blend = BlendedScore((0.010, 0.001))
    assert blend.normalized.tolist() == [1.0, 0.0]
    # Sure evidence: 0.7·0.93 + 0 vs 0.7·0.90 + 0.3: the cheap one.
    s, f = np.array([9300.0, 9000.0]), np.array([700.0, 1000.0])
    assert blend.rank(s, f, np.random.default_rng(0)).tolist() == [1, 0]
    with pytest.raises(ValueError, match="2 prices for 3 paths"):
        blend.rank(np.zeros(3), np.zeros(3), np.random.default_rng(0))


def test_fixed_orders_and_quality_first() -> None:
    orders = all_fixed_orders(3, ("a", "b", "c"))
    assert len(orders) == 6 and "fixed: c → a → b" in orders
    assert orders["fixed: c → a → b"].order is not None
    assert quality_first([0.6, 0.95, 0.85]).order.tolist() == [1, 2, 0]  # type: ignore[union-attr]


# -- the policy in the simulator (the seeded tests) -----------------------------------

TWO = stationary(
    [0.93, 0.90],
    cost_usd=(0.010, 0.001),
    latency_ms=(800.0, 2000.0),
    final=FinalPath("cached", cost_usd=0.0, latency_ms=5.0),
    names=("big", "cheap"),
)


def _sim(
    policy: Any, env: Environment = TWO, horizon: int = 3000, runs: int = 50
) -> SimulationResult:
    rng, env_rng = rngs(11)
    return simulate(policy, env, horizon, runs, rng=rng, env_rng=env_rng, trace=True)


def test_cost_objective_moves_traffic_to_the_cheap_path_at_half_the_cost() -> None:
    cost = _sim(ObjectiveThompsonSampling(objective="cost"))
    success = _sim(ObjectiveThompsonSampling(objective="success"))
    assert cost.engine == "numpy"
    cheap_share = cost.share[-1000:, 1].mean()
    assert cheap_share >= 0.75, cheap_share
    assert cost.cost_per_1k is not None and success.cost_per_1k is not None
    ratio = cost.cost_per_1k.mean() / success.cost_per_1k.mean()
    assert ratio <= 0.50, ratio
    # Success before the final fallback: every request that did not reach the final path.
    before_final = 1 - cost.final_fallback_rate.mean()
    assert before_final == pytest.approx(1 - success.final_fallback_rate.mean(), abs=0.02)
    # The default objective is exactly ThompsonSampling's run, engine aside.
    plain = _sim(ThompsonSampling())
    assert np.array_equal(plain.share, success.share)
    assert plain.cost_per_1k is not None
    assert np.allclose(plain.cost_per_1k, success.cost_per_1k)


def test_latency_objective_moves_traffic_to_the_least_time_to_success() -> None:
    # big: 0.8 s / 0.93 = 0.86 s to a success; cheap: 2.0 s / 0.90 = 2.2 s. The cost
    # objective prefers cheap, the latency objective big.
    lat = _sim(ObjectiveThompsonSampling(objective="latency"))
    cost = _sim(ObjectiveThompsonSampling(objective="cost"))
    assert lat.share[-1000:, 0].mean() >= 0.9
    assert lat.latency_ms is not None and cost.latency_ms is not None
    assert lat.latency_ms.mean() < 0.6 * cost.latency_ms.mean()


def test_simulator_objective_needs_the_environment_costs_and_no_numba() -> None:
    rng, env_rng = rngs(0)
    with pytest.raises(ValueError, match="cost_usd"):
        simulate(
            ObjectiveThompsonSampling(objective="cost"),
            stationary([0.5, 0.6]),
            10,
            rng=rng,
            env_rng=env_rng,
        )
    with pytest.raises(ValueError, match="ranks by success probability only"):
        simulate(ObjectiveThompsonSampling(), TWO, 10, rng=rng, env_rng=env_rng, engine="numba")
    oracle = _sim(RatioOracle.for_objective("cost", TWO.cost_usd, TWO.latency_ms), runs=5)
    assert oracle.share[:, 1].tolist() == [1.0] * 3000
