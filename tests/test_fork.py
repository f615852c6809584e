"""A Router used in a forked child works as in the parent.

``multiprocessing`` with the fork start method, as Celery's prefork pool and
``gunicorn --preload`` do it: the Router is built in the parent and the children build
nothing. A multiprocessing child always ends in ``os._exit`` (no atexit handlers), so
what it routes is stored only if its own writer runs or it flushes. The gunicorn tests
are in test_deploy.py.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest
import sqlalchemy as sa

from adaptive_router import Learning, Observability, Path, Persistence, Router, forks
from adaptive_router.providers import openai_path
from adaptive_router.resilience import RateLimit, call_with_timeout, to_daemon_thread
from adaptive_router.stores.sql import SQLStore
from adaptive_router.stores.sql_fork import GatedQueuePool
from adaptive_router.testing import FakeProvider, reply

FORK = multiprocessing.get_context("fork")
PARENT_REQUESTS = 20
CHILD_REQUESTS = 50
CHILDREN = 2
#: How long a child may take to route and store; never reached when the code works.
DEADLINE_S = 120.0


def _answer(text: Any) -> str:
    return f"ok {text}"


def _router(
    url: str, seen: list[str], flush_interval: float = 0.5, heartbeat: float | None = 5.0
) -> Router:
    return Router(
        [Path(_answer, name="a"), Path(_answer, name="b")],
        success_fn=bool,
        task=f"fork-{uuid.uuid4().hex[:8]}",
        store=url,
        learning=Learning(seed=3),
        persistence=Persistence(flush_interval=flush_interval),
        observability=Observability(
            on_outcome=lambda o: seen.append(o.request_id), heartbeat=heartbeat
        ),
    )


def _in_child(target: Callable[[Connection], None]) -> dict[str, Any]:
    """Run ``target(conn)`` in a forked child that ends in ``os._exit(0)``; what it sent."""
    receive, send = FORK.Pipe(duplex=False)

    def main() -> None:
        try:
            target(send)
        except BaseException as exc:  # reported to the parent, which fails the test
            send.send({"error": repr(exc)})
        send.close()
        os._exit(0)

    child = FORK.Process(target=main)
    child.start()
    send.close()
    try:
        if not receive.poll(DEADLINE_S):
            child.kill()
            raise AssertionError(f"the child sent nothing within {DEADLINE_S:g} s")
        result: dict[str, Any] = receive.recv()
    finally:
        child.join(DEADLINE_S)
    assert child.exitcode == 0
    assert "error" not in result, result["error"]
    return result


@pytest.fixture
def held_writer() -> Iterator[Callable[[Router], Callable[[], None]]]:
    """Hold a router's write lock from another thread, as its writer does in the middle of
    a flush: the parent's outcomes stay buffered, and the lock is held at the fork. Returns
    the function that lets it go (also called at teardown)."""
    releases: list[Callable[[], None]] = []

    def hold(router: Router) -> Callable[[], None]:
        taken, release = threading.Event(), threading.Event()

        def run() -> None:
            with router._recorder._io_lock:
                taken.set()
                release.wait()

        holder = threading.Thread(target=run, daemon=True)
        holder.start()
        taken.wait()

        def let_go() -> None:
            release.set()
            holder.join()

        releases.append(let_go)
        return let_go

    yield hold
    for let_go in releases:
        let_go()


def _stored(url: str, task: str) -> tuple[dict[str, int], int]:
    """``({request_id: rows}, evidence count)`` of ``task``."""
    store = SQLStore(url)
    try:
        with store.engine.connect() as conn:
            rows = dict(
                conn.execute(
                    sa.text(
                        "SELECT request_id, COUNT(*) FROM outcomes WHERE task = :t "
                        "GROUP BY request_id"
                    ),
                    {"t": task},
                ).all()
            )
            evidence = conn.execute(
                sa.text(
                    "SELECT SUM(successes + failures) FROM path_stats "
                    "WHERE task = :t AND context = ''"
                ),
                {"t": task},
            ).scalar_one()
    finally:
        store.close()
    return rows, int(evidence or 0)


@pytest.mark.parametrize("ending", ["flush", "writer"])
def test_fork_children_that_exit_with_os_exit_store_every_outcome_once(
    sql_url: str, ending: str, held_writer: Callable[[Router], Callable[[], None]]
) -> None:
    """Children route with the parent's router and end in ``os._exit(0)``, after
    ``router.flush()`` or once their own writer has written everything (past the flush
    interval: no flush call). The parent's outcomes buffered at the fork are written
    once, by the parent."""
    seen: list[str] = []
    router = _router(url=sql_url, seen=seen, flush_interval=0.2)
    let_go = held_writer(router)
    for i in range(PARENT_REQUESTS):
        router.run(i)
    parent_ids = list(seen)
    assert router.buffered_outcomes == PARENT_REQUESTS  # still the parent's at the fork

    def child(conn: Connection) -> None:
        inherited = router.buffered_outcomes
        seen.clear()
        for i in range(CHILD_REQUESTS):
            router.run(i)
        if ending == "flush":
            router.flush()
        else:
            # Wait for the child's own writer; no flush from here.
            deadline = time.monotonic() + DEADLINE_S / 2
            while router.buffered_outcomes and time.monotonic() < deadline:
                time.sleep(0.05)
        conn.send({"inherited": inherited, "ids": list(seen), "left": router.buffered_outcomes})

    results = [_in_child(child) for _ in range(CHILDREN)]

    assert [r["inherited"] for r in results] == [0] * CHILDREN
    assert [r["left"] for r in results] == [0] * CHILDREN
    child_ids = [rid for r in results for rid in r["ids"]]
    assert len(child_ids) == CHILDREN * CHILD_REQUESTS
    let_go()
    router.close()  # the parent's own (it still held them): written now, by the parent
    rows, evidence = _stored(sql_url, router.task)
    expected = parent_ids + child_ids
    assert rows == dict.fromkeys(expected, 1)
    assert evidence == len(expected)


def test_a_forked_child_runs_its_own_writer_heartbeat_and_pool(sql_url: str) -> None:
    """Nothing starts in a child until it uses the router; then its writer (which also
    refreshes the cache from the store) and heartbeat run there, on a connection pool of
    its own; the timeout pool's workers of the parent are not waited for."""
    seen: list[str] = []
    router = _router(url=sql_url, seen=seen, heartbeat=0.2)
    router.run(0)  # the parent's timeout pool has an idle worker now
    engine = router.store.engine
    with engine.connect() as conn:
        backend = _backend_id(conn)
    if engine.dialect.name == "postgresql":  # SQLite's are closed before a fork
        assert engine.pool.checkedin() >= 1  # type: ignore[attr-defined]
    parent_pool = engine.pool

    def child(conn: Connection) -> None:
        pooled = engine.pool.checkedin()  # type: ignore[attr-defined]
        before = {t.name for t in threading.enumerate() if t.is_alive()}
        router.run(1)
        after = {t.name for t in threading.enumerate() if t.is_alive()}
        # Its writer's first tick refreshes from the store; its heartbeat beats.
        deadline = time.monotonic() + DEADLINE_S / 2
        while router._recorder._last_refresh < 0 or not router._heartbeat.beats:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        with engine.connect() as c:
            child_backend = _backend_id(c)
        conn.send(
            {
                "before": sorted(before),
                "after": sorted(after),
                "refreshed": router._recorder._last_refresh > 0,
                "beats": router._heartbeat.beats,
                "pid_in_row": router._heartbeat.identity.pid == os.getpid(),
                "new_pool": engine.pool is not parent_pool,
                "pooled_at_start": pooled,
                "backend": child_backend,
                "timeout_call": call_with_timeout(os.getpid, 30.0) == os.getpid(),
                "daemon_thread": asyncio.run(to_daemon_thread(os.getpid)) == os.getpid(),
            }
        )

    got = _in_child(child)
    task = router.task
    writer, heart = f"adaptive-router-writer[{task}]", f"adaptive-router-heartbeat-{task}"
    assert writer not in got["before"] and heart not in got["before"]
    assert {writer, heart} <= set(got["after"])
    assert got["refreshed"] and got["beats"] >= 1 and got["pid_in_row"]
    # A pool of its own, empty at the start: no connection of the parent's is used there.
    assert got["new_pool"] and got["pooled_at_start"] == 0
    assert got["backend"] != backend
    assert got["timeout_call"] and got["daemon_thread"]
    router.close()


