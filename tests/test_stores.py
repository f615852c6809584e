"""Store semantics shared by MemoryStore and SQLStore, and the decay arithmetic."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptive_router import (
    Learning,
    MemoryStore,
    Observability,
    Outcome,
    SQLStore,
    ThompsonSampling,
)
from adaptive_router.policies.thompson import decay_factor, fold
from adaptive_router.stores import Store, open_store


def outcome(rid: str, path: str, success: bool, t: float, attempt: int = 1) -> Outcome:
    return Outcome(
        request_id=rid,
        task="t",
        path=path,
        attempt=attempt,
        success=success,
        kind=None if success else "rejected",
        created_at=t,
        latency_ms=1.0,
    )


@pytest.fixture
def store(store_url: str) -> Store:
    s = open_store(store_url)
    yield s  # type: ignore[misc]
    s.close()


def test_write_is_idempotent(store: Store) -> None:
    batch = [outcome(f"r{i}", "a", i % 3 == 0, 100.0 + i) for i in range(30)]
    assert store.write(batch, 10.0) == 30
    before = store.load("t")["a"].first
    # A retried flush (e.g. after a lost COMMIT acknowledgment) must not count twice.
    assert store.write(batch, 10.0) == 0
    assert store.write([*batch[:5], outcome("new", "a", True, 140.0)], 10.0) == 1
    after = store.load("t")["a"].first
    assert after.successes == before.successes + 1
    assert after.failures == before.failures
    assert len(store.outcomes("t")) == 31


def test_out_of_order_writes_equal_replay(store: Store) -> None:
    rng = random.Random(5)
    events = [(f"r{i}", rng.random() < 0.6, 1000.0 + rng.uniform(0, 300)) for i in range(400)]
    shuffled = events[:]
    rng.shuffle(shuffled)
    for start in range(0, len(shuffled), 37):  # uneven batches, arbitrary order
        store.write([outcome(r, "p", s, t) for r, s, t in shuffled[start : start + 37]], 30.0)
    st_ = store.load("t")["p"].first
    ref = max(t for _, _, t in events)
    assert st_.ref_time == ref
    exp_s = sum(decay_factor(ref - t, 30.0) for _, s, t in events if s)
    exp_f = sum(decay_factor(ref - t, 30.0) for _, s, t in events if not s)
    assert st_.success_w == pytest.approx(exp_s, rel=1e-9)
    assert st_.failure_w == pytest.approx(exp_f, rel=1e-9)
    assert st_.half_life_s == 30.0


def test_window_stats(store: Store) -> None:
    batch = [
        Outcome("r1", "t", "a", 1, True, None, None, 10.0, 100, 50, 0.01, 1000.0),
        Outcome("r2", "t", "a", 1, False, "timeout", "slow", 30.0, None, None, None, 1001.0),
        Outcome("r2", "t", "b", 2, True, None, None, 20.0, 10, 5, None, 1001.5),
        Outcome("r0", "t", "a", 1, True, None, None, 99.0, 1, 1, 1.0, 10.0),  # outside window
    ]
    store.write(batch, None)
    stats = {s.path: s for s in store.window_stats("t", since=500.0)}
    a, b = stats["a"], stats["b"]
    assert (a.attempts, a.successes, a.timeouts, a.first_attempts) == (2, 1, 1, 2)
    assert a.success_rate == 0.5 and a.errors == {"timeout": 1}
    assert a.latency_p50_ms == pytest.approx(20.0)
    assert (a.input_tokens, a.output_tokens, a.cost_usd) == (100, 50, pytest.approx(0.01))
    assert (b.attempts, b.first_attempts, b.cost_usd) == (1, 0, None)


def test_repr_masks_password(pg_url: str) -> None:
    url = pg_url.replace("postgres@", "postgres:hunter2-canary@")
    s = SQLStore(url)
    try:
        assert "hunter2-canary" not in repr(s)
        assert "***" in repr(s)
    finally:
        s.close()


def test_memory_store_bounds_its_log() -> None:
    s = MemoryStore(max_outcomes=10)
    s.write([outcome(f"r{i}", "a", True, float(i)) for i in range(25)], None)
    assert len(s.outcomes("t")) == 10
    assert s.load("t")["a"].first.successes == 25  # evidence is kept even when rows are evicted


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(0, 1000)), min_size=1, max_size=40),
    st.one_of(st.none(), st.floats(0.5, 500)),
)
def test_fold_equals_replay_in_any_order(
    events: list[tuple[bool, float]], half_life: float | None
) -> None:
    sums = (0.0, 0.0, events[0][1])
    for ok, t in events:
        sums = fold(sums, 1.0 if ok else 0.0, t, half_life)
    ref = max(t for _, t in events)
    assert sums[2] == ref
    assert sums[0] == pytest.approx(
        sum(decay_factor(ref - t, half_life) for ok, t in events if ok), rel=1e-9, abs=1e-12
    )
    assert sums[1] == pytest.approx(
        sum(decay_factor(ref - t, half_life) for ok, t in events if not ok), rel=1e-9, abs=1e-12
    )


def test_policy_rank_is_seeded_and_vectorised() -> None:
    pol = ThompsonSampling(explore=0.0)
    s = np.array([[90.0, 10.0, 50.0]] * 4)
    f = np.array([[10.0, 90.0, 50.0]] * 4)
    a = pol.rank(s, f, np.random.default_rng(1))
    b = pol.rank(s, f, np.random.default_rng(1))
    assert a.shape == (4, 3) and (a == b).all()
    assert (a[:, 0] == 0).all() and (a[:, 2] == 1).all()


def test_exploration_floor_gives_every_path_traffic() -> None:
    pol = ThompsonSampling(explore=0.1)
    s = np.tile([1000.0, 0.0, 0.0], (20_000, 1))
    f = np.tile([0.0, 1000.0, 1000.0], (20_000, 1))
    first = pol.rank(s, f, np.random.default_rng(0))[:, 0]
    shares = np.bincount(first, minlength=3) / len(first)
    # A uniformly chosen path leads 10% of the time: each cold path gets ~1/30.
    assert shares[1] == pytest.approx(0.1 / 3, abs=0.006)
    assert shares[2] == pytest.approx(0.1 / 3, abs=0.006)


def test_routers_on_one_memory_store_share_its_evidence_counted_once() -> None:
    """A memory store's evidence is read in place by its routers (no second copy folded
    per request): each outcome counts once, another router on the store sees it at once,
    and the store's own copy (load) agrees with what the routers route on."""
    from adaptive_router import Path, Router

    store = MemoryStore()
    calls = {"ok": 0, "bad": 0}

    def ok() -> str:
        calls["ok"] += 1
        return "x"

    def bad() -> str:
        calls["bad"] += 1
        raise RuntimeError("down")

    def shared(seed: int) -> Router:
        return Router(
            [Path(ok, name="ok", timeout=None), Path(bad, name="bad", timeout=None, retry=None)],
            bool,
            task="shared",
            store=store,
            learning=Learning(seed=seed),
            observability=Observability(heartbeat=None),
        )

    a, b = shared(1), shared(2)
    other = Router(
        [Path(ok, name="ok", timeout=None)],
        bool,
        task="other",
        store=store,
        observability=Observability(heartbeat=None),
    )
    try:
        for _ in range(30):
            a.run()

        def counts(router: Router) -> dict[str, tuple[int, int, int, int]]:
            return {
                p.path: (
                    p.successes,
                    p.failures,
                    p.after_failure.successes,
                    p.after_failure.failures,
                )
                for p in router.posteriors()
            }

        seen_by_b, seen_by_a = counts(b), counts(a)
        assert seen_by_b == seen_by_a  # no refresh needed: the same objects
        ok_n, bad_n = seen_by_a["ok"], seen_by_a["bad"]
        # Every request ends on "ok", once each: first, or after "bad" failed.
        assert ok_n[0] + ok_n[2] == 30 and ok_n[1] == ok_n[3] == 0
        assert bad_n[0] == bad_n[2] == bad_n[3] == 0  # "bad" always fails, and goes first
        assert bad_n[1] == calls["bad"] == ok_n[2] > 0
        stored = store.load("shared")
        for name, n in (("ok", ok_n), ("bad", bad_n)):
            first, after = stored[name].first, stored[name].after_failure
            assert (first.successes, first.failures, after.successes, after.failures) == n
        assert calls["ok"] == 30
        # Another task's router on the same store sees none of it, and tasks() lists
        # only tasks with evidence.
        assert {p.path: p.n for p in other.posteriors()} == {"ok": 0}
        assert store.tasks() == ["shared"]
        b.run()
        assert sum(counts(a)["ok"]) == 31
    finally:
        for r in (a, b, other):
            r.close()


def test_sqlite_reads_take_no_write_lock(tmp_path: object) -> None:
    """A read in progress (a dashboard's, another process's refresh) leaves writers free:
    the store's reads begin deferred. A transaction begun IMMEDIATE, as writes are, does
    hold writers off: the same write then fails after the busy timeout."""
    import sqlalchemy as sa

    from adaptive_router.errors import StoreUnavailableError
    from adaptive_router.stores import SQLStore

    url = f"sqlite:///{tmp_path}/reads.db"
    reading, writing = SQLStore(url), SQLStore(url, busy_timeout_s=0.2)
    try:
        writing.write([outcome("r0", "a", True, 1.0)], None)
        with reading.reader.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM outcomes")).scalar() == 1
            # The read transaction is still open here.
            assert writing.write([outcome("r1", "a", False, 2.0)], None) == 1
        assert [o.success for o in reading.outcomes("t")] == [True, False]
        with reading.engine.connect() as conn:
            conn.execute(sa.text("SELECT count(*) FROM outcomes"))
            with pytest.raises((StoreUnavailableError, sa.exc.OperationalError)):
                writing.write([outcome("r2", "a", True, 3.0)], None)
    finally:
        reading.close()
        writing.close()
