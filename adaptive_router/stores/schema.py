"""Table definitions. Alembic migrations in ``storage/`` are generated from and checked
against this metadata; a fresh database gets it via ``create_all`` and is stamped at head."""

from __future__ import annotations

import sqlalchemy as sa

#: The Alembic revision that ``metadata`` corresponds to.
HEAD_REVISION = "0012_tasks"
#: Every revision this version knows, oldest first (the scripts in ``storage/versions``;
#: a test keeps the two equal): a database stamped at an earlier one needs
#: ``db upgrade``, one stamped at a revision not here was written by a newer version.
REVISIONS = (
    "0001_initial",
    "0002_scores_contexts",
    "0003_pending_model",
    "0004_cost_latency",
    "0005_usage_columns",
    "0006_propensity",
    "0007_health",
    "0008_rollups",
    "0009_evidence_positions",
    "0010_spend_stats",
    "0011_feature_stats",
    HEAD_REVISION,
)

metadata = sa.MetaData()

# Times are epoch seconds in double precision: the decay arithmetic runs in SQL on
# these columns, identically on SQLite and PostgreSQL.
Time = sa.Float(precision=53)

path_stats = sa.Table(
    "path_stats",
    metadata,
    sa.Column("task", sa.String(255), nullable=False),
    sa.Column("path", sa.String(255), nullable=False),
    sa.Column("success_w", sa.Float(precision=53), nullable=False),
    sa.Column("failure_w", sa.Float(precision=53), nullable=False),
    sa.Column("ref_time", Time, nullable=False),
    sa.Column("successes", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.BigInteger, nullable=False),
    sa.Column("half_life_s", sa.Float(precision=53), nullable=True),
    sa.Column("updated_at", Time, nullable=False),
    # "" is the task-level row every outcome also updates; a named context has its own.
    # Last, and named as below, because that is how migration 0002 leaves the table.
    sa.Column("context", sa.String(255), nullable=False, server_default=sa.text("''")),
    # Decayed sums of per-attempt cost (USD) and latency (ms) with the same half-life and
    # ref_time as success_w/failure_w, and the decayed weight of the attempts each was
    # known for (cost is unknown for some attempts), so a mean is sum / weight. Migration
    # 0004 adds them last, with these server defaults.
    sa.Column("cost_sum", sa.Float(precision=53), nullable=False, server_default=sa.text("0")),
    sa.Column("cost_weight", sa.Float(precision=53), nullable=False, server_default=sa.text("0")),
    sa.Column("latency_sum", sa.Float(precision=53), nullable=False, server_default=sa.text("0")),
    sa.Column(
        "latency_weight", sa.Float(precision=53), nullable=False, server_default=sa.text("0")
    ),
    # 'first': the requests' first attempts (unconditioned); 'after_failure': attempts made
    # after an earlier path of the request failed. Kept apart because the second population
    # is only the inputs another path failed on. Migration 0009 adds it last and rebuilds
    # both positions from the outcome rows.
    sa.Column("position", sa.String(16), nullable=False),
    sa.PrimaryKeyConstraint("task", "context", "path", "position", name="path_stats_pkey"),
)

outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("task", sa.String(255), nullable=False),
    sa.Column("path", sa.String(255), nullable=False),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("error_kind", sa.String(32), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("latency_ms", sa.Float(precision=53), nullable=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=True),
    sa.Column("output_tokens", sa.BigInteger, nullable=True),
    sa.Column("cost_usd", sa.Float(precision=53), nullable=True),
    sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=True),
    sa.Column("score", sa.Float(precision=53), nullable=True),
    sa.Column("context", sa.String(255), nullable=False, server_default=sa.text("''")),
    # What metering records per attempt (migration 0005 adds them last, nullable: NULL is
    # "not reported", never 0).
    sa.Column("model", sa.String(255), nullable=True),
    sa.Column("cache_read_tokens", sa.BigInteger, nullable=True),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=True),
    # First attempts of routed requests: the probability the router attempted this path
    # first, and the evidence it decided on (binary, LoggedDecision.to_bytes). Migration 0006
    # adds them last; the propensity may be filled in after the row is written.
    sa.Column("propensity", sa.Float(precision=53), nullable=True),
    sa.Column("decision", sa.LargeBinary, nullable=True),
    # The first attempt's encoded feature vector under Router(features=...) (0011): the
    # outcome rows can rebuild feature_stats.
    sa.Column("features", sa.LargeBinary, nullable=True),
    sa.UniqueConstraint("request_id", "attempt", name="uq_outcomes_request_attempt"),
    sa.Index("ix_outcomes_task_created", "task", "created_at"),
    # The attempts other than a request's first: how reads find the few requests whose rows do
    # not add up row by row (fallbacks), without scanning the window. Migration 0008.
    # Latency percentiles need every latency of the window: this index holds them in path
    # and time order, so a window's latencies are read from it alone. Migration 0008.
    sa.Index(
        "ix_outcomes_task_path_latency", "task", "path", "created_at", "latency_ms", "context"
    ),
    sa.Index(
        "ix_outcomes_task_fallback",
        "task",
        "created_at",
        sqlite_where=sa.text("attempt <> 1"),
        postgresql_where=sa.text("attempt <> 1"),
    ),
)

