"""Propensities and decision evidence on outcomes.

Revision ID: 0006_propensity
Revises: 0005_usage_columns
Create Date: 2026-12-01

Adds ``outcomes.propensity`` (the probability that the router attempted the path first,
for the first attempt of a routed request) and ``outcomes.decision`` (the evidence that
decision used, in the compact binary layout of ``LoggedDecision.to_bytes``), both
nullable. Existing rows keep NULL in both: their decisions
were not logged, so off-policy evaluation skips them and counts them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_propensity"
down_revision: str | Sequence[str] | None = "0005_usage_columns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the two nullable columns (existing rows get NULL)."""
    op.add_column("outcomes", sa.Column("propensity", sa.Float(precision=53), nullable=True))
    op.add_column("outcomes", sa.Column("decision", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    """Drop them: logged propensities and decision evidence are lost."""
    with op.batch_alter_table("outcomes") as batch:
        batch.drop_column("decision")
        batch.drop_column("propensity")
