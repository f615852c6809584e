"""Decisions reported later: ``choose`` persists a pending decision, ``report`` completes
it (through :class:`~adaptive_router.reporting.Reporter`, shared with processes that
have no Router), and decisions never reported expire."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from adaptive_router.observe.observers import Observers
from adaptive_router.outcomes import Decision, ErrorKind, Outcome
from adaptive_router.paths import Path
from adaptive_router.reporting import Reporter
from adaptive_router.router.recorder import Recorder
from adaptive_router.stores.base import PendingDecision, Store

__all__ = ["Feedback"]


class Feedback:
    """``choose``/``report``/expiry for one task. ``log`` is the router's logger."""

    def __init__(
        self,
        task: str,
        store: Store,
        recorder: Recorder,
        reporter: Reporter,
        observers: Observers,
        *,
        pending_ttl: float,
        on_expired: str,
        half_life: float | None,
        clock: Callable[[], float],
        log: logging.Logger,
    ) -> None:
        self.task = task
        self.store = store
        self.recorder = recorder
        self.reporter = reporter
        self.observers = observers
        self.pending_ttl = pending_ttl
        self.on_expired = on_expired
        self.half_life = half_life
        self.clock = clock
        self.log = log
        self._last_expiry = 0.0

    def choose(self, rid: str, order: list[Path], context: str) -> Decision:
        """Persist the decision to take ``order[0]`` for request ``rid``."""
        now = self.clock()
        self.expire(now)
        first = order[0]
        self.store.add_pending(
            PendingDecision(rid, self.task, first.name or "", now, context, first.model)
        )
        return Decision(rid, first.name or "", tuple(p.name or "" for p in order), now)

    def report(self, request_id: str, success: bool, **fields: Any) -> bool:
        """Complete a decision (see :meth:`Router.report`); True if recorded now."""
        done = self.reporter.record(
            request_id,
            success,
            **fields,
            write=self.recorder.write_through,
            before=self.expire,
        )
        if done.outcomes and self.observers:
            for o in done.outcomes:
                self.observers.emit("attempt_finished", o)
            self.observers.emit(
                "request_finished",
                self.task,
                request_id,
                list(done.outcomes),
                done.outcomes[0].success,
            )
        return done.recorded

    def expire(self, now: float) -> None:
        """Count (or drop) decisions older than ``pending_ttl``; at most every tenth of it."""
        if now - self._last_expiry < min(self.pending_ttl / 10, 60.0):
            return
        self._last_expiry = now

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

        self.recorder.write_through(write)
        if expired:
            self.log.warning(
                "%d pending decisions of task %s expired without a report (counted as %s)",
                len(expired),
                self.task,
                self.on_expired,
                extra={"task": self.task, "count": len(expired), "counted_as": self.on_expired},
            )