#: Bucket width of ``outcome_rollups`` (seconds).
ROLLUP_S = 3600.0

# Hourly sums of outcome rows, written in the same transaction as the rows themselves (only
# rows that were new), so dashboards and reports read a week as a few thousand rows.
# ``hour`` buckets an attempt by when it finished (``created_at``, what windows filter on),
# ``start_hour`` by when it began (``created_at`` minus its latency, what time series bucket
# on); ``error_kind`` is '' when there is none. Every value column is a plain sum (or the
# minimum start), so concurrent writers' upserts commute. Migration 0008 adds and backfills it.
rollups = sa.Table(
    "outcome_rollups",
    metadata,
    sa.Column("task", sa.String(255), nullable=False),
    sa.Column("context", sa.String(255), nullable=False),
    sa.Column("path", sa.String(255), nullable=False),
    sa.Column("hour", Time, nullable=False),
    sa.Column("start_hour", Time, nullable=False),
    sa.Column("success", sa.Boolean, nullable=False),
    sa.Column("error_kind", sa.String(32), nullable=False),
    sa.Column("attempts", sa.BigInteger, nullable=False),
    sa.Column("first_attempts", sa.BigInteger, nullable=False),
    sa.Column("later_attempts", sa.BigInteger, nullable=False),
    sa.Column("retries", sa.BigInteger, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("input_known", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_known", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Float(precision=53), nullable=False),
    sa.Column("cost_known", sa.BigInteger, nullable=False),
    sa.Column("tokens_no_cost", sa.BigInteger, nullable=False),
    sa.Column("score_sum", sa.Float(precision=53), nullable=False),
    sa.Column("scored", sa.BigInteger, nullable=False),
    sa.Column("cache_read_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_read_known", sa.BigInteger, nullable=False),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_write_known", sa.BigInteger, nullable=False),
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

pending = sa.Table(
    "pending_decisions",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("task", sa.String(255), nullable=False),
    sa.Column("path", sa.String(255), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("context", sa.String(255), nullable=False, server_default=sa.text("''")),
    # The chosen path's model, so a report can be priced without the Router's paths.
    sa.Column("model", sa.String(255), nullable=True),
    sa.Index("ix_pending_task_created", "task", "created_at"),
    # A contextual router's decision: the request's encoded feature vector, so that a
    # report from any process folds its outcome into the right statistics (0011).
    sa.Column("features", sa.LargeBinary, nullable=True),
)

# One row per live router process: its heartbeat. Small and rewritten every few
# seconds; rows of routers that stopped beating are deleted after a TTL by the others.
router_health = sa.Table(
    "router_health",
    metadata,
    sa.Column("router_id", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("task", sa.String(255), nullable=False),
    # {path: breaker state} and the router's most recent alerts.
    sa.Column("breakers", sa.JSON, nullable=False),
    sa.Column("alerts", sa.JSON, nullable=True),
    sa.Column("started_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Index("ix_router_health_updated", "updated_at"),
)

# Each task's realized spend as decayed sums (adaptive_router.policies.pacing.SpendStats):
# the spend of every attempt and the number of requests (first attempts), relative to the
# newest one's time ``ref_time``, folded by the same atomic upsert as path_stats from the
# outcome rows a write inserts, so every process of the task reads one price per dollar.
# ``target_usd_per_request``: the spend target last set by a router of the task (for the
# CLI and the dashboard; NULL: none). Migration 0010 adds it and fills it from the
# outcome rows.
spend_stats = sa.Table(
    "spend_stats",
    metadata,
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

# Each path's linear statistics of request features per (task, context): the upper
# triangle of Σ w x xᵀ (row by row) and Σ w y x as little-endian float64s over the hashed
# dimension ``dim`` plus the bias, decayed relative to ``ref_time`` like path_stats, and
# the plain count. Folded in the transaction of the outcomes that carry them, one row at
# a time under a row lock (PostgreSQL's FOR UPDATE; SQLite's write lock): blobs cannot
# be added by an upsert. NULL sums (a row just created) are zeros. Migration 0011.
feature_stats = sa.Table(
    "feature_stats",
    metadata,
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

# A task's own settings: the half-life its evidence is decayed with, registered once,
# atomically, by its first router or Reporter (an insert-if-absent; the one that loses a
# race reads the winner's). Migration 0012 moves it here from the blank-named row
# ``path_stats`` held per task before.
tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("task", sa.String(255), nullable=False),
    sa.Column("half_life_s", sa.Float(precision=53), nullable=True),
    sa.Column("registered_at", Time, nullable=False),
    sa.PrimaryKeyConstraint("task", name="tasks_pkey"),
)
