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
"""

from __future__ import annotations

import itertools
import logging
import os
import weakref
from typing import Protocol

__all__ = ["ForkAware", "follow"]

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


def _in_child() -> None:
    for obj in list(_LIVE.values()):
        try:
            obj._after_fork_in_child()
        except Exception:  # one object's failure must not leave the others as they were
            logger.exception(
                "resetting %s in a forked child failed",
                type(obj).__name__,
                extra={"pid": os.getpid()},
            )


os.register_at_fork(after_in_child=_in_child)
