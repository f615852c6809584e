"""One request's walk down its ranked paths, without I/O.

:class:`Attempts` says what to do next — :class:`Call` a path, :class:`Sleep`, or
:data:`DONE` — and is told what happened (:meth:`Attempts.returned`,
:meth:`Attempts.raised`, :meth:`Attempts.slept`). It holds the rate-limit gate (a wait
is a ``Sleep``), the breaker gate, retries (each retry's wait is a ``Sleep``), judging,
outcomes, fallback log lines and observer events. ``Router.run`` and ``Router.arun``
are two thin loops over it that only call and sleep, so neither can block the other's
way of waiting (tenacity's ``BaseRetrying.iter`` and httpx's ``BaseClient`` are the
models).
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from adaptive_router._checks import error_text, short
from adaptive_router.log_throttle import ThrottledLog
from adaptive_router.metering.bill import Bill, CaptureMode, TryReports, reported_cost
from adaptive_router.metering.capture import Scope, hooked
from adaptive_router.metering.prices import Pricer
from adaptive_router.observe.observers import Observers
from adaptive_router.outcomes import UNBILLED, ErrorKind, Outcome, Result, Usage, checked_usage
from adaptive_router.paths import Path
from adaptive_router.policies.logged_decision import DecisionDraft
from adaptive_router.resilience import RateLimit, RetryState, auth_advice, classify
from adaptive_router.resilience.retry import RetryRun
from adaptive_router.router.budgets import RequestBudget
from adaptive_router.router.calls import acall_path, call_path
from adaptive_router.router.decisions import attach
from adaptive_router.router.judging import Judge
from adaptive_router.router.settings import PathSettings

__all__ = [
    "DONE",
    "Acquire",
    "AttemptContext",
    "Attempts",
    "Call",
    "Charge",
    "Done",
    "Sleep",
    "acall_path",
    "awalk",
    "build_outcome",
    "call_path",
    "new_request_id",
    "walk",
]

_NO_RETRIES = RetryState()
_JUDGE_RAISED = ErrorKind.SUCCESS_FN_ERROR.value  # an Enum .value costs a descriptor call
_AUTH = ErrorKind.AUTH_ERROR.value
#: Kinds the breaker does not hear as a success or a failure: a judge that raised says
#: nothing about the path; refused credentials trip it open at once (``_refused``).
_BREAKER_SILENT = frozenset({_JUDGE_RAISED, _AUTH})
#: Kinds that count against a path's circuit breaker: the path could not answer at all.
#: Output-quality kinds (rejected, empty, invalid_output) are the bandit's business.
_BREAKER_FAILURES = frozenset(
    k.value
    for k in (
        ErrorKind.TIMEOUT,
        ErrorKind.RATE_LIMITED,
        ErrorKind.SERVER_ERROR,
        ErrorKind.CONNECTION,
        ErrorKind.CLIENT_ERROR,
        ErrorKind.EXCEPTION,
    )
)


class Call(NamedTuple):
    """Call ``path`` with the request's arguments, enforcing ``timeout_s`` (None = no limit,
    or the path enforces its own), inside ``meter`` (the capture scope its SDK calls count
    in; None when usage capture is off)."""

    # A NamedTuple, not a frozen dataclass: one is built per attempt, and a frozen
    # dataclass sets each field through object.__setattr__ (3x the cost).

    path: Path
    timeout_s: float | None
    meter: Scope | None = None


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds``, with the waiting object's own sleep (``sleep`` in a thread,
    ``asleep`` on an event loop), then report :meth:`Attempts.slept`."""

    seconds: float
    sleep: Callable[[float], None]
    asleep: Callable[[float], Awaitable[None]]


class Acquire(NamedTuple):
    """Take a slot of ``limit`` (:meth:`RateLimit.take`, or awaited
    :meth:`RateLimit.atake`: a round trip to its storage, Redis perhaps), then report
    its answer with :meth:`Attempts.acquired`."""

    limit: RateLimit


class Charge(NamedTuple):
    """Charge ``tokens`` to ``limit``'s token budget (:meth:`RateLimit.record_tokens`, or
    awaited :meth:`RateLimit.arecord_tokens`), then report :meth:`Attempts.charged`."""

    limit: RateLimit
    tokens: int


class Done:
    """The request is over: :attr:`Attempts.attempts` holds every attempt."""

    def __repr__(self) -> str:
        return "DONE"


