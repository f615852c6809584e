"""The router's heartbeat: a small health snapshot in the store every few seconds.

Each router writes one row — host, pid, task, every path's circuit-breaker state, its
recent alerts — from a daemon thread, also while it serves no requests (an idle router
writes no outcomes, so nothing else would say it is alive). The dashboard reads these rows
to show the breakers across the fleet and marks a row whose beat is older than a minute as
stale; a row silent for longer than ``ttl`` is deleted by whichever router beats next, and
a router that closes deletes its own.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from adaptive_router import forks
from adaptive_router._checks import first_line
from adaptive_router.errors import ConfigurationError
from adaptive_router.observe.alerts import Alert
from adaptive_router.stores.base import HealthSnapshot, HealthSnapshots, Store

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_INTERVAL_S",
    "DEFAULT_TTL_S",
    "MAX_ALERTS",
    "Heartbeat",
    "alert_dict",
    "start_heartbeat",
]

#: Seconds between beats.
DEFAULT_INTERVAL_S = 5.0
#: A row not refreshed for this long belongs to a process gone for good: it is deleted.
DEFAULT_TTL_S = 900.0
#: Alerts carried per snapshot (the newest).
MAX_ALERTS = 20
#: How long ``close`` waits for a beat in flight (a store outage must not hang close).
_JOIN_S = 2.0


def alert_dict(alert: Alert) -> dict[str, Any]:
    """An alert as the JSON a snapshot stores."""
    return {
        "kind": alert.kind,
        "path": alert.path,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold,
        "at": alert.at,
        "suppressed": alert.suppressed,
    }


@dataclass(frozen=True, slots=True)
class _Identity:
    router_id: str
    host: str
    pid: int


class Heartbeat:
    """Writes :class:`HealthSnapshot` s of one router to its store.

    ``breakers`` returns ``{path: state}`` and ``alerts`` the router's recent alerts at
    each beat; ``clock`` stamps the beats (the router's clock, so tests pin it). Call
    :meth:`beat` to write one now, :meth:`start` to beat every ``interval`` seconds of
    real time from a daemon thread, :meth:`stop` to end it and remove the row.
    """

    def __init__(
        self,
        store: Store,
        task: str,
        breakers: Callable[[], dict[str, str]],
        alerts: Callable[[], Iterable[Alert]],
        clock: Callable[[], float],
        *,
        interval: float = DEFAULT_INTERVAL_S,
        ttl: float | None = None,
        router_id: str | None = None,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        for name, value in (("heartbeat", interval), ("ttl", 1.0 if ttl is None else ttl)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"{name} must be seconds (a number), got {value!r}")
            if not (value > 0 and math.isfinite(value)):
                raise ConfigurationError(
                    f"{name} must be a positive number of seconds, got {value!r} "
                    "(heartbeat=None turns the heartbeat off)"
                )
        if ttl is None:
            ttl = max(DEFAULT_TTL_S, 10.0 * interval)
        if ttl <= interval:
            raise ConfigurationError(f"ttl ({ttl:g} s) must exceed the interval ({interval:g} s)")
        self.store, self.task, self.clock = store, task, clock
        self.interval, self.ttl = float(interval), float(ttl)
        self._breakers, self._alerts = breakers, alerts
        self.identity = _Identity(
            router_id or uuid.uuid4().hex,
            host if host is not None else socket.gethostname(),
            pid if pid is not None else os.getpid(),
        )
        self.started_at = clock()
        #: Beats written so far.
        self.beats = 0
        self._failing = False
        self._supported = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        forks.follow(self)

    def _after_fork_in_child(self) -> None:
        """In a forked child: a router of its own in the fleet (a new id and this pid, so
        the parent's row is not overwritten), not beating until :meth:`start`."""
        stopped = self._stop.is_set()
        self._stop = threading.Event()
        if stopped:
            self._stop.set()
        self._thread = None
        self.identity = _Identity(uuid.uuid4().hex, self.identity.host, os.getpid())
        self.started_at = self.clock()
        self.beats = 0
        self._failing = False

    def snapshot(self) -> HealthSnapshot:
        """The router's health now."""
        recent = [a for a in self._alerts() if a.task == self.task][-MAX_ALERTS:]
        return HealthSnapshot(
            router_id=self.identity.router_id,
            host=self.identity.host,
            pid=self.identity.pid,
            task=self.task,
            breakers=dict(self._breakers()),
            started_at=self.started_at,
            updated_at=self.clock(),
            alerts=tuple(alert_dict(a) for a in recent),
        )

    def beat(self) -> bool:
        """Write a snapshot now (and prune rows older than the TTL); True if written.

        A failure never propagates: the first of a run of failures is logged as a
        warning, the rest at debug level, and the next success says it recovered.
        """
        store = self.store
        if not isinstance(store, HealthSnapshots):
            if self._supported:
                self._supported = False
                logger.info("store %r keeps no heartbeats; the heartbeat is off", store)
            return False
        try:
            # Inside the try: the alerts deque may be appended to while it is copied.
            snap = self.snapshot()
            store.put_health(snap, snap.updated_at - self.ttl)
        except Exception as exc:
            log = logger.debug if self._failing else logger.warning
            log(
                "heartbeat of task %r not written: %s",
                self.task,
                first_line(exc),
                extra={"task": self.task, "router_id": self.identity.router_id},
            )
            self._failing = True
            return False
        if self._failing:
            logger.info("heartbeat of task %r written again", self.task)
            self._failing = False
        self.beats += 1
        return True

    def start(self) -> None:
        """Beat now and then every ``interval`` seconds from a daemon thread (a no-op when
        it runs or was stopped)."""
        if self._thread is not None or self._stop.is_set():
            return
        self._thread = threading.Thread(
            target=self._run, name=f"adaptive-router-heartbeat-{self.task}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        self.beat()
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        """Stop beating and delete this router's row (best effort: a store outage leaves
        it to expire after the TTL)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(_JOIN_S)
        store = self.store
        if not isinstance(store, HealthSnapshots):
            return
        try:
            store.remove_health(self.identity.router_id)
        except Exception as exc:
            logger.debug("heartbeat row not removed: %s", first_line(exc))


def start_heartbeat(
    store: Store,
    task: str,
    breakers: Callable[[], dict[str, str]],
    alerts: Callable[[], Iterable[Alert]],
    clock: Callable[[], float],
    interval: float | None,
) -> Heartbeat | None:
    """Beat every ``interval`` seconds for the router of ``task`` (see :class:`Heartbeat`)
    and return the heartbeat (None: off)."""
    if interval is None:
        return None
    beat = Heartbeat(store, task, breakers, alerts, clock, interval=interval)
    beat.start()
    return beat
