"""Decisions reported later: ``choose`` persists a pending decision, ``report`` completes
it (through :class:`~adaptive_router.feedback.reporter.Reporter`, shared with processes that
have no Router), and decisions never reported expire.

A store outage does not lose them: the router holds the decisions it made (bounded) until
they are reported or expire, so a ``choose`` during an outage is stored when the store
returns, and a ``report`` of one of them is accepted and claimed then. The claim is the
same transaction as ever, so the first claim of a decision wins across processes.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from adaptive_router import forks
from adaptive_router.errors import StoreUnavailableError, UnknownRequestError
from adaptive_router.feedback.reporter import Report, Reporter
from adaptive_router.observe.observers import Observers
from adaptive_router.outcomes import Decision, ErrorKind, Outcome
from adaptive_router.paths import Path
from adaptive_router.stores.base import InProcess, PendingDecision, Store

__all__ = ["Feedback", "StoreGate"]


class StoreGate(Protocol):
    """What feedback needs of the router's outcome writer
    (:class:`~adaptive_router.router.recorder.Recorder`): whether the store is reachable,
    and a way to write through it that keeps its cache exact. A protocol, so that the
    feedback package sits below the router and never imports it."""

    @property
    def store_down(self) -> bool:
        """True while the store is unreachable (or not reached yet)."""
        ...

    def check_started(self) -> None:
        """Raise the start-up check's error if it failed."""
        ...

    def store_failed(self, exc: Exception) -> None:
        """Note a store call that failed for an outage."""
        ...

    def write_through(self, write: Callable[[], Sequence[Outcome]]) -> None:
        """Run a store transaction that records outcomes, then fold them into the cache."""
        ...


@dataclass(slots=True)
class _Held:
    """A decision this router made, not reported yet (or reported during an outage)."""

    decision: PendingDecision
    stored: bool = False  # its pending record is in the store
    report: Report | None = None  # accepted while the store was down, not claimed yet


