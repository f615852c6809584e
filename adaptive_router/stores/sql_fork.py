"""SQL engines across ``os.fork()``: no connection is shared with a forked child.

PostgreSQL: the child gets a new, empty pool (``Engine.dispose(close=False)``, as
SQLAlchemy documents for forked processes) and opens connections of its own; the
parent's sockets are neither used nor closed there.

SQLite needs more. Its in-process record of the locks held on a file is shared by every
connection the process opens to that file, so a connection the parent has open at the
fork (a transaction in progress, or an idle WAL connection holding its shared lock)
leaves the child a record that disagrees with the locks the child really holds: the
child's own connections then wait on locks nobody will release ("database is locked"
until the busy timeout, again and again), or another process's checkpoint deletes a WAL
that the child still writes to. SQLite's advice is that no connection cross a fork. So
a file database's pool is a :class:`GatedQueuePool`: before a fork, new checkouts wait,
the checkouts in progress are waited for (up to the busy timeout) and every pooled
connection is closed; the parent reconnects at its next use (a file open and a few
pragmas, once per fork).
"""

from __future__ import annotations

import weakref

from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool, PoolProxiedConnection, QueuePool, StaticPool

from adaptive_router import forks
from adaptive_router._checks import redact_url
from adaptive_router.forks import ForkGate

__all__ = ["GatedQueuePool", "follow", "gated"]

#: In a forked child, the pools inherited from the parent: kept referenced, never closed
#: (their connections are the parent's, and closing a SQLite connection in the child
#: would touch the parent's locks).
_INHERITED_POOLS: list[Pool] = []


class GatedQueuePool(QueuePool):
    """A ``QueuePool`` whose checkouts pass a :class:`~adaptive_router.forks.ForkGate`
    (set by :func:`gated`): none starts while a thread forks, and the fork waits for
    those checked out."""

    gate: ForkGate | None = None

    def connect(self) -> PoolProxiedConnection:
        gate = self.gate
        if gate is None:
            return super().connect()
        gate.enter()
        try:
            return super().connect()
        finally:
            gate.exit()  # from here on the pool counts it as checked out

    def recreate(self) -> QueuePool:
        pool = super().recreate()  # the same class, and the same event listeners
        if isinstance(pool, GatedQueuePool):
            pool.gate = self.gate
        return pool


def gated(engine: Engine, busy_timeout_s: float) -> Engine:
    """``engine``, whose connections are now closed before every fork when its pool is a
    :class:`GatedQueuePool` (waiting at most ``busy_timeout_s`` for those in use)."""
    if not isinstance(engine.pool, GatedQueuePool):
        return engine

    def checked_out() -> int:
        pool = engine.pool  # the engine's current pool: dispose() replaces it
        return pool.checkedout() if isinstance(pool, QueuePool) else 0

    engine.pool.gate = ForkGate(
        f"SQLite file {redact_url(engine.url)}", busy_timeout_s, checked_out, engine.dispose
    )
    return engine


class _PoolRelease:
    """Gives an engine a pool of its own in every forked child (one per engine, however
    many stores share it)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = weakref.ref(engine)
        forks.follow(self)

    def _after_fork_in_child(self) -> None:
        engine = self._engine()
        if engine is None:
            return
        pool = engine.pool
        # A private in-memory SQLite database keeps its pool: its one connection is the
        # database, and the child's copy of it is the child's own.
        if isinstance(pool, StaticPool):
            return
        # The new pool, as SQLAlchemy documents for forked processes; the old one is
        # kept, never closed: its connections are the parent's.
        _INHERITED_POOLS.append(pool)
        engine.dispose(close=False)


# Each engine keeps its releaser alive; the fork registry only holds it weakly.
_RELEASES: weakref.WeakKeyDictionary[Engine, _PoolRelease] = weakref.WeakKeyDictionary()


def follow(engine: Engine) -> None:
    """Give ``engine`` a new, empty pool in every child forked while it lives, without
    touching the old pool's connections (the parent's)."""
    # No lock (one held at a fork would stay held in the child): two threads racing here
    # make two releasers, and the one not kept is garbage.
    if engine not in _RELEASES:
        _RELEASES[engine] = _PoolRelease(engine)
