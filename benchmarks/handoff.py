"""``call_with_timeout``'s thread hand-off against simpler ones, in time and in instructions.

    python -m benchmarks.handoff                    # paired timing, 5 rounds of 20,000
    python -m benchmarks.handoff --instructions     # and callgrind's instruction counts

A sync path with a timeout runs in a worker thread, so every call pays a hand-off. This
compares the library's (``resilience.timeouts``: a stack of parked daemon workers, one
inbox each, a ``Lock`` per call and the order of marks in a list for who came first) with
the simpler designs one would reach for first, each a complete hand-off that enforces the
timeout and returns the value:

* ``bare`` — one worker, a ``SimpleQueue`` there and a ``Lock`` back: no timeout, no
  pool, no context; the floor (the ``hotpath`` section's hand-off).
* ``current`` — :func:`adaptive_router.resilience.call_with_timeout`.
* ``future`` — the same daemon pool's ``submit`` and ``Future.result(timeout)``.
* ``executor`` — ``concurrent.futures.ThreadPoolExecutor`` and ``Future.result(timeout)``
  (not usable as it is: a hung call holds one of its fixed workers, and its workers are
  joined at interpreter exit).
* ``queue_lock`` — daemon workers waiting on one shared ``SimpleQueue``, the idle count
  and each call's state under one lock, a ``Lock`` per call.
* ``queue_event`` — the same with a ``threading.Event`` per call.

Timing: the calls of one round are timed back to back in one loop (the order rotating),
each figure the median of (hand-off − the direct call) over the round. Instructions:
``valgrind --tool=callgrind`` runs a child process that makes each call N and 2N times
after a warm-up; the difference over N is the instructions per call, every thread
counted (the caller's and the worker's). Unlike the times, these do not depend on what
else the machine runs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextvars
import glob
import os
import pathlib
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from adaptive_router.resilience.timeouts import _POOL, CallTimeoutError, call_with_timeout
from benchmarks.common import HandOff, paired

TIMEOUT_S = 30.0


def noop() -> bool:
    return True


def future(fn: Callable[[], Any]) -> Any:
    fut = _POOL.submit(fn)
    try:
        return fut.result(TIMEOUT_S)
    except concurrent.futures.TimeoutError:
        if fut.done():
            raise  # the call's own TimeoutError
        fut.cancel()
        raise CallTimeoutError(TIMEOUT_S) from None


class Executor:
    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=32)

    def __call__(self, fn: Callable[[], Any]) -> Any:
        fut = self._pool.submit(contextvars.copy_context().run, fn)
        try:
            return fut.result(TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            if fut.done():
                raise
            fut.cancel()
            raise CallTimeoutError(TIMEOUT_S) from None


_WAITING, _RUNNING, _FINISHED, _GAVE_UP = range(4)


class _Job:
    __slots__ = ("call", "ctx", "done", "error", "state", "value")

    def __init__(self, call: Callable[[], Any], done: threading.Lock | threading.Event) -> None:
        self.call = call
        self.ctx = contextvars.copy_context()
        self.done = done
        self.state = _WAITING
        self.value: Any = None
        self.error: BaseException | None = None


class SharedQueue:
    """Daemon workers on one shared queue; a worker is started when none is idle, and one
    idle for ``idle_timeout_s`` retires. The idle count and each job's state change under
    one lock; ``event`` hands the result back with an Event instead of a Lock."""

    def __init__(self, event: bool, idle_timeout_s: float = 30.0, max_idle: int = 8) -> None:
        self.event = event
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.idle = 0
        self.idle_timeout_s = idle_timeout_s
        self.max_idle = max_idle

    def __call__(self, fn: Callable[[], Any]) -> Any:
        done: threading.Lock | threading.Event
        if self.event:
            done = threading.Event()
        else:
            done = threading.Lock()
            done.acquire()
        job = _Job(fn, done)
        with self.lock:
            spawn = not self.idle
            if not spawn:
                self.idle -= 1
        self.jobs.put(job)
        if spawn:
            threading.Thread(target=self._run, daemon=True).start()
        ok = (
            done.wait(TIMEOUT_S)
            if isinstance(done, threading.Event)
            else done.acquire(True, TIMEOUT_S)
        )
        if not ok:
            with self.lock:
                job.state = _GAVE_UP
            raise CallTimeoutError(TIMEOUT_S)
        if job.error is not None:
            raise job.error
        return job.value

    def _run(self) -> None:
        lock, jobs = self.lock, self.jobs
        while True:
            try:
                job = jobs.get(True, self.idle_timeout_s)
            except queue.Empty:
                with lock:
                    if self.idle:
                        self.idle -= 1
                        return
                continue  # claimed just now: its job is on the way
            with lock:
                go = job.state == _WAITING
                if go:
                    job.state = _RUNNING
            if go:
                try:
                    job.value = job.ctx.run(job.call)
                except BaseException as exc:
                    job.error = exc
            with lock:
                if job.state == _RUNNING:
                    job.state = _FINISHED
                retire = self.idle >= self.max_idle
                if not retire:
                    self.idle += 1
            if go:
                if isinstance(job.done, threading.Event):
                    job.done.set()
                else:
                    job.done.release()
            del job
            if retire:
                return


def variants() -> dict[str, Callable[[], Callable[[], Any]]]:
    """Each variant's name -> a factory of its no-op call (built only when measured)."""

    def bare() -> Callable[[], Any]:
        hand = HandOff()
        return lambda: hand(noop)

    def executor() -> Callable[[], Any]:
        pool = Executor()
        return lambda: pool(noop)

    def shared(event: bool) -> Callable[[], Callable[[], Any]]:
        def make() -> Callable[[], Any]:
            pool = SharedQueue(event)
            return lambda: pool(noop)

        return make

    return {
        "bare": bare,
        "current": lambda: lambda: call_with_timeout(noop, TIMEOUT_S),
        "future": lambda: lambda: future(noop),
        "executor": executor,
        "queue_lock": shared(False),
        "queue_event": shared(True),
    }


