"""Usage capture: meter every ``openai`` and ``anthropic`` SDK call made inside a scope.

While a *capture scope* is active (a contextvar), the token usage and the model of every
SDK call are added to that scope, per call (a path may call several models)::

    from adaptive_router.metering import capture

    capture.install()                       # idempotent, thread-safe; uninstall() undoes it
                                            # (a Router holds them itself while it meters)
    with capture.scope() as usage:
        client.chat.completions.create(model="gpt-4o", messages=...)
        anthropic_client.messages.create(model="claude-sonnet-4-6", ...)
    usage.calls          # [CallUsage(provider="openai", model="gpt-4o", input_tokens=...), ...]
    usage.input_tokens   # summed over the calls whose usage is known

What is metered: sync and async clients of both SDKs; chat completions (``create``,
``parse``, ``stream``), the Responses API (``create``, ``parse``, ``stream``), Anthropic
messages (``create``, ``stream``); ``stream=True`` iterators; ``with_raw_response``
(its body is parsed once through the SDK's own cached ``parse()``, so the user's
``parse()`` returns the same object and nothing is consumed). Not metered: calls that
raise (an error response carries no usage), other endpoints (embeddings, batches,
token counting), and ``with_streaming_response`` (its body is the user's to read
lazily: the call is recorded with usage unknown).

Rules:

* **Nothing the user sees changes.** A stream is the SDK's own object; only its private
  item iterator is wrapped by a generator that looks at items as they pass. By default no
  ``stream_options`` are injected (some OpenAI-compatible servers answer 400 to them), so
  a chat stream without ``include_usage`` records the call with usage unknown (``None``),
  never 0. A scope opened with ``include_usage=True`` adds
  ``stream_options={"include_usage": True}`` to a chat stream that did not ask for it,
  and hides the extra final chunk (``choices=[]``, the usage) from the user's iteration:
  the user's loop sees exactly the chunks it would have seen without it.
* **Calls outside any scope are untouched** (one contextvar read, then the SDK).
* **Counted once.** A layer that meters a call itself (a provider path reading
  ``response.usage``) makes it inside :func:`suppress`, and capture leaves it alone.
* **Threads.** Contextvars do not follow a call into a plain thread pool. Hand work off
  with :func:`bind` (or ``contextvars.copy_context().run``, as the router's
  ``call_with_timeout`` does): the copied context holds the *same* :class:`Scope`
  object, so usage recorded in the worker reaches the caller's scope.
* **Late calls.** A call (or a stream) that finishes after its scope closed — the
  attempt timed out, but the provider still bills it — is still appended to that scope,
  marked ``late=True``, and the scope's ``on_late`` callback is called with it, so the
  owner can record it where the attempt's outcome went.
* Nested scopes: the innermost active scope gets the call.
* **Import cost.** :func:`install` hooks an SDK at once only if it is already imported;
  otherwise a post-import hook (wrapt's) hooks it when the application imports it, so a
  router costs no SDK import time to a program that uses neither.

The DESIGN layout puts this module at ``observe/capture``; it is top-level until the
``observe`` package exists.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import importlib
import inspect
import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

# wrapt rather than hand-rolled monkeypatching: its FunctionWrapper keeps the wrapped
# method's signature, name, docstring and descriptor behaviour (introspection, mocks and
# IDEs see the SDK's method), works for sync and async alike, and is what OpenTelemetry's
# openai/anthropic instrumentations (and Langfuse, OpenLLMetry) use.
import wrapt

from adaptive_router._checks import reported_count

__all__ = [
    "CallUsage",
    "Scope",
    "acquire",
    "bind",
    "current_scope",
    "hooked",
    "install",
    "installed",
    "scope",
    "suppress",
    "uninstall",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

Api = Literal["chat", "responses", "messages"]

_SCOPE: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "adaptive_router_capture_scope", default=None
)
_SUPPRESSED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "adaptive_router_capture_suppressed", default=False
)

# Request paths of the metered endpoints, per SDK (the part before any "?beta=true").
_ENDPOINTS: dict[str, Api] = {
    "/chat/completions": "chat",
    "/responses": "responses",
    "/v1/messages": "messages",
}
_RAW_HEADER = "x-stainless-raw-response"


@dataclass(slots=True)
class CallUsage:
    """The usage of one SDK call. A token count of ``None`` means unknown, never 0.

    ``input_tokens`` counts the whole prompt, cached or not (like
    :class:`adaptive_router.Usage`); ``cache_read_tokens`` / ``cache_write_tokens`` are
    the parts of it read from / written to the prompt cache. ``complete`` is False while
    a stream is still being read; ``late`` marks a call that finished after its scope
    closed.
    """

    provider: Literal["openai", "anthropic"]
    api: Api
    model: str | None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    streamed: bool = False
    complete: bool = True
    late: bool = False

    @property
    def known(self) -> bool:
        """Whether the provider reported this call's usage."""
        return self.input_tokens is not None and self.output_tokens is not None


