"""One half-life per task: registered atomically when the task's first router (or
Reporter) starts, before any evidence is flushed; a different one is refused, naming both."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from adaptive_router import ConfigurationError, Outcome, Path, Persistence, Reporter, Router
from adaptive_router.stores import MemoryStore, SQLStore, Store, open_store


def paths(*names: str) -> list[Path]:
    return [Path(lambda: True, name=n) for n in names]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def shared(request: pytest.FixtureRequest, tmp_path: Any) -> str | Store:
    """What two routers of one task share: one MemoryStore object, one SQLite file, one
    PostgreSQL schema."""
    if request.param == "memory":
        return MemoryStore()
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.db"
    url: str = request.getfixturevalue("pg_url")
    return url


def test_two_routers_started_before_either_flushes_keep_the_first_half_life(
    shared: str | Store,
) -> None:
    first = Router(
        paths("a"),
        bool,
        "hl",
        store=shared,
        half_life=60,
        persistence=Persistence(flush_interval=1.0),
    )
    try:
        for _ in range(5):
            first.run()  # buffered, not flushed: nothing of the task is stored yet
        with pytest.raises(ConfigurationError) as info:
            Router(paths("b"), bool, "hl", store=shared, half_life=timedelta(hours=1))
        text = str(info.value)
        assert "task 'hl' is learned with half_life=60 s" in text
        assert "this Router has half_life=3600 s" in text
        assert "pass half_life=60.0" in text
        assert "Reporter has" not in text and "'a'" not in text  # no other router's path
        same = Router(paths("b"), bool, "hl", store=shared, half_life=60.0)
        same.close()
        first.flush()
        learned = first.store.load("hl").values()
        assert {st.half_life_s for ev in learned for st in ev.states() if st.n} == {60.0}
    finally:
        first.close()


def test_the_refusal_names_none_as_never_forget_for_router_and_reporter(
    shared: str | Store,
) -> None:
    with Router(paths("a"), bool, "hl", store=shared, half_life=60):
        with pytest.raises(ConfigurationError) as info:
            Router(paths("a"), bool, "hl", store=shared)
        assert "this Router has half_life=None (never forget)" in str(info.value)
        with pytest.raises(ConfigurationError) as info:
            Reporter("hl", shared)
        assert "this Reporter has half_life=None (never forget)" in str(info.value)
        assert "half_life=60 s" in str(info.value)
        with Reporter("hl", shared, half_life=60) as reporter:
            assert reporter.half_life == 60.0
    with (
        Router(paths("a"), bool, "never", store=shared),
        pytest.raises(ConfigurationError, match=r"learned with half_life=None \(never"),
    ):
        Router(paths("a"), bool, "never", store=shared, half_life=30)


def test_routers_starting_at_once_agree_on_one_half_life(shared: str | Store) -> None:
    """Eight routers (each with its own connection pool on SQL stores) start together,
    half with 60 s and half with 3,600 s: exactly the ones that agree with the first to
    register start; every other is refused naming both values."""
    n = 8
    barrier = threading.Barrier(n)
    started: list[tuple[float, Router]] = []
    refused: list[tuple[float, str]] = []
    lock = threading.Lock()

    def start(i: int) -> None:
        half_life = 60.0 if i % 2 else 3600.0
        barrier.wait()
        try:
            router = Router(paths("a"), bool, "race", store=shared, half_life=half_life)
        except ConfigurationError as exc:
            with lock:
                refused.append((half_life, str(exc)))
        else:
            with lock:
                started.append((half_life, router))

    threads = [threading.Thread(target=start, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(started) == len(refused) == n // 2
        winner = started[0][0]
        loser = 3600.0 if winner == 60.0 else 60.0
        assert {h for h, _ in started} == {winner} and {h for h, _ in refused} == {loser}
        for _, text in refused:
            assert f"learned with half_life={winner:g} s" in text
            assert f"this Router has half_life={loser:g} s" in text
        for _, router in started:
            router.run()
    finally:
        for _, router in started:
            router.close()
    store = shared if isinstance(shared, Store) else open_store(shared)
    try:
        learned = store.load("race").values()
        assert {st.half_life_s for ev in learned for st in ev.states() if st.n} == {winner}
        assert store.register_half_life("race", loser) == winner
    finally:
        if store is not shared:
            store.close()


def test_a_database_learned_before_registration_keeps_its_half_life(sql_url: str) -> None:
    """Evidence written without a registration (a database of an earlier version): its
    half-life is the task's, registered by the first router that starts."""
    store = SQLStore(sql_url)
    try:
        old = Outcome("r1", "legacy", "a", 1, True, created_at=1_700_000_000.0)
        store.write([old], 120.0)
    finally:
        store.close()
    with pytest.raises(ConfigurationError, match="learned with half_life=120 s"):
        Router(paths("a"), bool, "legacy", store=sql_url, half_life=60)
    with Router(paths("a"), bool, "legacy", store=sql_url, half_life=120) as router:
        assert router.store.register_half_life("legacy", None) == 120.0


def test_the_registration_is_no_evidence(sql_url: str) -> None:
    """The registration row is invisible to every read: no path, no context, no task."""
    with Router(paths("a", "b"), bool, "quiet", store=sql_url, half_life=60) as router:
        assert router.store.tasks() == []
        assert router.store.load("quiet") == {}
        assert router.store.load_contexts("quiet") == {}
        assert router.contexts() == []
        assert [p.n for p in router.posteriors()] == [0, 0]
        router.run(context="fr")
        router.refresh()
        assert router.store.tasks() == ["quiet"]
        assert set(router.store.load_contexts("quiet")) == {"", "fr"}
        assert router.contexts() == ["fr"]
        assert sum(p.n for p in router.posteriors()) == 1


def test_a_store_without_registration_falls_back_to_its_evidence() -> None:
    """The Store contract's default (a user's own store): the stored evidence decides."""

    class Plain(MemoryStore):
        register_half_life = Store.register_half_life

    store = Plain()
    assert store.register_half_life("t", 60.0) == 60.0
    store.write([Outcome("r1", "t", "a", 1, True, created_at=1.0)], 30.0)
    assert store.register_half_life("t", 60.0) == 30.0
