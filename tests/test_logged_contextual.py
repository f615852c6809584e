"""Decisions of a feature router and of a spend-target router, logged for ``evaluate()``.

A feature router's first attempt carries a version-4 record (each path's score mean and
standard deviation, λ·c, ε, the skipped paths); a spend-target router's a version-3 one
(the Beta evidence, the per-attempt costs and λ). Their propensities are computed in the
background like the Beta ones, agree with Monte Carlo of the same decision, and
``evaluate()`` reweights them. Records of earlier versions still decode.
"""

from __future__ import annotations

import contextlib
import logging
import random
from typing import Any

import numpy as np
import pytest
from conftest import StepClock

from adaptive_router import AllPathsFailed, Budget, Learning, Objective, Path, Router
from adaptive_router.features import hash_features
from adaptive_router.ope.evaluation import evaluate
from adaptive_router.outcomes import Outcome, Result, Usage
from adaptive_router.policies.contextual import ContextualThompsonSampling
from adaptive_router.policies.contextual_decision import (
    GaussianDecision,
    GaussianDecisionEncoder,
    decode,
)
from adaptive_router.policies.logged_decision import LoggedDecision, PricedDecisionEncoder
from adaptive_router.policies.propensity import (
    decision_probabilities,
    decision_propensities,
    first_choice_probabilities,
)

#: Success probability per path and request kind, and each path's cost per call.
WORLD = {
    "p0": ((0.9, 0.3), 0.004),
    "p1": ((0.5, 0.7), 0.002),
    "p2": ((0.2, 0.6), 0.001),
    "p3": ((0.4, 0.4), 0.003),
    "p4": ((0.6, 0.2), 0.005),
}


@pytest.fixture(autouse=True)
def _quiet() -> Any:
    logging.getLogger("adaptive_router").setLevel(logging.ERROR)
    yield
    logging.getLogger("adaptive_router").setLevel(logging.NOTSET)


def _kind(kind: str) -> dict[str, str]:
    """The feature function: the request's kind, as an indicator."""
    return {"kind": kind}


_kind.dim = 16  # type: ignore[attr-defined]  # the hashed dimension the router uses


def _paths(k: int, seed: int) -> list[Path]:
    rng = random.Random(seed)

    def make(name: str) -> Path:
        (pa, pb), cost = WORLD[name]

        def call(kind: str) -> Result:
            return Result(rng.random() < (pa if kind == "a" else pb), Usage(cost_usd=cost))

        return Path(call, name=name)

    return [make(f"p{i}") for i in range(k)]


def _router(url: str, k: int, seed: int, explore: float, **kw: Any) -> Router:
    return Router(
        _paths(k, seed),
        bool,
        "ctx",
        store=url,
        features=_kind,
        budget=Budget(max_attempts=1),
        learning=Learning(seed=seed, explore=explore, clock=StepClock()),
        **kw,
    )


def _run(router: Router, n: int) -> None:
    for i in range(n):
        with contextlib.suppress(AllPathsFailed):
            router.run("a" if i % 2 else "b")


def _firsts(router: Router) -> list[Outcome]:
    router.flush()
    return [o for o in router.store.outcomes("ctx") if o.attempt == 1]


def _monte_carlo(d: GaussianDecision, draws: int, seed: int) -> np.ndarray:
    """First-choice frequencies of the policy's own draw from the record's fields:
    scores N(mean, sd), minus λ·c, argmax; ε: a uniform path first; skipped passed over."""
    rng = np.random.default_rng(seed)
    k = d.k
    m, s = np.asarray(d.means), np.asarray(d.sds)
    shift = 0.0 if d.costs_usd is None else d.price * np.asarray(d.costs_usd)
    scores = m + s * rng.standard_normal((draws, k)) - shift
    explored = rng.random(draws) < d.explore
    pick = rng.integers(0, k, draws)
    scores[explored, pick[explored]] = np.inf
    skip = np.asarray(d.skipped_flags)
    scores[:, skip] = -np.inf  # passed over: the next best goes first
    first = scores.argmax(axis=1)
    return np.bincount(first, minlength=k) / draws


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_logged_propensities_of_a_feature_router_agree_with_monte_carlo(k: int) -> None:
    target = Objective(target_usd_per_request=0.002) if k >= 4 else "success"
    with _router("memory://", k, seed=k, explore=0.05, objective=target) as router:
        _run(router, 120)
        firsts = _firsts(router)
    decisions = [o.decision for o in firsts]
    assert all(isinstance(d, GaussianDecision) for d in decisions)
    assert len(firsts) == 120
    # Computed in the background (close() drains the queue), the record's own first choice.
    props = [o.propensity for o in firsts]
    assert all(p is not None and 0.0 < p <= 1.0 for p in props)
    again = decision_propensities(decisions)  # type: ignore[arg-type]
    assert np.allclose(again, np.array(props, dtype=float), rtol=0, atol=1e-12)
    last = decisions[-1]
    assert isinstance(last, GaussianDecision)
    if k >= 4:
        assert last.costs_usd is not None
        assert [round(c, 6) for c in last.costs_usd] == [WORLD[p][1] for p in last.paths]
        assert last.price >= 0.0
    else:
        assert last.costs_usd is None and last.price == 0.0
    assert last.explore == 0.05
    # The last few decisions (the evidence moved, so they differ): 10⁶ draws each.
    worst = 0.0
    for j, d in enumerate(decisions[-3:]):
        assert isinstance(d, GaussianDecision)
        exact = decision_probabilities([d])[0]
        assert exact.sum() == pytest.approx(1.0, abs=1e-9)
        worst = max(worst, float(np.abs(exact - _monte_carlo(d, 1_000_000, 100 * k + j)).max()))
    assert worst < 3e-3