DONE = Done()
Step = Call | Sleep | Acquire | Charge | Done


@dataclass(frozen=True, slots=True)
class AttemptContext:
    """What the request core needs from its router, shared by all its requests."""

    task: str
    settings: Mapping[str, PathSettings]
    judge: Judge
    pricer: Pricer
    observers: Observers
    log: ThrottledLog
    clock: Callable[[], float]
    capture: CaptureMode = False
    """Meter the SDK calls each attempt makes (``Observability(capture_usage=...)``)."""
    rebill: Callable[[Outcome], None] | None = None
    """Rewrite a recorded outcome whose usage grew by a late call (the recorder's)."""


def build_outcome(
    ctx: AttemptContext,
    rid: str,
    path: Path,
    attempt: int,
    *,
    kind: str | None,
    error: str | None,
    latency_ms: float,
    usage: Usage | None,
    retries: int,
    context: str = "",
    score: float | None = None,
    metadata: dict[str, Any] | None = None,
    priced: bool = False,
) -> Outcome:
    """An attempt's outcome, priced: the path's cost if it said, else its tokens (cache
    reads and writes included) at its model's price; an error before anything was
    generated costs nothing; a cost still unknown is the path's declared ``cost_usd``
    (None when it declared none). ``priced``: ``usage.cost_usd`` is final, even when None,
    but for the declared cost."""
    if usage is None:  # the common case of a plain function: nothing to price
        return Outcome(
            request_id=rid,
            task=ctx.task,
            path=path.name or "",
            attempt=attempt,
            success=kind is None,
            kind=kind,
            error=error,
            latency_ms=latency_ms,
            cost_usd=0.0 if kind in UNBILLED else path.cost_usd,
            created_at=ctx.clock(),
            retries=retries,
            context=context,
            score=score,
            metadata=metadata,
            model=path.model,
        )
    u = usage
    # Priced already (captured calls, each at its own model; a retried attempt's tries):
    # a None is an unknown part.
    cost = u.cost_usd if priced else reported_cost(u, kind, ctx.pricer, path.model)
    if cost is None:
        cost = path.cost_usd
    return Outcome(
        request_id=rid,
        task=ctx.task,
        path=path.name or "",
        attempt=attempt,
        success=kind is None,
        kind=kind,
        error=error,
        latency_ms=latency_ms,
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cost_usd=cost,
        created_at=ctx.clock(),
        retries=retries,
        context=context,
        score=score,
        metadata=metadata,
        model=u.model or path.model,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
    )


