"""Each task's realized spend, for the spend target.

Revision ID: 0010_spend_stats
Revises: 0009_evidence_positions
Create Date: 2026-12-07

Adds ``spend_stats``: per task the decayed sums of realized spend and of requests
(:class:`~adaptive_router.policies.pacing.SpendStats`), from which every router of the
task computes one price per dollar for ``Objective(target_usd_per_request=...)``, and the
spend target last set. The store folds every new outcome into it in the outcome's own
transaction; this migration fills it from the existing outcome rows, replayed oldest first
through the same fold with the task's registered half-life, so a router started after the
upgrade prices its spend from the history the database already holds. The target is left
empty (no router before this revision had one). The downgrade drops the table: the
outcome rows it was computed from stay.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from adaptive_router.stores.sql_spend import backfill_rows

revision: str = "0010_spend_stats"
down_revision: str | Sequence[str] | None = "0009_evidence_positions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Time = sa.Float(precision=53)


def upgrade() -> None:
    """Create the table, then fold the existing outcome rows into it."""
    table = op.create_table(
        "spend_stats",
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("spend_w", sa.Float(precision=53), nullable=False),
        sa.Column("requests_w", sa.Float(precision=53), nullable=False),
        sa.Column("ref_time", Time, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("spend_usd", sa.Float(precision=53), nullable=False),
        sa.Column("half_life_s", sa.Float(precision=53), nullable=True),
        sa.Column("target_usd_per_request", sa.Float(precision=53), nullable=True),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("task", name="spend_stats_pkey"),
    )
    rows = backfill_rows(op.get_bind())
    if rows and table is not None:
        op.bulk_insert(table, rows)


def downgrade() -> None:
    """Drop the table (its sums are recomputed from the outcome rows by an upgrade)."""
    op.drop_table("spend_stats")
