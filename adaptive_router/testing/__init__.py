"""A fake OpenAI / Anthropic HTTP server for testing routers against the real SDKs.

See :class:`FakeProvider`. The package keeps the parts apart: the steps a test
scripts (:mod:`.steps`), the scripting API (:mod:`.fake`), the HTTP server
(:mod:`.server`) and one module per wire format (:mod:`.openai_chat`,
:mod:`.openai_responses`, :mod:`.anthropic_messages`).
"""

from adaptive_router.testing.fake import (
    ANTHROPIC_PATH,
    DUMMY_API_KEY,
    OPENAI_PATH,
    OPENAI_RESPONSES_PATH,
    FakeProvider,
)
from adaptive_router.testing.steps import (
    Delay,
    Disconnect,
    Empty,
    Error,
    Latency,
    Mix,
    Provider,
    Raw,
    RecordedRequest,
    Reply,
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
)

__all__ = [
    "ANTHROPIC_PATH",
    "DUMMY_API_KEY",
    "OPENAI_PATH",
    "OPENAI_RESPONSES_PATH",
    "Delay",
    "Disconnect",
    "Empty",
    "Error",
    "FakeProvider",
    "Latency",
    "Mix",
    "Provider",
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
