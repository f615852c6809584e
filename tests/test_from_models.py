"""router_from_models: provider paths from model names, routed through FakeProvider."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field

from adaptive_router import AllPathsFailed, ConfigurationError, Path, Router
from adaptive_router.providers import (
    model_path,
    provider_of,
    repair_counter,
    router_from_models,
)
from adaptive_router.testing import FakeProvider, json_reply, malformed_json, reply

GPT = "gpt-4o"
CLAUDE = "claude-sonnet-4-6"
PROMPT = "Extract the order as JSON: {text}"


class Order(BaseModel):
    quantity: int = Field(gt=0)
    item: str
    city: str


ORDER = {"quantity": 2, "item": "widget", "city": "Berlin"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        yield f


@pytest.fixture
def fake(server: FakeProvider) -> Iterator[FakeProvider]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture(scope="module")
def clients(server: FakeProvider) -> dict[str, Any]:
    return {"openai": server.openai_client(), "anthropic": server.anthropic_client()}


def build(models: list[Any], clients: dict[str, Any], **kw: Any) -> Router:
    kw.setdefault("task", "orders")
    kw.setdefault("store", "memory://")
    kw.setdefault("durability", "sync")
    kw.setdefault("seed", 7)
    kw.setdefault("retry", None)
    return router_from_models(models, prompt=PROMPT, clients=clients, **kw)


def test_from_models_routes_through_both_providers_and_learns_the_better_one(
    fake: FakeProvider, clients: dict[str, Any]
) -> None:
    fake.behave(GPT, 0.9, seed=1, success=json_reply(ORDER), failure=malformed_json())
    fake.behave(CLAUDE, 0.4, seed=2, success=json_reply(ORDER), failure=malformed_json())
    with build([GPT, CLAUDE], clients, schema=Order, explore=0.0) as router:
        assert [p.name for p in router.paths] == [GPT, CLAUDE]
        assert [p.metadata["provider"] for p in router.paths] == ["openai", "anthropic"]
        results = []
        for _ in range(150):
            with contextlib.suppress(AllPathsFailed):
                results.append(router.run(text="2x widget to Berlin"))
        router.flush()
        firsts = [o.path for o in router.store.outcomes("orders") if o.attempt == 1]
        post = {p.path: p.mean for p in router.posteriors()}
    assert results and all(r == Order(**ORDER) for r in results)  # validated objects
    assert fake.calls(GPT) > 0 and fake.calls(CLAUDE) > 0
    assert firsts[-50:].count(GPT) >= 45, firsts[-50:]
    assert post[GPT] > post[CLAUDE]
    # The one prompt template went to both APIs.
    prompts = {r.provider: r.prompt for r in fake.requests}
    assert prompts == {
        "openai": "Extract the order as JSON: 2x widget to Berlin",
        "anthropic": "Extract the order as JSON: 2x widget to Berlin",
    }


def test_default_success_fn_and_options(fake: FakeProvider, clients: dict[str, Any]) -> None:
    fake.default(GPT, reply("plain text"))
    fake.default(CLAUDE, reply("plain text"))
    with build(
        [GPT, CLAUDE],
        clients,
        system="Be brief.",
        timeout=3.0,
        path_options={GPT: {"temperature": 0.1}, CLAUDE: {"max_tokens": 50}},
    ) as router:
        assert router.run(text="x") == "plain text"  # no schema: the text; not None: success
        assert all(p.timeout == 3.0 for p in router.paths)
        for path in router.paths:  # each path once, whatever the router would choose
            path.fn(text="x")
    bodies = {r.provider: r.body for r in fake.requests}
    assert bodies["openai"]["temperature"] == 0.1
    assert bodies["openai"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (bodies["anthropic"]["max_tokens"], bodies["anthropic"]["system"]) == (50, "Be brief.")


def test_success_fn_score_fn_repair_and_paths_pass_through(
    fake: FakeProvider, clients: dict[str, Any]
) -> None:
    fake.default(GPT, json_reply(ORDER))

    def regex(text: str) -> Order:
        return Order(quantity=1, item="?", city="?")

    with build([GPT], clients, schema=Order, success_fn=lambda o: o.quantity > 5) as router:
        with pytest.raises(AllPathsFailed) as info:
            router.run(text="x")
        assert [a.kind for a in info.value.attempts] == ["rejected"]

    with build([GPT], clients, schema=Order, score_fn=lambda o: 0.75, min_score=0.5) as router:
        router.run(text="x")
        router.flush()
        [row] = router.store.outcomes("orders")
        assert row.score == 0.75

    fallback = Path(regex, name="regex", timeout=None)
    with build([GPT, fallback], clients, schema=Order, repair=True) as router:
        assert [p.name for p in router.paths] == [GPT, "regex"]
        assert repair_counter(router.paths[0]).sent == 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o", ("openai", "gpt-4o")),
        ("gpt-4.1-mini", ("openai", "gpt-4.1-mini")),
        ("chatgpt-4o-latest", ("openai", "chatgpt-4o-latest")),
        ("o1", ("openai", "o1")),
        ("o3-mini", ("openai", "o3-mini")),
        ("o4-mini-2025-04-16", ("openai", "o4-mini-2025-04-16")),
        ("ft:gpt-4o-mini:acme::abc123", ("openai", "ft:gpt-4o-mini:acme::abc123")),
        ("claude-sonnet-4-6", ("anthropic", "claude-sonnet-4-6")),
        ("claude-sonnet-4-6", ("anthropic", "claude-sonnet-4-6")),
        ("openai:llama-3.1-70b", ("openai", "llama-3.1-70b")),
        ("anthropic:my-proxy-model", ("anthropic", "my-proxy-model")),
    ],
)
def test_provider_of(name: str, expected: tuple[str, str]) -> None:
    assert provider_of(name) == expected


@pytest.mark.parametrize("name", ["mistral-large", "gemini-1.5-pro", "omni", "llama3", "openai:"])
def test_unknown_model_names_fail_clearly(name: str) -> None:
    with pytest.raises(ValueError, match=r"provider|model must be"):
        provider_of(name)
    with pytest.raises(ValueError):
        router_from_models([GPT, name], prompt=PROMPT, task="t", store="memory://")


def test_explicit_provider_prefix_builds_a_path_named_after_the_model(
    fake: FakeProvider, clients: dict[str, Any]
) -> None:
    fake.default("llama-3.1-70b", reply("hi"))
    path = model_path("openai:llama-3.1-70b", PROMPT, clients=clients, timeout=2.0)
    assert (path.name, path.model, path.metadata["provider"]) == (
        "llama-3.1-70b",
        "llama-3.1-70b",
        "openai",
    )
    with Router([path], bool, "t", store="memory://") as router:
        assert router.run(text="x") == "hi"


@pytest.mark.parametrize(
    ("models", "kw", "match"),
    [
        ([], {}, "non-empty"),
        ("gpt-4o", {}, "non-empty"),
        ([GPT, 3], {}, "model names"),
        ([GPT, GPT], {}, "duplicate"),
        ([GPT], {"path_options": {CLAUDE: {}}}, "not in models"),
        ([GPT], {"clients": {"azure": object()}}, "clients keys"),
        ([CLAUDE], {"path_options": {CLAUDE: {"temprature": 0.1}}}, "extra_body"),
    ],
)
def test_bad_configuration(models: Any, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        router_from_models(models, prompt=PROMPT, task="t", store="memory://", **kw)


def test_router_has_no_from_models_classmethod() -> None:
    """``Router.from_models`` is gone (it made the router import the providers):
    ``adaptive_router.providers.router_from_models`` is the one way."""
    assert not hasattr(Router, "from_models")
    assert not hasattr(Router, "as_runnable")
