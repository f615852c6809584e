"""OpenAI Responses API ``POST /v1/responses``: responses and their event stream.

A stream sends ``response.created``, ``response.in_progress``, the output item and
content part events, a ``response.output_text.delta`` per word, and ends with
``response.completed`` whose response carries the usage (``incomplete`` for a
``finish_reason="length"`` reply) — the only place a Responses stream reports usage.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from adaptive_router.testing.openai_chat import openai_error, openai_problem
from adaptive_router.testing.wire import Completion, WireFormat, pieces, sse

PATH = "/v1/responses"


def _problem(headers: Mapping[str, str], body: Any) -> tuple[int, str] | None:
    return openai_problem(headers, body, "input")


def _usage(c: Completion) -> dict[str, Any] | None:
    if not c.usage:
        return None
    return {
        "input_tokens": c.input_tokens,
        "input_tokens_details": {"cached_tokens": c.cached_tokens},
        "output_tokens": c.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": c.input_tokens + c.output_tokens,
    }


def _message(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [_part(text)]
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _response(
    rid: str, c: Completion, status: str, output: list[dict[str, Any]], usage: bool
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": c.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "metadata": {},
        "instructions": None,
        "error": None,
        "incomplete_details": (
            {"reason": "max_output_tokens"}
            if status == "incomplete" and c.finish_reason == "length"
            else None
        ),
        "usage": _usage(c) if usage else None,
    }


def _final_status(c: Completion) -> str:
    return "incomplete" if c.finish_reason == "length" else "completed"


def _completion(c: Completion) -> tuple[dict[str, Any], dict[str, str]]:
    rid = uuid.uuid4().hex
    item = _message(f"msg_{rid[:24]}", c.text, "completed")
    body = _response(f"resp_{rid[:24]}", c, _final_status(c), [item], usage=True)
    return body, {"x-request-id": f"req_{rid}"}


def _stream(c: Completion, request: dict[str, Any]) -> Iterator[bytes]:
    rid = uuid.uuid4().hex
    resp_id, item_id = f"resp_{rid[:24]}", f"msg_{rid[:24]}"
    seq = iter(range(1_000_000_000))

    def event(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, "sequence_number": next(seq), **fields}, event=kind)

    started = _response(resp_id, c, "in_progress", [], usage=False)
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    yield event(
        "response.output_item.added", output_index=0, item=_message(item_id, None, "in_progress")
    )
    at = {"item_id": item_id, "output_index": 0, "content_index": 0}
    yield event("response.content_part.added", **at, part=_part(""))
    for piece in pieces(c.text):
        yield event("response.output_text.delta", **at, delta=piece, logprobs=[])
    yield event("response.output_text.done", **at, text=c.text, logprobs=[])
    yield event("response.content_part.done", **at, part=_part(c.text))
    done = _message(item_id, c.text, "completed")
    yield event("response.output_item.done", output_index=0, item=done)
    status = _final_status(c)
    final = _response(resp_id, c, status, [done], usage=True)
    yield event(f"response.{status}", response=final)


WIRE = WireFormat("openai", PATH, _problem, _completion, _stream, openai_error)
