"""The Router: Thompson Sampling over durable Beta posteriors, with fallbacks.

The facade: it validates, wires the collaborators of this package together and runs
the request loops; the decisions live in ``settings``, ``ranking``, ``attempts``,
``judging`` and ``check``.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from adaptive_router import metrics as metrics_mod
from adaptive_router import tracing as tracing_mod
from adaptive_router._checks import error_text, seconds
from adaptive_router.alerts import Alert, Alerts
from adaptive_router.costs import Pricer
from adaptive_router.errors import AllPathsFailed, ConfigurationError
from adaptive_router.log_throttle import ThrottledLog
from adaptive_router.metrics import MetricsServer, PrometheusMetrics, serve_metrics
from adaptive_router.observers import CallbackObserver, Observer, Observers
from adaptive_router.outcomes import (
    Decision,
    ErrorKind,
    Outcome,
    PathWindowStats,
    Posterior,
)
from adaptive_router.paths import INHERIT, Inherit, Path, as_path, check_name
from adaptive_router.policy import Policy, ThompsonSampling
from adaptive_router.reporting import MAX_METADATA_BYTES, Reporter
from adaptive_router.reports import CostReport, cost_report
from adaptive_router.resilience import RetryPolicy, to_daemon_thread
from adaptive_router.router.attempts import (
    AttemptContext,
    Attempts,
    Call,
    Done,
    acall_path,
    call_path,
    new_request_id,
)
from adaptive_router.router.check import PathCheck, check_paths
from adaptive_router.router.judging import Judge
from adaptive_router.router.ranking import Ranking, posteriors_from_states
from adaptive_router.router.recorder import Recorder
from adaptive_router.router.settings import (
    BreakerSpec,
    PathSettings,
    default_breaker,
    resolve_settings,
)
from adaptive_router.stores import Store, open_store
from adaptive_router.stores.base import PathState, PendingDecision
from adaptive_router.tracing import Tracing

#: The router's log lines (its own and its collaborators', through the ThrottledLog it
#: hands them) keep the name they had when the router was one module.
logger = logging.getLogger(__name__.rpartition(".")[0])

__all__ = ["MAX_METADATA_BYTES", "Router"]

#: Seconds (router clock) during which repeats of a warning are counted, not logged.
LOG_WINDOW_S = 60.0


class Router:
    """Routes each request to the path most likely to succeed now.

    Parameters
    ----------
    paths:
        Callables or :class:`Path` objects that can each do the task. Names must be unique.
    success_fn:
        ``success_fn(result) -> bool`` (or 0/1): did the path's result do the job? Give it
        or ``score_fn``, not both. If it raises, the attempt is recorded as
        ``success_fn_error``: no evidence about the path, and the next path is tried.
    task:
        Name under which evidence is kept; routers sharing a task and store learn together.
        Required.
    store:
        ``"memory://"``, an SQLAlchemy URL (``sqlite:///file.db``,
        ``postgresql://user@host/db``), an ``Engine`` or a :class:`Store`.
        Default: ``sqlite:///adaptive_router.db``.
    fallback:
        A final path, always tried last and never ranked by learning.
    prior:
        Beta prior ``(alpha, beta)`` for every path.
    half_life:
        ``timedelta`` (or seconds): evidence that old counts half. ``None`` = never forget.
        Every router of a task must use the same half-life.
    explore:
        Probability that a uniformly chosen path is tried first (exploration floor).
    seed:
        Seed or ``numpy.random.Generator`` for the sampling, for reproducible runs.
    clock:
        Callable returning epoch seconds (default ``time.time``); drives decay and timestamps.
    durability:
        ``"batch"`` (write-behind, one transaction per batch, at most ``flush_interval``
        seconds of outcomes at risk in a crash) or ``"sync"`` (written before ``run`` returns).
    pending_ttl, on_expired:
        A ``choose`` not reported within ``pending_ttl`` is counted as a failure
        (``on_expired="failure"``, kind ``expired``) or forgotten (``"drop"``).
    flush_interval, refresh_interval, max_buffer:
        Write-behind cadence (<= 1 s), cache refresh from the store, and the bound on
        outcomes held in memory while the store is unreachable (oldest dropped, counted).
    policy:
        A :class:`~adaptive_router.policy.Policy` instead of ``ThompsonSampling(prior,
        half_life, explore)``.
    timeout, retry, breaker:
        Router-wide defaults for every path that leaves them at ``INHERIT``: seconds
        (``None`` = no limit), a :class:`~adaptive_router.resilience.RetryPolicy`, and a
        :class:`~adaptive_router.resilience.CircuitBreaker` template or factory (each path
        gets its own; the final fallback gets none).
    prices:
        ``{"model": (input_usd_per_mtok, output_usd_per_mtok)}`` overrides, or a
        :class:`~adaptive_router.costs.Pricer`; other models are priced by genai-prices.
    observers, on_outcome:
        :class:`~adaptive_router.observers.Observer` objects and outcome callbacks.
    score_fn, min_score:
        Instead of ``success_fn`` (give exactly one): ``score_fn(result) -> [0, 1]``
        (or ``None`` = unknown); fractional evidence, success when ``score >= min_score``.
    context_fn, max_contexts, context_prior_strength:
        ``context_fn(*args, **kwargs) -> str`` picks a request's context (or pass
        ``context=`` to ``run``); at most ``max_contexts`` of them; a context borrows at most
        ``context_prior_strength`` pseudo-observations per path from the task level.
    metrics, tracing, alerts, on_alert:
        Prometheus metrics (when prometheus-client is installed), OpenTelemetry spans
        (``None`` = when a tracer provider is configured), the
        :class:`~adaptive_router.alerts.Alerts` to use (default thresholds otherwise) and
        alert callbacks.
    """

    def __init__(
        self,
        paths: Sequence[Path | Callable[..., Any]],
        success_fn: Callable[[Any], Any] | None = None,
        task: str | None = None,
        store: str | Store | Engine | None = None,
        fallback: Path | Callable[..., Any] | None = None,
        prior: tuple[float, float] = (1.0, 1.0),
        half_life: timedelta | float | None = None,
        explore: float = 0.02,
        seed: int | np.random.Generator | None = None,
        clock: Callable[[], float] | None = None,
        durability: str = "batch",
        *,
        pending_ttl: timedelta | float = timedelta(hours=1),
        on_expired: str = "failure",
        flush_interval: float = 0.5,
        refresh_interval: float = 1.0,
        max_buffer: int = 100_000,
        policy: Policy | None = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy | Inherit | None = INHERIT,
        breaker: BreakerSpec | None = default_breaker,
        prices: Mapping[str, tuple[float, float]] | Pricer | None = None,
        observers: Sequence[Observer] = (),
        on_outcome: Callable[[Outcome], Any] | Sequence[Callable[[Outcome], Any]] | None = None,
        score_fn: Callable[[Any], Any] | None = None,
        min_score: float = 0.5,
        context_fn: Callable[..., str] | None = None,
        max_contexts: int = 1000,
        context_prior_strength: float = 10.0,
        metrics: bool = True,
        tracing: bool | None = None,
        alerts: Alerts | None = None,
        on_alert: Callable[[Alert], Any] | Sequence[Callable[[Alert], Any]] | None = None,
    ) -> None:
        if isinstance(paths, (str, bytes)) or not isinstance(paths, Iterable):
            raise ConfigurationError("paths must be a list of callables or Path objects")
        self.paths: list[Path] = [as_path(p) for p in paths]
        if not self.paths:
            raise ConfigurationError("paths is empty; give at least one callable or Path")
        self.fallback: Path | None = as_path(fallback) if fallback is not None else None
        names = [p.name for p in self.paths] + ([self.fallback.name] if self.fallback else [])
        dupes = sorted({n for n in names if names.count(n) > 1 and n is not None})
        if dupes:
            raise ConfigurationError(
                f"paths: duplicate path names {dupes}; give each Path(fn, name=...) a unique name"
            )
        if (success_fn is None) == (score_fn is None):
            given = "both" if success_fn is not None else "neither"
            raise ConfigurationError(
                f"give exactly one of success_fn (result -> bool) and score_fn "
                f"(result -> 0..1); {given} was given"
            )
        if task is None:
            raise ConfigurationError(
                "task is required: the name under which evidence is kept, e.g. task='extract'"
            )
        for what, fn in (
            ("success_fn", success_fn),
            ("score_fn", score_fn),
            ("context_fn", context_fn),
        ):
            if fn is not None and not callable(fn):
                raise ConfigurationError(f"{what} must be callable, got {fn!r}")
        if (
            isinstance(min_score, bool)
            or not isinstance(min_score, (int, float))
            or not (0.0 <= min_score <= 1.0)
        ):
            raise ConfigurationError(f"min_score must be a number in [0, 1], got {min_score!r}")
        if isinstance(max_contexts, bool) or not isinstance(max_contexts, int) or max_contexts < 1:
            raise ConfigurationError(f"max_contexts must be an int >= 1, got {max_contexts!r}")
        if not (
            isinstance(context_prior_strength, (int, float))
            and math.isfinite(context_prior_strength)
            and context_prior_strength >= 0
        ):
            raise ConfigurationError(
                "context_prior_strength must be a number >= 0 (pseudo-observations borrowed "
                f"from the task level), got {context_prior_strength!r}"
            )
        self.success_fn = success_fn
        self.score_fn = score_fn
        self.min_score = float(min_score)
        self.context_fn = context_fn
        self.max_contexts = max_contexts
        self.context_prior_strength = float(context_prior_strength)
        self.task = check_name("task", task)
        if durability not in ("batch", "sync"):
            raise ConfigurationError(f"durability must be 'batch' or 'sync', got {durability!r}")
        if on_expired not in ("failure", "drop"):
            raise ConfigurationError(f"on_expired must be 'failure' or 'drop', got {on_expired!r}")
        self.durability = durability
        self.on_expired = on_expired
        self.pending_ttl = seconds(pending_ttl, "pending_ttl", allow_none=False) or 0.0
        half_life_s = seconds(half_life, "half_life", allow_none=True)
        for name, value in (
            ("flush_interval", flush_interval),
            ("refresh_interval", refresh_interval),
        ):
            seconds(value, name, allow_none=False)
        if flush_interval > 1.0:
            raise ConfigurationError("flush_interval must be <= 1 second")
        if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
            raise ConfigurationError(f"max_buffer must be an int >= 1, got {max_buffer!r}")
        if clock is not None and not callable(clock):
            raise ConfigurationError("clock must be a callable returning epoch seconds")
        self.clock: Callable[[], float] = clock or time.time
        if isinstance(seed, np.random.Generator):
            self.rng = seed
        elif seed is None or (isinstance(seed, int) and not isinstance(seed, bool)):
            self.rng = np.random.default_rng(seed)
        else:
            raise ConfigurationError(
                f"seed must be an int, a numpy Generator or None, got {seed!r}"
            )
        try:
            self.policy: Policy = policy or ThompsonSampling(prior, half_life_s, explore)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if policy is not None and policy.half_life != half_life_s:
            raise ConfigurationError("policy.half_life and half_life disagree; set one of them")

        self.store = open_store(store)
        self._owns_store = not isinstance(store, Store)
        self._recorder = Recorder(
            self.store,
            self.task,
            self.half_life,
            durability=durability,
            clock=self.clock,
            flush_interval=flush_interval,
            refresh_interval=refresh_interval,
            max_buffer=max_buffer,
        )
        try:
            self._check_half_life()
        except ConfigurationError:
            self._recorder.close()
            if self._owns_store:
                self.store.close()
            raise
        self._by_name = {p.name: p for p in self.paths}
        if self.fallback is not None:
            self._by_name[self.fallback.name] = self.fallback
        self._last_expiry = 0.0
        # Repetitive warnings (a path failing on every request, a judge that raises) log
        # the first per key and window, then a count; observers still see every event.
        self._log = ThrottledLog(logger, LOG_WINDOW_S, self.clock)
        self._pricer = prices if isinstance(prices, Pricer) else Pricer(prices)
        self._reporter = Reporter(
            self.task,
            self.store,
            half_life=self.half_life,
            prices=self._pricer,
            models={p.name or "": p.model for p in self._by_name.values() if p.model},
            clock=self.clock,
        )
        self._closed = False
        # Breaker subscriptions, undone by close(): a breaker shared between routers
        # outlives each of them and would otherwise keep every router it served alive.
        self._unsubscribe: list[Callable[[], None]] = []
        self._settings = resolve_settings(
            self._by_name.values(), self.fallback, timeout, retry, breaker, seed
        )
        #: The request's order of paths (read-only collaborator: evidence and the draw).
        self.ranking = Ranking(
            self.paths,
            self.fallback,
            self.policy,
            self.rng,
            self._recorder,
            self._settings,
            self.context_prior_strength,
        )
        self._unsubscribe.extend(self.ranking.track_breakers())
        self._judge = Judge(
            self.task,
            success_fn,
            score_fn,
            self.min_score,
            lambda path, ctx: self.ranking.mean(path, self.clock(), ctx),
            self._log,
        )
        defaults: list[Observer] = []
        #: The Prometheus observer (None when prometheus-client is not installed or off).
        self.metrics: PrometheusMetrics | None = None
        if metrics and metrics_mod.AVAILABLE:
            self.metrics = PrometheusMetrics()
            defaults.append(self.metrics)
        if tracing is None:
            # Spans cost ~10 us a request; only pay for them when someone collects them.
            tracing = tracing_mod.AVAILABLE and tracing_mod.configured()
        if tracing and tracing_mod.AVAILABLE:
            defaults.append(Tracing())
        # The router's clock drives the alert windows (simulations, tests).
        self.alerts = alerts if alerts is not None else Alerts(on_alert=on_alert, clock=self.clock)
        defaults.append(self.alerts)
        self._observers = Observers([*defaults, *_observer_list(observers, on_outcome)])
        self._core = AttemptContext(
            self.task,
            self._settings,
            self._judge,
            self._pricer,
            self._observers,
            self._log,
            self.clock,
        )
        if self.metrics is not None:
            self.metrics.bind_router(self)
        if self._observers:
            for name, st in self._settings.items():
                if st.breaker is not None:
                    # Bound to the path's name: a user's breaker may carry another name.
                    self._unsubscribe.append(
                        st.breaker.on_change(functools.partial(self._breaker_changed, name))
                    )
            self._recorder.on_drop = self._dropped
            self._recorder.on_refresh = self._refreshed

    def __repr__(self) -> str:
        return (
            f"Router(task={self.task!r}, paths={[p.name for p in self.paths]}, "
            f"fallback={self.fallback.name if self.fallback else None!r}, store={self.store!r})"
        )

    @property
    def half_life(self) -> float | None:
        """Seconds after which evidence counts half (None = never forget): the policy's."""
        return self.policy.half_life

    @property
    def path_settings(self) -> Mapping[str, PathSettings]:
        """Each path's resolved timeout, retry policy, breaker and rate limit, by name."""
        return self._settings

    def _check_half_life(self) -> None:
        for name, st in self._recorder.snapshot().get("", {}).items():
            stored = st.half_life_s
            if st.n and stored != self.half_life:
                raise ConfigurationError(
                    f"half_life: task {self.task!r} path {name!r} was learned with "
                    f"half_life={stored} s but this router has {self.half_life} s; every router "
                    "of a task must use the same half_life (or use a new task name)"
                )

    # -- the request core shared by run and arun ---------------------------------
    def _begin(self, context: str = "") -> tuple[str, list[Path]]:
        if self._closed:
            raise RuntimeError("this Router is closed; create a new one")
        rid = new_request_id()
        if self._observers:
            self._observers.emit("request_started", self.task, rid)
        return rid, self.ranking.rank(self.clock(), context)

    def _context(self, context: str | None, args: Any, kwargs: Any) -> str:
        """The request's context: the ``context=`` argument, else ``context_fn(...)``, else ""."""
        if context is None and self.context_fn is not None:
            try:
                context = self.context_fn(*args, **kwargs)
            except Exception as exc:
                raise ValueError(f"context_fn raised {error_text(exc)}") from exc
        if context is None or context == "":
            return ""
        check_name("context", context)
        if not self._recorder.admits_context(context, self.max_contexts):
            raise ValueError(
                f"context {context!r} would exceed max_contexts={self.max_contexts}; contexts "
                "must be a bounded set of categories (raise max_contexts if you need more)"
            )
        return context

    def _breaker_changed(self, name: str, _breaker: str, old: Any, new: Any) -> None:
        self._observers.emit(
            "breaker_changed",
            self.task,
            name,
            getattr(old, "value", old),
            getattr(new, "value", new),
        )

    def _dropped(self, count: int, total: int) -> None:
        self._observers.emit("outcomes_dropped", self.task, count, total)

    def _refreshed(self) -> None:
        means = {p.path: p.mean for p in self.posteriors()}
        self._observers.emit("posteriors_changed", self.task, means)

    # -- requests ----------------------------------------------------------------
    def _attempts(self, context: str | None, args: Any, kwargs: Any) -> Attempts:
        ctx = self._context(context, args, kwargs)
        rid, order = self._begin(ctx)
        return Attempts(self._core, rid, ctx, order, args, kwargs)

    def _finish(self, req: Attempts) -> None:
        attempts = req.attempts
        self._recorder.record([a for a in attempts if not a.skipped])
        ok = bool(attempts) and attempts[-1].success
        if self._observers:
            self._observers.emit("request_finished", self.task, req.rid, attempts, ok)
        if not ok:
            raise AllPathsFailed(self.task, req.rid, attempts)

    def run(self, *args: Any, context: str | None = None, **kwargs: Any) -> Any:
        """Call paths in sampled order until one succeeds; return its result.

        Each attempt goes rate limit -> breaker -> retry(timeout(call)) -> success_fn.
        Raises :class:`AllPathsFailed` (with every attempt, skipped ones included) when
        none succeeds. ``context`` (or ``context_fn``) picks the posteriors to route by.
        """
        req = self._attempts(context, args, kwargs)
        while True:
            step = req.next()
            if isinstance(step, Call):
                started = time.perf_counter()
                try:
                    raw = call_path(step.path, step.timeout_s, args, kwargs)
                except Exception as exc:
                    req.raised(exc, started)
                else:
                    req.returned(raw, started)
            elif isinstance(step, Done):
                break
            else:
                step.sleep(step.seconds)
                req.slept(step.seconds)
        self._finish(req)
        return req.value

    async def arun(self, *args: Any, context: str | None = None, **kwargs: Any) -> Any:
        """The asyncio twin of :meth:`run`: async paths (or a path's ``afn``) are awaited;
        sync ones run in a worker thread, and waits (retries, rate limits) are asyncio
        sleeps, so the event loop never blocks."""
        req = self._attempts(context, args, kwargs)
        while True:
            step = req.next()
            if isinstance(step, Call):
                started = time.perf_counter()
                try:
                    raw = await acall_path(step.path, step.timeout_s, args, kwargs)
                except Exception as exc:
                    req.raised(exc, started)
                else:
                    req.returned(raw, started)
            elif isinstance(step, Done):
                break
            else:
                await step.asleep(step.seconds)
                req.slept(step.seconds)
        if self._recorder.sync and not self.store.in_process:
            # A blocking database write must not stall the event loop; a memory store's
            # is a dict update, not worth a thread hop.
            await to_daemon_thread(self._finish, req)
        else:
            self._finish(req)
        return req.value

    def check(self, samples: Iterable[Any]) -> list[PathCheck]:
        """Run every path — the final fallback included — on each sample, without routing.

        A sample that is a ``dict`` is passed as keyword arguments, a ``tuple`` as
        positional arguments, anything else as the single argument; a ``dict`` with only
        the keys ``"$args"`` (a list) and ``"$kwargs"`` (a mapping) gives both, which is how
        a JSON Lines file for ``adaptive-router check`` passes several positional
        arguments. Timeouts, retries and ``success_fn`` apply as in :meth:`run`; breakers
        and rate limits are bypassed and nothing is recorded or learned, so a fallback is
        tested on its own.
        """
        return check_paths(self._by_name.values(), self._settings, self._judge, samples)

    # -- reading and reporting -----------------------------------------------------
    def costs(self, window: timedelta = timedelta(hours=24)) -> CostReport:
        """Spend over a recent window: per path, tokens, cost per request and per 1,000
        requests, retries and fallbacks included; unknown costs counted apart."""
        secs = seconds(window, "window", allow_none=False) or 0.0
        self._recorder.flush()
        return cost_report(self.store, self.task, self.clock() - secs)

    def serve_metrics(self, port: int = 9464, addr: str = "127.0.0.1") -> MetricsServer:
        """Serve Prometheus metrics at ``http://addr:port/metrics`` (needs prometheus-client).

        Binds to loopback by default; pass ``addr="0.0.0.0"`` to expose it.
        """
        return serve_metrics(port, addr, self.metrics.registry if self.metrics else None)

    def health(self) -> dict[str, str]:
        """Each path's circuit-breaker state: ``closed``, ``open``, ``half_open`` or ``none``."""
        return {
            name: st.breaker.state.value if st.breaker is not None else "none"
            for name, st in self._settings.items()
        }

    def choose(self, context: str | None = None) -> Decision:
        """Pick a path for a request whose outcome will be reported later.

        The decision is persisted, so :meth:`report` may come from another process.
        """
        ctx = self._context(context, (), {})
        rid, order = self._begin(ctx)
        now = self.clock()
        self._expire(now)
        first = order[0]
        self.store.add_pending(
            PendingDecision(rid, self.task, first.name or "", now, ctx, first.model)
        )
        return Decision(rid, first.name or "", tuple(p.name or "" for p in order), now)

    def report(
        self,
        request_id: str,
        success: bool,
        latency_ms: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        metadata: dict[str, Any] | None = None,
        score: float | None = None,
    ) -> bool:
        """Complete a :meth:`choose`. Returns True if recorded, False if already reported.

        ``score`` (0-1) is the fractional evidence for routers that learn from scores;
        without it the evidence is ``success`` (1 or 0).

        Raises :class:`UnknownRequestError` for an id no ``choose`` issued (or one
        dropped after ``pending_ttl`` with ``on_expired="drop"``).
        """
        done = self._reporter.record(
            request_id,
            success,
            latency_ms=latency_ms,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
            metadata=metadata,
            score=score,
            write=self._recorder.write_through,
            before=self._expire,
        )
        if self._observers:
            for o in done.outcomes:
                self._observers.emit("attempt_finished", o)
        if done.outcomes and self._observers:
            self._observers.emit(
                "request_finished",
                self.task,
                request_id,
                list(done.outcomes),
                done.outcomes[0].success,
            )
        return done.recorded

    def _expire(self, now: float) -> None:
        if now - self._last_expiry < min(self.pending_ttl / 10, 60.0):
            return
        self._last_expiry = now

        def build(p: PendingDecision) -> Outcome:
            return Outcome(
                request_id=p.request_id,
                task=self.task,
                path=p.path,
                attempt=1,
                success=False,
                kind=ErrorKind.EXPIRED.value,
                error=f"no report within {self.pending_ttl:g} s",
                created_at=now,
            )

        expired: list[PendingDecision] = []

        def write() -> list[Outcome]:
            done = self.store.expire_pending(
                self.task,
                now - self.pending_ttl,
                build if self.on_expired == "failure" else None,
                self.half_life,
            )
            expired.extend(p for p, _ in done)
            return [o for _, o in done if o is not None]

        self._recorder.write_through(write)
        if expired:
            logger.warning(
                "%d pending decisions of task %s expired without a report (counted as %s)",
                len(expired),
                self.task,
                self.on_expired,
                extra={"task": self.task, "count": len(expired), "counted_as": self.on_expired},
            )

    def posteriors(self, context: str | None = None) -> list[Posterior]:
        """Each path's current Beta posterior (decay applied): learned paths, then the fallback.

        ``traffic_share`` is the path's share of the (decayed) evidence, i.e. of recent
        attempts, fallback attempts included. With ``context``, the posteriors that route
        that context: its own evidence on top of the (capped) task-level prior.
        """
        now = self.clock()
        prior = getattr(self.policy, "prior", (1.0, 1.0))
        names = [p.name or "" for p in self.paths]
        if self.fallback is not None:
            names.append(self.fallback.name or "")
        states = self._recorder.snapshot()
        if not context:
            return posteriors_from_states(states.get("", {}), names, prior, self.half_life, now)
        own = states.get(context, {})
        s, f = self.ranking.evidence(now, context)
        mixed: dict[str, PathState] = {}
        for i, p in enumerate(self.paths):
            st = own.get(p.name or "")
            mixed[p.name or ""] = PathState(
                float(s[i]),
                float(f[i]),
                now,
                st.successes if st else 0,
                st.failures if st else 0,
            )
        if self.fallback is not None and (self.fallback.name or "") in own:
            mixed[self.fallback.name or ""] = own[self.fallback.name or ""]
        return posteriors_from_states(mixed, names, prior, self.half_life, now)

    def contexts(self) -> list[str]:
        """The named contexts this task has evidence for."""
        return self._recorder.contexts()

    def stats(
        self, window: timedelta = timedelta(hours=1), context: str | None = None
    ) -> list[PathWindowStats]:
        """Per-path success rate, latency percentiles, tokens, cost (and mean score) over a
        recent window; in one context when ``context`` is given."""
        secs = seconds(window, "window", allow_none=False) or 0.0
        self._recorder.flush()
        return self.store.window_stats(self.task, self.clock() - secs, context=context)

    def flush(self) -> None:
        """Write buffered outcomes now (batch durability)."""
        self._recorder.flush()

    def refresh(self) -> None:
        """Flush, then reload posteriors from the store (picks up other processes' outcomes)."""
        self._recorder.refresh()

    @property
    def buffered_outcomes(self) -> int:
        """Outcomes recorded but not yet written to the store."""
        return self._recorder.buffered

    @property
    def dropped_outcomes(self) -> int:
        """Outcomes lost because the write buffer overflowed during a store outage."""
        return self._recorder.dropped

    def close(self) -> None:
        """Flush everything and release the store (if the router opened it)."""
        if self._closed:
            return
        self._closed = True
        self._log.close()
        for undo in self._unsubscribe:
            undo()
        self._unsubscribe.clear()
        self._recorder.close()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _observer_list(
    observers: Sequence[Observer],
    on_outcome: Callable[[Outcome], Any] | Sequence[Callable[[Outcome], Any]] | None,
) -> list[Observer]:
    items = list(observers)
    for obs in items:
        if not isinstance(obs, Observer):
            raise ConfigurationError(
                f"observers must be Observer instances, got {type(obs).__name__}"
            )
    if on_outcome is not None:
        callbacks = [on_outcome] if callable(on_outcome) else list(on_outcome)
        for cb in callbacks:
            if not callable(cb):
                raise ConfigurationError(f"on_outcome must be callable(s), got {cb!r}")
        items.append(CallbackObserver(callbacks))
    return items
