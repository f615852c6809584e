"""The Router: Thompson Sampling over durable Beta posteriors, with fallbacks."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from adaptive_router.errors import AllPathsFailed, ConfigurationError, UnknownRequestError
from adaptive_router.outcomes import Decision, ErrorKind, Outcome, PathWindowStats, Posterior
from adaptive_router.paths import Path, as_path, check_name
from adaptive_router.policy import Policy, ThompsonSampling, decay_factor
from adaptive_router.recorder import Recorder
from adaptive_router.stores import Store, open_store
from adaptive_router.stores.base import CompleteResult, PathState, PendingDecision

logger = logging.getLogger(__name__)

#: Metadata larger than this (as JSON) is rejected: it would bloat every outcome row.
MAX_METADATA_BYTES = 16_384
#: Error strings are cut to this length in outcomes and logs.
MAX_ERROR_CHARS = 500


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


def _check_count(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an int >= 0 or None, got {value!r}")
    return int(value)


def _check_amount(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number >= 0 or None, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def _check_metadata(metadata: object) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    try:
        encoded = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from None
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise ValueError(
            f"metadata is {len(encoded.encode())} bytes as JSON; the limit is "
            f"{MAX_METADATA_BYTES}. Store large payloads elsewhere and keep a reference."
        )
    result: dict[str, Any] = json.loads(encoded)  # a private copy: later mutation can't leak in
    return result


class Router:
    """Routes each request to the path most likely to succeed now.

    Parameters
    ----------
    paths:
        Callables or :class:`Path` objects that can each do the task. Names must be unique.
    success_fn:
        ``success_fn(result) -> bool`` (or 0/1): did the path's result do the job?
    task:
        Name under which evidence is kept; routers sharing a task and store learn together.
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
    """

    def __init__(
        self,
        paths: Sequence[Path | Callable[..., Any]],
        success_fn: Callable[[Any], Any],
        task: str,
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
        if not callable(success_fn):
            raise ConfigurationError(f"success_fn must be callable, got {success_fn!r}")
        self.success_fn = success_fn
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
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"Router(task={self.task!r}, paths={[p.name for p in self.paths]}, "
            f"fallback={self.fallback.name if self.fallback else None!r}, store={self.store!r})"
        )

    def _check_half_life(self) -> None:
        for name, st in self._recorder.states.items():
            stored = st.half_life_s
            if st.n and stored != self.half_life:
                raise ConfigurationError(
                    f"half_life: task {self.task!r} path {name!r} was learned with "
                    f"half_life={stored} s but this router has {self.half_life} s; every router "
                    "of a task must use the same half_life (or use a new task name)"
                )

    # -- ranking -----------------------------------------------------------------
    def _rank(self, now: float) -> list[Path]:
        states = self._recorder.states
        s = np.zeros(len(self.paths))
        f = np.zeros(len(self.paths))
        for i, p in enumerate(self.paths):
            st = states.get(p.name)  # type: ignore[arg-type]
            if st is not None:
                k = decay_factor(now - st.ref_time, self.half_life)
                s[i] = st.success_w * k
                f[i] = st.failure_w * k
        order = [self.paths[int(i)] for i in self.policy.rank(s, f, self.rng)]
        if self.fallback is not None:
            order.append(self.fallback)
        return order

    # -- the request core shared by run and arun ---------------------------------
    def _begin(self) -> tuple[str, list[Path]]:
        if self._closed:
            raise RuntimeError("this Router is closed; create a new one")
        return uuid.uuid4().hex, self._rank(self.clock())

    def _judge(self, rid: str, path: Path, attempt: int, result: Any, latency_ms: float) -> Outcome:
        kind: str | None = None
        error: str | None = None
        try:
            verdict = self.success_fn(result)
        except Exception as exc:
            kind, error = ErrorKind.EXCEPTION.value, "success_fn raised " + _error_text(exc)
            logger.warning(
                "success_fn raised",
                extra={"request_id": rid, "task": self.task, "path": path.name, "error": error},
            )
        else:
            ok = _as_verdict(verdict)
            if ok is None:
                kind = ErrorKind.INVALID_SUCCESS.value
                error = f"success_fn returned {type(verdict).__name__}, expected bool or 0/1"
                if not self._warned_invalid_success:
                    self._warned_invalid_success = True
                    logger.warning(error, extra={"task": self.task, "path": path.name})
            elif not ok:
                kind = (ErrorKind.EMPTY if _is_empty(result) else ErrorKind.REJECTED).value
        return Outcome(
            request_id=rid,
            task=self.task,
            path=path.name or "",
            attempt=attempt,
            success=kind is None,
            kind=kind,
            error=error,
            latency_ms=latency_ms,
            created_at=self.clock(),
        )

    def _raised(
        self, rid: str, path: Path, attempt: int, exc: Exception, latency_ms: float
    ) -> Outcome:
        error = _error_text(exc)
        logger.warning(
            "path raised",
            extra={"request_id": rid, "task": self.task, "path": path.name, "error": error},
        )
        return Outcome(
            request_id=rid,
            task=self.task,
            path=path.name or "",
            attempt=attempt,
            success=False,
            kind=ErrorKind.EXCEPTION.value,
            error=error,
            latency_ms=latency_ms,
            created_at=self.clock(),
        )

    def _log_fallback(self, rid: str, failed: Outcome, to: Path) -> None:
        logger.warning(
            "fallback from %s to %s: %s",
            failed.path,
            to.name,
            failed.kind,
            extra={
                "request_id": rid,
                "task": self.task,
                "from_path": failed.path,
                "to_path": to.name,
                "reason": failed.kind,
            },
        )

    def _finish(self, rid: str, attempts: list[Outcome]) -> None:
        self._recorder.record(attempts)
        if not attempts[-1].success:
            raise AllPathsFailed(self.task, rid, attempts)

    # -- public API ----------------------------------------------------------------
    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Call paths in sampled order until one succeeds; return its result.

        Raises :class:`AllPathsFailed` (with every attempt) when none does.
        """
        rid, order = self._begin()
        attempts: list[Outcome] = []
        for n, path in enumerate(order, start=1):
            if attempts:
                self._log_fallback(rid, attempts[-1], path)
            start = time.perf_counter()
            try:
                if path.is_async:
                    result = _run_coroutine(path.fn(*args, **kwargs))
                else:
                    result = path.fn(*args, **kwargs)
            except Exception as exc:
                attempts.append(self._raised(rid, path, n, exc, _ms_since(start)))
                continue
            outcome = self._judge(rid, path, n, result, _ms_since(start))
            attempts.append(outcome)
            if outcome.success:
                self._finish(rid, attempts)
                return result
        self._finish(rid, attempts)
        raise AssertionError("unreachable: _finish raises when the last attempt failed")

    async def arun(self, *args: Any, **kwargs: Any) -> Any:
        """The asyncio twin of :meth:`run`: async paths are awaited, sync ones run in a thread."""
        rid, order = self._begin()
        attempts: list[Outcome] = []
        for n, path in enumerate(order, start=1):
            if attempts:
                self._log_fallback(rid, attempts[-1], path)
            start = time.perf_counter()
            try:
                if path.is_async:
                    result = await path.fn(*args, **kwargs)
                else:
                    result = await asyncio.to_thread(functools.partial(path.fn, *args, **kwargs))
            except Exception as exc:
                attempts.append(self._raised(rid, path, n, exc, _ms_since(start)))
                continue
            outcome = self._judge(rid, path, n, result, _ms_since(start))
            attempts.append(outcome)
            if outcome.success:
                break
        if self._recorder.sync:
            await asyncio.to_thread(self._finish, rid, attempts)
        else:
            self._finish(rid, attempts)
        return result

    def choose(self) -> Decision:
        """Pick a path for a request whose outcome will be reported later.

        The decision is persisted, so :meth:`report` may come from another process.
        """
        rid, order = self._begin()
        now = self.clock()
        self._expire(now)
        first = order[0]
        self.store.add_pending(PendingDecision(rid, self.task, first.name or "", now))
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
    ) -> bool:
        """Complete a :meth:`choose`. Returns True if recorded, False if already reported.

        Raises :class:`UnknownRequestError` for an id no ``choose`` issued (or one
        dropped after ``pending_ttl`` with ``on_expired="drop"``).
        """
        if not isinstance(request_id, str) or not request_id:
            raise ValueError(f"request_id must be the string from choose(), got {request_id!r}")
        ok = _as_verdict(success)
        if ok is None:
            raise ValueError(f"success must be a bool (or 0/1), got {success!r}")
        latency = _check_amount("latency_ms", latency_ms)
        in_tok = _check_count("input_tokens", input_tokens)
        out_tok = _check_count("output_tokens", output_tokens)
        cost = _check_amount("cost_usd", cost_usd)
        meta = _check_metadata(metadata)
        now = self.clock()
        self._expire(now)

        def build(found: PendingDecision) -> Outcome:
            if found.task != self.task:
                raise _WrongTask(found.task)
            return Outcome(
                request_id=request_id,
                task=self.task,
                path=found.path,
                attempt=1,
                success=ok,
                kind=None if ok else ErrorKind.REJECTED.value,
                latency_ms=latency,
                input_tokens=in_tok,
                output_tokens=out_tok,
                cost_usd=cost,
                created_at=now,
                metadata=meta,
            )

        claimed: list[PendingDecision | str] = []

        def write() -> list[Outcome]:
            result = self.store.claim_pending(request_id, build, self.half_life)
            claimed.append(result)
            return [build(result)] if isinstance(result, PendingDecision) else []

        try:
            self._recorder.write_through(write)
        except _WrongTask as exc:
            # The transaction rolled back: the decision stays pending for its own router.
            raise ValueError(
                f"report: request_id {request_id!r} belongs to task {exc.args[0]!r}, "
                f"not {self.task!r}; report it through that task's router"
            ) from None
        if claimed[0] == CompleteResult.ALREADY_REPORTED:
            logger.warning(
                "report ignored: request already reported",
                extra={"request_id": request_id, "task": self.task},
            )
            return False
        if claimed[0] == CompleteResult.UNKNOWN:
            raise UnknownRequestError(
                f"report: request_id {request_id!r} is unknown to this store (never chosen, "
                "or expired and dropped); pass the request_id returned by choose()"
            )
        return True

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
                "pending decisions expired without a report",
                extra={"task": self.task, "count": len(expired), "counted_as": self.on_expired},
            )

    def posteriors(self) -> list[Posterior]:
        """Each path's current Beta posterior (decay applied): learned paths, then the fallback.

        ``traffic_share`` is the path's share of the (decayed) evidence, i.e. of recent attempts.
        """
        with self._recorder._lock:
            states = dict(self._recorder.states)
        names = [p.name or "" for p in self.paths]
        if self.fallback is not None:
            names.append(self.fallback.name or "")
        prior = getattr(self.policy, "prior", (1.0, 1.0))
        return posteriors_from_states(states, names, prior, self.half_life, self.clock())

    def stats(self, window: timedelta = timedelta(hours=1)) -> list[PathWindowStats]:
        """Per-path success rate, latency percentiles, tokens and cost over a recent window."""
        secs = _seconds(window, "window", allow_none=False) or 0.0
        self._recorder.flush()
        return self.store.window_stats(self.task, self.clock() - secs)

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


class _WrongTask(Exception):
    """Raised inside a claim transaction to roll it back."""


def _as_verdict(value: Any) -> bool | None:
    """bool, numpy bool or the ints 0/1 -> bool; anything else -> None (invalid)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    return None


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _run_coroutine(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise RuntimeError("an async path cannot be run by run() inside an event loop; use arun()")
