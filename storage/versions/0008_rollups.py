"""Hourly outcome rollups for fast window reads.

Revision ID: 0008_rollups
Revises: 0007_health
Create Date: 2026-12-01

Adds ``outcome_rollups``: per task, context, path, hour of ``created_at``, hour of the
attempt's start, success and error kind, the sums a dashboard or report needs (attempts,
first and later attempts, retries, tokens, cost, scores) and the earliest start. The store
adds every new outcome to it in the outcome's own transaction; this migration fills it from
the existing rows, so reads over old windows stay exact. Also adds the partial index
``ix_outcomes_task_fallback`` (rows whose ``attempt`` is not 1), through which reads find
the requests with several attempts, and ``ix_outcomes_task_path_latency``, from which a
window's latencies are read for exact percentiles.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from adaptive_router.stores.rollups import backfill_sql

revision: str = "0008_rollups"
down_revision: str | Sequence[str] | None = "0007_health"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Time = sa.Float(precision=53)
_COUNTS = (
    "attempts",
    "first_attempts",
    "later_attempts",
    "retries",
    "input_tokens",
    "input_known",
    "output_tokens",
    "output_known",
)
_CACHE = ("cache_read_tokens", "cache_read_known", "cache_write_tokens", "cache_write_known")


def upgrade() -> None:
    """Create the rollup table and the partial index, then sum the existing outcomes."""
    op.create_table(
        "outcome_rollups",
        sa.Column("task", sa.String(255), nullable=False),
        sa.Column("context", sa.String(255), nullable=False),
        sa.Column("path", sa.String(255), nullable=False),
        sa.Column("hour", Time, nullable=False),
        sa.Column("start_hour", Time, nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("error_kind", sa.String(32), nullable=False),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in _COUNTS),
        sa.Column("cost_usd", sa.Float(precision=53), nullable=False),
        sa.Column("cost_known", sa.BigInteger, nullable=False),
        sa.Column("tokens_no_cost", sa.BigInteger, nullable=False),
        sa.Column("score_sum", sa.Float(precision=53), nullable=False),
        sa.Column("scored", sa.BigInteger, nullable=False),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in _CACHE),
        sa.Column("min_start", Time, nullable=False),
        sa.PrimaryKeyConstraint(
            "task",
            "hour",
            "context",
            "path",
            "start_hour",
            "success",
            "error_kind",
            name="outcome_rollups_pkey",
        ),
    )
    op.create_index(
        "ix_outcomes_task_fallback",
        "outcomes",
        ["task", "created_at"],
        sqlite_where=sa.text("attempt <> 1"),
        postgresql_where=sa.text("attempt <> 1"),
    )
    op.create_index(
        "ix_outcomes_task_path_latency",
        "outcomes",
        ["task", "path", "created_at", "latency_ms", "context"],
    )
    op.execute(backfill_sql(op.get_bind().dialect.name))


def downgrade() -> None:
    """Drop them (the outcome rows are untouched)."""
    op.drop_index("ix_outcomes_task_path_latency", table_name="outcomes")
    op.drop_index("ix_outcomes_task_fallback", table_name="outcomes")
    op.drop_table("outcome_rollups")
