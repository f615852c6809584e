"""Rate limits: :class:`RateLimit`, a requests- and tokens-per-minute budget kept by the
``limits`` library, in memory or shared through Redis.

A blocking caller reaches Redis through ``limits``' sync storage; an asyncio caller
(:meth:`RateLimit.atake`, :meth:`RateLimit.aacquire`, ``Router.arun``) through its async
twin (``limits.aio``, redis-py's asyncio client) on the caller's own event loop, so a
round trip never blocks the loop. Both storages hold the same keys: one budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
import urllib.parse
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from adaptive_router import forks
from adaptive_router._checks import check_callables, redact, redact_url
from adaptive_router._imports import require
from adaptive_router.errors import ConfigurationError
from adaptive_router.outcomes import ErrorKind
from adaptive_router.resilience.timeouts import asyncio_sleep, check_seconds, to_daemon_thread

if TYPE_CHECKING:
    from limits import RateLimitItem, RateLimitItemPerMinute
    from limits.aio import storage as aio_storage
    from limits.aio import strategies as aio_strategies
    from limits.errors import ConfigurationError as LimitsConfigurationError
    from limits.errors import StorageError
    from limits.storage import (
        MemoryStorage,
        SlidingWindowCounterSupport,
        Storage,
        storage_from_string,
    )
    from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

logger = logging.getLogger(__name__)
_limits_loaded = False


def _load_limits() -> None:
    """Import ``limits`` (~0.1 s: every storage backend's module) when the first
    :class:`RateLimit` is made, not with the package. Binds the names above (once)."""
    global RateLimitItem, RateLimitItemPerMinute, LimitsConfigurationError, StorageError
    global MemoryStorage, SlidingWindowCounterSupport, Storage, storage_from_string
    global MovingWindowRateLimiter, SlidingWindowCounterRateLimiter, _limits_loaded
    if _limits_loaded:
        return
    from limits import RateLimitItem, RateLimitItemPerMinute
    from limits.errors import ConfigurationError as LimitsConfigurationError
    from limits.errors import StorageError
    from limits.storage import (
        MemoryStorage,
        SlidingWindowCounterSupport,
        Storage,
        storage_from_string,
    )
    from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

    _limits_loaded = True  # after the names are bound: another thread may be making one


__all__ = ["RateLimit", "RateLimitExceeded", "redact_url"]


class RateLimitExceeded(Exception):
    """Raised by a caller that found its rate limit exhausted. Kind ``rate_limited``."""

    kind = ErrorKind.RATE_LIMITED

    def __init__(self, key: str, retry_in_s: float | None = None) -> None:
        hint = f"; retry in {retry_in_s:.2f} s" if retry_in_s is not None else ""
        super().__init__(f"rate limit {key!r} exhausted{hint}")
        self.key = key
        self.retry_in_s = retry_in_s


_STORAGES: dict[tuple[str, tuple[tuple[str, str], ...]], Storage] = {}
_STORAGES_LOCK = threading.Lock()
#: URL schemes whose ``limits`` storage has an asyncio twin (``async+<scheme>``) that
#: redis-py's asyncio client drives; other network storages are reached from a worker
#: thread by an asyncio caller.
_ASYNC_TWINS = ("redis", "rediss", "redis+unix")


def _after_fork_in_child() -> None:
    """The storages this module opened, put right in a forked child: a memory storage's
    per-key locks are renewed (its expiry timer thread may have held one at the fork; the
    timer itself restarts at the next use), a Redis client's connection pool starts
    empty (its sockets are the parent's; redis-py would notice at the next command too)."""
    global _STORAGES_LOCK
    _STORAGES_LOCK = threading.Lock()
    if not _limits_loaded:  # no RateLimit was made: no storage to put right
        return
    for storage in _STORAGES.values():
        if isinstance(storage, MemoryStorage):
            storage.locks = defaultdict(threading.RLock)
        pool = getattr(getattr(storage, "storage", None), "connection_pool", None)
        if pool is not None and callable(getattr(pool, "reset", None)):
            pool.reset()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _storage_options(url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options a storage for ``url`` is made with (the caller's over our defaults)."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme.startswith("async+"):
        raise ConfigurationError(
            f"storage {redact_url(url)!r}: use the sync scheme ({scheme[len('async+') :]}://); "
            "RateLimit reaches it through limits' async storage under asyncio itself"
        )
    if scheme.startswith("redis"):
        require("redis", "redis", "A Redis rate limit")
    opts: dict[str, Any] = {"wrap_exceptions": True}
    if scheme.startswith(("redis", "rediss", "valkey")):
        # Without socket timeouts a hung Redis would hang every routed call.
        opts.update(socket_connect_timeout=1.0, socket_timeout=1.0)
    opts.update(options)
    return opts


def _cache_key(url: str, opts: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return url, tuple(sorted((k, repr(v)) for k, v in opts.items()))


def _made(url: str, opts: Mapping[str, Any]) -> Any:
    try:
        return storage_from_string(url, **opts)
    except LimitsConfigurationError as exc:
        # The library's message repeats the URL, password included.
        raise ConfigurationError(
            f"storage {redact_url(url)!r} is not usable: "
            f"{redact(str(exc), url)}; "
            "use 'memory://' or 'redis://[:password@]host:port[/db]'"
        ) from None


def _open_storage(url: str, opts: Mapping[str, Any]) -> Storage:
    with _STORAGES_LOCK:
        storage = _STORAGES.get(_cache_key(url, opts))
        if storage is None:
            made = _made(url, opts)
            if not isinstance(made, Storage):
                raise ConfigurationError(f"storage {redact_url(url)!r} is not a sync storage")
            storage = made
            _STORAGES[_cache_key(url, opts)] = storage
        return storage


class _Aio(NamedTuple):
    """One event loop's way to a rate limit's storage: ``limits``' async storage and the
    async twins of the two limiters over it."""

    storage: aio_storage.Storage
    requests: aio_strategies.MovingWindowRateLimiter
    tokens: aio_strategies.SlidingWindowCounterRateLimiter


#: Per event loop, its async storages by URL and options, each with the suspended
#: generator that closes it with the loop (the loop holds those only weakly): redis-py's
#: asyncio connections belong to the loop that opened them, so each loop has its own.
#: Entries of closed loops are dropped when another loop opens one.
_ASYNC_STORAGES: dict[
    asyncio.AbstractEventLoop,
    dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Any, AsyncIterator[None]]],
] = {}


async def _open_async_storage(url: str, opts: Mapping[str, Any]) -> aio_storage.Storage:
    """The async twin of ``url``'s storage for the running loop (made without I/O: the
    client connects on its first command), closed when the loop shuts down."""
    loop = asyncio.get_running_loop()
    key = _cache_key(url, opts)
    with _STORAGES_LOCK:
        found = _ASYNC_STORAGES.get(loop, {}).get(key)
    if found is not None:
        return found[0]  # type: ignore[no-any-return]
    # redis-py's asyncio client (limits' default for async Redis is coredis, which is not
    # a dependency of ours).
    storage = _made(f"async+{url}", {**opts, "implementation": "redispy"})
    closer = _closed_with_loop(storage)
    await anext(closer)  # runs to its yield at once: no other task can come between
    with _STORAGES_LOCK:
        _forget_closed(_ASYNC_STORAGES)
        _ASYNC_STORAGES.setdefault(loop, {})[key] = (storage, closer)
    return storage  # type: ignore[no-any-return]


async def _closed_with_loop(storage: Any) -> AsyncIterator[None]:
    """Suspended for the loop's lifetime: the loop's ``shutdown_asyncgens()``, which
    ``asyncio.run`` calls before it closes the loop, finalizes it, and the storage's
    connections are closed on their own loop (sockets left open otherwise)."""
    try:
        yield
    finally:
        # limits' async Redis storage keeps redis-py's client as ``bridge.storage``.
        client = getattr(getattr(storage, "bridge", None), "storage", None)
        aclose = getattr(client, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


def _forget_closed(by_loop: dict[asyncio.AbstractEventLoop, Any]) -> None:
    """Drop the entries of loops that have closed (under ``_STORAGES_LOCK``)."""
    for loop in [loop for loop in by_loop if loop.is_closed()]:
        del by_loop[loop]


class RateLimit:
    """A requests-per-minute and/or tokens-per-minute budget, local or shared via Redis.

    ``storage`` is a ``limits`` storage URL or object. Storages are shared per URL within
    a process, and with ``redis://`` every process using the same ``key`` (and limits)
    draws from one budget. :meth:`try_acquire` takes a request slot if the request
    budget has one and the token budget has room for the *estimated* tokens;
    :meth:`record_tokens` then charges the tokens the call really used (the estimate is
    only checked, never charged, so tokens are counted once). ``mode="wait"`` makes
    :meth:`acquire` wait up to ``max_wait_s`` for the budget to free up.

    Strategies: requests use ``MovingWindowRateLimiter``, exact (one timestamp per
    request, an O(log n) lookup in Redis) and able to say exactly when the next slot
    frees. Tokens use ``SlidingWindowCounterRateLimiter``: a moving window stores one
    entry per unit, i.e. per token, which is prohibitive at 100k tokens a minute, while
    the sliding counter is O(1) whatever the cost and, unlike a fixed window, does not
    allow double the budget across a window boundary.

    If the storage is unreachable the limit *fails open* (allows the call, logs a
    warning at most every 30 s) unless ``fail_open=False``: a rate-limiter outage should
    not stop routing, and the provider's own 429s still protect it.

    Sync and async: :meth:`take`, :meth:`record_tokens` and :meth:`acquire` block on the
    storage's round trips; their asyncio twins :meth:`atake`, :meth:`arecord_tokens` and
    :meth:`aacquire` never block the event loop. For a ``redis://`` (``rediss://``,
    ``redis+unix://``) URL they use ``limits``' async Redis storage (redis-py's asyncio
    client, one per event loop, same options) over the same keys, so a limit used by
    ``run`` and ``arun`` at once, or by sync and async processes, is one budget. A
    ``memory://`` storage is a dict in this process: both call it directly, one budget
    too. Any other storage, and a ``Storage`` object given instead of a URL, is reached
    from a worker thread by the async methods.
    """

    def __init__(
        self,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
        storage: str | Storage = "memory://",
        key: str = "default",
        mode: str = "skip",
        max_wait_s: float | timedelta = 10.0,
        *,
        storage_options: Mapping[str, Any] | None = None,
        fail_open: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio_sleep,
    ) -> None:
        for label, value in (
            ("requests_per_minute", requests_per_minute),
            ("tokens_per_minute", tokens_per_minute),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ConfigurationError(f"{label} must be an int >= 1 or None, got {value!r}")
        if requests_per_minute is None and tokens_per_minute is None:
            raise ConfigurationError("set requests_per_minute, tokens_per_minute or both")
        if mode not in ("skip", "wait"):
            raise ConfigurationError(f"mode must be 'skip' or 'wait', got {mode!r}")
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"key must be a non-empty string, got {key!r}")
        if not isinstance(fail_open, bool):
            raise ConfigurationError(f"fail_open must be True or False, got {fail_open!r}")
        if storage_options is not None and not isinstance(storage_options, Mapping):
            raise ConfigurationError(
                "storage_options must be a mapping of the storage's options "
                f"(e.g. {{'socket_timeout': 2.0}}), got {storage_options!r}"
            )
        check_callables(clock=clock, sleep=sleep, asleep=asleep)
        _load_limits()
        self.max_wait_s = check_seconds("max_wait_s", max_wait_s)
        self.mode = mode
        self.key = key
        self.fail_open = fail_open
        self._secret_source: str | None = None
        #: How asyncio callers reach the storage: "inline" (in this process, no I/O),
        #: "aio" (limits' async twin of the URL's storage) or "thread".
        self._async_way = "thread"
        self._async_opts: dict[str, Any] = {}
        if isinstance(storage, str):
            self.storage_url = redact_url(storage)
            self._secret_source = storage
            self._async_opts = _storage_options(storage, storage_options or {})
            self.storage = _open_storage(storage, self._async_opts)
            if urllib.parse.urlsplit(storage).scheme in _ASYNC_TWINS:
                self._async_way = "aio"
        elif isinstance(storage, Storage):
            self.storage_url = f"<{type(storage).__name__}>"
            self.storage = storage
        else:
            raise ConfigurationError(
                f"storage must be a limits storage URL or Storage, got {storage!r}"
            )
        self._requests = (
            RateLimitItemPerMinute(requests_per_minute, namespace="adaptive_router:requests")
            if requests_per_minute is not None
            else None
        )
        self._tokens = (
            RateLimitItemPerMinute(tokens_per_minute, namespace="adaptive_router:tokens")
            if tokens_per_minute is not None
            else None
        )
        try:
            self._request_limiter = MovingWindowRateLimiter(self.storage)
            self._token_limiter = SlidingWindowCounterRateLimiter(self.storage)
        except NotImplementedError:
            # limits' own signal that a storage lacks these window types (not a stub here).
            raise ConfigurationError(
                f"storage {self.storage_url} supports neither moving nor sliding windows; "
                "use 'memory://' or 'redis://'"
            ) from None
        errors: tuple[type[Exception], ...] = (StorageError,)
        if isinstance(storage, str):
            # redis-py builds its connection at first use: an option it does not take, or
            # a value it refuses, raises TypeError/ValueError there. Like an outage, that
            # fails open (or closed) with the warning naming it, not out of the request.
            errors += (TypeError, ValueError)
        if not self.storage.wrap_exceptions:  # a Storage object the caller built
            try:
                base = self.storage.base_exceptions
                errors += base if isinstance(base, tuple) else (base,)
            except Exception:  # its optional dependency is missing: nothing to add
                pass
        self._storage_errors = errors
        if isinstance(self.storage, MemoryStorage):
            self._async_way = "inline"
        self._aio: dict[asyncio.AbstractEventLoop, _Aio] = {}
        self._clock = clock
        self._sleep = sleep
        self._asleep = asleep
        self._warn_lock = threading.Lock()
        self._last_warning: float | None = None
        forks.follow(self)

    def _after_fork_in_child(self) -> None:
        self._warn_lock = threading.Lock()  # a parent thread may have held it at the fork

    @property
    def requests_per_minute(self) -> int | None:
        return self._requests.amount if self._requests is not None else None

    @property
    def tokens_per_minute(self) -> int | None:
        return self._tokens.amount if self._tokens is not None else None

    def __repr__(self) -> str:
        return (
            f"RateLimit(requests_per_minute={self.requests_per_minute}, "
            f"tokens_per_minute={self.tokens_per_minute}, storage={self.storage_url!r}, "
            f"key={self.key!r}, mode={self.mode!r})"
        )

    # -- public API ----------------------------------------------------------------------
    def try_acquire(self, tokens: int = 0) -> bool:
        """Take a request slot now if the budgets allow ``tokens`` more; never waits."""
        cost = self._check_tokens(tokens)
        if cost is None:
            return False
        return self._guarded(lambda: self._take(cost), "try_acquire")

    def available(self, tokens: int = 0) -> bool:
        """Would :meth:`try_acquire` succeed now? Takes nothing (for ranking paths)."""
        cost = self._check_tokens(tokens)
        if cost is None:
            return False
        return self._guarded(lambda: self._test(cost), "available")

    def take(self, tokens: int = 0) -> float | None:
        """Take a request slot now (None), or say how long until one could be taken: the
        estimated seconds in ``"wait"`` mode, ``math.inf`` in ``"skip"`` mode or when it
        cannot be estimated. The storage's round trips, blocking; :meth:`wait_for` decides
        what to do with the estimate, without I/O (the router's request core is a loop
        over the two)."""
        cost = self._check_tokens(tokens)
        if cost is None:
            return math.inf
        if self._guarded(lambda: self._take(cost), "try_acquire"):
            return None
        if self.mode != "wait":
            return math.inf
        try:
            return self._estimate_wait(cost)
        except self._storage_errors:
            return math.inf

    async def atake(self, tokens: int = 0) -> float | None:
        """The asyncio twin of :meth:`take`: its round trips never block the event loop
        (see the class docstring for how each storage is reached)."""
        way = self._async_way
        if way == "inline":
            return self.take(tokens)
        if way == "thread":
            return await to_daemon_thread(self.take, tokens)
        cost = self._check_tokens(tokens)
        if cost is None:
            return math.inf
        aio = await self._aio_for_loop()
        if await self._aguarded(lambda: self._atake(aio, cost), "try_acquire"):
            return None
        if self.mode != "wait":
            return math.inf
        try:
            return await self._aestimate_wait(aio, cost)
        except self._storage_errors:
            return math.inf

    def wait_for(self, estimate: float, deadline: float) -> float | None:
        """After :meth:`take` refused with ``estimate``: seconds to wait before taking again,
        or None to give up (``"skip"`` mode, the deadline passed, or room cannot free up
        by it). No I/O: it reads this limit's clock. ``deadline`` is from
        :meth:`wait_deadline`."""
        if self.mode != "wait" or estimate == math.inf:
            return None
        left = deadline - self._clock()
        if left <= 0 or estimate > left:
            return None
        # A floor so that an estimate of ~0 (another caller took the slot) can't spin.
        return max(estimate, 0.01)

    def acquire(self, tokens: int = 0) -> bool:
        """:meth:`try_acquire`, and in ``"wait"`` mode wait up to ``max_wait_s`` for room.

        Returns False at once when the budget cannot free up within what is left of
        ``max_wait_s`` (no pointless sleeping).
        """
        deadline = self.wait_deadline()
        while True:
            estimate = self.take(tokens)
            if estimate is None:
                return True
            delay = self.wait_for(estimate, deadline)
            if delay is None:
                return False
            self._sleep(delay)

    async def aacquire(self, tokens: int = 0) -> bool:
        """The asyncio twin of :meth:`acquire`: neither its round trips nor its waits block
        the event loop."""
        deadline = self.wait_deadline()
        while True:
            estimate = await self.atake(tokens)
            if estimate is None:
                return True
            delay = self.wait_for(estimate, deadline)
            if delay is None:
                return False
            await self._asleep(delay)

    def record_tokens(self, n: int) -> None:
        """Charge the tokens a call used to the token budget (even beyond it: they were
        spent, and later calls should wait for them to age out)."""
        count = self._check_tokens(n, for_charge=True)
        if self._tokens is None or not count:
            return
        item = self._tokens
        storage = self.storage
        if not isinstance(storage, SlidingWindowCounterSupport):
            return
        # Through the storage with an unreachable limit: the limiter's hit() refuses a
        # charge that would overshoot, and an actual usage must never be refused.
        self._guarded(
            lambda: storage.acquire_sliding_window_entry(
                item.key_for(self.key), _UNREACHABLE, item.get_expiry(), count
            ),
            "record_tokens",
        )

    async def arecord_tokens(self, n: int) -> None:
        """The asyncio twin of :meth:`record_tokens`."""
        way = self._async_way
        if way == "inline":
            return self.record_tokens(n)
        if way == "thread":
            return await to_daemon_thread(self.record_tokens, n)
        count = self._check_tokens(n, for_charge=True)
        if self._tokens is None or not count:
            return None
        # Only Redis gets here (see _ASYNC_TWINS): it keeps sliding windows.
        item, storage = self._tokens, (await self._aio_for_loop()).storage
        await self._aguarded(
            lambda: storage.acquire_sliding_window_entry(  # type: ignore[attr-defined]
                item.key_for(self.key), _UNREACHABLE, item.get_expiry(), count
            ),
            "record_tokens",
        )
        return None

    def retry_in(self, tokens: int = 0) -> float:
        """Estimated seconds until :meth:`try_acquire` could succeed (0 if it could now)."""
        cost = self._check_tokens(tokens)
        if cost is None:
            return math.inf
        try:
            return self._estimate_wait(cost)
        except self._storage_errors:
            return 0.0

    def clear(self) -> None:
        """Forget all usage of this key (tests, admin)."""
        if self._requests is not None:
            self._request_limiter.clear(self._requests, self.key)
        if self._tokens is not None:
            self._token_limiter.clear(self._tokens, self.key)

    # -- internals -----------------------------------------------------------------------
    def _check_tokens(self, tokens: object, *, for_charge: bool = False) -> int | None:
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"tokens must be an int >= 0, got {tokens!r}")
        if not for_charge and self._tokens is not None and tokens > self._tokens.amount:
            self._warn(
                "a request estimated above the whole token budget can never be admitted",
                tokens=tokens,
            )
            return None
        return tokens

    def _test(self, tokens: int) -> bool:
        if self._tokens is not None and not self._token_limiter.test(
            self._tokens, self.key, cost=max(tokens, 1)
        ):
            return False
        return self._requests is None or self._request_limiter.test(self._requests, self.key)

    def _take(self, tokens: int) -> bool:
        # Tokens are checked first because that check consumes nothing; the request
        # slot, taken last, is then consumed only if the call will actually go ahead.
        if self._tokens is not None and not self._token_limiter.test(
            self._tokens, self.key, cost=max(tokens, 1)
        ):
            return False
        return self._requests is None or self._request_limiter.hit(self._requests, self.key)

    def wait_deadline(self, within: float | None = None) -> float:
        """When (on this limit's clock) a wait that starts now must give up: now +
        ``max_wait_s``, or now + ``within`` when that is sooner (the caller's own time
        left, e.g. a request's timeout; <= 0 means no wait). Pass it to
        :meth:`next_wait`."""
        wait = self.max_wait_s if within is None else max(min(within, self.max_wait_s), 0.0)
        return self._clock() + wait

    @property
    def sleep(self) -> Callable[[float], None]:
        """How a blocking caller waits for room (``time.sleep`` unless injected)."""
        return self._sleep

    @property
    def asleep(self) -> Callable[[float], Awaitable[None]]:
        """How an asyncio caller waits for room."""
        return self._asleep

    def _estimate_wait(self, tokens: int) -> float:
        # limits timestamps entries with time.time(), so its reset times are epoch seconds.
        now = time.time()
        wait = 0.0
        if self._requests is not None:
            stats = self._request_limiter.get_window_stats(self._requests, self.key)
            if stats.remaining < 1:
                wait = max(wait, stats.reset_time - now)
        if self._tokens is not None and isinstance(self.storage, SlidingWindowCounterSupport):
            item = self._tokens
            window = self.storage.get_sliding_window(item.key_for(self.key), int(item.get_expiry()))
            wait = max(wait, _token_wait(item, window, max(tokens, 1)))
        return max(0.0, wait)

    def _guarded(self, op: Callable[[], Any], what: str) -> bool:
        try:
            return bool(op())
        except self._storage_errors as exc:
            return self._storage_failed(exc, what)

    # -- the asyncio twins' storage work (limits.aio, on the running loop) ---------------
    async def _aio_for_loop(self) -> _Aio:
        loop = asyncio.get_running_loop()
        aio = self._aio.get(loop)
        if aio is None:
            from limits.aio import strategies  # loaded by the first asyncio caller only

            storage = await _open_async_storage(self._secret_source or "", self._async_opts)
            aio = _Aio(
                storage,
                strategies.MovingWindowRateLimiter(storage),
                strategies.SlidingWindowCounterRateLimiter(storage),
            )
            with _STORAGES_LOCK:  # loops in other threads may be adding theirs
                _forget_closed(self._aio)
                self._aio[loop] = aio
        return aio

    async def _atake(self, aio: _Aio, tokens: int) -> bool:
        if self._tokens is not None and not await aio.tokens.test(
            self._tokens, self.key, cost=max(tokens, 1)
        ):
            return False
        return self._requests is None or await aio.requests.hit(self._requests, self.key)

    async def _aestimate_wait(self, aio: _Aio, tokens: int) -> float:
        now = time.time()
        wait = 0.0
        if self._requests is not None:
            stats = await aio.requests.get_window_stats(self._requests, self.key)
            if stats.remaining < 1:
                wait = max(wait, stats.reset_time - now)
        if self._tokens is not None:
            item = self._tokens
            window = await aio.storage.get_sliding_window(  # type: ignore[attr-defined]
                item.key_for(self.key), int(item.get_expiry())
            )
            wait = max(wait, _token_wait(item, window, max(tokens, 1)))
        return max(0.0, wait)

    async def _aguarded(self, op: Callable[[], Awaitable[Any]], what: str) -> bool:
        try:
            return bool(await op())
        except self._storage_errors as exc:
            return self._storage_failed(exc, what)

    def _storage_failed(self, exc: Exception, what: str) -> bool:
        """Log a storage failure (throttled) and say whether the call may go ahead."""
        error = f"{type(exc).__name__}: {exc}"
        error = redact(error, self._secret_source)
        self._warn(
            "rate-limit storage failed; "
            + ("allowing the call" if self.fail_open else "refusing the call"),
            operation=what,
            error=error[:300],
        )
        return self.fail_open

    def _warn(self, message: str, **extra: Any) -> None:
        now = self._clock()
        with self._warn_lock:
            if self._last_warning is not None and now - self._last_warning < 30.0:
                return
            self._last_warning = now
        logger.warning(
            message,
            extra={"rate_limit_key": self.key, "storage": self.storage_url, **extra},
        )


#: The limit a token charge is made against: never reached (see record_tokens).
_UNREACHABLE = 2**52


def _token_wait(item: RateLimitItem, window: tuple[int, float, int, float], cost: int) -> float:
    """Seconds until ``cost`` tokens fit ``item``'s sliding window ``window`` (the storage's
    ``get_sliding_window``: previous count and TTL, current count and TTL).

    The sliding counter weighs the previous window by the share of it still inside the
    last minute, so the count decays linearly; solve for when ``cost`` fits.
    ``get_window_stats`` only says when *one* unit frees, which would mean many tiny
    sleeps for a large request."""
    expiry = float(item.get_expiry())
    prev, prev_ttl, cur, _ = window
    target = item.amount - cost  # the weighted count must drop to this
    if prev * prev_ttl / expiry + cur <= target:
        return 0.0
    if cur <= target:
        return prev_ttl - (target - cur) * expiry / prev
    # Only once the current window has become the previous one can it decay.
    return prev_ttl + expiry * (1 - target / cur)
