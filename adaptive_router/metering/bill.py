"""An attempt's usage from the SDK calls captured while it ran
(``Observability(capture_usage=...)``).

The request loops enter the attempt's :class:`Bill` — a capture
:class:`~adaptive_router.metering.capture.Scope` that spans the whole attempt — around each call
of a path (``Call.meter``); the calls an attempt made become one :class:`Usage` by
:func:`captured_usage`, used only when the path reported no usage of its own (a
:class:`~adaptive_router.Result`, a provider path, an exception's ``usage``).

A retried attempt is counted try by try: each retry's calls are metered into a scope of
its own (:meth:`Bill.retry`) that adds them to the bill marked as that try's, and
:meth:`Bill.close_tries` sums, over the tries, what each reported, else the calls made
during it (:func:`summed_usage`): a try that reported its usage covers its own calls,
never the other tries', so nothing is dropped or counted twice.

Late calls: a call that finishes after its attempt gave up on it (the attempt timed out,
but the provider still bills the call) reaches the bill through the capture scope's
``on_late``. The bill then recomputes the attempt's usage over all its calls (over its
tries, for a retried attempt: the call counts unless the try that made it reported its
own usage), writes it into the attempt's :class:`Outcome` (the same object the router
records) and asks the router to rewrite the stored row (:meth:`Store.update_usage`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Literal

from adaptive_router.metering.capture import CallUsage, Scope, acquire
from adaptive_router.metering.prices import Pricer
from adaptive_router.outcomes import UNBILLED, Outcome, Usage

__all__ = [
    "UNKNOWN_TRY",
    "Bill",
    "CaptureMode",
    "TryReports",
    "captured_usage",
    "priced_report",
    "reported_cost",
    "start_capture",
    "summed_usage",
]

logger = logging.getLogger(__name__)

#: What a try that returned a value without reporting its usage is counted at when it
#: made no metered call: an unknown cost, as an attempt of that one try is priced
#: (``build_outcome``: the path's declared ``cost_usd``, else unknown), so the attempt's
#: cost is unknown rather than the earlier tries' partial sum. Told apart by identity;
#: the calls it made, when it made some (late ones too), count instead.
UNKNOWN_TRY = Usage()

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

    Every call of the attempt (each retry's too) is recorded in this one scope, so
    nothing is copied or merged; a retry's calls come through the scope :meth:`retry`
    gives it, which marks them as that try's. :meth:`close` (:meth:`close_tries` for a
    retried attempt) ends it: a call finishing after that (the attempt timed out, the
    provider still bills it) is a late call, added to the settled :class:`Outcome` and
    rewritten in the store. Thread-safe.
    """

    __slots__ = (
        "_counted",
        "_late_before_settled",
        "_outcome",
        "_rebill",
        "_tries",
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
        # Set by the first retry: an attempt that is not retried keeps no per-try record.
        self._tries: _TryCalls | None = None

    def close(self) -> Usage | None:
        """End the attempt's metering; its usage (None: it made no metered call)."""
        with self._lock:
            calls = self._closing()
        return captured_usage(calls, self.pricer, self.model)

    def _closing(self) -> list[CallUsage]:
        """End the scope (the lock held): later calls are late ones; the calls so far."""
        self._closed = True
        calls = list(self._calls)
        self._counted = len(calls)
        return calls

    def retry(self) -> Scope:
        """The capture scope of the attempt's next try (a retry): its calls are recorded
        in this bill, marked as that try's, so that :meth:`close_tries` can tell them
        from the earlier tries'. A call is the try's that started it: a timed-out try's
        call ending during the next try is still the timed-out try's."""
        tries = self._tries
        if tries is None:
            tries = self._tries = _TryCalls()
        tries.n += 1
        return _Try(self, tries.n)

    def close_tries(self, reported: Sequence[Usage | None]) -> Usage | None:
        """End a retried attempt's metering; its usage over its tries (None: no try
        reported a usage or made a metered call).

        ``reported[i]`` is what try ``i`` (0 the first) reported, priced (its
        ``cost_usd`` final, None for unknown), or None when it reported nothing: then
        the calls metered during it count instead (:data:`UNKNOWN_TRY`: the same, but
        its cost is unknown when it made none: it returned a value). A try that
        reported its usage covers its own calls, so they are never counted twice. Late
        calls update the settled outcome by the same sum.
        """
        with self._lock:
            calls = self._closing()
            tries = self._tries
            if tries is None:  # retried, though no retry made a call in this bill's scope
                tries = self._tries = _TryCalls()
            tries.reported = parts = list(reported)
            of = dict(tries.of)
        return self._summed(calls, of, parts)

    def _summed(
        self, calls: list[CallUsage], of: dict[int, int], reported: list[Usage | None]
    ) -> Usage | None:
        """:func:`summed_usage` of the tries: each one's reported usage, else its calls'."""
        own: list[list[CallUsage]] = [[] for _ in reported]
        last = len(reported) - 1
        for c in calls:
            # Not marked: a call of the first try, made in the bill's own scope.
            own[min(of.get(id(c), 0), last)].append(c)
        parts = []
        for usage, made in zip(reported, own, strict=True):
            if usage is None or usage is UNKNOWN_TRY:
                part = captured_usage(made, self.pricer, self.model) or usage
            else:
                part = usage
            if part is not None:
                parts.append(part)
        return summed_usage(parts)

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
            tries = self._tries
            reported = None if tries is None else tries.reported
            of = None if tries is None else dict(tries.of)
        if reported is None or of is None:
            usage = captured_usage(calls, self.pricer, self.model)
        else:
            usage = self._summed(calls, of, reported)
        if outcome is None or usage is None:
            return
        if reported is not None and _same(outcome, usage, self.declared_cost):
            return  # a call of a try that reported its own usage: already covered
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


class _TryCalls:
    """A retried attempt's tries: which try made each call, what each try reported."""

    __slots__ = ("n", "of", "reported")

    def __init__(self) -> None:
        #: Tries after the first so far.
        self.n = 0
        #: ``id(call)`` -> the try (1, 2, ...) that made it; a call absent is the first's.
        #: The calls stay in the bill's list, so their ids are not reused.
        self.of: dict[int, int] = {}
        #: What each try reported, priced, once the attempt settled (see close_tries).
        self.reported: list[Usage | None] | None = None


class _Try(Scope):
    """The capture scope of one retry of an attempt: its calls go to the attempt's
    :class:`Bill` (late-call handling and all), marked as this try's."""

    __slots__ = ("bill", "index")

    def __init__(self, bill: Bill, index: int) -> None:
        super().__init__(include_usage=bill.include_usage, reentrant=True)
        self.bill = bill
        self.index = index

    def _add(self, call: CallUsage) -> None:
        bill = self.bill
        tries = bill._tries
        assert tries is not None  # made by Bill.retry
        with bill._lock:
            # Marked before it is recorded: a snapshot of the bill's calls never holds an
            # unmarked call of a retry.
            tries.of[id(call)] = self.index
        bill._add(call)

    def _finished(self, call: CallUsage) -> None:
        self.bill._finished(call)


def _same(outcome: Outcome, usage: Usage, declared: float | None) -> bool:
    """Whether ``outcome`` already holds ``usage`` (as :meth:`Bill._apply` would set it)."""
    cost = usage.cost_usd if usage.cost_usd is not None else declared
    return (
        outcome.input_tokens == usage.input_tokens
        and outcome.output_tokens == usage.output_tokens
        and outcome.cost_usd == cost
        and outcome.model == usage.model
        and outcome.cache_read_tokens == usage.cache_read_tokens
        and outcome.cache_write_tokens == usage.cache_write_tokens
    )


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
            pricer.usage_cost(c, model) if c.known else None,
            c.model or model,
            c.cache_read_tokens,
            c.cache_write_tokens,
        )
    cost: float | None = 0.0
    for c in calls:
        price = pricer.usage_cost(c, model) if c.known else None
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


