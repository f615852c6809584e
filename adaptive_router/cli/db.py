"""``db upgrade``: create or migrate the tables (Alembic)."""

from __future__ import annotations

from typing import Annotated

import typer

from adaptive_router._checks import redact_url
from adaptive_router.cli.common import (
    DbOption,
    console_out,
    one_line_errors,
    resolve_url,
)

#: ``adaptive-router db ...``: attached to the app by :mod:`adaptive_router.cli.app`.
db_app = typer.Typer(help="Database schema management (Alembic).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    db: DbOption,
    revision: Annotated[str, typer.Option("--revision", help="Target revision.")] = "head",
) -> None:
    """Create or migrate the tables to a revision (no-op when already there)."""
    # Alembic and SQLAlchemy load with the command, not with the command line's --help.
    from adaptive_router import migrations

    with one_line_errors(db):
        url = resolve_url(db, must_exist=False)
        result = migrations.upgrade(url, revision)
    where = redact_url(url)
    if result.changed:
        before = result.before or "an empty database"
        console_out().print(f"upgraded {where} from {before} to {result.after}")
    else:
        console_out().print(f"{where} is already at revision {result.after}; nothing to do")
