"""Request features: each path's linear statistics, and the feature vectors.

Revision ID: 0011_feature_stats
Revises: 0010_spend_stats
Create Date: 2026-12-07

Adds ``feature_stats`` (per task, context and path: the additive, decayed linear
statistics of the request features a contextual router, ``Router(features=...)``, ranks
by), ``outcomes.features`` (a first attempt's encoded feature vector, from which the
statistics can be rebuilt) and ``pending_decisions.features`` (a ``choose``'s vector, so
its report folds the right statistics from any process). No router before this revision
used features: the new columns start NULL and the table empty. The downgrade drops them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_feature_stats"
down_revision: str | Sequence[str] | None = "0010_spend_stats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Time = sa.Float(precision=53)


def upgrade() -> None:
    """Create the table and add the two columns (last, nullable)."""
    op.create_table(
        "feature_stats",
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("context", sa.String(255), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("xx", sa.LargeBinary, nullable=True),
        sa.Column("xy", sa.LargeBinary, nullable=True),
        sa.Column("ref_time", Time, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("half_life_s", sa.Float(precision=53), nullable=True),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("task", "context", "path", name="feature_stats_pkey"),
    )
    op.add_column("outcomes", sa.Column("features", sa.LargeBinary, nullable=True))
    op.add_column("pending_decisions", sa.Column("features", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    """Drop the columns and the table."""
    with op.batch_alter_table("pending_decisions") as batch:
        batch.drop_column("features")
    with op.batch_alter_table("outcomes") as batch:
        batch.drop_column("features")
    op.drop_table("feature_stats")
