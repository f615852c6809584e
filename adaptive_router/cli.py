"""The ``adaptive-router`` command: inspect posteriors and stats, run the demo, migrate.

Thin by design: every number comes from the library (the store, ``posteriors_from_states``,
``window_stats``, :mod:`adaptive_router.migrations`, :mod:`adaptive_router.demo`). Errors
are one red line on stderr and exit code 1 (runtime: unreachable database, unknown task)
or 2 (usage: malformed URL or option). Database URLs are only ever shown masked.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from alembic.util import CommandError
from rich import box
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from adaptive_router import cli_reports, migrations
from adaptive_router import demo as demo_mod
from adaptive_router._checks import redact, redact_url
from adaptive_router.errors import ConfigurationError, StoreUnavailableError
from adaptive_router.outcomes import PathWindowStats, Posterior
from adaptive_router.reports import PlotUnavailableError, plot_report
from adaptive_router.router import as_call, posteriors_from_states
from adaptive_router.stores import SQLStore
from adaptive_router.stores.base import PathState

logger = logging.getLogger(__name__)

ENV_DB = "ADAPTIVE_ROUTER_DB"

app = typer.Typer(
    name="adaptive-router",
    help="Outcome-based adaptive routing: inspect what the router learned, run the demo.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback's locals would include the database URL, password and all.
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database schema management (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")
cli_reports.register(app)

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


def _out() -> Console:
    # Created per call: the console then binds the streams of the moment (CliRunner swaps
    # them in tests).
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped or captured output ends up in logs and files: don't cut tables at 80 columns.
        console.width = 160
    return console


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int, url: str | None = None) -> NoReturn:
    _err().print(f"[bold red]error:[/] {escape(redact(message, url))}")
    raise typer.Exit(code)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


@contextmanager
def _errors(url: str | None) -> Iterator[None]:
    """Turn the library's exceptions into one red line and an exit code."""
    try:
        yield
    except CLIError as exc:
        _fail(str(exc), exc.code, url)
    except ConfigurationError as exc:
        _fail(str(exc), 2, url)
    except StoreUnavailableError as exc:
        _fail(str(exc), 1, url)
    except CommandError as exc:
        _fail(f"alembic: {_first_line(exc)}", 2, url)
    except typer.Exit:
        raise
    except SQLAlchemyError as exc:
        text = _first_line(exc)
        if "no such table" in text or ("relation" in text and "does not exist" in text):
            where = redact_url(url) if url else "the database"
            _fail(
                f"{where} has no adaptive-router tables ({text}); create them with "
                "`adaptive-router db upgrade --db URL`",
                1,
                url,
            )
        _fail(f"database error: {text}", 1, url)
    except Exception as exc:
        # Last resort: still one line, still redacted (messages may quote a URL).
        _fail(f"{type(exc).__name__}: {_first_line(exc)}", 1, url)


def resolve_url(db: str, *, must_exist: bool) -> str:
    """A database URL from ``--db``: URLs pass through, anything else is a SQLite file path.

    With ``must_exist``, a SQLite file that is not there is an error rather than silently
    created empty by the driver.
    """
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
def _open_store(url: str) -> Iterator[SQLStore]:
    # create=False: inspecting a database must never create tables in it.
    store = SQLStore(url, create=False)
    try:
        yield store
    finally:
        store.close()


def _unknown_task(store: SQLStore, task: str, url: str) -> CLIError:
    known = store.tasks()
    shown = ", ".join(known[:10]) + (f" (and {len(known) - 10} more)" if len(known) > 10 else "")
    hint = f"known tasks: {shown}" if known else "it holds no tasks yet"
    return CLIError(f"unknown task {task!r} in {redact_url(url)}; {hint}", 1)


def stored_half_life(states: dict[str, PathState]) -> float | None:
    """The half-life the task's rows were learned with (routers of a task share one).

    Should rows disagree (routers misconfigured at different times), the most common
    value among paths with evidence is used and a warning logged.
    """
    values = Counter(st.half_life_s for st in states.values() if st.n) or Counter(
        st.half_life_s for st in states.values()
    )
    if not values:
        return None
    if len(values) > 1:
        logger.warning("paths of one task were learned with different half-lives: %s", dict(values))
    return values.most_common(1)[0][0]


