"""Engines for the SQL store: how connections are configured (SQLite's WAL and busy
timeout, PostgreSQL's statement, connect and TCP timeouts) and what a failed connection
means (an outage, or a misconfiguration that waiting will not fix)."""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.pool import StaticPool
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

import adaptive_router.stores.sql_fork as sql_fork
from adaptive_router._checks import first_line, redact, redact_url
from adaptive_router._imports import needs_extra
from adaptive_router.errors import ConfigurationError, StoreUnavailableError

__all__ = [
    "SUPPORTED",
    "connection_lost",
    "create_engine",
    "reader",
    "refused",
    "unavailable_error",
]

#: The execution option that marks an engine's transactions as reads (see :func:`reader`).
READ_ONLY = "adaptive_router_read_only"

SUPPORTED = ("sqlite", "postgresql")

#: libpq keepalive and TCP settings (seconds, except tcp_user_timeout in ms): a pooled
#: connection to a server that vanished (a failover, a partition) fails within a few
#: seconds instead of the OS defaults of minutes to hours. Values in the URL win.
_PG_SOCKET_DEFAULTS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 2,
    "tcp_user_timeout": 2000,
}

#: What a PostgreSQL server says when it refuses a connection for a reason that waiting
#: will not fix: the URL's user, password or database is wrong (psycopg raises these as
#: an OperationalError without an SQLSTATE, so only the server's text tells them apart
#: from an outage). Anything else that fails a connection counts as unreachable.
_REFUSED = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "does not exist",  # 'database "x" does not exist', 'role "x" does not exist'
    "no pg_hba.conf entry",
    "permission denied for database",
    "does not support ssl",
    "is not permitted to log in",
)


def refused(exc: BaseException) -> bool:
    """Whether a failed connection was refused for a misconfiguration (bad credentials,
    unknown database or role), not for an outage (refused or timed-out connection, a
    server restarting, out of connection slots)."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(reason in text for reason in _REFUSED)


def unavailable_error(exc: BaseException, url: object) -> StoreUnavailableError:
    """The project's error for a database that cannot serve a call now, with the driver's
    first line and every secret of ``url`` masked (drivers may quote connection
    parameters)."""
    if refused(exc):
        message = (
            f"store: {redact_url(url)} refused the connection: {first_line(exc)}; "
            "check the user, password and database name in the URL"
        )
    else:
        message = f"store: cannot reach {redact_url(url)}: {first_line(exc)}"
    return StoreUnavailableError(redact(message, url))


def connection_lost(exc: DBAPIError) -> bool:
    """DBAPI errors that mean the database is unreachable or cannot serve now (PEP 249's
    OperationalError: refused or dropped connections, timeouts, a locked SQLite file)."""
    return isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated


def create_engine(
    url: str,
    *,
    busy_timeout_s: float = 10.0,
    statement_timeout_s: float = 10.0,
    connect_timeout_s: float = 3.0,
) -> Engine:
    """An Engine configured as the store needs it (WAL, busy timeout, statement timeouts).

    On PostgreSQL a connection attempt gives up after ``connect_timeout_s`` (whole
    seconds, at least 2: libpq's floor), and keepalives with a TCP user timeout drop a
    pooled connection whose server vanished within about 2 s, so a call on a database
    that is down fails in about 5 s. Parameters given in the URL's query take precedence.
    """
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - a non-numeric port only fails when read
    except (ArgumentError, ValueError):
        # The URL itself is not repeated: an unparseable URL cannot be masked reliably.
        raise ConfigurationError(
            "store: cannot parse the database URL; use 'memory://', "
            "'sqlite:///path.db' or 'postgresql://user@host:5432/db'"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED:
        raise ConfigurationError(
            f"store: unsupported URL scheme {parsed.drivername!r} in {redact_url(parsed)}; "
            "use 'memory://', 'sqlite:///path.db' or 'postgresql://user@host:5432/db'"
        )
    if backend == "sqlite":
        kwargs: dict[str, Any] = {
            "connect_args": {"timeout": busy_timeout_s, "check_same_thread": False}
        }
        memory = parsed.database in (None, "", ":memory:")
        kwargs["poolclass"] = StaticPool if memory else sql_fork.GatedQueuePool
        engine = sa.create_engine(parsed, **kwargs)
        _configure_sqlite(engine, busy_timeout_s)
        return sql_fork.gated(engine, busy_timeout_s)  # no connection crosses a fork
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    with needs_extra("postgres", "PostgreSQL support"):  # before SQLAlchemy's own import
        import psycopg  # noqa: F401
    socket_args: dict[str, int] = {
        "connect_timeout": max(1, int(connect_timeout_s)),
        **_PG_SOCKET_DEFAULTS,
    }
    engine = sa.create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={k: v for k, v in socket_args.items() if k not in parsed.query},
    )
    timeout_ms = int(statement_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _pg_connect(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET statement_timeout = {timeout_ms}")
        dbapi_conn.commit()

    return engine


def _configure_sqlite(engine: Engine, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN IMMEDIATE below is ours:
        # a deferred transaction that later upgrades to a write lock can fail with
        # "database is locked" without waiting for the busy timeout.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        if engine.url.database not in (None, "", ":memory:"):
            _enable_wal(cur, busy_timeout_s)
            cur.execute("PRAGMA synchronous = NORMAL")
        try:
            cur.execute("SELECT power(0.5, 1.0)")
        except sqlite3.OperationalError:
            # Older SQLite builds lack the math functions the decay UPDATE uses.
            dbapi_conn.create_function("power", 2, pow, deterministic=True)
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        # A read takes no write lock: under WAL a deferred read never blocks a writer,
        # while BEGIN IMMEDIATE on every refresh or dashboard read made the writers of
        # every other process wait for it.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def reader(engine: Engine) -> Engine:
    """``engine`` for transactions that only read: on SQLite (configured by
    :func:`create_engine`) they begin deferred instead of IMMEDIATE; elsewhere, and on an
    engine configured by its owner, the same as ``engine``. Shares its pool."""
    return engine.execution_options(**{READ_ONLY: True})


def _sqlite_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower()


def _enable_wal(cur: sqlite3.Cursor, busy_timeout_s: float) -> None:
    """Switch the file to WAL, waiting out other connections for up to the busy timeout.

    On a new (rollback-journal) file the switch reads the header under a read lock, then
    upgrades to a write lock; SQLite never calls the busy handler for a connection that
    already holds a read lock (waiting could deadlock), so while another process holds the
    write lock — its own switch, say — the PRAGMA fails at once. Retrying it is safe: once
    the file is in WAL mode the PRAGMA is a no-op.
    """
    retrying = Retrying(
        retry=retry_if_exception(_sqlite_locked),
        wait=wait_random_exponential(multiplier=0.005, max=0.2),
        stop=stop_after_delay(busy_timeout_s),
        reraise=True,
    )
    retrying(cur.execute, "PRAGMA journal_mode = WAL")
