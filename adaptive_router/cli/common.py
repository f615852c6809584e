"""What every ``adaptive-router`` command shares: the ``--db``/``--task`` options, URL
resolution, one-line errors with exit codes, consoles, number formats and tables.

Errors are one red line on stderr and exit code 1 (runtime: unreachable database, unknown
task) or 2 (usage: malformed URL or option). Database URLs are only ever shown masked.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adaptive_router._checks import redact, redact_url
from adaptive_router.errors import ConfigurationError, StoreUnavailableError

if TYPE_CHECKING:
    from adaptive_router.stores.sql import SQLStore

logger = logging.getLogger(__name__)

ENV_DB = "ADAPTIVE_ROUTER_DB"

DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar=ENV_DB,
        show_envvar=True,
        help="Database URL (sqlite:///file.db, postgresql://user@host/db) or a SQLite file path.",
    ),
]
TaskOption = Annotated[str, typer.Option("--task", help="Task name the router was created with.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ContextOption = Annotated[
    str, typer.Option("--context", help="Only this routing context (default: the whole task).")
]


class CLIError(Exception):
    """A failure to report as one line, with the exit code to use."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- helpers ------------------------------------------------------------------------


def console_out() -> Console:
    # Created per call: the console then binds the streams of the moment (CliRunner swaps
    # them in tests).
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped or captured output ends up in logs and files: don't cut tables at 80 columns.
        console.width = 160
    return console


def console_err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int, url: str | None = None) -> NoReturn:
    console_err().print(f"[bold red]error:[/] {escape(redact(message, url))}")
    raise typer.Exit(code)


def first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


@contextmanager
def one_line_errors(url: str | None) -> Iterator[None]:
    """Turn the library's exceptions into one red line and an exit code."""
    try:
        yield
    except CLIError as exc:
        fail(str(exc), exc.code, url)
    except ConfigurationError as exc:
        fail(str(exc), 2, url)
    except StoreUnavailableError as exc:
        fail(str(exc), 1, url)
    except typer.Exit:
        raise
    except Exception as exc:
        _fail_on(exc, url)


def _fail_on(exc: Exception, url: str | None) -> NoReturn:
    """The one line for an error of the database stack, or any other."""
    # A library's error comes from a command that imported the library: its module is
    # looked up, not imported (--help must not load the database stack).
    alembic = sys.modules.get("alembic.util")
    sqlalchemy = sys.modules.get("sqlalchemy.exc")
    if alembic is not None and isinstance(exc, alembic.CommandError):
        fail(f"alembic: {first_line(exc)}", 2, url)
    if sqlalchemy is not None and isinstance(exc, sqlalchemy.SQLAlchemyError):
        text = first_line(exc)
        if "no such table" in text or ("relation" in text and "does not exist" in text):
            where = redact_url(url) if url else "the database"
            fail(
                f"{where} has no adaptive-router tables ({text}); create them with "
                "`adaptive-router db upgrade --db URL`",
                1,
                url,
            )
        fail(f"database error: {text}", 1, url)
    # Last resort: still one line, still redacted (messages may quote a URL).
    fail(f"{type(exc).__name__}: {first_line(exc)}", 1, url)


def resolve_url(db: str, *, must_exist: bool) -> str:
    """A database URL from ``--db``: URLs pass through, anything else is a SQLite file path.

    With ``must_exist``, a SQLite file that is not there is an error rather than silently
    created empty by the driver.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    db = db.strip()
    if not db:
        raise CLIError(f"--db is empty; pass a database URL or set {ENV_DB}", 2)
    url = db if "://" in db else f"sqlite:///{db}"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise CLIError(
            f"cannot parse --db {redact(db)!r} as a database URL; use 'sqlite:///path.db' "
            "or 'postgresql://user@host:5432/db'",
            2,
        ) from None
    if (
        must_exist
        and parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not Path(parsed.database).is_file()
    ):
        raise CLIError(f"no SQLite database at {parsed.database}", 1)
    return url


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``1h``, ``2d``, ``1w`` (decimals allowed) -> timedelta; ValueError else."""
    m = _DURATION.match(text)
    if m is None or float(m.group(1)) <= 0:
        raise ValueError(
            f"--since {text!r} is not a duration; use a positive number and a unit "
            "s, m, h, d or w, e.g. 30s, 15m, 1h, 2d, 1w"
        )
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_prior(text: str) -> tuple[float, float]:
    """``"alpha,beta"`` -> a pair of finite positive floats; ValueError else."""
    parts = text.split(",")
    try:
        a, b = (float(p) for p in parts)
    except ValueError:
        a = b = math.nan
    if not (math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0):
        raise ValueError(f"--prior {text!r} must be two positive numbers 'alpha,beta', e.g. 1,1")
    return a, b


@contextmanager
def open_store(url: str) -> Iterator[SQLStore]:
    from adaptive_router.stores.sql import SQLStore

    # create=False: inspecting a database must never create tables in it.
    store = SQLStore(url, create=False)
    try:
        yield store
    finally:
        store.close()


def print_json(data: Any) -> None:
    # Plain stdout, not rich: the output is for machines and must not be wrapped.
    typer.echo(json.dumps(data, indent=2, allow_nan=False))


def fmt_number(value: float | None, spec: str) -> str:
    return "—" if value is None or math.isnan(value) else format(value, spec)


def fmt_ms(value: float | None) -> str:
    # Local paths take microseconds, model calls seconds: keep three significant places.
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def utc_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def make_table(
    title: str, headers: Sequence[str], rows: list[list[str]], caption: str | None = None
) -> Table:
    """A table that never cuts a figure: on a narrow terminal cells wrap instead."""
    # At least as wide as the title's longest word (a URL): rich folds a title to the
    # table's width, and a URL folded mid-word cannot be copied (the terminal still caps).
    longest = max((len(w) for w in title.split()), default=0)
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, min_width=longest + 2)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right", overflow="fold")
    for row in rows:
        table.add_row(escape(row[0]), *row[1:])
    return table


def unknown_task(store: SQLStore, task: str, url: str) -> CLIError:
    known = store.tasks()
    shown = ", ".join(known[:10]) + (f" (and {len(known) - 10} more)" if len(known) > 10 else "")
    hint = f"known tasks: {shown}" if known else "it holds no tasks yet"
    return CLIError(f"unknown task {task!r} in {redact_url(url)}; {hint}", 1)
