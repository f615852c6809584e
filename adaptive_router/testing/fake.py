"""A fake OpenAI / Anthropic HTTP server for testing routers against the real SDKs.

:class:`FakeProvider` listens on ``127.0.0.1`` (a free port) and answers the
OpenAI ``POST /v1/chat/completions`` and Anthropic ``POST /v1/messages``
endpoints with the response and error shapes of the real services, so the
real ``openai`` and ``anthropic`` clients parse its replies and raise their own
exception classes. What it answers is scripted per model::

    from adaptive_router.testing import FakeProvider, error, reply

    with FakeProvider() as fake:
        fake.script("gpt-4o", [error(429, retry_after=0.2), reply('{"id": 1}')])
        fake.default("claude-sonnet-4-5", reply("ok", input_tokens=12, output_tokens=3))
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

Only the standard library is used (a ``ThreadingHTTPServer`` in a daemon
thread). The clients returned by :meth:`FakeProvider.openai_client` and friends
have ``max_retries=0``: the router retries, so SDK retries would hide attempts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import random
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import anthropic
    import openai

__all__ = [
    "Delay",
    "Disconnect",
    "Empty",
    "Error",
    "FakeProvider",
    "Mix",
    "Raw",
    "RecordedRequest",
    "Reply",
    "Respond",
    "Step",
    "delay",
    "disconnect",
    "empty",
    "error",
    "json_reply",
    "malformed_json",
    "mix",
    "raw",
    "reply",
    "respond",
]

logger = logging.getLogger(__name__)

#: The API key the client helpers use. Not a secret; it is never recorded or echoed.
DUMMY_API_KEY = "sk-fake-provider-key"

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"

Provider = Literal["openai", "anthropic", "unknown"]

# Header names that can carry credentials; they are dropped before a request is recorded.
_SECRET_HEADER_PARTS = ("auth", "key", "token", "cookie", "secret")

# Bodies are read whole into memory; a cap keeps a misbehaving test from exhausting it.
_MAX_BODY_BYTES = 32 * 1024 * 1024


# -- scripted steps ------------------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    """A successful completion whose text is ``text``.

    ``finish_reason`` is provider-neutral: ``"stop"`` becomes OpenAI ``"stop"`` and
    Anthropic ``"end_turn"``; ``"length"`` becomes ``"length"`` / ``"max_tokens"``;
    any other value is sent as given.

    ``input_tokens`` counts the whole prompt; ``cached_tokens`` of them were read from the
    prompt cache and ``cache_write_tokens`` written to it (Anthropic only). Each provider
    reports them its own way: OpenAI ``prompt_tokens`` with
    ``prompt_tokens_details.cached_tokens``; Anthropic ``input_tokens`` (the uncached
    rest), ``cache_read_input_tokens`` and ``cache_creation_input_tokens``.
    """

    text: str
    input_tokens: int = 10
    output_tokens: int | None = None
    finish_reason: str = "stop"
    cached_tokens: int = 0
    cache_write_tokens: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise TypeError(f"reply text must be a str, got {type(self.text).__name__}")
        _check_tokens("input_tokens", self.input_tokens)
        if self.output_tokens is not None:
            _check_tokens("output_tokens", self.output_tokens)
        _check_tokens("cached_tokens", self.cached_tokens)
        _check_tokens("cache_write_tokens", self.cache_write_tokens)
        if self.cached_tokens + self.cache_write_tokens > self.input_tokens:
            raise ValueError(
                "cached_tokens + cache_write_tokens are part of input_tokens and cannot "
                f"exceed it ({self.cached_tokens} + {self.cache_write_tokens} > "
                f"{self.input_tokens})"
            )

    @property
    def completion_tokens(self) -> int:
        """``output_tokens``, or roughly four characters a token when not given."""
        if self.output_tokens is not None:
            return self.output_tokens
        return math.ceil(len(self.text) / 4)


@dataclass(frozen=True)
class Error:
    """An HTTP error in the provider's own error body shape.

    ``error_type`` overrides the error type chosen from the status. ``code`` is
    OpenAI's ``error.code`` and Anthropic's ``error.details.error_code`` (from
    which the anthropic SDK picks a more specific class, e.g. 429
    ``contract_spend_limit_reached``). ``retry_after`` (seconds) adds
    ``retry-after`` and ``retry-after-ms`` headers, which both SDKs read.
    """

    status: int
    message: str | None = None
    retry_after: float | None = None
    error_type: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise TypeError(f"status must be an int, got {self.status!r}")
        if not 400 <= self.status <= 599:
            raise ValueError(f"error status must be 4xx or 5xx, got {self.status}")
        if self.retry_after is not None:
            _check_seconds("retry_after", self.retry_after)


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before sending anything, then do ``then``.

    ``then=None`` means what the model would get with an empty script (its
    default). The wait ends early, without a response, when the server closes.
    """

    seconds: float
    then: Step | None = None

    def __post_init__(self) -> None:
        _check_seconds("seconds", self.seconds)
        if self.then is not None and not isinstance(self.then, _STEP_TYPES):
            raise TypeError(f"then must be a step (reply(...), error(...), ...), got {self.then!r}")


