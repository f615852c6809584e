"""Anthropic ``POST /v1/messages``: messages, their event stream and error bodies.

A stream sends ``message_start`` (input and cache usage), one text content block with a
``content_block_delta`` per word, ``message_delta`` (stop reason and output tokens) and
``message_stop``, with a ``ping`` after the block starts as the real API does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from adaptive_router.testing.wire import Completion, WireFormat, pieces, sse

PATH = "/v1/messages"

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


def _problem(headers: Mapping[str, str], body: Any) -> tuple[int, str] | None:
    if not (headers.get("x-api-key") or headers.get("authorization")):
        return 401, "x-api-key header is required"
    if not isinstance(body, dict):
        return 400, "The request body is not a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return 400, "model: Field required"
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return 400, "messages: Field required (a non-empty list)"
    if not isinstance(body.get("max_tokens"), int):
        return 400, "max_tokens: Field required"
    return None


def _error(
    status: int, message: str, error_type: str | None, code: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    rid = f"req_{uuid.uuid4().hex}"
    kind = error_type or _ANTHROPIC_TYPES.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    detail: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        detail["details"] = {"error_code": code}
    return {"type": "error", "error": detail, "request_id": rid}, {"request-id": rid}


def _reason(finish_reason: str) -> str:
    return {"stop": "end_turn", "length": "max_tokens"}.get(finish_reason, finish_reason)


def _usage(c: Completion, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": c.input_tokens - c.cached_tokens - c.cache_write_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": c.cache_write_tokens,
        "cache_read_input_tokens": c.cached_tokens,
        "service_tier": "standard",
    }


def _message(c: Completion, msg_id: str, *, streaming: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": [] if streaming or not c.text else [{"type": "text", "text": c.text}],
        "stop_reason": None if streaming else _reason(c.finish_reason),
        "stop_sequence": None,
    }
    if c.usage:
        # A stream's first event counts one output token so far, as the real API's does.
        body["usage"] = _usage(c, 1 if streaming else c.output_tokens)
    return body


def _completion(c: Completion) -> tuple[dict[str, Any], dict[str, str]]:
    rid = uuid.uuid4().hex
    return _message(c, f"msg_{rid[:24]}", streaming=False), {"request-id": f"req_{rid}"}


def _stream(c: Completion, request: dict[str, Any]) -> Iterator[bytes]:
    msg_id = f"msg_{uuid.uuid4().hex[:24]}"
    yield sse(
        {"type": "message_start", "message": _message(c, msg_id, streaming=True)},
        event="message_start",
    )
    if c.text:
        start = {"type": "content_block_start", "index": 0}
        yield sse({**start, "content_block": {"type": "text", "text": ""}}, "content_block_start")
        yield sse({"type": "ping"}, "ping")
        for piece in pieces(c.text):
            delta = {"type": "text_delta", "text": piece}
            yield sse(
                {"type": "content_block_delta", "index": 0, "delta": delta},
                event="content_block_delta",
            )
        yield sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
    tail: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": _reason(c.finish_reason), "stop_sequence": None},
    }
    if c.usage:
        tail["usage"] = {"output_tokens": c.output_tokens}
    yield sse(tail, "message_delta")
    yield sse({"type": "message_stop"}, "message_stop")


WIRE = WireFormat("anthropic", PATH, _problem, _completion, _stream, _error)
