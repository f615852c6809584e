"""OpenAI ``POST /v1/chat/completions``: completions, SSE chunks and error bodies.

A stream (``stream=True``) sends a role chunk, a chunk per word and a finish chunk, then
``data: [DONE]``. Like the real API, usage comes as one last chunk with ``choices: []``
only when the request asks for it with ``stream_options={"include_usage": true}``
(and the other chunks then carry ``"usage": null``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from adaptive_router.testing.wire import Completion, WireFormat, pieces, sse

PATH = "/v1/chat/completions"

_OPENAI_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}


def openai_problem(headers: Mapping[str, str], body: Any, field: str) -> tuple[int, str] | None:
    """What the OpenAI APIs reject before looking at the model (``field``: the input)."""
    if not (headers.get("authorization") or "").startswith("Bearer "):
        return 401, "You didn't provide an API key."
    if not isinstance(body, dict):
        return 400, "The request body is not a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return 400, "model: Field required"
    value = body.get(field)
    if field == "messages" and not (isinstance(value, list) and value):
        return 400, "messages: Field required (a non-empty list)"
    if field == "input" and not (isinstance(value, (str, list)) and value):
        return 400, "input: Field required (a string or a non-empty list)"
    return None


def _problem(headers: Mapping[str, str], body: Any) -> tuple[int, str] | None:
    return openai_problem(headers, body, "messages")


def openai_error(
    status: int, message: str, error_type: str | None, code: str | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """OpenAI's error body (shared by chat completions and the Responses API)."""
    if error_type is None:
        if status >= 500:
            error_type = "server_error"
        elif status == 429:
            error_type = "requests"
        elif status == 403:
            error_type = "permission_error"
        else:
            error_type = "invalid_request_error"
    body = {
        "error": {
            "message": message,
            "type": error_type,
            "param": None,
            "code": code if code is not None else _OPENAI_CODES.get(status),
        }
    }
    return body, {"x-request-id": f"req_{uuid.uuid4().hex}"}


def _reason(finish_reason: str) -> str:
    return {"stop": "stop", "length": "length"}.get(finish_reason, finish_reason)


def _usage(c: Completion) -> dict[str, Any] | None:
    if not c.usage:
        return None
    return {
        "prompt_tokens": c.input_tokens,
        "completion_tokens": c.output_tokens,
        "total_tokens": c.input_tokens + c.output_tokens,
        "prompt_tokens_details": {"cached_tokens": c.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _completion(c: Completion) -> tuple[dict[str, Any], dict[str, str]]:
    rid = uuid.uuid4().hex
    body = {
        "id": f"chatcmpl-{rid[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": c.model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": c.text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": _reason(c.finish_reason),
            }
        ],
        "usage": _usage(c),
        "service_tier": "default",
        "system_fingerprint": "fp_fakeprovider",
    }
    return body, {"x-request-id": f"req_{rid}"}


def _stream(c: Completion, request: dict[str, Any]) -> Iterator[bytes]:
    options = request.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    base: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": c.model,
        "service_tier": "default",
        "system_fingerprint": "fp_fakeprovider",
    }
    if include_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**base, "choices": [choice]})

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in pieces(c.text):
        yield chunk({"content": piece})
    yield chunk({}, _reason(c.finish_reason))
    if include_usage and c.usage:
        yield sse({**base, "choices": [], "usage": _usage(c)})
    yield sse("[DONE]")


WIRE = WireFormat("openai", PATH, _problem, _completion, _stream, openai_error)