@dataclass(frozen=True)
class Empty:
    """A successful response with no text (OpenAI ``content: ""``, Anthropic ``content: []``)."""

    input_tokens: int = 10

    def __post_init__(self) -> None:
        _check_tokens("input_tokens", self.input_tokens)


@dataclass(frozen=True)
class Disconnect:
    """Read the request, then close the connection without sending a response.

    ``reset=False`` closes it cleanly (FIN: "server disconnected without sending a
    response"); ``reset=True`` aborts it (RST: "connection reset by peer"). The SDKs
    raise ``APIConnectionError`` for both.
    """

    reset: bool = False


@dataclass(frozen=True)
class Raw:
    """Send exactly this status, body and headers (for malformed or unusual responses)."""

    status: int
    body: str | bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise TypeError(f"status must be an int, got {self.status!r}")
        if not 200 <= self.status <= 599:
            raise ValueError(f"raw status must be 200-599, got {self.status}")


Latency = float | tuple[float, float]


def _check_latency(value: object) -> Latency:
    if isinstance(value, tuple):
        if len(value) != 2:
            raise ValueError(f"latency must be seconds or a (low, high) pair, got {value!r}")
        low, high = value
        _check_seconds("latency low", low)
        _check_seconds("latency high", high)
        if low > high:
            raise ValueError(f"latency (low, high) needs low <= high, got {value!r}")
        return (float(low), float(high))
    _check_seconds("latency", value)
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class Mix:
    """Each request draws one of ``choices`` (``(step, weight)`` pairs) at random.

    The draws come from the step's own ``random.Random(seed)``, made in the order the
    requests arrive, so a sequential client sees the same sequence on every run.
    ``latency`` (seconds, or a ``(low, high)`` range drawn uniformly from the same
    generator) is waited before the chosen step is served. A chosen step may itself
    be a :class:`Mix`, a :class:`Respond` or a :class:`Delay`.
    """

    choices: tuple[tuple[Step, float], ...]
    seed: int | None = None
    latency: Latency = 0.0
    _rng: random.Random = field(init=False, repr=False)
    _cum: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError("mix needs at least one (step, weight) choice")
        total = 0.0
        cum = []
        for item in self.choices:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError(f"mix choices must be (step, weight) pairs, got {item!r}")
            step, weight = item
            if not isinstance(step, _STEP_TYPES):
                raise TypeError(f"mix choice must be a step (reply(...), ...), got {step!r}")
            if (
                isinstance(weight, bool)
                or not isinstance(weight, (int, float))
                or not math.isfinite(weight)
                or weight < 0
            ):
                raise ValueError(f"mix weight must be a finite number >= 0, got {weight!r}")
            total += weight
            cum.append(total)
        if total <= 0:
            raise ValueError("mix weights must not all be 0")
        if isinstance(self.seed, bool) or not (self.seed is None or isinstance(self.seed, int)):
            raise ValueError(f"seed must be an int or None, got {self.seed!r}")
        object.__setattr__(self, "latency", _check_latency(self.latency))
        object.__setattr__(self, "_rng", random.Random(self.seed))
        object.__setattr__(self, "_cum", tuple(cum))

    def draw(self) -> tuple[Step, float]:
        """The next (step, latency). Called by the fake under its lock."""
        x = self._rng.random() * self._cum[-1]
        index = next(i for i, c in enumerate(self._cum) if x < c and self.choices[i][1] > 0)
        low, high = self.latency if isinstance(self.latency, tuple) else (self.latency,) * 2
        return self.choices[index][0], (self._rng.uniform(low, high) if high > low else low)


