"""First-attempt and after-failure evidence kept apart: unbiased ranking evidence when
failures are correlated across paths (hard inputs every path fails, inputs only some fail),
with an input-dependent ``success_fn`` and any mix of contexts, on every store."""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from conftest import StepClock

from adaptive_router import (
    AllPathsFailed,
    Learning,
    MemoryStore,
    Observability,
    Path,
    Router,
    SQLStore,
)
from adaptive_router.policies.objectives import ObjectiveThompsonSampling
from adaptive_router.policies.thompson import ThompsonSampling, takes_after_failure
from adaptive_router.simulation import UCB1, EpsilonGreedy
from adaptive_router.stores import open_store
from adaptive_router.stores.evidence import posteriors_from_states

# -- the worlds ---------------------------------------------------------------------------

#: Per path: input kind -> chance of success on an input of that kind.
Rates = dict[str, dict[str, float]]


@dataclass
class Run:
    """What a scenario left: the router (open: the test closes it), its outcome rows, and
    per request the paths it attempted, in order."""

    router: Router
    rows: list[Any]
    orders: list[list[str]]

    def first_share(self, since: int = 0) -> dict[str, float]:
        firsts = Counter(o[0] for o in self.orders[since:])
        n = len(self.orders) - since
        return {name: firsts[name] / n for name in self.router.ranking._names}


def run_world(
    rates: Rates,
    kind_of: Callable[[int], str],
    requests: int,
    seed: int,
    *,
    store: Any = "memory://",
    context_of: Callable[[int], str] | None = None,
    success_fn: Callable[[Any], bool] | None = None,
    half_life: float | None = None,
) -> Run:
    """Route ``requests`` inputs ``0, 1, ...`` whose kind is ``kind_of(i)``; path ``p``
    succeeds on one with probability ``rates[p][kind]``, drawn from its own seeded stream.
    A path returns ``(i, ok)``; the success function (by default ``ok``) judges it."""

    def make(name: str) -> Path:
        draws = random.Random(f"{seed}-{name}")

        def call(i: int) -> tuple[int, bool]:
            return i, draws.random() < rates[name][kind_of(i)]

        return Path(call, name=name, timeout=None, retry=None)

    clock = StepClock(step=0.25)
    router = Router(
        [make(name) for name in rates],
        success_fn=success_fn or (lambda r: r[1]),
        task="positions",
        store=store,
        half_life=half_life,
        learning=Learning(seed=seed, clock=clock, context_fn=context_of),
        observability=Observability(heartbeat=None),
    )
    orders: list[list[str]] = []
    for i in range(requests):
        with contextlib.suppress(AllPathsFailed):
            router.run(i)
    router.flush()
    rows = router.store.outcomes("positions")
    by_request: dict[str, list[Any]] = {}
    for o in rows:
        by_request.setdefault(o.request_id, []).append(o)
    for attempts in sorted(by_request.values(), key=lambda a: min(o.created_at for o in a)):
        orders.append([o.path for o in sorted(attempts, key=lambda o: o.attempt)])
    return Run(router, rows, orders)


def true_rate(rates: dict[str, float], kinds: dict[str, float]) -> float:
    """A path's unconditional success rate: over the kinds' shares of the inputs."""
    return sum(share * rates[kind] for kind, share in kinds.items())


def assert_within_sampling_error(mean: float, n: int, truth: float, what: str) -> None:
    """The issue's bar: 0.05 plus 3.5 standard deviations for the evidence count shown."""
    sd = math.sqrt(truth * (1.0 - truth) / max(n, 1))
    assert abs(mean - truth) <= 0.05 + 3.5 * sd, f"{what}: mean {mean:.3f} vs {truth:.3f}, n={n}"


def every_tenth_impossible(i: int) -> str:
    return "impossible" if i % 10 == 0 else "ordinary"


TENTH = {"impossible": 0.1, "ordinary": 0.9}


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.ERROR)  # every fallback is a WARNING line
    yield


# -- identical paths, failures correlated ---------------------------------------------------


@pytest.mark.parametrize("names", [("A", "B"), ("A", "B", "C")])
def test_identical_paths_learn_their_true_rate_and_none_starves(names: tuple[str, ...]) -> None:
    """The issue's reproduction: identical paths (90% on ordinary inputs, each failing its
    own 10% of them: inputs only some fail), every tenth input impossible for all, no final
    fallback, 2,000 requests, several seeds. Before: A 0.81, B 0.43, B got 1-6% of first
    attempts. Now every path's first-attempt mean is its true rate, 0.81, within sampling
    error, and averaged over seeds the least-used path gets >= 10% of first attempts."""
    rates = {name: {"impossible": 0.0, "ordinary": 0.9} for name in names}
    truth = true_rate(rates["A"], TENTH)
    least = []
    for seed in range(6):
        run = run_world(rates, every_tenth_impossible, 2_000, seed)
        for p in run.router.posteriors():
            assert_within_sampling_error(p.mean, p.n, truth, f"seed {seed} path {p.path}")
            # After another path failed the inputs are mostly the impossible ones: the
            # evidence that used to drag these paths down, now kept apart.
            if p.after_failure.n >= 30:
                assert p.after_failure.mean < 0.5, (seed, p.path, p.after_failure)
        # The counts shown are the first attempts made.
        shares = run.first_share()
        assert sum(p.n for p in run.router.posteriors()) == 2_000
        least.append(min(shares.values()))
        run.router.close()
    assert np.mean(least) >= 0.10, least


