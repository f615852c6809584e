"""The Router: Thompson Sampling over durable Beta posteriors, with fallbacks."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from adaptive_router import metrics as metrics_mod
from adaptive_router import tracing as tracing_mod
from adaptive_router.alerts import Alert, Alerts
from adaptive_router.costs import Pricer
from adaptive_router.errors import AllPathsFailed, ConfigurationError
from adaptive_router.log_throttle import LogThrottle
from adaptive_router.metrics import MetricsServer, PrometheusMetrics, serve_metrics
from adaptive_router.observers import CallbackObserver, Observer, Observers
from adaptive_router.outcomes import (
    UNBILLED,
    Decision,
    ErrorKind,
    Outcome,
    PathWindowStats,
    Posterior,
    Result,
    Usage,
)
from adaptive_router.paths import INHERIT, Path, _Inherit, as_path, check_name
from adaptive_router.policy import Policy, ThompsonSampling, decay_factor
from adaptive_router.recorder import Recorder
from adaptive_router.reporting import (
    MAX_METADATA_BYTES,
    Reporter,
    as_score,
    as_verdict,
)
from adaptive_router.reports import CostReport, cost_report
from adaptive_router.resilience import (
    CircuitBreaker,
    RateLimit,
    RetryPolicy,
    RetryState,
    acall_with_timeout,
    call_with_timeout,
    classify,
    to_daemon_thread,
)
from adaptive_router.resilience.timeouts import check_timeout
from adaptive_router.stores import Store, open_store
from adaptive_router.stores.base import PathState, PendingDecision
from adaptive_router.tracing import Tracing

logger = logging.getLogger(__name__)

__all__ = ["MAX_METADATA_BYTES", "PathCheck", "Router", "posteriors_from_states"]

#: Error strings are cut to this length in outcomes and logs.
MAX_ERROR_CHARS = 500
#: Seconds (router clock) during which repeats of a warning are counted, not logged.
LOG_WINDOW_S = 60.0


def _seconds(value: timedelta | float | int | None, name: str, *, allow_none: bool) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise ConfigurationError(f"{name} is required")
    if isinstance(value, timedelta):
        secs = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        secs = float(value)
    else:
        raise ConfigurationError(
            f"{name} must be a timedelta (e.g. timedelta(minutes=10)) or seconds, "
            f"got {type(value).__name__}"
        )
    if not (secs > 0 and math.isfinite(secs)):
        raise ConfigurationError(f"{name} must be positive, got {value!r}")
    return secs


def _is_empty(result: Any) -> bool:
    if result is None:
        return True
    if isinstance(result, str):
        return not result.strip()
    if isinstance(result, (list, tuple, dict, set, bytes)):
        return len(result) == 0
    return False


def _error_text(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose __str__ itself fails must not break the request
        text = f"{type(exc).__name__}: <unprintable>"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _short(text: str, limit: int = 120) -> str:
    """The first line of an error text, cut to ``limit`` characters: for log messages."""
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class _Settings:
    """A path's resolved resilience settings (path value, else the router default)."""

    timeout: float | None
    retry: RetryPolicy | None
    breaker: CircuitBreaker | None
    rate_limit: RateLimit | None


_NO_USAGE = Usage()
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


def default_breaker(name: str) -> CircuitBreaker:
    """The router's default per-path breaker: opens after 5 consecutive failures or a
    50% failure rate over the last 20 calls (at least 10), probes again after 30 s."""
    return CircuitBreaker(
        failure_threshold=5,
        failure_rate=0.5,
        window=20,
        min_calls=10,
        reset_timeout_s=30.0,
        name=name,
    )