class Attempts:
    """One request's attempts over ``order`` (ranked paths, the fallback last).

    Drive it by reading ``step`` until it is :data:`DONE`: a :class:`Call` is answered with
    :meth:`returned` or :meth:`raised` (``started`` is ``time.perf_counter()`` before
    the call), a :class:`Sleep` with :meth:`slept`, an :class:`Acquire` with
    :meth:`acquired`, a :class:`Charge` with :meth:`charged`. ``value`` is the
    successful result.
    """

    __slots__ = (
        "_args",
        "_bill",
        "_budget",
        "_deadline",
        "_kwargs",
        "_order",
        "_path",
        "_retry_run",
        "_retry_start",
        "_settings",
        "_started",
        "_state",
        "_tries",
        "_wait_cut",
        "attempts",
        "context",
        "ctx",
        "decision",
        "features",
        "n",
        "rid",
        "skipped",
        "step",
        "value",
    )

    def __init__(
        self,
        ctx: AttemptContext,
        rid: str,
        context: str,
        order: Iterable[Path],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        budget: RequestBudget | None = None,
        decision: DecisionDraft | None = None,
    ) -> None:
        self.ctx = ctx
        #: The evidence the order was drawn from (None: not logged), see router.decisions.
        self.decision = decision
        #: The request's encoded feature vector (a feature router's), for its first attempt.
        self.features: bytes | None = None
        self.rid = rid
        self.context = context
        self.attempts: list[Outcome] = []
        #: Whether any of ``attempts`` is a skipped path (never called, never stored).
        self.skipped = False
        self.n = 0
        self.value: Any = None
        self._order = iter(order)
        self._args = args
        self._kwargs = kwargs
        self._path: Path | None = None
        self._settings: PathSettings | None = None
        self._state = _NO_RETRIES  # replaced per attempt, before any call
        self._retry_run: RetryRun | None = None
        self._retry_start = 0.0
        self._started: float | None = None
        self._deadline = 0.0
        self._wait_cut = False
        self._bill: Bill | None = None
        # What the ended tries of a retried attempt reported; None while not retried.
        self._tries: TryReports | None = None
        self._budget = budget
        self.step: Step = self._advance()

    # -- what happened -----------------------------------------------------------
    def returned(self, raw: Any, started: float) -> None:
        """The last :class:`Call` returned ``raw`` (a value or a :class:`Result`)."""
        if self._retry_run is not None:
            self._retry_run.succeeded()
        self._settle(self._started if self._started is not None else started, raw, None)

    def raised(self, exc: Exception, started: float) -> None:
        """The last :class:`Call` raised ``exc``: retry after a :class:`Sleep`, or settle."""
        st, path = self._settings, self._path
        assert st is not None and path is not None
        if self._started is None:
            self._started = started
        policy = st.retry
        if policy is not None:
            if self._retry_run is None:
                # The attempt's retry record starts at its first failure: an attempt that
                # succeeds at once has none to keep (0 retries is the shared default's).
                self._state = RetryState(path=path.name)
                self._retry_run = RetryRun(
                    policy,
                    path.fn,
                    self._args,
                    self._kwargs,
                    self._state,
                    self._retry_start,
                    self.ctx.log,
                )
            delay = self._retry_run.failed(exc, self._time_left(path))
            if delay is not None:
                self._try_failed(path, exc)
                self.step = Sleep(delay, policy.sleep, policy.asleep)
                return
        self._settle(self._started, None, exc)

    def slept(self, seconds: float) -> None:
        """The last :class:`Sleep` is over."""
        st, path = self._settings, self._path
        assert st is not None and path is not None
        if self._retry_run is not None:
            self._retry_run.slept(seconds)
            call, bill = self._call(path, st), self._bill
            # A retry's calls apart from the earlier tries': a try's report covers its own.
            self.step = call if bill is None else call._replace(meter=bill.retry())
            return
        # Waited for the rate limit to free up: take again.
        assert st.rate_limit is not None
        self.step = Acquire(st.rate_limit)

    def acquired(self, wait: float | None) -> None:
        """The last :class:`Acquire` is answered (:meth:`RateLimit.take`'s answer): a slot
        was taken (None), or one frees in ``wait`` seconds: wait for it if that is within
        the path's wait, else skip the path."""
        st, path = self._settings, self._path
        assert st is not None and path is not None and st.rate_limit is not None
        if wait is None:
            self.step = self._open(path, st)
            return
        rl = st.rate_limit
        delay = rl.wait_for(wait, self._deadline)
        if delay is not None:
            self.step = Sleep(delay, rl.sleep, rl.asleep)
            return
        error = "application rate limit exhausted"
        if rl.mode == "wait" and self._wait_cut:
            error += "; no room before the request's time (request_timeout) runs out"
        if st.breaker is not None:
            st.breaker.release()  # a half-open probe slot it reserved goes unused
        self._skip(path, ErrorKind.RATE_LIMITED.value, error)
        self.step = self._advance()

    def charged(self) -> None:
        """The last :class:`Charge` is done: on to the next path, or DONE."""
        self.step = self._advance()

    # -- walking -----------------------------------------------------------------
    def _advance(self) -> Step:
        """The next path's first step: gates, then its call; DONE after a success."""
        # Done before the next path is asked for: the order may draw it only then.
        if self.attempts and self.attempts[-1].success:
            return DONE
        for path in self._order:
            if self.attempts:
                self._log_fallback(self.attempts[-1], path)
            refused = self._budget.refuse(path.name or "", self.attempts) if self._budget else None
            if refused is not None:
                self._skip(path, *refused)
                continue
            st = self.ctx.settings[path.name or ""]
            # The breaker before the rate limit: a path it keeps from being called must
            # not spend a slot of a limit other processes share (their breakers are theirs).
            if st.breaker is not None and not st.breaker.allow():
                self._skip(path, ErrorKind.BREAKER_OPEN.value, "circuit breaker open")
                continue
            self._path, self._settings = path, st
            # Not retrying yet: a Sleep before this path's first call is a rate-limit wait.
            self._retry_run = None
            rl = st.rate_limit
            if rl is not None:
                if rl.mode == "wait":
                    # A wait for room ends by the request's deadline as well as max_wait_s.
                    left = self._time_left(path)
                    self._wait_cut = left is not None and left < rl.max_wait_s
                    self._deadline = rl.wait_deadline(left)
                return Acquire(rl)
            return self._open(path, st)
        return DONE

    def _open(self, path: Path, st: PathSettings) -> Call:
        """Past the breaker and the rate limit: the path's first call."""
        self.n += 1
        if self.ctx.observers.items:  # the list itself: no __bool__ call per event
            self.ctx.observers.emit("attempt_started", self.ctx.task, self.rid, path.name, self.n)
        self._state = _NO_RETRIES
        ctx = self.ctx
        # No scope while no SDK is hooked (neither openai nor anthropic imported yet):
        # nothing could be metered, and a scope costs a few µs per attempt.
        self._bill = (
            Bill(
                ctx.pricer,
                path.model,
                ctx.rebill,
                include_usage=ctx.capture == "include_usage",
                declared_cost=path.cost_usd,
            )
            if ctx.capture and hooked()
            else None
        )
        self._started = None
        return self._call(path, st)

    def _time_left(self, path: Path) -> float | None:
        """Seconds left of the request's time for ``path`` (None: no limit applies)."""
        b = self._budget
        return b.remaining_s() if b is not None and b.limits(path.name or "") else None

    def _skip(self, path: Path, kind: str, error: str) -> None:
        """Record ``path`` as skipped (never called) for ``kind``."""
        skipped = Outcome(
            request_id=self.rid,
            task=self.ctx.task,
            path=path.name or "",
            attempt=0,
            success=False,
            kind=kind,
            error=error,
            latency_ms=0.0,
            created_at=self.ctx.clock(),
            skipped=True,
        )
        self.attempts.append(skipped)
        self.skipped = True
        if self.ctx.observers.items:
            self.ctx.observers.emit("attempt_finished", skipped)

    def _call(self, path: Path, st: PathSettings) -> Call:
        if st.retry is not None and self._retry_run is None:
            self._retry_start = st.retry.clock()
        timeout = None if path.enforces_timeout else st.timeout
        if self._budget is not None and self._budget.limits(path.name or ""):
            # What is left of the request's time (a watchdog even for a path that
            # enforces its own timeout, which cannot be told the cut).
            timeout = self._budget.cut(timeout)
        # The attempt's bill: the SDK calls of each try count for the attempt unless that
        # try reports its own usage; a call still running when the attempt settles (it
        # timed out) is billed to the outcome when it ends.
        return Call(path, timeout, self._bill)

    def _settle(self, started: float, raw: Any, exc: Exception | None) -> None:
        """Turn a finished attempt (value or exception) into its outcome; feed the breaker
        and the token budget; move on."""
        path, st, state, ctx, rid = self._path, self._settings, self._state, self.ctx, self.rid
        assert path is not None and st is not None
        latency = (time.perf_counter() - started) * 1000.0
        value = None
        bill, tries = self._bill, self._tries
        if exc is not None:
            kind = classify(exc).value
            usage = getattr(exc, "usage", None)
            # Another library's exception may have a ``usage`` of its own: not ours.
            usage = self._checked(path, usage) if isinstance(usage, Usage) else None
            meta = getattr(exc, "outcome_metadata", None)
            if tries is None:
                used, priced = self._usage(usage, bill)
            else:
                used, priced = self._over_tries(tries, usage, kind), True
            error = error_text(exc)
            if kind == _AUTH:
                self._refused(exc, error)
            else:
                self._log_failed(kind, error)
            outcome = build_outcome(
                ctx,
                rid,
                path,
                self.n,
                kind=kind,
                error=error,
                latency_ms=latency,
                retries=state.retries,
                context=self.context,
                metadata=meta if isinstance(meta, dict) else None,
                usage=used,
                priced=priced,
            )
        else:
            if isinstance(raw, Result):
                value, usage, meta = raw.value, self._checked(path, raw.usage), raw.metadata
            else:
                value, usage, meta = raw, None, None
            verdict, why, score = ctx.judge(rid, path, value, self.context, self.n)
            if tries is None:
                used, priced = (usage, False) if bill is None else self._usage(usage, bill)
            else:
                used, priced = self._over_tries(tries, usage, verdict, returned=True), True
            outcome = build_outcome(
                ctx,
                rid,
                path,
                self.n,
                kind=verdict,
                error=why,
                latency_ms=latency,
                retries=state.retries,
                context=self.context,
                score=score,
                metadata=meta,
                usage=used,
                priced=priced,
            )
        if bill is not None and (usage is None if tries is None else tries.unreported):
            bill.settled(outcome)  # metered: a call ending late still reaches this outcome
        if st.breaker is not None:
            if outcome.kind in _BREAKER_SILENT:
                # Neither a success nor a failure: a half-open probe's slot is given back,
                # else the path waits out another reset timeout for nothing.
                st.breaker.release()
            elif outcome.kind in _BREAKER_FAILURES:
                st.breaker.record_failure(outcome.kind)
            else:
                st.breaker.record_success()
        if self.decision is not None and self.n == 1:
            attach(self.decision, self.attempts, outcome, self._budget)
        self.attempts.append(outcome)
        if ctx.observers.items:
            ctx.observers.emit("attempt_finished", outcome)
        if outcome.success:
            self.value = value
        if st.rate_limit is not None and (outcome.input_tokens or outcome.output_tokens):
            # The tokens it used, charged by the loop (a storage round trip), then onwards.
            tokens = (outcome.input_tokens or 0) + (outcome.output_tokens or 0)
            self.step = Charge(st.rate_limit, tokens)
            return
        self.step = self._advance()

    def _log_failed(self, kind: str, error: str) -> None:
        path, ctx, state, rid = self._path, self.ctx, self._state, self.rid
        assert path is not None
        ctx.log.log(
            ("failed", path.name, kind),
            "path %s failed (%s): %s",
            (path.name, kind, short(error)),
            "path %s failed (%s) %d more times in the last %g s",
            (path.name, kind),
            {
                "request_id": rid,
                "task": ctx.task,
                "path": path.name,
                "kind": kind,
                "error": error,
                "retries": state.retries,
            },
        )

    def _refused(self, exc: Exception, error: str) -> None:
        """Refused or missing credentials (``auth_error``): a configuration error, not the
        path's. Open the path's breaker in this process (its own state: nothing goes to
        the store, so other processes keep their own view) and log one ERROR line per
        path and window naming what to set; the outcome is recorded but is no evidence."""
        path, st, ctx = self._path, self._settings, self.ctx
        assert path is not None and st is not None
        what, fix = auth_advice(exc)
        breaker = st.breaker
        if breaker is not None:
            breaker.trip(f"auth_error: {what}")
            then = (
                "its circuit breaker is open in this process (probed again after "
                f"{breaker.reset_timeout_s:g} s)"
            )
        else:
            then = "it has no circuit breaker, so each request still tries it"
        ctx.log.log(
            ("auth", path.name),
            "path %r: %s (auth_error): %s. Not retried and not counted against the path; %s",
            (path.name, what, fix, then),
            "path %r: %s (auth_error) %d more times in the last %g s",
            (path.name, what),
            {
                "request_id": self.rid,
                "task": ctx.task,
                "path": path.name,
                "kind": _AUTH,
                "error": error,
                "fix": fix,
            },
            level=logging.ERROR,
        )

    def _checked(self, path: Path, usage: object) -> Usage | None:
        """The usage a path reported, checked (see :func:`checked_usage`); None (unknown,
        or what its metered SDK calls used) for one that is no valid ``Usage``, with a
        warning per path and window: a bad number must cost the attempt its usage, never
        the request an exception or the store a batch. An empty ``Usage()`` (what
        ``Result(value)`` carries when it is returned for its metadata alone) reports
        nothing: the SDK calls metered during the try count, as for a plain value."""
        try:
            u = checked_usage(usage)
        except (TypeError, ValueError) as exc:
            self.ctx.log.log(
                ("usage", path.name),
                "path %s reported an invalid usage, recorded as unknown: %s",
                (path.name, exc),
                "path %s reported an invalid usage %d more times in the last %g s",
                (path.name,),
                {
                    "request_id": self.rid,
                    "task": self.ctx.task,
                    "path": path.name,
                    "error": str(exc),
                },
            )
            return None
        if (
            u is not None
            and u.input_tokens is None
            and u.output_tokens is None
            and u.cost_usd is None
            and u.model is None
            and u.cache_read_tokens is None
            and u.cache_write_tokens is None
        ):
            return None
        return u

    def _try_failed(self, path: Path, exc: Exception) -> None:
        """A try failed with ``exc`` and is retried: keep what it reported (an exception's
        ``usage``) for the attempt's sum, since the next try's report will not hold it."""
        usage = getattr(exc, "usage", None)
        if self._tries is None:
            self._tries = TryReports(self.ctx.pricer, path.model)
        # RetryRun.failed classified it just now: its kind is the state's last.
        kind = self._state.kinds[-1].value
        self._tries.add(self._checked(path, usage) if isinstance(usage, Usage) else None, kind)

    def _over_tries(
        self, tries: TryReports, last: Usage | None, kind: str | None, *, returned: bool = False
    ) -> Usage | None:
        """A retried attempt's usage, its final try having reported ``last`` (and returned
        a value, or raised): the sum over its tries (:meth:`TryReports.total`)."""
        tries.add(last, kind, returned=returned)
        self._tries = None  # the next attempt starts without tries
        return tries.total(self._bill)

    @staticmethod
    def _usage(reported: Usage | None, bill: Bill | None) -> tuple[Usage | None, bool]:
        """``build_outcome``'s ``(usage, priced)``: what the path reported, else its calls'
        (each priced at its own model)."""
        if reported is None and bill is not None:
            captured = bill.close()
            if captured is not None:
                return captured, True
        return reported, False

    def _log_fallback(self, failed: Outcome, to: Path) -> None:
        self.ctx.log.log(
            ("fallback", failed.path, to.name, failed.kind),
            "fallback from %s to %s: %s",
            (failed.path, to.name, failed.kind),
            "fallback from %s to %s: %s, %d more times in the last %g s",
            (failed.path, to.name, failed.kind),
            {
                "request_id": self.rid,
                "task": self.ctx.task,
                "from_path": failed.path,
                "to_path": to.name,
                "reason": failed.kind,
            },
        )


