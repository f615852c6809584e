"""The scripting vocabulary of :class:`~adaptive_router.testing.FakeProvider`: steps.

A *step* says what the fake answers to one request (a reply, an error, a delay, a
dropped connection, raw bytes, a seeded random mix, or a step computed from the
request). Steps are provider-neutral: each wire format renders them its own way,
streamed or not, as the request asks.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Provider = Literal["openai", "anthropic", "unknown"]


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

    ``usage=False`` sends no usage at all, as some OpenAI-compatible servers do: OpenAI
    ``usage: null`` and no usage chunk in a stream even when asked for; Responses
    ``usage: null``; Anthropic without its ``usage`` objects (the real API always sends
    them, and the SDK's ``messages.stream`` helper cannot accumulate such a stream).
    """

    text: str
    input_tokens: int = 10
    output_tokens: int | None = None
    finish_reason: str = "stop"
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    usage: bool = True

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
        if self.then is not None and not isinstance(self.then, STEP_TYPES):
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
            if not isinstance(step, STEP_TYPES):
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
STEP_TYPES = (Reply, Error, Delay, Empty, Disconnect, Raw, Mix, Respond)


def reply(
    text: str,
    *,
    input_tokens: int = 10,
    output_tokens: int | None = None,
    finish_reason: str = "stop",
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
    usage: bool = True,
) -> Reply:
    """A completion with ``text`` and the given token usage (see :class:`Reply`);
    ``usage=False`` reports none."""
    return Reply(
        text, input_tokens, output_tokens, finish_reason, cached_tokens, cache_write_tokens, usage
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


def step_name(step: Step) -> str:
    """The name a recorded request gives the step it was served."""
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
        """The text of the last user message ("" if there is none); for the Responses
        API, its ``input`` when that is a string."""
        if isinstance(self.body, dict) and isinstance(self.body.get("input"), str):
            return str(self.body["input"])
        messages = self.body.get("messages") if isinstance(self.body, dict) else None
        if isinstance(self.body, dict) and isinstance(self.body.get("input"), list):
            messages = self.body["input"]
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
            if isinstance(part, dict) and part.get("type") in ("text", "input_text")
        )
    return ""


MAX_RESOLVE_DEPTH = 32


def weighted_failures(
    failure: Step | Sequence[Step | tuple[Step, float]],
) -> list[tuple[Step, float]]:
    """``behave(failure=...)`` as ``(step, weight)`` pairs."""
    items: Sequence[Any] = [failure] if isinstance(failure, STEP_TYPES) else list(failure)
    out: list[tuple[Step, float]] = []
    for item in items:
        step, weight = item if isinstance(item, tuple) else (item, 1.0)
        if not isinstance(step, STEP_TYPES):
            raise TypeError(f"failure must be steps or (step, weight) pairs, got {item!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"failure weight must be a number >= 0, got {weight!r}")
        out.append((step, float(weight)))
    if not out:
        raise ValueError("failure must name at least one step")
    return out