def read_posteriors(
    store: SQLStore, task: str, prior: tuple[float, float], now: float, context: str = ""
) -> tuple[list[Posterior], float | None]:
    """Posteriors of every path stored for ``task`` (one context's own evidence when
    ``context`` is given) decayed to ``now``, and the half-life."""
    states = store.load(task, context)
    half_life = stored_half_life(states)
    names = sorted(states)
    return posteriors_from_states(states, names, prior, half_life, now), half_life


def _num(value: float | None) -> float | None:
    # JSON has no NaN; a missing figure is null.
    return None if value is None or math.isnan(value) else value


def posterior_dict(p: Posterior) -> dict[str, Any]:
    """A posterior as JSON-ready data."""
    lo, hi = p.interval
    return {
        "path": p.path,
        "alpha": p.alpha,
        "beta": p.beta,
        "mean": p.mean,
        "interval": [lo, hi],
        "n": p.n,
        "successes": p.successes,
        "failures": p.failures,
        "traffic_share": p.traffic_share,
        "updated_at": p.updated_at,
    }


def stats_dict(s: PathWindowStats) -> dict[str, Any]:
    """Window stats as JSON-ready data."""
    return {
        "path": s.path,
        "attempts": s.attempts,
        "first_attempts": s.first_attempts,
        "successes": s.successes,
        "success_rate": _num(s.success_rate),
        "timeouts": s.timeouts,
        "latency_p50_ms": s.latency_p50_ms,
        "latency_p95_ms": s.latency_p95_ms,
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
        "cost_usd": s.cost_usd,
        "errors": dict(s.errors),
    }


def _print_json(data: Any) -> None:
    # Plain stdout, not rich: the output is for machines and must not be wrapped.
    typer.echo(json.dumps(data, indent=2, allow_nan=False))


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None or math.isnan(value) else format(value, spec)


def _ms(value: float | None) -> str:
    # Local paths take microseconds, model calls seconds: keep three significant places.
    if value is None or math.isnan(value):
        return "—"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(
    title: str, headers: Sequence[str], rows: list[list[str]], caption: str | None = None
) -> Table:
    """A table that never cuts a figure: on a narrow terminal cells wrap instead."""
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right", overflow="fold")
    for row in rows:
        table.add_row(escape(row[0]), *row[1:])
    return table


def _half_life_text(half_life: float | None) -> str:
    return "no decay" if half_life is None else f"half-life {half_life:g} s"


# -- commands -----------------------------------------------------------------------


@app.callback()
def _root(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="-v: warnings, -vv: info logs.")
    ] = 0,
) -> None:
    """Outcome-based adaptive routing: inspect what the router learned, run the demo."""
    # Only when nobody configured logging (a plain command-line run): an embedding
    # application or a test runner keeps its own set-up. Errors only by default, as the
    # expected per-request warnings (a path failed, fell back) would drown the output.
    if not logging.getLogger().handlers:
        level = {0: logging.ERROR, 1: logging.WARNING}.get(verbose, logging.INFO)
        handler = RichHandler(console=_err(), show_path=False)
        logging.basicConfig(level=level, format="%(message)s", handlers=[handler])


