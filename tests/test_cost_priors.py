"""Cost priors from a model's price (issue 15): ``Path(expected_tokens=(input, output))``
on a path with a ``model`` and no ``expected_cost_usd`` gives it the model's price for
those tokens as its cost prior, priced once when the router is built."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price, data_snapshot

from adaptive_router import (
    AllPathsFailed,
    Budget,
    Learning,
    Observability,
    Path,
    Persistence,
    Router,
)
from adaptive_router.errors import ConfigurationError
from adaptive_router.metering.prices import Pricer
from adaptive_router.providers import anthropic_path, openai_path, router_from_models
from adaptive_router.testing import FakeProvider, reply

GPT = "gpt-4o"
MINI = "gpt-4o-mini"
CLAUDE = "claude-sonnet-4-6"
TOKENS = (1234, 567)
PRIORS_LOGGER = "adaptive_router.metering.cost_priors"


def _ok() -> str:
    return "ok"


def _path(name: str, **kw: Any) -> Path:
    return Path(_ok, name=name, timeout=None, retry=None, breaker=None, **kw)


def _router(paths: list[Path], **kw: Any) -> Router:
    kw.setdefault("store", "memory://")
    kw.setdefault("objective", "cost")
    return Router(paths, success_fn=lambda v: v == "ok", task="priors", **kw)


def _priors(router: Router) -> dict[str, float | None]:
    return {p.path: p.expected_cost_usd for p in router.posteriors()}


def _table_price(model: str, inp: int, out: int) -> float:
    """The model's price from genai-prices' table itself (rates per million tokens), not
    through calc_price or the Pricer: an independent computation of the same dollars."""
    _, info = data_snapshot.get_snapshot().find_provider_model(model, None, None, None)
    price = info.get_prices(datetime.now(UTC))
    assert isinstance(price.input_mtok, Decimal) and isinstance(price.output_mtok, Decimal)
    return float((price.input_mtok * inp + price.output_mtok * out) / 1_000_000)


@pytest.mark.parametrize("model", [GPT, MINI, CLAUDE])
def test_the_prior_is_the_models_price_for_the_expected_tokens(model: str) -> None:
    expected = _table_price(model, *TOKENS)
    # genai-prices' own calc_price agrees with the table arithmetic (no tiers here).
    usage = PriceUsage(input_tokens=TOKENS[0], output_tokens=TOKENS[1])
    assert float(calc_price(usage, model_ref=model).total_price) == pytest.approx(expected)
    assert expected > 0
    with _router([_path("p", model=model, expected_tokens=TOKENS)]) as router:
        assert _priors(router)["p"] == pytest.approx(expected, rel=1e-12)
        assert router.ranking.known_costs() == {"p": pytest.approx(expected, rel=1e-12)}


def test_the_gpt_4o_prior_in_dollars() -> None:
    # gpt-4o at $2.50 / $10 per million tokens in the bundled genai-prices data.
    with _router([_path("p", model=GPT, expected_tokens=(1000, 200))]) as router:
        assert _priors(router)["p"] == pytest.approx(0.0045, rel=1e-12)


def test_router_price_overrides_price_the_prior() -> None:
    path = _path("ft", model="ft:my-private-model", expected_tokens=(1000, 200))
    with _router(
        [path], observability=Observability(prices={"ft:my-private-model": (3.0, 12.0)})
    ) as router:
        assert _priors(router)["ft"] == pytest.approx((1000 * 3.0 + 200 * 12.0) / 1e6)


def test_an_explicit_expected_cost_wins() -> None:
    path = _path("p", model=GPT, expected_tokens=TOKENS, expected_cost_usd=0.25)
    with _router([path]) as router:
        assert _priors(router)["p"] == 0.25
        assert router.ranking.known_costs() == {"p": 0.25}


def test_without_expected_tokens_a_model_gives_no_prior() -> None:
    with _router([_path("p", model=GPT)]) as router:
        assert _priors(router)["p"] is None
        assert router.ranking.known_costs() == {}


def test_a_litellm_style_provider_prefix_is_priced_as_the_bare_model() -> None:
    with _router([_path("p", model=f"openai/{MINI}", expected_tokens=TOKENS)]) as router:
        assert _priors(router)["p"] == pytest.approx(_table_price(MINI, *TOKENS), rel=1e-12)


def test_an_unknown_model_warns_once_and_has_no_prior(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=PRIORS_LOGGER)
    paths = [
        _path("mystery", model="no-such-model-xyz", expected_tokens=TOKENS),
        _path("known", model=GPT, expected_tokens=TOKENS),
    ]
    with _router(paths, learning=Learning(seed=1)) as router:
        for _ in range(5):
            assert router.run() == "ok"
        priors = _priors(router)
        known = router.ranking.known_costs()
    records = [r for r in caplog.records if r.name == PRIORS_LOGGER]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "'mystery'" in message and "'no-such-model-xyz'" in message
    assert "expected_cost_usd" in message  # says how to fix it
    assert priors["mystery"] is None
    assert priors["known"] == pytest.approx(_table_price(GPT, *TOKENS), rel=1e-12)
    assert set(known) == {"known"}


def test_priors_are_priced_once_when_the_router_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quotes: list[str] = []
    real = Pricer.quote

    def counting(self: Pricer, model: str, *args: Any, **kw: Any) -> float | None:
        quotes.append(model)
        return real(self, model, *args, **kw)

    monkeypatch.setattr(Pricer, "quote", counting)
    paths = [
        _path("a", model=GPT, expected_tokens=TOKENS),
        _path("b", model=MINI, expected_tokens=TOKENS),
        _path("c", model=GPT, expected_tokens=TOKENS, expected_cost_usd=0.1),  # not priced
    ]
    with _router(paths, budget=Budget(max_cost_usd=1.0), learning=Learning(seed=3)) as router:
        assert quotes == [GPT, MINI]
        for _ in range(20):
            assert router.run() == "ok"
        router.posteriors()
    assert quotes == [GPT, MINI]


def test_max_cost_usd_judges_a_new_path_by_its_price_prior() -> None:
    calls: list[str] = []

    def fails(name: str) -> Any:
        def fn() -> str:
            calls.append(name)
            return "bad"

        return fn

    paths = [
        Path(fails(GPT), name=GPT, model=GPT, expected_tokens=(100_000, 10_000), retry=None),
        Path(fails(MINI), name=MINI, model=MINI, expected_tokens=(100_000, 10_000), retry=None),
    ]
    # gpt-4o: $0.35 for these tokens, over the budget; gpt-4o-mini: $0.021, under it.
    with (
        _router(
            paths, objective="success", budget=Budget(max_cost_usd=0.1), learning=Learning(seed=0)
        ) as router,
        pytest.raises(AllPathsFailed) as err,
    ):
        router.run()
    assert calls == [MINI]
    kinds = {a.path: a.kind for a in err.value.attempts}
    assert kinds[GPT] == "over_budget"


@pytest.mark.parametrize(
    "value",
    [(1000,), (1, 2, 3), (-1, 200), (1000, -5), (1000.0, 200), (True, 200), "1000,200", 1000],
)
def test_bad_expected_tokens_raise_naming_the_parameter(value: Any) -> None:
    with pytest.raises(ValueError, match=r"expected_tokens must be \(input_tokens, output"):
        Path(_ok, name="p", model=GPT, expected_tokens=value)


def test_expected_tokens_need_a_model() -> None:
    with pytest.raises(ConfigurationError, match="expected_tokens is priced at the path's model"):
        Path(_ok, name="p", expected_tokens=(1000, 200))


def test_expected_tokens_are_kept_as_a_tuple() -> None:
    assert Path(_ok, name="p", model=GPT, expected_tokens=[10, 0]).expected_tokens == (10, 0)


def test_provider_builders_pass_expected_tokens_through() -> None:
    assert openai_path(GPT, "{0}", client=object(), expected_tokens=TOKENS).expected_tokens == (
        TOKENS
    )
    claude = anthropic_path(CLAUDE, "{0}", client=object(), expected_tokens=TOKENS)
    assert claude.expected_tokens == TOKENS
    assert openai_path(GPT, "{0}", client=object()).expected_tokens is None
    with pytest.raises(ConfigurationError, match="expected_tokens"):
        openai_path(GPT, "{0}", client=object(), expected_tokens=(1, -1))


def test_router_from_models_gives_every_path_the_expected_tokens() -> None:
    router = router_from_models(
        [GPT, CLAUDE],
        "{0}",
        task="from-models",
        store="memory://",
        clients={"openai": object(), "anthropic": object()},
        expected_tokens=TOKENS,
        path_options={CLAUDE: {"expected_tokens": (10, 10)}},
        objective="cost",
    )
    with router:
        assert [p.expected_tokens for p in router.paths] == [TOKENS, (10, 10)]
        assert _priors(router) == {
            GPT: pytest.approx(_table_price(GPT, *TOKENS), rel=1e-12),
            CLAUDE: pytest.approx(_table_price(CLAUDE, 10, 10), rel=1e-12),
        }


# -- end to end: the real openai SDK against FakeProvider ------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        f.default(None, reply("ok", input_tokens=1000, output_tokens=200))
        yield f


def _first_model(fake: FakeProvider, seed: int, tokens: tuple[int, int] | None) -> str:
    """The model asked by a new router's first request (gpt-4o listed first)."""
    client = fake.openai_client(timeout=2.0)
    paths = [
        openai_path(m, "Q: {text}", client=client, retry=None, expected_tokens=tokens)
        for m in (GPT, MINI)
    ]
    before = len(fake.requests)
    with _router(
        paths, learning=Learning(seed=seed), persistence=Persistence(durability="sync")
    ) as router:
        assert router.run(text="hi") == "ok"
    body = fake.requests[before].body
    assert isinstance(body, dict)
    return str(body["model"])


def test_with_no_data_the_first_request_goes_to_the_cheaper_model(fake: FakeProvider) -> None:
    # Seed 3 draws θ so that, with no cost information (all paths equal: the success
    # order), gpt-4o goes first; priced priors ($0.0045 vs $0.00027 per attempt, ~17x)
    # send the same draw to gpt-4o-mini.
    assert _first_model(fake, 3, None) == GPT
    assert _first_model(fake, 3, (1000, 200)) == MINI


def test_over_seeds_the_cheaper_model_goes_first_far_more_often(fake: FakeProvider) -> None:
    seeds = range(20)
    priced = sum(_first_model(fake, s, (1000, 200)) == MINI for s in seeds)
    unpriced = sum(_first_model(fake, s, None) == MINI for s in seeds)
    # With Beta(1, 1) draws and a 17x price ratio, gpt-4o goes first only when
    # θ_mini < θ_4o / 17 or by exploration (~4%); without priors it is a coin toss.
    assert priced >= 18
    assert unpriced <= 14
