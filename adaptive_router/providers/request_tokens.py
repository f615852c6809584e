"""A provider path's tokens per request, counted from the request it would send: what
``price_each_request=True`` gives the router to price each request by its own size.

Hand-written rather than a tokenizer: tiktoken fetches its encodings over the network
on first use and knows OpenAI's models only, Anthropic ships no local tokenizer, and
the router needs the paths' costs relative to each other, which the text's length gives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["CHARS_PER_TOKEN", "TOKENS_PER_MESSAGE", "PromptTokens", "request_input_tokens"]

#: Characters per token of English text (both providers' published rule of thumb).
CHARS_PER_TOKEN = 4
#: Tokens a message adds for its role and delimiters (OpenAI's counting guide: 3 to 4).
TOKENS_PER_MESSAGE = 4


def _text_length(content: object) -> int:
    """Characters of a message's content: a string, or the text of a list of parts
    (an image part's tokens are not known from its URL, so it counts none)."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, (list, tuple)):
        return sum(
            len(part["text"])
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return 0


def request_input_tokens(request: Mapping[str, Any]) -> int:
    """The input tokens of an SDK request (``messages``, and Anthropic's ``system``),
    at :data:`CHARS_PER_TOKEN` characters per token plus :data:`TOKENS_PER_MESSAGE` each."""
    messages = request.get("messages") or []
    chars = sum(_text_length(m.get("content")) for m in messages if isinstance(m, Mapping))
    n = len(messages)
    system = request.get("system")
    if system:
        chars += _text_length(system)
        n += 1
    return math.ceil(chars / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * n


class PromptTokens:
    """``(input, output)`` tokens of one request: the input counted from the request
    ``build(args, kwargs)`` makes (the path's rendered prompt, system prompt included),
    ``output`` as stated. A prompt the arguments cannot fill raises, as the call would."""

    __slots__ = ("build", "output")

    def __init__(
        self, build: Callable[[tuple[Any, ...], dict[str, Any]], Mapping[str, Any]], output: int
    ) -> None:
        self.build = build
        self.output = output

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[int, int]:
        return (request_input_tokens(self.build(args, kwargs)), self.output)

    def __repr__(self) -> str:
        return f"PromptTokens(output={self.output})"