def test_identical_paths_on_every_store_equal_a_replay(store_url: str) -> None:
    """The same world on memory, SQLite and PostgreSQL (batch writes, a half-life): the
    stored first-attempt and after-failure rows equal what a memory store folds from the
    same outcome rows, and the first-attempt means are unbiased."""
    rates = {name: {"impossible": 0.0, "ordinary": 0.9} for name in ("A", "B", "C")}
    run = run_world(rates, every_tenth_impossible, 1_500, 11, store=store_url, half_life=3_000.0)
    truth = true_rate(rates["A"], TENTH)
    replay = MemoryStore()
    replay.write(run.rows, 3_000.0)
    want = replay.load_contexts("positions")[""]
    reopened = open_store(store_url) if store_url != "memory://" else run.router.store
    try:
        got = reopened.load_contexts("positions")[""]
    finally:
        if reopened is not run.router.store:
            reopened.close()
    assert set(got) == set(want) == {"A", "B", "C"}
    for name in want:
        for pos in ("first", "after_failure"):
            g, w = getattr(got[name], pos), getattr(want[name], pos)
            assert (g.successes, g.failures, g.ref_time) == (w.successes, w.failures, w.ref_time)
            assert g.success_w == pytest.approx(w.success_w, rel=1e-9)
            assert g.failure_w == pytest.approx(w.failure_w, rel=1e-9)
        first = [o for o in run.rows if o.path == name and o.attempt == 1]
        assert got[name].first.n == len(first)
        assert got[name].after_failure.n == sum(
            1 for o in run.rows if o.path == name and o.attempt > 1
        )
    for p in run.router.posteriors():
        assert_within_sampling_error(p.mean, p.n, truth, f"{store_url} {p.path}")
    run.router.close()


# -- a path better on average but worse where the others succeed ------------------------------


def test_the_best_path_goes_first_and_the_one_that_covers_its_failures_next() -> None:
    """A succeeds on 98% of ordinary inputs and never on the "hard" tenth; B on 75% of
    ordinary inputs and every hard one; C on 85% of ordinary and never on hard ones. A is
    best on average (0.882 against 0.775 and 0.765): once learned it leads >= 90% of first
    attempts, and after it fails (mostly the hard inputs) B, which succeeds there, is tried
    next, not C, though their averages are about the same."""
    rates = {
        "A": {"hard": 0.0, "ordinary": 0.98},
        "B": {"hard": 1.0, "ordinary": 0.75},
        "C": {"hard": 0.0, "ordinary": 0.85},
    }
    kinds = {"hard": 0.1, "ordinary": 0.9}

    def hard_tenth(i: int) -> str:
        return "hard" if i % 10 == 3 else "ordinary"

    for seed in range(3):
        run = run_world(rates, hard_tenth, 3_000, seed)
        learned = 1_000
        assert run.first_share(learned)["A"] >= 0.90, (seed, run.first_share(learned))
        after_a = [o for o in run.orders[learned:] if o[0] == "A" and len(o) > 1]
        assert len(after_a) >= 150
        next_is_b = sum(o[1] == "B" for o in after_a) / len(after_a)
        assert next_is_b >= 0.90, (seed, next_is_b)
        post = {p.path: p for p in run.router.posteriors()}
        for name, p in post.items():
            assert_within_sampling_error(p.mean, p.n, true_rate(rates[name], kinds), name)
        # After another path failed (A, mostly), B nearly always succeeded.
        assert post["B"].after_failure.mean > 0.85
        run.router.close()


# -- bad input: an input-dependent success_fn, a mix of contexts -------------------------------


def test_an_input_dependent_success_fn_gives_unbiased_first_attempt_evidence() -> None:
    """The success function rejects every answer on inputs divisible by 7 (the judge, not
    the paths, makes those inputs impossible for all) and accepts 85% of the others."""
    rates = {name: {"any": 0.85} for name in ("A", "B", "C")}
    run = run_world(
        rates,
        lambda i: "any",
        2_000,
        5,
        success_fn=lambda r: r[1] and r[0] % 7 != 0,
    )
    truth = 0.85 * 6 / 7
    for p in run.router.posteriors():
        assert_within_sampling_error(p.mean, p.n, truth, p.path)
        assert p.n > 100
    run.router.close()


