"""Contextual Thompson Sampling: additive sufficient statistics (any partition and order
equals one replay), decay, the cached posterior against closed-form Bayesian linear
regression, cold start, ranking and exact propensities against Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from adaptive_router.features import SparseVector, hash_features
from adaptive_router.policies.contextual import (
    ContextualThompsonSampling,
    LinearModel,
    LinearStats,
    with_bias,
)
from adaptive_router.policies.gaussian import first_choice_probabilities

DIM = 16


def _random_x(rng: np.random.Generator, dim: int = DIM, nnz: int = 5) -> SparseVector:
    idx = np.sort(rng.choice(dim, size=nnz, replace=False)).astype(np.intp)
    return SparseVector(idx, rng.normal(0.0, 0.5, nnz))


def _observations(
    seed: int, n: int, dim: int = DIM
) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
    """(idx, val, reward, time) with the bias, times unordered (late reports included)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        idx, val = with_bias(_random_x(rng, dim), dim)
        out.append((idx, val, float(rng.random() < 0.6), float(rng.uniform(0.0, 500.0))))
    return out


def _replay(obs: list[tuple[np.ndarray, np.ndarray, float, float]], half_life: float | None):
    """The definition: Σ 0.5^((ref - t)/h) x xᵀ and x y relative to the newest time."""
    d = DIM + 1
    ref = max(t for *_, t in obs)
    xx, xy = np.zeros((d, d)), np.zeros(d)
    for idx, val, y, t in obs:
        w = 1.0 if half_life is None else 0.5 ** ((ref - t) / half_life)
        x = np.zeros(d)
        x[idx] = val
        xx += w * np.outer(x, x)
        xy += w * y * x
    return xx, xy, ref