@app.command()
def posteriors(
    db: DbOption,
    task: TaskOption,
    json_out: JsonOption = False,
    prior: Annotated[
        str, typer.Option("--prior", help="Beta prior 'alpha,beta' the router uses.")
    ] = "1,1",
    context: ContextOption = "",
) -> None:
    """Each path's Beta posterior now: alpha, beta, mean, 95% interval, counts, traffic share."""
    with _errors(db):
        try:
            prior_ab = parse_prior(prior)
        except ValueError as exc:
            raise CLIError(str(exc), 2) from None
        url = resolve_url(db, must_exist=True)
        with _open_store(url) as store:
            now = time.time()
            posts, half_life = read_posteriors(store, task, prior_ab, now, context)
            if not posts:
                if context and task in store.tasks():
                    raise CLIError(f"task {task!r} has no evidence in context {context!r}", 1)
                raise _unknown_task(store, task, url)
    if json_out:
        _print_json([posterior_dict(p) for p in posts])
        return
    rows = []
    for p in posts:
        lo, hi = p.interval
        rows.append(
            [
                p.path,
                f"{p.alpha:.2f}",
                f"{p.beta:.2f}",
                f"{p.mean:.3f}",
                f"{lo:.3f}–{hi:.3f}",
                str(p.n),
                str(p.successes),
                str(p.failures),
                f"{p.traffic_share:.1%}",
            ]
        )
    table = _table(
        f"posteriors · task {task} · {redact_url(url)}",
        (
            "path",
            "alpha",
            "beta",
            "mean",
            "95%\ninterval",
            "n",
            "successes",
            "failures",
            "traffic\nshare",
        ),
        rows,
        caption=(
            f"alpha/beta/mean decayed to {_when(now)} ({_half_life_text(half_life)}, "
            f"prior {prior_ab[0]:g},{prior_ab[1]:g}); n, successes, failures are all-time counts; "
            "a final fallback's row is its record only: it is always tried last, never ranked"
        ),
    )
    _out().print(table)


@app.command()
def stats(
    db: DbOption,
    task: TaskOption,
    since: Annotated[
        str, typer.Option("--since", help="Window: 30s, 15m, 1h, 2d, 1w (back from now).")
    ] = "1h",
    json_out: JsonOption = False,
    context: ContextOption = "",
) -> None:
    """Per-path attempts, success rate, timeouts, latency, tokens and cost over a window."""
    with _errors(db):
        try:
            window = parse_duration(since)
        except ValueError as exc:
            raise CLIError(str(exc), 2) from None
        url = resolve_url(db, must_exist=True)
        with _open_store(url) as store:
            start = time.time() - window.total_seconds()
            rows = store.window_stats(task, start, context=context or None)
            if not rows and task not in store.tasks():
                raise _unknown_task(store, task, url)
    if json_out:
        _print_json([stats_dict(s) for s in rows])
        return
    if not rows:
        _out().print(f"no outcomes for task {escape(task)} since {_when(start)}")
        return
    table = _table(
        f"stats · task {task} · since {_when(start)} ({since})",
        (
            "path",
            "attempts",
            "first\nattempts",
            "successes",
            "success\nrate",
            "timeouts",
            "p50\nms",
            "p95\nms",
            "input\ntokens",
            "output\ntokens",
            "cost\nUSD",
        ),
        [
            [
                s.path,
                str(s.attempts),
                str(s.first_attempts),
                str(s.successes),
                _fmt(s.success_rate, ".1%"),
                str(s.timeouts),
                _ms(s.latency_p50_ms),
                _ms(s.latency_p95_ms),
                str(s.input_tokens),
                str(s.output_tokens),
                _fmt(s.cost_usd, ".4f"),
            ]
            for s in rows
        ],
    )
    _out().print(table)


@app.command()
def demo(
    db: Annotated[
        str, typer.Option("--db", help="SQLite file for the demo's outcomes (deleted first).")
    ] = demo_mod.DEFAULT_DB,
    requests: Annotated[
        int | None,
        typer.Option(
            "--requests",
            help=f"Number of requests (default {demo_mod.DEFAULT_REQUESTS}, "
            f"{demo_mod.DEFAULT_LIVE_REQUESTS} with --live).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = (
        demo_mod.DEFAULT_SEED
    ),
    table: Annotated[
        bool, typer.Option("--table/--no-table", help="Show the live table while it runs.")
    ] = True,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Call the real OpenAI and Anthropic APIs (needs OPENAI_API_KEY and "
            "ANTHROPIC_API_KEY; costs a little) instead of the built-in fake provider.",
        ),
    ] = False,
) -> None:
    """Route order extraction between GPT-4o, Claude and a regex while GPT-4o degrades.

    Both models are real SDK paths served by a local fake provider (no keys, no network);
    halfway through GPT-4o starts failing, and the live table shows retries, the breaker
    opening and traffic moving to Claude.
    """
    with _errors(db):
        demo_mod.run_with_display(_out(), db, requests, seed, table=table, live=live)
        png = Path(db).with_suffix(".png")
        with _open_store(resolve_url(db, must_exist=True)) as store:
            try:
                plot_report(store, demo_mod.TASK, 0.0, png)
            except PlotUnavailableError:  # matplotlib is an optional extra: the demo ran
                _out().print(
                    escape(
                        "PNG report skipped: matplotlib is not installed "
                        "(pip install 'adaptive-router[plot]')"
                    )
                )
                return
        _out().print(f"Traffic share, success rate and cost over time: {png}")


