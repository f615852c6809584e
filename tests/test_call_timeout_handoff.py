"""call_with_timeout's lean hand-off (a Lock per call instead of a Future, marks instead
of locks for who came first): the edges."""

from __future__ import annotations

import functools
import operator
import threading
import time

import pytest

from adaptive_router.resilience import CallTimeoutError, abandoned_calls, call_with_timeout
from adaptive_router.resilience import timeouts as resilience


def test_a_call_its_timed_out_caller_gave_up_on_never_runs() -> None:
    baseline = abandoned_calls()
    ran: list[int] = []
    job = resilience._Call(lambda: ran.append(1))
    job.give_up(0.1, time.monotonic())  # what the caller does when time is up first
    assert abandoned_calls() == baseline  # never started: nothing left running
    assert job.run() is False
    assert ran == []
    assert not job.done.acquire(blocking=False)  # and the caller is not woken with a result


def test_a_call_abandoned_while_it_runs_is_counted_until_it_ends() -> None:
    baseline = abandoned_calls()
    entered, leave = threading.Event(), threading.Event()

    def slow() -> str:
        entered.set()
        leave.wait(5)
        return "late"

    job = resilience._Call(slow)
    worker = threading.Thread(target=job.run)
    worker.start()
    assert entered.wait(5)
    job.give_up(0.1, time.monotonic())
    assert abandoned_calls() == baseline + 1
    leave.set()
    worker.join(5)
    assert abandoned_calls() == baseline
    assert job.value == "late"


def test_a_call_that_finishes_before_it_is_abandoned_is_not_counted() -> None:
    baseline = abandoned_calls()
    job = resilience._Call(lambda: "done")
    assert job.run() is True
    job.give_up(0.1, time.monotonic())
    assert abandoned_calls() == baseline


def test_abandoned_count_returns_to_zero_when_timeouts_race_completions() -> None:
    """Timeouts about as long as the calls: each call either returns, times out while
    running (abandoned, then finishes) or finishes between the two; the count must end
    where it began, and every result returned must be its own call's."""
    baseline = abandoned_calls()
    timeouts = 0

    def nap(i: int) -> int:
        time.sleep(0.0005)
        return i

    for i in range(300):
        try:
            assert call_with_timeout(nap, 0.0005, i) == i
        except CallTimeoutError:
            timeouts += 1
    deadline = time.monotonic() + 5
    while abandoned_calls() != baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    assert abandoned_calls() == baseline
    assert timeouts > 0


def test_workers_retiring_lose_no_call_with_timeout() -> None:
    pool = resilience._DaemonThreadPool(max_idle=2, idle_timeout_s=0.001)
    failures: list[str] = []

    def caller(i: int) -> None:
        for j in range(200):
            job = resilience._Call(functools.partial(operator.mul, i, j))
            pool.start(job)
            if not job.done.acquire(timeout=5):
                failures.append(f"call {i},{j} never ran")
            elif job.value != i * j:
                failures.append(f"call {i},{j} returned {job.value!r}")

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_the_callee_exception_keeps_its_identity_and_traceback() -> None:
    class Boom(Exception):
        pass

    def fail() -> None:
        raise Boom("x")

    with pytest.raises(Boom) as info:
        call_with_timeout(fail, 1.0)
    assert any(frame.name == "fail" for frame in info.traceback)
