"""Off-policy estimators: exact formulas, bad input, intervals that never collapse, and
interval coverage on bandit logs collected by the real Thompson Sampling policy with
exact propensities (ESS 5–100 through the ``ope_coverage`` experiment, and ESS >= 100)."""

from __future__ import annotations

import contextlib
import math
import pathlib
import random
import re
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import sqlalchemy as sa

from adaptive_router import AllPathsFailed, Learning, Path, Persistence, Router
from adaptive_router.errors import ConfigurationError, StoreUnavailableError
from adaptive_router.ope.confidence import ess_interval, wilson_interval
from adaptive_router.ope.evaluation import (
    MIN_ESS,
    Estimate,
    LowEffectiveSampleSize,
    effective_sample_size,
    estimate,
    evaluate,
)
from adaptive_router.policies.propensity import first_choice_probabilities
from adaptive_router.policies.thompson import ThompsonSampling
from adaptive_router.simulation.experiments import ope_coverage
from adaptive_router.stores import SQLStore


def _random_logs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random(n), rng.uniform(0.05, 1.0, n), rng.uniform(0.0, 1.0, n)


def test_ips_and_snips_equal_the_direct_formula() -> None:
    r, p, t = _random_logs(5000, 1)
    w = t / p
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ips = estimate(r, p, t, "ips")
        snips = estimate(r, p, t, "snips")
    assert abs(ips.value - np.mean(w * r)) < 1e-12
    assert abs(snips.value - np.sum(w * r) / np.sum(w)) < 1e-12
    assert ips.n == snips.n == 5000
    assert (ips.method, snips.method) == ("ips", "snips")
    assert snips.effective_sample_size == pytest.approx(w.sum() ** 2 / (w * w).sum(), rel=1e-12)
    se = np.std(w * r, ddof=1) / np.sqrt(5000)
    assert ips.std_error == pytest.approx(se, rel=1e-12)
    # The interval: the estimator's own joined with the Wilson floor on the ESS.
    for e in (ips, snips):
        want = ess_interval(e.value, e.std_error, e.effective_sample_size)
        assert (e.low, e.high) == want
    assert snips.low <= snips.value <= snips.high and snips.bounds == (0.0, 1.0)


