"""Continuous scores and contexts.

Revision ID: 0002_scores_contexts
Revises: 0001_initial
Create Date: 2026-11-26

Adds ``outcomes.score`` (a 0-1 score when the router uses ``score_fn``) and a
``context`` column to the three tables; ``path_stats`` is keyed by
(task, context, path), with context ``""`` holding the task-level evidence.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_scores_contexts"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _context() -> sa.Column[str]:
    return sa.Column("context", sa.String(255), nullable=False, server_default=sa.text("''"))


def upgrade() -> None:
    """Add the columns; re-key path_stats with the context (existing rows get "")."""
    op.add_column("outcomes", sa.Column("score", sa.Float(precision=53), nullable=True))
    op.add_column("outcomes", _context())
    op.add_column("pending_decisions", _context())
    if op.get_context().dialect.name == "sqlite":
        # SQLite cannot alter a primary key in place: batch mode copies the table.
        with op.batch_alter_table("path_stats", recreate="always") as batch:
            batch.add_column(_context())
            batch.create_primary_key("path_stats_pkey", ["task", "context", "path"])
    else:
        op.add_column("path_stats", _context())
        op.drop_constraint("path_stats_pkey", "path_stats", type_="primary")
        op.create_primary_key("path_stats_pkey", "path_stats", ["task", "context", "path"])


def downgrade() -> None:
    """Drop contexts (named-context evidence is lost) and scores."""
    op.execute("DELETE FROM path_stats WHERE context <> ''")
    if op.get_context().dialect.name == "sqlite":
        with op.batch_alter_table("path_stats", recreate="always") as batch:
            batch.drop_column("context")
            batch.create_primary_key("path_stats_pkey", ["task", "path"])
    else:
        op.drop_constraint("path_stats_pkey", "path_stats", type_="primary")
        op.drop_column("path_stats", "context")
        op.create_primary_key("path_stats_pkey", "path_stats", ["task", "path"])
    op.drop_column("pending_decisions", "context")
    op.drop_column("outcomes", "context")
    op.drop_column("outcomes", "score")
