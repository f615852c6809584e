"""A fake OpenAI / Anthropic HTTP server for testing routers against the real SDKs.

:class:`FakeProvider` listens on ``127.0.0.1`` (a free port) and answers the
OpenAI ``POST /v1/chat/completions`` and ``POST /v1/responses`` and Anthropic
``POST /v1/messages`` endpoints, plain or streamed (``stream=True``), with the
response, event and error shapes of the real services, so the
real ``openai`` and ``anthropic`` clients parse its replies and raise their own
exception classes. What it answers is scripted per model::

    from adaptive_router.testing import FakeProvider, error, reply

    with FakeProvider() as fake:
        fake.script("gpt-4o", [error(429, retry_after=0.2), reply('{"id": 1}')])
        fake.default("claude-sonnet-4-6", reply("ok", input_tokens=12, output_tokens=3))
        client = fake.openai_client(timeout=2.0)
        ...
        assert fake.calls("gpt-4o") == 2

Each request for a model consumes the next scripted step; once the model's
queue is empty the model's default step is used, then the provider-wide
default (``FakeProvider(default=...)``), and without either the request gets a
404 "model not found" error, as a real API would answer an unknown model.

Beyond fixed scripts, a model can behave statistically and change over time::

    fake.behave("gpt-4o", success_rate=0.95, latency=(0.01, 0.03), seed=1,
                success=json_reply({"id": 1}),
                failure=[error(500), error(429, retry_after=0.1), delay(30)])
    fake.behave("gpt-4o", success_rate=0.2, seed=2, after=100)   # degrades later

and a step can be computed from the request (:func:`respond`), e.g. to answer
with what the prompt asked for.

This module holds the scripting API; the steps are in :mod:`.steps`, the HTTP server
in :mod:`.server`, and each API's wire format in its own module. Only the standard
library is used (a ``ThreadingHTTPServer`` in a daemon thread). The clients returned by
:meth:`FakeProvider.openai_client` and friends have ``max_retries=0``: the router
retries, so SDK retries would hide attempts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import adaptive_router.testing.anthropic_messages as anthropic_messages
import adaptive_router.testing.openai_chat as openai_chat
import adaptive_router.testing.openai_responses as openai_responses
import adaptive_router.testing.server as server
from adaptive_router.testing.steps import (
    MAX_RESOLVE_DEPTH,
    STEP_TYPES,
    Delay,
    Disconnect,
    Empty,
    Error,
    Latency,
    Mix,
    Provider,
    Raw,
    RecordedRequest,
    Respond,
    Step,
    delay,
    disconnect,
    empty,
    error,
    json_reply,
    malformed_json,
    mix,
    raw,
    reply,
    respond,
    step_name,
    weighted_failures,
)
from adaptive_router.testing.wire import DEFAULT_MESSAGES, Completion, WireFormat

if TYPE_CHECKING:
    import anthropic
    import openai

logger = logging.getLogger(__name__)

#: The API key the client helpers use. Not a secret; it is never recorded or echoed.
DUMMY_API_KEY = "sk-fake-provider-key"

OPENAI_PATH = openai_chat.PATH
OPENAI_RESPONSES_PATH = openai_responses.PATH
ANTHROPIC_PATH = anthropic_messages.PATH

_WIRE_FORMATS: dict[str, WireFormat] = {
    w.path: w for w in (openai_chat.WIRE, openai_responses.WIRE, anthropic_messages.WIRE)
}

# Header names that can carry credentials; they are dropped before a request is recorded.
_SECRET_HEADER_PARTS = ("auth", "key", "token", "cookie", "secret")

# Bodies are read whole into memory; a cap keeps a misbehaving test from exhausting it.
_MAX_BODY_BYTES = 32 * 1024 * 1024


class FakeProvider:
    """A loopback HTTP server speaking the OpenAI and Anthropic APIs, scripted per model.

    Starts at construction and stops on :meth:`close` (or leaving a ``with``
    block). Thread-safe: scripts may be changed and requests inspected while
    clients are calling it from any thread or event loop.

    Parameters
    ----------
    default:
        Step used for a model with no scripted steps and no model default.
        ``None`` (the default) answers 404 "model not found", so a typo in a
        model name fails loudly instead of silently succeeding.
    """

    reply = staticmethod(reply)
    error = staticmethod(error)
    delay = staticmethod(delay)
    empty = staticmethod(empty)
    disconnect = staticmethod(disconnect)
    raw = staticmethod(raw)
    mix = staticmethod(mix)
    respond = staticmethod(respond)
    json_reply = staticmethod(json_reply)
    malformed_json = staticmethod(malformed_json)

    def __init__(self, default: Step | None = None) -> None:
        if default is not None and not isinstance(default, STEP_TYPES):
            raise TypeError(f"default must be a step or None, got {default!r}")
        # Re-entrant: a respond() function runs under it and may inspect the fake.
        self._lock = threading.RLock()
        self._scripts: dict[str, deque[Step]] = {}
        self._defaults: dict[str, Step] = {}
        self._schedules: dict[str, list[tuple[int, Step | None]]] = {}
        self._served: dict[str, int] = {}
        self._default = default
        self._requests: list[RecordedRequest] = []
        self._clients: list[openai.OpenAI | anthropic.Anthropic] = []
        self._closing = threading.Event()
        self._closed = False
        self._server = server.Server(self._handle)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeProvider:{self.port}",
            daemon=True,
        )
        self._thread.start()

    # -- addresses -------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for an ``openai`` client (``.../v1``)."""
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for an ``anthropic`` client (the SDK adds ``/v1/messages``)."""
        return self.url

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running"
        return f"FakeProvider(url={self.url!r}, {state}, requests={len(self._requests)})"

    # -- scripting -------------------------------------------------------------------
    def script(self, model: str, steps: Step | Iterable[Step]) -> None:
        """Append ``steps`` (one step or several) to ``model``'s queue.

        Each request for ``model`` consumes one step, in order.
        """
        items: list[Any] = [steps] if isinstance(steps, STEP_TYPES) else list(steps)
        for s in items:
            if not isinstance(s, STEP_TYPES):
                raise TypeError(f"script steps must be reply(...), error(...), ...; got {s!r}")
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(items)

    def default(self, model: str | None, step: Step | None) -> None:
        """Step served for ``model`` once its queue is empty (``model=None``: every model).

        ``step=None`` removes the default.
        """
        if step is not None and not isinstance(step, STEP_TYPES):
            raise TypeError(f"default step must be reply(...), error(...), ...; got {step!r}")
        with self._lock:
            if model is None:
                self._default = step
            elif step is None:
                self._defaults.pop(model, None)
            else:
                self._defaults[model] = step

    def schedule(self, model: str, after: int, step: Step | None) -> None:
        """Make ``step`` ``model``'s default once it has had ``after`` more requests.

        Counted from now: requests 1 to ``after`` get the current behaviour, later ones
        ``step`` (``None`` removes the default). Scripted steps still come first.
        Schedules accumulate, so a model can degrade and later recover::

            fake.schedule("gpt-4o", after=100, step=error(500))
            fake.schedule("gpt-4o", after=200, step=reply("ok"))
        """
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError(f"after must be an int >= 0 (a number of requests), got {after!r}")
        if step is not None and not isinstance(step, STEP_TYPES):
            raise TypeError(f"scheduled step must be reply(...), error(...), ...; got {step!r}")
        with self._lock:
            at = self._served.get(model, 0) + after
            pending = self._schedules.setdefault(model, [])
            pending.append((at, step))
            pending.sort(key=lambda item: item[0])  # stable: same-time changes keep order

    def behave(
        self,
        model: str | None,
        success_rate: float = 1.0,
        *,
        latency: Latency = 0.0,
        seed: int | None = None,
        success: Step | None = None,
        failure: Step | Sequence[Step | tuple[Step, float]] | None = None,
        after: int | None = None,
    ) -> Mix:
        """Answer ``model`` at random: ``success`` with probability ``success_rate``,
        else one of ``failure`` — seeded, so a sequential client sees the same run.

        ``success`` defaults to ``reply("ok")``; ``failure`` (default ``error(500)``) is a
        step or a list of steps, each optionally with a weight: ``[error(500),
        (delay(30), 0.5), (malformed_json(), 2)]``. ``latency`` (seconds or a
        ``(low, high)`` range) is waited before every answer. Without ``after`` this
        becomes the model's default now (``model=None``: every model's); with it, after
        that many more requests (see :meth:`schedule`). Returns the :class:`Mix` made.
        """
        if (
            isinstance(success_rate, bool)
            or not isinstance(success_rate, (int, float))
            or not 0.0 <= success_rate <= 1.0
        ):
            raise ValueError(f"success_rate must be in [0, 1], got {success_rate!r}")
        ok = success if success is not None else reply("ok")
        fails = weighted_failures(failure if failure is not None else error(500))
        total = sum(w for _, w in fails)
        if total <= 0:
            raise ValueError("failure weights must not all be 0")
        choices = [(ok, float(success_rate))]
        choices += [(step, (1.0 - success_rate) * w / total) for step, w in fails]
        behaviour = Mix(tuple(choices), seed, latency)
        if after is None:
            self.default(model, behaviour)
        elif model is None:
            raise ValueError("after= needs a model: schedules are per model")
        else:
            self.schedule(model, after, behaviour)
        return behaviour

    def remaining(self, model: str) -> int:
        """Scripted steps not yet consumed for ``model``."""
        with self._lock:
            return len(self._scripts.get(model, ()))

    def reset(self) -> None:
        """Forget scripts, per-model defaults, schedules and recorded requests (keeps the
        global default)."""
        with self._lock:
            self._scripts.clear()
            self._defaults.clear()
            self._schedules.clear()
            self._served.clear()
            self._requests.clear()

    # -- inspection ------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    def calls(self, model: str | None = None, *, provider: Provider | None = None) -> int:
        """How many requests were received (for ``model`` / ``provider`` if given)."""
        with self._lock:
            return sum(
                1
                for r in self._requests
                if (model is None or r.model == model)
                and (provider is None or r.provider == provider)
            )

    # -- SDK clients -----------------------------------------------------------------
    def openai_client(self, **kwargs: Any) -> openai.OpenAI:
        """An ``openai.OpenAI`` pointed at this server (dummy key, ``max_retries=0``).

        Keyword arguments (``timeout=``…) override the defaults. The client is
        closed when the fake closes (it is of no use afterwards).
        """
        import openai

        kwargs.setdefault("http_client", openai.DefaultHttpxClient(trust_env=False))
        client = openai.OpenAI(**self._client_kwargs(self.openai_base_url, kwargs))
        self._keep(client)
        return client

    def async_openai_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        """An ``openai.AsyncOpenAI`` pointed at this server (dummy key, ``max_retries=0``).

        Close it yourself (``await client.close()`` or ``async with``): closing
        needs the event loop it ran on.
        """
        import openai

        kwargs.setdefault("http_client", openai.DefaultAsyncHttpxClient(trust_env=False))
        return openai.AsyncOpenAI(**self._client_kwargs(self.openai_base_url, kwargs))

    def anthropic_client(self, **kwargs: Any) -> anthropic.Anthropic:
        """An ``anthropic.Anthropic`` pointed at this server (dummy key, ``max_retries=0``).

        Closed when the fake closes, like :meth:`openai_client`.
        """
        import anthropic

        kwargs.setdefault("http_client", anthropic.DefaultHttpxClient(trust_env=False))
        client = anthropic.Anthropic(**self._client_kwargs(self.anthropic_base_url, kwargs))
        self._keep(client)
        return client

    def async_anthropic_client(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        """An ``anthropic.AsyncAnthropic`` pointed at this server (``max_retries=0``).

        Close it yourself, like :meth:`async_openai_client`.
        """
        import anthropic

        kwargs.setdefault("http_client", anthropic.DefaultAsyncHttpxClient(trust_env=False))
        return anthropic.AsyncAnthropic(**self._client_kwargs(self.anthropic_base_url, kwargs))

    def _keep(self, client: openai.OpenAI | anthropic.Anthropic) -> None:
        with self._lock:
            self._clients.append(client)

    @staticmethod
    def _client_kwargs(base_url: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        # trust_env=False above: an HTTP(S)_PROXY in the developer's environment
        # would otherwise send loopback traffic to the proxy.
        return {"api_key": DUMMY_API_KEY, "base_url": base_url, "max_retries": 0, **kwargs}

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Stop the server: pending delays end without a response, connections close."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            clients, self._clients = self._clients, []
        for client in clients:
            # Pooled keep-alive sockets would otherwise linger until garbage collection.
            with contextlib.suppress(Exception):
                client.close()
        self._closing.set()
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- request handling (server threads) -------------------------------------------
    def _handle(self, h: server.Handler) -> None:
        path = h.path.split("?", 1)[0].rstrip("/")
        wire = _WIRE_FORMATS.get(path)
        provider: Provider = wire.provider if wire is not None else "unknown"
        headers = {
            k.lower(): v
            for k, v in h.headers.items()
            if not any(part in k.lower() for part in _SECRET_HEADER_PARTS)
        }
        try:
            length = int(h.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= _MAX_BODY_BYTES:
            length = 0
            h.close_connection = True  # the unread body would be taken for the next request
        data = h.rfile.read(length) if length else b""
        body: Any = None
        try:
            body = json.loads(data) if data else None
        except (ValueError, UnicodeDecodeError):
            body = None
        model = body.get("model") if isinstance(body, dict) else None
        model = model if isinstance(model, str) else None

        if wire is None:
            problem: tuple[int, str] | None = (404, f"Unknown request URL: {h.command} {h.path}")
        elif h.command != "POST":
            problem = (405, f"Method {h.command} not allowed; use POST")
        else:
            problem = wire.problem({k.lower(): v for k, v in h.headers.items()}, body)
        step: Step | None = None
        wait = 0.0
        failure: str | None = None
        record = RecordedRequest(
            provider, h.command, path, model, body, headers, "rejected", time.time()
        )
        with self._lock:
            # Chosen under the same lock as the record, so records and steps stay in order
            # (and seeded draws happen in arrival order).
            if problem is None and model is not None:
                step = self._next_step(model)
                if step is not None:
                    step, wait, failure = self._resolve(step, record)
            if failure is not None:
                name = "error"
            else:
                name = step_name(step) if step is not None else "rejected"
            self._requests.append(dataclasses.replace(record, step=name))
        if wire is None:
            # No API to speak: answer in OpenAI's error shape, as before the split.
            wire = openai_chat.WIRE
        if problem is not None:
            status, message = problem
            _send_error(h, wire, status, message)
            return
        if failure is not None:
            _send_error(h, wire, 500, failure)
            return
        if step is None:
            _send_error(
                h,
                wire,
                404,
                f"The model '{model}' does not exist (FakeProvider has no script or default "
                "for it; call fake.script(...) or fake.default(...))",
                code="model_not_found",
            )
            return
        try:
            self._serve(h, wire, model or "", step, wait, record)
        except server.Dropped as dropped:
            server.drop(h, reset=dropped.reset)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout fired) while the step was running.
            h.close_connection = True

    def _next_step(self, model: str) -> Step | None:
        # Called with the lock held, once per request that reached step selection.
        served = self._served.get(model, 0)
        pending = self._schedules.get(model)
        while pending and pending[0][0] <= served:
            _, scheduled = pending.pop(0)
            if scheduled is None:
                self._defaults.pop(model, None)
            else:
                self._defaults[model] = scheduled
        self._served[model] = served + 1
        queue = self._scripts.get(model)
        if queue:
            return queue.popleft()
        return self._defaults.get(model, self._default)

    @staticmethod
    def _resolve(step: Step, record: RecordedRequest) -> tuple[Step, float, str | None]:
        """Draw mixes and run respond functions (lock held): (step, wait, failure)."""
        wait = 0.0
        for _ in range(MAX_RESOLVE_DEPTH):
            if isinstance(step, Mix):
                step, extra = step.draw()
                wait += extra
            elif isinstance(step, Respond):
                try:
                    made = step.fn(record)
                except Exception as exc:
                    logger.warning("FakeProvider respond function raised", exc_info=True)
                    return step, wait, f"FakeProvider: respond function raised {exc!r:.300}"
                if not isinstance(made, STEP_TYPES):
                    return step, wait, f"FakeProvider: respond function returned {made!r:.200}"
                step = made
            else:
                return step, wait, None
        return step, wait, "FakeProvider: mix/respond steps nested too deeply"

    def _serve(
        self,
        h: server.Handler,
        wire: WireFormat,
        model: str,
        step: Step,
        wait: float,
        record: RecordedRequest,
    ) -> None:
        used_default = False
        while True:
            # Event.wait rather than sleep, so close() ends the wait at once.
            if wait > 0 and self._closing.wait(wait):
                raise server.Dropped
            wait = 0.0
            if isinstance(step, (Mix, Respond)):
                with self._lock:
                    step, wait, failure = self._resolve(step, record)
                if failure is not None:
                    _send_error(h, wire, 500, failure)
                    return
                continue
            if not isinstance(step, Delay):
                break
            if self._closing.wait(step.seconds):
                raise server.Dropped
            if step.then is not None:
                step = step.then
                continue
            with self._lock:
                fallback = self._defaults.get(model, self._default)
            if fallback is None or used_default:
                # No default, or a default that is itself delay(then=None): nothing to serve.
                _send_error(
                    h,
                    wire,
                    404,
                    f"The model '{model}' does not exist (FakeProvider: delay(then=None) "
                    "found no default step to serve after the wait)",
                    code="model_not_found",
                )
                return
            used_default = True
            step = fallback
        if isinstance(step, Disconnect):
            raise server.Dropped(reset=step.reset)
        if isinstance(step, Error):
            _send_error(
                h,
                wire,
                step.status,
                step.message,
                error_type=step.error_type,
                code=step.code,
                retry_after=step.retry_after,
            )
            return
        if isinstance(step, Raw):
            data = step.body.encode() if isinstance(step.body, str) else step.body
            server.send(h, step.status, data, step.content_type, dict(step.headers))
            return
        if isinstance(step, Empty):
            completion = Completion(model, "", step.input_tokens, 0, "stop")
        else:
            assert not isinstance(step, (Mix, Respond, Delay))
            completion = Completion(
                model,
                step.text,
                step.input_tokens,
                step.completion_tokens,
                step.finish_reason,
                step.cached_tokens,
                step.cache_write_tokens,
                step.usage,
            )
        request = record.body if isinstance(record.body, dict) else {}
        if request.get("stream") is True:
            server.send_stream(h, wire.stream(completion, request), {})
        else:
            body, headers = wire.completion(completion)
            server.send(h, 200, json.dumps(body).encode(), "application/json", headers)


def _send_error(
    h: server.Handler,
    wire: WireFormat,
    status: int,
    message: str | None,
    *,
    error_type: str | None = None,
    code: str | None = None,
    retry_after: float | None = None,
) -> None:
    text = message or DEFAULT_MESSAGES.get(status) or f"HTTP {status} (FakeProvider)"
    body, headers = wire.error(status, text, error_type, code)
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
        headers["retry-after-ms"] = str(round(retry_after * 1000))
    server.send(h, status, json.dumps(body).encode(), "application/json", headers)
