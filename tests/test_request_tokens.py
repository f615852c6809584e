"""Tokens per request: ``Path(expected_tokens=fn)`` priced at the path's model for each
request where the router weighs cost, and provider paths' ``price_each_request=True``,
which counts each request's input tokens from the prompt it renders."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest

from adaptive_router import Budget, Learning, Objective, Observability, Path, Router
from adaptive_router.errors import ConfigurationError
from adaptive_router.metering.prices import Pricer
from adaptive_router.outcomes import Result, Usage
from adaptive_router.providers import (
    anthropic_path,
    litellm_path,
    openai_path,
    router_from_models,
)
from adaptive_router.providers.request_tokens import request_input_tokens
from adaptive_router.testing import FakeProvider, reply

GPT, MINI, CLAUDE = "gpt-4o", "gpt-4o-mini", "claude-sonnet-4-6"
SHORT, LONG = "q" * 40, "q" * 40_000


def _tokens(chars: int, messages: int = 1) -> int:
    return math.ceil(chars / 4) + 4 * messages


def test_an_openai_path_counts_the_rendered_prompt_and_the_system_prompt() -> None:
    p = openai_path(
        GPT,
        "Q: {text}",
        client=object(),
        system="S" * 100,
        expected_tokens=(0, 7),
        price_each_request=True,
    )
    assert callable(p.expected_tokens)
    # "Q: " + 400 characters in the user message, 100 in the system message.
    assert p.expected_tokens(text="x" * 400) == (_tokens(403 + 100, messages=2), 7)
    # Positional arguments fill the template as the call would.
    assert p.expected_tokens("x" * 400) == (_tokens(503, messages=2), 7)


def test_an_anthropic_path_counts_its_system_field_and_message_parts() -> None:
    def prompt(text: str) -> list[dict[str, Any]]:
        return [
            {"role": "system", "content": "be brief"},  # moved to Anthropic's system field
            {"role": "user", "content": [{"type": "text", "text": text}, {"type": "image"}]},
        ]

    p = anthropic_path(
        CLAUDE, prompt, client=object(), expected_tokens=(0, 50), price_each_request=True
    )
    assert callable(p.expected_tokens)
    assert p.expected_tokens("y" * 81) == (_tokens(81 + 8, messages=2), 50)
    assert request_input_tokens({"messages": []}) == 0


def test_without_price_each_request_the_tokens_stay_a_fixed_prior() -> None:
    assert openai_path(GPT, "{0}", client=object(), expected_tokens=(9, 3)).expected_tokens == (
        9,
        3,
    )


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"price_each_request": True}, "price_each_request=True counts each request"),
        ({"price_each_request": True, "expected_tokens": (5,)}, "expected_tokens=(input, output)"),
        ({"price_each_request": "yes", "expected_tokens": (0, 5)}, "must be True or False"),
        ({"price_each_request": 1, "expected_tokens": (0, 5)}, "must be True or False"),
    ],
)
def test_bad_price_each_request_settings_are_configuration_errors(
    kw: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigurationError, match=r"path 'gpt-4o': ") as err:
        openai_path(GPT, "{0}", client=object(), **kw)
    assert says in str(err.value)


def test_a_token_function_needs_a_model() -> None:
    with pytest.raises(ConfigurationError, match="expected_tokens is priced at the path's model"):
        Path(lambda t: t, name="p", expected_tokens=lambda t: (len(t), 1))


def _pair(model: str, text: str, pricer: Pricer) -> float:
    cost = pricer.quote(model, _tokens(len(text)), 1)
    assert cost is not None
    return cost


def test_the_router_prices_each_request_at_the_models_price() -> None:
    paths = [
        openai_path(m, "{0}", client=object(), expected_tokens=(0, 1), price_each_request=True)
        for m in (GPT, MINI)
    ]
    pricer = Pricer()
    with Router(paths, bool, "tok", store="memory://", objective="cost") as router:
        assert router.ranking.request_costs((LONG,), {}) == pytest.approx(
            [_pair(GPT, LONG, pricer), _pair(MINI, LONG, pricer)], rel=1e-12
        )
        # No arguments (choose() with none): the learned costs, no estimate.
        assert router.ranking.request_costs((), {}) is None
    # Nothing weighs cost: the prompt is not even rendered.
    with Router(paths, bool, "tok-plain", store="memory://") as router:
        assert router.ranking.prices_requests is False


def test_price_overrides_price_each_request_too() -> None:
    p = Path(lambda t: t, name="mine", model="my-model", expected_tokens=lambda t: (len(t), 10))
    with Router(
        [p, Path(lambda t: t, name="other")],
        bool,
        "overrides",
        store="memory://",
        objective="cost",
        observability=Observability(prices={"my-model": (2.0, 30.0)}),
    ) as router:
        # 1,000 input tokens at $2/M and 10 output tokens at $30/M.
        assert router.ranking.request_costs(("x" * 1000,), {}) == [
            pytest.approx(0.002 + 0.0003, rel=1e-12),
            None,
        ]


def test_a_litellm_model_is_priced_as_the_bare_model() -> None:
    p = litellm_path("openai/gpt-4o", "{0}", expected_tokens=(0, 1), price_each_request=True)
    with Router(
        [p, Path(lambda t: t, name="b")], bool, "ll", store="memory://", objective="cost"
    ) as r:
        assert r.ranking.request_costs((LONG,), {}) == [
            pytest.approx(_pair(GPT, LONG, Pricer()), rel=1e-12),
            None,
        ]


def test_an_unknown_model_warns_once_and_uses_learned_costs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = Path(
        lambda t: t, name="mystery", model="no-such-model-xyz", expected_tokens=lambda t: (1, 1)
    )
    with (
        caplog.at_level(logging.WARNING, logger="adaptive_router"),
        Router(
            [p, Path(lambda t: t, name="b")], bool, "unk", store="memory://", objective="cost"
        ) as r,
    ):
        assert r.ranking.prices_requests is False
        assert r.ranking.request_costs(("x",), {}) is None
        assert r.run("x") == "x"
    warned = [m for m in caplog.messages if "its expected_tokens function prices no request" in m]
    assert len(warned) == 1 and "'mystery'" in warned[0] and "'no-such-model-xyz'" in warned[0]


def test_numpy_token_counts_are_counts() -> None:
    import numpy as np

    p = Path(
        lambda t: t, name="np", model=GPT, expected_tokens=lambda t: (np.int64(1000), np.int32(0))
    )
    with Router([p], bool, "np-tokens", store="memory://", objective="cost") as router:
        assert router.ranking.request_costs(("x",), {}) == [
            pytest.approx(Pricer().quote(GPT, 1000, 0), rel=1e-12)
        ]


def test_an_estimate_in_usd_wins_over_a_token_function() -> None:
    p = Path(
        lambda t: t,
        name="both",
        model=GPT,
        expected_tokens=lambda t: (10**6, 0),
        estimate_cost_usd=lambda t: 0.5,
    )
    with Router([p], bool, "both", store="memory://", objective="cost") as router:
        assert router.ranking.request_costs(("x",), {}) == [0.5]


# -- end to end: the real SDKs against FakeProvider --------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        f.default(None, reply("ok", input_tokens=10, output_tokens=1))
        yield f


def test_max_cost_usd_refuses_the_dear_model_for_a_long_request_only(fake: FakeProvider) -> None:
    # gpt-4o: a 40,000-character request is ~10,000 input tokens, $0.025 > $0.01, so it
    # is refused before a call; gpt-4o-mini's $0.0015 is not. A short request fits both.
    router = router_from_models(
        [GPT, MINI],
        "{text}",
        task="capped-per-request",
        store="memory://",
        clients={"openai": fake.openai_client(timeout=5.0)},
        expected_tokens=(0, 1),
        price_each_request=True,
        budget=Budget(max_cost_usd=0.01, max_attempts=1),
        learning=Learning(seed=1),
    )
    with router:
        before = len(fake.requests)
        for _ in range(10):
            assert router.run(text=LONG) == "ok"
        asked = [r.body["model"] for r in fake.requests[before:] if isinstance(r.body, dict)]
        assert asked == [MINI] * 10
        before = len(fake.requests)
        for _ in range(40):
            assert router.run(text=SHORT) == "ok"
        asked = [r.body["model"] for r in fake.requests[before:] if isinstance(r.body, dict)]
        assert set(asked) == {GPT, MINI}


def test_objective_cost_sends_each_request_to_its_cheaper_model(fake: FakeProvider) -> None:
    # Two models over the two SDKs, at override prices where the order flips with the
    # request's length: "flat" charges a fixed $0.002 of output per request, "metered"
    # $10/M input tokens. A 40-character request is cheaper metered, a 40,000 one flat.
    flat = openai_path(
        "flat-model",
        "{text}",
        client=fake.openai_client(timeout=5.0),
        retry=None,
        expected_tokens=(0, 1000),
        price_each_request=True,
    )
    metered = anthropic_path(
        "metered-model",
        "{text}",
        client=fake.anthropic_client(timeout=5.0),
        retry=None,
        expected_tokens=(0, 0),
        price_each_request=True,
    )
    with Router(
        [flat, metered],
        lambda v: v == "ok",
        "cheaper-per-request",
        store="memory://",
        objective="cost",
        learning=Learning(seed=0),
        observability=Observability(
            prices={"flat-model": (0.0, 2.0), "metered-model": (10.0, 0.0)}
        ),
    ) as router:
        short = [router.choose(text=SHORT).path for _ in range(50)]
        long = [router.choose(text=LONG).path for _ in range(50)]
        assert short.count("metered-model") > 40
        assert long.count("flat-model") > 40
        assert router.run(text=SHORT) == "ok"


def test_an_estimate_on_the_fallback_is_said_to_be_unused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fallback = Path(lambda t: "safe", name="safe", estimate_cost_usd=lambda t: 1.0)
    with (
        caplog.at_level(logging.WARNING, logger="adaptive_router"),
        Router(
            [Path(lambda t: t, name="a")],
            bool,
            "fallback-estimate",
            store="memory://",
            objective="cost",
            fallback=fallback,
        ) as router,
    ):
        assert router.run("x") == "x"
    warned = [m for m in caplog.messages if "per-request cost estimate is not used" in m]
    assert len(warned) == 1 and "fallback path 'safe'" in warned[0]


# -- one name rule for what is estimated and what is recorded ----------------------------


def test_resolve_prefers_an_override_under_any_name_then_the_list_price() -> None:
    pricer = Pricer({"openai/my-private-model": (1.0, 2.0), "gpt-4o": (1.0, 1.0)})
    # The response names the bare model; the path's configured name holds the override.
    assert pricer.resolve("my-private-model", "openai/my-private-model") == (
        "openai/my-private-model"
    )
    # An override on the bare name beats genai-prices' price for the prefixed one.
    assert Pricer().resolve("gemini/gemini-2.0-flash") == "gemini/gemini-2.0-flash"
    overridden = Pricer({"gemini-2.0-flash": (1.0, 1.0)})
    assert overridden.resolve("gemini/gemini-2.0-flash") == "gemini-2.0-flash"
    assert pricer.resolve("openai/gpt-4o") == Pricer().resolve("openai/gpt-4o") == "gpt-4o"
    assert Pricer().resolve("litellm_proxy/gpt-4o-mini") == "gpt-4o-mini"
    assert Pricer().resolve(None, "no-such-model-xyz") is None
    assert Pricer().resolve() is None


def test_a_litellm_override_under_the_paths_name_prices_the_recorded_calls() -> None:
    # litellm strips "openai/" before calling, so the response names "my-private-model";
    # the user's override is keyed by the path's model. Estimate and record must agree.
    with FakeProvider() as f:
        f.default(None, reply("ok", input_tokens=1000, output_tokens=100))
        p = litellm_path(
            "openai/my-private-model",
            "{text}",
            api_base=f.openai_base_url,
            api_key="sk-fake",
            expected_tokens=(0, 100),
            price_each_request=True,
        )
        with Router(
            [p],
            bool,
            "ll-override",
            store="memory://",
            objective=Objective(target_usd_per_request=0.001),
            budget=Budget(max_attempts=1),
            observability=Observability(prices={"openai/my-private-model": (1.0, 2.0)}),
        ) as r:
            estimate = r.ranking.request_costs((), {"text": "x" * 3996})
            for _ in range(5):
                r.run(text="x" * 3996)
            cost = r.costs().paths[0]
            spend = r.spend()
    assert estimate == [pytest.approx((1003 * 1.0 + 100 * 2.0) / 1e6, rel=1e-12)]
    # Each call: the provider's 1,000 input and 100 output tokens at the override.
    assert cost.unknown_cost_attempts == 0
    assert cost.cost_usd == pytest.approx(5 * (1000 * 1.0 + 100 * 2.0) / 1e6, rel=1e-12)
    assert spend.spend_usd == pytest.approx(cost.cost_usd, rel=1e-12)


@pytest.mark.parametrize("model", ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"])
def test_reported_tokens_of_a_prefixed_model_are_priced_as_its_requests_are(model: str) -> None:
    p = litellm_path(model, "{text}", expected_tokens=(0, 100), price_each_request=True)
    with Router([p], bool, "rep", store="memory://", objective="cost") as r:
        d = r.choose(text="x" * 3984)
        assert r.report(d.request_id, True, input_tokens=1000, output_tokens=100)
        cost = r.costs().paths[0]
    bare = model.split("/", 1)[1]
    assert cost.unknown_cost_attempts == 0
    assert cost.cost_usd == pytest.approx(Pricer().quote(bare, 1000, 100), rel=1e-12)


def test_a_path_reporting_tokens_of_a_prefixed_model_is_priced() -> None:
    p = Path(
        lambda: Result(True, Usage(input_tokens=1000, output_tokens=100)),
        name="p",
        model="litellm_proxy/gpt-4o-mini",
    )
    with Router([p], bool, "tok", store="memory://") as r:
        r.run()
        cost = r.costs().paths[0]
    assert cost.cost_usd == pytest.approx(Pricer().quote(MINI, 1000, 100), rel=1e-12)