@pytest.mark.parametrize("half_life", [None, 120.0])
def test_stats_in_any_order_and_partition_equal_one_replay(half_life: float | None) -> None:
    obs = _observations(1, 400)
    xx, xy, ref = _replay(obs, half_life)
    rng = np.random.default_rng(2)
    # Four "processes", each folding its share in its own order, merged in another order.
    parts: list[LinearStats] = []
    owner = rng.integers(0, 4, size=len(obs))
    for p in range(4):
        st = LinearStats.zeros(DIM)
        mine = [o for o, w in zip(obs, owner, strict=True) if w == p]
        for j in rng.permutation(len(mine)):
            idx, val, y, t = mine[j]
            st.fold(idx, val, y, t, half_life)
        parts.append(st)
    merged = LinearStats.zeros(DIM)
    for j in (2, 0, 3, 1):
        merged = merged.merge(parts[j], half_life)
    single = LinearStats.zeros(DIM)
    for idx, val, y, t in obs:
        single.fold(idx, val, y, t, half_life)
    for st in (merged, single):
        assert st.ref_time == ref
        assert st.count == len(obs)
        np.testing.assert_allclose(st.xx, xx, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(st.xy, xy, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(st.xx, st.xx.T, rtol=0, atol=1e-12)
    expected_weight = sum(
        1.0 if half_life is None else 0.5 ** ((ref - t) / half_life) for *_, t in obs
    )
    assert merged.weight == pytest.approx(expected_weight, rel=1e-12)


def test_decay_halves_old_evidence_per_half_life_and_adds_late_observations_decayed() -> None:
    st = LinearStats.zeros(2)
    idx, val = with_bias(SparseVector(np.array([1]), np.array([2.0])), 2)
    # Fresh sums are relative to time 0: the first fold decays them (zeros) by 2^-10.
    assert st.fold(idx, val, 1.0, 100.0, 10.0) == (2.0**-10, 1.0)
    assert st.fold(idx, val, 1.0, 110.0, 10.0) == (0.5, 1.0)
    assert st.weight == 1.5
    assert st.xx[1, 1] == 4.0 * 1.5 and st.xy[1] == 2.0 * 1.5
    keep, add = st.fold(idx, val, 0.0, 90.0, 10.0)  # a late report, two half-lives old
    assert (keep, add) == (1.0, 0.25)
    assert st.weight == 1.75 and st.ref_time == 110.0
    assert st.xy[2] == 1.5  # the late failure adds nothing to Σ w y
    # Sums below TINY are snapped to zero before decaying (PostgreSQL raises on underflow).
    tiny = LinearStats(np.full((2, 2), 1e-250), np.full(2, 1e-250))
    tiny.fold(np.array([1]), np.array([1.0]), 1.0, 1.0, 1e-3)
    assert tiny.xx[0, 0] == 0.0 and tiny.xx[1, 1] == 1.0 and tiny.xy[0] == 0.0
    # Old sums decay lazily (one factor), so a fold costs O(nnz²) whatever the dimension;
    # the factor is folded in before it could underflow.
    long = LinearStats.zeros(1)
    for t in range(0, 200_000, 1_000):
        long.fold(np.array([1]), np.array([1.0]), 1.0, float(t), 1_000.0)
    assert long.weight == pytest.approx(2.0, rel=1e-9)  # Σ 2^-k, k = 0, 1, ...
    assert long.xx[1, 1] == pytest.approx(2.0, rel=1e-9) and long.xy[1] == pytest.approx(2.0)


def _closed_form(
    obs: list[tuple[np.ndarray, np.ndarray, float, float]],
    tau2: float,
    s2: float,
    bias_mean: float,
    extra: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    d = DIM + 1
    xs = np.zeros((len(obs), d))
    for r, (idx, val, _, _) in enumerate(obs):
        xs[r, idx] = val
    ys = np.array([y for _, _, y, _ in obs])
    prec = np.eye(d) / tau2 + xs.T @ xs / s2
    prec[DIM, DIM] += extra / s2
    h = xs.T @ ys / s2
    h[DIM] += bias_mean * (1.0 / tau2 + extra / s2)
    cov = np.linalg.inv(prec)
    return cov @ h, cov


def test_the_cached_posterior_equals_bayesian_linear_regression() -> None:
    obs = _observations(3, 1500)
    policy = ContextualThompsonSampling(DIM, prior_variance=0.7, noise_variance=0.2)
    model = policy.new_model(1)
    # 1,500 rank-one updates (refactorised every 4·D = 68 of them)...
    for idx, val, y, t in obs:
        model.observe(0, idx, val, y, t)
    mean, cov = _closed_form(obs, 0.7, 0.2, 0.5)
    np.testing.assert_allclose(model.mean[0], mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.cov[0], cov, rtol=0, atol=1e-9)
    # ... and without refactorising at all, the Sherman–Morrison updates alone stay exact.
    model2 = policy.new_model(1)
    model2.refresh_every = 10**9
    for idx, val, y, t in obs:
        model2.observe(0, idx, val, y, t)
    np.testing.assert_allclose(model2.mean[0], mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(model2.cov[0], cov, rtol=0, atol=1e-9)
    # predict() is xᵀμ and xᵀΣx.
    idx, val = obs[0][0], obs[0][1]
    x = np.zeros(DIM + 1)
    x[idx] = val
    m, v = model.predict(idx, val)
    assert m[0] == pytest.approx(x @ mean, abs=1e-12)
    assert v[0] == pytest.approx(x @ cov @ x, abs=1e-12)


def test_under_decay_the_cache_tracks_the_exact_statistics_within_its_tolerance() -> None:
    obs = sorted(_observations(4, 600), key=lambda o: o[3])
    exact = ContextualThompsonSampling(DIM, half_life=50.0, refresh_tolerance=0.0).new_model(1)
    loose = ContextualThompsonSampling(DIM, half_life=50.0, refresh_tolerance=0.01).new_model(1)
    for idx, val, y, t in obs:
        exact.observe(0, idx, val, y, t)
        loose.observe(0, idx, val, y, t)
    # The statistics are the same; tolerance 0 refactorises at every decay: exact.
    np.testing.assert_array_equal(exact.stats[0].xx, loose.stats[0].xx)
    ref = LinearModel(
        1, DIM, prior_variance=1.0, noise_variance=0.25, half_life=50.0, refresh_tolerance=0.0
    )
    ref.load(0, exact.stats[0].copy())
    np.testing.assert_allclose(exact.mean[0], ref.mean[0], atol=1e-9)
    np.testing.assert_allclose(exact.cov[0], ref.cov[0], atol=1e-9)
    # With 1% tolerance the cache counts evidence at most 1% heavier: the variance of any
    # prediction is within ~1% of the exact one, never above it.
    rng = np.random.default_rng(5)
    for _ in range(20):
        i, v = with_bias(_random_x(rng), DIM)
        exact_var = exact.predict(i, v)[1][0]
        loose_var = loose.predict(i, v)[1][0]
        assert exact_var * 0.985 <= loose_var <= exact_var * (1 + 1e-9)


def test_cold_start_counts_the_beta_evidence_once() -> None:
    policy = ContextualThompsonSampling(DIM, prior_variance=1.0, noise_variance=0.25)
    model = policy.new_model(2)
    # Path 0 has 100 outcomes of ordinary evidence (80 successes) and no feature evidence.
    model.cold_start(0, 80.0, 20.0)
    p_hat = 81.0 / 102.0
    idx, val = with_bias(None, DIM)
    m, v = model.predict(idx, val)
    assert m[0] == pytest.approx(p_hat, abs=1e-12)
    assert v[0] == pytest.approx(1.0 / (1.0 + 100.0 / 0.25), rel=1e-12)
    assert m[1] == 0.5 and v[1] == pytest.approx(1.0)  # untouched: the default prior
    # The same 100 outcomes then arrive with features: the pseudo-observations fade and
    # the posterior is the plain regression with the bias's prior mean at p̂.
    obs = _observations(6, 100)
    for idx, val, y, t in obs:
        model.observe(0, idx, val, y, t)
    s = sum(y for *_, y, _ in obs)
    model.cold_start(0, s, 100.0 - s)
    p_hat2 = (1.0 + s) / 102.0
    mean, cov = _closed_form(obs, 1.0, 0.25, p_hat2)
    np.testing.assert_allclose(model.mean[0], mean, atol=1e-9)
    np.testing.assert_allclose(model.cov[0], cov, atol=1e-9)
    # Extra Beta evidence beyond the linear statistics (e.g. attempts without features).
    model.cold_start(0, s + 30.0, 100.0 - s + 10.0)
    p_hat3 = (1.0 + s + 30.0) / 142.0
    mean, cov = _closed_form(obs, 1.0, 0.25, p_hat3, extra=40.0)
    np.testing.assert_allclose(model.mean[0], mean, atol=1e-9)
    np.testing.assert_allclose(model.cov[0], cov, atol=1e-9)
    model.refresh(0)  # the refactorisation keeps the cold start
    np.testing.assert_allclose(model.mean[0], mean, atol=1e-9)


def test_rank_draws_one_normal_per_path_then_the_exploration_floor() -> None:
    policy = ContextualThompsonSampling(DIM, variance_scale=0.5, explore=0.3)
    model = policy.new_model(3)
    rng = np.random.default_rng(7)
    for idx, val, y, t in _observations(8, 60):
        model.observe(int(rng.integers(0, 3)), idx, val, y, t)
    x = _random_x(np.random.default_rng(9))
    idx, val = with_bias(x, DIM)
    means, var = model.predict(idx, val)
    for seed in range(30):
        d = policy.rank(model, x, np.random.default_rng(seed), costs=[0.0, 1.0, 2.0], price=0.05)
        twin = np.random.default_rng(seed)
        z = twin.standard_normal(3)
        score = means + np.sqrt(0.5 * var) * z - 0.05 * np.array([0.0, 1.0, 2.0])
        if twin.random() < 0.3:
            score[int(twin.integers(0, 3))] = math.inf
        assert d.order.tolist() == np.argsort(-score, kind="stable").tolist()
        np.testing.assert_allclose(d.sds, np.sqrt(0.5 * var))
        assert d.price == 0.05 and d.explore == 0.3


def test_a_high_price_puts_the_cheap_path_first() -> None:
    policy = ContextualThompsonSampling(DIM, explore=0.0)
    model = policy.new_model(2)
    rng = np.random.default_rng(10)
    firsts = [
        int(policy.rank(model, None, rng, costs=[1.0, 0.01], price=50.0).order[0])
        for _ in range(200)
    ]
    assert firsts == [1] * 200
    firsts = [int(policy.rank(model, None, rng, costs=[1.0, 0.01]).order[0]) for _ in range(400)]
    assert 150 < sum(firsts) < 250  # no price: the equal priors split the traffic


def _mc_first(means, sds, explore, skipped, rng, n=1_000_000):
    """10⁶ vectorised draws of the decision model: Gaussian scores, the floor, skips."""
    k = len(means)
    scores = means + sds * rng.standard_normal((n, k))
    best = np.argmax(np.where(skipped, -np.inf, scores), axis=1)
    exploring = rng.random(n) < explore
    pick = rng.integers(0, k, size=n)
    first = np.where(exploring & ~skipped[pick], pick, best)
    return np.bincount(first, minlength=k) / n


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_propensities_agree_with_a_million_draws(k: int) -> None:
    rng = np.random.default_rng(100 + k)
    cases = [
        # Comparable posteriors.
        (rng.normal(0.6, 0.05, k), rng.uniform(0.03, 0.1, k), 0.0, np.zeros(k, bool)),
        # A sharp posterior beside wide ones, the exploration floor.
        (
            rng.normal(0.5, 0.1, k),
            np.array([0.002] + [0.3] * (k - 1)),
            0.05,
            np.zeros(k, bool),
        ),
        # A skipped path (open breaker) and a floor.
        (rng.normal(0.5, 0.1, k), rng.uniform(0.01, 0.2, k), 0.1, np.arange(k) == k - 1),
    ]
    # Under a spend target: scores shifted by -price · cost.
    costs = rng.uniform(0.0001, 0.003, k)
    cases.append((rng.normal(0.6, 0.05, k), rng.uniform(0.02, 0.08, k), 0.02, np.zeros(k, bool)))
    for c, (means, sds, explore, skipped) in enumerate(cases):
        shift = (costs, 40.0) if c == len(cases) - 1 else (None, 0.0)
        exact = first_choice_probabilities(
            means, sds, explore=explore, skipped=skipped, costs=shift[0], price=shift[1]
        )
        shifted = means if shift[0] is None else means - 40.0 * costs
        mc = _mc_first(shifted, sds, explore, skipped, rng)
        assert np.max(np.abs(exact - mc)) < 3e-3, (exact, mc)
        assert exact.sum() == pytest.approx(1.0, abs=1e-9)
        assert np.all(exact[skipped] == 0.0)


def test_propensities_match_adaptive_quadrature_and_shift_by_price_times_cost() -> None:
    means, sds = np.array([0.7, 0.65, 0.5]), np.array([0.01, 0.2, 0.05])
    costs, price = np.array([0.002, 0.0002, 0.0001]), 40.0
    got = first_choice_probabilities(means, sds, costs=costs, price=price)
    m = means - price * costs
    for i in range(3):

        def f(y: float, i: int = i) -> float:
            out = stats.norm.pdf(y, m[i], sds[i])
            for j in range(3):
                if j != i:
                    out *= stats.norm.cdf(y, m[j], sds[j])
            return float(out)

        ref, _ = integrate.quad(f, m[i] - 12 * sds[i], m[i] + 12 * sds[i], epsabs=1e-13, limit=200)
        assert got[i] == pytest.approx(ref, abs=1e-9)
    assert first_choice_probabilities([0.3], [0.1]).tolist() == [1.0]
    assert first_choice_probabilities([0.3, 0.4], [0.1, 0.1], skipped=[True, True]).tolist() == [
        0.0,
        0.0,
    ]


def test_the_policys_choices_follow_its_propensities() -> None:
    policy = ContextualThompsonSampling(DIM, variance_scale=1.0, explore=0.05)
    model = policy.new_model(4)
    rng = np.random.default_rng(11)
    for idx, val, y, t in _observations(12, 200):
        model.observe(int(rng.integers(0, 4)), idx, val, y, t)
    x = _random_x(np.random.default_rng(13))
    costs = [0.003, 0.001, 0.0005, 0.002]
    n = 20_000
    counts = np.zeros(4)
    last = None
    for _ in range(n):
        last = policy.rank(model, x, rng, costs=costs, price=30.0)
        counts[last.order[0]] += 1
    assert last is not None
    p = last.propensities()
    sd = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(counts / n - p) <= 4.5 * sd + 1e-12), (counts / n, p)
    assert p.min() > 0.01  # every path is in play: the test can fail


def test_validation_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        ContextualThompsonSampling(0)
    for name in ("prior_variance", "noise_variance", "variance_scale", "half_life"):
        for bad in (0.0, -1.0, math.nan, math.inf):
            with pytest.raises(ValueError, match=f"{name} must be a finite number > 0"):
                ContextualThompsonSampling(DIM, **{name: bad})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"explore must be a probability in \[0, 1\)"):
        ContextualThompsonSampling(DIM, explore=1.0)
    policy = ContextualThompsonSampling(DIM)
    model = policy.new_model(2)
    with pytest.raises(ValueError, match=r"feature indices must lie in \[0, 16\)"):
        policy.rank(model, hash_features({"a": 1.0}, 1000), np.random.default_rng(0))
    with pytest.raises(ValueError, match="feature indices must be ascending and unique"):
        with_bias(SparseVector(np.array([3, 3]), np.array([1.0, 2.0])), DIM)
    idx, val = with_bias(None, DIM)
    with pytest.raises(ValueError, match=r"reward must be in \[0, 1\]"):
        model.observe(0, idx, val, 1.5, 0.0)
    with pytest.raises(ValueError, match="price must be a finite number >= 0"):
        policy.rank(model, None, np.random.default_rng(0), costs=[1.0, 2.0], price=math.nan)
    with pytest.raises(ValueError, match="costs has 3 entries for 2 paths"):
        policy.rank(model, None, np.random.default_rng(0), costs=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="sds must be finite and > 0"):
        first_choice_probabilities([0.1, 0.2], [0.1, 0.0])


def test_influential_features_are_the_largest_weights() -> None:
    policy = ContextualThompsonSampling(DIM, explore=0.0)
    model = policy.new_model(1)
    good = SparseVector(np.array([3]), np.array([1.0]))
    bad = SparseVector(np.array([11]), np.array([1.0]))
    for t in range(200):
        policy.observe(model, 0, good, 1.0, float(t))
        policy.observe(model, 0, bad, 0.0, float(t))
    top = model.influential(0, top=2)
    assert [i for i, _, _ in top] in ([3, 11], [11, 3])
    weights = {i: w for i, w, _ in top}
    assert weights[3] > 0.3 and weights[11] < -0.3
    assert all(sd > 0 for _, _, sd in top)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_a_decisions_propensities_agree_with_a_million_draws_of_it(k: int) -> None:
    # A decision of a trained model under a spend target: its logged means, sds, costs,
    # price and floor, drawn 10⁶ times as rank() draws them.
    policy = ContextualThompsonSampling(DIM, variance_scale=0.3, explore=0.05)
    model = policy.new_model(k)
    rng = np.random.default_rng(200 + k)
    for idx, val, y, t in _observations(20 + k, 80 * k):
        model.observe(int(rng.integers(0, k)), idx, val, y, t)
    costs = rng.uniform(0.0005, 0.003, k)
    decision = policy.rank(model, _random_x(rng), rng, costs=costs, price=30.0)
    exact = decision.propensities()
    mc = _mc_first(decision.means - 30.0 * costs, decision.sds, 0.05, np.zeros(k, bool), rng)
    assert np.max(np.abs(exact - mc)) <= 3e-3, (exact, mc)
    assert exact.min() > 0.01  # every path in play: the comparison can fail