def test_the_record_is_what_the_policy_ranked_on_with_skips_and_a_price() -> None:
    """A policy-level decision encoded as the Router encodes it gives, decoded, the
    decision's own exact propensities; with a price and a skipped path too."""
    policy = ContextualThompsonSampling(16, explore=0.1)
    model = policy.new_model(4)
    rng = np.random.default_rng(3)
    for i in range(200):
        x = hash_features({"kind": "a" if i % 2 else "b", "len": i % 5}, 16)
        policy.observe(model, i % 4, x, float(rng.random() < 0.3 + 0.1 * (i % 4)), float(i))
    x = hash_features({"kind": "a", "len": 2}, 16)
    costs = [0.004, 0.002, 0.001, 0.003]
    decision = policy.rank(model, x, rng, costs, 40.0)
    skipped = (False, True, False, False)
    enc = GaussianDecisionEncoder(("w", "x", "y", "z"), decision.explore)
    raw = enc.encode(decision.means, decision.sds, 2, skipped, decision.costs, decision.price)
    back = decode(raw)
    assert isinstance(back, GaussianDecision)
    assert back.first == "y" and back.skipped == skipped and back.price == 40.0
    assert back.to_bytes() == raw
    assert decode(back.to_json()) == back
    want = decision.propensities(skipped)
    assert np.allclose(decision_probabilities([back])[0], want, rtol=0, atol=1e-12)
    assert want[1] == 0.0
    # The policy itself, 200,000 seeded draws on the same model and request.
    draws = 200_000
    counts = np.zeros(4)
    for _ in range(draws):
        order = policy.rank(model, x, rng, costs, 40.0).order
        counts[next(int(i) for i in order if not skipped[int(i)])] += 1
    assert np.abs(counts / draws - want).max() < 3e-3


def test_spend_target_beta_propensities_take_the_shifts() -> None:
    """θ − λ·c: the shifted integral against 10⁶ draws, K = 2..5, with ε and a skip."""
    rng = np.random.default_rng(11)
    worst = 0.0
    for k in range(2, 6):
        a = rng.uniform(1.0, 60.0, k)
        b = rng.uniform(1.0, 60.0, k)
        shifts = rng.uniform(0.0, 0.3, k)
        skip = np.zeros(k, dtype=bool)
        skip[k - 1] = k > 2
        exact = first_choice_probabilities(a, b, explore=0.05, skipped=skip, shifts=shifts)[0]
        n = 1_000_000
        theta = rng.beta(a, b, size=(n, k)) - shifts
        explored = rng.random(n) < 0.05
        pick = rng.integers(0, k, n)
        theta[explored, pick[explored]] = np.inf
        theta[:, skip] = -np.inf
        mc = np.bincount(theta.argmax(axis=1), minlength=k) / n
        worst = max(worst, float(np.abs(mc - exact).max()))
        # No shift: the unshifted integral (on the shifted grid: to quadrature error).
        assert np.allclose(
            first_choice_probabilities(a, b, shifts=np.zeros(k)),
            first_choice_probabilities(a, b),
            rtol=0,
            atol=2e-4,
        )
    assert worst < 3e-3
    with pytest.raises(ValueError, match="shifts"):
        first_choice_probabilities([1.0, 2.0], [1.0, 1.0], shifts=[-0.1, 0.0])


def test_a_spend_target_router_logs_version_3_records(sqlite_url: str) -> None:
    paths = _paths(3, seed=5)
    with Router(
        paths,
        bool,
        "ctx",
        store=sqlite_url,
        objective=Objective(target_usd_per_request=0.0015),
        budget=Budget(max_attempts=1),
        learning=Learning(seed=5, explore=0.1, clock=StepClock()),
    ) as router:
        _run(router, 300)
    with Router(paths, bool, "ctx", store=sqlite_url) as reader:
        firsts = _firsts(reader)
    assert len(firsts) == 300
    d = firsts[-1].decision
    assert isinstance(d, LoggedDecision)
    assert d.price is not None and d.price > 0.0  # the target binds: λ > 0
    assert d.costs_usd is not None and list(d.costs_usd) == pytest.approx([0.004, 0.002, 0.001])
    assert firsts[-1].decision_data is not None and firsts[-1].decision_data[0] == 3
    assert all(o.propensity is not None and 0 < o.propensity <= 1 for o in firsts)
    got = evaluate(sqlite_url, "ctx", "p2", min_ess=0)
    assert got.rows == 300 and got.without_propensity == 0
    truth = (0.2 + 0.6) / 2
    assert got.low <= truth <= got.high