# -- check ------------------------------------------------------------------------------

_TARGET = re.compile(r"^(?P<module>[A-Za-z_][\w.]*):(?P<attr>[A-Za-z_][\w.]*)$")


def load_target(target: str) -> Any:
    """The object ``MODULE:ATTR`` names (``ATTR`` may be dotted). The current directory is
    importable, as for ``python -m``. A callable without ``check`` is taken for a factory
    and called with no arguments."""
    match = _TARGET.match(target.strip())
    if match is None:
        raise CLIError(
            f"{target!r} is not MODULE:ATTR; name the router like myapp.routing:router", 2
        )
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name = match["module"]
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CLIError(f"cannot import {module_name!r}: {_first_line(exc)}", 1) from None
    except Exception as exc:  # the user's module raised while being imported
        raise CLIError(
            f"importing {module_name!r} raised {type(exc).__name__}: {_first_line(exc)}", 1
        ) from None
    for part in match["attr"].split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CLIError(f"{module_name!r} has no attribute {match['attr']!r}", 1) from None
    if not hasattr(obj, "check") and callable(obj):
        obj = obj()
    if not callable(getattr(obj, "check", None)):
        raise CLIError(
            f"{target} is a {type(obj).__name__}, not a Router (or a function returning one)", 2
        )
    return obj


def read_samples(source: str) -> list[Any]:
    """Samples from a JSON Lines file (``-``: stdin), one JSON value a line; blank lines
    and lines starting with ``#`` are skipped."""
    try:
        if source == "-":
            lines = sys.stdin.read().splitlines()
        else:
            lines = Path(source).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CLIError(f"cannot read samples from {source}: {exc.strerror or exc}", 2) from None
    except UnicodeDecodeError:
        raise CLIError(f"{source} is not UTF-8 text; give a JSON Lines file", 2) from None
    samples: list[Any] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            samples.append(json.loads(text))
        except json.JSONDecodeError as exc:
            raise CLIError(f"{source} line {number} is not JSON: {exc.msg}", 2) from None
    if not samples:
        raise CLIError(f"{source} has no samples; write one JSON value per line", 2)
    return samples


def check_dict(c: Any) -> dict[str, Any]:
    """One path's check result as JSON-ready data."""
    return {
        "path": c.path,
        "runs": c.runs,
        "successes": c.successes,
        "success_rate": _num(c.success_rate),
        "latency_p50_ms": _num(c.latency_p50_ms),
        "latency_p95_ms": _num(getattr(c, "latency_p95_ms", None)),
        "errors": dict(c.errors),
        "examples": dict(getattr(c, "examples", {}) or {}),
    }


def _check_errors(c: Any) -> str:
    """Each failure kind with its count and first message, one per line."""
    examples = getattr(c, "examples", {}) or {}
    lines = []
    for kind, n in sorted(c.errors.items()):
        why = examples.get(kind)
        lines.append(f"{kind} {n}: {why}" if why else f"{kind} {n}")
    return "\n".join(lines) or "—"


