"""Decayed cost and latency evidence per path.

Revision ID: 0004_cost_latency
Revises: 0003_pending_model
Create Date: 2026-11-30

Adds ``path_stats.cost_sum``, ``cost_weight``, ``latency_sum`` and ``latency_weight``:
decayed sums (same half-life and ``ref_time`` as ``success_w``/``failure_w``) of the
per-attempt cost in USD and latency in ms, and the decayed count of attempts each was
known for, so that cost- and latency-aware objectives can rank by their means. Existing
rows start at 0 (no cost or latency evidence yet): the objectives then use the paths'
expected costs until new outcomes arrive; the outcome log is not replayed into them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_cost_latency"
down_revision: str | Sequence[str] | None = "0003_pending_model"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("cost_sum", "cost_weight", "latency_sum", "latency_weight")


def upgrade() -> None:
    """Add the four columns, NOT NULL with default 0 (existing rows get 0)."""
    for name in COLUMNS:
        op.add_column(
            "path_stats",
            sa.Column(name, sa.Float(precision=53), nullable=False, server_default=sa.text("0")),
        )


def downgrade() -> None:
    """Drop them: the objectives fall back to expected costs until new evidence."""
    with op.batch_alter_table("path_stats") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
