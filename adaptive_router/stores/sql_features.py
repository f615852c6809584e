"""The SQL store's feature evidence, ``feature_stats``: the fold of a batch's feature
vectors into each path's linear statistics, and the read of a task's rows.

A row's sums are blobs (a D × D triangle), which no upsert can add to, so each row is
folded under a row lock instead, in the transaction that inserts the outcomes: the row is
created if missing (``ON CONFLICT DO NOTHING``, so two first writers cannot collide),
locked (PostgreSQL's ``FOR UPDATE``; on SQLite the transaction already holds the database's
write lock from the outcome insert), read, folded and written back. Rows are taken in key
order, so two batches never wait for each other in a cycle. Many processes' batches then
equal one replay (to rounding), whatever the interleaving.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

import adaptive_router.stores.feature_stats as fs
from adaptive_router.outcomes import Outcome
from adaptive_router.stores.schema import feature_stats

if TYPE_CHECKING:
    from adaptive_router.policies.contextual import LinearStats

__all__ = ["fold", "load"]


def fold(
    conn: sa.Connection,
    insert: Callable[[sa.Table], Any],
    new: Sequence[Outcome],
    half_life: float | None,
) -> None:
    """Fold the feature evidence of newly inserted outcomes (none: nothing is read)."""
    groups = fs.groups(new)
    if not groups:
        return
    c = feature_stats.c
    for key in sorted(groups):
        task, ctx, path = key
        group = groups[key]
        conn.execute(
            insert(feature_stats)
            .values(
                task=task,
                context=ctx,
                path=path,
                dim=0,
                xx=None,
                xy=None,
                ref_time=0.0,
                count=0,
                half_life_s=half_life,
                updated_at=0.0,
            )
            .on_conflict_do_nothing(index_elements=["task", "context", "path"])
        )
        where = (c.task == task, c.context == ctx, c.path == path)
        row = conn.execute(
            sa.select(c.dim, c.xx, c.xy, c.ref_time, c.count).where(*where).with_for_update()
        ).one()
        old = None if row[1] is None else fs.unpack(int(row[0]), row[1], row[2], row[3], row[4])
        stats = fs.fold_group(old, group, half_life)
        dim, xx, xy = fs.pack(stats)
        conn.execute(
            feature_stats.update()
            .where(*where)
            .values(
                dim=dim,
                xx=xx,
                xy=xy,
                ref_time=stats.ref_time,
                count=stats.count,
                half_life_s=half_life,
                updated_at=stats.ref_time,
            )
        )


def load(engine: sa.Engine, task: str) -> dict[str, dict[str, LinearStats]]:
    """context -> path -> statistics for ``task``."""
    c = feature_stats.c
    q = sa.select(c.context, c.path, c.dim, c.xx, c.xy, c.ref_time, c.count).where(
        c.task == task, c.xx.is_not(None)
    )
    out: dict[str, dict[str, LinearStats]] = {}
    with engine.connect() as conn:
        for ctx, path, dim, xx, xy, ref, count in conn.execute(q):
            out.setdefault(ctx, {})[path] = fs.unpack(int(dim), xx, xy, float(ref), int(count))
    return out
