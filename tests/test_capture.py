"""Usage capture (adaptive_router.metering.capture) with the real SDKs against FakeProvider."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from adaptive_router.metering import capture
from adaptive_router.metering.capture import CallUsage
from adaptive_router.resilience import call_with_timeout, to_daemon_thread
from adaptive_router.testing import FakeProvider, delay, error, reply, respond

GPT = "gpt-4o"
MINI = "gpt-4o-mini"
CLAUDE = "claude-test-model"
MESSAGES = [{"role": "user", "content": "Extract: order 7"}]
TEXT = "The order is 7 widgets."


@pytest.fixture(autouse=True)
def installed() -> Iterator[None]:
    capture.install()
    yield
    capture.uninstall()


def usage(call: CallUsage) -> tuple[Any, ...]:
    return (
        call.provider,
        call.api,
        call.model,
        call.input_tokens,
        call.output_tokens,
        call.cache_read_tokens,
        call.cache_write_tokens,
    )


def chat(client: openai.OpenAI, model: str = GPT, **kw: Any) -> Any:
    return client.chat.completions.create(model=model, messages=MESSAGES, **kw)


def claude(client: anthropic.Anthropic, **kw: Any) -> Any:
    return client.messages.create(model=CLAUDE, max_tokens=64, messages=MESSAGES, **kw)


# -- plain calls -----------------------------------------------------------------------------
def test_sync_chat_responses_and_messages(fake: FakeProvider) -> None:
    fake.script(GPT, [reply("a", input_tokens=11, output_tokens=3, cached_tokens=4)])
    fake.script(MINI, [reply("b", input_tokens=7, output_tokens=2)])
    fake.script(
        CLAUDE,
        [reply("c", input_tokens=20, output_tokens=5, cached_tokens=6, cache_write_tokens=4)],
    )
    oai, ant = fake.openai_client(), fake.anthropic_client()
    with capture.scope() as got:
        out = chat(oai)
        oai.responses.create(model=MINI, input="hi")
        claude(ant)
    assert out.choices[0].message.content == "a"
    assert [usage(c) for c in got.calls] == [
        ("openai", "chat", GPT, 11, 3, 4, 0),
        ("openai", "responses", MINI, 7, 2, 0, 0),
        ("anthropic", "messages", CLAUDE, 20, 5, 6, 4),
    ]
    assert all(c.known and c.complete and not c.late and not c.streamed for c in got.calls)
    assert (got.input_tokens, got.output_tokens, got.cache_read_tokens) == (38, 10, 10)
    assert got.complete


def test_two_calls_in_one_scope_are_summed(fake: FakeProvider) -> None:
    fake.default(GPT, reply("x", input_tokens=100, output_tokens=10))
    client = fake.openai_client()
    with capture.scope() as got:
        chat(client)
        chat(client)
    assert len(got.calls) == 2
    assert (got.input_tokens, got.output_tokens) == (200, 20)


def test_async_chat_responses_and_messages(fake: FakeProvider) -> None:
    fake.default(GPT, reply("a", input_tokens=5, output_tokens=1))
    fake.default(CLAUDE, reply("c", input_tokens=9, output_tokens=2))

    async def main() -> list[tuple[Any, ...]]:
        async with fake.async_openai_client() as oai, fake.async_anthropic_client() as ant:
            with capture.scope() as got:
                await oai.chat.completions.create(model=GPT, messages=MESSAGES)
                await oai.responses.create(model=GPT, input="hi")
                await ant.messages.create(model=CLAUDE, max_tokens=8, messages=MESSAGES)
            return [usage(c) for c in got.calls]

    assert asyncio.run(main()) == [
        ("openai", "chat", GPT, 5, 1, 0, 0),
        ("openai", "responses", GPT, 5, 1, 0, 0),
        ("anthropic", "messages", CLAUDE, 9, 2, 0, 0),
    ]


def test_reply_without_usage_is_unknown_not_zero(fake: FakeProvider) -> None:
    fake.default(GPT, reply("x", usage=False))
    with capture.scope() as got:
        chat(fake.openai_client())
    [call] = got.calls
    assert (call.input_tokens, call.output_tokens) == (None, None)
    assert not call.known and not got.complete
    assert got.input_tokens is None


def test_failed_call_records_nothing(fake: FakeProvider) -> None:
    fake.script(GPT, [error(500), reply("ok", input_tokens=3, output_tokens=1)])
    client = fake.openai_client()
    with capture.scope() as got:
        with pytest.raises(openai.InternalServerError):
            chat(client)
        chat(client)
    assert [usage(c) for c in got.calls] == [("openai", "chat", GPT, 3, 1, 0, 0)]


# -- streams ---------------------------------------------------------------------------------
def test_chat_stream_without_usage_is_unknown_and_choices_0_is_unbroken(
    fake: FakeProvider,
) -> None:
    fake.default(GPT, reply(TEXT, input_tokens=8, output_tokens=6))
    with capture.scope() as got:
        stream = chat(fake.openai_client(), stream=True)
        assert type(stream) is openai.Stream  # the SDK's own object
        assert got.calls[0].complete is False
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == TEXT
    [call] = got.calls
    assert call.streamed and call.complete
    assert (call.model, call.input_tokens, call.output_tokens) == (GPT, None, None)
    # No stream_options were injected.
    assert "stream_options" not in fake.requests[-1].body


def test_chat_stream_with_include_usage(fake: FakeProvider) -> None:
    fake.default(GPT, reply(TEXT, input_tokens=8, output_tokens=6, cached_tokens=2))
    with capture.scope() as got:
        chunks = list(
            chat(fake.openai_client(), stream=True, stream_options={"include_usage": True})
        )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert [usage(c) for c in got.calls] == [("openai", "chat", GPT, 8, 6, 2, 0)]


def test_chat_stream_helper(fake: FakeProvider) -> None:
    fake.default(GPT, reply(TEXT, input_tokens=8, output_tokens=6))
    with (
        capture.scope() as got,
        fake.openai_client().chat.completions.stream(
            model=GPT, messages=MESSAGES, stream_options={"include_usage": True}
        ) as stream,
    ):
        final = stream.get_final_completion()
    assert final.choices[0].message.content == TEXT
    assert [usage(c) for c in got.calls] == [("openai", "chat", GPT, 8, 6, 0, 0)]


def test_responses_streams_sync(fake: FakeProvider) -> None:
    fake.default(GPT, reply(TEXT, input_tokens=12, output_tokens=7, cached_tokens=3))
    client = fake.openai_client()
    with capture.scope() as got:
        events = list(client.responses.create(model=GPT, input="hi", stream=True))
        with client.responses.stream(model=GPT, input="hi") as stream:
            final = stream.get_final_response()
    assert events[-1].type == "response.completed"
    assert final.output_text == TEXT
    assert [usage(c) for c in got.calls] == [("openai", "responses", GPT, 12, 7, 3, 0)] * 2
    assert all(c.streamed for c in got.calls)


def test_anthropic_streams_sync(fake: FakeProvider) -> None:
    fake.default(
        CLAUDE,
        reply(TEXT, input_tokens=30, output_tokens=9, cached_tokens=10, cache_write_tokens=5),
    )
    client = fake.anthropic_client()
    with capture.scope() as got:
        events = list(claude(client, stream=True))
        with client.messages.stream(model=CLAUDE, max_tokens=64, messages=MESSAGES) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert events[0].type == "message_start"
    assert text == TEXT and final.usage.output_tokens == 9
    assert [usage(c) for c in got.calls] == [("anthropic", "messages", CLAUDE, 30, 9, 10, 5)] * 2


def test_anthropic_stream_without_usage_is_unknown(fake: FakeProvider) -> None:
    fake.default(CLAUDE, reply(TEXT, usage=False))
    with capture.scope() as got:
        list(claude(fake.anthropic_client(), stream=True))
    [call] = got.calls
    assert (call.input_tokens, call.output_tokens, call.cache_read_tokens) == (None, None, None)


def test_async_streams_of_both_apis(fake: FakeProvider) -> None:
    fake.default(GPT, reply(TEXT, input_tokens=4, output_tokens=3))
    fake.default(CLAUDE, reply(TEXT, input_tokens=6, output_tokens=5))

    async def main() -> list[tuple[Any, ...]]:
        async with fake.async_openai_client() as oai, fake.async_anthropic_client() as ant:
            with capture.scope() as got:
                stream = await oai.chat.completions.create(
                    model=GPT,
                    messages=MESSAGES,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for _ in stream:
                    pass
                plain = await oai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)
                text = "".join([c.choices[0].delta.content or "" async for c in plain])
                assert text == TEXT
                async with oai.responses.stream(model=GPT, input="hi") as rs:
                    await rs.get_final_response()
                events = await ant.messages.create(
                    model=CLAUDE, max_tokens=8, messages=MESSAGES, stream=True
                )
                async for _ in events:
                    pass
                async with ant.messages.stream(model=CLAUDE, max_tokens=8, messages=MESSAGES) as ms:
                    await ms.get_final_message()
            return [usage(c) for c in got.calls]

    assert asyncio.run(main()) == [
        ("openai", "chat", GPT, 4, 3, 0, 0),
        ("openai", "chat", GPT, None, None, None, None),
        ("openai", "responses", GPT, 4, 3, 0, 0),
        ("anthropic", "messages", CLAUDE, 6, 5, 0, 0),
        ("anthropic", "messages", CLAUDE, 6, 5, 0, 0),
    ]


# -- with_raw_response -----------------------------------------------------------------------
def test_with_raw_response_is_parsed_once_and_left_to_the_user(fake: FakeProvider) -> None:
    fake.default(GPT, reply("raw", input_tokens=13, output_tokens=4))
    fake.default(CLAUDE, reply("raw", input_tokens=14, output_tokens=5))
    oai, ant = fake.openai_client(), fake.anthropic_client()
    with capture.scope() as got:
        raw = oai.chat.completions.with_raw_response.create(model=GPT, messages=MESSAGES)
        raw_a = ant.messages.with_raw_response.create(model=CLAUDE, max_tokens=8, messages=MESSAGES)
    assert raw.parse() is raw.parse()
    assert raw.parse().choices[0].message.content == "raw"
    assert raw.http_response.json()["usage"]["prompt_tokens"] == 13  # body still readable
    assert raw_a.parse().usage.output_tokens == 5
    assert [usage(c) for c in got.calls] == [
        ("openai", "chat", GPT, 13, 4, 0, 0),
        ("anthropic", "messages", CLAUDE, 14, 5, 0, 0),
    ]


def test_with_raw_response_stream(fake: FakeProvider) -> None:
    fake.default(GPT, reply(TEXT, input_tokens=3, output_tokens=2))
    with capture.scope() as got:
        raw = fake.openai_client().chat.completions.with_raw_response.create(
            model=GPT, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == TEXT
    assert [usage(c) for c in got.calls] == [("openai", "chat", GPT, 3, 2, 0, 0)]


# -- scoping ---------------------------------------------------------------------------------
def test_a_call_outside_any_scope_is_untouched(fake: FakeProvider) -> None:
    fake.default(GPT, reply(TEXT, input_tokens=3, output_tokens=2))
    with capture.scope() as got:
        pass
    out = chat(fake.openai_client())
    stream = chat(fake.openai_client(), stream=True)
    assert "_iterator" not in vars(stream) or inspect.isgenerator(stream._iterator)
    assert getattr(stream._iterator, "__name__", "") == "__stream__"
    assert "".join(c.choices[0].delta.content or "" for c in stream) == TEXT
    assert out.usage is not None and got.calls == []
    assert capture.current_scope() is None


def test_suppress_leaves_a_call_to_the_layer_that_meters_it(fake: FakeProvider) -> None:
    fake.default(GPT, reply("x", input_tokens=3, output_tokens=2))
    client = fake.openai_client()
    with capture.scope() as got:
        with capture.suppress():
            chat(client)
            assert capture.current_scope() is None
        chat(client)
    assert len(got.calls) == 1


def test_nested_scopes_record_into_the_innermost(fake: FakeProvider) -> None:
    fake.default(GPT, reply("x", input_tokens=3, output_tokens=2))
    client = fake.openai_client()
    with capture.scope() as outer:
        chat(client)
        with capture.scope() as inner:
            chat(client)
        chat(client)
    assert (len(outer.calls), len(inner.calls)) == (2, 1)


def test_eight_threads_each_get_exactly_their_own_usage(fake: FakeProvider) -> None:
    fake.default(GPT, respond(lambda r: reply("x", input_tokens=int(r.prompt), output_tokens=1)))
    client = fake.openai_client()
    barrier = threading.Barrier(8)

    def worker(i: int) -> tuple[int | None, int]:
        barrier.wait(timeout=10)
        with capture.scope() as got:
            for _ in range(5):
                client.chat.completions.create(
                    model=GPT, messages=[{"role": "user", "content": str(100 + i)}]
                )
        return got.input_tokens, len(got.calls)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert results == [(5 * (100 + i), 5) for i in range(8)]


def test_fifty_concurrent_tasks_each_get_exactly_their_own_usage(fake: FakeProvider) -> None:
    fake.default(
        GPT, respond(lambda r: delay(0.01, reply("x", input_tokens=int(r.prompt), output_tokens=2)))
    )

    async def one(client: openai.AsyncOpenAI, i: int) -> tuple[int | None, int | None, int]:
        with capture.scope() as got:
            await client.chat.completions.create(
                model=GPT, messages=[{"role": "user", "content": str(i)}]
            )
            await asyncio.sleep(0)
            stream = await client.chat.completions.create(
                model=GPT,
                messages=[{"role": "user", "content": str(i)}],
                stream=True,
                stream_options={"include_usage": True},
            )
            async for _ in stream:
                await asyncio.sleep(0)
        return got.input_tokens, got.output_tokens, len(got.calls)

    async def main() -> list[tuple[int | None, int | None, int]]:
        async with fake.async_openai_client() as client:
            return await asyncio.gather(*(one(client, i) for i in range(1, 51)))

    assert asyncio.run(main()) == [(2 * i, 4, 2) for i in range(1, 51)]


def test_usage_recorded_in_the_routers_worker_thread_reaches_the_scope(
    fake: FakeProvider,
) -> None:
    fake.default(GPT, reply("x", input_tokens=21, output_tokens=2))
    client = fake.openai_client()
    with capture.scope() as got:
        call_with_timeout(chat, 5.0, client)  # the router's sync hand-off
        asyncio.run(to_daemon_thread(chat, client))  # and its async one
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(capture.bind(chat), client).result()
            pool.submit(chat, client).result()  # a bare pool loses the context
    assert got.input_tokens == 63
    assert len(got.calls) == 3


def test_a_call_finishing_after_its_scope_closed_is_marked_late(fake: FakeProvider) -> None:
    fake.script(GPT, delay(0.3, reply("slow", input_tokens=40, output_tokens=4)))
    client = fake.openai_client(timeout=5.0)
    late: list[CallUsage] = []
    arrived = threading.Event()

    def on_late(call: CallUsage) -> None:
        late.append(call)
        arrived.set()

    with capture.scope(on_late=on_late) as got, pytest.raises(TimeoutError):
        call_with_timeout(chat, 0.05, client)
    assert got.closed and got.calls == []
    assert arrived.wait(5)
    [call] = got.calls
    assert call.late and late == [call]
    assert (call.input_tokens, call.output_tokens) == (40, 4)


def test_a_stream_read_after_its_scope_closed_is_late(fake: FakeProvider) -> None:
    fake.default(GPT, reply(TEXT, input_tokens=5, output_tokens=3))
    late: list[CallUsage] = []
    with capture.scope(on_late=late.append) as got:
        stream = chat(fake.openai_client(), stream=True, stream_options={"include_usage": True})
    assert got.calls[0].complete is False
    list(stream)
    assert late == got.calls and late[0].late and late[0].input_tokens == 5


# -- install / uninstall ---------------------------------------------------------------------
def test_install_is_idempotent_and_uninstall_restores_the_sdk(fake: FakeProvider) -> None:
    from openai._base_client import SyncAPIClient

    fake.default(GPT, reply("x", input_tokens=3, output_tokens=2))
    client = fake.openai_client()
    capture.install()
    capture.install()
    with capture.scope() as got:
        chat(client)
    assert len(got.calls) == 1  # wrapped once, not twice
    # wrapt keeps the SDK method's name, docs and signature.
    assert SyncAPIClient.request.__name__ == "request"
    params = list(inspect.signature(SyncAPIClient.request).parameters)
    assert params[:3] == ["self", "cast_to", "options"]

    capture.uninstall()
    assert not capture.installed()
    assert not hasattr(vars(SyncAPIClient)["request"], "__wrapped__")
    with capture.scope() as after:
        chat(client)
    assert after.calls == []
    capture.uninstall()  # no-op


def test_install_from_many_threads_wraps_once(fake: FakeProvider) -> None:
    capture.uninstall()
    threads = [threading.Thread(target=capture.install) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fake.default(GPT, reply("x", input_tokens=3, output_tokens=2))
    with capture.scope() as got:
        chat(fake.openai_client())
    assert len(got.calls) == 1


def test_on_late_must_be_callable() -> None:
    with pytest.raises(TypeError, match="on_late"), capture.scope(on_late=42):  # type: ignore[arg-type]
        pass


def test_an_unknown_sdk_layout_leaves_that_sdk_unmetered_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from anthropic import _base_client as anthropic_base
    from anthropic._base_client import SyncAPIClient as AnthropicSync
    from openai._base_client import SyncAPIClient

    capture.uninstall()
    monkeypatch.setattr(anthropic_base, "AsyncAPIClient", None)
    monkeypatch.setattr(capture, "_unsupported", set())  # the real SDK is fine
    original = vars(AnthropicSync)["request"]
    caplog.set_level("WARNING", logger="adaptive_router.metering.capture")
    capture.install()  # never raises: an SDK upgrade must not take the application down
    capture.uninstall()
    capture.install()  # the second time: no second warning
    assert capture.installed()
    assert vars(AnthropicSync)["request"] is original  # all or nothing, per SDK
    assert hasattr(vars(SyncAPIClient)["request"], "__wrapped__")  # openai is metered
    (line,) = [r.getMessage() for r in caplog.records if "capture is off" in r.getMessage()]
    assert "anthropic" in line and "AsyncAPIClient.request is gone" in line
    capture.uninstall()
    assert not hasattr(vars(SyncAPIClient)["request"], "__wrapped__")
