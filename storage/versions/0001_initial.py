"""Initial schema: path_stats, outcomes, pending_decisions.

Revision ID: 0001_initial
Revises:
Create Date: 2024-11-26

The table definitions are written out here rather than imported from
``adaptive_router.stores.schema``: a migration must keep describing the schema as it
was at this revision when the metadata moves on.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Revision identifiers, used by Alembic.
revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Epoch seconds in double precision, as in the metadata.
Double = sa.Float(precision=53)


def upgrade() -> None:
    """Create the three tables and their indexes."""
    op.create_table(
        "path_stats",
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("success_w", Double, nullable=False),
        sa.Column("failure_w", Double, nullable=False),
        sa.Column("ref_time", Double, nullable=False),
        sa.Column("successes", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.BigInteger, nullable=False),
        sa.Column("half_life_s", Double, nullable=True),
        sa.Column("updated_at", Double, nullable=False),
        sa.PrimaryKeyConstraint("task", "path"),
    )
    op.create_table(
        "outcomes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("error_kind", sa.String(32), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("latency_ms", Double, nullable=True),
        sa.Column("input_tokens", sa.BigInteger, nullable=True),
        sa.Column("output_tokens", sa.BigInteger, nullable=True),
        sa.Column("cost_usd", Double, nullable=True),
        sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", Double, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "attempt", name="uq_outcomes_request_attempt"),
    )
    op.create_index("ix_outcomes_task_created", "outcomes", ["task", "created_at"])
    op.create_table(
        "pending_decisions",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("created_at", Double, nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_pending_task_created", "pending_decisions", ["task", "created_at"])


def downgrade() -> None:
    """Drop everything (all routing evidence and outcomes are lost)."""
    op.drop_index("ix_pending_task_created", table_name="pending_decisions")
    op.drop_table("pending_decisions")
    op.drop_index("ix_outcomes_task_created", table_name="outcomes")
    op.drop_table("outcomes")
    op.drop_table("path_stats")
