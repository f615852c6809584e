"""Shared pieces: result rows, paired timing, the bare thread hand-off, no-op paths, PostgreSQL
schemas, RSS, machine facts."""

from __future__ import annotations

import inspect
import json
import logging
import os
import platform
import queue
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import numpy as np

from adaptive_router import Path

#: The project root (parent of ``benchmarks/``): workers run with it as cwd.
ROOT = FsPath(__file__).resolve().parent.parent
#: Generated databases kept between runs (gitignored).
CACHE = ROOT / "benchmarks" / ".cache"
#: PostgreSQL server the benchmarks use; each section works in a schema of its own.
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_DSN = os.environ.get(
    "BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
)
#: Router path names used throughout (3 paths, as in the issue).
PATH_NAMES = ("p0", "p1", "p2")


@dataclass
class Result:
    """One row of the results table.

    ``ok`` is True/False against ``target``, or None for an informational row or a
    skipped measure.
    """

    section: str
    measure: str
    target: str
    value: str
    ok: bool | None
    note: str = ""

    @property
    def verdict(self) -> str:
        """``pass``, ``FAIL``, ``info`` or ``skipped``."""
        if self.ok is None:
            return "skipped" if self.value == "—" else "info"
        return "pass" if self.ok else "FAIL"


def quiet_library_logs() -> None:
    """Fallback warnings from failing no-op paths would flood stderr and skew timings."""
    logging.getLogger("adaptive_router").setLevel(logging.ERROR)


def path_timeout_kwargs() -> dict[str, Any]:
    """``{"timeout": None}`` if ``Path`` takes a timeout (a no-op must not get one), else ``{}``."""
    return {"timeout": None} if "timeout" in inspect.signature(Path).parameters else {}


def make_path(fn: Callable[..., Any], name: str) -> Path:
    """``Path(fn, name=...)``, with ``timeout=None`` when ``Path`` has that parameter."""
    return Path(fn, name=name, **path_timeout_kwargs())


def noop() -> bool:
    """The path under test: does nothing, succeeds."""
    return True


async def anoop() -> bool:
    """The async path under test."""
    return True


def always_ok(result: object) -> bool:
    """A success function that accepts anything."""
    return True


def noop_paths() -> list[Path]:
    """Three sync no-op paths; the first in sampled order always succeeds."""
    return [make_path(noop, n) for n in PATH_NAMES]


def anoop_paths() -> list[Path]:
    """Three async no-op paths."""
    return [make_path(anoop, n) for n in PATH_NAMES]


def pct_us(samples_ns: Sequence[int] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile of nanosecond samples, in microseconds."""
    return float(np.percentile(np.asarray(samples_ns, dtype=np.float64), q)) / 1000.0


def fmt_us(us: float) -> str:
    """Microseconds, or milliseconds when large."""
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.1f} µs"


def fmt_rate(per_s: float) -> str:
    """A rate with a thousands separator."""
    return f"{per_s:,.0f}/s"


def fmt_mb(n_bytes: float) -> str:
    """Bytes as MB (10^6)."""
    return f"{n_bytes / 1e6:+.1f} MB" if n_bytes < 0 else f"{n_bytes / 1e6:.1f} MB"


def rss_bytes() -> int:
    """Resident set size of this process (psutil if installed, else /proc/self/statm)."""
    try:
        import psutil
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.Process().memory_info().rss)


# -- PostgreSQL ---------------------------------------------------------------------------
def pg_reachable() -> bool:
    """True when the benchmark PostgreSQL answers."""
    try:
        import psycopg

        with psycopg.connect(PG_DSN):
            return True
    except Exception:
        return False


def pg_version() -> str | None:
    """``server_version`` of the benchmark PostgreSQL, or None."""
    try:
        import psycopg

        with psycopg.connect(PG_DSN) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]).split()[0] if row else None
    except Exception:
        return None


@contextmanager
def pg_schema(label: str) -> Iterator[str]:
    """A URL whose search_path is a fresh ``ar_bench_<label>_<uuid>`` schema, dropped after."""
    import psycopg

    schema = f"ar_bench_{label}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def count_outcomes(url: str, task: str | None = None) -> int:
    """Rows in the ``outcomes`` table (of one task), read through a fresh engine."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            q = "SELECT count(*) FROM outcomes"
            if task is None:
                return int(conn.execute(sa.text(q)).scalar_one())
            return int(conn.execute(sa.text(q + " WHERE task = :t"), {"t": task}).scalar_one())
    finally:
        engine.dispose()


# -- subprocess workers --------------------------------------------------------------------
def spawn_worker(module: str, *args: str) -> subprocess.Popen[str]:
    """Start ``python -m benchmarks.<module> worker ARGS`` with pipes on stdin/stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", f"benchmarks.{module}", "worker", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def read_json_line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The next JSON line a worker prints (fails loudly if it died)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        raise RuntimeError(f"benchmark worker {proc.args!r} exited with {proc.returncode}")
    data: dict[str, Any] = json.loads(line)
    return data


def emit(data: dict[str, Any]) -> None:
    """Print one JSON line for the parent and flush."""
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def stop_workers(procs: Sequence[subprocess.Popen[str]]) -> None:
    """Kill workers still running (only our own children, by pid)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        with suppress(Exception):
            p.wait(timeout=5)


# -- machine -------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    """CPU model, cores, Python, SQLite and PostgreSQL versions, load average."""
    cpu = platform.processor() or platform.machine()
    with suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version() or "unreachable",
        "load": load,
    }


def now_s() -> float:
    """Monotonic seconds (section timing)."""
    return time.perf_counter()


class HandOff:
    """The floor of an enforceable timeout: a call sent to a worker thread through a
    ``SimpleQueue``, its result handed back by releasing a ``Lock``."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[tuple[Callable[[], Any], list[Any], threading.Lock]]
        self._work = queue.SimpleQueue()
        threading.Thread(target=self._worker, daemon=True).start()

    def _worker(self) -> None:
        while True:
            fn, box, done = self._work.get()
            box.append(fn())
            done.release()

    def __call__(self, fn: Callable[[], Any]) -> Any:
        done = threading.Lock()
        done.acquire()
        box: list[Any] = []
        self._work.put((fn, box, done))
        done.acquire()
        return box[0]


def paired(calls: list[Callable[[], Any]], n: int, warm: int) -> np.ndarray:
    """``(n, len(calls))`` nanoseconds: each row times every call once, back to back,
    rotating which goes first."""
    pc = time.perf_counter_ns
    k = len(calls)
    for _ in range(warm):
        for call in calls:
            call()
    out = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        shift = i % k
        for j in range(k):
            c = (j + shift) % k
            t0 = pc()
            calls[c]()
            out[i, c] = pc() - t0
    return out
