"""A task's own settings in the SQL store: its half-life, registered once, atomically.

No table holds per-task values, and a new one would need a migration; ``path_stats``
holds them in a row of its own per task, keyed by :data:`TASK_ROW` as both context and
path. A router can use neither (context and path names must not be blank), the row's
evidence is zero, no write folds into it, and every read of ``path_stats`` leaves it out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from adaptive_router.stores.base import FIRST
from adaptive_router.stores.schema import path_stats

#: The context and path of a task's settings row in ``path_stats`` (a blank name, which
#: no router or Reporter accepts).
TASK_ROW = " "
#: The names of the tasks with evidence (settings rows are no evidence).
TASK_NAMES = sa.select(path_stats.c.task).where(path_stats.c.path != TASK_ROW).distinct()


def register_half_life(
    engine: sa.Engine, insert: Callable[[Any], Any], task: str, half_life: float | None
) -> float | None:
    """The half-life registered for ``task``; registered first, when none is, as the one
    its stored evidence was learned with (a database written before registration
    existed), else ``half_life``. One transaction: an insert-if-absent, so of two routers
    starting at once the first to commit registers and the other reads its value (SQLite
    serialises the transactions; PostgreSQL's insert waits for the other's commit)."""
    c = path_stats.c
    own_row = (c.task == task, c.context == TASK_ROW, c.path == TASK_ROW)
    with engine.begin() as conn:
        row = conn.execute(sa.select(c.half_life_s).where(*own_row)).first()
        if row is None:
            learned = conn.execute(
                sa.select(c.half_life_s)
                .where(c.task == task, c.path != TASK_ROW, c.successes + c.failures > 0)
                .limit(1)
            ).first()
            value = learned[0] if learned is not None else half_life
            conn.execute(
                insert(path_stats)
                .values(
                    task=task,
                    context=TASK_ROW,
                    path=TASK_ROW,
                    position=FIRST,
                    success_w=0.0,
                    failure_w=0.0,
                    ref_time=0.0,
                    successes=0,
                    failures=0,
                    half_life_s=value,
                    updated_at=0.0,
                )
                .on_conflict_do_nothing(index_elements=["task", "context", "path", "position"])
            )
            row = conn.execute(sa.select(c.half_life_s).where(*own_row)).first()
    assert row is not None  # inserted above, or by the transaction that won the race
    return None if row[0] is None else float(row[0])
