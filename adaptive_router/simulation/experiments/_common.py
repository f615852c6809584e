"""What every experiment shares: where results go, markdown tables, progress, plotting set-up."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adaptive_router._imports import needs_extra
from adaptive_router.simulation import SimulationResult

#: Where a checkout keeps the committed results, relative to its root.
CHECKOUT_RESULTS = Path("simulations") / "results"


def default_results_dir(cwd: Path | None = None) -> Path:
    """Where results go without ``--out``: ``simulations/results`` under ``cwd`` (default
    the current directory) when that folder exists, so that runs from a checkout land beside
    the committed results; else ``results`` under ``cwd`` (an installed package has no
    folder of its own worth writing into)."""
    base = Path.cwd() if cwd is None else cwd
    checkout = base / CHECKOUT_RESULTS
    return checkout if checkout.is_dir() else base / "results"


#: ``progress(stage, done, total)``: what the CLI's progress bar is fed.
Progress = Callable[[str, int, int], None]


def output_paths(name: str, out: Path | None, quick: bool) -> tuple[Path, Path]:
    """``(markdown, png)`` paths. Quick runs get a ``-quick`` suffix so that a CI-sized run
    never overwrites the committed full results."""
    folder = Path(out) if out is not None else default_results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-quick" if quick else name
    return folder / f"{stem}.md", folder / f"{stem}.png"


def stage(progress: Progress | None, label: str) -> Callable[[int, int], None] | None:
    """Adapt ``progress`` to :func:`simulate`'s ``progress(done, total)`` for one stage."""
    if progress is None:
        return None

    def report(done: int, total: int) -> None:
        progress(label, done, total)

    return report


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; numbers right-aligned."""

    def cell(v: object) -> str:
        return v if isinstance(v, str) else fmt(v)

    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(":---" if i == 0 else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(v: object, digits: int = 3) -> str:
    """Compact numbers for tables: ``inf`` spelled out, big numbers with separators."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, float) and math.isinf(v):
        return "never"
    if isinstance(v, float) and math.isnan(v):
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.1f}"


def pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def rate(v: float) -> str:
    """Decisions per second, human-sized."""
    if v >= 1e6:
        return f"{v / 1e6:.2f} M/s"
    if v >= 1e3:
        return f"{v / 1e3:.1f} k/s"
    return f"{v:.0f} /s"


def pyplot() -> Any:
    """matplotlib's pyplot on the non-interactive backend (import deferred: the ``plot``
    extra, named in the error when it is missing)."""
    with needs_extra("plot", "Drawing an experiment's PNG"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    return plt


def regret_curve(ax: Any, res: SimulationResult, color: str | None = None) -> None:
    """Mean cumulative regret with its 95% confidence band."""
    lo, hi = res.regret_band()
    (line,) = ax.plot(res.steps, res.regret_mean(), label=res.label, color=color, lw=1.6)
    ax.fill_between(res.steps, lo, hi, color=line.get_color(), alpha=0.2, lw=0)


def command_line(name: str, run: Callable[..., Path], argv: Sequence[str] | None = None) -> None:
    """`python -m adaptive_router.simulation.experiments.<name> [--quick] [--seed N]
    [--horizon T] [--runs R] [--out DIR]`."""
    parser = argparse.ArgumentParser(
        prog=f"python -m adaptive_router.simulation.experiments.{name}"
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized run (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--horizon", type=int, default=None, help="requests per run")
    parser.add_argument("--runs", type=int, default=None, help="independent replications")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"folder (default {default_results_dir()})"
    )
    args = parser.parse_args(argv)
    last = [0.0]

    def progress(label: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > 2.0 or done == total:
            last[0] = now
            print(f"  {label}: {done:,}/{total:,}", file=sys.stderr)

    start = time.perf_counter()
    md = run(
        quick=args.quick,
        seed=args.seed,
        horizon=args.horizon,
        runs=args.runs,
        out=args.out,
        progress=progress,
    )
    print(md.read_text())
    print(f"wrote {md} and {md.with_suffix('.png')} in {time.perf_counter() - start:.1f} s")
