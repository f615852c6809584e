"""An attempt's usage from the SDK calls captured while it ran
(``Observability(capture_usage=...)``).

The request loops enter the attempt's :class:`Bill` — a capture
:class:`~adaptive_router.metering.capture.Scope` that spans the whole attempt — around each call
of a path (``Call.meter``); the calls an attempt made (a retried attempt makes several,
each billed) become one :class:`Usage` by :func:`captured_usage`, used only when the
path reported no usage of its own (a :class:`~adaptive_router.Result`, a provider path,
an exception's ``usage``).

Late calls: a call that finishes after its attempt gave up on it (the attempt timed out,
but the provider still bills the call) reaches the bill through the capture scope's
``on_late``. The bill then recomputes the attempt's usage over all its calls, writes it
into the attempt's :class:`Outcome` (the same object the router records) and asks the
router to rewrite the stored row (:meth:`Store.update_usage`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from adaptive_router.metering.capture import CallUsage, Scope, acquire
from adaptive_router.metering.prices import Pricer
from adaptive_router.outcomes import Outcome, Usage

__all__ = ["Bill", "CaptureMode", "captured_usage", "start_capture"]

logger = logging.getLogger(__name__)

#: ``Observability(capture_usage=...)``: off, on, or on and asking chat streams for usage.
CaptureMode = bool | Literal["include_usage"]


def start_capture(capture_usage: CaptureMode) -> Callable[[], None]:
    """Hold the SDK hooks for a router with ``Observability(capture_usage=...)`` on (every
    router shares the one set of hooks, removed when the last releases them); returns the
    release, for the router's close."""
    if not capture_usage:
        return _nothing
    return acquire()


def _nothing() -> None:
    """Nothing to release."""


class Bill(Scope):
    """The capture scope of one attempt: its SDK calls, and where its usage goes once the
    attempt settled.

    Every call of the attempt (each retry's too) is metered into this one scope, so
    nothing is copied or merged. :meth:`close` ends it: a call finishing after that (the
    attempt timed out, the provider still bills it) is a late call, added to the
    settled :class:`Outcome` and rewritten in the store. Thread-safe.
    """

    __slots__ = (
        "_counted",
        "_late_before_settled",
        "_outcome",
        "_rebill",
        "declared_cost",
        "model",
        "pricer",
    )

    def __init__(
        self,
        pricer: Pricer,
        model: str | None,
        rebill: Callable[[Outcome], None] | None = None,
        *,
        include_usage: bool = False,
        declared_cost: float | None = None,
    ) -> None:
        super().__init__(self._late_call, include_usage=include_usage, reentrant=True)
        self.pricer = pricer
        self.model = model
        #: The path's ``cost_usd``: the attempt's cost while its calls' cost is unknown.
        self.declared_cost = declared_cost
        self._rebill = rebill
        self._outcome: Outcome | None = None
        self._counted = 0
        # A call that ended between close() and settled(): a stream already counted as
        # incomplete by close() that finished then adds no call, so the count misses it.
        self._late_before_settled = False

    def close(self) -> Usage | None:
        """End the attempt's metering; its usage (None: it made no metered call)."""
        with self._lock:
            self._closed = True
            calls = list(self._calls)
            self._counted = len(calls)
        return captured_usage(calls, self.pricer, self.model)

    def settled(self, outcome: Outcome) -> None:
        """The attempt's outcome, built from :meth:`close`'s usage: late calls update it."""
        with self._lock:
            self._outcome = outcome
            # A call ended in between: a new one, or a counted stream that finished.
            missed = len(self._calls) != self._counted or self._late_before_settled
        if missed:
            self._apply(None)

    def _late_call(self, call: CallUsage) -> None:
        with self._lock:
            if self._outcome is None:
                self._late_before_settled = True
                return  # between close and settled: settled() bills it
        self._apply(call)

    def _apply(self, call: CallUsage | None) -> None:
        with self._lock:
            outcome = self._outcome
            calls = list(self._calls)
        usage = captured_usage(calls, self.pricer, self.model)
        if outcome is None or usage is None:
            return
        with self._lock:
            # The outcome object is the one the router records: a row not written yet
            # is written with these values; a written one is rewritten by rebill.
            outcome.input_tokens = usage.input_tokens
            outcome.output_tokens = usage.output_tokens
            outcome.cost_usd = usage.cost_usd if usage.cost_usd is not None else self.declared_cost
            outcome.model = usage.model
            outcome.cache_read_tokens = usage.cache_read_tokens
            outcome.cache_write_tokens = usage.cache_write_tokens
        logger.info(
            "late SDK call billed to request %s attempt %d of path %s: %s tokens in, %s out",
            outcome.request_id,
            outcome.attempt,
            outcome.path,
            None if call is None else call.input_tokens,
            None if call is None else call.output_tokens,
            extra={
                "request_id": outcome.request_id,
                "attempt": outcome.attempt,
                "path": outcome.path,
                "model": None if call is None else call.model,
            },
        )
        if self._rebill is not None:
            self._rebill(outcome)


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def captured_usage(calls: list[CallUsage], pricer: Pricer, model: str | None) -> Usage | None:
    """The usage of an attempt's captured ``calls``, or None when it made none.

    Tokens are summed over the calls that reported them (``None`` when none did); the
    cost is each call priced at its own model, else at ``model`` (the path's), by
    :meth:`Pricer.call_cost` (an override for either name first), and unknown as soon as
    one call's usage or price is unknown, so a partial sum is never shown as the
    attempt's cost.
    """
    if not calls:
        return None
    if len(calls) == 1:  # the common case, without the sums' lists
        c = calls[0]
        return Usage(
            c.input_tokens,
            c.output_tokens,
            pricer.call_cost(
                c.model,
                model,
                c.input_tokens,
                c.output_tokens,
                cache_read_tokens=c.cache_read_tokens,
                cache_write_tokens=c.cache_write_tokens,
            )
            if c.known
            else None,
            c.model or model,
            c.cache_read_tokens,
            c.cache_write_tokens,
        )
    cost: float | None = 0.0
    for c in calls:
        price = (
            pricer.call_cost(
                c.model,
                model,
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
