"""Alembic environment for adaptive-router.

The database URL comes from the Alembic config's ``sqlalchemy.url`` (set in code by
:func:`adaptive_router.migrations.upgrade`); a caller may instead hand over an open
connection as ``config.attributes["connection"]``. There is no ``alembic.ini``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from adaptive_router.stores.schema import metadata
from adaptive_router.stores.sql import _CREATE_LOCK_KEY, create_engine

config = context.config
target_metadata = metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no database URL: set sqlalchemy.url on the Alembic Config "
            "(adaptive_router.migrations.alembic_config(url) does)"
        )
    return url


def _migrate(connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        # SQLStore holds this key while creating tables on first use: a migration and a
        # store's first-use creation must never interleave on one database.
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_CREATE_LOCK_KEY)))
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the migration SQL as a script (``alembic upgrade --sql``)."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply the migrations in one transaction (PostgreSQL and SQLite both have DDL in them)."""
    given = config.attributes.get("connection")
    if given is not None:
        _migrate(given)
        return
    # The store's own engine factory: same driver mapping (postgresql -> psycopg), SQLite
    # busy timeout and BEGIN IMMEDIATE; no statement timeout, as a migration of a big
    # outcomes table may legitimately take long.
    engine = create_engine(_url(), statement_timeout_s=0)
    try:
        with engine.begin() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
