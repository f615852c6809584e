"""Timeouts: running a call for at most so many seconds, sync or async, and the one check
of a timeout argument that every layer uses.

Python cannot stop a thread, so a sync call with a timeout runs in a daemon worker
thread that is abandoned (and counted) when the time is up; an awaitable is cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import itertools
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from adaptive_router.errors import ConfigurationError
from adaptive_router.outcomes import ErrorKind

logger = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = [
    "CallTimeoutError",
    "abandoned_calls",
    "acall_with_timeout",
    "asyncio_sleep",
    "call_with_timeout",
    "check_seconds",
    "check_timeout",
    "hold_workers",
    "run_coroutine",
    "to_daemon_thread",
]


def check_seconds(what: str, value: object) -> float:
    """``value`` as float seconds if it is a finite number > 0 or a ``timedelta``; else a
    :class:`~adaptive_router.errors.ConfigurationError` (a ``ValueError``) naming ``what``."""
    return _checked(what, value, "")


def check_timeout(what: str, value: object) -> float | None:
    """A timeout setting: ``None`` (no timeout) or :func:`check_seconds`."""
    if value is None:
        return None
    return _checked(what, value, " (or None for no timeout)")


def _checked(what: str, value: object, alternative: str) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"{what} must be a number of seconds > 0 or a timedelta{alternative}, got {value!r}"
        )
    if not (math.isfinite(value) and value > 0):
        raise ConfigurationError(
            f"{what} must be a finite number of seconds > 0{alternative}, got {value!r}"
        )
    return float(value)


async def asyncio_sleep(seconds: float) -> None:
    """``asyncio.sleep``, looked up when called: the default ``asleep`` of the retry policy
    and the rate limit (a test that patches ``asyncio.sleep`` reaches it)."""
    await asyncio.sleep(seconds)


class CallTimeoutError(TimeoutError):
    """A call did not finish within its timeout. Classified as ``timeout``."""

    kind = ErrorKind.TIMEOUT

    def __init__(self, timeout_s: float, what: str = "call") -> None:
        super().__init__(f"{what} did not finish within {timeout_s:g} s")
        self.timeout_s = timeout_s


#: Marks appended to a :class:`_Call`'s ``marks``, in the order things happened.
_STARTED, _FINISHED, _GAVE_UP = "started", "finished", "gave up"


class _Call:
    """One :func:`call_with_timeout` call handed to a worker thread.

    A ``Future`` with ``result(timeout)`` costs three times the instructions per call
    (conditions, a waiter, callbacks), an ``Event`` per call nearly four, and one shared
    queue with the state under a lock a third more (``python -m benchmarks.handoff
    --instructions``); this is the hand-off alone: the worker runs the call and releases
    ``done``. Who did what first is told by the order of the marks in ``marks``
    (``list.append`` is atomic), not by locks, which would add their cost to every call
    for the sake of the rare one that times out: the worker marks ``_STARTED`` before the
    call and ``_FINISHED`` after it, a caller whose time is up marks ``_GAVE_UP``. Given
    up first: the call never starts. Given up between the two: abandoned, counted in
    :func:`abandoned_calls` until it ends. Given up after ``_FINISHED``: it had just
    finished; not counted.
    """

    __slots__ = ("call", "ctx", "done", "error", "marks", "started", "timeout_s", "value")

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call = call
        self.ctx = contextvars.copy_context()
        self.done = threading.Lock()
        self.done.acquire()
        self.marks: list[str] = []
        self.value: Any = None
        self.error: BaseException | None = None
        # timeout_s and started are set by give_up, and read by run only after it.

    def run(self) -> bool:
        """Run the call unless its caller gave up first; True if it ran. The caller is
        told (``done`` released) by the worker, once the worker is ready for more work."""
        marks = self.marks
        marks.append(_STARTED)
        if marks[0] is _GAVE_UP:
            return False  # its caller timed out before it started
        try:
            self.value = self.ctx.run(self.call)
        except BaseException as exc:  # handed to the caller, who re-raises it
            self.error = exc
        marks.append(_FINISHED)
        if marks[1] is _GAVE_UP:  # abandoned while it ran: it ends now
            _count_abandoned(-1)
            logger.debug(
                "a call abandoned after its timeout has finished",
                extra={
                    "timeout_s": self.timeout_s,
                    "ran_s": time.monotonic() - self.started,
                    "raised": None if self.error is None else repr(self.error),
                },
            )
        return True

    def give_up(self, timeout_s: float, started: float) -> None:
        """The caller's time is up: the call never starts, or is counted as abandoned
        while it runs on (``started``: ``time.monotonic()`` when it was handed over)."""
        self.timeout_s, self.started = timeout_s, started
        # Counted first: once the mark is in, the worker may end the call and uncount it.
        _count_abandoned(1)
        self.marks.append(_GAVE_UP)
        if self.marks.index(_GAVE_UP) != 1:  # 0: never started; 2: had finished
            _count_abandoned(-1)


_Item = tuple[concurrent.futures.Future[Any], contextvars.Context, Callable[[], Any]] | _Call


class _Worker:
    """One pool thread's inbox: the pool hands each item to one chosen idle worker
    (``None`` tells it to end)."""

    __slots__ = ("inbox", "thread")

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None


class _DaemonThreadPool:
    """A cached pool of daemon threads: reuses idle workers, starts one when none is idle.

    Not a ThreadPoolExecutor, on purpose. A call that hangs past its timeout keeps its
    thread; in a fixed-size executor a few such calls would leave later calls queued
    behind them (timing out without ever running), and executor threads are joined at
    interpreter exit, so one hung call would stop the process from exiting. Here a
    call never waits for a thread, and daemon threads don't hold up exit.

    Idle workers form a stack: each item goes to the worker that parked last (its CPU
    likely still awake, its caches warm: waking a thread that has idled long costs tens
    of µs more on a VM), and the workers a lull leaves unused time out and retire. A
    list's append, pop and remove are atomic: no lock on the way of every call.
    """

    def __init__(self, max_idle: int = 8, idle_timeout_s: float = 30.0) -> None:
        self._idle: list[_Worker] = []
        self._max_idle = max_idle
        self._idle_timeout_s = idle_timeout_s
        self._ids = itertools.count(1)

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        # Like asyncio.to_thread: the call sees the caller's contextvars (request ids, spans).
        self._claim().inbox.put(
            (fut, contextvars.copy_context(), functools.partial(fn, *args, **kwargs))
        )
        return fut

    def start(self, job: _Call) -> None:
        """Hand ``job`` to a worker: call_with_timeout's lean path (no Future to settle)."""
        self._claim().inbox.put(job)

    def _claim(self) -> _Worker:
        try:
            return self._idle.pop()
        except IndexError:
            return self._spawn()

    def _spawn(self) -> _Worker:
        worker = _Worker()
        worker.thread = threading.Thread(
            target=self._run,
            args=(worker,),
            name=f"adaptive-router-call-{next(self._ids)}",
            daemon=True,
        )
        worker.thread.start()
        return worker

    def retire_idle(self, join_s: float = 1.0) -> int:
        """End every idle worker now (busy ones retire when their call ends, after the
        idle timeout); returns how many ended. The pool starts new ones when needed."""
        retired: list[_Worker] = []
        while True:
            try:
                worker = self._idle.pop()  # atomic: a worker is claimed or retired, not both
            except IndexError:
                break
            worker.inbox.put(None)
            retired.append(worker)
        for worker in retired:
            if worker.thread is not None and worker.thread is not threading.current_thread():
                worker.thread.join(join_s)
        return len(retired)

    def _run(self, me: _Worker) -> None:
        inbox, idle = me.inbox, self._idle
        while True:
            try:
                # Positional: a keyword argument makes the call build a kwargs dict.
                item = inbox.get(True, self._idle_timeout_s)
            except queue.Empty:
                try:
                    idle.remove(me)  # nobody claimed this worker: retire it
                except ValueError:
                    continue  # claimed just now: its item is on the way
                return
            if item is None:  # retired by retire_idle
                return
            if isinstance(item, _Call):
                ran = item.run()
                # Park first, then wake the caller: the caller waits for the GIL until
                # this thread blocks in get(), so whatever runs after the release is
                # added to every call's latency.
                retire = self._park(me)
                if ran:
                    item.done.release()
            else:
                fut, ctx, call = item
                if fut.set_running_or_notify_cancel():
                    try:
                        result = ctx.run(call)
                    except BaseException as exc:  # handed to the caller, who re-raises it
                        fut.set_exception(exc)
                    else:
                        fut.set_result(result)
                del fut, ctx, call
                retire = self._park(me)
            del item  # don't keep the last result alive while idle
            if retire:
                return

    def forget_workers(self) -> None:
        """Drop every idle worker: in a forked child their threads do not exist, and an
        item handed to one would never run. The next call starts a worker."""
        self._idle = []

    def _park(self, me: _Worker) -> bool:
        """Put this worker back on the idle stack; True when enough are idle and it
        should retire instead (two parking at once may both stay: the bound is loose)."""
        if len(self._idle) >= self._max_idle:
            return True
        self._idle.append(me)
        return False


