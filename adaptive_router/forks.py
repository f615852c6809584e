"""What the library's objects do in a child process after ``os.fork()``.

gunicorn ``--preload``, Celery's prefork pool and ``multiprocessing`` with the fork start
method build objects in a parent and fork. The child gets a copy of the parent's memory
and only the thread that forked: buffers the parent still has to write, locks that a
parent thread held at that instant (nobody releases them in the child), connection
pools whose sockets the parent keeps using, and none of the background threads.

Objects holding such state call :func:`follow` when they are built. After every
``os.fork()``, in the child, each live one's ``_after_fork_in_child()`` runs, in the
order they were followed (a store before the recorder built on it). These hooks do no
I/O and start no thread: they give the child fresh locks and empty buffers and let go
of the parent's connections without closing them. What runs in the background starts
again when the child first uses the object (see ``Router``), so a child that never
routes starts nothing. Module-level state registers its own hook with
``os.register_at_fork``.

Some state cannot be put right in the child, only kept from crossing the fork: a
:class:`ForkGate` holds new work back while a thread forks, waits for the work in
progress, and runs a clean-up first (a SQLite file's connections are closed before each
fork: see ``adaptive_router.stores.sql_fork``).
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["ForkAware", "ForkGate", "follow", "reseed_in_child"]

logger = logging.getLogger(__name__)


class ForkAware(Protocol):
    """An object that puts itself right in a forked child."""

    def _after_fork_in_child(self) -> None: ...


# Insertion-ordered (a dict underneath), keyed by a counter: the hooks run in the order
# the objects were built. Weak: following an object never keeps it alive.
_LIVE: weakref.WeakValueDictionary[int, ForkAware] = weakref.WeakValueDictionary()
_ids = itertools.count()


def follow(obj: ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked while ``obj`` lives."""
    _LIVE[next(_ids)] = obj


_RESEED: weakref.WeakSet[random.Random] = weakref.WeakSet()


def reseed_in_child(rng: random.Random) -> None:
    """Reseed ``rng`` from the OS in every child forked while it lives: a generator made
    without a seed must not give every worker the parent's next numbers."""
    _RESEED.add(rng)


class ForkGate:
    """Work that must not be in progress when the process forks, and what to do once none is.

    Work starts between :meth:`enter` and :meth:`exit` and may go on after it: ``in_use``
    counts what is still in progress (for a pool: its checked-out connections). Before a
    fork the forking thread closes the gate (new work waits in :meth:`enter`), waits up to
    ``timeout_s`` until nothing is entering and ``in_use()`` is 0, runs ``when_quiet``,
    forks, and opens the gate again. Past the timeout (work that does not end, or the
    forking thread's own) the fork goes ahead, with a warning naming ``name``.

    :meth:`enter` costs a list append and an attribute read: it runs on every checkout.
    Announcing before looking at the gate is what makes that enough: a thread either
    announced itself before the forking thread closed the gate (which then waits for it)
    or sees the gate closed and withdraws.
    """

    def __init__(
        self,
        name: str,
        timeout_s: float,
        in_use: Callable[[], int],
        when_quiet: Callable[[], None],
    ) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._in_use = in_use
        self._when_quiet = when_quiet
        self._entering: list[None] = []  # one item per thread inside enter()..exit()
        self._forking: int | None = None  # the forking thread's ident, while it forks
        self._opened = threading.Condition(threading.Lock())
        _GATES[next(_ids)] = self

    def enter(self) -> None:
        """Announce work about to start; waits while another thread forks."""
        entering = self._entering
        entering.append(None)
        while self._forking is not None and self._forking != threading.get_ident():
            entering.pop()
            with self._opened:
                while self._forking is not None:
                    self._opened.wait()
            entering.append(None)

    def exit(self) -> None:
        """The work has started (``in_use`` counts it from here on)."""
        self._entering.pop()

    def _before_fork(self) -> None:
        self._forking = threading.get_ident()
        deadline = time.monotonic() + self.timeout_s
        while self._entering or self._in_use() > 0:
            if time.monotonic() >= deadline:
                logger.warning(
                    "forking while work on %s is in progress (%d in use); the child may not "
                    "be able to use it",
                    self.name,
                    self._in_use(),
                    extra={"in_use": self._in_use()},
                )
                break
            time.sleep(0.001)  # a rare event: polling keeps enter() and exit() lock-free
        try:
            self._when_quiet()
        except Exception:
            logger.exception("preparing %s for a fork failed", self.name)

    def _after_fork_in_parent(self) -> None:
        with self._opened:
            self._forking = None
            self._opened.notify_all()

    def _after_fork_in_child(self) -> None:
        # Only the forking thread is left; the threads that were waiting are not.
        self._opened = threading.Condition(threading.Lock())
        self._entering = []
        self._forking = None


_GATES: weakref.WeakValueDictionary[int, ForkGate] = weakref.WeakValueDictionary()


def _before() -> None:
    for gate in list(_GATES.values()):
        gate._before_fork()


def _in_parent() -> None:
    for gate in list(_GATES.values()):
        gate._after_fork_in_parent()


def _in_child() -> None:
    for gate in list(_GATES.values()):
        gate._after_fork_in_child()
    for rng in list(_RESEED):
        rng.seed()
    for obj in list(_LIVE.values()):
        try:
            obj._after_fork_in_child()
        except Exception:  # one object's failure must not leave the others as they were
            logger.exception(
                "resetting %s in a forked child failed",
                type(obj).__name__,
                extra={"pid": os.getpid()},
            )


os.register_at_fork(before=_before, after_in_parent=_in_parent, after_in_child=_in_child)