def test_dr_formula_and_its_double_robustness() -> None:
    rng = np.random.default_rng(2)
    n, k = 4000, 3
    probs = np.array([0.6, 0.5, 0.3])
    logging = np.array([0.5, 0.3, 0.2])
    a = rng.choice(k, n, p=logging)
    r = (rng.random(n) < probs[a]).astype(float)
    target = np.tile([0.1, 0.1, 0.8], (n, 1))
    # A perfect model: DR is the model's value plus zero-mean noise.
    model = np.tile(probs, (n, 1))
    est = estimate(
        r,
        logging[a],
        target[np.arange(n), a],
        "dr",
        reward_model=model[np.arange(n), a],
        reward_matrix=model,
        target_matrix=target,
    )
    d = (model * target).sum(axis=1)
    w = target[np.arange(n), a] / logging[a]
    assert est.value == pytest.approx(np.mean(d + w * (r - model[np.arange(n), a])), abs=1e-12)
    truth = float(target[0] @ probs)
    assert est.low < truth < est.high
    # A wrong model: the propensities correct it.
    bad = np.tile([0.2, 0.9, 0.9], (n, 1))
    est_bad = estimate(
        r,
        logging[a],
        target[np.arange(n), a],
        "dr",
        reward_model=bad[np.arange(n), a],
        direct=(bad * target).sum(axis=1),
    )
    assert est_bad.low < truth < est_bad.high


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([], [], []), {}, "rewards is empty"),
        (([1.0, np.nan], [0.5, 0.5], [1.0, 1.0]), {}, r"rewards must be finite; rewards\[1\]"),
        (([1.0, 0.0], [0.5, 0.0], [1.0, 1.0]), {}, r"propensities must be in \(0, 1\]"),
        (([1.0, 0.0], [0.5, 1.5], [1.0, 1.0]), {}, "propensities"),
        (([1.0, 0.0], [0.5, 0.5], [1.0, 1.2]), {}, "target_probs must be in"),
        (([1.0, 0.0, 1.0], [0.5, 0.5], [1.0, 1.0]), {}, "rewards has 3 entries"),
        (([1.0, 0.0], [0.5, 0.5, 0.5], [1.0, 1.0]), {}, "propensities has 3 entries"),
        (([1.0, 0.0], [0.5, 0.5], [1.0, 1.0]), {"method": "dm"}, "method must be one of"),
        (
            ([1.0, 0.0], [0.5, 0.5], [1.0, 1.0]),
            {"method": "dr", "direct": [0.1, 0.2]},
            "reward_model",
        ),
        (
            ([1.0, 0.0], [0.5, 0.5], [1.0, 1.0]),
            {"method": "dr", "reward_model": [0.1, 0.2]},
            "direct",
        ),
        (([1.0, 0.0], [0.5, 0.5], [0.0, 0.0]), {"method": "snips"}, "target_probs is 0"),
        (([1.0, 0.0], [0.5, 0.5], [1.0, 1.0]), {"bounds": (0.0, 0.5)}, r"rewards\[0\] = 1.0 lies"),
        (([1.0, 0.0], [0.5, 0.5], [1.0, 1.0]), {"bounds": (1.0, 0.0)}, "low < high"),
        (([1.0, 0.0], [0.5, 0.5], [1.0, 1.0]), {"bounds": "wide"}, "bounds must be a pair"),
    ],
)
def test_bad_input_names_the_argument(
    args: tuple[list[float], ...], kwargs: dict[str, object], match: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LowEffectiveSampleSize)
        with pytest.raises(ValueError, match=match):
            estimate(*args, **kwargs)  # type: ignore[arg-type]


def test_low_effective_sample_size_warns() -> None:
    r, p, _ = _random_logs(1000, 3)
    t = np.zeros(1000)
    t[:12] = 1.0
    with pytest.warns(LowEffectiveSampleSize, match="effective sample size .* below 20"):
        est = estimate(r, p, t, "snips")
    assert est.effective_sample_size < MIN_ESS == 20.0
    assert effective_sample_size(np.ones(10)) == pytest.approx(10.0)
    t[:400] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert estimate(r, p, t, "snips").effective_sample_size > MIN_ESS


# --- intervals on a handful of rows ------------------------------------------------------


