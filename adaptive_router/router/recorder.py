"""The in-process posterior cache and the write-behind batcher in front of a Store.

The routing hot path only touches this cache. Outcomes are folded into it at
once, then written to the store either in the caller's thread
(``durability="sync"``) or by a background thread in batches (``"batch"``,
one transaction per batch). The same thread refreshes the cache from the
store so that each process sees the others' outcomes.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from adaptive_router import forks
from adaptive_router.outcomes import Outcome
from adaptive_router.policy import FloatArray, decay_factor
from adaptive_router.router.context_costs import CostRow, cost_row
from adaptive_router.stores.base import PathState, SharedEvidence, Store, fold_outcome

logger = logging.getLogger(__name__)

#: Buffered outcomes that wake the writer before its interval is up.
WAKE_AT = 2_000
#: Buffered outcomes past which, with the store reachable, the recording thread flushes.
HIGH_WATER = 20_000


_NO_STATES: dict[str, PathState] = {}


class Recorder:
    """Cache + buffer for one task. Thread-safe."""

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
    ) -> None:
        self.store = store
        self.task = task
        self.half_life = half_life
        self.sync = durability == "sync" or store.in_process
        self.clock = clock
        self.flush_interval = flush_interval
        self.refresh_interval = refresh_interval
        self.max_buffer = max_buffer
        #: A healthy store's backlog past this makes callers write (see ``record``).
        self.high_water = min(max_buffer, HIGH_WATER)
        self.dropped = 0
        self._io_lock = threading.Lock()  # serialises this recorder's store writes
        self._buffer: list[Outcome] = []
        self._inflight = 0  # taken from the buffer by a flush that has not committed yet
        self._outage_logged = False
        # context -> path -> evidence; "" is the task level that every outcome updates.
        self.states: dict[str, dict[str, PathState]]
        #: A copy of the store's evidence that this recorder folds into (False: the
        #: store's own, read in place; it folds every written outcome itself).
        self.own_cache = not isinstance(store, SharedEvidence)
        if isinstance(store, SharedEvidence):
            # The lock guards states and buffer; never held during I/O (a shared store's
            # lock is held only for its in-memory folds).
            self.states, self._lock = store.shared_contexts(task)
        else:
            self.states = store.load_contexts(task)
            self._lock = threading.Lock()
        self._last_refresh = time.monotonic()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set when the buffer is worth a flush right away
        self._thread: threading.Thread | None = None
        self._closed = False
        #: Hooks the Router sets when it has observers.
        self.on_drop: Callable[[int, int], None] | None = None
        self.on_refresh: Callable[[], None] | None = None
        #: Called with each batch of outcomes once the store has committed it.
        self.on_written: Callable[[Sequence[Outcome]], None] | None = None
        if not store.in_process:
            self.start()
            # A forked child inherits this registration: it flushes its own buffer when
            # it exits normally.
            atexit.register(_close_at_exit, weakref.ref(self))
        forks.follow(self)

    def start(self) -> None:
        """Start the writer thread unless it runs (the constructor does; a forked child
        does at its first use of the router). Nothing to start for an in-process store."""
        with self._lock:
            if self.store.in_process or self._closed or self._thread is not None:
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
        self, names: Sequence[str], context: str, now: float
    ) -> tuple[FloatArray, FloatArray, FloatArray | None, FloatArray | None]:
        """``(success, failure)`` weights of each of ``names`` at the task level, decayed
        to ``now`` (0 without evidence), then the same in ``context`` (``None, None`` for
        the task level, ``context=""``). Read under the lock: folds mutate the states in
        place, and a half-folded state must not be read."""
        with self._lock:
            s, f = self._decayed(self.states.get("", _NO_STATES), names, now)
            if not context:
                return s, f, None, None
            own_s, own_f = self._decayed(self.states.get(context, _NO_STATES), names, now)
        return s, f, own_s, own_f

    def _decayed(
        self, states: dict[str, PathState], names: Sequence[str], now: float
    ) -> tuple[FloatArray, FloatArray]:
        half_life = self.half_life
        s = np.zeros(len(names))
        f = np.zeros(len(names))
        if half_life is None:  # nothing decays (the default): no factor to compute
            for i, st in enumerate(map(states.get, names)):
                if st is not None:
                    s[i] = st.success_w
                    f[i] = st.failure_w
            return s, f
        for i, st in enumerate(map(states.get, names)):
            if st is not None:
                k = decay_factor(now - st.ref_time, half_life)
                s[i] = st.success_w * k
                f[i] = st.failure_w * k
        return s, f

    def means(self) -> dict[str, tuple[float | None, float | None]]:
        """Each path's task-level decayed mean ``(cost_usd, latency_ms)`` per attempt
        (None where nothing was measured)."""
        with self._lock:
            return {
                n: (st.mean_cost_usd, st.mean_latency_ms)
                for n, st in self.states.get("", {}).items()
            }

    def cost_evidence(self, context: str) -> tuple[dict[str, CostRow], dict[str, CostRow]]:
        """``(task level, context)``: each path's decayed cost and latency sums
        (:data:`~adaptive_router.router.context_costs.CostRow`) in the two rows."""
        with self._lock:
            task = {n: cost_row(st) for n, st in self.states.get("", {}).items()}
            own = {n: cost_row(st) for n, st in self.states.get(context, {}).items()}
        return task, own

    def snapshot(self) -> dict[str, dict[str, PathState]]:
        """A copy of every context's path states (``""`` is the task level)."""
        with self._lock:
            return {
                c: {n: replace(st) for n, st in paths.items()} for c, paths in self.states.items()
            }

    def contexts(self) -> list[str]:
        """The named contexts with evidence, sorted."""
        with self._lock:
            return sorted(c for c in self.states if c)

    def admits_context(self, context: str, max_contexts: int) -> bool:
        """Whether ``context`` is known or there is room for one more named context."""
        with self._lock:
            known = context in self.states
            named = len(self.states) - ("" in self.states)
        return known or named < max_contexts

    # -- recording ---------------------------------------------------------------
    def record(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        if self.sync:
            with self._io_lock:
                try:
                    self.store.write(outcomes, self.half_life)
                except Exception as exc:  # the store is down: keep routing, retry later
                    self._on_write_error(exc, len(outcomes))
                    with self._lock:
                        self._fold(outcomes)
                        self._push(outcomes)
                    return
                if self.own_cache:
                    with self._lock:
                        self._fold(outcomes)
                if self.on_written is not None:
                    self.on_written(outcomes)
            return
        with self._lock:
            self._fold(outcomes)
            self._push(outcomes)
            backlog = len(self._buffer) >= self.high_water and not self._outage_logged
        if backlog:
            # Backpressure: the store is up but slower than the traffic. Writing here
            # slows this caller down instead of letting the buffer (memory, and the crash
            # window) grow until it drops outcomes. Drops are for outages only.
            self.flush()

    def write_through(self, write: Callable[[], Sequence[Outcome]]) -> None:
        """Run a store transaction that records outcomes itself, then fold them into the cache.

        Holding the I/O lock keeps a concurrent refresh from loading the rows and then
        having them folded in a second time.
        """
        with self._io_lock:
            written = write()
            if self.own_cache:
                with self._lock:
                    self._fold(written)

    def rebill(self, outcome: Outcome) -> None:
        """Rewrite a recorded outcome's usage in the store (a late SDK call added to it).

        Under the I/O lock, after a flush: a write of this outcome has either committed
        (the row is updated here) or not started (it writes the new values, which the
        caller set on the object first), so the late usage is never lost to a race.
        """
        with self._io_lock:
            if not self._flush_locked():
                return  # the store is down: the buffered row carries the new values
            try:
                self.store.update_usage(outcome)
            except Exception as exc:
                logger.error(
                    "could not record a late call's usage for request %s attempt %d: %s",
                    outcome.request_id,
                    outcome.attempt,
                    type(exc).__name__,
                    extra={"task": self.task, "request_id": outcome.request_id},
                )

    def _fold(self, outcomes: Sequence[Outcome]) -> None:
        if not self.own_cache:
            return  # the store folds what it writes: an unwritten outcome waits its turn
        for o in outcomes:
            for ctx in o.evidence_keys():
                paths = self.states.get(ctx)
                if paths is None:
                    paths = self.states[ctx] = {}
                st = paths.get(o.path)
                if st is None:
                    st = paths[o.path] = PathState(ref_time=o.created_at)
                fold_outcome(st, o, self.half_life)

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

    def _flush_locked(self) -> bool:
        with self._lock:
            batch, self._buffer = self._buffer, []
            self._inflight = len(batch)
        if not batch:
            return True
        try:
            self.store.write(batch, self.half_life)
        except Exception as exc:
            self._on_write_error(exc, len(batch))
            with self._lock:
                self._inflight = 0
                self._buffer[:0] = batch
                self._push([])
            return False
        with self._lock:
            self._inflight = 0
        if self.on_written is not None:
            self.on_written(batch)
        if self._outage_logged:
            logger.warning(
                "store reachable again; %d buffered outcomes of task %s written",
                len(batch),
                self.task,
                extra={"task": self.task, "written": len(batch)},
            )
            self._outage_logged = False
        return True

    def refresh(self) -> None:
        """Flush, then reload every path's evidence from the store (others' writes too)."""
        with self._io_lock:
            if not self._flush_locked():
                return
            if self.own_cache:
                try:
                    snapshot = self.store.load_contexts(self.task)
                except Exception as exc:
                    self._on_write_error(exc, 0)
                    return
                with self._lock:
                    self.states = snapshot
                    # Outcomes recorded while we wrote and read are not in the snapshot.
                    self._fold(self._buffer)
        self._last_refresh = time.monotonic()
        if self.on_refresh is not None:
            self.on_refresh()

    def tick(self) -> None:
        if time.monotonic() - self._last_refresh >= self.refresh_interval:
            self.refresh()
        else:
            self.flush()

    def _on_write_error(self, exc: Exception, n: int) -> None:
        if not self._outage_logged:
            logger.error(
                "store write failed (%s) for task %s; routing continues from the cache and "
                "outcomes are buffered",
                type(exc).__name__,
                self.task,
                extra={"task": self.task, "outcomes": n, "error": type(exc).__name__},
            )
            self._outage_logged = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if not self.flush():
            logger.error(
                "closing with %d unwritten outcomes of task %s: the store is unreachable",
                self.buffered,
                self.task,
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