def timing(n: int, rounds: int) -> None:
    import numpy as np

    made = {name: make() for name, make in variants().items()}
    names = list(made)
    print("µs per call above the direct call (median of the round):")
    print("round  " + "  ".join(f"{k:>11}" for k in names))
    for i in range(rounds):
        t = paired([noop, *made.values()], n, max(n // 10, 100))
        meds = [float(np.median(t[:, j + 1] - t[:, 0])) / 1000.0 for j in range(len(names))]
        print(f"{i + 1:>5}  " + "  ".join(f"{m:11.1f}" for m in meds), flush=True)


def _child(name: str, n: int) -> None:
    call = variants()[name]()
    for _ in range(1_000):
        call()
    for _ in range(n):
        call()


def instructions(n: int) -> None:
    if shutil.which("valgrind") is None:
        sys.exit("--instructions needs valgrind (apt-get install valgrind)")
    print("instructions per call, every thread (callgrind; N and 2N calls after a warm-up):")
    base: float | None = None
    for name in ["direct", *variants()]:
        totals = []
        for calls in (n, 2 * n):
            with tempfile.TemporaryDirectory(prefix="ar-handoff-") as tmp:
                out = os.path.join(tmp, "cg.out")
                subprocess.run(
                    [
                        "valgrind",
                        "--tool=callgrind",
                        "--separate-threads=yes",
                        f"--callgrind-out-file={out}",
                        sys.executable,
                        "-m",
                        "benchmarks.handoff",
                        "--child",
                        name,
                        str(calls),
                    ],
                    check=True,
                    capture_output=True,
                    env={**os.environ, "PYTHONHASHSEED": "0"},
                )
                totals.append(
                    sum(
                        int(m.group(1))
                        for f in glob.glob(out + "*")
                        if (m := re.search(r"^totals: (\d+)", pathlib.Path(f).read_text(), re.M))
                    )
                )
        per_call = (totals[1] - totals[0]) / n
        if base is None:
            base = per_call
            print(f"{'direct':>12}  {per_call:9,.0f}  (the loop and the no-op)")
        else:
            print(f"{name:>12}  {per_call - base:9,.0f}  above the direct call", flush=True)


def _direct_child(n: int) -> None:
    for _ in range(1_000 + n):
        noop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="calls per round (timing)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="also count instructions")
    parser.add_argument("--calls", type=int, default=2_000, help="N for --instructions")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, calls = args.child[0], int(args.child[1])
        if name == "direct":
            _direct_child(calls)
        else:
            _child(name, calls)
        return
    timing(args.n, args.rounds)
    if args.instructions:
        instructions(args.calls)


if __name__ == "__main__":
    main()