def _rare_target(successes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """400 logged first attempts; the target path went first 3 times, with propensity
    0.02, and succeeded ``successes`` of them (the issue's "1 – 1" case with 3)."""
    r = np.zeros(400)
    p = np.full(400, 0.98)
    t = np.zeros(400)
    t[[50, 200, 350]] = 1.0
    p[[50, 200, 350]] = 0.02
    r[[50, 200, 350][:successes]] = 1.0
    return r, p, t


@pytest.mark.parametrize("method", ["snips", "ips"])
def test_an_interval_on_a_handful_of_rows_is_wide_not_a_point(method: str) -> None:
    r, p, t = _rare_target(3)
    with pytest.warns(LowEffectiveSampleSize):
        est = estimate(r, p, t, method)  # type: ignore[arg-type]
    assert est.effective_sample_size == pytest.approx(3.0)
    if method == "snips":
        assert est.value == 1.0  # every weighted row succeeded
        assert est.std_error == 0.0  # the old interval: value ± 1.96 · 0 = "1 – 1"
    # Three rows say little: the interval reaches far below the point.
    assert est.high == 1.0 and est.low < 0.35
    assert est.high - est.low > 0.65
    # One row alone: next to nothing is excluded.
    one = estimate([1.0], [0.05], [1.0], method, warn=False)  # type: ignore[arg-type]
    assert one.high == 1.0 and one.low < 0.01


def test_the_interval_has_width_when_rewards_vary_and_narrows_with_ess() -> None:
    rng = np.random.default_rng(8)
    widths = []
    for n in (8, 80, 800, 8000):
        # Uniform logging over 4 paths, target always path 0 (success rate 0.7).
        a = rng.integers(0, 4, n)
        r = (rng.random(n) < np.where(a == 0, 0.7, 0.4)).astype(float)
        est = estimate(r, np.full(n, 0.25), (a == 0).astype(float), warn=False)
        assert est.low <= est.value <= est.high
        assert est.low <= 0.7 <= est.high
        widths.append(est.high - est.low)
    assert all(w > 0 for w in widths)
    assert widths[0] > 0.7  # ESS about 2: almost all of [0, 1]
    assert widths[0] > widths[1] > widths[2] > widths[3]
    assert widths[3] < 0.1  # ESS about 2,000
    # Equal rewards do not make it a point either: two paths logged with probability 1/2
    # each, the target's path succeeded on all of its 20 first attempts.
    t = np.arange(40) % 2 == 0
    est = estimate(np.ones(40), np.full(40, 0.5), t.astype(float), warn=False)
    assert est.value == 1.0 and est.std_error == 0.0
    assert est.high == 1.0 and 0.5 < est.low < 0.9


def test_the_floor_is_the_wilson_interval_on_the_effective_sample_size() -> None:
    # Textbook Wilson interval: 8 successes in 10 trials, z = 1.96 -> [0.4902, 0.9433].
    low, high = wilson_interval(0.8, 10, 1.959963984540054)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=5e-5)
    # A t quantile on ESS - 1 degrees of freedom; a zero standard error leaves the floor.
    t9 = 2.2621571627409915
    assert ess_interval(0.8, 0.0, 10.0) == pytest.approx(wilson_interval(0.8, 10, t9))
    # A larger standard error than the floor's: the estimator's own interval wins.
    low, high = ess_interval(0.5, 0.2, 10.0)
    assert (low, high) == pytest.approx((0.5 - t9 * 0.2, 0.5 + t9 * 0.2))
    # Clipped to the bounds, and the whole range without effective samples.
    assert ess_interval(0.95, 0.2, 10.0)[1] == 1.0
    assert ess_interval(0.3, 0.1, 0.0) == (0.0, 1.0)
    assert ess_interval(30.0, 1.0, 0.0, (0.0, 50.0)) == (0.0, 50.0)
    # Below one effective sample the quantile stays finite (one degree of freedom).
    low, high = ess_interval(1.0, 0.0, 1.0)
    assert 0.0 < low < 0.01 and high == 1.0


def test_bounds_scale_the_interval_and_are_checked() -> None:
    rng = np.random.default_rng(4)
    a = rng.integers(0, 2, 300)
    cost = np.where(a == 0, 0.002, 0.010) * rng.uniform(0.5, 1.5, 300)
    t = (a == 0).astype(float)
    est = estimate(cost, np.full(300, 0.5), t, warn=False, bounds=(0.0, 0.015))
    assert est.bounds == (0.0, 0.015)
    assert 0.0 <= est.low <= 0.002 <= est.high <= 0.015
    # The same in [0, 1] units: the interval scales with the bounds.
    scaled = estimate(cost / 0.015, np.full(300, 0.5), t, warn=False)
    assert (est.low, est.high) == pytest.approx((scaled.low * 0.015, scaled.high * 0.015))
    # Beyond [0, 1] without bounds: the observed range widened to 0, stated.
    latency = np.where(a == 0, 200.0, 900.0)
    assert estimate(latency, np.full(300, 0.5), t, warn=False).bounds == (0.0, 900.0)
    assert estimate(-latency, np.full(300, 0.5), t, warn=False).bounds == (-900.0, 0.0)


# --- coverage on logs collected by Thompson Sampling -------------------------------------

SEEDS = 30
STEPS = 1000


