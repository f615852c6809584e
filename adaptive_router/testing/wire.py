"""What every wire format of the fake has in common: the reply to render and SSE framing.

A wire format (:mod:`.openai_chat`, :mod:`.openai_responses`, :mod:`.anthropic_messages`)
turns a provider-neutral :class:`Completion` into its API's JSON body or its stream of
server-sent events, and an error into its API's error body. The HTTP server picks the
format by the request path and never looks inside a body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from adaptive_router.testing.steps import Provider


@dataclass(frozen=True)
class Completion:
    """A successful answer to render: the text and the usage to report."""

    model: str
    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    usage: bool = True


@dataclass(frozen=True)
class WireFormat:
    """One API's rendering of requests, replies, streams and errors."""

    provider: Provider
    path: str
    #: ``(headers, body) -> (status, message)`` for what the API rejects, else ``None``.
    problem: Callable[[Mapping[str, str], Any], tuple[int, str] | None]
    #: ``completion -> (body, headers)``.
    completion: Callable[[Completion], tuple[dict[str, Any], dict[str, str]]]
    #: ``(completion, request body) -> SSE frames``.
    stream: Callable[[Completion, dict[str, Any]], Iterator[bytes]]
    #: ``(status, message, error_type, code) -> (body, headers)``.
    error: Callable[[int, str, str | None, str | None], tuple[dict[str, Any], dict[str, str]]]


def sse(data: Mapping[str, Any] | str, event: str | None = None) -> bytes:
    """One server-sent event frame."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event is not None else ""
    return f"{head}data: {payload}\n\n".encode()


_PIECES = re.compile(r"\s*\S+|\s+")


def pieces(text: str) -> list[str]:
    """The text as streamed: a word (with its leading space) per chunk, like real models."""
    return _PIECES.findall(text)


DEFAULT_MESSAGES = {
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