@app.command()
def check(
    target: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:ATTR",
            help="Where your Router is, e.g. myapp.routing:router (or a function returning it).",
        ),
    ],
    samples: Annotated[
        str,
        typer.Option(
            "--samples",
            help="JSON Lines file of inputs ('-' for stdin): an object is passed as keyword "
            'arguments, any other value as the single argument; {"$args": [...], '
            '"$kwargs": {...}} passes both.',
        ),
    ],
    json_out: JsonOption = False,
    fail_under: Annotated[
        float | None,
        typer.Option(
            "--fail-under",
            min=0.0,
            max=1.0,
            help="Exit with code 1 if any path's success rate is below this (e.g. 0.9).",
        ),
    ] = None,
) -> None:
    """Run every path, the final fallback included, on sample inputs, without routing.

    Reports each path's success rate, latency and errors by kind; nothing is recorded
    or learned, and breakers and rate limits are bypassed, so each path (the fallback
    too) is tested on its own.
    """
    with _errors(None):
        items = read_samples(samples)
        for number, item in enumerate(items, 1):
            try:
                as_call(item)
            except ValueError as exc:
                raise CLIError(f"{samples}: sample {number}: {exc}", 2) from None
        router = load_target(target)
        try:
            results = list(router.check(items))
        finally:
            close = getattr(router, "close", None)
            if callable(close):
                close()
    if json_out:
        _print_json([check_dict(c) for c in results])
    else:
        rows = [
            [
                c.path,
                str(c.runs),
                str(c.successes),
                _fmt(c.success_rate, ".1%"),
                _ms(c.latency_p50_ms),
                _ms(getattr(c, "latency_p95_ms", None)),
                escape(_check_errors(c)),
            ]
            for c in results
        ]
        _out().print(
            _table(
                f"check · {target} · {len(items)} samples",
                ("path", "runs", "successes", "success\nrate", "p50\nms", "p95\nms", "errors"),
                rows,
                caption="every path run on every sample; nothing recorded, no routing; "
                "each failure kind shows its first message",
            )
        )
    if fail_under is not None:
        below = [c.path for c in results if not c.success_rate >= fail_under]
        if below:
            _err().print(
                f"[bold red]error:[/] success rate below {fail_under:g}: "
                + escape(", ".join(below))
            )
            raise typer.Exit(1)


@app.command()
def simulate(
    experiment: Annotated[
        str, typer.Argument(help="chapelle_li, degradation, half_life_sweep or peers.")
    ],
    horizon: Annotated[int | None, typer.Option("--horizon", help="Requests per run.")] = None,
    runs: Annotated[int | None, typer.Option("--runs", help="Independent runs.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = 0,
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Folder for the .md and .png (default simulations/results/ when the current "
            "directory has one, as a checkout does, else results/).",
        ),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A CI-sized run of seconds.")] = False,
) -> None:
    """Run an offline experiment on the simulator; writes a markdown table and a PNG."""
    # Imported here: the simulator (numpy engine, numba kernel) is not needed by other commands.
    from adaptive_router.simulation.experiments import EXPERIMENTS

    with _errors(None):
        if experiment not in EXPERIMENTS:
            raise CLIError(
                f"unknown experiment {experiment!r}; choose from {', '.join(EXPERIMENTS)}", 2
            )
        for name, value in (("--horizon", horizon), ("--runs", runs)):
            if value is not None and value < 1:
                raise CLIError(f"{name} must be >= 1", 2)
        from rich.progress import Progress

        with Progress(console=_err(), transient=True) as bar:
            tasks: dict[str, Any] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            md = EXPERIMENTS[experiment](
                quick=quick,
                seed=seed,
                horizon=horizon,
                runs=runs,
                out=None if out is None else Path(out),
                progress=progress,
            )
    _out().print(f"wrote {md} and {Path(md).with_suffix('.png')}")
    _out().print(Path(md).read_text())


@db_app.command("upgrade")
def db_upgrade(
    db: DbOption,
    revision: Annotated[str, typer.Option("--revision", help="Target revision.")] = "head",
) -> None:
    """Create or migrate the tables to a revision (no-op when already there)."""
    with _errors(db):
        url = resolve_url(db, must_exist=False)
        result = migrations.upgrade(url, revision)
    where = redact_url(url)
    if result.changed:
        before = result.before or "an empty database"
        _out().print(f"upgraded {where} from {before} to {result.after}")
    else:
        _out().print(f"{where} is already at revision {result.after}; nothing to do")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (``adaptive-router``)."""
    app(args=list(argv) if argv is not None else None, prog_name="adaptive-router")