def _make_breaker(
    spec: CircuitBreaker | Callable[[str], CircuitBreaker], name: str
) -> CircuitBreaker:
    if isinstance(spec, CircuitBreaker):
        # A breaker given router-wide is a template: each path gets its own state.
        return spec.copy(name=name)
    made = spec(name)
    if not isinstance(made, CircuitBreaker):
        raise ConfigurationError("breaker factory must return a CircuitBreaker")
    return made


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
        retry: RetryPolicy | _Inherit | None = INHERIT,
        breaker: CircuitBreaker | Callable[[str], CircuitBreaker] | None = default_breaker,
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
        self.pending_ttl = _seconds(pending_ttl, "pending_ttl", allow_none=False) or 0.0
        self.half_life = _seconds(half_life, "half_life", allow_none=True)
        for name, value in (
            ("flush_interval", flush_interval),
            ("refresh_interval", refresh_interval),
        ):
            _seconds(value, name, allow_none=False)
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
            self.policy: Policy = policy or ThompsonSampling(prior, self.half_life, explore)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if policy is not None and policy.half_life != self.half_life:
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
        self._warned_invalid_success = False
        # Repetitive warnings (a path failing on every request, a judge that raises) log
        # the first per key and window, then a count; observers still see every event.
        self._throttle = LogThrottle(LOG_WINDOW_S, self.clock)
        #: key -> (level, summary format, its args, extra) of the throttled warnings.
        self._summaries: dict[Any, tuple[int, str, tuple[Any, ...], dict[str, Any]]] = {}
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
        self._settings = self._resolve_settings(timeout, retry, breaker, seed)
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

    def _check_half_life(self) -> None:
        for name, st in self._recorder.states.get("", {}).items():
            stored = st.half_life_s
            if st.n and stored != self.half_life:
                raise ConfigurationError(
                    f"half_life: task {self.task!r} path {name!r} was learned with "
                    f"half_life={stored} s but this router has {self.half_life} s; every router "
                    "of a task must use the same half_life (or use a new task name)"
                )

    # -- ranking -----------------------------------------------------------------
    def _evidence(self, now: float, context: str) -> tuple[np.ndarray, np.ndarray]:
        """Decayed success/failure weights per learned path, as the policy sees them.

        In a named context the task-level evidence acts as the prior, scaled down to at
        most ``context_prior_strength`` pseudo-observations per path, so a new context
        starts from what the task knows and its own evidence soon dominates.
        """
        task_level = self._recorder.states.get("", {})
        s = np.zeros(len(self.paths))
        f = np.zeros(len(self.paths))
        for i, p in enumerate(self.paths):
            st = task_level.get(p.name or "")
            if st is not None:
                k = decay_factor(now - st.ref_time, self.half_life)
                s[i] = st.success_w * k
                f[i] = st.failure_w * k
        if not context:
            return s, f
        n = s + f
        scale = np.where(
            n > self.context_prior_strength,
            self.context_prior_strength / np.maximum(n, 1e-300),
            1.0,
        )
        s, f = s * scale, f * scale
        own = self._recorder.states.get(context, {})
        for i, p in enumerate(self.paths):
            st = own.get(p.name or "")
            if st is not None:
                k = decay_factor(now - st.ref_time, self.half_life)
                s[i] += st.success_w * k
                f[i] += st.failure_w * k
        return s, f

    def _rank(self, now: float, context: str = "") -> list[Path]:
        s, f = self._evidence(now, context)
        order = [self.paths[int(i)] for i in self.policy.rank(s, f, self.rng)]
        if self._unclosed:
            # Open breakers move to the back (still tried, as skipped, if all else fails).
            order.sort(key=self._breaker_closed_first)
        if self.fallback is not None:
            order.append(self.fallback)
        return order

    def _breaker_closed_first(self, p: Path) -> int:
        b = self._settings[p.name or ""].breaker
        return 0 if b is None or b.available else 1

    # -- the request core shared by run and arun ---------------------------------
    def _begin(self, context: str = "") -> tuple[str, list[Path]]:
        if self._closed:
            raise RuntimeError("this Router is closed; create a new one")
        rid = new_request_id()
        if self._observers:
            self._observers.emit("request_started", self.task, rid)
        return rid, self._rank(self.clock(), context)

    def _context(self, context: str | None, args: Any, kwargs: Any) -> str:
        """The request's context: the ``context=`` argument, else ``context_fn(...)``, else ""."""
        if context is None and self.context_fn is not None:
            try:
                context = self.context_fn(*args, **kwargs)
            except Exception as exc:
                raise ValueError(f"context_fn raised {_error_text(exc)}") from exc
        if context is None or context == "":
            return ""
        check_name("context", context)
        if context not in self._recorder.states and (
            len(self._recorder.states) - ("" in self._recorder.states) >= self.max_contexts
        ):
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

    def _resolve_settings(
        self,
        timeout: float | None,
        retry: RetryPolicy | _Inherit | None,
        breaker: CircuitBreaker | Callable[[str], CircuitBreaker] | None,
        seed: int | np.random.Generator | None,
    ) -> dict[str, _Settings]:
        default_timeout = check_timeout("timeout", timeout)
        if isinstance(retry, _Inherit):
            # Jitter is seeded from the router's int seed (reproducible) but drawn from its
            # own stream, so routing consumes self.rng exactly as the simulator does.
            retry = RetryPolicy(rng=seed if isinstance(seed, int) else None)
        elif not (retry is None or isinstance(retry, RetryPolicy)):
            raise ConfigurationError(f"retry must be a RetryPolicy or None, got {retry!r}")
        if not (breaker is None or isinstance(breaker, CircuitBreaker) or callable(breaker)):
            raise ConfigurationError(
                "breaker must be a CircuitBreaker (a template: each path gets its own), "
                "a factory name -> CircuitBreaker, or None"
            )
        settings: dict[str, _Settings] = {}
        for p in self._by_name.values():
            name = p.name or ""
            b: CircuitBreaker | None
            if isinstance(p.breaker, _Inherit):
                b = None if breaker is None or p is self.fallback else _make_breaker(breaker, name)
            else:
                b = p.breaker
            settings[name] = _Settings(
                timeout=default_timeout if isinstance(p.timeout, _Inherit) else p.timeout,
                retry=retry if isinstance(p.retry, _Inherit) else p.retry,
                breaker=b,
                rate_limit=p.rate_limit,
            )
        # Paths whose breaker is not closed; ranking only re-sorts while one is.
        self._unclosed: set[str] = set()
        for name, st in settings.items():
            if st.breaker is not None:
                if st.breaker.state.value != "closed":
                    self._unclosed.add(name)
                self._unsubscribe.append(
                    st.breaker.on_change(functools.partial(self._track_breaker, name))
                )
        return settings

    def _track_breaker(self, name: str, _breaker: str, old: Any, new: Any) -> None:
        if getattr(new, "value", new) == "closed":
            self._unclosed.discard(name)
        else:
            self._unclosed.add(name)

    def _outcome(
        self,
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
    ) -> Outcome:
        u = usage or _NO_USAGE
        cost = u.cost_usd
        if cost is None and u.input_tokens is None and u.output_tokens is None and kind in UNBILLED:
            # An error status or a refused connection: nothing was generated, nothing billed.
            cost = 0.0
        elif cost is None and (u.input_tokens is not None or u.output_tokens is not None):
            cost = self._pricer.cost(
                u.model or path.model,
                u.input_tokens,
                u.output_tokens,
                cache_read_tokens=u.cache_read_tokens,
                cache_write_tokens=u.cache_write_tokens,
            )
        return Outcome(
            request_id=rid,
            task=self.task,
            path=path.name or "",
            attempt=attempt,
            success=kind is None,
            kind=kind,
            error=error,
            latency_ms=latency_ms,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cost_usd=cost,
            created_at=self.clock(),
            retries=retries,
            context=context,
            score=score,
            metadata=metadata,
        )

    def _judge(
        self, rid: str, path: Path, result: Any, context: str = ""
    ) -> tuple[str | None, str | None, float | None]:
        """Apply success_fn or score_fn: (kind, error, score); kind None means success."""
        if self.score_fn is not None:
            return self._judge_score(rid, path, result, context)
        assert self.success_fn is not None
        try:
            verdict = self.success_fn(result)
        except Exception as exc:
            return self._judge_raised("success_fn", rid, path, exc)
        ok = as_verdict(verdict)
        if ok is None:
            error = f"success_fn returned {type(verdict).__name__}, expected bool or 0/1"
            if not self._warned_invalid_success:
                self._warned_invalid_success = True
                logger.warning(
                    "%s (path %s of task %s; warned once)",
                    error,
                    path.name,
                    self.task,
                    extra={"task": self.task, "path": path.name},
                )
            return ErrorKind.INVALID_SUCCESS.value, error, None
        if not ok:
            return (ErrorKind.EMPTY if _is_empty(result) else ErrorKind.REJECTED).value, None, None
        return None, None, None

    def _judge_raised(
        self, which: str, rid: str, path: Path, exc: Exception
    ) -> tuple[str, str, None]:
        """A judge that raised: the judge's bug, not the path's. The attempt is recorded as
        ``success_fn_error`` (no evidence, see ``NOT_EVIDENCE``) and its traceback logged,
        the first per path and window; the rest are counted into a summary line."""
        error = f"{which} raised " + _error_text(exc)
        self._log_throttled(
            ("judge", path.name),
            "%s raised on path %s of task %s: %s (not counted against the path; "
            "the next path is tried)",
            (which, path.name, self.task, _short(_error_text(exc))),
            "%s raised on path %s of task %s %d more times in the last %g s",
            (which, path.name, self.task),
            {"request_id": rid, "task": self.task, "path": path.name, "error": error},
            level=logging.ERROR,
            exc_info=exc,
        )
        return ErrorKind.SUCCESS_FN_ERROR.value, error, None

    def _judge_score(
        self, rid: str, path: Path, result: Any, context: str = ""
    ) -> tuple[str | None, str | None, float | None]:
        assert self.score_fn is not None
        try:
            raw = self.score_fn(result)
        except Exception as exc:
            return self._judge_raised("score_fn", rid, path, exc)
        if raw is None:
            # Unknown (e.g. an LLM judge that could not grade): the attempt passes, and its
            # evidence is the path's current posterior mean, which leaves that mean as it is.
            logger.info(
                "score unknown: score_fn returned None for path %s of task %s",
                path.name,
                self.task,
                extra={"request_id": rid, "task": self.task, "path": path.name},
            )
            return None, "score unknown: score_fn returned None", self._mean(path, context)
        score = as_score(raw)
        if score is None:
            error = f"score_fn returned {raw!r:.60}, expected a number in [0, 1]"
            if not self._warned_invalid_success:
                self._warned_invalid_success = True
                logger.warning(
                    "%s (path %s of task %s; warned once)",
                    error,
                    path.name,
                    self.task,
                    extra={"task": self.task, "path": path.name},
                )
            # Counted as a zero-score failure: a broken scorer must not look like success.
            return ErrorKind.INVALID_SCORE.value, error, 0.0
        if score < self.min_score:
            kind = ErrorKind.EMPTY if _is_empty(result) else ErrorKind.REJECTED
            return kind.value, None, score
        return None, None, score

    def _mean(self, path: Path, context: str) -> float:
        """The path's posterior mean now (prior included): a score that adds no information
        (α + m, β + 1 - m with m = α / (α + β) keeps the mean at m)."""
        a, b = getattr(self.policy, "prior", (1.0, 1.0))
        try:
            i = next(k for k, p in enumerate(self.paths) if p is path)
        except StopIteration:  # the final fallback is not learned
            return float(a / (a + b))
        s, f = self._evidence(self.clock(), context)
        return float((a + s[i]) / (a + b + s[i] + f[i]))

    def _gate(self, rid: str, path: Path, st: _Settings) -> Outcome | None:
        """Rate limit, then breaker. A skipped path gets an unrecorded outcome (attempt 0)."""
        kind: str | None = None
        if st.rate_limit is not None and not st.rate_limit.acquire():
            kind, error = ErrorKind.RATE_LIMITED.value, "application rate limit exhausted"
        elif st.breaker is not None and not st.breaker.allow():
            kind, error = ErrorKind.BREAKER_OPEN.value, "circuit breaker open"
        if kind is None:
            return None
        return Outcome(
            request_id=rid,
            task=self.task,
            path=path.name or "",
            attempt=0,
            success=False,
            kind=kind,
            error=error,
            latency_ms=0.0,
            created_at=self.clock(),
            skipped=True,
        )

    def _settle(
        self,
        rid: str,
        path: Path,
        st: _Settings,
        n: int,
        started: float,
        raw: Any,
        exc: Exception | None,
        state: RetryState,
        context: str = "",
    ) -> tuple[Outcome, Any]:
        """Turn a finished call (value or exception) into its outcome; feed the breaker."""
        latency = _ms_since(started)
        if exc is not None:
            kind = classify(exc).value
            usage = getattr(exc, "usage", None)
            meta = getattr(exc, "outcome_metadata", None)
            error = _error_text(exc)
            self._log_throttled(
                ("failed", path.name, kind),
                "path %s failed (%s): %s",
                (path.name, kind, _short(error)),
                "path %s failed (%s) %d more times in the last %g s",
                (path.name, kind),
                {
                    "request_id": rid,
                    "task": self.task,
                    "path": path.name,
                    "kind": kind,
                    "error": error,
                    "retries": state.retries,
                },
            )
            outcome = self._outcome(
                rid,
                path,
                n,
                kind=kind,
                error=error,
                latency_ms=latency,
                usage=usage if isinstance(usage, Usage) else None,
                retries=state.retries,
                context=context,
                metadata=meta if isinstance(meta, dict) else None,
            )
            value = None
        else:
            if isinstance(raw, Result):
                value, usage, meta = raw.value, raw.usage, raw.metadata
            else:
                value, usage, meta = raw, None, None
            verdict, why, score = self._judge(rid, path, value, context)
            outcome = self._outcome(
                rid,
                path,
                n,
                kind=verdict,
                error=why,
                latency_ms=latency,
                usage=usage,
                retries=state.retries,
                context=context,
                score=score,
                metadata=meta,
            )
        if st.breaker is not None and outcome.kind != ErrorKind.SUCCESS_FN_ERROR.value:
            # A judge that raised says nothing about the path: the breaker hears nothing.
            if outcome.kind in _BREAKER_FAILURES:
                st.breaker.record_failure(outcome.kind)
            else:
                st.breaker.record_success()
        if st.rate_limit is not None and (outcome.input_tokens or outcome.output_tokens):
            st.rate_limit.record_tokens((outcome.input_tokens or 0) + (outcome.output_tokens or 0))
        return outcome, value

    def _call_sync(self, path: Path, st: _Settings, args: Any, kwargs: Any) -> Any:
        if path.is_async:
            coro = path.fn(*args, **kwargs)
            if st.timeout is not None and not path.enforces_timeout:
                coro = asyncio.wait_for(coro, st.timeout)
            return _run_coroutine(coro)
        if st.timeout is None or path.enforces_timeout:
            return path.fn(*args, **kwargs)
        return call_with_timeout(path.fn, st.timeout, *args, **kwargs)

    async def _call_async(self, path: Path, st: _Settings, args: Any, kwargs: Any) -> Any:
        afn = path.afn or (path.fn if path.is_async else None)
        limit = None if path.enforces_timeout else st.timeout
        if afn is not None:
            if limit is None:
                return await afn(*args, **kwargs)
            return await acall_with_timeout(afn, limit, *args, **kwargs)
        if limit is None:
            return await to_daemon_thread(path.fn, *args, **kwargs)
        return await acall_with_timeout(to_daemon_thread, limit, path.fn, *args, **kwargs)

    def _log_fallback(self, rid: str, failed: Outcome, to: Path) -> None:
        self._log_throttled(
            ("fallback", failed.path, to.name, failed.kind),
            "fallback from %s to %s: %s",
            (failed.path, to.name, failed.kind),
            "fallback from %s to %s: %s, %d more times in the last %g s",
            (failed.path, to.name, failed.kind),
            {
                "request_id": rid,
                "task": self.task,
                "from_path": failed.path,
                "to_path": to.name,
                "reason": failed.kind,
            },
        )

    def _log_throttled(
        self,
        key: tuple[Any, ...],
        msg: str,
        args: tuple[Any, ...],
        summary: str,
        summary_args: tuple[Any, ...],
        extra: dict[str, Any],
        *,
        level: int = logging.WARNING,
        exc_info: BaseException | None = None,
    ) -> None:
        """Log ``msg`` the first time per ``key`` and window; once the window has passed
        (or the router closes), ``summary`` with the count held back (its args + count +
        window seconds)."""
        log_it, held = self._throttle.admit(key)
        self._summaries[key] = (level, summary, summary_args, extra)
        if held:
            logger.log(
                level, summary, *summary_args, held, LOG_WINDOW_S, extra={**extra, "count": held}
            )
        if log_it:
            logger.log(level, msg, *args, exc_info=exc_info, extra=extra)

    def _finish(self, rid: str, attempts: list[Outcome]) -> None:
        self._recorder.record([a for a in attempts if not a.skipped])
        ok = bool(attempts) and attempts[-1].success
        if self._observers:
            self._observers.emit("request_finished", self.task, rid, attempts, ok)
        if not ok:
            raise AllPathsFailed(self.task, rid, attempts)

    def _attempt_started(self, rid: str, path: Path, n: int) -> None:
        if self._observers:
            self._observers.emit("attempt_started", self.task, rid, path.name, n)

    def _attempt_finished(self, outcome: Outcome) -> None:
        if self._observers:
            self._observers.emit("attempt_finished", outcome)

    # -- public API ----------------------------------------------------------------
    def _attempts(self, context: str | None, args: Any, kwargs: Any) -> _Request:
        ctx = self._context(context, args, kwargs)
        rid, order = self._begin(ctx)
        return _Request(self, rid, ctx, order)

    def run(self, *args: Any, context: str | None = None, **kwargs: Any) -> Any:
        """Call paths in sampled order until one succeeds; return its result.

        Each attempt goes rate limit -> breaker -> retry(timeout(call)) -> success_fn.
        Raises :class:`AllPathsFailed` (with every attempt, skipped ones included) when
        none succeeds. ``context`` (or ``context_fn``) picks the posteriors to route by.
        """
        req = self._attempts(context, args, kwargs)
        for path, st, state in req:
            started = time.perf_counter()
            try:
                if st.retry is None:
                    raw = self._call_sync(path, st, args, kwargs)
                else:
                    raw = st.retry.call(self._call_sync, path, st, args, kwargs, retry_state=state)
            except Exception as exc:
                req.settle(path, st, started, None, exc, state)
            else:
                req.settle(path, st, started, raw, None, state)
        self._finish(req.rid, req.attempts)
        return req.value

    async def arun(self, *args: Any, context: str | None = None, **kwargs: Any) -> Any:
        """The asyncio twin of :meth:`run`: async paths (or a path's ``afn``) are awaited;
        sync ones run in a worker thread so the event loop never blocks."""
        req = self._attempts(context, args, kwargs)
        for path, st, state in req:
            started = time.perf_counter()
            try:
                if st.retry is None:
                    raw = await self._call_async(path, st, args, kwargs)
                else:
                    raw = await st.retry.acall(
                        self._call_async, path, st, args, kwargs, retry_state=state
                    )
            except Exception as exc:
                req.settle(path, st, started, None, exc, state)
            else:
                req.settle(path, st, started, raw, None, state)
        if self._recorder.sync and not self.store.in_process:
            # A blocking database write must not stall the event loop; a memory store's
            # is a dict update, not worth a thread hop.
            await to_daemon_thread(self._finish, req.rid, req.attempts)
        else:
            self._finish(req.rid, req.attempts)
        return req.value

    def check(self, samples: Iterable[Any]) -> list[PathCheck]:
        """Run every path — the final fallback included — on each sample, without routing.

        A sample that is a ``dict`` is passed as keyword arguments, a ``tuple`` as
        positional arguments, anything else as the single argument; a ``dict`` with only
        the keys ``"$args"`` (a list) and ``"$kwargs"`` (a mapping) gives both, which is how
        a JSON Lines file for ``adaptive-router check`` passes several positional
        arguments. Timeouts, retries and
        ``success_fn`` apply as in :meth:`run`; breakers and rate limits are bypassed and
        nothing is recorded or learned, so a fallback is tested on its own.
        """
        calls = [as_call(x) for x in samples]
        if not calls:
            raise ValueError("samples is empty; give at least one input to check the paths on")
        report: list[PathCheck] = []
        for path in self._by_name.values():
            st = self._settings[path.name or ""]
            latencies: list[float] = []
            errors: dict[str, int] = {}
            examples: dict[str, str] = {}
            ok = 0
            for args, kwargs in calls:
                started = time.perf_counter()
                try:
                    raw = (
                        st.retry.call(self._call_sync, path, st, args, kwargs)
                        if st.retry is not None
                        else self._call_sync(path, st, args, kwargs)
                    )
                except Exception as exc:
                    kind: str | None = classify(exc).value
                    why: str | None = _error_text(exc)
                else:
                    value = raw.value if isinstance(raw, Result) else raw
                    kind, why, _ = self._judge("check", path, value)
                    if kind is not None and why is None:
                        judge = "score_fn" if self.score_fn is not None else "success_fn"
                        why = f"{judge} rejected the result {value!r:.80}"
                latencies.append(_ms_since(started))
                if kind is None:
                    ok += 1
                else:
                    errors[kind] = errors.get(kind, 0) + 1
                    examples.setdefault(kind, _short(why or kind, 200))
            p50, p95 = (float(x) for x in np.percentile(latencies, [50, 95]))
            report.append(
                PathCheck(
                    path=path.name or "",
                    runs=len(calls),
                    successes=ok,
                    latency_p50_ms=p50,
                    latency_p95_ms=p95,
                    errors=errors,
                    examples=examples,
                )
            )
        return report

    @classmethod
    def from_models(
        cls,
        models: Sequence[str | Path],
        prompt: Any,
        schema: Any = None,
        success_fn: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> Router:
        """A router over provider paths built from model names (``"gpt-4o"``,
        ``"claude-3-5-sonnet-20241022"``…): one prompt, one schema, ``task=`` and other
        keyword arguments as for :class:`Router`.

        See :func:`adaptive_router.providers.router_from_models`.
        """
        from adaptive_router.providers import router_from_models

        return router_from_models(models, prompt, schema, success_fn, **kwargs)

    def as_runnable(self, *, unpack: bool = False) -> Any:
        """This router as a LangChain ``Runnable``.

        See :func:`adaptive_router.integrations.as_runnable`.
        """
        from adaptive_router.integrations import as_runnable

        return as_runnable(self, unpack=unpack)

    def costs(self, window: timedelta = timedelta(hours=24)) -> CostReport:
        """Spend over a recent window: per path, tokens, cost per request and per 1,000
        requests, retries and fallbacks included; unknown costs counted apart."""
        secs = _seconds(window, "window", allow_none=False) or 0.0
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
        for o in done.outcomes:
            self._attempt_finished(o)
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
        with self._recorder._lock:
            states = {c: dict(paths) for c, paths in self._recorder.states.items()}
        if not context:
            return posteriors_from_states(states.get("", {}), names, prior, self.half_life, now)
        own = states.get(context, {})
        with self._recorder._lock:
            s, f = self._evidence(now, context)
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
        with self._recorder._lock:
            return sorted(c for c in self._recorder.states if c)

    def stats(
        self, window: timedelta = timedelta(hours=1), context: str | None = None
    ) -> list[PathWindowStats]:
        """Per-path success rate, latency percentiles, tokens, cost (and mean score) over a
        recent window; in one context when ``context`` is given."""
        secs = _seconds(window, "window", allow_none=False) or 0.0
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
        for key, held in self._throttle.drain():
            level, summary, args, extra = self._summaries[key]
            logger.log(level, summary, *args, held, LOG_WINDOW_S, extra={**extra, "count": held})
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


def posteriors_from_states(
    states: dict[str, PathState],
    names: Sequence[str],
    prior: tuple[float, float],
    half_life: float | None,
    now: float,
) -> list[Posterior]:
    """Posteriors of ``names`` from stored evidence, decayed to ``now``.

    Shared by :meth:`Router.posteriors` and the CLI (which reads a store without a Router).
    """
    rows: list[tuple[str, float, float, int, int, float | None]] = []
    for name in names:
        st = states.get(name)
        if st is None:
            rows.append((name, 0.0, 0.0, 0, 0, None))
            continue
        k = decay_factor(now - st.ref_time, half_life)
        rows.append(
            (name, st.success_w * k, st.failure_w * k, st.successes, st.failures, st.ref_time)
        )
    total = sum(s + f for _, s, f, *_ in rows)
    return [
        Posterior(
            path=name,
            alpha=prior[0] + s,
            beta=prior[1] + f,
            n=succ + fail,
            successes=succ,
            failures=fail,
            traffic_share=(s + f) / total if total else 0.0,
            updated_at=ref,
        )
        for name, s, f, succ, fail, ref in rows
    ]


@dataclass(frozen=True, slots=True)
class PathCheck:
    """One path's results from :meth:`Router.check`."""

    path: str
    runs: int
    successes: int
    latency_p50_ms: float
    latency_p95_ms: float
    errors: dict[str, int]
    examples: dict[str, str] = field(default_factory=dict)
    """The first failure's message for each kind in ``errors`` (its first line, cut)."""

    @property
    def success_rate(self) -> float:
        return self.successes / self.runs if self.runs else math.nan


#: Keys of a sample that spells out positional and keyword arguments (JSON has no tuples).
#: No Python parameter can be called ``$args``, so they never clash with keyword names.
SAMPLE_ARGS, SAMPLE_KWARGS = "$args", "$kwargs"


def as_call(sample: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` for one :meth:`Router.check` sample (see there); ValueError when a
    ``$args``/``$kwargs`` sample is malformed."""
    if isinstance(sample, dict):
        if SAMPLE_ARGS not in sample and SAMPLE_KWARGS not in sample:
            return (), dict(sample)
        extra = sorted(str(k) for k in sample if k not in (SAMPLE_ARGS, SAMPLE_KWARGS))
        if extra:
            raise ValueError(
                f"a sample with {SAMPLE_ARGS!r}/{SAMPLE_KWARGS!r} takes no other keys; move "
                f"{', '.join(extra)} into {SAMPLE_KWARGS!r}"
            )
        args = sample.get(SAMPLE_ARGS, [])
        kwargs = sample.get(SAMPLE_KWARGS, {})
        if not isinstance(args, (list, tuple)):
            raise ValueError(
                f"{SAMPLE_ARGS!r} must be a list of positional arguments, got {args!r}"
            )
        if not (isinstance(kwargs, dict) and all(isinstance(k, str) for k in kwargs)):
            raise ValueError(
                f"{SAMPLE_KWARGS!r} must be a mapping of keyword arguments, got {kwargs!r}"
            )
        return tuple(args), dict(kwargs)
    if isinstance(sample, tuple):
        return sample, {}
    return (sample,), {}


_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)  # a forked worker must not repeat its parent's ids


def new_request_id() -> str:
    """32 hex characters: milliseconds since the epoch, then 80 random bits.

    Time-ordered keys keep inserts into the unique index local, and the Mersenne
    Twister avoids ``uuid4``'s system call per request (which also hands the GIL to the
    writer thread mid-request). Reseeded from the OS in every forked child.
    """
    return f"{time.time_ns() // 1_000_000:012x}{_ids.getrandbits(80):020x}"


class _Request:
    """One request's walk down its ranked paths: the core that ``run`` and ``arun`` share
    (they differ only in how they call a path). Iterating yields each path to call, after
    the fallback log line, the rate-limit and breaker gates (skips are recorded as
    skipped attempts) and the observers' attempt start; it stops after a success."""

    __slots__ = ("attempts", "ctx", "n", "order", "rid", "router", "value")

    def __init__(self, router: Router, rid: str, ctx: str, order: list[Path]) -> None:
        self.router = router
        self.rid = rid
        self.ctx = ctx
        self.order = order
        self.attempts: list[Outcome] = []
        self.n = 0
        self.value: Any = None

    def __iter__(self) -> Iterator[tuple[Path, _Settings, RetryState]]:
        router = self.router
        for path in self.order:
            if self.attempts:
                if self.attempts[-1].success:
                    return
                router._log_fallback(self.rid, self.attempts[-1], path)
            st = router._settings[path.name or ""]
            skipped = router._gate(self.rid, path, st)
            if skipped is not None:
                self.attempts.append(skipped)
                router._attempt_finished(skipped)
                continue
            self.n += 1
            router._attempt_started(self.rid, path, self.n)
            yield path, st, RetryState(path=path.name)

    def settle(
        self,
        path: Path,
        st: _Settings,
        started: float,
        raw: Any,
        error: Exception | None,
        state: RetryState,
    ) -> None:
        outcome, value = self.router._settle(
            self.rid, path, st, self.n, started, raw, error, state, self.ctx
        )
        self.attempts.append(outcome)
        self.router._attempt_finished(outcome)
        if outcome.success:
            self.value = value


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


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _run_coroutine(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("an async path cannot be run by run() inside an event loop; use arun()")