class Feedback:
    """``choose``/``report``/expiry for one task. ``log`` is the router's logger.

    ``max_held`` bounds the decisions held in memory (oldest forgotten first; a report
    accepted during an outage and forgotten so is counted in ``lost_reports``).
    """

    def __init__(
        self,
        task: str,
        store: Store,
        reporter: Reporter,
        observers: Observers,
        *,
        pending_ttl: float,
        on_expired: str,
        half_life: float | None,
        clock: Callable[[], float],
        log: logging.Logger,
        max_held: int = 100_000,
    ) -> None:
        self.task = task
        self.store = store
        self.reporter = reporter
        self.observers = observers
        self.pending_ttl = pending_ttl
        self.on_expired = on_expired
        self.half_life = half_life
        self.clock = clock
        self.log = log
        self.max_held = max_held
        #: Reports accepted during an outage and dropped because ``max_held`` was reached.
        self.lost_reports = 0
        self._last_expiry = 0.0
        self._lock = threading.Lock()  # guards the three below; never held during I/O
        self._held: OrderedDict[str, _Held] = OrderedDict()
        self._todo: deque[str] = deque()  # ids with store work left, oldest first
        self._unclaimed = 0
        forks.follow(self)

    def _after_fork_in_child(self) -> None:
        """In a forked child: a fresh lock, and none of the parent's held decisions. Their
        pending records and accepted reports are the parent's to write (written twice
        from two processes, a report would count once but be logged as lost)."""
        self._lock = threading.Lock()
        self._held = OrderedDict()
        self._todo = deque()
        self._unclaimed = 0

    @property
    def unclaimed(self) -> int:
        """Reports accepted during an outage that the store has not recorded yet."""
        with self._lock:
            return self._unclaimed

    def choose(
        self,
        rid: str,
        order: list[Path],
        context: str,
        gate: StoreGate,
        features: bytes | None = None,
    ) -> Decision:
        """Persist the decision to take ``order[0]`` for request ``rid`` (later, if the
        store is down now), with the request's encoded feature vector (None: none)."""
        gate.check_started()
        now = self.clock()
        self.expire(now, gate)
        first = order[0]
        held = _Held(
            PendingDecision(rid, self.task, first.name or "", now, context, first.model, features)
        )
        if isinstance(self.store, InProcess):  # never unreachable: nothing to hold
            self.store.add_pending(held.decision)
            return Decision(rid, first.name or "", tuple(p.name or "" for p in order), now)
        with self._lock:
            self._hold(rid, held, now)
        if not gate.store_down:
            try:
                self.store.add_pending(held.decision)
            except StoreUnavailableError as exc:
                gate.store_failed(exc)
            else:
                held.stored = True
        if not held.stored:
            with self._lock:
                self._todo.append(rid)
        return Decision(rid, first.name or "", tuple(p.name or "" for p in order), now)

    def _hold(self, rid: str, held: _Held, now: float) -> None:
        """Remember ``held`` (under the lock); forget the oldest beyond ``max_held`` and
        stored decisions past their TTL (the store expires those)."""
        self._held[rid] = held
        if len(self._held) > self.max_held:
            _, old = self._held.popitem(last=False)
            if old.report is not None:
                self._unclaimed -= 1
                self.lost_reports += 1
                if self.lost_reports == 1:
                    self.log.error(
                        "more than %d decisions of task %s held during a store outage: "
                        "forgetting the oldest, reports accepted for them are lost",
                        self.max_held,
                        self.task,
                        extra={"task": self.task, "max_held": self.max_held},
                    )
        cutoff = now - self.pending_ttl
        while self._held:
            old = next(iter(self._held.values()))
            if not (old.stored and old.report is None and old.decision.created_at < cutoff):
                break
            self._held.popitem(last=False)

    def report(self, request_id: str, success: bool, gate: StoreGate, **fields: Any) -> bool:
        """Complete a decision (see :meth:`Router.report`); True if recorded now, or
        accepted during an outage (a decision this router holds)."""
        gate.check_started()
        report = self.reporter.validate(request_id, success, **fields)
        self.expire(report.created_at, gate)
        with self._lock:
            held = self._held.get(request_id)
            accepted = None if held is None else self._accept(held, report, gate.store_down)
        if held is not None and accepted is not None:
            return self._accepted(held, report, accepted)
        try:
            done = self.reporter.claim(report, gate.write_through)
        except StoreUnavailableError as exc:
            if held is None:
                raise  # not ours to hold: the caller must report it again later
            gate.store_failed(exc)
            with self._lock:
                accepted = self._accept(held, report, True)
            return self._accepted(held, report, bool(accepted))
        except UnknownRequestError:
            self._forget(request_id)
            raise
        if held is not None:
            self._forget(request_id)
        self._emit(request_id, done.outcomes)
        return done.recorded

    def _accept(self, held: _Held, report: Report, store_down: bool) -> bool | None:
        """Under the lock: False for a second report of a decision whose first waits for
        the store; True when ``report`` is deferred (the decision's record is not stored
        yet, or the store is down); None to claim it now."""
        if held.report is not None:
            return False
        if held.stored and not store_down:
            return None
        held.report = report
        self._todo.append(report.request_id)
        self._unclaimed += 1
        return True

    def _accepted(self, held: _Held, report: Report, accepted: bool) -> bool:
        """Log and announce what :meth:`_accept` decided (outside the lock)."""
        if not accepted:
            self.log.warning(
                "report ignored: request %s of task %s already reported",
                report.request_id,
                self.task,
                extra={"request_id": report.request_id, "task": self.task},
            )
            return False
        self.log.info(
            "report of request %s (task %s) accepted while the store is down; it is "
            "recorded when the store returns",
            report.request_id,
            self.task,
            extra={"request_id": report.request_id, "task": self.task},
        )
        self._emit(report.request_id, (self.reporter.outcome(report, held.decision),))
        return True

    def _forget(self, request_id: str) -> None:
        with self._lock:
            held = self._held.get(request_id)
            if held is not None and held.report is None:
                del self._held[request_id]

    def _emit(self, request_id: str, outcomes: Sequence[Outcome]) -> None:
        if outcomes and self.observers:
            for o in outcomes:
                self.observers.emit("attempt_finished", o)
            self.observers.emit(
                "request_finished", self.task, request_id, list(outcomes), outcomes[0].success
            )

    def sync(self) -> list[Outcome]:
        """Do the store work deferred during an outage, oldest first: store the decisions
        made, then claim the reports accepted. Runs under the recorder's I/O lock after a
        successful flush; returns the outcomes written and raises (the rest waits) when the
        store fails again."""
        written: list[Outcome] = []
        while True:
            with self._lock:
                if not self._todo:
                    return written
                rid = self._todo[0]
                held = self._held.get(rid)
                if held is None:  # claimed already, or forgotten past max_held
                    self._todo.popleft()
                    continue
                stored, report = held.stored, held.report
            failed = False
            try:
                if not stored:
                    self.store.add_pending(held.decision)
                    held.stored = True
                if report is not None:
                    written.extend(self._claim_late(report))
            except StoreUnavailableError:
                raise  # still down: this and the rest wait for the next flush
            except Exception as exc:
                # Not an outage: retrying would block every decision queued behind it.
                failed = True
                self.log.error(
                    "request %s of task %s could not be stored after the outage (%s: %s); dropped",
                    rid,
                    self.task,
                    type(exc).__name__,
                    exc,
                    extra={"request_id": rid, "task": self.task},
                )
            with self._lock:
                self._todo.popleft()
                # A report that arrives meanwhile queued the id again: the next turn claims it.
                if (failed or report is not None) and self._held.get(rid) is held:
                    del self._held[rid]
                    if held.report is not None:
                        self._unclaimed -= 1
                        self.lost_reports += failed

    def _claim_late(self, report: Report) -> Sequence[Outcome]:
        """Claim a report accepted during the outage; the first claim of a decision wins
        (a report from another process, or this one's whose acknowledgment was lost)."""
        try:
            # The recorder holds its I/O lock and folds what is returned: a plain call.
            done = self.reporter.claim(report)
        except UnknownRequestError:
            self.log.warning(
                "report of request %s (task %s), accepted during a store outage, found its "
                "decision expired and dropped; not recorded",
                report.request_id,
                self.task,
                extra={"request_id": report.request_id, "task": self.task},
            )
            return ()
        return done.outcomes

    def expire(self, now: float, gate: StoreGate) -> None:
        """Count (or drop) decisions older than ``pending_ttl``; at most every tenth of it."""
        if now - self._last_expiry < min(self.pending_ttl / 10, 60.0):
            return
        if gate.store_down:
            return  # the next call after the store returns does it
        last, self._last_expiry = self._last_expiry, now

        def build(p: PendingDecision) -> Outcome:
            return Outcome(
                request_id=p.request_id,
                task=self.task,
                path=p.path,
                attempt=1,
                success=False,
                kind=ErrorKind.EXPIRED.value,
                error=f"no report within {self.pending_ttl:g} s",
                created_at=now,
                features=self.reporter.decision_features(p),
            )

        expired: list[PendingDecision] = []

        def write() -> list[Outcome]:
            done = self.store.expire_pending(
                self.task,
                now - self.pending_ttl,
                build if self.on_expired == "failure" else None,
                self.half_life,
            )
            expired.extend(p for p, _ in done)
            return [o for _, o in done if o is not None]

        try:
            gate.write_through(write)
        except StoreUnavailableError as exc:
            gate.store_failed(exc)
            self._last_expiry = last
            return
        if expired:
            self.log.warning(
                "%d pending decisions of task %s expired without a report (counted as %s)",
                len(expired),
                self.task,
                self.on_expired,
                extra={"task": self.task, "count": len(expired), "counted_as": self.on_expired},
            )
