"""FakeProvider's streams and Responses API against the real openai and anthropic SDKs."""

from __future__ import annotations

import asyncio

import anthropic
import openai
import pytest

from adaptive_router.testing import FakeProvider, delay, error, reply

GPT = "gpt-4o"
CLAUDE = "claude-test-model"
MESSAGES = [{"role": "user", "content": "Extract: order 7"}]
TEXT = "The order is 7 widgets to Berlin."


# -- chat completions ------------------------------------------------------------------------
def test_chat_stream_without_stream_options_has_no_usage_chunk(fake: FakeProvider) -> None:
    fake.script(GPT, reply(TEXT, input_tokens=11, output_tokens=8))
    chunks = list(
        fake.openai_client().chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
    )
    assert all(c.object == "chat.completion.chunk" and c.model == GPT for c in chunks)
    assert all(len(c.choices) == 1 for c in chunks)  # choices[0] is safe on every chunk
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == TEXT
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert len(chunks) == 2 + len(TEXT.split())
    assert fake.requests[-1].body["stream"] is True


def test_chat_stream_with_include_usage_ends_with_a_usage_chunk(fake: FakeProvider) -> None:
    fake.script(GPT, reply(TEXT, input_tokens=11, output_tokens=8, cached_tokens=4))
    chunks = list(
        fake.openai_client().chat.completions.create(
            model=GPT, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (11, 8)
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in chunks[:-1]) == TEXT


def test_chat_reply_without_usage(fake: FakeProvider) -> None:
    fake.script(GPT, [reply("a b", usage=False), reply("a b", usage=False)])
    client = fake.openai_client()
    out = client.chat.completions.create(model=GPT, messages=MESSAGES)
    assert out.usage is None
    chunks = list(
        client.chat.completions.create(
            model=GPT, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(c.usage is None and len(c.choices) == 1 for c in chunks)


def test_chat_stream_error_and_delay_steps(fake: FakeProvider) -> None:
    fake.script(GPT, [error(429, retry_after=0.1), delay(0.05, reply("late ok"))])
    client = fake.openai_client()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
    stream = client.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "late ok"


def test_async_chat_stream(fake: FakeProvider) -> None:
    fake.default(GPT, reply(TEXT, input_tokens=3, output_tokens=2))

    async def main() -> tuple[str, object]:
        async with fake.async_openai_client() as client:
            stream = await client.chat.completions.create(
                model=GPT, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            text, usage = "", None
            async for c in stream:
                if c.choices:
                    text += c.choices[0].delta.content or ""
                if c.usage is not None:
                    usage = (c.usage.prompt_tokens, c.usage.completion_tokens)
            return text, usage

    assert asyncio.run(main()) == (TEXT, (3, 2))


def test_connection_is_reused_after_a_stream(fake: FakeProvider) -> None:
    # Chunked encoding ends the stream without closing the keep-alive connection.
    fake.default(GPT, reply("x y"))
    client = fake.openai_client()
    for _ in range(3):
        list(client.chat.completions.create(model=GPT, messages=MESSAGES, stream=True))
        client.chat.completions.create(model=GPT, messages=MESSAGES)
    assert fake.calls(GPT) == 6


# -- Responses API ---------------------------------------------------------------------------
def test_responses_create(fake: FakeProvider) -> None:
    fake.script(GPT, reply(TEXT, input_tokens=9, output_tokens=5, cached_tokens=2))
    out = fake.openai_client().responses.create(model=GPT, input="Extract: order 7")
    assert out.object == "response"
    assert out.status == "completed"
    assert out.model == GPT
    assert out.output_text == TEXT
    assert out.usage is not None
    assert (out.usage.input_tokens, out.usage.output_tokens, out.usage.total_tokens) == (9, 5, 14)
    assert out.usage.input_tokens_details.cached_tokens == 2
    assert fake.requests[-1].prompt == "Extract: order 7"
    assert fake.requests[-1].path == "/v1/responses"


def test_responses_stream_true_ends_with_completed_usage(fake: FakeProvider) -> None:
    fake.script(GPT, reply(TEXT, input_tokens=9, output_tokens=5))
    events = list(fake.openai_client().responses.create(model=GPT, input=MESSAGES, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == TEXT
    final = events[-1].response  # type: ignore[union-attr]
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 5)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert fake.requests[-1].prompt == "Extract: order 7"


def test_responses_stream_helper_sync_and_async(fake: FakeProvider) -> None:
    fake.default(GPT, reply(TEXT, input_tokens=4, output_tokens=6))
    with fake.openai_client().responses.stream(model=GPT, input="hi") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == TEXT
    assert final.output_text == TEXT
    assert final.usage is not None and final.usage.output_tokens == 6

    async def main() -> tuple[str, int]:
        async with fake.async_openai_client() as client:
            async with client.responses.stream(model=GPT, input="hi") as s:
                async for _ in s:
                    pass
                done = await s.get_final_response()
            assert done.usage is not None
            return done.output_text, done.usage.input_tokens

    assert asyncio.run(main()) == (TEXT, 4)


def test_responses_errors_and_length(fake: FakeProvider) -> None:
    fake.script(GPT, [error(500), reply("cut", finish_reason="length")])
    client = fake.openai_client()
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model=GPT, input="x")
    out = client.responses.create(model=GPT, input="x")
    assert out.status == "incomplete"
    assert out.incomplete_details is not None
    assert out.incomplete_details.reason == "max_output_tokens"


def test_responses_without_input_is_a_400(fake: FakeProvider) -> None:
    fake.default(GPT, reply("x"))
    with pytest.raises(openai.BadRequestError, match="input"):
        fake.openai_client().responses.create(model=GPT, input=[])


# -- Anthropic messages ----------------------------------------------------------------------
def test_anthropic_stream_true_events(fake: FakeProvider) -> None:
    fake.script(
        CLAUDE, reply(TEXT, input_tokens=20, output_tokens=8, cached_tokens=5, cache_write_tokens=3)
    )
    events = list(
        fake.anthropic_client().messages.create(
            model=CLAUDE, max_tokens=64, messages=MESSAGES, stream=True
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    start = events[0].message  # type: ignore[union-attr]
    assert start.usage.input_tokens == 12
    assert start.usage.cache_read_input_tokens == 5
    assert start.usage.cache_creation_input_tokens == 3
    assert events[-2].usage.output_tokens == 8  # type: ignore[union-attr]
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")  # type: ignore[union-attr]
    assert text == TEXT


def test_anthropic_messages_stream_helper_sync_and_async(fake: FakeProvider) -> None:
    fake.default(CLAUDE, reply(TEXT, input_tokens=7, output_tokens=4))
    client = fake.anthropic_client()
    with client.messages.stream(model=CLAUDE, max_tokens=64, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == TEXT
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (7, 4)
    assert [b.text for b in final.content] == [TEXT]  # type: ignore[union-attr]

    async def main() -> tuple[str, int]:
        async with fake.async_anthropic_client() as aclient:
            async with aclient.messages.stream(model=CLAUDE, max_tokens=64, messages=MESSAGES) as s:
                text = "".join([t async for t in s.text_stream])
                msg = await s.get_final_message()
            return text, msg.usage.output_tokens

    assert asyncio.run(main()) == (TEXT, 4)


def test_anthropic_stream_error_step(fake: FakeProvider) -> None:
    fake.script(CLAUDE, error(529))
    with pytest.raises(anthropic.APIStatusError) as info:
        fake.anthropic_client().messages.create(
            model=CLAUDE, max_tokens=64, messages=MESSAGES, stream=True
        )
    assert info.value.status_code == 529
