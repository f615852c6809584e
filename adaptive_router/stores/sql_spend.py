"""The SQL store's spend table, ``spend_stats``: the atomic upsert that adds a batch's
realized spend (one row per task), the read of a task's row, and its spend target.

The row keeps :class:`~adaptive_router.policies.pacing.SpendStats`' decayed sums relative
to its newest observation time ``ref_time`` and is folded exactly as ``path_stats`` is
(:mod:`adaptive_router.stores.sql_evidence`): the stored sums decayed when the batch is
newer, the batch added decayed when it is older, so many writers equal a replay in any
order, and a restarted router resumes the price its task had.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from adaptive_router.outcomes import Outcome
from adaptive_router.stores.base import SpendStats, fold_spend
from adaptive_router.stores.schema import spend_stats
from adaptive_router.stores.sql_evidence import decay_expr, scaled
from adaptive_router.stores.sql_tasks import TASK_ROW

__all__ = [
    "add_late_cost",
    "backfill_rows",
    "build_upsert",
    "increments",
    "load",
    "set_target",
    "target",
]


def build_upsert(insert: Callable[[sa.Table], Any], half_life: float | None) -> Any:
    """The ``INSERT … ON CONFLICT DO UPDATE`` that adds rows of :func:`increments` made
    with ``half_life`` (built once per half-life, like the path_stats upsert)."""
    stmt = insert(spend_stats)
    ss, ex = spend_stats.c, stmt.excluded
    keep = decay_expr(ex.ref_time - ss.ref_time, half_life)
    add = decay_expr(ss.ref_time - ex.ref_time, half_life)
    newer = ex.ref_time > ss.ref_time
    return stmt.on_conflict_do_update(
        index_elements=["task"],
        set_={
            "spend_w": scaled(ss.spend_w, keep) + scaled(ex.spend_w, add),
            "requests_w": scaled(ss.requests_w, keep) + scaled(ex.requests_w, add),
            "ref_time": sa.case((newer, ex.ref_time), else_=ss.ref_time),
            "requests": ss.requests + ex.requests,
            "spend_usd": ss.spend_usd + ex.spend_usd,
            "half_life_s": ex.half_life_s,
            "updated_at": sa.case((newer, ex.updated_at), else_=ss.updated_at),
        },
    )


def increments(new: Sequence[Outcome], half_life: float | None) -> list[dict[str, Any]]:
    """The upsert's parameters for newly inserted outcomes: one row per task (in key
    order), the batch's spend folded by :func:`~adaptive_router.stores.base.fold_spend`
    relative to its newest time."""
    groups: dict[str, SpendStats] = defaultdict(SpendStats)
    for o in sorted(new, key=lambda o: o.created_at):
        fold_spend(groups[o.task], o, half_life)
    return [_increment(task, st, half_life) for task, st in sorted(groups.items())]


def _increment(task: str, st: SpendStats, half_life: float | None) -> dict[str, Any]:
    """The upsert's parameters adding ``st`` to ``task``'s row."""
    return {
        "task": task,
        "spend_w": st.spend_w,
        "requests_w": st.requests_w,
        "ref_time": st.ref_time,
        "requests": st.requests,
        "spend_usd": st.spend_usd,
        "half_life_s": half_life,
        "target_usd_per_request": None,
        "updated_at": st.ref_time,
    }


def add_late_cost(conn: sa.Connection, task: str, change_usd: float, at: float) -> None:
    """Move ``task``'s spend sums by ``change_usd``, a written outcome's cost difference
    after a late call rewrote it, at the outcome's time ``at`` and with the half-life the
    row is folded with (:meth:`SpendStats.revise`), in ``conn``'s transaction, the row
    locked: the sums then equal a replay of the outcome rows as they now read. An
    UPDATE, not the upsert: the upsert snaps a negative increment to 0."""
    c = spend_stats.c
    row = conn.execute(
        sa.select(c.spend_w, c.requests_w, c.ref_time, c.spend_usd, c.half_life_s)
        .where(c.task == task)
        .with_for_update()
    ).first()
    if row is None:  # no sums to move (the task's outcomes predate spend tracking)
        return
    st = SpendStats(float(row[0]), float(row[1]), float(row[2]), 0, float(row[3]))
    st.revise(change_usd, at, None if row[4] is None else float(row[4]))
    conn.execute(
        spend_stats.update()
        .where(c.task == task)
        .values(
            spend_w=st.spend_w,
            requests_w=st.requests_w,
            ref_time=st.ref_time,
            spend_usd=st.spend_usd,
        )
    )


def load(engine: sa.Engine, task: str) -> SpendStats:
    """``task``'s spend sums (zeros when it has no row)."""
    c = spend_stats.c
    q = sa.select(c.spend_w, c.requests_w, c.ref_time, c.requests, c.spend_usd).where(
        c.task == task
    )
    with engine.connect() as conn:
        r = conn.execute(q).first()
    if r is None:
        return SpendStats()
    return SpendStats(float(r[0]), float(r[1]), float(r[2]), int(r[3]), float(r[4]))


def target(engine: sa.Engine, task: str) -> float | None:
    """The spend target last set for ``task`` (None: none, or no row)."""
    c = spend_stats.c
    with engine.connect() as conn:
        r = conn.execute(sa.select(c.target_usd_per_request).where(c.task == task)).first()
    return None if r is None or r[0] is None else float(r[0])


def set_target(
    engine: sa.Engine, insert: Callable[[sa.Table], Any], task: str, value: float | None
) -> None:
    """Set ``task``'s spend target, creating its row (zero sums) when it has none."""
    stmt = insert(spend_stats).values(
        task=task,
        spend_w=0.0,
        requests_w=0.0,
        ref_time=0.0,
        requests=0,
        spend_usd=0.0,
        half_life_s=None,
        target_usd_per_request=value,
        updated_at=0.0,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["task"], set_={"target_usd_per_request": value}
    )
    with engine.begin() as conn:
        conn.execute(stmt)


def backfill_rows(conn: sa.Connection) -> list[dict[str, Any]]:
    """``spend_stats`` rows for the outcome rows in ``conn``'s database (migration 0010):
    each task's rows replayed oldest first through :func:`fold_spend`, with the half-life
    the task is learned with (its registered one, else its evidence's)."""
    ps = sa.table("path_stats", sa.column("task"), sa.column("path"), sa.column("half_life_s"))
    registered: dict[str, float | None] = {}
    learned: dict[str, float | None] = {}
    for task, path, hl in conn.execute(sa.select(ps.c.task, ps.c.path, ps.c.half_life_s)):
        (registered if path == TASK_ROW else learned).setdefault(task, hl)
    oc = sa.table(
        "outcomes",
        sa.column("id"),
        sa.column("task"),
        sa.column("attempt"),
        sa.column("cost_usd"),
        sa.column("created_at"),
    )
    q = sa.select(oc.c.task, oc.c.attempt, oc.c.cost_usd, oc.c.created_at).order_by(
        oc.c.task, oc.c.created_at, oc.c.id
    )
    sums: dict[str, SpendStats] = {}
    for task, attempt, cost, at in conn.execute(q):
        hl = registered[task] if task in registered else learned.get(task)
        st = sums.get(task)
        if st is None:
            st = sums[task] = SpendStats()
        st.add(0.0 if cost is None else float(cost), 1 if attempt == 1 else 0, float(at), hl)
    return [
        _increment(task, st, registered[task] if task in registered else learned.get(task))
        for task, st in sorted(sums.items())
    ]
