"""Repair: an answer that fails validation gets one follow-up in the same conversation.

Driven through ``Router.run``/``arun`` with the real SDKs against FakeProvider; checked
by the requests the fake saw (count and conversation), the outcome row (one attempt,
tokens of every request) and the path's repair counter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field

from adaptive_router import (
    AllPathsFailed,
    ConfigurationError,
    Learning,
    Path,
    Persistence,
    Resilience,
    Router,
)
from adaptive_router.outcomes import Outcome
from adaptive_router.providers import (
    REPAIR_PROMPT,
    RepairCounter,
    anthropic_path,
    openai_path,
    repair_counter,
)
from adaptive_router.resilience import RetryPolicy
from adaptive_router.testing import (
    FakeProvider,
    empty,
    error,
    json_reply,
    malformed_json,
)

GPT = "gpt-4o"
CLAUDE = "claude-sonnet-4-6"
PROVIDERS = ["openai", "anthropic"]
TEMPLATE = "Extract the order: {text}"


class Order(BaseModel):
    quantity: int = Field(gt=0)
    item: str
    city: str


ORDER = {"quantity": 2, "item": "widget", "city": "Berlin"}
# Fenced JSON that parses but misses a required field.
MISSING_CITY = json_reply({"quantity": 2, "item": "widget"}, input_tokens=11, output_tokens=7)
GOOD = json_reply(ORDER, input_tokens=30, output_tokens=9)

_CLIENTS: dict[str, Any] = {}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        yield f
    _CLIENTS.clear()


@pytest.fixture
def fake(server: FakeProvider) -> Iterator[FakeProvider]:
    server.reset()
    yield server
    server.reset()


def client_for(fake: FakeProvider, provider: str) -> Any:
    if provider not in _CLIENTS:
        _CLIENTS[provider] = (
            fake.openai_client() if provider == "openai" else fake.anthropic_client()
        )
    return _CLIENTS[provider]


def model_of(provider: str) -> str:
    return GPT if provider == "openai" else CLAUDE


def make_path(fake: FakeProvider, provider: str, **kw: Any) -> Path:
    kw.setdefault("timeout", 2.0)
    kw.setdefault("client", client_for(fake, provider))
    kw.setdefault("schema", Order)
    kw.setdefault("repair", True)
    build = openai_path if provider == "openai" else anthropic_path
    return build(model_of(provider), TEMPLATE, **kw)


def make_router(paths: list[Path], retry: RetryPolicy | None = None, **kw: Any) -> Router:
    return Router(
        paths,
        success_fn=lambda v: v is not None,
        task="t",
        store="memory://",
        **kw,
        learning=Learning(seed=1),
        resilience=Resilience(retry=retry),
        persistence=Persistence(durability="sync"),
    )


def rows(router: Router) -> list[Outcome]:
    router.flush()
    return list(router.store.outcomes("t"))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_invalid_then_valid_is_repaired_with_one_extra_request(
    fake: FakeProvider, provider: str
) -> None:
    model = model_of(provider)
    fake.script(model, [MISSING_CITY, GOOD])
    path = make_path(fake, provider)
    with make_router([path]) as router:
        order = router.run(text="2x widget to Berlin")
        [row] = rows(router)
    assert order == Order(**ORDER)
    assert fake.calls(model) == 2
    assert (row.success, row.attempt, row.retries) == (True, 1, 0)
    # Both requests are paid for and recorded on the one attempt.
    assert (row.input_tokens, row.output_tokens) == (11 + 30, 7 + 9)
    counter = repair_counter(path)
    assert (counter.sent, counter.fixed, counter.failed) == (1, 1, 0)

    first, second = (r.body for r in fake.requests)
    messages = second["messages"]
    # The same conversation: the original turn, the model's bad answer, the correction.
    assert messages[: len(first["messages"])] == first["messages"]
    bad, ask = messages[len(first["messages"]) :]
    assert bad == {"role": "assistant", "content": MISSING_CITY.text}
    assert ask["role"] == "user"
    assert "city" in ask["content"] and "Field required" in ask["content"]
    assert "corrected JSON only" in ask["content"]
    assert '"required":["quantity","item","city"]' in ask["content"]  # the JSON schema
    assert second["model"] == first["model"] == model
    if provider == "anthropic":
        assert second["max_tokens"] == first["max_tokens"]


def test_trailing_comma_is_repaired(fake: FakeProvider) -> None:
    fake.script(GPT, [malformed_json(), GOOD])
    with make_router([make_path(fake, "openai")]) as router:
        assert router.run(text="x") == Order(**ORDER)
    assert fake.calls(GPT) == 2
    ask = fake.requests[1].body["messages"][-1]["content"]
    assert "invalid JSON" in ask


@pytest.mark.parametrize("provider", PROVIDERS)
def test_still_invalid_after_the_repair_is_invalid_output(
    fake: FakeProvider, provider: str
) -> None:
    model = model_of(provider)
    fake.script(model, [MISSING_CITY, malformed_json(input_tokens=40, output_tokens=5), GOOD])
    path = make_path(fake, provider)
    with make_router([path]) as router:
        with pytest.raises(AllPathsFailed) as info:
            router.run(text="x")
        [row] = rows(router)
    assert fake.calls(model) == 2  # one repair, not more
    assert [a.kind for a in info.value.attempts] == ["invalid_output"]
    assert (row.kind, row.input_tokens, row.output_tokens) == ("invalid_output", 51, 12)
    assert row.cost_usd is not None and row.cost_usd > 0  # priced on both requests' tokens
    counter = repair_counter(path)
    assert (counter.sent, counter.fixed, counter.failed) == (1, 0, 1)


def test_repair_n_allows_n_follow_ups(fake: FakeProvider) -> None:
    fake.script(GPT, [MISSING_CITY, malformed_json(), MISSING_CITY, GOOD])
    path = make_path(fake, "openai", repair=3)
    with make_router([path]) as router:
        assert router.run(text="x") == Order(**ORDER)
        [row] = rows(router)
    assert fake.calls(GPT) == 4
    # Every turn is kept: 1 user + 3 x (assistant, user).
    assert len(fake.requests[-1].body["messages"]) == 7
    assert row.input_tokens == 11 + 10 + 11 + 30
    assert (repair_counter(path).sent, repair_counter(path).fixed) == (3, 1)


def test_no_repair_by_default(fake: FakeProvider) -> None:
    fake.script(GPT, [MISSING_CITY, GOOD])
    path = make_path(fake, "openai", repair=False)
    with make_router([path]) as router, pytest.raises(AllPathsFailed):
        router.run(text="x")
    assert fake.calls(GPT) == 1
    assert "repairs" not in path.metadata
    with pytest.raises(ValueError, match="repair=True"):
        repair_counter(path)


def test_an_empty_answer_is_not_repaired(fake: FakeProvider) -> None:
    fake.script(GPT, [empty(), GOOD])
    with make_router([make_path(fake, "openai")]) as router, pytest.raises(AllPathsFailed) as info:
        router.run(text="x")
    assert [a.kind for a in info.value.attempts] == ["empty"]
    assert fake.calls(GPT) == 1


def test_a_failed_follow_up_fails_the_attempt_with_its_kind_and_is_retried(
    fake: FakeProvider,
) -> None:
    # bad answer -> the repair request gets a 500 -> the router's retry starts the
    # attempt over from the original prompt -> valid.
    fake.script(GPT, [MISSING_CITY, error(500), GOOD])
    policy = RetryPolicy(attempts=2, initial=0.001, max_wait=0.001, rng=1, sleep=lambda s: None)
    path = make_path(fake, "openai")
    with make_router([path], retry=policy) as router:
        assert router.run(text="x") == Order(**ORDER)
        [row] = rows(router)
    assert fake.calls(GPT) == 3
    assert len(fake.requests[2].body["messages"]) == 1  # a fresh conversation
    assert (row.success, row.retries) == (True, 1)
    counter = repair_counter(path)
    assert (counter.sent, counter.fixed, counter.failed) == (1, 0, 1)


def test_a_failed_follow_up_carries_the_tokens_already_spent(fake: FakeProvider) -> None:
    fake.script(GPT, [MISSING_CITY, error(400)])
    with make_router([make_path(fake, "openai")]) as router:
        with pytest.raises(AllPathsFailed) as info:
            router.run(text="x")
        [row] = rows(router)
    assert [a.kind for a in info.value.attempts] == ["client_error"]
    assert (row.input_tokens, row.output_tokens) == (11, 7)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_arun_repairs_with_the_async_client(fake: FakeProvider, provider: str) -> None:
    model = model_of(provider)
    fake.script(model, [MISSING_CITY, GOOD])

    async def main() -> Any:
        aclient = (
            fake.async_openai_client() if provider == "openai" else fake.async_anthropic_client()
        )
        async with aclient:
            path = make_path(fake, provider, client=None, async_client=aclient)
            with make_router([path]) as router:
                value = await router.arun(text="x")
                return value, rows(router), repair_counter(path).fixed

    order, [row], fixed = asyncio.run(main())
    assert order == Order(**ORDER)
    assert (fake.calls(model), fixed, row.input_tokens) == (2, 1, 41)


def test_repair_count_reaches_the_outcome_row(fake: FakeProvider) -> None:
    """Needs ``Result.metadata`` (outcomes.py) and the router storing it on the outcome."""
    fake.script(GPT, [MISSING_CITY, GOOD, MISSING_CITY, malformed_json()])
    with make_router([make_path(fake, "openai")]) as router:
        router.run(text="x")
        with pytest.raises(AllPathsFailed):
            router.run(text="y")
        ok, failed = rows(router)
    assert ok.metadata == {"repairs": 1}
    assert failed.metadata == {"repairs": 1}


def test_repair_prompt_names_the_error_and_asks_for_json() -> None:
    text = REPAIR_PROMPT.format(error="city: Field required", schema="")
    assert text.startswith("Your answer above could not be used: city: Field required.")
    assert "corrected JSON only" in text


def test_repair_counter_repr() -> None:
    counter = RepairCounter()
    counter._count(sent=3)
    counter._count(fixed=2)
    assert repr(counter) == "RepairCounter(sent=3, fixed=2, failed=1)"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"repair": True}, "needs schema"),
        ({"repair": 2}, "needs schema"),
        ({"repair": -1, "schema": Order}, "repair must be"),
        ({"repair": "yes", "schema": Order}, "repair must be"),
        ({"repair": 1.5, "schema": Order}, "repair must be"),
    ],
)
def test_bad_repair_configuration(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        openai_path(GPT, TEMPLATE, **kwargs)
    with pytest.raises(ConfigurationError, match=match):
        anthropic_path(CLAUDE, TEMPLATE, **kwargs)