class Scope:
    """What the SDK calls made while this scope was active consumed.

    Shared by reference: every context copied from the one that opened the scope (worker
    threads, asyncio tasks) records into the same object. Thread-safe.
    """

    __slots__ = ("_calls", "_closed", "_lock", "_reentrant", "_token", "include_usage", "on_late")

    def __init__(
        self,
        on_late: Callable[[CallUsage], None] | None = None,
        *,
        include_usage: bool = False,
        reentrant: bool = False,
    ) -> None:
        if on_late is not None and not callable(on_late):
            raise TypeError(f"on_late must be a callable(CallUsage) or None, got {on_late!r}")
        if not isinstance(include_usage, bool):
            raise TypeError(f"include_usage must be True or False, got {include_usage!r}")
        self.on_late = on_late
        #: Ask chat streams for their usage (see the module docs).
        self.include_usage = include_usage
        self._calls: list[CallUsage] = []
        self._closed = False
        self._lock = threading.Lock()
        self._token: contextvars.Token[Scope | None] | None = None
        # Entered once per block and closed by leaving it, unless reentrant: then each
        # ``with`` only makes it the active scope (the router enters an attempt's scope
        # around each call of the attempt, retries too) and close() is the owner's.
        self._reentrant = reentrant

    # A class-based context manager, not @contextlib.contextmanager: the router opens one
    # per attempt, and a generator-based one costs several times as much to enter and exit.
    def __enter__(self) -> Scope:
        if self._token is not None or self._closed:
            raise RuntimeError("a capture Scope can be entered once")
        self._token = _SCOPE.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _SCOPE.reset(self._token)
        if self._reentrant:
            self._token = None
        else:
            self._close()

    @property
    def calls(self) -> list[CallUsage]:
        """A snapshot of the calls recorded so far, in the order they were made."""
        with self._lock:
            return list(self._calls)

    @property
    def closed(self) -> bool:
        """Whether the ``with`` block that opened the scope has ended."""
        return self._closed

    @property
    def complete(self) -> bool:
        """True when every call has finished and reported its usage."""
        with self._lock:
            return all(c.complete and c.known for c in self._calls)

    def _total(self, name: str) -> int | None:
        with self._lock:
            values = [getattr(c, name) for c in self._calls]
        known = [v for v in values if v is not None]
        return sum(known) if known else None

    @property
    def input_tokens(self) -> int | None:
        """Input tokens summed over the calls that reported them (``None``: none did)."""
        return self._total("input_tokens")

    @property
    def output_tokens(self) -> int | None:
        """Output tokens summed over the calls that reported them (``None``: none did)."""
        return self._total("output_tokens")

    @property
    def cache_read_tokens(self) -> int | None:
        """Cache-read tokens summed over the calls that reported them."""
        return self._total("cache_read_tokens")

    @property
    def cache_write_tokens(self) -> int | None:
        """Cache-write tokens summed over the calls that reported them."""
        return self._total("cache_write_tokens")

    def _add(self, call: CallUsage) -> None:
        with self._lock:
            self._calls.append(call)
            late = self._closed
        if late:
            self._late(call)

    def _finished(self, call: CallUsage) -> None:
        """A recorded stream ended (its usage is filled in)."""
        with self._lock:
            call.complete = True
            late = self._closed
        if late:
            self._late(call)

    def _late(self, call: CallUsage) -> None:
        call.late = True
        logger.debug(
            "SDK call finished after its capture scope closed: %s %s",
            call.provider,
            call.model,
            extra={"provider": call.provider, "model": call.model, "api": call.api},
        )
        if self.on_late is not None:
            try:
                self.on_late(call)
            except Exception:
                logger.exception("capture on_late callback raised", extra={"model": call.model})

    def _close(self) -> None:
        with self._lock:
            self._closed = True

    def __repr__(self) -> str:
        return f"Scope(calls={len(self._calls)}, closed={self._closed})"


