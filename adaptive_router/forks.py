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
progress, and runs a clean-up first (a SQLite file's connections are closed before a
fork: see ``adaptive_router.stores.sql_fork``).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Protocol

__all__ = ["ForkAware", "ForkGate", "follow"]

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


class ForkGate:
    """Work that must not be in progress when the process forks, and what to do once none is.

    Each piece of work runs between :meth:`enter` and :meth:`leave`. Before a fork the
    forking thread closes the gate (new work waits in :meth:`enter`), waits up to
    ``timeout_s`` for the work in progress to leave (its own excepted: it cannot wait for
    itself), runs ``when_quiet``, forks, and opens the gate again in the parent; the
    child starts with an open gate and only the forking thread's work. Past the timeout
    the fork goes ahead, with a warning naming ``name``.
    """

    def __init__(self, name: str, timeout_s: float, when_quiet: Callable[[], None]) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._when_quiet = when_quiet
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._mine = threading.local()  # this thread's work in progress
        self._forking: int | None = None  # the forking thread's ident, while it forks
        _GATES[next(_ids)] = self

    def enter(self) -> None:
        """Start a piece of work (waits while another thread forks)."""
        with self._cond:
            while self._forking is not None and self._forking != threading.get_ident():
                self._cond.wait()
            self._active += 1
        self._mine.n = getattr(self._mine, "n", 0) + 1

    def leave(self) -> None:
        """End a piece of work started with :meth:`enter`."""
        self._mine.n = getattr(self._mine, "n", 0) - 1
        with self._cond:
            self._active -= 1
            if self._forking is not None:
                self._cond.notify_all()

    def _before_fork(self) -> None:
        own = getattr(self._mine, "n", 0)
        with self._cond:
            self._forking = threading.get_ident()
            quiet = self._cond.wait_for(lambda: self._active <= own, self.timeout_s)
            busy = self._active - own
        if not quiet or own:
            logger.warning(
                "forking while %d pieces of work on %s are in progress; the child may "
                "not be able to use it",
                busy + own,
                self.name,
                extra={"in_progress": busy + own},
            )
        try:
            self._when_quiet()
        except Exception:
            logger.exception("preparing %s for a fork failed", self.name)

    def _after_fork_in_parent(self) -> None:
        with self._cond:
            self._forking = None
            self._cond.notify_all()

    def _after_fork_in_child(self) -> None:
        # Only the forking thread is left, with the work it had in progress.
        self._cond = threading.Condition(threading.Lock())
        self._active = getattr(self._mine, "n", 0)
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
