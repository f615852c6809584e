"""Off-policy estimators: exact formulas, bad input, and interval coverage on bandit logs
collected by the real Thompson Sampling policy with exact propensities."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from adaptive_router.evaluation import (
    Estimate,
    LowEffectiveSampleSize,
    effective_sample_size,
    estimate,
)
from adaptive_router.policy import ThompsonSampling
from adaptive_router.propensity import first_choice_probabilities


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
    assert ips.low < ips.value < ips.high
    se = np.std(w * r, ddof=1) / np.sqrt(5000)
    assert ips.high - ips.value == pytest.approx(1.959963984540054 * se, rel=1e-12)


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
    t[:40] = 1.0
    with pytest.warns(LowEffectiveSampleSize, match="effective sample size"):
        est = estimate(r, p, t, "snips")
    assert est.effective_sample_size < 100
    assert effective_sample_size(np.ones(10)) == pytest.approx(10.0)


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
    95% interval covers the true target value in >= 85% of >= 100 pooled (seed, target)
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
        assert covered.mean() >= 0.85, (name, covered.mean(), len(pairs))
        # The other-than-favourite targets are covered too, not just carried by the rest.
        assert covered[others].mean() >= 0.8, (name, covered[others].mean())
