"""The numbers the dashboard shows, read through the Store contract and the library's
own reports, never SQL of its own: one :func:`adaptive_router.reports.summary` (the stats
of ``Router.stats()``, the spend of ``Router.costs()``, the posteriors of
``Router.posteriors()`` and the time series, from the SQL store's hourly rollups) shaped
as JSON; the fleet's breakers and alerts are the routers' heartbeats."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adaptive_router.reports.summary import json_number, posterior_dict, stats_dict
from adaptive_router.reports.summary import summary as task_summary
from adaptive_router.stores.base import HealthSnapshot, HealthSnapshots, Store

__all__ = [
    "STALE_AFTER_S",
    "UnknownTaskError",
    "Window",
    "parse_window",
    "posterior_dict",
    "stats_dict",
    "summary",
]

#: A heartbeat older than this is shown as stale (its process may be gone or stuck).
STALE_AFTER_S = 60.0
#: Alerts listed on the page (newest first, across the task's routers).
MAX_ALERTS = 50

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class UnknownTaskError(LookupError):
    """The task has no evidence in the store; ``known`` lists the tasks that do."""

    def __init__(self, task: str, known: Sequence[str]) -> None:
        shown = ", ".join(repr(t) for t in known) if known else "none yet"
        super().__init__(f"unknown task {task!r}; known tasks: {shown}")
        self.task = task
        self.known = list(known)


@dataclass(frozen=True, slots=True)
class Window:
    """``since <= created_at < until``; ``until`` None means open-ended up to now."""

    since: float
    until: float | None
    now: float

    @property
    def end(self) -> float:
        """The time the posteriors are decayed to and the heartbeats are aged at."""
        return self.until if self.until is not None else self.now


def _instant(text: str, name: str) -> float:
    """Epoch seconds from a number or an ISO 8601 time (UTC when no zone is given)."""
    try:
        value = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{name}={text!r} is not a time; give epoch seconds or ISO 8601, "
                "e.g. 2026-01-31T12:00:00Z"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"{name}={text!r} is not a finite time")
    return value


def parse_window(since: str, until: str | None, now: float) -> Window:
    """``since`` is a duration back from ``until`` (or now) — ``30s``, ``15m``, ``1h``,
    ``7d``, ``1w`` — or a time (epoch seconds, ISO 8601); ``until`` a time or None.
    Raises ``ValueError`` naming the parameter."""
    end = _instant(until, "until") if until not in (None, "") else None
    m = _DURATION.match(since)
    if m is not None:
        length = float(m.group(1)) * _UNITS[m.group(2)]
        if length <= 0:
            raise ValueError(f"since={since!r} must be a positive duration")
        start = (end if end is not None else now) - length
    else:
        try:
            start = _instant(since, "since")
        except ValueError:
            raise ValueError(
                f"since={since!r} is neither a duration (30s, 15m, 1h, 7d, 1w) "
                "nor a time (epoch seconds, ISO 8601)"
            ) from None
    if end is not None and end <= start:
        raise ValueError(f"until ({end:g}) must be after since ({start:g})")
    return Window(start, end, now)


def health_dict(h: HealthSnapshot, now: float) -> dict[str, Any]:
    """A heartbeat row with its age and whether it is stale."""
    age = max(0.0, now - h.updated_at)
    return {
        "router_id": h.router_id,
        "host": h.host,
        "pid": h.pid,
        "task": h.task,
        "breakers": dict(sorted(h.breakers.items())),
        "started_at": h.started_at,
        "updated_at": h.updated_at,
        "age_s": age,
        "stale": age > STALE_AFTER_S,
    }


def summary(
    store: Store,
    task: str,
    window: Window,
    prior: tuple[float, float] = (1.0, 1.0),
) -> dict[str, Any]:
    """Everything the page shows for ``task`` over ``window``, as JSON-ready data.

    Raises :class:`UnknownTaskError` when the store holds no evidence for ``task``.
    """
    known = store.tasks()
    if task not in known:
        raise UnknownTaskError(task, known)
    found = task_summary(store, task, window.since, window.until, now=window.end, prior=prior)
    ts = found.series
    beats = store.health(task) if isinstance(store, HealthSnapshots) else []
    alerts = sorted(
        ({**a, "host": h.host, "pid": h.pid} for h in beats for a in h.alerts),
        key=lambda a: -float(a.get("at") or 0.0),
    )[:MAX_ALERTS]
    return {
        "task": task,
        "tasks": known,
        "since": window.since,
        "until": window.until,
        "now": window.now,
        "half_life_s": found.half_life,
        "prior": list(prior),
        "stats": [stats_dict(s) for s in sorted(found.stats, key=lambda s: s.path)],
        "costs": found.costs.to_dict(),
        "posteriors": [posterior_dict(p) for p in found.posteriors],
        "contexts": {
            ctx: [posterior_dict(p) for p in ps] for ctx, ps in found.context_posteriors.items()
        },
        "series": {
            "bucket_s": ts.bucket_s,
            "starts": list(ts.starts),
            "paths": list(ts.paths),
            "requests": list(ts.requests),
            "first_share": {p: list(v) for p, v in ts.first_share.items()},
            "success_rate": {p: [json_number(x) for x in v] for p, v in ts.success_rate.items()},
            "cost_usd": {p: [json_number(x) for x in v] for p, v in ts.cost_usd.items()},
            "unknown_cost_attempts": ts.unknown_cost_attempts,
        },
        "spend": None if found.spend is None else found.spend.to_dict(),
        "health": [health_dict(h, window.now) for h in beats],
        "alerts": alerts,
    }