class _LoopThread:
    """One event loop on a daemon thread, for coroutines that sync code must run (an
    async path under ``run()``, a judge whose path has only an async client).

    ``asyncio.run`` per call would give each call a new loop; an async client's
    connection pool belongs to the loop it first ran on, so every call after the first
    failed with "Event loop is closed". Here every such call runs on this one loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coro: Awaitable[T]) -> T:
        """Run ``coro`` on the loop (started at the first call) and wait for its result."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="adaptive-router-loop", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            loop = self._loop
        return asyncio.run_coroutine_threadsafe(_awaited(coro), loop).result()

    def stop(self) -> None:
        """End the loop and its thread (the last router closed); a later call starts anew."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()

    def forget(self) -> None:
        """In a forked child: the parent's loop thread is not there."""
        self._lock = threading.Lock()
        self._loop = self._thread = None


async def _awaited(aw: Awaitable[T]) -> T:
    return await aw


def run_coroutine(
    coro: Awaitable[T],
    inside_a_loop: str = "a coroutine cannot be run synchronously inside an event loop",
) -> T:
    """Run ``coro`` from sync code on the shared loop thread and return its result (see
    :class:`_LoopThread`); in a thread that runs an event loop, a RuntimeError saying
    ``inside_a_loop`` instead (blocking that loop would deadlock a coroutine that needs
    it: the async API is the caller's there)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _LOOP.run(coro)
    if asyncio.iscoroutine(coro):
        coro.close()
    raise RuntimeError(inside_a_loop)


_POOL = _DaemonThreadPool()
_LOOP = _LoopThread()
_abandoned_lock = threading.Lock()
_abandoned = 0
_holders_lock = threading.Lock()
_holders = 0


def hold_workers() -> Callable[[], None]:
    """Keep the worker threads of timed calls (and the loop thread of
    :func:`run_coroutine`) for reuse until the returned function is called (a router
    holds them from construction to close); when the last holder lets go the idle workers
    and the loop end at once, so no thread of ours outlives the last router."""
    global _holders
    with _holders_lock:
        _holders += 1
    released = False

    def release() -> None:
        global _holders
        nonlocal released
        with _holders_lock:
            if released:
                return
            released = True
            _holders -= 1
            last = _holders == 0
        if last:
            _POOL.retire_idle()
            _LOOP.stop()

    return release


def abandoned_calls() -> int:
    """How many timed-out sync calls are still running in their worker threads."""
    return _abandoned


def _count_abandoned(change: int) -> None:
    global _abandoned
    with _abandoned_lock:
        _abandoned += change


def _after_fork_in_child() -> None:
    # The parent's workers, and the abandoned calls running on them, are not in the child.
    global _abandoned_lock, _abandoned
    _POOL.forget_workers()
    _LOOP.forget()
    _abandoned_lock = threading.Lock()
    _abandoned = 0


os.register_at_fork(after_in_child=_after_fork_in_child)


def call_with_timeout(fn: Callable[..., T], timeout_s: float, /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a worker thread; wait at most ``timeout_s`` seconds.

    Returns its result or re-raises its exception. When the time is up it raises
    :class:`CallTimeoutError` (a ``TimeoutError``, kind ``timeout``) at once, but Python
    cannot stop a thread: the call goes on in its (daemon) worker thread until it
    returns by itself, and its result is discarded. Give SDK clients their own timeout
    too, so abandoned calls end; :func:`abandoned_calls` counts those still running.
    """
    # The common case checked inline (this runs for every call of a sync path).
    seconds = (
        timeout_s
        if type(timeout_s) is float and 0.0 < timeout_s < math.inf
        else check_seconds("timeout", timeout_s)
    )
    job = _Call(functools.partial(fn, *args, **kwargs) if args or kwargs else fn)
    _POOL.start(job)
    # Positional: a keyword argument builds a kwargs dict for the lock to parse, on every
    # call (~1.8k of the hand-off's ~16.4k instructions with the worker's get above).
    if not job.done.acquire(True, seconds):
        # Handed over about `seconds` ago (for the log line of an abandoned call's end).
        job.give_up(seconds, time.monotonic() - seconds)
        raise CallTimeoutError(seconds)
    if job.error is not None:
        error, job.error = job.error, None
        raise error
    value: T = job.value
    return value


