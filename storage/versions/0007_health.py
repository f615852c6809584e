"""Router heartbeats: the fleet's breaker states.

Revision ID: 0007_health
Revises: 0004_cost_latency
Create Date: 2026-12-07

Adds ``router_health``: one row per live router process (host, pid, task, each path's
circuit-breaker state, its recent alerts, when it started and last beat), rewritten by
the router every few seconds and read by ``adaptive-router dashboard``. Rows of processes
that stopped beating are deleted after a TTL by the routers still running. A store of
this version opened with ``create=True`` on an older database creates the table itself,
so the upgrade skips an existing one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_health"
down_revision: str | Sequence[str] | None = "0005_usage_columns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``router_health`` and its ``updated_at`` index (unless a store did already)."""
    if sa.inspect(op.get_bind()).has_table("router_health"):
        return
    op.create_table(
        "router_health",
        sa.Column("router_id", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("breakers", sa.JSON, nullable=False),
        sa.Column("alerts", sa.JSON, nullable=True),
        sa.Column("started_at", sa.Float(precision=53), nullable=False),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("router_id"),
    )
    op.create_index("ix_router_health_updated", "router_health", ["updated_at"])


def downgrade() -> None:
    """Drop the table: routers then keep their breaker states to themselves."""
    op.drop_index("ix_router_health_updated", table_name="router_health")
    op.drop_table("router_health")
