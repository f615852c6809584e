"""An attempt's usage from the SDK calls captured while it ran (``Router(capture_usage=...)``).

The request loops open a :func:`metered` scope around each call of a path; the calls an
attempt made (a retried attempt makes several, each billed) are gathered in its
:class:`Bill` and become one :class:`Usage` by :func:`captured_usage`, used only when the
path reported no usage of its own (a :class:`~adaptive_router.Result`, a provider path,
an exception's ``usage``).

Late calls: a call that finishes after its attempt gave up on it (the attempt timed out,
but the provider still bills the call) reaches the bill through the capture scope's
``on_late``. The bill then recomputes the attempt's usage over all its calls, writes it
into the attempt's :class:`Outcome` (the same object the router records) and asks the
router to rewrite the stored row (:meth:`Store.update_usage`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Literal

from adaptive_router.capture import CallUsage, install, scope
from adaptive_router.costs import Pricer
from adaptive_router.outcomes import Outcome, Usage

__all__ = ["Bill", "CaptureMode", "captured_usage", "metered", "start_capture"]

logger = logging.getLogger(__name__)

#: ``Router(capture_usage=...)``: off, on, or on and asking chat streams for their usage.
CaptureMode = bool | Literal["include_usage"]


def start_capture(capture_usage: object) -> CaptureMode:
    """Check ``Router(capture_usage=...)`` and, unless False, hook the SDKs (idempotent:
    every router shares the one set of hooks)."""
    if not isinstance(capture_usage, bool) and capture_usage != "include_usage":
        raise TypeError(
            f"capture_usage must be True, False or 'include_usage', got {capture_usage!r}"
        )
    if capture_usage:
        install()
    return capture_usage


class Bill:
    """The SDK calls of one attempt, and where its usage goes once the attempt settled.

    Thread-safe: late calls arrive on the threads that made them.
    """

    __slots__ = ("_lock", "_outcome", "_rebill", "calls", "include_usage", "model", "pricer")

    def __init__(
        self,
        pricer: Pricer,
        model: str | None,
        rebill: Callable[[Outcome], None] | None = None,
        *,
        include_usage: bool = False,
    ) -> None:
        self.calls: list[CallUsage] = []
        self.pricer = pricer
        self.model = model
        self.include_usage = include_usage
        self._rebill = rebill
        self._outcome: Outcome | None = None
        self._lock = threading.Lock()

    def _add(self, calls: list[CallUsage]) -> None:
        # By identity: a call that ended as its scope closed may come both ways.
        with self._lock:
            for call in calls:
                if not any(c is call for c in self.calls):
                    self.calls.append(call)

    def usage(self) -> Usage | None:
        """The attempt's usage so far (None: it made no metered call)."""
        with self._lock:
            calls = list(self.calls)
        return captured_usage(calls, self.pricer, self.model)

    def settled(self, outcome: Outcome) -> None:
        """The attempt's outcome, built from :meth:`usage`: late calls update it."""
        with self._lock:
            self._outcome = outcome

    def late(self, call: CallUsage) -> None:
        """``on_late`` of the attempt's scopes: a call finished after its scope closed."""
        self._add([call])
        with self._lock:
            outcome = self._outcome
            if outcome is None:  # the attempt is still running: it will count the call
                return
            usage = captured_usage(list(self.calls), self.pricer, self.model)
            if usage is None:
                return
            # The outcome object is the one the router records: a row not written yet
            # is written with these values; a written one is rewritten by rebill.
            outcome.input_tokens = usage.input_tokens
            outcome.output_tokens = usage.output_tokens
            outcome.cost_usd = usage.cost_usd
            outcome.model = usage.model
            outcome.cache_read_tokens = usage.cache_read_tokens
            outcome.cache_write_tokens = usage.cache_write_tokens
        logger.info(
            "late SDK call billed to request %s attempt %d of path %s: %s tokens in, %s out",
            outcome.request_id,
            outcome.attempt,
            outcome.path,
            call.input_tokens,
            call.output_tokens,
            extra={
                "request_id": outcome.request_id,
                "attempt": outcome.attempt,
                "path": outcome.path,
                "model": call.model,
            },
        )
        if self._rebill is not None:
            self._rebill(outcome)


@contextlib.contextmanager
def metered(bill: Bill | None) -> Iterator[None]:
    """Meter the SDK calls of this block into ``bill`` (``None``: capture is off).

    The scope is a contextvar that ``call_with_timeout``, ``to_daemon_thread`` and
    asyncio tasks copy, so a path's worker thread records into it. A call still running
    when the block ends (its attempt timed out) reaches the bill later, as a late call.
    """
    if bill is None:
        yield
        return
    got = None
    try:
        with scope(bill.late, include_usage=bill.include_usage) as got:
            yield
    finally:
        # After the scope closed: a call ending from now on is a late call (no gap).
        if got is not None:
            bill._add(got.calls)


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def captured_usage(calls: list[CallUsage], pricer: Pricer, model: str | None) -> Usage | None:
    """The usage of an attempt's captured ``calls``, or None when it made none.

    Tokens are summed over the calls that reported them (``None`` when none did); the
    cost is each call priced at its own model (``model``, the path's, when the call's is
    unknown), and unknown as soon as one call's usage or price is unknown, so a
    partial sum is never shown as the attempt's cost.
    """
    if not calls:
        return None
    cost: float | None = 0.0
    for c in calls:
        price = (
            pricer.cost(
                c.model or model,
                c.input_tokens,
                c.output_tokens,
                cache_read_tokens=c.cache_read_tokens,
                cache_write_tokens=c.cache_write_tokens,
            )
            if c.known
            else None
        )
        cost = None if price is None or cost is None else cost + price
    models = {c.model for c in calls if c.model}
    return Usage(
        input_tokens=_sum([c.input_tokens for c in calls]),
        output_tokens=_sum([c.output_tokens for c in calls]),
        cost_usd=cost,
        model=models.pop() if len(models) == 1 else model,
        cache_read_tokens=_sum([c.cache_read_tokens for c in calls]),
        cache_write_tokens=_sum([c.cache_write_tokens for c in calls]),
    )