def _backend_id(conn: sa.Connection) -> object:
    """Which database connection ``conn`` is: PostgreSQL's backend pid; for SQLite (no
    server) the process id and the DBAPI connection object's id."""
    if conn.dialect.name == "postgresql":
        return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    return (os.getpid(), id(conn.connection.dbapi_connection))


def test_a_sqlite_transaction_in_progress_at_a_fork_is_waited_for(
    sqlite_url: str,
) -> None:
    """SQLite forbids a connection crossing a fork: a child inheriting one that holds a
    lock waits on it forever ("database is locked"). The fork waits for the transaction
    in progress in another thread and closes the pool's connections first."""
    seen: list[str] = []
    router = _router(url=sqlite_url, seen=seen)
    engine = router.store.engine
    assert isinstance(engine.pool, GatedQueuePool)
    gate = engine.pool.gate
    assert gate is not None
    in_tx, release = threading.Event(), threading.Event()

    def transaction() -> None:
        with engine.begin() as conn:  # BEGIN IMMEDIATE: the write lock
            conn.execute(sa.text("SELECT COUNT(*) FROM outcomes")).scalar_one()
            in_tx.set()
            release.wait()

    def release_once_the_fork_waits() -> None:
        deadline = time.monotonic() + DEADLINE_S / 2
        while gate._forking is None and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()

    tx = threading.Thread(target=transaction, daemon=True)
    tx.start()
    in_tx.wait()
    releaser = threading.Thread(target=release_once_the_fork_waits, daemon=True)
    releaser.start()

    def child(conn: Connection) -> None:
        seen.clear()
        for i in range(5):
            router.run(i)
        router.flush()
        conn.send({"left": router.buffered_outcomes, "ids": list(seen)})

    got = _in_child(child)
    tx.join()
    releaser.join()
    assert got["left"] == 0
    router.close()
    rows, _ = _stored(sqlite_url, router.task)
    assert {rid: rows.get(rid) for rid in got["ids"]} == dict.fromkeys(got["ids"], 1)