def summed_usage(parts: Sequence[Usage]) -> Usage | None:
    """The usage of an attempt made of ``parts`` (its tries' usages, in order, each
    priced: a ``cost_usd`` of None is unknown), or None when there are none.

    The rule of :func:`captured_usage`: tokens (cache reads and writes too) are summed
    over the parts that reported them (None when none did); the cost is the sum of the
    parts' costs, unknown as soon as one part's is unknown, so a partial sum is never
    shown as the attempt's cost (the outcome then takes the path's declared
    ``cost_usd``). The model is the last part's that names one: the final try's.
    """
    if len(parts) <= 1:
        return parts[0] if parts else None
    cost: float | None = 0.0
    for p in parts:
        cost = None if cost is None or p.cost_usd is None else cost + p.cost_usd
    return Usage(
        input_tokens=_sum([p.input_tokens for p in parts]),
        output_tokens=_sum([p.output_tokens for p in parts]),
        cost_usd=cost,
        model=next((p.model for p in reversed(parts) if p.model), None),
        cache_read_tokens=_sum([p.cache_read_tokens for p in parts]),
        cache_write_tokens=_sum([p.cache_write_tokens for p in parts]),
    )


def priced_report(
    usage: Usage | None, kind: str | None, pricer: Pricer, model: str | None
) -> Usage | None:
    """A try's reported ``usage`` (None: it reported nothing) priced by
    :func:`reported_cost`, the rule ``build_outcome`` prices an attempt's by, its model
    named (the path's when it names none). The path's declared ``cost_usd`` is not
    applied: it stands for an attempt's unknown cost, not a try's."""
    if usage is None:
        return None
    u = usage
    return Usage(
        u.input_tokens,
        u.output_tokens,
        reported_cost(u, kind, pricer, model),
        u.model or model,
        u.cache_read_tokens,
        u.cache_write_tokens,
    )


