"""Propensities: exact first-attempt probabilities against Monte Carlo of the real policy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from adaptive_router.policies.propensity import (
    EvidenceSnapshot,
    SnapshotBatch,
    first_choice_probabilities,
    logged_propensities,
    propensities,
)
from adaptive_router.policies.thompson import ThompsonSampling

DRAWS = 1_000_000
#: Six standard errors of a 10⁶-draw frequency at p = 1/2.
TOLERANCE = 3e-3


def _posteriors(k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sharp (α + β ~ 10⁴) and wide posteriors mixed, with close means so that both
    matter: at least one of each when K > 2."""
    a, b = np.empty(k), np.empty(k)
    for j in range(k):
        if j % 2 == 0:
            s, m = 10 ** rng.uniform(3.6, 4.1), rng.uniform(0.73, 0.77)
            a[j], b[j] = m * s, (1 - m) * s
        else:
            a[j] = rng.uniform(1, 30)
            b[j] = max(1.0, a[j] * rng.uniform(0.25, 0.45))
    return a, b


def _mc_policy(
    a: np.ndarray, b: np.ndarray, explore: float, skipped: np.ndarray, seed: int
) -> np.ndarray:
    """Frequencies of the first *attempted* path, using ThompsonSampling.rank itself (the
    code the Router runs) and the Router's skip rule: first non-skipped in the order."""
    policy = ThompsonSampling(prior=(1.0, 1.0), explore=explore)
    rng = np.random.default_rng(seed)
    k = len(a)
    counts = np.zeros(k)
    for _ in range(4):
        n = DRAWS // 4
        order = policy.rank(np.tile(a - 1.0, (n, 1)), np.tile(b - 1.0, (n, 1)), rng)
        open_rank = np.where(skipped[order], k, np.arange(k))
        first = order[np.arange(n), open_rank.argmin(axis=1)]
        counts += np.bincount(first, minlength=k)
    return counts / DRAWS


def _mc_costs(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, explore: float, skipped: np.ndarray, seed: int
) -> np.ndarray:
    """Ranking by c/θ (smaller first), floor and skips as in the policy."""
    rng = np.random.default_rng(seed)
    k = len(a)
    theta = rng.beta(a, b, size=(DRAWS, k))
    key = c / theta
    pick = rng.integers(0, k, DRAWS)
    exploring = rng.random(DRAWS) < explore
    key[np.arange(DRAWS)[exploring], pick[exploring]] = -1.0
    key[:, skipped] = np.inf
    return np.bincount(key.argmin(axis=1), minlength=k) / DRAWS


CASES = [
    # (K, explore, skip these indices, with costs)
    (2, 0.0, (), False),
    (3, 0.0, (), False),
    (4, 0.1, (), False),
    (5, 0.02, (1,), False),
    (6, 0.0, (), False),
    (6, 0.1, (0, 3), False),
    (3, 0.0, (), True),
    (5, 0.1, (2,), True),
]


@pytest.mark.parametrize(("k", "explore", "skip", "with_costs"), CASES)
def test_agrees_with_monte_carlo(
    k: int, explore: float, skip: tuple[int, ...], with_costs: bool
) -> None:
    rng = np.random.default_rng(100 + k)
    a, b = _posteriors(k, rng)
    skipped = np.zeros(k, dtype=bool)
    skipped[list(skip)] = True
    if with_costs:
        c = rng.uniform(0.9, 1.1, k)
        mc = _mc_costs(a, b, c, explore, skipped, seed=k)
    else:
        c = None
        mc = _mc_policy(a, b, explore, skipped, seed=k)
    p = first_choice_probabilities(a, b, explore=explore, skipped=skipped, costs=c)[0]
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(p[skipped] == 0.0)
    # The case is informative: more than one path has real probability.
    assert np.sort(mc)[-2] > 0.01
    assert np.abs(p - mc).max() < TOLERANCE, (p, mc)


def test_agrees_with_adaptive_quadrature_on_many_posteriors() -> None:
    """Quadrature error well below the Monte Carlo tolerance, over 16 random decisions."""
    rng = np.random.default_rng(7)
    worst = 0.0
    for trial in range(16):
        k = int(rng.integers(2, 7))
        a, b = _posteriors(k, rng)
        c = rng.uniform(0.8, 1.25, k) if trial % 2 else np.ones(k)
        p = first_choice_probabilities(a, b, costs=c)[0]
        ref = []
        for i in range(k):

            def integrand(
                y: float, i: int = i, a: np.ndarray = a, b: np.ndarray = b, c: np.ndarray = c
            ) -> float:
                others = special.betainc(a, b, np.minimum(c * y, 1.0))
                others[i] = 1.0
                return float(c[i] * stats.beta.pdf(c[i] * y, a[i], b[i]) * np.prod(others))

            mean = a[i] / (a[i] + b[i]) / c[i]
            ref.append(integrate.quad(integrand, 0, 1 / c[i], points=[mean], limit=500)[0])
        worst = max(worst, float(np.abs(p - np.array(ref) / sum(ref)).max()))
    assert worst < 2e-4


