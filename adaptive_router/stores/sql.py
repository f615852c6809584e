"""SQLite and PostgreSQL storage through SQLAlchemy 2 Core."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

import adaptive_router.stores.rollup_reads as rollup_reads
import adaptive_router.stores.rollups as rollups
import adaptive_router.stores.sql_evidence as sql_evidence
import adaptive_router.stores.sql_features as sql_features
import adaptive_router.stores.sql_fork as sql_fork
import adaptive_router.stores.sql_health as sql_health
import adaptive_router.stores.sql_queries as sql_queries
import adaptive_router.stores.sql_spend as sql_spend
import adaptive_router.stores.sql_tasks as sql_tasks
from adaptive_router._checks import first_line, redact, redact_url
from adaptive_router.errors import ConfigurationError, StoreUnavailableError
from adaptive_router.outcomes import Outcome, PathWindowStats
from adaptive_router.stores.base import (
    USAGE_FIELDS,
    AttemptRow,
    CompleteResult,
    FeatureEvidence,
    HealthSnapshot,
    HealthSnapshots,
    OutcomeUpdates,
    PathEvidence,
    PathTotals,
    PendingDecision,
    SpendStats,
    SpendTotals,
    Store,
    refuse_invalid,
)
from adaptive_router.stores.schema import (
    HEAD_REVISION,
    REVISIONS,
    feature_stats,
    metadata,
    outcomes,
    path_stats,
    pending,
    spend_stats,
)
from adaptive_router.stores.schema import rollups as rollups_table
from adaptive_router.stores.schema import tasks as tasks_table
from adaptive_router.stores.series import SeriesCounts, bucket_rows
from adaptive_router.stores.sql_engine import (
    SUPPORTED,
    connection_lost,
    reader,
    refused,
    unavailable_error,
)
from adaptive_router.stores.sql_engine import create_engine as create_engine  # re-exported

logger = logging.getLogger(__name__)

#: The old name of :func:`adaptive_router._checks.redact_url`, kept importable.
mask_url = redact_url
#: Batches up to this size are inserted row by row (sync durability's common case).
_SMALL_BATCH = 8
_T = TypeVar("_T")

if TYPE_CHECKING:
    from adaptive_router.policies.contextual import LinearStats
# Serialises first-use table creation between processes on PostgreSQL.
_CREATE_LOCK_KEY = 0x61725F7363686D  # "ar_schm"
#: Time series of windows up to this long (seconds) are bucketed from rows: spans under
#: 30 hours get buckets under an hour, which hourly rollups cannot give.
_ROWS_SERIES_S = 24 * 3600.0


def _transient(exc: BaseException) -> bool:
    """Errors worth retrying the whole (idempotent) transaction for."""
    if not isinstance(exc, DBAPIError):
        return False
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return (
        "database is locked" in text
        or "deadlock detected" in text
        or "could not serialize" in text
        or "database table is locked" in text
    )


class SQLStore(Store, HealthSnapshots, OutcomeUpdates, SpendTotals, FeatureEvidence):
    """Outcomes, evidence and pending decisions in SQLite or PostgreSQL.

    Pass a URL (``sqlite:///file.db``, ``postgresql://user@host/db``) or an
    existing :class:`sqlalchemy.engine.Engine` (created once, shared). Tables are
    created on first use and stamped at the current Alembic revision, so
    ``adaptive-router db upgrade`` takes over for later schema changes.

    A database that cannot be reached raises :class:`StoreUnavailableError`, unless
    ``start_offline=True`` and it is an outage (a refused or timed-out connection, not
    bad credentials or an unknown database): the store is then built unconnected and
    :meth:`connect` creates or checks the schema later. The calls a report makes
    (pending decisions, claims, evidence loads) raise :class:`StoreUnavailableError`
    too, never the driver's error, while the database is unreachable.
    """

    def __init__(
        self,
        url: str | Engine,
        *,
        create: bool = True,
        busy_timeout_s: float = 10.0,
        statement_timeout_s: float = 10.0,
        connect_timeout_s: float = 3.0,
        start_offline: bool = False,
    ) -> None:
        if isinstance(url, Engine):
            self.engine = url
            self._owns_engine = False
        elif isinstance(url, str):
            self.engine = create_engine(
                url,
                busy_timeout_s=busy_timeout_s,
                statement_timeout_s=statement_timeout_s,
                connect_timeout_s=connect_timeout_s,
            )
            self._owns_engine = True
        else:
            raise ConfigurationError(
                f"store must be a URL string, an Engine or a Store, got {type(url).__name__}"
            )
        sql_fork.follow(self.engine)  # a forked child gets a pool of its own
        #: The engine for transactions that only read (no write lock on SQLite).
        self.reader = reader(self.engine)
        self.dialect = self.engine.dialect.name
        if self.dialect not in SUPPORTED:
            raise ConfigurationError(
                f"store: dialect {self.dialect!r} is not supported; use SQLite or PostgreSQL"
            )
        self._insert = pg_dialect.insert if self.dialect == "postgresql" else sqlite_dialect.insert
        mark = "%s" if self.dialect == "postgresql" else "?"
        self._fast_insert = (
            f"INSERT INTO outcomes ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join([mark] * len(_COLUMNS))})"
        )
        self._copy = f"COPY outcomes ({', '.join(_COLUMNS)}) FROM STDIN"
        self._insert_returning = (
            f"{self._fast_insert} ON CONFLICT (request_id, attempt) DO NOTHING RETURNING attempt"
        )
        self._upserts: dict[float | None, Any] = {}
        self._spend_upserts: dict[float | None, Any] = {}
        self._rollup_upsert = rollups.build_upsert(self._insert)
        self._retrying = Retrying(
            retry=retry_if_exception(_transient),
            wait=wait_random_exponential(multiplier=0.01, max=0.5),
            stop=stop_after_attempt(20) | stop_after_delay(30),
            reraise=True,
        )
        self._create = create
        #: False until the database was reached and the schema created or checked.
        self.connected = False
        try:
            self._connect_now()
        except OperationalError as exc:
            if start_offline and not refused(exc):
                # An outage, not a misconfiguration: start, and connect() later.
                logger.warning(
                    "store %s is unreachable (%s); starting without it",
                    redact_url(self.engine.url),
                    redact(first_line(exc), self.engine.url),
                    extra={"store": redact_url(self.engine.url)},
                )
                return
            if self._owns_engine:
                self.engine.dispose()
            raise unavailable_error(exc, self.engine.url) from None

    def __repr__(self) -> str:
        return f"SQLStore({redact_url(self.engine.url)!r})"

    # -- schema -----------------------------------------------------------------
    def connect(self) -> None:
        """Reach the database and create (or check) the schema, if a store started with
        ``start_offline=True`` has not done so yet; a no-op once connected.

        Raises :class:`StoreUnavailableError` while the database is unreachable or refuses
        the connection, :class:`ConfigurationError` for a schema older than this version.
        """
        if self.connected:
            return
        try:
            self._connect_now()
        except OperationalError as exc:
            raise unavailable_error(exc, self.engine.url) from None

    def _connect_now(self) -> None:
        if self._create:
            # Schema creation is idempotent: retried like writes when the file is busy.
            self._retrying(self._create_schema)
        else:
            db = self.engine.url.database
            if (
                self.dialect == "sqlite"
                and db not in (None, "", ":memory:")
                and not os.path.exists(db)
            ):
                raise StoreUnavailableError(
                    f"store: SQLite file {db!r} does not exist (create=False)"
                )
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
                _check_schema(conn)
        self.connected = True

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        """Turn the driver's error for a database that cannot serve now into the
        project's :class:`StoreUnavailableError` (secrets masked); other errors pass."""
        try:
            yield
        except DBAPIError as exc:
            if not connection_lost(exc):
                raise
            raise unavailable_error(exc, self.engine.url) from None

    def _create_schema(self) -> None:
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CREATE_LOCK_KEY)))
            inspector = sa.inspect(conn)
            fresh = not inspector.has_table("outcomes")
            if not fresh:
                # Before create_all: it would add an empty rollup table to a database whose
                # outcomes it does not sum, and reads would then miss those outcomes.
                _check_schema(conn)
            metadata.create_all(conn, checkfirst=True)
            if fresh and not inspector.has_table("alembic_version"):
                conn.execute(
                    sa.text(
                        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
                    )
                )
                conn.execute(
                    sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                    {"v": HEAD_REVISION},
                )

    # -- writes -----------------------------------------------------------------
    def write(self, batch: Sequence[Outcome], half_life: float | None) -> int:
        if not batch:
            return 0
        refuse_invalid(batch)
        result: int = self._retrying(self._in_transaction, self._write_in, batch, half_life)
        return result

    def _in_transaction(self, fn: Callable[..., _T], *args: Any) -> _T:
        with self.engine.begin() as conn:
            return fn(conn, *args)

    def _write_in(
        self, conn: sa.Connection, batch: Sequence[Outcome], half_life: float | None
    ) -> int:
        """Insert new outcome rows and fold exactly those into path_stats, in ``conn``'s tx."""
        if not batch:
            return 0
        new: Sequence[Outcome]
        if len(batch) <= _SMALL_BATCH:
            # Sync durability writes one request's attempts at a time: one round trip per
            # row beats a savepoint plus a bulk insert (three or four round trips).
            new = [
                o
                for o in batch
                if conn.exec_driver_sql(self._insert_returning, _tuple(o)).first() is not None
            ]
            self._fold_in(conn, new, half_life)
            return len(new)
        try:
            # Fast path: a fresh batch has no duplicates, so a plain DBAPI executemany of
            # tuples does it — several times faster than INSERT .. ON CONFLICT .. RETURNING
            # through SQLAlchemy's parameter processing, which would make the writer thread
            # the bottleneck under load. The savepoint confines a duplicate's abort.
            with conn.begin_nested():
                if self.dialect == "postgresql":
                    # COPY is PostgreSQL's bulk path: ~3x executemany for big batches.
                    raw: Any = conn.connection.driver_connection
                    with raw.cursor() as cur, cur.copy(self._copy) as copy:
                        for o in batch:
                            copy.write_row(_tuple(o))
                else:
                    conn.exec_driver_sql(self._fast_insert, [_tuple(o) for o in batch])
            new = batch
        # COPY raises the driver's own error (psycopg's UniqueViolation), not SQLAlchemy's.
        except (IntegrityError, self.engine.dialect.loaded_dbapi.IntegrityError):
            rows = [_row(o) for o in batch]
            # A retried batch (e.g. after a lost COMMIT acknowledgment): insert what is
            # missing and fold only those rows.
            insert = (
                self._insert(outcomes)
                .on_conflict_do_nothing(index_elements=["request_id", "attempt"])
                .returning(outcomes.c.request_id, outcomes.c.attempt)
            )
            by_key = {(o.request_id, o.attempt): o for o in batch}
            new = [by_key[(r[0], r[1])] for r in conn.execute(insert, rows)]
        self._fold_in(conn, new, half_life)
        return len(new)

    def _fold_in(
        self, conn: sa.Connection, new: Sequence[Outcome], half_life: float | None
    ) -> None:
        """Add newly inserted outcomes to the rollups, their evidence to path_stats and
        their spend to spend_stats (one upsert per key)."""
        if not new:
            return
        # The hourly rollups get exactly the same rows, in the same transaction.
        # Each upsert runs only with parameters: executed with an empty list, a statement
        # runs once with none and fails, and with it the batch (outcomes that are no
        # evidence, e.g. all auth errors, have no path_stats increments).
        roll = rollups.increments(new)
        if roll:
            conn.execute(self._rollup_upsert, roll)
        evidence = sql_evidence.increments(new, half_life)
        if evidence:
            conn.execute(self._upsert(half_life), evidence)
        spent = sql_spend.increments(new, half_life)
        if spent:
            conn.execute(self._spend_upsert(half_life), spent)
        sql_features.fold(conn, self._insert, new, half_life)

    def _spend_upsert(self, half_life: float | None) -> Any:
        """The spend_stats upsert for a half-life, built once."""
        stmt = self._spend_upserts.get(half_life)
        if stmt is None:
            stmt = self._spend_upserts[half_life] = sql_spend.build_upsert(self._insert, half_life)
        return stmt

    def _upsert(self, half_life: float | None) -> Any:
        """The path_stats upsert for a half-life, built once: compiling it costs ~0.6 ms."""
        stmt = self._upserts.get(half_life)
        if stmt is None:
            stmt = self._upserts[half_life] = sql_evidence.build_upsert(self._insert, half_life)
        return stmt

    def register_half_life(self, task: str, half_life: float | None) -> float | None:
        return self._retrying(
            sql_tasks.register_half_life, self.engine, self._insert, task, half_life
        )

    def load_features(self, task: str) -> dict[str, dict[str, LinearStats]]:
        with self._reachable():
            return sql_features.load(self.reader, task)

    def load_spend(self, task: str) -> SpendStats:
        with self._reachable():
            return sql_spend.load(self.reader, task)

    def spend_target(self, task: str) -> float | None:
        with self._reachable():
            return sql_spend.target(self.reader, task)

    def set_spend_target(self, task: str, target_usd_per_request: float | None) -> None:
        with self._reachable():
            self._retrying(
                sql_spend.set_target, self.engine, self._insert, task, target_usd_per_request
            )

    def update_usage(self, outcome: Outcome) -> bool:
        refuse_invalid([outcome])
        updated: bool = self._retrying(self._in_transaction, self._update_usage_in, outcome)
        return updated

    def _update_usage_in(self, conn: sa.Connection, outcome: Outcome) -> bool:
        """Rewrite the row's usage and move its rollup and spend sums by the difference,
        in one transaction (the row is locked first: SQLite's BEGIN IMMEDIATE,
        PostgreSQL's FOR UPDATE, so a concurrent rewrite cannot compute its difference
        from a stale row)."""
        c = outcomes.c
        where = (c.request_id == outcome.request_id, c.attempt == outcome.attempt)
        row = conn.execute(
            sa.select(*rollup_reads.ROW_COLUMNS).where(*where).with_for_update()
        ).first()
        if row is None:
            return False
        old = rollup_reads.row_outcome(row)
        usage = {name: getattr(outcome, name) for name in USAGE_FIELDS}
        conn.execute(outcomes.update().where(*where).values(usage))
        conn.execute(
            self._rollup_upsert, [rollups.usage_change(old, dataclasses.replace(old, **usage))]
        )
        # Spend counts an unknown cost as $0, as when the row was written.
        change = (outcome.cost_usd or 0.0) - (old.cost_usd or 0.0)
        if change:
            sql_spend.add_late_cost(conn, old.task, change, old.created_at)
        return True

    # -- reads ------------------------------------------------------------------
    def load_contexts(self, task: str) -> dict[str, dict[str, PathEvidence]]:
        return self._load(task, None)

    def load(self, task: str, context: str = "") -> dict[str, PathEvidence]:
        return self._load(task, context).get(context, {})

    def _load(self, task: str, context: str | None) -> dict[str, dict[str, PathEvidence]]:
        """context -> path -> evidence for the task (one context only when given)."""
        with self._reachable():
            return sql_evidence.load(self.reader, task, context)

    def window_stats(
        self, task: str, since: float, until: float | None = None, context: str | None = None
    ) -> list[PathWindowStats]:
        """From the hourly rollups plus the window's edge rows (see ``stores.rollup_reads``)."""
        return rollup_reads.window_stats(self.reader, task, since, until, context)

    def tasks(self) -> list[str]:
        with self.reader.connect() as conn:
            return sorted(r[0] for r in conn.execute(sql_tasks.TASK_NAMES))

    def path_totals(
        self, task: str, since: float, until: float | None = None
    ) -> tuple[list[PathTotals], tuple[int, int, int]]:
        """Per-path sums from the hourly rollups: a week of traffic is a few thousand rollup
        rows, not a million outcome rows."""
        return rollup_reads.path_totals(self.reader, task, since, until)

    def attempt_rows(self, task: str, since: float, until: float | None = None) -> list[AttemptRow]:
        return sql_queries.attempt_rows(self.reader, task, since, until)

    def series(
        self, task: str, since: float, until: float | None = None, bucket_s: float | None = None
    ) -> SeriesCounts | None:
        """From the hourly rollups when the buckets are whole hours, else from the rows."""
        if bucket_s is None and until is not None and until - since <= _ROWS_SERIES_S:
            # Such a window almost surely gets buckets under an hour, which only rows give:
            # read them straight away rather than the rollups first (both ways are exact).
            return bucket_rows(self.attempt_rows(task, since, until), bucket_s)
        return rollup_reads.series(
            self.reader,
            task,
            since,
            until,
            bucket_s,
            lambda: bucket_rows(self.attempt_rows(task, since, until), bucket_s),
        )

    def outcomes(self, task: str, since: float | None = None) -> list[Outcome]:
        c = outcomes.c
        q = sa.select(outcomes).where(c.task == task).order_by(c.created_at, c.id)
        if since is not None:
            q = q.where(c.created_at >= since)
        with self.reader.connect() as conn:
            return [
                Outcome(
                    request_id=r.request_id,
                    task=r.task,
                    path=r.path,
                    attempt=r.attempt,
                    success=bool(r.success),
                    kind=r.error_kind,
                    error=r.error,
                    latency_ms=r.latency_ms,
                    input_tokens=r.input_tokens,
                    output_tokens=r.output_tokens,
                    cost_usd=r.cost_usd,
                    created_at=float(r.created_at),
                    metadata=r.metadata,
                    retries=r.retries,
                    score=r.score,
                    context=r.context,
                    model=r.model,
                    cache_read_tokens=r.cache_read_tokens,
                    cache_write_tokens=r.cache_write_tokens,
                    propensity=r.propensity,
                    decision_data=sql_queries.decision_data(r.decision),
                    features=None if r.features is None else bytes(r.features),
                )
                for r in conn.execute(q)
            ]

    def set_propensities(self, task: str, values: Sequence[tuple[str, int, float]]) -> int:
        if not values:
            return 0
        c = outcomes.c
        stmt = (
            outcomes.update()
            .where(
                c.task == task,
                c.request_id == sa.bindparam("rid"),
                c.attempt == sa.bindparam("att"),
            )
            .values(propensity=sa.bindparam("p"))
        )
        params = [{"rid": r, "att": a, "p": p} for r, a, p in values]

        def update(conn: sa.Connection) -> int:
            return int(conn.execute(stmt, params).rowcount or 0)

        result: int = self._retrying(self._in_transaction, update)
        return result

    # -- pending decisions -------------------------------------------------------
    def add_pending(self, p: PendingDecision) -> None:
        # Idempotent: a router retries a decision whose insert's COMMIT acknowledgment
        # was lost in an outage.
        stmt = (
            self._insert(pending)
            .values(
                request_id=p.request_id,
                task=p.task,
                path=p.path,
                created_at=p.created_at,
                context=p.context,
                model=p.model,
                features=p.features,
            )
            .on_conflict_do_nothing(index_elements=["request_id"])
        )
        with self._reachable():
            self._retrying(self._exec, stmt)

    def _exec(self, stmt: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def claim_pending(
        self,
        request_id: str,
        build: Callable[[PendingDecision], Outcome],
        half_life: float | None,
    ) -> PendingDecision | str:
        with self._reachable():
            result: PendingDecision | str = self._retrying(
                self._in_transaction, self._claim_in, request_id, build, half_life
            )
        return result

    def _claim_in(
        self,
        conn: sa.Connection,
        request_id: str,
        build: Callable[[PendingDecision], Outcome],
        half_life: float | None,
    ) -> PendingDecision | str:
        p = pending.c
        stmt = (
            pending.delete()
            .where(p.request_id == request_id)
            .returning(p.request_id, p.task, p.path, p.created_at, p.context, p.model, p.features)
        )
        row = conn.execute(stmt).first()
        if row is not None:
            found = _pending(row)
            self._write_in(conn, [build(found)], half_life)
            return found
        seen = conn.execute(
            sa.select(outcomes.c.id).where(outcomes.c.request_id == request_id).limit(1)
        ).first()
        return CompleteResult.ALREADY_REPORTED if seen else CompleteResult.UNKNOWN

    def expire_pending(
        self,
        task: str,
        older_than: float,
        build: Callable[[PendingDecision], Outcome] | None,
        half_life: float | None,
    ) -> list[tuple[PendingDecision, Outcome | None]]:
        with self._reachable():
            result: list[tuple[PendingDecision, Outcome | None]] = self._retrying(
                self._in_transaction, self._expire_in, task, older_than, build, half_life
            )
        return result

    def _expire_in(
        self,
        conn: sa.Connection,
        task: str,
        older_than: float,
        build: Callable[[PendingDecision], Outcome] | None,
        half_life: float | None,
    ) -> list[tuple[PendingDecision, Outcome | None]]:
        p = pending.c
        stmt = (
            pending.delete()
            .where(p.task == task, p.created_at < older_than)
            .returning(p.request_id, p.task, p.path, p.created_at, p.context, p.model, p.features)
        )
        gone = [_pending(r) for r in conn.execute(stmt)]
        done = [(d, build(d) if build else None) for d in gone]
        self._write_in(conn, [o for _, o in done if o is not None], half_life)
        return done

    # -- heartbeats (the fleet's breaker states) ------------------------------------
    def put_health(self, snapshot: HealthSnapshot, expire_before: float) -> None:
        self._retrying(sql_health.put, self.engine, snapshot, expire_before)

    def health(self, task: str | None = None) -> list[HealthSnapshot]:
        return sql_health.read(self.reader, task)

    def remove_health(self, router_id: str) -> None:
        self._retrying(sql_health.remove, self.engine, router_id)

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()


_COLUMNS = (
    "score",
    "context",
    "request_id",
    "attempt",
    "task",
    "path",
    "success",
    "error_kind",
    "error",
    "latency_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "retries",
    "created_at",
    "metadata",
    "model",
    "cache_read_tokens",
    "cache_write_tokens",
    "propensity",
    "decision",
    "features",
)


def _tuple(o: Outcome) -> tuple[Any, ...]:
    """An outcome as DBAPI parameters in ``_COLUMNS`` order (JSON encoded by hand, as
    SQLAlchemy's JSON type would: SQL NULL for no metadata; the decision already encoded
    on the request's thread)."""
    return (
        o.score,
        o.context,
        o.request_id,
        o.attempt,
        o.task,
        o.path,
        bool(o.success),
        o.kind,
        o.error,
        o.latency_ms,
        o.input_tokens,
        o.output_tokens,
        o.cost_usd,
        o.retries,
        o.created_at,
        None if o.metadata is None else json.dumps(o.metadata),
        o.model,
        o.cache_read_tokens,
        o.cache_write_tokens,
        o.propensity,
        o.decision_data,
        o.features,
    )


def _pending(r: Any) -> PendingDecision:
    """A pending decision from a row of (request_id, task, path, created_at, context,
    model, features)."""
    feats = None if r[6] is None else bytes(r[6])
    return PendingDecision(r[0], r[1], r[2], float(r[3]), r[4], r[5], feats)


def _row(o: Outcome) -> dict[str, Any]:
    """The outcome as SQLAlchemy parameters: ``_tuple`` by name, with the metadata left
    for the JSON column type to encode."""
    return {**dict(zip(_COLUMNS, _tuple(o), strict=True)), "metadata": o.metadata}


def _check_schema(conn: sa.Connection) -> None:
    """Raise a clear error when the database is not at this version's schema: stamped at
    an older revision, or lacking tables or columns this version writes (``db upgrade``
    fixes both), or stamped at a revision this version does not know (a newer one
    migrated it).

    Without it an old database fails on the first write with the driver's "no such
    column", far from the cause; the fix is a migration, never silently altering tables.
    The stamp counts as much as the columns: a schema one migration behind may have every
    column and still hold data in the old layout (0012 moved the half-lives out of
    path_stats), and create_all would make the table that migration creates, so that
    ``db upgrade`` then failed forever.
    """
    inspector = sa.inspect(conn)
    stamped: list[str] = []
    if inspector.has_table("alembic_version"):
        stamped = list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    unknown = [v for v in stamped if v not in REVISIONS]
    if unknown:
        raise ConfigurationError(
            f"store: the database was migrated by a newer adaptive-router (revision "
            f"{', '.join(unknown)}; this version knows up to {HEAD_REVISION}); upgrade "
            "adaptive-router in this process rather than write to it with older code"
        )
    missing = [f"at revision {v}" for v in stamped if v != HEAD_REVISION]
    if inspector.has_table(outcomes.name):
        missing += [
            f"missing table {t.name}"
            for t in (rollups_table, spend_stats, feature_stats, tasks_table)
            if not inspector.has_table(t.name)
        ]
    for table in (path_stats, outcomes, pending):
        if not inspector.has_table(table.name):
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        missing += [f"missing {table.name}.{c.name}" for c in table.columns if c.name not in have]
    if missing:
        raise ConfigurationError(
            f"store: the database schema is older than this version of adaptive-router "
            f"({', '.join(missing)}); run `adaptive-router db upgrade --db URL` "
            f"to migrate it to revision {HEAD_REVISION} (no data is lost)"
        )