def walk(req: Attempts, args: Any, kwargs: Any) -> Any:
    """Carry out ``req``'s steps in this thread until it is DONE (``Router.run``'s and
    ``Router.check``'s loop): calls, sleeps and rate-limit round trips all block. Returns
    what the last call returned (a value or a :class:`Result`), None if none returned."""
    value = None
    while True:
        step = req.step
        if type(step) is Call:
            started = time.perf_counter()
            try:
                raw = call_path(step.path, step.timeout_s, args, kwargs, step.meter)
            except Exception as exc:
                req.raised(exc, started)
            else:
                value = raw
                req.returned(raw, started)
        elif step is DONE:
            return value
        elif type(step) is Sleep:
            step.sleep(step.seconds)
            req.slept(step.seconds)
        elif type(step) is Acquire:
            req.acquired(step.limit.take())
        elif type(step) is Charge:
            step.limit.record_tokens(step.tokens)
            req.charged()
        else:
            raise TypeError(f"unknown step {step!r}")


async def awalk(req: Attempts, args: Any, kwargs: Any) -> None:
    """The asyncio twin of :func:`walk` (``Router.arun``'s loop): calls, sleeps and
    rate-limit round trips are awaited, so none blocks the event loop."""
    while True:
        step = req.step
        if type(step) is Call:
            started = time.perf_counter()
            try:
                raw = await acall_path(step.path, step.timeout_s, args, kwargs, step.meter)
            except Exception as exc:
                req.raised(exc, started)
            else:
                req.returned(raw, started)
        elif step is DONE:
            return
        elif type(step) is Sleep:
            await step.asleep(step.seconds)
            req.slept(step.seconds)
        elif type(step) is Acquire:
            req.acquired(await step.limit.atake())
        elif type(step) is Charge:
            await step.limit.arecord_tokens(step.tokens)
            req.charged()
        else:
            raise TypeError(f"unknown step {step!r}")


_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)  # a forked worker must not repeat its parent's ids


def new_request_id() -> str:
    """32 hex characters: milliseconds since the epoch, then 80 random bits.

    Time-ordered keys keep inserts into the unique index local, and the Mersenne
    Twister avoids ``uuid4``'s system call per request (which also hands the GIL to the
    writer thread mid-request). Reseeded from the OS in every forked child.
    """
    # bytes.hex of both parts at once: ~40% cheaper than formatting two ints.
    return ((time.time_ns() // 1_000_000).to_bytes(6, "big") + _ids.randbytes(10)).hex()
