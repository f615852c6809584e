"""The in-process posterior cache and the write-behind batcher in front of a Store.

The routing hot path only touches this cache. Outcomes are folded into it at
once, then written to the store either in the caller's thread
(``durability="sync"``) or by a background thread in batches (``"batch"``,
one transaction per batch). The same thread refreshes the cache from the
store so that each process sees the others' outcomes.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from adaptive_router import forks
from adaptive_router._checks import first_line, redact, short
from adaptive_router.errors import ConfigurationError, OutcomesRejected, StoreUnavailableError
from adaptive_router.log_throttle import ThrottledLog
from adaptive_router.outcomes import Outcome
from adaptive_router.policies.thompson import FloatArray, decay_factor
from adaptive_router.router.context_costs import CostRow, cost_row
from adaptive_router.stores.base import (
    FeatureEvidence,
    InProcess,
    OutcomeUpdates,
    PathEvidence,
    SharedEvidence,
    SpendStats,
    SpendTotals,
    Store,
    fold_evidence,
    fold_spend,
    is_data_error,
    outcome_problem,
)
from adaptive_router.stores.evidence import pooled_means

if TYPE_CHECKING:
    from adaptive_router.router.features import FeatureModels

logger = logging.getLogger(__name__)

#: Buffered outcomes that wake the writer before its interval is up.
WAKE_AT = 2_000
#: Buffered outcomes past which, with the store reachable, the recording caller flushes.
#: Twice WAKE_AT: the woken writer gets that long before callers write themselves. A
#: buffered outcome holds ~500 bytes and its row tuple ~250 more while it is written, and
#: freed memory stays with the process: at 20,000, a loop that outran the writer kept
#: ~15 MB more resident than at 4,000, for no more throughput (benchmarks/memory.py).
HIGH_WATER = 4_000
#: Seconds a recording caller waits, at most, for a write already in progress before it
#: goes on (backpressure): a store that hangs instead of refusing (a held lock, a
#: migration, a black-holed connection) must slow requests by this much, not by the
#: database's timeouts per queued caller. A batch of HIGH_WATER rows takes well under it.
BACKPRESSURE_WAIT_S = 2.0
#: Seconds (of the recorder's clock) during which repeats of a rejection line are counted.
LOG_WINDOW_S = 60.0


_NO_STATES: dict[str, PathEvidence] = {}


class Weights(NamedTuple):
    """Decayed success and failure weights per path (in the order asked for): of first
    attempts (``s``, ``f``) and, when asked for, of attempts after a failure (``s2``,
    ``f2``; else None)."""

    s: FloatArray
    f: FloatArray
    s2: FloatArray | None
    f2: FloatArray | None


class Recorder:
    """Cache + buffer for one task. Thread-safe.

    ``connected=False`` (a router started while its store was unreachable): routing
    starts from the priors and nothing is written until the writer thread has reached the
    store, loaded the task's evidence and passed the router's start-up checks
    (``on_connect``); a check that fails there is kept in ``startup_error`` and this
    recorder never writes.

    No single row can block the store: a write refused for its data (a value the store
    rejects, an integrity or data error) is split until the rows that cannot be written
    are found; the rest is written (each part in its own transaction, exactly once by
    ``(request_id, attempt)``) and the rejected ones are counted (:attr:`rejected`) and
    logged with the store's reason. Any other failure is an outage: the rows wait.
    """

    def __init__(
        self,
        store: Store,
        task: str,
        half_life: float | None,
        *,
        durability: str,
        clock: Callable[[], float],
        flush_interval: float,
        refresh_interval: float,
        max_buffer: int,
        connected: bool = True,
        log: ThrottledLog | None = None,
        on_connect: Callable[[dict[str, dict[str, PathEvidence]]], None] | None = None,
        on_written: Callable[[Sequence[Outcome]], None] | None = None,
        on_drop: Callable[[int, int], None] | None = None,
        on_reject: Callable[[int, int], None] | None = None,
        on_refresh: Callable[[], None] | None = None,
        track_spend: bool = False,
        after_flush: Callable[[], Sequence[Outcome]] | None = None,
    ) -> None:
        self.store = store
        #: Keep the task's spend sums in this cache (a spend target prices by them): only
        #: for a store with :class:`SpendTotals`.
        self.track_spend = track_spend and isinstance(store, SpendTotals)
        #: The task's realized spend (what the store holds plus what this process recorded
        #: since it last read it); read in place from a :class:`SharedEvidence` store.
        self.spend = SpendStats()
        #: A feature router's contextual models (see :meth:`attach_features`), else None.
        self.features: FeatureModels | None = None
        self.task = task
        self.half_life = half_life
        self.sync = durability == "sync" or isinstance(store, InProcess)
        self.clock = clock
        self.flush_interval = flush_interval
        self.refresh_interval = refresh_interval
        self.max_buffer = max_buffer
        #: A healthy store's backlog past this makes callers write (see ``record``).
        self.high_water = min(max_buffer, HIGH_WATER)
        self.dropped = 0
        #: Outcomes never stored because the store refused their values.
        self.rejected = 0
        self._log = log if log is not None else ThrottledLog(logger, LOG_WINDOW_S, clock)
        self._io_lock = threading.Lock()  # serialises this recorder's store writes
        self._buffer: list[Outcome] = []
        self._inflight = 0  # taken from the buffer by a flush that has not committed yet
        # Also "the store is down": set by a failed store call, cleared by a success; set
        # from the start when the router started without its store (the store logged it).
        self._outage_logged = not connected
        #: False until the store was reached and the start-up checks passed (see class doc).
        self.ready = connected
        #: The start-up check that failed once the store was reached (nothing is written).
        self.startup_error: ConfigurationError | None = None
        #: The router's start-up checks, given the task's stored evidence once reached.
        self.on_connect = on_connect
        #: Store work deferred during an outage (decisions, reports), run after each
        #: successful flush under the I/O lock; returns the outcomes it wrote, raises
        #: when the store fails again (the rest waits for the next flush).
        self.after_flush = after_flush
        # context -> path -> evidence; "" is the task level that every outcome updates.
        self.states: dict[str, dict[str, PathEvidence]]
        #: A copy of the store's evidence that this recorder folds into (False: the
        #: store's own, read in place; it folds every written outcome itself).
        self.own_cache = not isinstance(store, SharedEvidence)
        if isinstance(store, SharedEvidence):
            # The lock guards states and buffer; never held during I/O (a shared store's
            # lock is held only for its in-memory folds).
            self.states, self._lock = store.shared_contexts(task)
        else:
            self.states = store.load_contexts(task) if connected else {}
            self._lock = threading.Lock()
            if connected and self.track_spend:
                self.spend = self._load_spend()
        self._last_refresh = time.monotonic()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set when the buffer is worth a flush right away
        #: time.monotonic() when the write in progress began (None: none), for relieve().
        self._write_started: float | None = None
        self._thread: threading.Thread | None = None
        self._at_exit: Callable[[], None] | None = None
        self._closed = False
        #: What the router's observers hear of: outcomes dropped, rejected, a refresh.
        self.on_drop = on_drop
        self.on_reject = on_reject
        self.on_refresh = on_refresh
        #: Called with each batch of outcomes once the store has committed it.
        self.on_written = on_written
        if not isinstance(store, InProcess):
            self.start()
            # Its own registration (a partial is equal only to itself), undone by close():
            # no exit hook outlives the recorder. A forked child inherits it: it flushes
            # its own buffer when it exits normally.
            self._at_exit = functools.partial(_close_at_exit, weakref.ref(self))
            atexit.register(self._at_exit)
        forks.follow(self)

    def start(self) -> None:
        """Start the writer thread unless it runs (the constructor does; a forked child
        does at its first use of the router). Nothing to start for an in-process store."""
        with self._lock:
            if isinstance(self.store, InProcess) or self._closed or self._thread is not None:
                return
            self._thread = threading.Thread(
                target=_run_loop,
                args=(weakref.ref(self), self._stop, self._wake, self.flush_interval),
                name=f"adaptive-router-writer[{self.task}]",
                daemon=True,
            )
            self._thread.start()

    def _after_fork_in_child(self) -> None:
        """In a forked child: fresh locks and events, no writer thread yet (:meth:`start`),
        an empty buffer. The outcomes buffered or being written at the fork are the
        parent's: its writer writes them, so the child must not (they would be written
        twice, or lost with the child). The cache keeps the parent's evidence until the
        child's first refresh, which comes with its writer's first tick."""
        self._io_lock = threading.Lock()
        if isinstance(self.store, SharedEvidence):
            # The store's lock, renewed by the store's own hook (it was built first).
            self.states, self._lock = self.store.shared_contexts(self.task)
        else:
            self._lock = threading.Lock()
        self._buffer = []
        self._inflight = 0
        self._outage_logged = False
        self.dropped = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        if self._closed:
            self._stop.set()
        self._thread = None
        self._last_refresh = -math.inf

    # -- reading (under the lock: folds mutate the states in place) ------------------
    def evidence(
        self, names: Sequence[str], context: str, now: float, after: bool = False
    ) -> tuple[Weights, Weights | None]:
        """The :class:`Weights` of each of ``names`` at the task level, decayed to ``now``
        (0 without evidence), then the same in ``context`` (None for the task level,
        ``context=""``); the after-failure weights only when ``after``. Read under the
        lock: folds mutate the states in place, and a half-folded state must not be read."""
        with self._lock:
            task = self._decayed(self.states.get("", _NO_STATES), names, now, after)
            if not context:
                return task, None
            own = self._decayed(self.states.get(context, _NO_STATES), names, now, after)
        return task, own

    def _decayed(
        self, states: dict[str, PathEvidence], names: Sequence[str], now: float, after: bool
    ) -> Weights:
        half_life = self.half_life
        k = len(names)
        s = np.zeros(k)
        f = np.zeros(k)
        s2 = np.zeros(k) if after else None
        f2 = np.zeros(k) if after else None
        for i, ev in enumerate(map(states.get, names)):
            if ev is None:
                continue
            st = ev.first
            # No factor to compute without a half-life (the default): nothing decays.
            w = 1.0 if half_life is None else decay_factor(now - st.ref_time, half_life)
            s[i] = st.success_w * w
            f[i] = st.failure_w * w
            if s2 is not None and f2 is not None:
                st = ev.after_failure
                if st.n:  # many paths are never tried second: nothing to decay
                    w = 1.0 if half_life is None else decay_factor(now - st.ref_time, half_life)
                    s2[i] = st.success_w * w
                    f2[i] = st.failure_w * w
        return Weights(s, f, s2, f2)

    def means(self) -> dict[str, tuple[float | None, float | None]]:
        """Each path's task-level decayed mean ``(cost_usd, latency_ms)`` per attempt, over
        both positions (None where nothing was measured)."""
        half_life = self.half_life
        with self._lock:
            return {n: pooled_means(ev, half_life) for n, ev in self.states.get("", {}).items()}

    def cost_evidence(self, context: str) -> tuple[dict[str, CostRow], dict[str, CostRow]]:
        """``(task level, context)``: each path's decayed cost and latency sums over both
        positions (:data:`~adaptive_router.router.context_costs.CostRow`) in the two rows."""
        half_life = self.half_life
        with self._lock:
            task = {n: cost_row(ev, half_life) for n, ev in self.states.get("", {}).items()}
            own = {n: cost_row(ev, half_life) for n, ev in self.states.get(context, {}).items()}
        return task, own

    def attach_features(self, models: FeatureModels) -> None:
        """Keep ``models`` (a feature router's) up to date: the store's feature statistics
        now and at each refresh, plus every outcome this process records or reports."""
        self.features = models
        store = self.store
        if self.ready and isinstance(store, FeatureEvidence):
            models.reload(store.load_features(self.task))

    def _fold_features(self, outcomes: Sequence[Outcome]) -> None:
        if self.features is not None:
            self.features.fold(outcomes)

    def _reload_features(self) -> None:
        """Under the I/O lock, after a flush: the store's statistics plus the buffer's."""
        store, models = self.store, self.features
        if models is None or not isinstance(store, FeatureEvidence):
            return
        stored = store.load_features(self.task)
        with self._lock:  # record() folds and buffers under it: nothing in between
            models.reload(stored)
            models.fold(self._buffer)

    def spend_stats(self) -> SpendStats:
        """A copy of the task's spend sums as this process knows them (relative to their
        ``ref_time``; see :meth:`SpendStats.decayed`): the store's at the last refresh plus
        the outcomes recorded here since; a shared in-process store's own. Zeros when
        spend is not tracked (:attr:`track_spend`)."""
        if not self.track_spend:
            return SpendStats()
        if not self.own_cache:
            return self._load_spend()
        with self._lock:
            st = self.spend
            return SpendStats(st.spend_w, st.requests_w, st.ref_time, st.requests, st.spend_usd)

    def _load_spend(self) -> SpendStats:
        store = self.store
        assert isinstance(store, SpendTotals)  # track_spend
        return store.load_spend(self.task)

    def snapshot(self) -> dict[str, dict[str, PathEvidence]]:
        """A copy of every context's path evidence (``""`` is the task level)."""
        with self._lock:
            return {
                c: {n: ev.copy() for n, ev in paths.items()} for c, paths in self.states.items()
            }

    def contexts(self) -> list[str]:
        """The named contexts with evidence, sorted."""
        with self._lock:
            return sorted(c for c in self.states if c)

    def admits_context(
        self, context: str, max_contexts: int, pending: Collection[str] = ()
    ) -> bool:
        """Whether ``context`` is known or there is room for one more named context,
        counting ``pending`` (contexts let in but not in the cache yet) as well."""
        with self._lock:
            states = self.states
            known = context in states
            named = len(states) - ("" in states) + sum(1 for c in pending if c not in states)
        return known or named < max_contexts

    # -- recording ---------------------------------------------------------------
    def record(self, outcomes: Sequence[Outcome]) -> bool:
        """Fold ``outcomes`` into the cache and write them (``sync``) or buffer them.

        Returns True when the caller should :meth:`relieve` now, before it goes on:
        backpressure, the store is up but slower than the traffic (the buffer reached
        ``high_water``). Writing then slows the callers down instead of letting the buffer
        (memory, and the crash window) grow until it drops outcomes; drops are for
        outages only. The flush is the caller's to make, in its own way: ``Router.run``
        in its thread, ``Router.arun`` in a worker thread, never on the event loop.
        """
        if not outcomes:
            return False
        # In an outage a sync write would wait out the database's timeouts on every
        # request: the outcomes are buffered instead and the writer retries on its schedule.
        if self.sync and self.ready and not self._outage_logged:
            with self._io_lock:
                if self.features is not None:
                    # Under the I/O lock: a refresh (which reloads the models) cannot
                    # interleave. Only valid outcomes: the store refuses the others.
                    self.features.fold([o for o in outcomes if outcome_problem(o) is None])
                written, unwritten, exc = self._write(outcomes)
                if unwritten:  # the store is down: keep routing, retry later
                    self._on_write_error(exc, len(unwritten))
                    with self._lock:
                        self._fold(unwritten)
                        self._push(unwritten)
                if written:
                    if self.own_cache:
                        with self._lock:
                            self._fold(written)
                    if self.on_written is not None:
                        self.on_written(written)
            return False
        for o in outcomes:
            if outcome_problem(o) is not None:
                # Never folded into the cache (a NaN cost would make every mean NaN).
                outcomes = self._keep_valid(outcomes)
                break
        with self._lock:
            self._fold(outcomes)
            self._fold_features(outcomes)
            self._push(outcomes)
            return len(self._buffer) >= self.high_water and not self.store_down

    def _keep_valid(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """``outcomes`` without those no store would hold (those are rejected now)."""
        checked = [(o, outcome_problem(o)) for o in outcomes]
        self._reject([(o, why) for o, why in checked if why is not None])
        return [o for o, why in checked if why is None]

    def _write(
        self, batch: Sequence[Outcome]
    ) -> tuple[list[Outcome], list[Outcome], Exception | None]:
        """Write ``batch``, isolating the rows the store refuses for their data:
        ``(written, unwritten, error)``, where ``unwritten`` (in order) is what an outage
        (``error``) left unwritten. Rejected rows are neither: they are counted and logged.

        A refusal that names its rows (:class:`OutcomesRejected`) drops them and writes
        the rest at once; one that does not (a database's integrity or data error) is
        bisected, each half its own transaction, down to the single rows that fail. Every
        write is idempotent, so a part written before an outage is never written twice.
        """
        written: list[Outcome] = []
        parts = [list(batch)]
        while parts:
            part = parts.pop()
            try:
                self.store.write(part, self.half_life)
            except Exception as exc:
                if not is_data_error(exc):
                    return written, [o for p in [part, *reversed(parts)] for o in p], exc
                mine = {id(o) for o in part}
                named = exc.rejected if isinstance(exc, OutcomesRejected) else []
                named = [(o, why) for o, why in named if id(o) in mine]
                if named:
                    self._reject(named)
                    bad = {id(o) for o, _ in named}
                    rest = [o for o in part if id(o) not in bad]
                    if rest:
                        parts.append(rest)
                elif len(part) == 1:
                    self._reject([(part[0], redact(first_line(exc)))])
                else:
                    mid = len(part) // 2
                    parts += [part[mid:], part[:mid]]
                continue
            written += part
        return written, [], None

    def _reject(self, rejected: Sequence[tuple[Outcome, str]]) -> None:
        """Count and log outcomes the store will never hold (one line per path and reason
        per window, then a count)."""
        if not rejected:
            return
        with self._lock:
            self.rejected += len(rejected)
            total = self.rejected
        for o, why in rejected:
            # The reason's first word is the field (or the database's first word).
            reason = why.split(" ", 1)[0]
            self._log.log(
                ("rejected", o.path, reason),
                "outcome not stored: the store rejected request %s attempt %d of path %s "
                "(task %s): %s",
                (o.request_id, o.attempt, o.path, self.task, why),
                # The count and the window follow the arguments (ThrottledLog appends them).
                "the store rejected outcomes of path %s (task %s) for %s: %d more in the last %g s",
                (o.path, self.task, reason),
                {
                    "task": self.task,
                    "request_id": o.request_id,
                    "attempt": o.attempt,
                    "path": o.path,
                    "reason": why,
                    "rejected_total": total,
                },
                level=logging.ERROR,
            )
        if self.on_reject is not None:
            self.on_reject(len(rejected), total)

    def write_through(self, write: Callable[[], Sequence[Outcome]]) -> None:
        """Run a store transaction that records outcomes itself, then fold them into the cache.

        Holding the I/O lock keeps a concurrent refresh from loading the rows and then
        having them folded in a second time. Before the store was reached (a router
        started without it) nothing is run: :class:`StoreUnavailableError`, or the
        start-up check's error if one failed.
        """
        self.check_started()
        with self._io_lock:
            if not self.ready:
                raise StoreUnavailableError(
                    f"the store of task {self.task!r} has not been reached since the router "
                    "started without it"
                )
            written = write()
            self._fold_features(written)
            if self.own_cache:
                with self._lock:
                    self._fold(written)

    def check_started(self) -> None:
        """Raise the start-up check's error if it failed once the store was reached."""
        if self.startup_error is not None:
            raise self.startup_error

    @property
    def store_down(self) -> bool:
        """True from a failed store call until one succeeds again, and until the store is
        first reached by a router started without it."""
        return self._outage_logged or not self.ready

    def store_failed(self, exc: Exception) -> None:
        """Note a store call that failed for an outage (another component's)."""
        self._on_write_error(exc, 0)

    def rebill(self, outcome: Outcome) -> None:
        """Rewrite a recorded outcome's usage in the store (a late SDK call added to it).

        Under the I/O lock, after a flush: a write of this outcome has either committed
        (the row is updated here) or not started (it writes the new values, which the
        caller set on the object first), so the late usage is never lost to a race. A
        store without :class:`OutcomeUpdates` keeps the row it was given: a buffered row
        carries the new values, a written one keeps the old.
        """
        store = self.store
        if not isinstance(store, OutcomeUpdates):
            return
        with self._io_lock:
            if not self._flush_locked():
                return  # the store is down: the buffered row carries the new values
            try:
                store.update_usage(outcome)
            except Exception as exc:
                logger.error(
                    "could not record a late call's usage for request %s attempt %d: %s: %s",
                    outcome.request_id,
                    outcome.attempt,
                    type(exc).__name__,
                    short(redact(first_line(exc))),
                    extra={"task": self.task, "request_id": outcome.request_id},
                )

    def _fold(self, outcomes: Sequence[Outcome]) -> None:
        if not self.own_cache:
            return  # the store folds what it writes: an unwritten outcome waits its turn
        if self.track_spend:
            spend, half_life = self.spend, self.half_life
            for o in outcomes:
                fold_spend(spend, o, half_life)
        for o in outcomes:
            for ctx in o.evidence_keys():
                paths = self.states.get(ctx)
                if paths is None:
                    paths = self.states[ctx] = {}
                ev = paths.get(o.path)
                if ev is None:
                    ev = paths[o.path] = PathEvidence()
                fold_evidence(ev, o, self.half_life)

    def _push(self, outcomes: Sequence[Outcome]) -> None:
        self._buffer.extend(outcomes)
        if len(self._buffer) >= WAKE_AT and not self._wake.is_set():
            # Under heavy traffic, write as soon as a big batch is ready instead of waiting
            # out the interval: keeps the at-risk window and the buffer small.
            self._wake.set()
        excess = len(self._buffer) - self.max_buffer
        if excess > 0:
            # Bounded memory beats an OOM during a long outage; the loss is counted.
            del self._buffer[:excess]
            if self.dropped == 0:
                logger.error(
                    "outcome buffer full for task %s (max_buffer=%d): dropping the oldest "
                    "unwritten outcomes",
                    self.task,
                    self.max_buffer,
                    extra={"task": self.task, "max_buffer": self.max_buffer},
                )
            self.dropped += excess
            if self.on_drop is not None:
                self.on_drop(excess, self.dropped)

    @property
    def buffered(self) -> int:
        """Outcomes recorded but not yet committed to the store (queued or being written)."""
        with self._lock:
            return len(self._buffer) + self._inflight

    # -- background work --------------------------------------------------------
    def flush(self) -> bool:
        """Write everything buffered. Returns False if the store refused (kept for later)."""
        with self._io_lock:
            return self._flush_locked()

    def relieve(self) -> None:
        """Backpressure (:meth:`record` returned True): write the buffer on the caller's
        thread, so callers slow down to the store's pace instead of growing the buffer.
        A write already in progress is waited for up to :data:`BACKPRESSURE_WAIT_S` from
        its start, then the caller goes on (the store hangs: the writer's own timeouts
        will mark it down); once it is down, or the writer has drained the buffer, the
        caller writes nothing."""
        started = self._write_started
        wait = BACKPRESSURE_WAIT_S
        if started is not None:
            wait -= time.monotonic() - started
            if wait <= 0.0:
                return
        if not self._io_lock.acquire(timeout=wait):
            return
        try:
            with self._lock:
                behind = len(self._buffer) >= self.high_water
            if behind and not self.store_down:
                self._flush_locked()
        finally:
            self._io_lock.release()

    def _flush_locked(self) -> bool:
        if not self.ready and not self._connect_locked():
            return False
        with self._lock:
            batch, self._buffer = self._buffer, []
            self._inflight = len(batch)
        if batch:
            self._write_started = time.monotonic()
            try:
                written, unwritten, exc = self._write(batch)
            finally:
                self._write_started = None
            with self._lock:
                self._inflight = 0
                if unwritten:
                    self._buffer[:0] = unwritten
                    self._push([])
            if unwritten:
                self._on_write_error(exc, len(unwritten))
            if written and self.on_written is not None:
                self.on_written(written)
            if unwritten:
                return False
            self._reachable_again(len(written))
        if self.after_flush is not None:
            try:
                written_reports = self.after_flush()
            except Exception as exc:
                self._on_write_error(exc, 0)
                return False
            if written_reports:
                self._fold_features(written_reports)
            if written_reports and self.own_cache:
                with self._lock:
                    self._fold(written_reports)
        return True

    def _reachable_again(self, written: int) -> None:
        if self._outage_logged:
            logger.warning(
                "store reachable again; %d buffered outcomes of task %s written",
                written,
                self.task,
                extra={"task": self.task, "written": written},
            )
            self._outage_logged = False

    def _connect_locked(self) -> bool:
        """Reach a store this recorder started without: create or check its schema, load
        the task's evidence, run the start-up checks, then route on the stored evidence
        plus what is buffered. False while unreachable or after a failed check."""
        if self.startup_error is not None:
            return False
        try:
            self.store.connect()
            stored = self.store.load_contexts(self.task) if self.own_cache else self.snapshot()
            spend = self._load_spend() if self.track_spend and self.own_cache else None
            if self.on_connect is not None:
                self.on_connect(stored)
        except ConfigurationError as exc:
            # Writing now would mix this router's outcomes into evidence it would misread.
            self.startup_error = exc
            logger.error(
                "store of task %s reached, but a start-up check failed: %s; this router "
                "routes on and writes nothing (%d outcomes buffered)",
                self.task,
                exc,
                self.buffered,
                extra={"task": self.task, "buffered": self.buffered},
            )
            return False
        except Exception as exc:
            self._on_write_error(exc, 0)
            return False
        if self.own_cache:
            with self._lock:
                self.states = stored
                if spend is not None:
                    self.spend = spend
                # What was routed on during the outage, on top of the stored evidence.
                self._fold(self._buffer)
            try:
                self._reload_features()
            except Exception as exc:
                self._on_write_error(exc, 0)
                return False
        self.ready = True
        logger.warning(
            "store of task %s reached, start-up checks passed: writing %d buffered outcomes",
            self.task,
            self.buffered,
            extra={"task": self.task, "buffered": self.buffered},
        )
        return True

    def refresh(self) -> None:
        """Flush, then reload every path's evidence from the store (others' writes too)."""
        with self._io_lock:
            if not self._flush_locked():
                return
            if self.own_cache:
                try:
                    snapshot = self.store.load_contexts(self.task)
                    spend = self._load_spend() if self.track_spend else None
                except Exception as exc:
                    self._on_write_error(exc, 0)
                    return
                self._reachable_again(0)
                with self._lock:
                    self.states = snapshot
                    if spend is not None:
                        self.spend = spend
                    # Outcomes recorded while we wrote and read are not in the snapshot.
                    self._fold(self._buffer)
            try:
                self._reload_features()
            except Exception as exc:
                self._on_write_error(exc, 0)
                return
        self._last_refresh = time.monotonic()
        if self.on_refresh is not None:
            self.on_refresh()

    def tick(self) -> None:
        if time.monotonic() - self._last_refresh >= self.refresh_interval:
            self.refresh()
        else:
            self.flush()

    def _on_write_error(self, exc: Exception | None, n: int) -> None:
        if not self._outage_logged:
            why = "unknown" if exc is None else short(redact(first_line(exc)))
            logger.error(
                "store write failed (%s: %s) for task %s; routing continues from the cache "
                "and outcomes are buffered",
                type(exc).__name__,
                why,
                self.task,
                extra={"task": self.task, "outcomes": n, "error": type(exc).__name__},
            )
            self._outage_logged = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._at_exit is not None:
            atexit.unregister(self._at_exit)
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if not self.flush():
            logger.error(
                "closing with %d unwritten outcomes of task %s: %s",
                self.buffered,
                self.task,
                "the store is unreachable"
                if self.startup_error is None
                else "a start-up check failed once the store was reached",
                extra={"task": self.task, "unwritten": self.buffered},
            )


def _run_loop(
    ref: weakref.ref[Recorder], stop: threading.Event, wake: threading.Event, interval: float
) -> None:
    wait = interval
    while not stop.is_set():
        wake.wait(wait)
        wake.clear()
        if stop.is_set():
            return
        rec = ref()
        if rec is None:
            return
        started = time.monotonic()
        try:
            rec.tick()
        except Exception:  # never let the writer thread die
            logger.exception("background flush failed")
        del rec
        # A slow flush (a big backlog) is followed at once by the next, so the at-risk
        # window stays near one interval instead of growing with the backlog.
        wait = max(0.0, interval - (time.monotonic() - started))


def _close_at_exit(ref: weakref.ref[Recorder]) -> None:
    rec = ref()
    if rec is not None:
        rec.close()
