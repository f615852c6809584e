"""The model of a pending decision's path.

Revision ID: 0003_pending_model
Revises: 0002_scores_contexts
Create Date: 2026-11-30

Adds ``pending_decisions.model``: the model the chosen path calls, recorded at
``choose`` time, so a process that only reports outcomes (``Reporter``) can price the
reported tokens without constructing the paths. Existing rows get NULL (priced by the
reporter's ``models=`` if given, else of unknown cost).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_pending_model"
down_revision: str | Sequence[str] | None = "0002_scores_contexts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable column (no table rewrite on either backend)."""
    op.add_column("pending_decisions", sa.Column("model", sa.String(255), nullable=True))


def downgrade() -> None:
    """Drop it: pending decisions reported afterwards are priced only from models=."""
    with op.batch_alter_table("pending_decisions") as batch:
        batch.drop_column("model")