def test_batches_mix_path_counts_and_match_single_decisions() -> None:
    rng = np.random.default_rng(3)
    snaps = []
    for k in (2, 3, 2, 5, 3):
        a, b = _posteriors(k, rng)
        snaps.append(EvidenceSnapshot(tuple(a), tuple(b), explore=0.05))
    rows = propensities(snaps)
    assert [len(r) for r in rows] == [2, 3, 2, 5, 3]
    for snap, row in zip(snaps, rows, strict=True):
        alone = first_choice_probabilities(snap.alpha, snap.beta, explore=0.05)[0]
        np.testing.assert_allclose(row, alone, atol=1e-12)
    logged = logged_propensities(snaps, [0, 2, 1, 4, 0])
    np.testing.assert_allclose(logged, [rows[0][0], rows[1][2], rows[2][1], rows[3][4], rows[4][0]])


def test_symmetric_and_degenerate_cases() -> None:
    # Identical posteriors: uniform, whatever the floor.
    p = first_choice_probabilities(np.full((2, 4), 30.0), np.full((2, 4), 10.0), explore=[0.0, 0.3])
    np.testing.assert_allclose(p, 0.25, atol=1e-9)
    # Every path skipped: the fallback went first; no learned path has probability.
    p = first_choice_probabilities([3.0, 4.0], [2.0, 2.0], skipped=[True, True], explore=0.1)
    assert np.all(p == 0.0)
    # One path open: it is attempted first, surely.
    p = first_choice_probabilities([3.0, 4.0, 9.0], [2.0, 2.0, 1.0], skipped=[True, False, True])
    np.testing.assert_allclose(p[0], [0.0, 1.0, 0.0])
    # Far apart sharp posteriors: the floor alone gives the worse path its share.
    p = first_choice_probabilities([9000.0, 1000.0], [1000.0, 9000.0], explore=0.1)
    np.testing.assert_allclose(p[0], [0.95, 0.05], atol=1e-12)


def test_batch_dataclass_round_trip() -> None:
    batch = SnapshotBatch.from_arrays([[2.0, 3.0]], [[1.0, 1.0]], explore=0.0)
    assert len(batch) == 1
    (row,) = propensities(batch)
    # P(θ1 > θ0) for Beta(3,1) vs Beta(2,1): ∫ 3x² · x² dx = 3/5.
    np.testing.assert_allclose(row, [0.4, 0.6], atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"alpha": [[1.0, -1.0]], "beta": [[1.0, 1.0]]}, "alpha"),
        ({"alpha": [[1.0, 1.0]], "beta": [[1.0, np.nan]]}, "beta"),
        ({"alpha": [[1.0, 1.0]], "beta": [[1.0]]}, "alpha and beta"),
        ({"alpha": [[1.0, 1.0]], "beta": [[1.0, 1.0]], "explore": 1.0}, "explore"),
        ({"alpha": [[1.0, 1.0]], "beta": [[1.0, 1.0]], "costs": [0.0, 1.0]}, "costs"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict[str, object], name: str) -> None:
    alpha, beta = kwargs.pop("alpha"), kwargs.pop("beta")
    with pytest.raises(ValueError, match=name):
        first_choice_probabilities(alpha, beta, **kwargs)  # type: ignore[arg-type]


def test_snapshot_validation() -> None:
    with pytest.raises(ValueError, match="beta"):
        EvidenceSnapshot((1.0, 2.0), (1.0,))
    with pytest.raises(ValueError, match="attempted"):
        logged_propensities([EvidenceSnapshot((1.0,), (1.0,))], [0, 1])
    with pytest.raises(ValueError, match=r"attempted\[0\]"):
        logged_propensities([EvidenceSnapshot((1.0, 2.0), (1.0, 1.0))], [2])


def test_singular_densities_of_priors_below_one() -> None:
    """Jeffreys-prior posteriors with little evidence have densities that are infinite at
    0 or 1; panels graded toward the ends keep the error far below the MC tolerance."""
    a = np.array([0.5, 0.5, 1.5])
    b = np.array([0.5, 2.0, 0.5])
    p = first_choice_probabilities(a, b)[0]
    for i in range(3):
        others = [j for j in range(3) if j != i]

        def integrand(x: float, i: int = i, others: list[int] = others) -> float:
            cdfs = [stats.beta.cdf(x, a[j], b[j]) for j in others]
            return float(stats.beta.pdf(x, a[i], b[i]) * np.prod(cdfs))

        ref = integrate.quad(integrand, 0, 1, limit=500, points=[0.5])[0]
        assert abs(p[i] - ref) < 2e-4, (i, p[i], ref)
