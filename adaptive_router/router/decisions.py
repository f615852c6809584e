"""Propensity logging: each routed request's first attempt carries the evidence its
decision used, and its propensity is computed later, off the hot path.

On the request's thread (:func:`attach`: the skip flags, then ~0.5 µs of encoding) the
ranking's draft of the decision gets the paths that were skipped before the first
attempt and is encoded onto that attempt's outcome (``Outcome.decision_data``, the layout
of :meth:`~adaptive_router.policies.logged_decision.LoggedDecision.to_bytes`); the store writes
those bytes in ``outcomes.decision``. Once
the row is committed the recorder hands it to :meth:`DecisionLog.written`, which queues it
for a background thread that computes propensities in vectorised batches and writes
them to ``outcomes.propensity``.

Computing one costs more than routing a request (tens of µs), and threads of one
process share the GIL, so the thread spends at most ``max_share`` of wall time on it
(it sleeps in proportion to the time it worked): routing keeps ≥ 1 - max_share of its
speed whatever the load. The queue holds at most ``max_backlog`` decisions; when it is
full a written decision is not queued but keeps its snapshot in the store with a NULL
propensity, counted in :attr:`DecisionLog.deferred` (and logged once), and ``evaluate()``
computes it when it reads the rows. Nothing is dropped: the snapshot is the record.

Which outcomes get a propensity: the first attempt of a ``run()``/``arun()`` request
routed by :class:`~adaptive_router.policies.thompson.ThompsonSampling` or
:class:`~adaptive_router.policies.objectives.ObjectiveThompsonSampling` (with or without a
spend target), or by a feature router's contextual policy, when it went to a learned
path. NULL (no decision logged): later attempts (fallbacks: their probability depends on
the whole order), the final fallback (never ranked), ``choose()``/
``report()`` decisions (the caller decides what to attempt, possibly another entry of
``Decision.order``, and may report from another process) and other policies.

Skips: a path counts as skipped when its breaker was not available at ranking time
(ranked to the back), when it was skipped before the first attempt (breaker, rate
limit, budget), or when the request's cost budget refuses it. A path ranked after the
first attempt whose rate limit was exhausted at that moment is not seen (checking
would cost a Redis round trip per request with shared limits): the propensity is exact
unless that happened.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence

from adaptive_router import forks
from adaptive_router.outcomes import Outcome
from adaptive_router.policies.contextual_decision import decode
from adaptive_router.policies.logged_decision import DecisionDraft
from adaptive_router.router.budgets import RequestBudget
from adaptive_router.stores.base import OutcomeUpdates, Store

__all__ = ["DecisionLog", "attach"]

logger = logging.getLogger(__name__)

#: Decisions computed per batch by the background thread.
BATCH = 64
#: Seconds the thread waits after being woken before it computes: work arrives in the
#: writer's batches, and a burst right at start-up would not be paced by max_share yet.
SETTLE_S = 1.0
#: Decisions queued at most. Once its row is written an entry owns its request id and
#: record (~280 bytes). The thread computes a few thousand a second within its share
#: (benchmarks/decisions.py), so 2,000 are about a second of its work: a process routing
#: faster than that for longer defers the rest to evaluate() with any bound, and a
#: larger one only held more memory (10,000: ~2.8 MB).
MAX_BACKLOG = 2_000


def attach(
    draft: DecisionDraft, before: Sequence[Outcome], first: Outcome, budget: RequestBudget | None
) -> None:
    """Encode the decision ``draft`` onto the request's first attempt ``first``, with the
    paths skipped before it (``before``) and those the request's cost budget refuses."""
    enc, s, f, c, lat, skipped = draft
    index = enc.index
    i = index.get(first.path)
    if i is None:  # every learned path was skipped: the final fallback went first
        return
    flags = list(skipped) if skipped is not None else None
    for a in before:
        j = index.get(a.path)
        if j is not None:
            flags = flags or [False] * len(enc.paths)
            flags[j] = True
    if budget is not None and budget.budget.max_cost_usd is not None:
        cap = budget.budget.max_cost_usd
        for j, name in enumerate(enc.paths):
            cost = budget.expected_cost.get(name)
            if cost is not None and cost > cap:
                flags = flags or [False] * len(enc.paths)
                flags[j] = True
    if flags is not None:
        flags[i] = False  # it was attempted, whatever the ranking-time state said
        skipped = tuple(flags) if any(flags) else None
    # Encoded now (~0.5 µs): the outcome then carries a plain bytes, which the writer
    # binds as is and the garbage collector never tracks while the row waits to be written.
    first.decision_data = enc.encode(s, f, i, skipped, c, lat)