async def acall_with_timeout(
    coro_fn: Callable[..., Awaitable[T]], timeout_s: float, /, *args: Any, **kwargs: Any
) -> T:
    """Await ``coro_fn(*args, **kwargs)`` for at most ``timeout_s`` seconds.

    On timeout the awaitable is cancelled and :class:`CallTimeoutError` is raised.
    Uses ``asyncio.wait_for`` (``asyncio.timeout`` needs Python 3.11). A sync function
    can be given a timeout from async code with
    ``await acall_with_timeout(to_daemon_thread, t, fn, *args)``.
    """
    seconds = check_seconds("timeout", timeout_s)
    try:
        return await asyncio.wait_for(coro_fn(*args, **kwargs), seconds)
    except TimeoutError as exc:
        # wait_for's own timeout is raised from the CancelledError of the inner task;
        # a TimeoutError the coroutine raised itself is passed on as it is.
        if isinstance(exc.__cause__, asyncio.CancelledError):
            raise CallTimeoutError(seconds) from None
        raise


async def to_daemon_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a sync function in the shared daemon-thread pool and await its result.

    Like ``asyncio.to_thread``, but a call that hangs never takes a thread from the
    loop's bounded default executor, and never delays interpreter exit.
    """
    return await asyncio.wrap_future(_POOL.submit(fn, *args, **kwargs))
