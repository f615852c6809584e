"""Alembic migrations: the schema's history, applied by ``adaptive-router db upgrade``.

The migration scripts live in the repository's top-level ``storage/`` folder; a wheel
carries them as ``adaptive_router/_storage``. No ``alembic.ini`` is needed: the
configuration is built here, in code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from adaptive_router._checks import redact_url
from adaptive_router._imports import needs_extra
from adaptive_router.stores.sql import create_engine

with needs_extra("cli", "Schema migrations (adaptive-router db upgrade)"):
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

logger = logging.getLogger(__name__)

__all__ = [
    "UpgradeResult",
    "alembic_config",
    "current_revision",
    "head_revision",
    "storage_dir",
    "upgrade",
]


def storage_dir() -> Path:
    """The folder holding ``env.py`` and ``versions/``.

    ``adaptive_router/_storage`` in an installed wheel, else ``storage/`` next to the package
    (a source checkout or an editable install).
    """
    package = Path(__file__).resolve().parent
    candidates = (package / "_storage", package.parent / "storage")
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(
        "adaptive-router's Alembic migrations were not found in "
        + " or ".join(str(c) for c in candidates)
        + "; reinstall the package"
    )


def _escape(value: str) -> str:
    # Config options go through configparser interpolation, where '%' is special;
    # URLs carry percent-escapes such as options=-csearch_path%3Dschema.
    return value.replace("%", "%%")


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for the packaged migrations, optionally bound to a database URL."""
    cfg = Config()
    cfg.set_main_option("script_location", _escape(str(storage_dir())))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", _escape(url))
    return cfg


def head_revision() -> str:
    """The newest revision among the packaged migration scripts."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts in {storage_dir() / 'versions'}")
    return head


def current_revision(url: str) -> str | None:
    """The revision a database is at (``None``: never migrated nor created by a store)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return _current(conn)
    finally:
        engine.dispose()


def _current(conn: sa.Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


@dataclass(frozen=True, slots=True)
class UpgradeResult:
    """Revisions before and after :func:`upgrade`; equal when there was nothing to do."""

    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        """True if any migration ran."""
        return self.before != self.after


def upgrade(url: str, revision: str = "head") -> UpgradeResult:
    """Migrate the database at ``url`` to ``revision`` (default: the newest).

    A database created by :class:`~adaptive_router.stores.SQLStore` is stamped at the
    head revision already, so upgrading it is a no-op. Raises
    :class:`~adaptive_router.errors.ConfigurationError` for a malformed URL, SQLAlchemy
    errors when the database is unreachable, and ``alembic.util.CommandError`` for an
    unknown revision.
    """
    before = current_revision(url)
    logger.info(
        "migrating database",
        extra={"url": redact_url(url), "from_revision": before, "to_revision": revision},
    )
    command.upgrade(alembic_config(url), revision)
    after = current_revision(url)
    return UpgradeResult(before, after)
