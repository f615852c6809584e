"""FakeProvider against the real openai and anthropic SDK clients, sync and async."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import anthropic
import openai
import pytest

from adaptive_router.testing import (
    DUMMY_API_KEY,
    FakeProvider,
    delay,
    disconnect,
    empty,
    error,
    raw,
    reply,
)

GPT = "gpt-4o"
CLAUDE = "claude-test-model"
MESSAGES = [{"role": "user", "content": "Extract: order 7"}]


def ask_openai(client: openai.OpenAI, model: str = GPT, **kw: Any) -> Any:
    return client.chat.completions.create(model=model, messages=MESSAGES, **kw)


def ask_anthropic(client: anthropic.Anthropic, model: str = CLAUDE, **kw: Any) -> Any:
    return client.messages.create(model=model, max_tokens=64, messages=MESSAGES, **kw)


async def aask_openai(client: openai.AsyncOpenAI, model: str = GPT, **kw: Any) -> Any:
    return await client.chat.completions.create(model=model, messages=MESSAGES, **kw)


async def aask_anthropic(client: anthropic.AsyncAnthropic, model: str = CLAUDE, **kw: Any) -> Any:
    return await client.messages.create(model=model, max_tokens=64, messages=MESSAGES, **kw)


# -- replies ---------------------------------------------------------------------------------
def test_openai_reply_is_parsed_by_the_sdk(fake: FakeProvider) -> None:
    fake.script(GPT, [fake.reply('{"a":1}', input_tokens=1000, output_tokens=500)])
    out = ask_openai(fake.openai_client())
    assert out.object == "chat.completion"
    assert out.model == GPT
    assert out.choices[0].message.content == '{"a":1}'
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (1000, 500)
    assert out.usage.total_tokens == 1500


def test_anthropic_reply_is_parsed_by_the_sdk(fake: FakeProvider) -> None:
    fake.script(CLAUDE, [reply("hello", input_tokens=7, output_tokens=3)])
    out = ask_anthropic(fake.anthropic_client())
    assert out.type == "message"
    assert out.role == "assistant"
    assert out.model == CLAUDE
    assert [(b.type, b.text) for b in out.content] == [("text", "hello")]
    assert out.stop_reason == "end_turn"
    assert (out.usage.input_tokens, out.usage.output_tokens) == (7, 3)


def test_finish_reason_length_maps_to_each_provider(fake: FakeProvider) -> None:
    fake.script(GPT, [reply("cut", finish_reason="length")])
    fake.script(CLAUDE, [reply("cut", finish_reason="length")])
    assert ask_openai(fake.openai_client()).choices[0].finish_reason == "length"
    assert ask_anthropic(fake.anthropic_client()).stop_reason == "max_tokens"


def test_output_tokens_default_from_text_length(fake: FakeProvider) -> None:
    fake.default(GPT, reply("x" * 40))
    usage = ask_openai(fake.openai_client()).usage
    assert usage is not None and usage.completion_tokens == 10


def test_empty_reply(fake: FakeProvider) -> None:
    fake.script(GPT, [empty()])
    fake.script(CLAUDE, [empty()])
    assert ask_openai(fake.openai_client()).choices[0].message.content == ""
    assert ask_anthropic(fake.anthropic_client()).content == []


def test_queue_is_consumed_in_order_then_model_default(fake: FakeProvider) -> None:
    fake.script(GPT, [reply("one"), reply("two")])
    fake.default(GPT, reply("default"))
    client = fake.openai_client()
    texts = [ask_openai(client).choices[0].message.content for _ in range(4)]
    assert texts == ["one", "two", "default", "default"]
    assert fake.remaining(GPT) == 0


def test_script_appends_to_the_queue(fake: FakeProvider) -> None:
    fake.script(GPT, [reply("one")])
    fake.script(GPT, [reply("two")])
    assert fake.remaining(GPT) == 2
    client = fake.openai_client()
    assert [ask_openai(client).choices[0].message.content for _ in range(2)] == ["one", "two"]


def test_unscripted_model_is_not_found() -> None:
    with FakeProvider() as fake:
        with pytest.raises(openai.NotFoundError, match="no script or default"):
            ask_openai(fake.openai_client(), model="gpt-typo")
        assert fake.requests[-1].step == "rejected"


def test_provider_wide_default() -> None:
    with FakeProvider(default=reply("fine")) as fake:
        assert ask_openai(fake.openai_client(), model="any").choices[0].message.content == "fine"
        fake.default(None, None)
        with pytest.raises(anthropic.NotFoundError):
            ask_anthropic(fake.anthropic_client(), model="any")


# -- errors ------------------------------------------------------------------------------------
OPENAI_ERRORS: list[tuple[int, type[Exception]]] = [
    (400, openai.BadRequestError),
    (401, openai.AuthenticationError),
    (403, openai.PermissionDeniedError),
    (404, openai.NotFoundError),
    (409, openai.ConflictError),
    (422, openai.UnprocessableEntityError),
    (429, openai.RateLimitError),
    (500, openai.InternalServerError),
    (503, openai.InternalServerError),
    (529, openai.InternalServerError),
]

ANTHROPIC_ERRORS: list[tuple[int, type[Exception], str]] = [
    (400, anthropic.BadRequestError, "invalid_request_error"),
    (401, anthropic.AuthenticationError, "authentication_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"),
    (404, anthropic.NotFoundError, "not_found_error"),
    (409, anthropic.ConflictError, "invalid_request_error"),
    (422, anthropic.UnprocessableEntityError, "invalid_request_error"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (503, anthropic.ServiceUnavailableError, "api_error"),
    (504, anthropic.GatewayTimeoutError, "timeout_error"),
    (529, anthropic.OverloadedError, "overloaded_error"),
]


@pytest.mark.parametrize(("status", "exc_type"), OPENAI_ERRORS)
def test_openai_error_classes(fake: FakeProvider, status: int, exc_type: type[Exception]) -> None:
    fake.script(GPT, [error(status)])
    with pytest.raises(openai.APIStatusError) as info:
        ask_openai(fake.openai_client())
    assert type(info.value) is exc_type
    assert info.value.status_code == status
    body = info.value.body  # the SDK keeps the "error" member of {"error": {...}}
    assert isinstance(body, dict)
    assert set(body) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(("status", "exc_type", "error_type"), ANTHROPIC_ERRORS)
def test_anthropic_error_classes(
    fake: FakeProvider, status: int, exc_type: type[Exception], error_type: str
) -> None:
    fake.script(CLAUDE, [error(status)])
    with pytest.raises(anthropic.APIStatusError) as info:
        ask_anthropic(fake.anthropic_client())
    assert type(info.value) is exc_type
    assert info.value.status_code == status
    assert info.value.type == error_type
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == error_type


def test_anthropic_overloaded_is_an_internal_server_error(fake: FakeProvider) -> None:
    fake.script(CLAUDE, [error(529)])
    with pytest.raises(anthropic.InternalServerError) as info:
        ask_anthropic(fake.anthropic_client())
    assert isinstance(info.value, anthropic.OverloadedError)


def test_retry_after_is_visible_on_the_exception(fake: FakeProvider) -> None:
    fake.script(GPT, [error(429, retry_after=0.2)])
    fake.script(CLAUDE, [error(429, "slow down", retry_after=3)])
    with pytest.raises(openai.RateLimitError) as oi:
        ask_openai(fake.openai_client())
    assert oi.value.response.headers["retry-after"] == "0.2"
    assert oi.value.response.headers["retry-after-ms"] == "200"
    with pytest.raises(anthropic.RateLimitError, match="slow down") as ai:
        ask_anthropic(fake.anthropic_client())
    assert ai.value.response.headers["retry-after"] == "3"


def test_error_without_retry_after_has_no_header(fake: FakeProvider) -> None:
    fake.script(GPT, [error(500)])
    with pytest.raises(openai.InternalServerError) as info:
        ask_openai(fake.openai_client())
    assert "retry-after" not in info.value.response.headers


def test_error_type_and_code_overrides(fake: FakeProvider) -> None:
    fake.script(
        GPT, [error(429, "quota", error_type="insufficient_quota", code="insufficient_quota")]
    )
    with pytest.raises(openai.RateLimitError) as info:
        ask_openai(fake.openai_client())
    assert info.value.code == "insufficient_quota"
    assert info.value.type == "insufficient_quota"


def test_anthropic_error_code_selects_the_specific_class(fake: FakeProvider) -> None:
    # A spend limit is a 429 that waiting does not fix: the SDK gives it its own class.
    fake.script(CLAUDE, error(429, "spend limit", code="contract_spend_limit_reached"))
    with pytest.raises(anthropic.RateLimitError) as info:
        ask_anthropic(fake.anthropic_client())
    assert type(info.value) is anthropic.ContractSpendLimitReachedError
    assert info.value.error_code == "contract_spend_limit_reached"


# -- timeouts, disconnects, raw ------------------------------------------------------------------
def test_delay_beyond_client_timeout_raises_api_timeout_error(fake: FakeProvider) -> None:
    # The delays outlast the test: close() ends them, so they cost nothing.
    fake.script(GPT, [delay(10.0, then=reply("late"))])
    fake.script(CLAUDE, [delay(10.0, then=reply("late"))])
    start = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        ask_openai(fake.openai_client(timeout=0.2))
    with pytest.raises(anthropic.APITimeoutError):
        ask_anthropic(fake.anthropic_client(), timeout=0.2)
    assert time.perf_counter() - start < 8.0


def test_delay_within_timeout_then_step(fake: FakeProvider) -> None:
    fake.script(GPT, [delay(0.05, then=reply("slow but fine")), delay(0.01, then=error(500))])
    client = fake.openai_client(timeout=5)
    assert ask_openai(client).choices[0].message.content == "slow but fine"
    with pytest.raises(openai.InternalServerError):
        ask_openai(client)


def test_delay_without_then_serves_the_default(fake: FakeProvider) -> None:
    fake.default(CLAUDE, reply("default"))
    fake.script(CLAUDE, [delay(0.01)])
    assert ask_anthropic(fake.anthropic_client()).content[0].text == "default"


def test_disconnect_raises_api_connection_error(fake: FakeProvider) -> None:
    fake.script(GPT, [disconnect(), reply("after")])
    fake.script(CLAUDE, [disconnect()])
    client = fake.openai_client()
    with pytest.raises(openai.APIConnectionError) as info:
        ask_openai(client)
    assert not isinstance(info.value, openai.APITimeoutError)
    assert ask_openai(client).choices[0].message.content == "after"  # the client recovers
    with pytest.raises(anthropic.APIConnectionError) as ainfo:
        ask_anthropic(fake.anthropic_client())
    assert not isinstance(ainfo.value, anthropic.APITimeoutError)


def test_raw_step_sends_exact_bytes(fake: FakeProvider) -> None:
    fake.script(
        GPT, [raw(502, "<html>bad gateway</html>", {"x-test": "1"}, content_type="text/html")]
    )
    with pytest.raises(openai.InternalServerError) as info:
        ask_openai(fake.openai_client())
    assert info.value.status_code == 502
    assert info.value.response.headers["x-test"] == "1"
    assert "bad gateway" in info.value.response.text


def test_garbage_200_body_escapes_the_sdks_as_a_json_error(fake: FakeProvider) -> None:
    # Not an APIError: callers mapping SDK errors to kinds must expect a plain ValueError.
    fake.script(GPT, raw(200, "<html>oops</html>"))
    fake.script(CLAUDE, raw(200, "<html>oops</html>"))
    with pytest.raises(json.JSONDecodeError):
        ask_openai(fake.openai_client())
    with pytest.raises(json.JSONDecodeError):
        ask_anthropic(fake.anthropic_client())


def test_close_interrupts_a_delayed_request() -> None:
    fake = FakeProvider()
    fake.script(GPT, [delay(30, then=reply("never"))])
    client = fake.openai_client(timeout=30)
    caught: list[BaseException] = []

    def call() -> None:
        try:
            ask_openai(client)
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while fake.calls(GPT) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.perf_counter()
    fake.close()
    assert time.perf_counter() - start < 1.0
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(caught) == 1 and isinstance(caught[0], openai.APIConnectionError)
    fake.close()  # idempotent


def test_close_with_idle_keep_alive_connections_is_prompt() -> None:
    fake = FakeProvider(default=reply("ok"))
    clients = [fake.openai_client() for _ in range(3)]
    for c in clients:
        ask_openai(c)  # each leaves a pooled keep-alive connection open
    start = time.perf_counter()
    fake.close()
    assert time.perf_counter() - start < 1.0


# -- recording -------------------------------------------------------------------------------
def test_requests_are_recorded_per_model(fake: FakeProvider) -> None:
    fake.default(GPT, reply("ok"))
    fake.default(CLAUDE, reply("ok"))
    oc, ac = fake.openai_client(), fake.anthropic_client()
    for _ in range(3):
        ask_openai(oc)
    ask_anthropic(ac)
    assert fake.calls(GPT) == 3
    assert fake.calls(CLAUDE) == 1
    assert fake.calls() == 4
    assert fake.calls(provider="anthropic") == 1
    first = fake.requests[0]
    assert (first.provider, first.method, first.path, first.model) == (
        "openai",
        "POST",
        "/v1/chat/completions",
        GPT,
    )
    assert first.body["messages"] == MESSAGES
    assert first.step == "reply"
    last = fake.requests[-1]
    assert (last.provider, last.path, last.body["max_tokens"]) == ("anthropic", "/v1/messages", 64)
    assert "anthropic-version" in last.headers


def test_errors_and_failures_are_recorded_too(fake: FakeProvider) -> None:
    fake.script(GPT, [error(500), disconnect(), delay(10, then=reply("late"))])
    client = fake.openai_client()
    with pytest.raises(openai.InternalServerError):
        ask_openai(client)
    with pytest.raises(openai.APIConnectionError):
        ask_openai(client)
    with pytest.raises(openai.APITimeoutError):
        ask_openai(client, timeout=0.2)
    assert [r.step for r in fake.requests] == ["error", "disconnect", "delay"]


def test_api_key_is_never_recorded(fake: FakeProvider) -> None:
    secret = "sk-live-very-secret-0123456789"
    fake.default(GPT, reply("ok"))
    fake.default(CLAUDE, reply("ok"))
    ask_openai(fake.openai_client(api_key=secret))
    ask_anthropic(fake.anthropic_client(api_key=secret))
    dump = repr(fake.requests)
    assert secret not in dump
    assert DUMMY_API_KEY not in dump
    for r in fake.requests:
        assert "authorization" not in r.headers
        assert "x-api-key" not in r.headers


def test_reset_forgets_scripts_and_records(fake: FakeProvider) -> None:
    fake.script(GPT, [reply("a")])
    fake.default(GPT, reply("b"))
    ask_openai(fake.openai_client())
    fake.reset()
    assert fake.calls() == 0 and fake.remaining(GPT) == 0
    with pytest.raises(openai.NotFoundError):
        ask_openai(fake.openai_client())


def test_concurrent_requests_consume_each_step_once(fake: FakeProvider) -> None:
    n = 24
    fake.script(GPT, [reply(str(i)) for i in range(n)])
    client = fake.openai_client()
    seen: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        text = ask_openai(client).choices[0].message.content
        with lock:
            seen.append(text)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(seen, key=int) == [str(i) for i in range(n)]
    assert fake.calls(GPT) == n


def test_helper_kwargs_override_defaults(fake: FakeProvider) -> None:
    # With SDK retries switched back on, the SDK itself retries the 500s.
    fake.script(GPT, [error(500, retry_after=0.01), error(500, retry_after=0.01), reply("third")])
    client = fake.openai_client(max_retries=2)
    assert ask_openai(client).choices[0].message.content == "third"
    assert fake.calls(GPT) == 3


def test_clients_have_no_sdk_retries(fake: FakeProvider) -> None:
    assert fake.openai_client().max_retries == 0
    assert fake.anthropic_client().max_retries == 0
    assert fake.async_openai_client().max_retries == 0
    assert fake.async_anthropic_client().max_retries == 0
    assert fake.openai_base_url == fake.url + "/v1"
    assert fake.anthropic_base_url == fake.url
    assert fake.url.startswith("http://127.0.0.1:")


# -- async -------------------------------------------------------------------------------------
def test_async_clients() -> None:
    async def scenario(fake: FakeProvider) -> None:
        oc = fake.async_openai_client()
        ac = fake.async_anthropic_client()
        fake.script(GPT, [reply("hi", input_tokens=5, output_tokens=2), error(429, retry_after=1)])
        fake.script(CLAUDE, [reply("yo"), error(529), delay(10), disconnect()])
        out = await aask_openai(oc)
        assert out.choices[0].message.content == "hi"
        assert out.usage is not None and out.usage.total_tokens == 7
        with pytest.raises(openai.RateLimitError) as info:
            await aask_openai(oc)
        assert info.value.response.headers["retry-after"] == "1"
        assert (await aask_anthropic(ac)).content[0].text == "yo"
        with pytest.raises(anthropic.OverloadedError):
            await aask_anthropic(ac)
        with pytest.raises(anthropic.APITimeoutError):
            await aask_anthropic(ac, timeout=0.3)
        with pytest.raises(anthropic.APIConnectionError):
            await aask_anthropic(ac)
        # Concurrent calls from one event loop.
        fake.default(GPT, reply("many"))
        outs = await asyncio.gather(*(aask_openai(oc) for _ in range(8)))
        assert {o.choices[0].message.content for o in outs} == {"many"}
        await oc.close()
        await ac.close()

    with FakeProvider() as fake:
        asyncio.run(scenario(fake))
        assert fake.calls(GPT) == 10
        assert fake.calls(CLAUDE) == 4


def test_async_timeout_openai() -> None:
    async def scenario(fake: FakeProvider) -> None:
        client = fake.async_openai_client()
        with pytest.raises(openai.APITimeoutError):
            await aask_openai(client, timeout=0.2)
        await client.close()

    with FakeProvider(default=delay(5, then=reply("late"))) as fake:
        asyncio.run(scenario(fake))


# -- plain HTTP: what the SDKs never send ---------------------------------------------------------
def post(
    fake: FakeProvider, path: str, body: object, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(
        fake.url + path,
        data=data,
        headers={"content-type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_missing_credentials_are_rejected(fake: FakeProvider) -> None:
    fake.default(GPT, reply("ok"))
    status, body = post(fake, "/v1/chat/completions", {"model": GPT, "messages": MESSAGES})
    assert status == 401 and body["error"]["type"] == "invalid_request_error"
    status, body = post(fake, "/v1/messages", {"model": GPT, "messages": MESSAGES, "max_tokens": 5})
    assert status == 401 and body["error"]["type"] == "authentication_error"
    assert fake.calls(GPT) == 2


def test_bad_requests_are_rejected_in_provider_shape(fake: FakeProvider) -> None:
    fake.default(CLAUDE, reply("ok"))
    auth = {"x-api-key": "k"}
    status, body = post(fake, "/v1/messages", {"model": CLAUDE, "messages": MESSAGES}, auth)
    assert status == 400 and "max_tokens" in body["error"]["message"]
    status, body = post(fake, "/v1/messages", b"{not json", auth)
    assert status == 400 and body["type"] == "error"
    status, body = post(fake, "/v1/nope", {}, auth)
    assert status == 404
    assert [r.step for r in fake.requests] == ["rejected"] * 3


def test_recorded_headers_drop_credentials(fake: FakeProvider) -> None:
    fake.default(GPT, reply("ok"))
    status, _ = post(
        fake,
        "/v1/chat/completions",
        {"model": GPT, "messages": MESSAGES},
        {"authorization": "Bearer sk-secret", "cookie": "s=1", "x-custom": "kept"},
    )
    assert status == 200
    headers = fake.requests[0].headers
    assert headers["x-custom"] == "kept"
    assert "authorization" not in headers and "cookie" not in headers
    assert "sk-secret" not in repr(fake.requests)


# -- step construction -------------------------------------------------------------------------
def test_steps_are_checked_when_built() -> None:
    with pytest.raises(ValueError, match="4xx or 5xx"):
        error(200)
    with pytest.raises(ValueError, match="seconds"):
        delay(-1)
    with pytest.raises(ValueError, match="retry_after"):
        error(429, retry_after=float("nan"))
    with pytest.raises(ValueError, match="input_tokens"):
        reply("x", input_tokens=-1)
    with FakeProvider() as fake, pytest.raises(TypeError):
        fake.script(GPT, ["not a step"])  # type: ignore[list-item]


# -- behaviour: seeded mixes, schedules, computed replies --------------------------------------
def _outcomes(client: openai.OpenAI, n: int, model: str = GPT) -> list[str]:
    out = []
    for _ in range(n):
        try:
            out.append(ask_openai(client, model).choices[0].message.content or "")
        except openai.APIStatusError as exc:
            out.append(str(exc.status_code))
    return out


def test_behave_is_seeded_and_keeps_its_rate() -> None:
    runs = []
    for seed in (1, 1, 2):
        with FakeProvider() as f:
            f.behave(GPT, 0.7, seed=seed, failure=[error(500), (error(429), 2)])
            runs.append(_outcomes(f.openai_client(), 300))
    assert runs[0] == runs[1] and runs[0] != runs[2]
    counts = {k: runs[0].count(k) for k in ("ok", "500", "429")}
    assert sum(counts.values()) == 300
    assert 0.6 < counts["ok"] / 300 < 0.8
    assert counts["429"] > counts["500"] > 0  # failure weights 2:1


def test_behave_latency_and_default_steps(fake: FakeProvider) -> None:
    fake.behave(GPT, latency=0.1)
    client = fake.openai_client()
    start = time.monotonic()
    assert _outcomes(client, 2) == ["ok", "ok"]
    assert time.monotonic() - start >= 0.2
    fake.behave(GPT, 0.0, latency=(0.0, 0.01), seed=3)  # default failure: 500
    assert _outcomes(client, 3) == ["500"] * 3
    assert [r.step for r in fake.requests] == ["reply"] * 2 + ["error"] * 3


def test_schedule_changes_behaviour_after_n_requests(fake: FakeProvider) -> None:
    fake.default(GPT, reply("healthy"))
    fake.schedule(GPT, after=3, step=error(500))
    fake.schedule(GPT, after=5, step=reply("recovered"))
    client = fake.openai_client()
    assert _outcomes(client, 7) == ["healthy"] * 3 + ["500"] * 2 + ["recovered"] * 2
    # Counted from the call: 2 more requests, then the default goes away (404).
    fake.schedule(GPT, after=2, step=None)
    assert _outcomes(client, 3) == ["recovered", "recovered", "404"]
    # Scripted steps still come first.
    fake.default(GPT, reply("default"))
    fake.schedule(GPT, after=0, step=reply("scheduled"))
    fake.script(GPT, reply("scripted"))
    assert _outcomes(client, 2) == ["scripted", "scheduled"]


def test_behave_after_degrades_later(fake: FakeProvider) -> None:
    fake.behave(GPT, 1.0, success=reply("good"))
    fake.behave(GPT, 0.0, seed=1, failure=error(503), after=4)
    assert _outcomes(fake.openai_client(), 6) == ["good"] * 4 + ["503"] * 2
    fake.reset()
    assert fake.calls() == 0
    with pytest.raises(openai.NotFoundError):
        ask_openai(fake.openai_client())


def test_mix_can_nest_delays_and_responds(fake: FakeProvider) -> None:
    from adaptive_router.testing import mix, respond

    fake.default(
        GPT,
        mix(
            (respond(lambda r: reply(r.prompt.upper())), 1),
            (delay(0.0, then=reply("delayed")), 1),
            seed=5,
        ),
    )
    seen = set(_outcomes(fake.openai_client(), 20))
    assert seen == {"EXTRACT: ORDER 7", "delayed"}


def test_respond_computes_the_step_from_the_request(fake: FakeProvider) -> None:
    from adaptive_router.testing import respond

    def answer(request: Any) -> Any:
        # It may inspect the fake (re-entrant lock) and sees the recorded request.
        assert fake.remaining(request.model) == 0
        return reply(f"{request.provider}:{request.model}:{request.prompt}")

    fake.default(GPT, respond(answer))
    fake.default(CLAUDE, respond(answer))
    assert ask_openai(fake.openai_client()).choices[0].message.content == (
        f"openai:{GPT}:Extract: order 7"
    )
    content = [{"type": "text", "text": "block "}, {"type": "text", "text": "text"}]
    out = fake.anthropic_client().messages.create(
        model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": content}]
    )
    assert out.content[0].text == f"anthropic:{CLAUDE}:block text"  # type: ignore[union-attr]


def test_respond_that_raises_is_a_500(fake: FakeProvider) -> None:
    from adaptive_router.testing import respond

    fake.default(GPT, respond(lambda r: 1 / 0))
    with pytest.raises(openai.InternalServerError, match="ZeroDivisionError"):
        ask_openai(fake.openai_client())
    fake.default(GPT, respond(lambda r: "not a step"))  # type: ignore[arg-type,return-value]
    with pytest.raises(openai.InternalServerError, match="returned"):
        ask_openai(fake.openai_client())
    assert [r.step for r in fake.requests] == ["error", "error"]


def test_json_replies_fenced_bare_and_malformed(fake: FakeProvider) -> None:
    from adaptive_router.testing import json_reply, malformed_json
    from adaptive_router.validation import OutputValidationError, extract_json

    fake.script(
        GPT,
        [
            json_reply({"a": 1}),
            json_reply({"a": 2}, fence=""),
            json_reply({"a": 3}, fence=None),
            malformed_json(),
        ],
    )
    texts = _outcomes(fake.openai_client(), 4)
    assert "```json\n" in texts[0] and "\n```\n{" in texts[1]
    assert texts[2] == '{"a": 3}'
    assert [extract_json(t) for t in texts[:3]] == [{"a": 1}, {"a": 2}, {"a": 3}]
    with pytest.raises(OutputValidationError):
        extract_json(texts[3])


def test_disconnect_with_reset(fake: FakeProvider) -> None:
    fake.script(GPT, [disconnect(reset=True)])
    fake.script(CLAUDE, [disconnect(reset=True)])
    with pytest.raises(openai.APIConnectionError) as oinfo:
        ask_openai(fake.openai_client())
    with pytest.raises(anthropic.APIConnectionError):
        ask_anthropic(fake.anthropic_client())
    assert "reset" in repr(oinfo.value.__cause__).lower()
    fake.default(GPT, reply("fine"))
    assert _outcomes(fake.openai_client(), 1) == ["fine"]  # the server keeps serving


def test_behaviour_steps_are_checked() -> None:
    from adaptive_router.testing import mix

    with pytest.raises(ValueError, match="at least one"):
        mix()
    with pytest.raises(ValueError, match="weight"):
        mix((reply("x"), -1))
    with pytest.raises(ValueError, match="all be 0"):
        mix((reply("x"), 0))
    with pytest.raises(TypeError, match="step"):
        mix(("x", 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latency"):
        mix((reply("x"), 1), latency=(0.2, 0.1))
    with FakeProvider() as fake:
        with pytest.raises(ValueError, match="success_rate"):
            fake.behave(GPT, 1.5)
        with pytest.raises(ValueError, match="after"):
            fake.schedule(GPT, after=-1, step=reply("x"))
        with pytest.raises(ValueError, match="needs a model"):
            fake.behave(None, 0.5, after=3)
        with pytest.raises(TypeError):
            fake.behave(GPT, 0.5, failure=["nope"])  # type: ignore[list-item]


# -- a burst of fresh clients (issue 13 item 4) ------------------------------------------------
def test_a_burst_of_64_fresh_clients_all_get_answers(fake: FakeProvider) -> None:
    # Each thread opens its own client (its own connection pool), so 64 connections arrive
    # at once; with the standard library's listen backlog of 5 some were refused or reset.
    fake.default(GPT, reply("ok"))
    n = 64
    barrier = threading.Barrier(n)
    failures: list[BaseException] = []
    answers: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        client = openai.OpenAI(
            api_key=DUMMY_API_KEY,
            base_url=fake.openai_base_url,
            max_retries=0,
            timeout=10.0,
            http_client=openai.DefaultHttpxClient(trust_env=False),
        )
        try:
            barrier.wait(timeout=10)
            out = ask_openai(client)
            with lock:
                answers.append(out.choices[0].message.content or "")
        except BaseException as exc:
            with lock:
                failures.append(exc)
        finally:
            client.close()

    for _round in range(2):
        barrier.reset()
        threads = [threading.Thread(target=one) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert failures == []
    assert answers == ["ok"] * (2 * n)
    assert fake.calls(GPT) == 2 * n
