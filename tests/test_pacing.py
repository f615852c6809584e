"""Spend pacing: the price converges to the target in a stationary world, is 0 when the
target exceeds what the best path costs, its state adds up across processes, and bad
targets are configuration errors naming the parameter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptive_router.errors import ConfigurationError
from adaptive_router.policies.pacing import (
    SpendPacer,
    SpendStats,
    check_target_usd_per_request,
    paced_costs,
)
from adaptive_router.policies.thompson import ThompsonSampling


def _world(
    pacer: SpendPacer,
    p: tuple[float, float],
    cost: tuple[float, float],
    n: int,
    seed: int,
    start: int = 0,
    evidence: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Thompson Sampling over two paths choosing by θ - λ·c̄ (c̄ the known mean costs);
    each call's cost varies ±20% around its mean; request t happens at time ``start + t``.
    ``evidence`` (successes, failures) carries learning over between calls. Returns
    (choices, spend) per request."""
    rng = np.random.default_rng(seed)
    ts = ThompsonSampling(explore=0.02)
    s, f = evidence if evidence is not None else (np.zeros(2), np.zeros(2))
    means = np.array(cost)
    picks, spend = np.empty(n, dtype=np.intp), np.empty(n)
    for t in range(n):
        theta = ts.sample(s, f, rng) - pacer.price * means
        k = int(rng.integers(0, 2)) if rng.random() < ts.explore else int(np.argmax(theta))
        y = float(rng.random() < p[k])
        s[k] += y
        f[k] += 1.0 - y
        c = means[k] * rng.uniform(0.8, 1.2)
        pacer.observe(c, float(start + t))
        picks[t], spend[t] = k, c
    return picks, spend


def test_pacing_converges_to_the_target_in_a_stationary_world() -> None:
    pacer = SpendPacer(0.5)
    picks, spend = _world(pacer, (0.9, 0.7), (1.0, 0.1), 20_000, seed=1)
    # Spending 0.5 a request needs ~44% of requests on the dear path.
    assert spend[2_000:].mean() == pytest.approx(0.5, rel=0.02)
    assert spend.mean() == pytest.approx(0.5, rel=0.01)
    assert 0.40 < picks[2_000:].tolist().count(0) / 18_000 < 0.48
    assert pacer.price > 0.0
    assert pacer.stats.mean_spend_usd == pytest.approx(spend.mean(), rel=1e-12)
    assert pacer.stats.requests == 20_000


def test_with_a_half_life_the_window_tracks_the_target_after_a_price_change() -> None:
    pacer = SpendPacer(0.5, half_life=2_000.0)
    evidence = (np.zeros(2), np.zeros(2))
    _, before = _world(pacer, (0.9, 0.7), (1.0, 0.1), 10_000, seed=2, evidence=evidence)
    # The dear path doubles its price: spend returns to the target (at a lower λ: each
    # dollar now buys less of the success gap).
    _, after = _world(
        pacer, (0.9, 0.7), (2.0, 0.1), 20_000, seed=3, start=10_000, evidence=evidence
    )
    assert before[2_000:].mean() == pytest.approx(0.5, rel=0.03)
    assert after[-8_000:].mean() == pytest.approx(0.5, rel=0.03)
    assert pacer.price > 0.0
    # The window's (decayed) average is what the price answers to: within 1% of B.
    assert pacer.stats.mean_spend_usd == pytest.approx(0.5, rel=0.01)


def test_a_target_above_the_best_paths_cost_never_pays_for_nothing() -> None:
    pacer = SpendPacer(2.0)
    picks, spend = _world(pacer, (0.9, 0.7), (1.0, 0.1), 5_000, seed=5)
    assert pacer.price == 0.0
    assert pacer.overspend < -2_000  # far under the target: no price at all
    # Only the exploration floor (2%, half of it onto path 1) leaves the best path.
    assert picks[500:].tolist().count(1) / 4_500 < 0.03
    assert spend.mean() < 1.0  # what the best path costs, not the target
    # Best path cheapest: any target buys it, at its own price.
    cheap = SpendPacer(0.5)
    picks, spend = _world(cheap, (0.9, 0.7), (0.1, 1.0), 5_000, seed=6)
    assert cheap.price == 0.0
    assert picks[500:].tolist().count(0) / 4_500 > 0.97
    assert spend[500:].mean() < 0.13


