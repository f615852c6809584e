"""Start-up cost: what importing adaptive-router, starting a router and asking the command
line for help cost a process.

Every sample is a fresh interpreter (``sys.executable``); the rounds interleave the
measures, so that load on a shared machine falls on all of them alike. The first round
warms the disk cache and writes the bytecode cache (``PYTHONDONTWRITEBYTECODE`` is
dropped for the children: an installed package has its ``.pyc`` files, which pip writes,
and a checkout's would otherwise be compiled anew at every start); it is not counted. The
**median** of the rounds is compared with the target; the minimum is shown beside it.

- ``import httpx`` and ``import adaptive_router``: the import statement alone, timed in
  the fresh interpreter (its own start-up, the same for both, is left out). Target: at
  most 1.5x ``import httpx``. ``from adaptive_router import Router`` (numpy and the
  resilience libraries with it) is shown too.
- A router ready: from launching the interpreter to a constructed ``Router`` on
  ``memory://`` with default settings (the child says so on stdout). Target: 0.3 s.
- ``adaptive-router --help``: the console script, from launch to exit. Target: 0.5 s.

Run: ``python -m benchmarks.startup [--rounds 15]`` (or ``python -m benchmarks.run --only
startup``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path as FsPath

from benchmarks.common import Result

SECTION = "startup"
#: The children's environment: with the bytecode cache, as an installed package runs.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
#: ``import adaptive_router`` may take at most this many times ``import httpx``.
IMPORT_RATIO = 1.5
HELP_S = 0.5
ROUTER_S = 0.3

_TIMED_IMPORT = (
    "import time\n"
    "t = time.perf_counter()\n"
    "{statement}\n"
    "t = time.perf_counter() - t\n"
    "import sys\n"
    "print(t, len(sys.modules))\n"
)
_ROUTER = (
    "from adaptive_router import Router\n"
    "def answer():\n"
    "    return 42\n"
    "router = Router([answer], success_fn=bool, task='startup', store='memory://')\n"
    "print('ready', flush=True)\n"
    "router.close()\n"
)


def _timed_import(statement: str) -> tuple[float, int]:
    """Seconds the import statement took in a fresh interpreter, and the modules loaded."""
    out = subprocess.run(
        [sys.executable, "-c", _TIMED_IMPORT.format(statement=statement)],
        check=True,
        capture_output=True,
        text=True,
        env=ENV,
    ).stdout.split()
    return float(out[0]), int(out[1])


def _router_ready() -> float:
    """Seconds from launching an interpreter to its Router being constructed."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _ROUTER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    ready = time.perf_counter() - started
    _, err = proc.communicate()
    if line.strip() != "ready" or proc.returncode != 0:
        raise RuntimeError(f"the router did not start: {err.strip()[-500:]}")
    return ready


def _help_command() -> list[str]:
    script = FsPath(sys.executable).with_name("adaptive-router")
    if script.is_file():
        return [str(script), "--help"]
    # Not installed as a console script (a bare checkout): the same entry point.
    return [sys.executable, "-c", "from adaptive_router.cli import main; main()", "--help"]


def _help() -> float:
    """Seconds ``adaptive-router --help`` takes, launch to exit."""
    command = _help_command()
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=ENV)
    return time.perf_counter() - started


def measure(rounds: int) -> dict[str, list[float]]:
    """Each measure's samples (seconds; ``*_modules``: modules loaded), ``rounds`` each."""
    imports = {
        "httpx": "import httpx",
        "package": "import adaptive_router",
        "router_import": "from adaptive_router import Router",
    }
    samples: dict[str, list[float]] = {
        k: [] for k in [*imports, *(f"{k}_modules" for k in imports), "router", "help"]
    }
    probes: dict[str, Callable[[], float]] = {"router": _router_ready, "help": _help}
    for i in range(rounds + 1):
        round_: dict[str, float] = {}
        for key, statement in imports.items():
            round_[key], round_[f"{key}_modules"] = _timed_import(statement)
        for key, probe in probes.items():
            round_[key] = probe()
        if i:  # the first round warms the disk cache
            for key, value in round_.items():
                samples[key].append(value)
    return samples


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def run(quick: bool = False) -> list[Result]:
    """The start-up rows: import ratio, router ready, ``--help``, and what they load."""
    rounds = 3 if quick else 15
    return rows(measure(rounds), rounds)


def rows(s: dict[str, list[float]], rounds: int) -> list[Result]:
    """The result rows of ``measure``'s samples."""
    med = {k: statistics.median(v) for k, v in s.items()}
    low = {k: min(v) for k, v in s.items()}
    note = f"median of {rounds} fresh interpreters (min {{}})"
    ratio = med["package"] / med["httpx"]
    router_ratio = med["router_import"] / med["httpx"]
    return [
        Result(
            SECTION,
            "import httpx (reference)",
            "—",
            _ms(med["httpx"]),
            None,
            note.format(_ms(low["httpx"]))
            + f"; {med['httpx_modules']:.0f} modules; load average {os.getloadavg()[0]:.1f}",
        ),
        Result(
            SECTION,
            "import adaptive_router",
            f"≤ {IMPORT_RATIO}x import httpx",
            f"{_ms(med['package'])} = {ratio:.2f}x",
            ratio <= IMPORT_RATIO,
            note.format(_ms(low["package"])) + f"; {med['package_modules']:.0f} modules",
        ),
        Result(
            SECTION,
            "from adaptive_router import Router",
            "—",
            f"{_ms(med['router_import'])} = {router_ratio:.2f}x httpx",
            None,
            note.format(_ms(low["router_import"]))
            + f"; {med['router_import_modules']:.0f} modules (numpy, asyncio, tenacity, wrapt)",
        ),
        Result(
            SECTION,
            "Router on memory:// ready, cold interpreter",
            f"≤ {_ms(ROUTER_S)}",
            _ms(med["router"]),
            med["router"] <= ROUTER_S,
            note.format(_ms(low["router"]))
            + "; launch to constructed, default settings (metrics on: prometheus-client is "
            "installed)",
        ),
        Result(
            SECTION,
            "adaptive-router --help",
            f"< {_ms(HELP_S)}",
            _ms(med["help"]),
            med["help"] < HELP_S,
            note.format(_ms(low["help"])) + "; launch to exit",
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="fresh interpreters per measure")
    args = parser.parse_args(argv)
    for r in rows(measure(args.rounds), args.rounds):
        print(f"{r.measure}: {r.value} (target {r.target}, {r.verdict}; {r.note})")


if __name__ == "__main__":
    main()
