"""The simulator's contextual replay: the compiled kernel against the policy objects."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_router.features import SparseVector
from adaptive_router.policies.contextual import ContextualThompsonSampling
from adaptive_router.simulation.contextual import replay

pytest.importorskip("numba")


def sfc(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.SFC64(seed))


def _world(
    seed: int, n: int, dim: int, k: int, empty_every: int = 0
) -> tuple[list[SparseVector | None], np.ndarray, np.ndarray]:
    """Requests with 1..6 features; each path's success depends on two of them."""
    rng = np.random.default_rng(seed)
    vectors: list[SparseVector | None] = []
    for i in range(n):
        if empty_every and i % empty_every == 0:
            vectors.append(None)
            continue
        nnz = int(rng.integers(1, 7))
        idx = np.sort(rng.choice(dim, size=nnz, replace=False)).astype(np.intp)
        vectors.append(SparseVector(idx, rng.normal(0.0, 0.6, nnz)))
    p = rng.uniform(0.3, 0.8, size=(n, k))
    rewards = (rng.random((n, k)) < p).astype(np.float64)
    costs = rng.uniform(0.0001, 0.003, size=(n, k)) * np.linspace(3.0, 0.5, k)
    return vectors, rewards, costs


def _assert_same(a, b) -> None:  # type: ignore[no-untyped-def]
    np.testing.assert_array_equal(a.choices, b.choices)
    np.testing.assert_array_equal(a.prices, b.prices)
    # The statistics are folded in the same order with the same operations: equal.
    np.testing.assert_array_equal(a.xx, b.xx)
    np.testing.assert_array_equal(a.xy, b.xy)
    assert a.spend_w == b.spend_w and a.requests_w == b.requests_w
    # The cached posterior: Sherman–Morrison and refactorisations, equal to rounding.
    np.testing.assert_allclose(a.mean, b.mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.cov, b.cov, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("half_life", "pacer_half_life", "explore", "empty_every"),
    [
        (None, None, 0.1, 0),
        (150.0, 300.0, 0.05, 7),  # decay: lazy factor, refactorisation by tolerance
        (3.0, None, 0.02, 0),  # the lazy factor underflows and is folded into the sums
    ],
)
def test_the_compiled_replay_makes_the_policy_objects_decisions(
    half_life: float | None, pacer_half_life: float | None, explore: float, empty_every: int
) -> None:
    dim, k, n = 12, 3, 1_200
    vectors, rewards, costs = _world(1, n, dim, k, empty_every)
    policy = ContextualThompsonSampling(
        dim, variance_scale=0.5, explore=explore, half_life=half_life
    )
    order = np.random.default_rng(2).integers(0, n, size=1_500)  # requests recur
    runs = []
    for engine in ("numba", "numpy"):
        rng = sfc(3)
        res = replay(
            policy,
            vectors,
            rewards,
            costs,
            rng=rng,
            order=order,
            target_usd_per_request=0.0012,
            pacer_half_life=pacer_half_life,
            engine=engine,  # type: ignore[arg-type]
        )
        assert res.engine == engine
        runs.append((res, rng.random(4).tolist()))
    (a, after_a), (b, after_b) = runs
    _assert_same(a, b)
    assert after_a == after_b  # the generator continues where the policy objects leave it
    # The replay did something worth comparing: every path tried, the price moved.
    assert set(a.choices.tolist()) == set(range(k))
    assert a.prices.max() > 0.0 and a.prices.min() == 0.0
    np.testing.assert_array_equal(a.rewards, rewards[order, a.choices])
    np.testing.assert_array_equal(a.spend, costs[order, a.choices])


def test_on_mmlu_prompts_at_the_default_dimension() -> None:
    from adaptive_router.features import DEFAULT_DIM, hash_features, text_features
    from benchmarks.mmlu_replay import load_questions

    q = load_questions().take(range(800))
    f = text_features()
    vectors = [hash_features(f(p), DEFAULT_DIM) for p in q.prompt]
    policy = ContextualThompsonSampling()
    a, b = (
        replay(
            policy,
            vectors,
            q.correct,
            q.cost,
            rng=sfc(5),
            target_usd_per_request=float(q.cost.mean()),
            engine=engine,  # type: ignore[arg-type]
        )
        for engine in ("numba", "numpy")
    )
    _assert_same(a, b)
    assert 0.2 < float(np.mean(a.choices == 0)) < 0.8
    # No spend target: the price stays 0 and the choice is by success alone.
    c = replay(policy, vectors, q.correct, q.cost, rng=sfc(6), engine="numba")
    assert c.prices.max() == 0.0 and c.requests_w == 0.0


def test_bad_input_is_named() -> None:
    policy = ContextualThompsonSampling(4)
    vectors: list[SparseVector | None] = [None, None]
    ok = np.ones((2, 2))
    with pytest.raises(ValueError, match="SFC64"):
        replay(policy, vectors, ok, ok, rng=np.random.default_rng(0), engine="numba")
    with pytest.raises(ValueError, match=r"rewards must have shape \(requests, paths\)"):
        replay(policy, vectors, np.ones(2), ok, rng=sfc(0))
    with pytest.raises(ValueError, match=r"rewards must be in \[0, 1\]"):
        replay(policy, vectors, ok * 2.0, ok, rng=sfc(0))
    with pytest.raises(ValueError, match="costs must be >= 0"):
        replay(policy, vectors, ok, -ok, rng=sfc(0))
    with pytest.raises(ValueError, match=r"order must be request indices in \[0, 2\)"):
        replay(policy, vectors, ok, ok, rng=sfc(0), order=[0, 2])
    with pytest.raises(ValueError, match="engine must be"):
        replay(policy, vectors, ok, ok, rng=sfc(0), engine="fast")  # type: ignore[arg-type]
    wide = [SparseVector(np.array([4]), np.array([1.0])), None]
    for engine in ("numba", "numpy"):
        with pytest.raises(ValueError, match=r"feature indices must lie in \[0, 4\)"):
            replay(policy, wide, ok, ok, rng=sfc(0), engine=engine)  # type: ignore[arg-type]


def test_requests_laid_out_once_replay_alike() -> None:
    from adaptive_router.simulation.contextual import Requests

    vectors, rewards, costs = _world(4, 300, 10, 2, empty_every=5)
    requests = Requests.of(vectors, 10)
    assert len(requests) == 300
    assert requests.vector(0) is None  # no features: the bias alone
    v = requests.vector(1)
    assert v is not None and vectors[1] is not None
    np.testing.assert_array_equal(v.indices, vectors[1].indices)
    np.testing.assert_array_equal(v.values, vectors[1].values)
    policy = ContextualThompsonSampling(10)
    for engine in ("numba", "numpy"):
        a = replay(policy, requests, rewards, costs, rng=sfc(8), engine=engine)  # type: ignore[arg-type]
        b = replay(policy, vectors, rewards, costs, rng=sfc(8), engine=engine)  # type: ignore[arg-type]
        np.testing.assert_array_equal(a.choices, b.choices)
    with pytest.raises(ValueError, match="requests hashed at dim 10 for a policy of dim 12"):
        replay(ContextualThompsonSampling(12), requests, rewards, costs, rng=sfc(0))