def reported_cost(u: Usage, kind: str | None, pricer: Pricer, model: str | None) -> float | None:
    """The cost of a reported usage ``u`` of an attempt (or try) that ended with ``kind``:
    its own ``cost_usd`` if it said, else its tokens at the price of its model, else of
    ``model`` (the path's); $0 for a failure of a ``kind`` that generated nothing (an
    error status, a refused connection); None (unknown) when no price applies."""
    if u.cost_usd is not None:
        return u.cost_usd
    if u.input_tokens is None and u.output_tokens is None:
        return 0.0 if kind in UNBILLED else None
    return pricer.usage_cost(u, model)


class TryReports:
    """What the tries of one retried attempt reported, in order, each priced by
    :func:`priced_report` (for a try that reported nothing, None or :data:`UNKNOWN_TRY`:
    its metered calls count instead). Kept by the request core from an attempt's first
    retry on only."""

    __slots__ = ("model", "parts", "pricer")

    def __init__(self, pricer: Pricer, model: str | None) -> None:
        self.pricer = pricer
        #: The path's model: prices a reported usage that names none.
        self.model = model
        self.parts: list[Usage | None] = []

    def add(self, usage: Usage | None, kind: str | None, *, returned: bool = False) -> None:
        """The next try ended with ``kind``, having reported ``usage`` (checked; None:
        nothing, or nothing valid); ``returned``: it returned a value (the final try,
        whatever its verdict), which cost something even when it reported nothing and
        made no metered call (:data:`UNKNOWN_TRY`)."""
        if usage is None:
            self.parts.append(UNKNOWN_TRY if returned else None)
            return
        self.parts.append(priced_report(usage, kind, self.pricer, self.model))

    @property
    def unreported(self) -> bool:
        """Whether a try reported nothing: its calls count, late ones too."""
        return any(p is None or p is UNKNOWN_TRY for p in self.parts)

    def total(self, bill: Bill | None) -> Usage | None:
        """The attempt's usage once its last try was added: each try's report, else the
        calls ``bill`` metered during it (:meth:`Bill.close_tries`); without a bill
        (usage capture off) the reports alone. None when there is nothing to count."""
        if bill is not None:
            return bill.close_tries(self.parts)
        return summed_usage([p for p in self.parts if p is not None])
