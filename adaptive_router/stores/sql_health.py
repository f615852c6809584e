"""The heartbeat table of the SQL store: one row per live router process, replaced on
every beat (an upsert), read by the dashboard, pruned of processes gone for good."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from adaptive_router.stores.base import HealthSnapshot
from adaptive_router.stores.schema import router_health


def put(engine: sa.Engine, snapshot: HealthSnapshot, expire_before: float) -> None:
    """Upsert the snapshot and delete rows older than ``expire_before``, in one transaction."""
    insert: Callable[[Any], Any] = (
        pg_dialect.insert if engine.dialect.name == "postgresql" else sqlite_dialect.insert
    )
    values = {
        "router_id": snapshot.router_id,
        "host": snapshot.host,
        "pid": snapshot.pid,
        "task": snapshot.task,
        "breakers": dict(snapshot.breakers),
        "alerts": [dict(a) for a in snapshot.alerts],
        "started_at": snapshot.started_at,
        "updated_at": snapshot.updated_at,
    }
    stmt = insert(router_health).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["router_id"],
        set_={k: stmt.excluded[k] for k in values if k != "router_id"},
    )
    with engine.begin() as conn:
        conn.execute(stmt)
        conn.execute(router_health.delete().where(router_health.c.updated_at < expire_before))


def read(engine: sa.Engine, task: str | None) -> list[HealthSnapshot]:
    """Every stored snapshot (of one task when given), by task, host, pid."""
    c = router_health.c
    q = sa.select(router_health).order_by(c.task, c.host, c.pid, c.router_id)
    if task is not None:
        q = q.where(c.task == task)
    with engine.connect() as conn:
        return [
            HealthSnapshot(
                router_id=r.router_id,
                host=r.host,
                pid=int(r.pid),
                task=r.task,
                breakers={str(k): str(v) for k, v in (r.breakers or {}).items()},
                started_at=float(r.started_at),
                updated_at=float(r.updated_at),
                alerts=tuple(r.alerts or ()),
            )
            for r in conn.execute(q)
        ]


def remove(engine: sa.Engine, router_id: str) -> None:
    """Delete one router's row."""
    with engine.begin() as conn:
        conn.execute(router_health.delete().where(router_health.c.router_id == router_id))