def scope(
    on_late: Callable[[CallUsage], None] | None = None, *, include_usage: bool = False
) -> Scope:
    """Meter the SDK calls made in a ``with`` block (and in contexts copied from it):
    ``with scope() as got: ...``, then read ``got``.

    Needs :func:`install` to have run. ``on_late(call)`` is called for a call that
    finishes after the block ended; ``include_usage=True`` asks chat streams for their
    usage and hides the extra chunk from the user (see the module docs).
    """
    return Scope(on_late, include_usage=include_usage)


@contextlib.contextmanager
def suppress() -> Iterator[None]:
    """SDK calls made in this block are not metered: the caller counts them itself."""
    token = _SUPPRESSED.set(True)
    try:
        yield
    finally:
        _SUPPRESSED.reset(token)


def current_scope() -> Scope | None:
    """The scope SDK calls made here would be added to, if any (``None`` when suppressed)."""
    return None if _SUPPRESSED.get() else _SCOPE.get()


def bind(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` bound to a copy of the current context, to run in another thread.

    ``executor.submit(capture.bind(fn), *args)`` meters ``fn``'s SDK calls into the
    caller's scope. The copy shares the scope object, so nothing is lost or doubled.
    """
    ctx = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> T:
        return ctx.run(fn, *args, **kwargs)

    return run


# -- reading usage -----------------------------------------------------------------------------
_int = reported_count


def _fill(call: CallUsage, obj: Any) -> None:
    """Fill ``call`` from a parsed response object of its API (any missing part stays None)."""
    model = getattr(obj, "model", None)
    if isinstance(model, str) and model:
        call.model = model
    usage = getattr(obj, "usage", None)
    if usage is None:
        return
    if call.api == "chat":
        call.input_tokens = _int(getattr(usage, "prompt_tokens", None))
        call.output_tokens = _int(getattr(usage, "completion_tokens", None))
        details = getattr(usage, "prompt_tokens_details", None)
        cached = _int(getattr(details, "cached_tokens", None)) if details is not None else None
        call.cache_read_tokens = cached if cached is not None else 0
        call.cache_write_tokens = 0  # OpenAI does not bill cache writes
    elif call.api == "responses":
        call.input_tokens = _int(getattr(usage, "input_tokens", None))
        call.output_tokens = _int(getattr(usage, "output_tokens", None))
        details = getattr(usage, "input_tokens_details", None)
        cached = _int(getattr(details, "cached_tokens", None)) if details is not None else None
        call.cache_read_tokens = cached if cached is not None else 0
        call.cache_write_tokens = 0
    else:
        _fill_anthropic_input(call, usage)
        call.output_tokens = _int(getattr(usage, "output_tokens", None))


def _fill_anthropic_input(call: CallUsage, usage: Any) -> None:
    uncached = _int(getattr(usage, "input_tokens", None))
    read = _int(getattr(usage, "cache_read_input_tokens", None)) or 0
    written = _int(getattr(usage, "cache_creation_input_tokens", None)) or 0
    call.input_tokens = None if uncached is None else uncached + read + written
    call.cache_read_tokens = read
    call.cache_write_tokens = written


def _finish_stream(call: CallUsage, first: Any, last: Any, prev: Any) -> None:
    """Fill a streamed call from the items seen: where each API puts its usage."""
    if call.api == "chat":
        # Usage comes in the last chunk, and only with stream_options.include_usage.
        if last is not None:
            _fill(call, last)
    elif call.api == "responses":
        # Usage is nested in the final response.completed (or .incomplete/.failed) event.
        response = getattr(last, "response", None)
        if response is not None and getattr(last, "type", "") != "response.created":
            _fill(call, response)
    else:
        # message_start carries the input (and cache) usage, message_delta the output.
        message = getattr(first, "message", None)
        if message is not None:
            model = getattr(message, "model", None)
            if isinstance(model, str) and model:
                call.model = model
            usage = getattr(message, "usage", None)
            if usage is not None:
                _fill_anthropic_input(call, usage)
        for item in (last, prev):
            if getattr(item, "type", None) == "message_delta":
                usage = getattr(item, "usage", None)
                call.output_tokens = _int(getattr(usage, "output_tokens", None))
                break
        if call.output_tokens is None:
            call.input_tokens = call.cache_read_tokens = call.cache_write_tokens = None


# The per-item work is two assignments: what to read is decided once the stream ends.
def _observe(it: Iterator[Any], call: CallUsage, owner: Scope) -> Iterator[Any]:
    first = last = prev = None
    try:
        for item in it:
            if first is None:
                first = item
            prev = last
            last = item
            yield item
    finally:
        _finish_stream(call, first, last, prev)
        owner._finished(call)


async def _aobserve(it: AsyncIterator[Any], call: CallUsage, owner: Scope) -> AsyncIterator[Any]:
    first = last = prev = None
    try:
        async for item in it:
            if first is None:
                first = item
            prev = last
            last = item
            yield item
    finally:
        _finish_stream(call, first, last, prev)
        owner._finished(call)


def _usage_chunk(item: Any) -> bool:
    """The chunk ``include_usage`` adds at the end of a chat stream: no choices, usage."""
    return getattr(item, "choices", None) == [] and getattr(item, "usage", None) is not None


# A stream whose usage was asked for by capture, not the user: the usage chunk is read
# here and not passed on, so the user's loop gets exactly what it would have without it.
def _observe_hiding(it: Iterator[Any], call: CallUsage, owner: Scope) -> Iterator[Any]:
    usage = None
    try:
        for item in it:
            if _usage_chunk(item):
                usage = item
                continue
            yield item
    finally:
        if usage is not None:
            _fill(call, usage)
        owner._finished(call)


async def _aobserve_hiding(
    it: AsyncIterator[Any], call: CallUsage, owner: Scope
) -> AsyncIterator[Any]:
    usage = None
    try:
        async for item in it:
            if _usage_chunk(item):
                usage = item
                continue
            yield item
    finally:
        if usage is not None:
            _fill(call, usage)
        owner._finished(call)


# -- the SDK hooks -----------------------------------------------------------------------------
class _Sdk:
    """Classes of one SDK that the hooks recognise results by."""

    def __init__(self, name: Literal["openai", "anthropic"]) -> None:
        self.name = name
        sdk = importlib.import_module(name)
        self.model: type[Any] = sdk.BaseModel
        self.streams: tuple[type[Any], ...] = (sdk.Stream, sdk.AsyncStream)
        raw = [importlib.import_module(f"{name}._response").BaseAPIResponse]
        with contextlib.suppress(ImportError):
            raw.append(importlib.import_module(f"{name}._legacy_response").LegacyAPIResponse)
        self.raw: tuple[type[Any], ...] = tuple(raw)
        self.base = importlib.import_module(f"{name}._base_client")


def _endpoint(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Api, str | None] | None:
    options = kwargs.get("options", args[1] if len(args) > 1 else None)
    url = getattr(options, "url", None)
    if not isinstance(url, str):
        return None
    api = _ENDPOINTS.get(url.split("?", 1)[0])
    if api is None:
        return None
    body = getattr(options, "json_data", None)
    model = body.get("model") if isinstance(body, dict) else None
    return api, model if isinstance(model, str) else None


def _start(
    sdk: _Sdk, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Scope, CallUsage, tuple[Any, ...], dict[str, Any], bool] | None:
    """The scope and the call to record, the request's arguments (with ``stream_options``
    added when the scope asks chat streams for usage) and whether they were added."""
    owner = _SCOPE.get()
    if owner is None or _SUPPRESSED.get():
        return None
    found = _endpoint(args, kwargs)
    if found is None:
        return None
    api, model = found
    call = CallUsage(sdk.name, api, model)
    if owner.include_usage and api == "chat" and sdk.name == "openai":
        injected = _with_include_usage(args, kwargs)
        if injected is not None:
            return owner, call, injected[0], injected[1], True
    return owner, call, args, kwargs, False


def _with_include_usage(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """The request's arguments with ``stream_options.include_usage`` set, for a chat
    stream that did not set ``stream_options`` itself, in its body or in ``extra_body``
    (None: leave the request alone; the usage chunk the user asked for is theirs to see)."""
    in_kwargs = "options" in kwargs
    options = kwargs["options"] if in_kwargs else args[1]
    body = getattr(options, "json_data", None)
    if not isinstance(body, dict) or body.get("stream") is not True or "stream_options" in body:
        return None
    extra = getattr(options, "extra_json", None)
    if isinstance(extra, dict) and "stream_options" in extra:
        return None
    # A copy: the user's options and body stay as they were.
    copied = options.model_copy() if hasattr(options, "model_copy") else copy.copy(options)
    copied.json_data = {**body, "stream_options": {"include_usage": True}}
    if in_kwargs:
        return args, {**kwargs, "options": copied}
    return (args[0], copied, *args[2:]), kwargs


def _raw_mode(result: Any) -> str:
    """``"raw"``/``"true"`` for ``with_raw_response`` (body read), ``"stream"`` for
    ``with_streaming_response`` (body not read)."""
    http = getattr(result, "http_response", None)
    headers = getattr(getattr(http, "request", None), "headers", None)
    mode = headers.get(_RAW_HEADER) if headers is not None else None
    return str(mode) if mode is not None else "raw"


def _record(sdk: _Sdk, owner: Scope, call: CallUsage, result: Any, hide: bool = False) -> None:
    if isinstance(result, sdk.streams):
        call.streamed = True
        call.complete = False
        owner._add(call)
        # The SDK's own stream object stays what the user holds; only its private item
        # iterator is wrapped. The wrapper never refers to the stream (no reference cycle).
        inner = result._iterator
        if isinstance(result, sdk.streams[1]):
            result._iterator = (_aobserve_hiding if hide else _aobserve)(inner, call, owner)
        else:
            result._iterator = (_observe_hiding if hide else _observe)(inner, call, owner)
        return
    if isinstance(result, sdk.model):
        _fill(call, result)
    owner._add(call)  # anything else (a str, bytes…): the call happened, usage unknown


def _sync_request(wrapped: Any, instance: Any, args: Any, kwargs: Any, sdk: _Sdk) -> Any:
    started = _start(sdk, args, kwargs)
    if started is None:
        return wrapped(*args, **kwargs)
    owner, call, args, kwargs, hide = started
    result = wrapped(*args, **kwargs)
    try:
        if not isinstance(result, sdk.raw):
            _record(sdk, owner, call, result, hide)
        elif _raw_mode(result) == "stream":
            owner._add(call)  # the body is the user's to read lazily: usage unknown
        else:
            # parse() caches per type, so the user's own parse() gets this same object.
            _record(sdk, owner, call, result.parse(), hide)
    except Exception:
        logger.exception("capture could not read an SDK call's usage", extra={"model": call.model})
    return result


async def _async_request(wrapped: Any, instance: Any, args: Any, kwargs: Any, sdk: _Sdk) -> Any:
    started = _start(sdk, args, kwargs)
    if started is None:
        return await wrapped(*args, **kwargs)
    owner, call, args, kwargs, hide = started
    result = await wrapped(*args, **kwargs)
    try:
        if not isinstance(result, sdk.raw):
            _record(sdk, owner, call, result, hide)
        elif _raw_mode(result) == "stream":
            owner._add(call)
        else:
            parsed = result.parse()
            if inspect.isawaitable(parsed):  # the async SDK's APIResponse.parse
                parsed = await parsed
            _record(sdk, owner, call, parsed, hide)
    except Exception:
        logger.exception("capture could not read an SDK call's usage", extra={"model": call.model})
    return result


def _wrapper(hook: Callable[..., Any], sdk: _Sdk) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return hook(wrapped, instance, args, kwargs, sdk)

    return wrapper


_SDKS = ("openai", "anthropic")
_install_lock = threading.RLock()
#: (class, attribute, the SDK's own method, our wrapper) per hooked method.
_patched: list[tuple[type[Any], str, Any, Any]] = []
#: Methods whose wrapper stayed when the hooks were removed: another library wrapped on
#: top of it (see _restore). Never wrapped twice; inert outside a capture scope.
_left_in_place: set[tuple[type[Any], str]] = set()
_hooked: set[str] = set()  # SDKs whose client classes are wrapped now
_wanted = False  # hooks are wanted now (a deferred hook checks it when it fires)
_deferred: set[str] = set()  # SDKs with a post-import hook registered (wrapt keeps it)
_unsupported: set[str] = set()  # SDKs whose layout we do not know (warned once)
_manual = False  # install() is in effect
_holders = 0  # acquire() calls not released yet (one per metering router)
_generation = 0  # bumped by uninstall(): releases of older acquisitions do nothing


def install() -> None:
    """Hook the openai and anthropic SDKs (each client's ``request``) until
    :func:`uninstall`. Idempotent and thread-safe; the hooks cost one contextvar read per
    call outside any scope. Routers do this themselves (:func:`acquire`) while they meter.

    An SDK already imported is hooked now; one not imported yet is hooked when the
    application imports it (a post-import hook), so installing never imports an SDK
    (seconds each) for a program that does not use it. An SDK that cannot be imported
    makes no calls to meter; one whose internals changed (the hooked method is gone) is
    not metered, with one warning.
    """
    global _manual
    with _install_lock:
        _manual = True
        _want()


def acquire() -> Callable[[], None]:
    """Hold the hooks (as :func:`install` does) until the returned function is called;
    the hooks are removed when the last holder releases them and :func:`install` is not
    in effect. Each router that meters holds them from its construction to its close."""
    global _holders
    with _install_lock:
        _holders += 1
        generation = _generation
        _want()
    released = False

    def release() -> None:
        global _holders
        nonlocal released
        with _install_lock:
            if released or generation != _generation:
                return
            released = True
            _holders -= 1
            _settle()

    return release


def _want() -> None:
    """Hook what can be hooked now, defer the rest (called with _install_lock held)."""
    global _wanted
    if _wanted:
        return
    _wanted = True
    for name in _SDKS:
        if name in sys.modules:
            _hook(name)
        elif name not in _deferred:
            _deferred.add(name)
            # Called at once if the module is imported meanwhile, else on import.
            wrapt.register_post_import_hook(_on_import, name)
    logger.debug("capture installed on the openai and anthropic SDKs")


def _settle() -> None:
    """Remove the hooks once nobody wants them (called with _install_lock held)."""
    global _wanted
    if _manual or _holders > 0:
        return
    _wanted = False
    _restore()


def _on_import(module: Any) -> None:
    with _install_lock:
        if not _wanted:  # wrapt cannot take a hook back: while unwanted it does nothing
            return
        _hook(module.__name__)


def _hook(name: str) -> None:
    """Wrap one SDK's client classes (called with _install_lock held). Never raises: an
    SDK whose layout changed is left alone, with one warning."""
    if name in _hooked or name not in _SDKS or name in _unsupported:
        return
    try:
        importlib.import_module(name)
    except ImportError as exc:  # not importable: it makes no calls to meter
        logger.debug("capture skips %s: %s", name, exc, extra={"sdk": name})
        return
    try:
        sdk = _Sdk("openai" if name == "openai" else "anthropic")
    except (ImportError, AttributeError) as exc:  # its private modules or classes moved
        _unsupported_sdk(name, f"{type(exc).__name__}: {exc}")
        return
    hooks = (("SyncAPIClient", _sync_request), ("AsyncAPIClient", _async_request))
    classes = [getattr(sdk.base, cls_name, None) for cls_name, _ in hooks]
    for (cls_name, _), cls in zip(hooks, classes, strict=True):
        if not isinstance(cls, type) or "request" not in vars(cls):
            _unsupported_sdk(name, f"{name}._base_client.{cls_name}.request is gone")
            return  # all or nothing, per SDK: nothing was wrapped yet
    # One hook per client class rather than one per resource method: every endpoint and
    # helper (create, parse, stream managers, with_raw_response) goes through it, once
    # per logical call (the SDK's retries run inside).
    for (_, hook), cls in zip(hooks, classes, strict=True):
        assert cls is not None  # checked above
        if (cls, "request") in _left_in_place:
            continue  # ours is still in the chain, under another library's wrapper
        original = vars(cls)["request"]
        mine = wrapt.wrap_function_wrapper(cls, "request", _wrapper(hook, sdk))
        _patched.append((cls, "request", original, mine))
    _hooked.add(name)


def _unsupported_sdk(name: str, why: str) -> None:
    _unsupported.add(name)
    version = getattr(sys.modules.get(name), "__version__", "?")
    logger.warning(
        "usage capture is off for %s %s: %s (an SDK internal this version changed); its "
        "calls are not metered (tokens and cost unknown unless paths report them). Pin a "
        "supported %s version to meter it",
        name,
        version,
        why,
        name,
        extra={"sdk": name, "version": version},
    )


def uninstall() -> None:
    """Restore the SDKs' own methods now, whoever holds the hooks (routers that still
    meter then meter nothing); a no-op when not installed. A method another library
    wrapped after us keeps its wrapper, ours inert beneath it."""
    global _manual, _holders, _generation
    with _install_lock:
        _manual = False
        _holders = 0
        _generation += 1
        _settle()


def _restore() -> None:
    # Called with _install_lock held.
    while _patched:
        cls, attr, original, mine = _patched.pop()
        if vars(cls).get(attr) is mine:
            setattr(cls, attr, original)
        else:
            # Another library (a tracing agent) wrapped the method after us: putting the
            # SDK's own back would take its wrapper out too. Ours stays, passing calls
            # through outside a capture scope (one contextvar read).
            _left_in_place.add((cls, attr))
    _hooked.clear()


def hooked() -> bool:
    """Whether an SDK is hooked now (installed, and openai or anthropic imported): until
    then no call can be metered, and the router opens no capture scope."""
    return bool(_hooked)


def installed() -> bool:
    """Whether the hooks are wanted (:func:`install`, or a router that meters): an SDK
    imported later is hooked on import."""
    return _wanted