class DecisionLog:
    """Fills the propensities of the decisions logged on first attempts, in the background:
    the recorder hands it the rows it committed (:meth:`written`)."""

    def __init__(
        self,
        store: Store,
        task: str,
        *,
        max_backlog: int = MAX_BACKLOG,
        max_share: float = 0.02,
    ) -> None:
        if not (isinstance(max_backlog, int) and max_backlog >= 0):
            raise ValueError(f"max_backlog must be an int >= 0, got {max_backlog!r}")
        if not (0.0 < max_share <= 1.0):
            raise ValueError(f"max_share must be in (0, 1], got {max_share!r}")
        self.store = store
        self.task = task
        self.max_backlog = max_backlog
        self.max_share = max_share
        #: Decisions not queued because the backlog was full (propensity left NULL).
        self.deferred = 0
        #: Propensities computed and written by the background thread.
        self.computed = 0
        #: The largest backlog seen.
        self.max_seen = 0
        # (request_id, attempt, decision_data): tuples of str, int and bytes, which the
        # garbage collector untracks, rather than the outcomes, whose thousands of queued
        # objects would be promoted to the oldest generation and make full collections
        # come twice as often.
        self._queue: deque[tuple[str, int, bytes]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The propensity module is not imported here: a router starts without it, and the
        # background thread imports it with its first batch (see step), SETTLE_S after the
        # first decision was written, with routing keeping its share of the GIL.
        # The router hands :meth:`written` to its recorder, which calls it with the rows
        # it committed, when the store can take a propensity on a row (else nothing is
        # queued: evaluate() computes them from the decisions).
        #: Whether committed rows are worth handing to :meth:`written`.
        self.takes_rows = isinstance(store, OutcomeUpdates)
        forks.follow(self)

    def _after_fork_in_child(self) -> None:
        """In a forked child: fresh lock and events, counters at zero, no thread (the next
        committed row starts one), an empty queue: the rows queued at the fork were
        written by the parent, whose thread computes their propensities."""
        self._lock = threading.Lock()
        self._queue = deque()
        stopped = self._stop.is_set()
        self._wake, self._stop = threading.Event(), threading.Event()
        if stopped:
            self._stop.set()
        self._thread = None
        self.deferred = self.computed = self.max_seen = 0

    @property
    def backlog(self) -> int:
        """Decisions queued for the background thread now."""
        return len(self._queue)

    # -- after the rows are committed ----------------------------------------------
    def written(self, outcomes: Sequence[Outcome]) -> None:
        """Queue the committed first attempts whose propensity is still unknown."""
        todo = [
            (o.request_id, o.attempt, o.decision_data)
            for o in outcomes
            if o.decision_data is not None and o.propensity is None
        ]
        if not todo:
            return
        with self._lock:
            queue = self._queue
            if len(queue) + len(todo) <= self.max_backlog:
                queue.extend(todo)  # the common case (a memory store calls this per request)
            else:
                self._overflow(todo)
            if len(queue) > self.max_seen:
                self.max_seen = len(queue)
            closed = self._stop.is_set()
            if self._thread is None and not closed:
                self._start()
        if closed:  # the router's final flush, after close() stopped the thread
            self.drain()
        # Event.set takes a lock and notifies: once until the thread wakes, not per row
        # (a memory store reports every request's row on its own).
        if not self._wake.is_set():
            self._wake.set()

    def _overflow(self, todo: list[tuple[str, int, bytes]]) -> None:
        """Queue what fits of ``todo``; the rest keep their snapshot (under the lock)."""
        room = max(0, self.max_backlog - len(self._queue))
        self._queue.extend(todo[:room])
        if self.deferred == 0:
            logger.warning(
                "propensity backlog full for task %s (max_backlog=%d): further "
                "decisions keep their snapshot and get their propensity at "
                "evaluate() time",
                self.task,
                self.max_backlog,
                extra={"task": self.task, "max_backlog": self.max_backlog},
            )
        self.deferred += len(todo) - room

    def _start(self) -> None:
        """Start the background thread (under the lock)."""
        thread = threading.Thread(
            target=_run_loop,
            args=(weakref.ref(self), self._stop, self._wake),
            name=f"adaptive-router-propensity[{self.task}]",
            daemon=True,
        )
        thread.start()
        self._thread = thread  # only once started: close() joins what it sees

    def step(self, limit: int = BATCH) -> int:
        """Compute and store up to ``limit`` queued propensities; returns how many."""
        with self._lock:
            batch = [self._queue.popleft() for _ in range(min(limit, len(self._queue)))]
        if not batch:
            return 0
        # Imported here, not at module level: the CLI and routers without decision
        # logging never need it. It needs numpy only (scipy, for a feature router's
        # Gaussian decisions, loads with those).
        from adaptive_router.policies.propensity import decision_propensities

        # Decoded here, off the request's thread.
        values = decision_propensities([decode(d) for _, _, d in batch])
        rows = []
        for (rid, attempt, _), p in zip(batch, values.tolist(), strict=True):
            if p == p and 0.0 < p <= 1.0:  # NaN or 0: not a first attempt it can vouch for
                rows.append((rid, attempt, p))
        store = self.store
        try:
            if isinstance(store, OutcomeUpdates):  # always: only such stores queue rows
                store.set_propensities(self.task, rows)
        except Exception as exc:  # the store is down: evaluate() computes them later
            logger.warning(
                "could not store %d propensities of task %s (%s); evaluate() computes them",
                len(rows),
                self.task,
                type(exc).__name__,
                extra={"task": self.task, "rows": len(rows), "error": type(exc).__name__},
            )
            with self._lock:
                self.deferred += len(rows)
            return len(batch)
        self.computed += len(rows)
        return len(batch)

    def drain(self) -> None:
        """Compute everything queued now (``close`` does)."""
        while self.step():
            pass

    def close(self) -> None:
        """Stop the thread, then compute what is queued (at most ``max_backlog``)."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.drain()


def _run_loop(ref: weakref.ref[DecisionLog], stop: threading.Event, wake: threading.Event) -> None:
    while not stop.is_set():
        wake.wait(1.0)
        wake.clear()
        if stop.wait(SETTLE_S):
            return
        while not stop.is_set():
            log = ref()
            if log is None:
                return
            started = time.perf_counter()
            try:
                done = log.step()
            except Exception:  # never let the thread die; the rows stay NULL, not lost
                logger.exception("propensity batch failed")
                done = 0
            share = log.max_share
            del log
            if not done:
                break
            # Work at most max_share of the time: sleep busy · (1/share - 1).
            busy = time.perf_counter() - started
            if stop.wait(busy * (1.0 / share - 1.0)):
                return