@pytest.mark.parametrize("where", ["memory", "sqlite"])
def test_evaluate_scores_a_fixed_path_on_a_feature_routers_logs(
    where: str, sqlite_url: str
) -> None:
    """A seeded world: p1 succeeds on kind a with 0.5, on b with 0.7; half the requests of
    each kind, so always-p1 is worth 0.6. The feature router learned p0 for a and p1 for
    b; the logs reweighted give p1's value, its interval around the truth."""
    url = "memory://" if where == "memory" else sqlite_url
    with _router(url, 3, seed=21, explore=0.2) as router:
        _run(router, 1600)
        router.flush()
        if where == "memory":
            got = evaluate(router.store, "ctx", "p1")
            mix = evaluate(router.store, "ctx", {"p0": 0.5, "p2": 0.5}, method="ips")
    if where == "sqlite":
        got = evaluate(url, "ctx", "p1")
        mix = evaluate(url, "ctx", {"p0": 0.5, "p2": 0.5}, method="ips")
    assert got.rows == 1600 and got.without_propensity == 0
    assert got.value is not None
    assert got.low <= 0.6 <= got.high
    assert abs(got.value - 0.6) < 0.06
    assert got.effective_sample_size > 100
    truth_mix = 0.5 * (0.9 + 0.3) / 2 + 0.5 * (0.2 + 0.6) / 2  # 0.5
    assert mix.low <= truth_mix <= mix.high
    assert mix.value is not None and abs(mix.value - truth_mix) < 0.08
    # The logged router did better than either fixed choice: it routes by kind.
    assert got.logged > 0.62


def test_a_policy_target_on_contextual_logs_is_refused_with_the_alternative() -> None:
    with _router("memory://", 2, seed=2, explore=0.1) as router:
        _run(router, 40)
        router.flush()
        with pytest.raises(ValueError, match="path name or a"):
            evaluate(router.store, "ctx", "cost", min_ess=0)


#: A version-2 record written by the previous release (two paths, a cost objective, path
#: b skipped, a first): it must decode to the same fields, forever.
V2 = bytes.fromhex(
    "02070200010061010062000000000000f03f000000000000f03f7b14ae47e17a943f000000000000f03f"
    "00000000000000000000000000000840000000000000f83f000000000000004000000000000010407b14"
    "ae47e17a843ffca9f1d24d62603f00010000"
)


def test_old_version_records_still_decode() -> None:
    d = decode(V2)
    assert isinstance(d, LoggedDecision)
    assert d.paths == ("a", "b") and d.first == "a" and d.skipped == (False, True)
    assert list(d.successes) == [3.0, 1.5] and list(d.failures) == [2.0, 4.0]
    assert d.objective == (1.0, 0.0) and list(d.costs_usd or []) == [0.01, 0.002]
    assert d.price is None and d.explore == 0.02
    assert d.to_bytes() == V2 and LoggedDecision.from_bytes(V2) == d
    # JSON of version 1, as development builds stored it.
    j = '{"v":1,"paths":["a","b"],"successes":[1.0,2.0],"failures":[0.0,1.0],"prior":[1.0,1.0],"explore":0.02,"first":"b"}'  # noqa: E501
    old = decode(j)
    assert isinstance(old, LoggedDecision) and old.first == "b" and old.to_bytes()[0] == 2
    p = decision_propensities([d, old])
    assert 0.0 < p[0] <= 1.0 and 0.0 < p[1] <= 1.0
    # Version 3 round trips (binary and JSON) and its encoder writes the same bytes.
    v3 = LoggedDecision(
        ("a", "b"),
        [3.0, 1.5],
        [2.0, 4.0],
        (1.0, 1.0),
        0.02,
        costs_usd=[0.01, 0.0],
        first="b",
        price=12.5,
    )
    raw = v3.to_bytes()
    assert raw[0] == 3 and decode(raw) == v3 and decode(v3.to_json()) == v3
    enc = PricedDecisionEncoder(("a", "b"), (1.0, 1.0), 0.02)
    assert enc.encode(np.array([3.0, 1.5]), np.array([2.0, 4.0]), 1, None, [0.01, 0.0], 12.5) == raw
    # Version 3's shift floors a free path's cost as the ranking does (λ · 1e-12).
    alpha, beta = (4.0, 2.5), (3.0, 5.0)
    want = first_choice_probabilities(alpha, beta, explore=0.02, shifts=[0.125, 12.5e-12])[0]
    assert decision_propensities([v3])[0] == pytest.approx(want[1], abs=1e-12)
    # Malformed records name the problem; a Beta reader points to decode() for version 4.
    g = GaussianDecision(("a", "b"), [0.1, 0.2], [0.3, 0.4], 0.02, first="a").to_bytes()
    with pytest.raises(ValueError, match="decode"):
        LoggedDecision.from_bytes(g)
    with pytest.raises(ValueError, match=r"truncated|bytes"):
        decode(g[:-3])
    with pytest.raises(ValueError, match=r"truncated|bytes"):
        decode(raw[:-1])
    with pytest.raises(ValueError, match="unknown format version"):
        decode(b"\x09abc")
