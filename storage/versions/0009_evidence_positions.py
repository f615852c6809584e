"""Evidence kept apart by position: first attempts, and attempts after a failure.

Revision ID: 0009_evidence_positions
Revises: 0008_rollups
Create Date: 2026-12-10

Adds ``path_stats.position`` (``'first'`` or ``'after_failure'``) and keys the table by
(task, context, path, position). A request's first attempt sees every kind of input; an
attempt made after another path of the request failed sees only the inputs that path
failed on. Earlier versions folded both into one row per (task, context, path): that
*mixed* evidence made a path mostly tried second look as bad as the hardest inputs.

What happens to the mixed evidence: each group's row is **rebuilt from the stored outcome
rows**, replayed oldest first through the fold this version runs live (same half-life,
the task's stored one; same contexts; kinds that are no evidence skipped), into a
first-attempt row and an after-failure row — exactly what this version would have learned
from those outcomes. A group whose outcome rows do not account for its stored counts
(rows deleted, or folded under an older version's rules) keeps its mixed row, as
first-attempt evidence, and is named in a warning; a group without a row (evidence reset
by deleting it) stays absent. See :mod:`adaptive_router.stores.evidence_rebuild`.

The downgrade folds each group's two rows back into one mixed row, what the older version
would have kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from adaptive_router.stores.evidence_rebuild import STATE_COLUMNS, mixed_rows, rebuild_rows

revision: str = "0009_evidence_positions"
down_revision: str | Sequence[str] | None = "0008_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = ("task", "context", "path")


def _table(*, position: bool) -> sa.Table:
    """``path_stats`` as the statements below see it (before or after the change)."""
    columns: list[Any] = [sa.column(name) for name in (*_KEY, *STATE_COLUMNS)]
    if position:
        columns.append(sa.column("position"))
    return sa.table("path_stats", *columns)


def _refuse_offline() -> None:
    if context.is_offline_mode():
        raise RuntimeError(
            "migration 0009 rebuilds path_stats from the outcome rows in Python and cannot "
            "be emitted as SQL; run `adaptive-router db upgrade --db URL` against the database"
        )


def upgrade() -> None:
    """Rebuild the evidence from the outcome rows, then re-key the table by position."""
    _refuse_offline()
    bind = op.get_bind()
    rebuilt = rebuild_rows(bind)
    op.execute(sa.delete(_table(position=False)))
    position = sa.Column("position", sa.String(16), nullable=False)
    if bind.dialect.name == "sqlite":
        # SQLite cannot alter a primary key in place: batch mode copies the (empty) table.
        with op.batch_alter_table("path_stats", recreate="always") as batch:
            batch.add_column(position)
            batch.create_primary_key("path_stats_pkey", [*_KEY, "position"])
    else:
        op.add_column("path_stats", position)
        op.drop_constraint("path_stats_pkey", "path_stats", type_="primary")
        op.create_primary_key("path_stats_pkey", "path_stats", [*_KEY, "position"])
    if rebuilt.rows:
        op.bulk_insert(_table(position=True), rebuilt.rows)


def downgrade() -> None:
    """Fold each group's positions back into one mixed row and drop the column."""
    _refuse_offline()
    bind = op.get_bind()
    cols = ", ".join((*_KEY, "position", *STATE_COLUMNS))
    rows = [dict(r._mapping) for r in bind.execute(sa.text(f"SELECT {cols} FROM path_stats"))]
    op.execute(sa.delete(_table(position=True)))
    if bind.dialect.name == "sqlite":
        with op.batch_alter_table("path_stats", recreate="always") as batch:
            batch.drop_column("position")
            batch.create_primary_key("path_stats_pkey", list(_KEY))
    else:
        op.drop_constraint("path_stats_pkey", "path_stats", type_="primary")
        op.drop_column("path_stats", "position")
        op.create_primary_key("path_stats_pkey", "path_stats", list(_KEY))
    mixed = mixed_rows(rows)
    if mixed:
        op.bulk_insert(_table(position=False), mixed)