@pytest.mark.parametrize("half_life", [None, 300.0])
def test_spend_stats_merged_from_any_partition_equal_one_replay(half_life: float | None) -> None:
    rng = np.random.default_rng(7)
    costs = rng.exponential(0.01, 500)
    times = rng.uniform(0, 2_000, 500)
    unmetered = rng.random(500) < 0.1
    ref = times.max()
    weights = np.ones(500) if half_life is None else 0.5 ** ((ref - times) / half_life)
    spend = np.where(unmetered, 0.0, costs)
    parts = [SpendStats() for _ in range(3)]
    owner = rng.integers(0, 3, 500)
    for i in rng.permutation(500):
        parts[owner[i]].fold(None if unmetered[i] else float(costs[i]), float(times[i]), half_life)
    merged = parts[1].merge(parts[2], half_life).merge(parts[0], half_life)
    assert merged.ref_time == ref
    assert merged.requests == 500
    assert merged.spend_w == pytest.approx(float(weights @ spend), rel=1e-9)
    assert merged.requests_w == pytest.approx(float(weights.sum()), rel=1e-9)
    assert merged.spend_usd == pytest.approx(float(spend.sum()), rel=1e-12)
    # The price is a function of the shared sums: every process computes the same one.
    a = SpendPacer(0.01, half_life=half_life, stats=merged)
    b = SpendPacer(0.01, half_life=half_life, stats=SpendStats(**_fields(merged)))
    assert a.price == b.price


def _fields(st: SpendStats) -> dict[str, float]:
    return {
        "spend_w": st.spend_w,
        "requests_w": st.requests_w,
        "ref_time": st.ref_time,
        "requests": st.requests,
        "spend_usd": st.spend_usd,
    }


def test_the_price_is_the_projected_sum_of_spend_errors() -> None:
    pacer = SpendPacer(0.01, gain=0.002)
    for t, c in enumerate([0.03, 0.02, 0.0, 0.05]):
        pacer.observe(c, float(t))
    # E = Σ (c - B) / B = 2 + 1 - 1 + 4 = 6; λ = gain · E / B.
    assert pacer.overspend == pytest.approx(6.0)
    assert pacer.price == pytest.approx(0.002 * 6.0 / 0.01)
    for t in range(4, 14):
        pacer.observe(None, float(t))  # unmetered requests count as spending 0
    assert pacer.overspend == pytest.approx(-4.0)
    assert pacer.price == 0.0
    assert "SpendPacer(target_usd_per_request=0.01" in repr(pacer)


@pytest.mark.parametrize("bad", [0, 0.0, -0.002, math.nan, math.inf, -math.inf, "0.1", True, None])
def test_bad_targets_are_configuration_errors_naming_the_parameter(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="target_usd_per_request must be"):
        check_target_usd_per_request(bad)
    with pytest.raises(ConfigurationError, match="target_usd_per_request must be"):
        SpendPacer(bad)  # type: ignore[arg-type]
    assert check_target_usd_per_request(0.002) == 0.002
    with pytest.raises(ConfigurationError, match=r"^budget must be"):
        check_target_usd_per_request(bad, parameter="budget")


def test_other_bad_pacer_input() -> None:
    with pytest.raises(ConfigurationError, match="gain must be a finite number > 0"):
        SpendPacer(0.01, gain=0.0)
    with pytest.raises(ConfigurationError, match="half_life must be > 0"):
        SpendPacer(0.01, half_life=-1.0)
    pacer = SpendPacer(0.01)
    for bad in (-0.001, math.nan, math.inf):
        with pytest.raises(ValueError, match="cost_usd must be a finite number >= 0"):
            pacer.observe(bad, 0.0)
    assert pacer.stats.requests == 0  # nothing half-recorded


def test_paths_with_unknown_cost_are_priced_like_the_dearest_known_path() -> None:
    assert paced_costs([0.002, None, 0.0001]) == [0.002, 0.002, 0.0001]
    assert paced_costs([0.002, math.nan]) == [0.002, 0.002]
    # A prior (expected_cost_usd) stands in for a path without data.
    assert paced_costs([0.002, None], [None, 0.0005]) == [0.002, 0.0005]
    assert paced_costs([None, None], [0.01, None]) == [0.01, 0.01]
    # No cost known anywhere: the target cannot tell the paths apart by cost.
    assert paced_costs([None, None]) == [0.0, 0.0]
    with pytest.raises(ValueError, match="costs must be finite and >= 0"):
        paced_costs([-1.0, 0.1])
    with pytest.raises(ValueError, match="2 priors for 3 paths"):
        paced_costs([None, None, None], [0.1, 0.2])
