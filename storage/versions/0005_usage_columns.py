"""What usage metering records per attempt.

Revision ID: 0005_usage_columns
Revises: 0004_cost_latency
Create Date: 2026-12-01

Adds ``outcomes.model`` (the model the attempt was priced at), ``cache_read_tokens`` and
``cache_write_tokens`` (the parts of ``input_tokens`` read from and written to the
provider's prompt cache). All nullable: existing rows get NULL, "not reported", never 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_usage_columns"
down_revision: str | Sequence[str] | None = "0004_cost_latency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the three nullable columns (existing rows: NULL)."""
    op.add_column("outcomes", sa.Column("model", sa.String(255), nullable=True))
    op.add_column("outcomes", sa.Column("cache_read_tokens", sa.BigInteger, nullable=True))
    op.add_column("outcomes", sa.Column("cache_write_tokens", sa.BigInteger, nullable=True))


def downgrade() -> None:
    """Drop them: the costs already recorded stay; the per-model split is lost."""
    with op.batch_alter_table("outcomes") as batch:
        batch.drop_column("cache_write_tokens")
        batch.drop_column("cache_read_tokens")
        batch.drop_column("model")