def _thompson_logs(
    probs: np.ndarray, explore: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SEEDS independent runs of the real ThompsonSampling policy (batched over runs),
    logging each decision's evidence; returns (actions, rewards, propensities of every
    action), shapes (runs, steps) and (runs, steps, K)."""
    rng = np.random.default_rng(seed)
    k = probs.size
    policy = ThompsonSampling(prior=(1.0, 1.0), explore=explore)
    s = np.zeros((SEEDS, k))
    f = np.zeros((SEEDS, k))
    actions = np.empty((SEEDS, STEPS), dtype=np.intp)
    rewards = np.empty((SEEDS, STEPS))
    alpha = np.empty((SEEDS, STEPS, k))
    beta = np.empty((SEEDS, STEPS, k))
    rows = np.arange(SEEDS)
    for step in range(STEPS):
        alpha[:, step], beta[:, step] = 1.0 + s, 1.0 + f
        a = policy.rank(s, f, rng)[:, 0]
        r = (rng.random(SEEDS) < probs[a]).astype(float)
        s[rows, a] += r
        f[rows, a] += 1.0 - r
        actions[:, step], rewards[:, step] = a, r
    prop = first_choice_probabilities(
        alpha.reshape(-1, k), beta.reshape(-1, k), explore=explore
    ).reshape(SEEDS, STEPS, k)
    return actions, rewards, prop


def _coverage(probs: np.ndarray, explore: float, seed: int) -> dict[str, list[tuple[bool, bool]]]:
    """Per method, (covered, target is not the run's favourite arm) for each pair with
    ESS >= 100. Targets: always arm j for each j, and uniform over arms."""
    actions, rewards, prop = _thompson_logs(probs, explore, seed)
    k = probs.size
    targets = [np.eye(k)[j] for j in range(k)] + [np.full(k, 1.0 / k)]
    out: dict[str, list[tuple[bool, bool]]] = {"ips": [], "snips": [], "dr": []}
    idx = np.arange(STEPS)
    half = idx < STEPS // 2
    for run in range(SEEDS):
        a, r, pr = actions[run], rewards[run], prop[run]
        logged_p = pr[idx, a]
        favourite = int(np.bincount(a, minlength=k).argmax())
        # Cross-fitted per-arm means (each half predicts the other), the DR reward model.
        model = np.empty((STEPS, k))
        for fold in (half, ~half):
            other = ~fold
            for j in range(k):
                hits = r[other & (a == j)]
                model[fold, j] = (hits.sum() + 0.5) / (hits.size + 1.0)
        for target in targets:
            truth = float(target @ probs)
            t = target[a]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LowEffectiveSampleSize)
                ests: dict[str, Estimate] = {
                    "ips": estimate(r, logged_p, t, "ips"),
                    "snips": estimate(r, logged_p, t, "snips"),
                    "dr": estimate(
                        r,
                        logged_p,
                        t,
                        "dr",
                        reward_model=model[idx, a],
                        reward_matrix=model,
                        target_matrix=np.tile(target, (STEPS, 1)),
                    ),
                }
            if ests["snips"].effective_sample_size < 100:
                continue
            other_target = bool(target[favourite] != 1.0)
            for name, e in ests.items():
                out[name].append((e.low <= truth <= e.high, other_target))
    return out


def test_intervals_cover_the_true_value_on_thompson_logs() -> None:
    """Close arms (TS explores by itself) and far arms with a 10% floor: each method's
    95% interval covers the true target value in >= 90% of >= 100 pooled (seed, target)
    pairs with ESS >= 100, at least a third of them targets other than the favourite."""
    pooled: dict[str, list[tuple[bool, bool]]] = {"ips": [], "snips": [], "dr": []}
    for probs, explore, seed in (
        (np.array([0.55, 0.5, 0.45]), 0.0, 11),
        (np.array([0.7, 0.4, 0.2]), 0.1, 12),
    ):
        for name, pairs in _coverage(probs, explore, seed).items():
            pooled[name] += pairs
    for name, pairs in pooled.items():
        covered = np.array([c for c, _ in pairs])
        others = np.array([o for _, o in pairs])
        assert len(pairs) >= 100, (name, len(pairs))
        assert others.mean() >= 1 / 3, (name, others.mean())
        assert covered.mean() >= 0.9, (name, covered.mean(), len(pairs))
        # The other-than-favourite targets are covered too, not just carried by the rest.
        assert covered[others].mean() >= 0.9, (name, covered[others].mean())


def test_intervals_cover_the_truth_where_the_effective_sample_size_is_5_to_100() -> None:
    """The ope_coverage worlds (close and far rates, a dominant path, three good paths,
    very high rates, rare successes, two contexts whose best paths differ), 5 runs each,
    first 20–300 requests, four targets: >= 200 pooled cases with 5 <= ESS <= 100, each
    method's 95% interval holds the true value in >= 90% of them. The old normal
    approximation (value ± 1.96 standard errors) does not, on the same cases."""
    pool = ope_coverage.in_range(ope_coverage.all_cases(5, 1, (20, 50, 120, 300)))
    assert len(pool) == 414
    assert min(c.ess for c in pool) >= 5.0 and max(c.ess for c in pool) <= 100.0
    assert sum(c.ess < 20 for c in pool) >= 100  # the small end is well represented
    assert {c.world for c in pool} == {w.name for w in ope_coverage.WORLDS}
    for method in ("snips", "ips", "dr"):
        hits = sum(ope_coverage.covered(c, method) for c in pool)
        assert hits >= 0.9 * len(pool), (method, hits, len(pool))
    assert sum(ope_coverage.covered(c, "snips") for c in pool) == 410
    normal = sum(ope_coverage.normal_covered(c, "snips") for c in pool)
    assert normal < 0.9 * len(pool), normal


# --- evaluate() on a store given as Router(store=...) takes it ---------------------------


def _route(store: object, explore: float, requests: int = 300) -> None:
    """Seeded requests over "good" (90%) and "poor" (40%) paths, decisions logged."""
    rnd = random.Random(6)

    def make(p: float) -> Callable[[], str]:
        def call() -> str:
            return "ok" if rnd.random() < p else "bad"

        return call

    router = Router(
        [Path(make(0.9), name="good"), Path(make(0.4), name="poor")],
        lambda r: r == "ok",
        task="t",
        store=store,
        learning=Learning(seed=6, explore=explore),
        persistence=Persistence(durability="sync"),
    )
    for _ in range(requests):
        with contextlib.suppress(AllPathsFailed):
            router.run()
    router.close()


def test_evaluate_takes_a_url_an_engine_or_a_store(sql_url: str) -> None:
    """What Router(store=...) takes, on SQLite and a real PostgreSQL: the same numbers from
    the URL, an Engine and a Store; a Store passed in stays open."""
    _route(sql_url, explore=0.2)
    from_url = evaluate(sql_url, "t", "good")
    engine = sa.create_engine(sql_url)
    try:
        from_engine = evaluate(engine, "t", "good")
        with engine.connect() as conn:  # the caller's engine was not disposed of
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
    store = SQLStore(sql_url, create=False)
    try:
        from_store = evaluate(store, "t", "good")
        assert len(store.outcomes("t")) >= 300  # still open
    finally:
        store.close()
    assert from_url.value is not None and from_url.rows == 300
    assert from_url.as_dict() == from_engine.as_dict() == from_store.as_dict()
    assert from_url.low <= 0.9 <= from_url.high


def test_evaluate_errors_never_show_the_password(pg_url: str) -> None:
    secret = "hunter2-not-a-real-one"
    with_password = pg_url.replace("postgres@", f"postgres:{secret}@")
    assert secret in with_password  # trust auth: the server ignores it
    _route(with_password, explore=0.2, requests=50)
    with pytest.raises(ValueError, match="no logged requests of task 'other'") as caught:
        evaluate(with_password, "other", "good")
    assert secret not in str(caught.value)
    unreachable = f"postgresql+psycopg://postgres:{secret}@127.0.0.1:1/test"
    with pytest.raises(StoreUnavailableError, match="cannot reach") as down:
        evaluate(unreachable, "t", "good")
    assert secret not in str(down.value) and "***" in str(down.value)
    with pytest.raises(ConfigurationError, match="not a URL") as bad:
        evaluate(f"postgres:{secret}@localhost", "t", "good")
    assert secret not in str(bad.value)
    with pytest.raises(ConfigurationError, match="got int"):
        evaluate(3, "t", "good")  # type: ignore[arg-type]


def test_below_min_ess_evaluate_gives_no_value_but_the_reason(sqlite_url: str) -> None:
    _route(sqlite_url, explore=0.02)
    ev = evaluate(sqlite_url, "t", "poor")
    assert ev.effective_sample_size < MIN_ESS and ev.min_ess == MIN_ESS
    assert ev.value is None and ev.as_dict()["value"] is None
    assert ev.reason is not None
    assert ev.reason.startswith(
        f"effective sample size {ev.effective_sample_size:.1f} is below the minimum 20"
    )
    assert "always poor" in ev.reason and "min_ess=0" in ev.reason
    assert "no estimate" in str(ev)
    # The interval holds regardless, and the estimator's number is kept for whoever asks.
    assert ev.low <= ev.estimate.value <= ev.high and ev.high - ev.low > 0.3
    forced = evaluate(sqlite_url, "t", "poor", min_ess=0)
    assert forced.reason is None and forced.value == ev.estimate.value
    assert evaluate(sqlite_url, "t", "good").value is not None  # well covered
    for bad, match in ((-1, "min_ess must be"), (math.nan, "min_ess must be")):
        with pytest.raises(ValueError, match=match):
            evaluate(sqlite_url, "t", "poor", min_ess=bad)
    with pytest.raises(ValueError, match=r"max_missing_reward must be a share in \[0, 1\]"):
        evaluate(sqlite_url, "t", "poor", max_missing_reward=1.5)


def test_the_guides_evaluation_snippet_runs(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The snippet moved from the README (now a landing page) to the evaluation guide.
    guide = pathlib.Path(__file__).resolve().parent.parent / "docs" / "guides" / "evaluation.md"
    blocks = re.findall(r"```python\n(.*?)```", guide.read_text(), re.DOTALL)
    (snippet,) = [b for b in blocks if "from adaptive_router.ope.evaluation import evaluate" in b]
    monkeypatch.chdir(tmp_path)  # its SQLite file lands here
    exec(compile(snippet, "docs/guides/evaluation.md", "exec"), {})
    value, low, high, ess, logged = (float(x) for x in capsys.readouterr().out.split())
    assert low <= 0.8 <= high and low <= value <= high  # claude succeeds 80% of the time
    assert ess >= MIN_ESS and 0.8 < logged < 1.0
    assert (tmp_path / "evaluate_example.db").is_file()


def test_a_spend_target_is_refused_not_scored_as_another_objective(sqlite_url: str) -> None:
    """A spend target's price depends on its own counterfactual spend: evaluate() says so
    instead of ranking it as cost per success (what Objective(cost_weight=1) would be)."""
    from adaptive_router import Objective
    from adaptive_router.policies.objectives import ObjectiveThompsonSampling

    _route(sqlite_url, explore=0.2, requests=60)
    paced = Objective(target_usd_per_request=0.002)
    for target in (paced, ObjectiveThompsonSampling(objective=paced)):
        with pytest.raises(ValueError, match=r"target: a spend target .* cannot be evaluated"):
            evaluate(sqlite_url, "t", target)
    # The objectives it is not stay evaluable on the same logs.
    assert evaluate(sqlite_url, "t", "success", min_ess=0).value is not None
    assert evaluate(sqlite_url, "t", Objective(cost_weight=0.0), min_ess=0).value is not None
