"""``check``: run every path of a Router on sample inputs, without routing."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from adaptive_router.cli.common import (
    CLIError,
    JsonOption,
    console_err,
    console_out,
    first_line,
    fmt_ms,
    fmt_number,
    make_table,
    one_line_errors,
    print_json,
)

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
        raise CLIError(f"cannot import {module_name!r}: {first_line(exc)}", 1) from None
    except Exception as exc:  # the user's module raised while being imported
        raise CLIError(
            f"importing {module_name!r} raised {type(exc).__name__}: {first_line(exc)}", 1
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
    from adaptive_router.reports.summary import json_number

    return {
        "path": c.path,
        "runs": c.runs,
        "successes": c.successes,
        "success_rate": json_number(c.success_rate),
        "latency_p50_ms": json_number(c.latency_p50_ms),
        "latency_p95_ms": json_number(getattr(c, "latency_p95_ms", None)),
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
    # The library loads with the command, not with the command line's --help.
    from adaptive_router.router import as_call

    with one_line_errors(None):
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
        print_json([check_dict(c) for c in results])
    else:
        rows = [
            [
                c.path,
                str(c.runs),
                str(c.successes),
                fmt_number(c.success_rate, ".1%"),
                fmt_ms(c.latency_p50_ms),
                fmt_ms(getattr(c, "latency_p95_ms", None)),
                escape(_check_errors(c)),
            ]
            for c in results
        ]
        console_out().print(
            make_table(
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
            console_err().print(
                f"[bold red]error:[/] success rate below {fail_under:g}: "
                + escape(", ".join(below))
            )
            raise typer.Exit(1)