def test_any_mix_of_contexts_gives_unbiased_first_attempt_evidence() -> None:
    """Three contexts with different shares of impossible inputs (none, a tenth, four
    tenths): each context's own first-attempt evidence (what routes it) estimates that
    context's rate. The task level pools them: it estimates the rate over the contexts the
    path was tried first in (each router of a context ranks on its own, so a path may lead
    more in one context than another)."""
    shares = {"easy": 0.0, "mixed": 0.1, "hard": 0.4}
    names = list(shares)

    def context_of(i: int) -> str:
        return names[i % 3]

    def kind_of(i: int) -> str:
        share = shares[context_of(i)]
        return "impossible" if (i // 3) % 10 < share * 10 else "ordinary"

    rates = {name: {"impossible": 0.0, "ordinary": 0.9} for name in ("A", "B")}
    run = run_world(rates, kind_of, 3_000, 2, context_of=context_of)
    store = run.router.store
    tried: Counter[tuple[str, str]] = Counter()
    for ctx, share in shares.items():
        truth = 0.9 * (1.0 - share)
        for p in posteriors_from_states(store.load("positions", ctx), ["A", "B"], (1, 1), None, 0):
            assert_within_sampling_error(p.mean, p.n, truth, f"{ctx} {p.path}")
            tried[(p.path, ctx)] = p.n
    for p in run.router.posteriors():
        over = sum(tried[(p.path, c)] * 0.9 * (1.0 - s) for c, s in shares.items()) / p.n
        assert p.n == sum(tried[(p.path, c)] for c in shares)
        assert_within_sampling_error(p.mean, p.n, over, f"task level {p.path}")
    run.router.close()


# -- the policy -----------------------------------------------------------------------------


def test_the_first_choice_is_drawn_from_first_attempt_evidence_alone() -> None:
    """With after-failure evidence the first path is the one the first-attempt draws pick
    (the same generator state, the same first choice); the others follow their
    after-failure draws: here the path best after a failure comes second though it is
    worst on first attempts."""
    pol = ThompsonSampling(explore=0.0)
    s = np.array([900.0, 500.0, 100.0])
    f = np.array([100.0, 500.0, 900.0])
    s2 = np.array([0.0, 10.0, 900.0])
    f2 = np.array([0.0, 990.0, 100.0])
    for seed in range(20):
        plain = pol.rank(s, f, np.random.default_rng(seed))
        split = pol.rank(s, f, np.random.default_rng(seed), s2, f2)
        assert plain.tolist() == [0, 1, 2]
        assert split.tolist() == [0, 2, 1]
    # With a generator of its own for the after-failure draws (as the Router and the
    # simulator give it), the first-choice generator is consumed as without them.
    explore = ThompsonSampling(explore=0.5)
    for seed in range(50):
        a, b = np.random.default_rng(seed), np.random.default_rng(seed)
        alone = explore.rank(s, f, a)
        both = explore.rank(s, f, b, s2, f2, after_rng=np.random.default_rng(99))
        assert alone[0] == both[0]
        assert a.random() == b.random()


def test_one_row_and_a_batch_draw_alike() -> None:
    """The Router's 1-D call and a batch row consume the generator identically, with the
    after-failure evidence too (the simulator's one-replication runs rely on it)."""
    rng = np.random.default_rng(0)
    s, f = rng.uniform(0, 30, (50, 4)), rng.uniform(0, 30, (50, 4))
    s2, f2 = rng.uniform(0, 30, (50, 4)), rng.uniform(0, 30, (50, 4))
    for pol in (
        ThompsonSampling(explore=0.2),
        ObjectiveThompsonSampling(explore=0.2, objective="cost"),
    ):
        kw: dict[str, Any] = {}
        if isinstance(pol, ObjectiveThompsonSampling):
            kw["costs"] = np.array([0.01, 0.002, 0.004, 0.003])
        for row in range(50):
            one = pol.rank(s[row], f[row], np.random.default_rng(row), s2[row], f2[row], **kw)
            batch = pol.rank(
                s[row : row + 1], f[row : row + 1], np.random.default_rng(row), s2[row : row + 1],
                f2[row : row + 1], **kw,
            )  # fmt: skip
            assert one.tolist() == batch[0].tolist()


def test_two_paths_draw_nothing_more() -> None:
    """With two paths the second is the other one: no after-failure draw, the same stream
    as ranking by first-attempt evidence alone (so routers of two paths route as before)."""
    pol = ThompsonSampling()
    s, f = np.array([[3.0, 5.0]] * 30), np.array([[2.0, 1.0]] * 30)
    a, b = np.random.default_rng(4), np.random.default_rng(4)
    assert pol.rank(s, f, a).tolist() == pol.rank(s, f, b, s * 9, f).tolist()
    assert a.random() == b.random()


def test_the_cost_objective_ranks_each_position_by_its_own_success_probability() -> None:
    """Costs equal: the first is the cheapest per first-attempt success, the rest the
    cheapest per success after a failure."""
    pol = ObjectiveThompsonSampling(explore=0.0, objective="cost")
    s, f = np.array([950.0, 600.0, 100.0]), np.array([50.0, 400.0, 900.0])
    s2, f2 = np.array([5.0, 10.0, 950.0]), np.array([995.0, 990.0, 50.0])
    costs = np.array([0.01, 0.01, 0.01])
    order = pol.rank(s, f, np.random.default_rng(1), s2, f2, costs=costs)
    assert order.tolist() == [0, 2, 1]
    batch = pol.rank(s[None], f[None], np.random.default_rng(1), s2[None], f2[None], costs=costs)
    assert batch[0].tolist() == [0, 2, 1]
    # A dear path that is best after a failure still waits behind a cheap enough one.
    dear = np.array([0.01, 0.01, 10.0])
    assert pol.rank(s, f, np.random.default_rng(1), s2, f2, costs=dear).tolist() == [0, 1, 2]


def test_only_policies_that_take_it_get_after_failure_evidence() -> None:
    assert takes_after_failure(ThompsonSampling())
    assert takes_after_failure(ObjectiveThompsonSampling())
    assert not takes_after_failure(UCB1())
    assert not takes_after_failure(EpsilonGreedy())
    assert not takes_after_failure(object())


def test_an_unknown_score_adds_no_information_at_its_position() -> None:
    """``score_fn`` returning None scores the attempt at the path's current posterior mean
    of the position it ran at: neither position's mean moves."""
    store = MemoryStore()
    clock = StepClock()

    def down(_: int) -> None:
        raise RuntimeError("down")

    router = Router(
        [Path(down, name="down", timeout=None, retry=None), Path(lambda i: i, name="up")],
        success_fn=None,
        score_fn=lambda r: None if r % 2 else 0.9,
        task="positions",
        store=store,
        learning=Learning(seed=3, clock=clock, explore=0.0),
        observability=Observability(heartbeat=None),
    )
    for i in range(0, 40, 2):
        with contextlib.suppress(AllPathsFailed):
            router.run(i)  # scored 0.9
    before = {p.path: (p.mean, p.after_failure.mean) for p in router.posteriors()}
    up = next(p for p in router.posteriors() if p.path == "up")
    assert up.n > 0 and up.after_failure.n > 0  # "up" ran in both positions
    for i in range(1, 40, 2):
        with contextlib.suppress(AllPathsFailed):
            router.run(i)  # score unknown
    after = {p.path: (p.mean, p.after_failure.mean) for p in router.posteriors()}
    assert after["up"] == pytest.approx(before["up"], rel=1e-12)
    now = clock.now
    path_up = router.paths[1]
    assert router.ranking.mean(path_up, now, "", 1) == pytest.approx(after["up"][0])
    assert router.ranking.mean(path_up, now, "", 2) == pytest.approx(after["up"][1])
    router.close()


def test_sql_stores_refuse_a_pre_0009_table(tmp_path: Any) -> None:
    """An old table is never read as if it were split: the store asks for the migration."""
    from adaptive_router.errors import ConfigurationError
    from adaptive_router.migrations import upgrade

    url = f"sqlite:///{tmp_path}/old.db"
    upgrade(url, revision="0008_rollups")
    with pytest.raises(ConfigurationError, match=r"path_stats\.position.*db upgrade"):
        SQLStore(url)


def test_the_logged_decision_is_the_first_attempt_evidence() -> None:
    """A routed request's first attempt logs the evidence its first choice was drawn from:
    the first-attempt weights, not the after-failure ones (propensities stay those of the
    first attempt)."""
    rates = {name: {"impossible": 0.0, "ordinary": 0.9} for name in ("A", "B", "C")}
    run = run_world(rates, every_tenth_impossible, 300, 4)
    router = run.router
    before = {p.path: p for p in router.posteriors()}
    assert all(p.after_failure.n > 0 for p in before.values())
    seen = {o.request_id for o in run.rows}
    with contextlib.suppress(AllPathsFailed):
        router.run(1)
    router.flush()
    new = [o for o in router.store.outcomes("positions") if o.request_id not in seen]
    (first,) = [o for o in new if o.attempt == 1]
    decision = first.decision
    assert decision is not None and decision.paths == ("A", "B", "C")
    assert list(decision.successes) == [before[n].alpha - 1.0 for n in decision.paths]
    assert list(decision.failures) == [before[n].beta - 1.0 for n in decision.paths]
    router.close()