@dataclass(frozen=True, eq=False)
class Respond:
    """A step computed from the request: ``fn(request) -> step``.

    ``request`` is the :class:`RecordedRequest` (``.model``, ``.body``, ``.prompt``…).
    ``fn`` runs on the server thread while the fake holds its (re-entrant) lock, so
    steps are chosen in arrival order: keep it quick. If it raises, the request gets
    a 500 naming the exception.
    """

    fn: Callable[[RecordedRequest], Step]

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"respond needs a callable(request) -> step, got {self.fn!r}")


Step = Reply | Error | Delay | Empty | Disconnect | Raw | Mix | Respond
_STEP_TYPES = (Reply, Error, Delay, Empty, Disconnect, Raw, Mix, Respond)


def reply(
    text: str,
    *,
    input_tokens: int = 10,
    output_tokens: int | None = None,
    finish_reason: str = "stop",
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> Reply:
    """A completion with ``text`` and the given token usage (see :class:`Reply`)."""
    return Reply(
        text, input_tokens, output_tokens, finish_reason, cached_tokens, cache_write_tokens
    )


def error(
    status: int,
    message: str | None = None,
    *,
    retry_after: float | None = None,
    error_type: str | None = None,
    code: str | None = None,
) -> Error:
    """An error response: 429 rate limit, 500, Anthropic 529 overloaded, 4xx client errors…"""
    return Error(status, message, retry_after, error_type, code)


def delay(seconds: float, then: Step | None = None) -> Delay:
    """Wait ``seconds`` (interruptible by :meth:`FakeProvider.close`), then do ``then``."""
    return Delay(seconds, then)


def empty(*, input_tokens: int = 10) -> Empty:
    """A successful response with empty text."""
    return Empty(input_tokens)


def disconnect(*, reset: bool = False) -> Disconnect:
    """Close the connection without a response (the SDKs raise ``APIConnectionError``);
    ``reset=True`` aborts it with a TCP RST ("connection reset by peer")."""
    return Disconnect(reset)


def mix(*choices: tuple[Step, float], seed: int | None = None, latency: Latency = 0.0) -> Mix:
    """A seeded random choice per request: ``mix((reply("ok"), 0.9), (error(500), 0.1),
    seed=1)``. See :class:`Mix`."""
    return Mix(tuple(choices), seed, latency)


def respond(fn: Callable[[RecordedRequest], Step]) -> Respond:
    """A step computed from the request, e.g. echo the prompt::

    respond(lambda req: reply(req.prompt.upper()))
    """
    return Respond(fn)


def json_reply(
    data: Any,
    *,
    fence: str | None = "json",
    prose: str = "Here is the extracted data:",
    input_tokens: int = 10,
    output_tokens: int | None = None,
) -> Reply:
    """A reply carrying ``data`` as JSON the way chat models tend to write it.

    ``fence="json"`` (default) wraps it in a markdown code fence with that language
    tag after ``prose``; ``fence=""`` uses a fence without a tag; ``fence=None`` sends
    the bare JSON and no prose.
    """
    body = json.dumps(data)
    text = body if fence is None else f"{prose}\n```{fence}\n{body}\n```\n"
    return Reply(text, input_tokens, output_tokens)


def malformed_json(
    text: str = 'Sure! {"quantity": 2, "item": "widget", "city": "Berlin",}',
    *,
    input_tokens: int = 10,
    output_tokens: int | None = None,
) -> Reply:
    """A reply whose JSON is broken (by default a trailing comma, which strict parsing
    rejects rather than repairs)."""
    return Reply(text, input_tokens, output_tokens)


def raw(
    status: int,
    body: str | bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    content_type: str = "application/json",
) -> Raw:
    """Send this exact status, body and headers."""
    return Raw(status, body, dict(headers or {}), content_type)


def _check_tokens(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")


def _check_seconds(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")


def _step_name(step: Step) -> str:
    return type(step).__name__.lower()


# -- recorded requests ---------------------------------------------------------------------
@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received.

    ``headers`` are lower-cased and exclude anything that can carry a credential
    (``authorization``, ``x-api-key``, cookies…). ``body`` is the parsed JSON
    (``None`` if it was not JSON). ``step`` names what was served: ``"reply"``,
    ``"error"``, ``"delay"``, ``"empty"``, ``"disconnect"``, ``"raw"``, or
    ``"rejected"`` for a request the fake refused (bad JSON, unknown path, no
    script).
    """

    provider: Provider
    method: str
    path: str
    model: str | None
    body: Any
    headers: dict[str, str]
    step: str
    received_at: float

    @property
    def prompt(self) -> str:
        """The text of the last user message ("" if there is none)."""
        messages = self.body.get("messages") if isinstance(self.body, dict) else None
        for message in reversed(messages if isinstance(messages, list) else []):
            if isinstance(message, dict) and message.get("role") == "user":
                return _content_text(message.get("content"))
        return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


# -- the server ------------------------------------------------------------------------------
class _Dropped(Exception):
    """The connection must be closed without a response (disconnect step or shutdown)."""

    def __init__(self, reset: bool = False) -> None:
        super().__init__("dropped")
        self.reset = reset


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The stdlib joins every handler thread on close; idle keep-alive connections
    # would make that hang, so connections are shut down explicitly instead.
    block_on_close = False

    def __init__(self, fake: FakeProvider) -> None:
        self.fake = fake
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up are normal here; keep stderr quiet.
        logger.debug("FakeProvider connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs; the SDKs pool connections
    server_version = "FakeProvider/1.0"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection ends by itself eventually
    # Headers and body go out in two writes; with Nagle on, the second waits for a
    # delayed ACK (~40 ms) on every keep-alive request.
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        self.server.fake._handle(self)

    def do_GET(self) -> None:
        self.server.fake._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("FakeProvider %s - " + format, self.address_string(), *args)


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
        if default is not None and not isinstance(default, _STEP_TYPES):
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
        self._server = _Server(self)
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
        items: list[Any] = [steps] if isinstance(steps, _STEP_TYPES) else list(steps)
        for s in items:
            if not isinstance(s, _STEP_TYPES):
                raise TypeError(f"script steps must be reply(...), error(...), ...; got {s!r}")
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(items)

    def default(self, model: str | None, step: Step | None) -> None:
        """Step served for ``model`` once its queue is empty (``model=None``: every model).

        ``step=None`` removes the default.
        """
        if step is not None and not isinstance(step, _STEP_TYPES):
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
        if step is not None and not isinstance(step, _STEP_TYPES):
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
        fails = _weighted(failure if failure is not None else error(500))
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
    def _handle(self, h: _Handler) -> None:
        path = h.path.split("?", 1)[0].rstrip("/")
        provider = _PROVIDERS.get(path, "unknown")
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

        problem = self._request_problem(h, provider, body)
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
                name = _step_name(step) if step is not None else "rejected"
            self._requests.append(dataclasses.replace(record, step=name))
        if problem is not None:
            status, message = problem
            self._send_error(h, provider, status, message)
            return
        if failure is not None:
            self._send_error(h, provider, 500, failure)
            return
        if step is None:
            self._send_error(
                h,
                provider,
                404,
                f"The model '{model}' does not exist (FakeProvider has no script or default "
                "for it; call fake.script(...) or fake.default(...))",
                code="model_not_found",
            )
            return
        try:
            self._serve(h, provider, model or "", step, wait, record)
        except _Dropped as dropped:
            self._drop(h, reset=dropped.reset)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout fired) while the step was running.
            h.close_connection = True

    @staticmethod
    def _request_problem(h: _Handler, provider: Provider, body: Any) -> tuple[int, str] | None:
        """What a real API would reject before looking at the model, if anything."""
        if provider == "unknown":
            return 404, f"Unknown request URL: {h.command} {h.path}"
        if h.command != "POST":
            return 405, f"Method {h.command} not allowed; use POST"
        if provider == "openai":
            if not (h.headers.get("authorization") or "").startswith("Bearer "):
                return 401, "You didn't provide an API key."
        elif not (h.headers.get("x-api-key") or h.headers.get("authorization")):
            return 401, "x-api-key header is required"
        if not isinstance(body, dict):
            return 400, "The request body is not a JSON object."
        if not isinstance(body.get("model"), str) or not body["model"]:
            return 400, "model: Field required"
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return 400, "messages: Field required (a non-empty list)"
        if provider == "anthropic" and not isinstance(body.get("max_tokens"), int):
            return 400, "max_tokens: Field required"
        if body.get("stream"):
            return 400, "stream=true is not supported by FakeProvider"
        return None

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
        for _ in range(_MAX_RESOLVE_DEPTH):
            if isinstance(step, Mix):
                step, extra = step.draw()
                wait += extra
            elif isinstance(step, Respond):
                try:
                    made = step.fn(record)
                except Exception as exc:
                    logger.warning("FakeProvider respond function raised", exc_info=True)
                    return step, wait, f"FakeProvider: respond function raised {exc!r:.300}"
                if not isinstance(made, _STEP_TYPES):
                    return step, wait, f"FakeProvider: respond function returned {made!r:.200}"
                step = made
            else:
                return step, wait, None
        return step, wait, "FakeProvider: mix/respond steps nested too deeply"

    def _serve(
        self,
        h: _Handler,
        provider: Provider,
        model: str,
        step: Step,
        wait: float,
        record: RecordedRequest,
    ) -> None:
        used_default = False
        while True:
            # Event.wait rather than sleep, so close() ends the wait at once.
            if wait > 0 and self._closing.wait(wait):
                raise _Dropped
            wait = 0.0
            if isinstance(step, (Mix, Respond)):
                with self._lock:
                    step, wait, failure = self._resolve(step, record)
                if failure is not None:
                    self._send_error(h, provider, 500, failure)
                    return
                continue
            if not isinstance(step, Delay):
                break
            if self._closing.wait(step.seconds):
                raise _Dropped
            if step.then is not None:
                step = step.then
                continue
            with self._lock:
                fallback = self._defaults.get(model, self._default)
            if fallback is None or used_default:
                # No default, or a default that is itself delay(then=None): nothing to serve.
                self._send_error(
                    h,
                    provider,
                    404,
                    f"The model '{model}' does not exist (FakeProvider: delay(then=None) "
                    "found no default step to serve after the wait)",
                    code="model_not_found",
                )
                return
            used_default = True
            step = fallback
        if isinstance(step, Disconnect):
            raise _Dropped(reset=step.reset)
        if isinstance(step, Error):
            self._send_error(
                h,
                provider,
                step.status,
                step.message,
                error_type=step.error_type,
                code=step.code,
                retry_after=step.retry_after,
            )
        elif isinstance(step, Raw):
            data = step.body.encode() if isinstance(step.body, str) else step.body
            self._send(h, step.status, data, step.content_type, dict(step.headers))
        elif isinstance(step, Empty):
            self._send_completion(h, provider, model, "", step.input_tokens, 0, "stop")
        else:
            self._send_completion(
                h,
                provider,
                model,
                step.text,
                step.input_tokens,
                step.completion_tokens,
                step.finish_reason,
                cached=step.cached_tokens,
                written=step.cache_write_tokens,
            )

    # -- response bodies -------------------------------------------------------------
    def _send_completion(
        self,
        h: _Handler,
        provider: Provider,
        model: str,
        text: str,
        input_tokens: int,
        output_tokens: int,
        finish_reason: str,
        *,
        cached: int = 0,
        written: int = 0,
    ) -> None:
        rid = uuid.uuid4().hex
        body: dict[str, Any]
        if provider == "openai":
            reason = {"stop": "stop", "length": "length"}.get(finish_reason, finish_reason)
            body = {
                "id": f"chatcmpl-{rid[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": text,
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": input_tokens,
                    "completion_tokens": output_tokens,
                    "total_tokens": input_tokens + output_tokens,
                    "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                    "completion_tokens_details": {
                        "reasoning_tokens": 0,
                        "audio_tokens": 0,
                        "accepted_prediction_tokens": 0,
                        "rejected_prediction_tokens": 0,
                    },
                },
                "service_tier": "default",
                "system_fingerprint": "fp_fakeprovider",
            }
            headers = {"x-request-id": f"req_{rid}"}
        else:
            reason = {"stop": "end_turn", "length": "max_tokens"}.get(finish_reason, finish_reason)
            body = {
                "id": f"msg_{rid[:24]}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}] if text else [],
                "stop_reason": reason,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": input_tokens - cached - written,
                    "output_tokens": output_tokens,
                    "cache_creation_input_tokens": written,
                    "cache_read_input_tokens": cached,
                    "service_tier": "standard",
                },
            }
            headers = {"request-id": f"req_{rid}"}
        self._send(h, 200, json.dumps(body).encode(), "application/json", headers)

    def _send_error(
        self,
        h: _Handler,
        provider: Provider,
        status: int,
        message: str | None,
        *,
        error_type: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        rid = f"req_{uuid.uuid4().hex}"
        text = message or _DEFAULT_MESSAGES.get(status) or f"HTTP {status} (FakeProvider)"
        body: dict[str, Any]
        if provider == "anthropic":
            kind = error_type or _anthropic_type(status)
            detail: dict[str, Any] = {"type": kind, "message": text}
            if code is not None:
                detail["details"] = {"error_code": code}
            body = {"type": "error", "error": detail, "request_id": rid}
            headers = {"request-id": rid}
        else:
            kind = error_type or _openai_type(status)
            body = {
                "error": {
                    "message": text,
                    "type": kind,
                    "param": None,
                    "code": code if code is not None else _OPENAI_CODES.get(status),
                }
            }
            headers = {"x-request-id": rid}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
            headers["retry-after-ms"] = str(round(retry_after * 1000))
        self._send(h, status, json.dumps(body).encode(), "application/json", headers)

    @staticmethod
    def _send(
        h: _Handler, status: int, data: bytes, content_type: str, headers: dict[str, str]
    ) -> None:
        h.send_response(status)
        h.send_header("content-type", content_type)
        h.send_header("content-length", str(len(data)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    @staticmethod
    def _drop(h: _Handler, *, reset: bool = False) -> None:
        h.close_connection = True
        with contextlib.suppress(OSError):
            if reset:
                # Linger 0: closing sends RST instead of FIN ("connection reset by peer").
                h.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                h.connection.close()
            else:
                h.connection.shutdown(socket.SHUT_RDWR)


_PROVIDERS: dict[str, Provider] = {OPENAI_PATH: "openai", ANTHROPIC_PATH: "anthropic"}
_MAX_RESOLVE_DEPTH = 32


def _weighted(failure: Step | Sequence[Step | tuple[Step, float]]) -> list[tuple[Step, float]]:
    items: Sequence[Any] = [failure] if isinstance(failure, _STEP_TYPES) else list(failure)
    out: list[tuple[Step, float]] = []
    for item in items:
        step, weight = item if isinstance(item, tuple) else (item, 1.0)
        if not isinstance(step, _STEP_TYPES):
            raise TypeError(f"failure must be steps or (step, weight) pairs, got {item!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"failure weight must be a number >= 0, got {weight!r}")
        out.append((step, float(weight)))
    if not out:
        raise ValueError("failure must name at least one step")
    return out


_DEFAULT_MESSAGES = {
    400: "Invalid request (FakeProvider)",
    401: "Invalid API key (FakeProvider)",
    403: "Permission denied (FakeProvider)",
    404: "Not found (FakeProvider)",
    408: "Request timed out (FakeProvider)",
    413: "Request too large (FakeProvider)",
    422: "Unprocessable request (FakeProvider)",
    429: "Rate limit reached (FakeProvider)",
    500: "Internal server error (FakeProvider)",
    502: "Bad gateway (FakeProvider)",
    503: "Service unavailable (FakeProvider)",
    504: "Gateway timeout (FakeProvider)",
    529: "Overloaded (FakeProvider)",
}

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_OPENAI_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}


def _anthropic_type(status: int) -> str:
    return _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _openai_type(status: int) -> str:
    if status >= 500:
        return "server_error"
    if status == 429:
        return "requests"
    if status == 403:
        return "permission_error"
    return "invalid_request_error"
