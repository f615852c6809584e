"""Run the benchmarks, print one table, write ``benchmarks/results.md``.

    python -m benchmarks.run                 # everything (< 10 minutes on 2 cores)
    python -m benchmarks.run --quick         # smoke run with small sizes (seconds)
    python -m benchmarks.run --only queries  # one section (comma-separate for more)

A full run writes ``benchmarks/results.md`` (the README includes it); ``--quick`` and
``--only`` runs write nothing unless ``--output`` is given. Targets are measured, not
asserted: the exit status is 0 unless ``--strict`` is given and a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path as FsPath

from benchmarks import (
    contextual,
    dashboard,
    decisions,
    hotpath,
    memory,
    metering,
    objective,
    overhead,
    peers,
    queries,
    simulator,
    startup,
    throughput,
)
from benchmarks.common import ROOT, Result, machine

SECTIONS: dict[str, Callable[[bool], list[Result]]] = {
    "startup": startup.run,
    "overhead": overhead.run,
    "hotpath": hotpath.run,
    "objective": objective.run,
    "metering": metering.run,
    "throughput": throughput.run,
    "decisions": decisions.run,
    "queries": queries.run,
    "dashboard": dashboard.run,
    "memory": memory.run,
    "peers": peers.run,
    "simulator": simulator.run,
    "contextual": contextual.run,
}
RESULTS_MD = ROOT / "benchmarks" / "results.md"
HEADERS = ("Section", "Measure", "Target", "Value", "Result", "Notes")


def _cells(r: Result) -> tuple[str, ...]:
    return (r.section, r.measure, r.target, r.value, r.verdict, r.note)


def markdown_table(results: Sequence[Result]) -> str:
    """The results as a GitHub markdown table."""

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for r in results:
        cells = list(_cells(r))
        cells[4] = {"pass": "✅ pass", "FAIL": "❌ FAIL"}.get(cells[4], cells[4])
        lines.append("| " + " | ".join(esc(c) for c in cells) + " |")
    return "\n".join(lines)


def print_table(results: Sequence[Result], title: str) -> None:
    """One table on stdout: rich when available, markdown otherwise."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print(markdown_table(results))
        return
    table = Table(title=title, show_lines=False)
    for h in HEADERS:
        table.add_column(h, overflow="fold")
    style = {"pass": "green", "FAIL": "bold red", "info": "dim", "skipped": "yellow"}
    for r in results:
        cells = _cells(r)
        table.add_row(*cells[:4], f"[{style[r.verdict]}]{r.verdict}[/]", cells[5])
    Console(width=200).print(table)


def write_markdown(
    path: FsPath, results: Sequence[Result], facts: dict[str, str], argv: Sequence[str], secs: float
) -> None:
    """``results.md``: date, machine, the table and how to read it."""
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cmd = " ".join(["python -m benchmarks.run", *argv])
    failed = sum(r.ok is False for r in results)
    text = f"""# Benchmark results

- Date: {date}
- Machine: {facts["cpu"]}, {facts["cores"]} cores, {facts["os"]}
- Software: Python {facts["python"]}, SQLite {facts["sqlite"]}, PostgreSQL {facts["postgresql"]}
  (loopback)
- Load average (1, 5, 15 min): {facts["load"]}
- `{cmd}` took {secs:.0f} s; {failed} target(s) missed

{markdown_table(results)}

Times are per call (`time.perf_counter_ns`) after a warm-up; overhead is the router's
percentile minus the bare no-op's at the same percentile. The machine was shared with
other work, so single numbers are noisy: compare values measured in the same run (the
peer comparison interleaves its contenders; one-process throughput is the best of two
runs). Throughput counts rows durably in `outcomes`, final flush included. Regenerate
with `make bench`.
"""
    path.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the sections, print and write the results."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--only", default="", help=f"comma-separated sections: {', '.join(SECTIONS)}"
    )
    parser.add_argument("--output", type=FsPath, help="markdown file to write")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    facts = machine()
    started = time.perf_counter()
    results: list[Result] = []
    for name in names:
        t0 = time.perf_counter()
        print(f"· {name} …", file=sys.stderr, flush=True)
        try:
            results += SECTIONS[name](args.quick)
        except Exception as exc:  # one broken section must not lose the others' numbers
            traceback.print_exc()
            results.append(Result(name, f"{name} section", "—", "error", False, repr(exc)[:200]))
        print(f"  {name} took {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    secs = time.perf_counter() - started
    facts["load"] = f"{facts['load']} at the start, {machine()['load']} at the end"
    title = (
        f"adaptive-router benchmarks{' (quick)' if args.quick else ''} · {facts['cpu']}, "
        f"{facts['cores']} cores, Python {facts['python']} · {secs:.0f} s"
    )
    print_table(results, title)
    output = args.output
    if output is None and not args.quick and not args.only:
        output = RESULTS_MD
    if output is not None:
        write_markdown(output, results, facts, list(argv or sys.argv[1:]), secs)
        print(f"wrote {output}", file=sys.stderr)
    return 1 if args.strict and any(r.ok is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
