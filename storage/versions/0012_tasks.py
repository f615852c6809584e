"""A table of the tasks' own settings.

Revision ID: 0012_tasks
Revises: 0011_feature_stats
Create Date: 2026-12-07

Adds ``tasks`` (per task: the half-life registered by its first router or Reporter, and
when) and moves each task's registered half-life into it from the row ``path_stats``
held for it until now (context and path both ``' '``, no evidence), which it deletes: a
query of ``path_stats`` then sees evidence only. The downgrade puts those rows back and
drops the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_tasks"
down_revision: str | Sequence[str] | None = "0011_feature_stats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Time = sa.Float(precision=53)
#: The settings row's context and path before this revision
#: (adaptive_router.stores.sql_tasks.TASK_ROW; a migration keeps its own copy of what it
#: reads, so later changes to the package cannot change what it did).
TASK_ROW = " "

path_stats = sa.table(
    "path_stats",
    sa.column("task", sa.String),
    sa.column("context", sa.String),
    sa.column("path", sa.String),
    sa.column("position", sa.String),
    sa.column("success_w", sa.Float),
    sa.column("failure_w", sa.Float),
    sa.column("ref_time", Time),
    sa.column("successes", sa.BigInteger),
    sa.column("failures", sa.BigInteger),
    sa.column("half_life_s", sa.Float),
    sa.column("updated_at", Time),
)
settings_rows = (path_stats.c.context == TASK_ROW, path_stats.c.path == TASK_ROW)


def upgrade() -> None:
    """Create ``tasks``, copy the settings rows into it, delete them from path_stats."""
    tasks = op.create_table(
        "tasks",
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("half_life_s", sa.Float(precision=53), nullable=True),
        sa.Column("registered_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("task", name="tasks_pkey"),
    )
    conn = op.get_bind()
    ps = path_stats.c
    rows = conn.execute(
        sa.select(ps.task, ps.half_life_s, ps.updated_at).where(*settings_rows)
    ).all()
    if rows and tasks is not None:
        op.bulk_insert(
            tasks,
            [{"task": t, "half_life_s": hl, "registered_at": at} for t, hl, at in rows],
        )
    conn.execute(sa.delete(path_stats).where(*settings_rows))


def downgrade() -> None:
    """Put the settings rows back into path_stats, then drop ``tasks``."""
    conn = op.get_bind()
    t = sa.table(
        "tasks",
        sa.column("task", sa.String),
        sa.column("half_life_s", sa.Float),
        sa.column("registered_at", Time),
    )
    rows = conn.execute(sa.select(t.c.task, t.c.half_life_s, t.c.registered_at)).all()
    if rows:
        conn.execute(
            sa.insert(path_stats),
            [
                {
                    "task": task,
                    "context": TASK_ROW,
                    "path": TASK_ROW,
                    "position": "first",
                    "success_w": 0.0,
                    "failure_w": 0.0,
                    "ref_time": 0.0,
                    "successes": 0,
                    "failures": 0,
                    "half_life_s": hl,
                    "updated_at": at,
                }
                for task, hl, at in rows
            ],
        )
    op.drop_table("tasks")
