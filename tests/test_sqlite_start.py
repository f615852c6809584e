"""Opening a new SQLite file from many processes at once never fails.

Root cause of the start race: a new SQLite file is in rollback-journal mode, and
``PRAGMA journal_mode = WAL`` (run on every new connection) first takes a read lock,
then upgrades it to a write lock to rewrite the header. SQLite never calls the busy
handler for a connection that already holds a read lock (waiting could deadlock), so
when another connection holds the write lock at that moment — another process's own
WAL switch, or any writer — the PRAGMA fails at once with "database is locked",
whatever the busy timeout.
"""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading
import time
from pathlib import Path as FsPath

from adaptive_router import Outcome, SQLStore

PROCESSES = 16
ROUNDS = 4


def test_store_waits_for_a_writer_holding_a_new_file(tmp_path: FsPath) -> None:
    # Deterministic interleaving: another connection holds the write lock of a new
    # (rollback-journal) file for 0.3 s while a store opens it. Before the fix the store
    # failed within milliseconds despite its 10 s busy timeout.
    db = tmp_path / "new.db"
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE other (x INTEGER)")
    release = threading.Timer(0.3, holder.execute, ("COMMIT",))
    release.start()
    started = time.monotonic()
    try:
        store = SQLStore(f"sqlite:///{db}")
    finally:
        release.join()
        holder.close()
    try:
        assert time.monotonic() - started >= 0.25  # it waited for the lock
        assert store.write([_outcome("r1")], None) == 1
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        store.close()


def _outcome(request_id: str) -> Outcome:
    return Outcome(
        request_id=request_id,
        task="t",
        path="a",
        attempt=0,
        success=True,
        created_at=time.time(),
    )


def _open_rounds(
    directory: str, worker: int, barrier: mp.synchronize.Barrier, failures: mp.Queue[str]
) -> None:
    for rnd in range(ROUNDS):
        barrier.wait()
        try:
            store = SQLStore(f"sqlite:///{directory}/round{rnd}.db")
            try:
                store.write([_outcome(f"w{worker}-r{rnd}")], None)
            finally:
                store.close()
        except Exception as exc:  # the test reports every failure, whatever its type
            failures.put(f"worker {worker} round {rnd}: {type(exc).__name__}: {exc}")


def _spin(stop: mp.synchronize.Event) -> None:
    while not stop.is_set():
        sum(range(10_000))


def test_sixteen_processes_open_one_new_file_at_once_under_load(tmp_path: FsPath) -> None:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(PROCESSES)
    failures: mp.Queue[str] = ctx.Queue()
    stop = ctx.Event()
    # CPU load: more runnable processes than cores stretches every window of the race.
    spinners = [ctx.Process(target=_spin, args=(stop,)) for _ in range(4)]
    workers = [
        ctx.Process(target=_open_rounds, args=(str(tmp_path), i, barrier, failures))
        for i in range(PROCESSES)
    ]
    for p in spinners + workers:
        p.start()
    try:
        for p in workers:
            p.join(timeout=60)
            assert p.exitcode == 0, f"worker exit code {p.exitcode}"
    finally:
        stop.set()
        for p in spinners:
            p.join(timeout=10)
    errors = []
    while not failures.empty():
        errors.append(failures.get())
    assert errors == []
    for rnd in range(ROUNDS):
        with sqlite3.connect(tmp_path / f"round{rnd}.db") as conn:
            assert conn.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0] == PROCESSES