def _redis_or_skip() -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2).ping()
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            pytest.fail("Redis at 127.0.0.1:6379 is required under CI=true")
        pytest.skip("Redis is not reachable")


def test_a_forked_child_talks_to_redis_on_its_own_connection(sqlite_url: str) -> None:
    _redis_or_skip()
    limit = RateLimit(
        requests_per_minute=10_000, storage="redis://127.0.0.1:6379", key=uuid.uuid4().hex
    )
    client: Any = limit.storage.storage  # type: ignore[attr-defined]
    assert limit.try_acquire()
    parent_id = client.client_id()

    def child(conn: Connection) -> None:
        conn.send({"acquired": limit.try_acquire(), "id": client.client_id()})

    got = _in_child(child)
    assert got["acquired"] is True
    assert got["id"] != parent_id
    assert limit.try_acquire()
    assert client.client_id() == parent_id  # the parent's connection is intact


def test_a_forked_child_makes_its_own_provider_client(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider path's SDK client made by the router (from the environment) is not
    shared: the child makes its own, the parent's keeps working."""
    with FakeProvider() as fake:
        fake.default("gpt-4o", reply("fine"))
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
        path = openai_path("gpt-4o", "{text}")
        call: Any = path.fn
        router = Router([path], success_fn=bool, task="fork-http", store=sqlite_url)
        assert router.run("parent") == "fine"
        parent_client = call._client
        assert parent_client is not None

        def child(conn: Connection) -> None:
            answer = router.run("child")
            conn.send({"answer": answer, "own_client": call._client is not parent_client})

        got = _in_child(child)
        assert got == {"answer": "fine", "own_client": True}
        assert router.run("parent again") == "fine"
        assert call._client is parent_client
        router.close()
        texts = [r.body["messages"][0]["content"] for r in fake.requests]
        assert texts == ["parent", "child", "parent again"]


def test_fork_hooks_run_in_the_order_objects_were_built_and_survive_a_failure() -> None:
    """A store's hook runs before the recorder's built on it; one hook raising does not
    leave the others undone (it is logged)."""

    class Probe:
        def __init__(self, name: str, calls: list[str], fail: bool = False) -> None:
            self.name, self.calls, self.fail = name, calls, fail
            forks.follow(self)

        def _after_fork_in_child(self) -> None:
            self.calls.append(self.name)
            if self.fail:
                raise RuntimeError("boom")

    calls: list[str] = []
    probes = [Probe("first", calls), Probe("failing", calls, fail=True), Probe("last", calls)]

    def child(conn: Connection) -> None:
        conn.send({"calls": calls})

    assert _in_child(child) == {"calls": ["first", "failing", "last"]}
    assert calls == []  # nothing runs in the parent
    del probes


def test_an_unseeded_router_draws_its_own_numbers_in_each_forked_child(sqlite_url: str) -> None:
    """Without a seed, each child's Thompson draws and retry jitter are its own (not the
    parent's next numbers, which every worker would otherwise share); with a seed they
    continue the parent's stream, reproducibly."""
    unseeded = Router([Path(_answer, name="a")], success_fn=bool, task="u", store=sqlite_url)
    seeded = _router(url=sqlite_url, seen=[])  # seed=3
    jitter = unseeded.path_settings["a"].retry.wait.rng  # type: ignore[union-attr]

    def draws(conn: Connection) -> None:
        conn.send(
            {
                "routing": float(unseeded.ranking.rng.random()),
                "jitter": jitter.random(),
                "seeded": float(seeded.ranking.rng.random()),
            }
        )

    children = [_in_child(draws), _in_child(draws)]
    parent = {
        "routing": float(unseeded.ranking.rng.random()),
        "jitter": jitter.random(),
        "seeded": float(seeded.ranking.rng.random()),
    }
    for key in ("routing", "jitter"):
        values = {parent[key], children[0][key], children[1][key]}
        assert len(values) == 3, key
    assert children[0]["seeded"] == children[1]["seeded"] == parent["seeded"]
    unseeded.close()
    seeded.close()


def test_a_forked_child_computes_the_propensities_of_its_own_decisions(sql_url: str) -> None:
    """The propensity thread is the child's own: started by the child's first committed
    decision (the parent's is not inherited), it fills in the propensity of every first
    attempt the child routed, and the parent's rows keep theirs."""
    seen: list[str] = []
    router = _router(url=sql_url, seen=seen, flush_interval=0.1, heartbeat=None)
    for i in range(5):
        router.run(i)
    router.flush()
    name = f"adaptive-router-propensity[{router.task}]"

    def child(conn: Connection) -> None:
        before = {t.name for t in threading.enumerate() if t.is_alive()}
        mine = []
        for i in range(20):
            router.run(100 + i)
            mine.append(seen[-1])
        router.flush()
        log = router._decisions
        assert log is not None
        deadline = time.monotonic() + DEADLINE_S / 2
        while log.computed < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        after = {t.name for t in threading.enumerate() if t.is_alive()}
        conn.send(
            {
                "before": name in before,
                "after": name in after,
                "computed": log.computed,
                "mine": mine,
            }
        )

    got = _in_child(child)
    assert "error" not in got, got
    assert got["before"] is False and got["after"] is True
    assert got["computed"] == 20
    rows = [o for o in router.store.outcomes(router.task) if o.attempt == 1]
    by_id = {o.request_id: o for o in rows}
    assert len(by_id) == len(rows) == 25  # every first attempt stored once
    assert all(by_id[rid].propensity is not None for rid in got["mine"])
    assert all(0.0 < by_id[rid].propensity <= 1.0 for rid in got["mine"])  # type: ignore[operator]
    router.close()
