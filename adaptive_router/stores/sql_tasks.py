"""A task's own settings in the SQL store: its half-life, registered once, atomically.

The ``tasks`` table holds one row per task (migration 0012). Before it, ``path_stats``
held the half-life in a row of its own per task, keyed by :data:`TASK_ROW` as both
context and path; the migrations that read databases of that time (0009, 0010, 0012)
still know that row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from adaptive_router.stores.schema import path_stats, tasks

#: The context and path of a task's settings row in ``path_stats`` before revision 0012
#: (a blank name, which no router or Reporter accepts).
TASK_ROW = " "
#: The names of the tasks with evidence.
TASK_NAMES = sa.select(path_stats.c.task).distinct()


def register_half_life(
    engine: sa.Engine, insert: Callable[[Any], Any], task: str, half_life: float | None
) -> float | None:
    """The half-life registered for ``task``; registered first, when none is, as the one
    its stored evidence was learned with (a database written before registration
    existed), else ``half_life``. One transaction: an insert-if-absent, so of two routers
    starting at once the first to commit registers and the other reads its value (SQLite
    serialises the transactions; PostgreSQL's insert waits for the other's commit)."""
    own_row = tasks.c.task == task
    with engine.begin() as conn:
        row = conn.execute(sa.select(tasks.c.half_life_s).where(own_row)).first()
        if row is None:
            c = path_stats.c
            learned = conn.execute(
                sa.select(c.half_life_s)
                .where(c.task == task, c.successes + c.failures > 0)
                .limit(1)
            ).first()
            value = learned[0] if learned is not None else half_life
            conn.execute(
                insert(tasks)
                .values(task=task, half_life_s=value, registered_at=time.time())
                .on_conflict_do_nothing(index_elements=["task"])
            )
            row = conn.execute(sa.select(tasks.c.half_life_s).where(own_row)).first()
    assert row is not None  # inserted above, or by the transaction that won the race
    return None if row[0] is None else float(row[0])
