"""Provider paths: the real openai and anthropic SDKs, through a Router, against FakeProvider.

Every fault the fake can produce is driven through ``Router.run`` (and ``arun``) and
checked three ways: the kind and retries recorded on the outcome row, the attempts of
``AllPathsFailed``, and the number of HTTP calls the fake saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import numpy as np
import openai
import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
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
from adaptive_router.policies.thompson import ThompsonSampling
from adaptive_router.providers import (
    MissingCredentialsError,
    PromptError,
    anthropic_path,
    openai_path,
)
from adaptive_router.resilience import CircuitBreaker, RetryPolicy, classify
from adaptive_router.testing import (
    FakeProvider,
    RecordedRequest,
    Step,
    delay,
    disconnect,
    empty,
    error,
    json_reply,
    malformed_json,
    raw,
    reply,
    respond,
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


# One server and one pair of sync clients for the module: starting a server and building
# SDK clients (an SSL context each) would otherwise cost more than most tests.
_CLIENTS: dict[str, Any] = {}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        yield f
    _CLIENTS.clear()


@pytest.fixture
def fake(server: FakeProvider) -> Iterator[FakeProvider]:
    server.reset()  # scripts, defaults, schedules and recorded requests
    yield server
    server.reset()


def client_for(fake: FakeProvider, provider: str) -> Any:
    if provider not in _CLIENTS:
        _CLIENTS[provider] = (
            fake.openai_client() if provider == "openai" else fake.anthropic_client()
        )
    return _CLIENTS[provider]


class Clock:
    """A monotonic clock the test moves by hand (for breakers)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Sleeps:
    """An injectable sleep that records each wait (and optionally really sleeps)."""

    real: bool = False

    def __post_init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.real:
            time.sleep(seconds)


def retry(
    sleep: Any = None, *, attempts: int = 3, budget_s: float = 10.0, **kw: Any
) -> RetryPolicy:
    return RetryPolicy(
        attempts=attempts,
        budget_s=budget_s,
        initial=0.01,
        max_wait=0.05,
        rng=1,
        sleep=sleep if sleep is not None else Sleeps(),
        **kw,
    )


def model_of(provider: str) -> str:
    return GPT if provider == "openai" else CLAUDE


def make_path(fake: FakeProvider, provider: str, **kw: Any) -> Path:
    kw.setdefault("timeout", 2.0)
    kw.setdefault("client", client_for(fake, provider))
    if provider == "openai":
        return openai_path(GPT, kw.pop("prompt", TEMPLATE), **kw)
    return anthropic_path(CLAUDE, kw.pop("prompt", TEMPLATE), **kw)


def make_router(
    paths: list[Path],
    task: str = "t",
    *,
    retry_policy: RetryPolicy | str | None = "default",
    explore: float = 0.02,
    **kw: Any,
) -> Router:
    return Router(
        paths,
        success_fn=lambda v: v is not None,
        task=task,
        store="memory://",
        **kw,
        learning=Learning(seed=1, explore=explore),
        resilience=Resilience(retry=retry() if retry_policy == "default" else retry_policy),
        persistence=Persistence(durability="sync"),
    )


def rows(router: Router, task: str = "t") -> list[Outcome]:
    router.flush()
    return list(router.store.outcomes(task))


def fail_once(router: Router, **kw: Any) -> AllPathsFailed:
    with pytest.raises(AllPathsFailed) as info:
        router.run(**kw)
    return info.value


# -- success: text, usage, request shape -------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_text_reply_usage_and_request(fake: FakeProvider, provider: str) -> None:
    model = model_of(provider)
    fake.script(model, reply("hello", input_tokens=12, output_tokens=3))
    extra: dict[str, Any] = (
        {"temperature": 0.2} if provider == "openai" else {"stop_sequences": ["END"]}
    )
    path = make_path(fake, provider, system="Be brief.", timeout=1.5, **extra)
    with make_router([path]) as router:
        assert router.run(text="2x widget to Berlin") == "hello"
        (row,) = rows(router)
    assert (row.path, row.success, row.kind, row.retries) == (model, True, None, 0)
    assert (row.input_tokens, row.output_tokens) == (12, 3)
    assert row.cost_usd is not None and row.cost_usd > 0  # priced from the model's usage
    (req,) = fake.requests
    assert req.model == model
    assert all(req.body[k] == v for k, v in extra.items())
    assert req.prompt == "Extract the order: 2x widget to Berlin"
    if provider == "openai":
        assert req.body["messages"][0] == {"role": "system", "content": "Be brief."}
    else:
        assert req.body["system"] == "Be brief." and req.body["max_tokens"] == 1024
        assert [m["role"] for m in req.body["messages"]] == ["user"]
    # The path's timeout is what the SDK sent the request with; SDK retries are off.
    assert req.headers["x-stainless-read-timeout"] == "1.5"
    assert req.headers["x-stainless-retry-count"] == "0"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_positional_template_and_callable_prompt(fake: FakeProvider, provider: str) -> None:
    model = model_of(provider)
    fake.default(model, reply("ok"))
    positional = make_path(fake, provider, prompt="Order: {0} / {1}", name="pos")

    def messages(text: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": "JSON only."},
            {"role": "user", "content": f"Parse {text}"},
        ]

    built = make_path(fake, provider, prompt=messages, name="callable")
    with make_router([positional]) as r1, make_router([built]) as r2:
        assert r1.run("a", "b") == "ok"
        assert r2.run("x") == "ok"
    first, second = fake.requests
    assert first.prompt == "Order: a / b"
    assert second.prompt == "Parse x"
    if provider == "anthropic":
        assert second.body["system"] == "JSON only."  # moved out of the messages
    else:
        assert second.body["messages"][0]["role"] == "system"


def test_prompt_errors_make_no_http_call(fake: FakeProvider) -> None:
    path = make_path(fake, "openai")
    with make_router([path]) as router:
        failed = fail_once(router, other="x")
        (attempt,) = failed.attempts
    assert attempt.kind == "exception" and "{text}" in (attempt.error or "")
    assert fake.calls() == 0
    with pytest.raises(PromptError, match="non-empty list"):
        make_path(fake, "openai", prompt=lambda: []).fn()


# -- faults: kind, retries, HTTP calls -----------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    label: str
    steps: list[Step]
    kind: str
    retries: int
    calls: int


FAULTS = [
    Fault("400", [error(400)], "client_error", 0, 1),
    Fault("401", [error(401)], "auth_error", 0, 1),
    Fault("403", [error(403)], "auth_error", 0, 1),
    Fault("500", [error(500)] * 3, "server_error", 2, 3),
    Fault("529", [error(529)] * 3, "server_error", 2, 3),
    Fault("503", [error(503)] * 3, "server_error", 2, 3),
    Fault("429", [error(429)] * 3, "rate_limited", 2, 3),
    Fault("disconnect", [disconnect()] * 3, "connection", 2, 3),
    Fault("reset", [disconnect(reset=True)] * 3, "connection", 2, 3),
    Fault("empty", [empty(input_tokens=9)], "empty", 0, 1),
    Fault("quota-429", [error(429, code="insufficient_quota")], "client_error", 0, 1),
    Fault(
        "html-502",
        [raw(502, "<html>Bad gateway</html>", content_type="text/html")] * 3,
        "server_error",
        2,
        3,
    ),
    Fault("garbage-200", [raw(200, "not json")] * 3, "server_error", 2, 3),
    Fault("html-200", [raw(200, "<html/>", content_type="text/html")] * 3, "server_error", 2, 3),
    Fault("envelope-200", [raw(200, "{}")] * 3, "server_error", 2, 3),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.label)
def test_fault_kind_retries_and_calls(fake: FakeProvider, provider: str, fault: Fault) -> None:
    model = model_of(provider)
    fake.script(model, fault.steps)
    fake.default(model, reply("never reached"))
    sleeps = Sleeps()
    with make_router([make_path(fake, provider)], retry_policy=retry(sleeps)) as router:
        failed = fail_once(router, text="x")
        (row,) = rows(router)
    (attempt,) = failed.attempts
    assert (attempt.kind, attempt.retries) == (fault.kind, fault.retries)
    assert (row.kind, row.retries, row.success) == (fault.kind, fault.retries, False)
    assert fake.calls(model) == fault.calls
    assert len(sleeps.waits) == fault.retries
    if fault.kind == "empty":
        assert (row.input_tokens, row.output_tokens) == (9, 0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_transient_errors_then_success(fake: FakeProvider, provider: str) -> None:
    model = model_of(provider)
    fake.script(model, [error(500), error(529), reply("third time", output_tokens=4)])
    with make_router([make_path(fake, provider)]) as router:
        assert router.run(text="x") == "third time"
        (row,) = rows(router)
    assert (row.success, row.retries, row.output_tokens) == (True, 2, 4)
    assert fake.calls(model) == 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_sdk_retries_are_off_even_on_a_client_that_has_them(
    fake: FakeProvider, provider: str
) -> None:
    model = model_of(provider)
    fake.default(model, error(500, retry_after=0))
    client: Any = (
        fake.openai_client(max_retries=5)
        if provider == "openai"
        else fake.anthropic_client(max_retries=5)
    )
    with make_router([make_path(fake, provider, client=client)], retry_policy=None) as router:
        fail_once(router, text="x")
    assert fake.calls(model) == 1


def test_every_fake_fault_is_classified_by_classify(fake: FakeProvider) -> None:
    # The SDK exceptions themselves (not via the router) map to the documented kinds.
    expected = {
        400: "client_error",
        401: "auth_error",
        403: "auth_error",
        404: "client_error",
        408: "timeout",
        409: "client_error",
        413: "client_error",
        422: "client_error",
        429: "rate_limited",
        500: "server_error",
        502: "server_error",
        503: "server_error",
        504: "server_error",
        529: "server_error",
    }
    oc, ac = client_for(fake, "openai"), client_for(fake, "anthropic")
    messages: Any = [{"role": "user", "content": "x"}]
    for status, kind in expected.items():
        fake.script(GPT, error(status))
        fake.script(CLAUDE, error(status))
        for call in (
            lambda: oc.chat.completions.create(model=GPT, messages=messages),
            lambda: ac.messages.create(model=CLAUDE, max_tokens=5, messages=messages),
        ):
            with pytest.raises((openai.APIError, anthropic.APIError)) as info:
                call()
            assert classify(info.value).value == kind, (status, type(info.value))


# -- 429 Retry-After and the retry budget (real sleeps) ------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_retry_after_is_honoured_within_the_budget(fake: FakeProvider, provider: str) -> None:
    model = model_of(provider)
    fake.script(model, [error(429, retry_after=0.15), error(429, retry_after=0.15)])
    fake.default(model, reply("ok"))
    sleeps = Sleeps(real=True)
    policy = retry(sleeps, attempts=3, budget_s=1.0)
    with make_router([make_path(fake, provider)], retry_policy=policy) as router:
        start = time.monotonic()
        assert router.run(text="x") == "ok"
        elapsed = time.monotonic() - start
        (row,) = rows(router)
    assert row.retries == 2 and fake.calls(model) == 3
    # The jitter is at most 0.05 s here, so each wait is the server's 0.15 s.
    assert sleeps.waits == pytest.approx([0.15, 0.15])
    assert 0.3 <= elapsed < 1.0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retrying_stops_at_the_budget(fake: FakeProvider, provider: str) -> None:
    model = model_of(provider)
    fake.default(model, error(429, retry_after=0.2))
    sleeps = Sleeps(real=True)
    budget = 0.5
    policy = retry(sleeps, attempts=10, budget_s=budget)
    with make_router([make_path(fake, provider)], retry_policy=policy) as router:
        start = time.monotonic()
        failed = fail_once(router, text="x")
        elapsed = time.monotonic() - start
    (attempt,) = failed.attempts
    assert attempt.kind == "rate_limited"
    # 0 s, 0.2 s, 0.4 s; a third wait of 0.2 s would end past the budget.
    assert fake.calls(model) == 3 and attempt.retries == 2
    assert sum(sleeps.waits) <= budget
    assert elapsed < budget + 0.3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retry_after_beyond_the_budget_is_not_waited_for(fake: FakeProvider, provider: str) -> None:
    model = model_of(provider)
    fake.default(model, error(429, retry_after=30))
    sleeps = Sleeps(real=True)
    with make_router(
        [make_path(fake, provider)], retry_policy=retry(sleeps, budget_s=2.0)
    ) as router:
        start = time.monotonic()
        failed = fail_once(router, text="x")
        elapsed = time.monotonic() - start
    assert failed.attempts[0].kind == "rate_limited" and failed.attempts[0].retries == 0
    assert fake.calls(model) == 1 and sleeps.waits == []
    assert elapsed < 0.5


# -- timeouts ------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_hang_past_the_timeout_is_cut(fake: FakeProvider, provider: str) -> None:
    model = model_of(provider)
    fake.default(model, delay(10, then=reply("late")))
    timeout = 0.3
    # The client's own timeout (10 minutes) is overridden by the path's.
    path = make_path(fake, provider, timeout=timeout)
    with make_router([path], retry_policy=None) as router:
        start = time.monotonic()
        failed = fail_once(router, text="x")
        elapsed = time.monotonic() - start
        (stats,) = router.stats()
    assert failed.attempts[0].kind == "timeout"
    assert elapsed < timeout + 0.5, elapsed
    assert stats.timeouts == 1 and fake.calls(model) == 1


def test_timeouts_are_retried(fake: FakeProvider) -> None:
    fake.script(GPT, [delay(10), delay(10)])
    fake.default(GPT, reply("ok"))
    timeout = 0.2
    with make_router([make_path(fake, "openai", timeout=timeout)]) as router:
        start = time.monotonic()
        assert router.run(text="x") == "ok"
        elapsed = time.monotonic() - start
        (row,) = rows(router)
    assert row.retries == 2 and fake.calls(GPT) == 3
    assert elapsed < 2 * timeout + 0.5


# -- prompt caching: priced at the cache rates --------------------------------------------------
@pytest.mark.parametrize(
    ("provider", "cached", "written"), [("openai", 600, 0), ("anthropic", 800, 100)]
)
def test_cached_prompt_tokens_are_priced_at_cache_rates(
    fake: FakeProvider, provider: str, cached: int, written: int
) -> None:
    model = model_of(provider)
    fake.script(
        model,
        reply(
            "hi",
            input_tokens=1000,
            output_tokens=50,
            cached_tokens=cached,
            cache_write_tokens=written,
        ),
    )
    with make_router([make_path(fake, provider)]) as router:
        assert router.run(text="x") == "hi"
        (row,) = rows(router)
    # Every prompt token is counted, whichever way the provider splits them.
    assert (row.input_tokens, row.output_tokens) == (1000, 50)
    cache = {"cache_read_tokens": cached, "cache_write_tokens": written or None}
    expected = calc_price(PriceUsage(input_tokens=1000, output_tokens=50, **cache), model_ref=model)
    full = calc_price(PriceUsage(input_tokens=1000, output_tokens=50), model_ref=model)
    assert row.cost_usd == float(expected.total_price)
    assert row.cost_usd < float(full.total_price)  # the cache discount is not lost


def test_cache_tokens_of_a_repaired_attempt_add_up(fake: FakeProvider) -> None:
    fake.script(
        CLAUDE,
        [
            malformed_json(input_tokens=400, output_tokens=20),
            reply(json.dumps(ORDER), input_tokens=500, output_tokens=30, cached_tokens=300),
        ],
    )
    path = make_path(fake, "anthropic", schema=Order, repair=1)
    with make_router([path]) as router:
        assert router.run(text="x") == Order(**ORDER)
        (row,) = rows(router)
    assert (row.input_tokens, row.output_tokens) == (900, 50)
    expected = calc_price(
        PriceUsage(input_tokens=900, output_tokens=50, cache_read_tokens=300), model_ref=CLAUDE
    )
    assert row.cost_usd == float(expected.total_price)


def test_cache_tokens_must_fit_in_the_prompt() -> None:
    with pytest.raises(ValueError, match="cannot exceed it"):
        reply("x", input_tokens=10, cached_tokens=8, cache_write_tokens=3)


# -- output validation ---------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fence", ["json", "", None])
def test_fenced_json_with_a_schema(fake: FakeProvider, provider: str, fence: str | None) -> None:
    model = model_of(provider)
    fake.script(model, json_reply(ORDER, fence=fence, input_tokens=30, output_tokens=20))
    with make_router([make_path(fake, provider, schema=Order)]) as router:
        order = router.run(text="2x widget to Berlin")
        (row,) = rows(router)
    assert order == Order(**ORDER)
    assert (row.input_tokens, row.output_tokens) == (30, 20)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    "step",
    [
        malformed_json(input_tokens=40, output_tokens=15),
        reply('{"quantity": 0, "item": "x", "city": "y"}', input_tokens=40, output_tokens=15),
        reply("I could not find an order.", input_tokens=40, output_tokens=15),
        reply('```json\n{"quantity": 2, "item": "widget"\n```', input_tokens=40, output_tokens=15),
    ],
    ids=["trailing-comma", "schema", "prose", "truncated"],
)
def test_invalid_output_records_its_tokens(fake: FakeProvider, provider: str, step: Step) -> None:
    model = model_of(provider)
    fake.script(model, step)
    fake.default(model, reply("never reached"))
    with make_router([make_path(fake, provider, schema=Order)]) as router:
        failed = fail_once(router, text="x")
        (row,) = rows(router)
    (attempt,) = failed.attempts
    assert attempt.kind == "invalid_output" and attempt.retries == 0
    assert (row.kind, row.input_tokens, row.output_tokens) == ("invalid_output", 40, 15)
    assert row.cost_usd is not None and row.cost_usd > 0
    assert fake.calls(model) == 1  # never retried: the same prompt would fail the same way


@pytest.mark.parametrize("provider", PROVIDERS)
def test_empty_reply_with_a_schema_is_empty(fake: FakeProvider, provider: str) -> None:
    model = model_of(provider)
    fake.script(model, empty(input_tokens=7))
    with make_router([make_path(fake, provider, schema=Order)]) as router:
        failed = fail_once(router, text="x")
    assert failed.attempts[0].kind == "empty"
    assert failed.attempts[0].input_tokens == 7


# -- circuit breaker -----------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_breaker_opens_skips_half_opens_and_closes(fake: FakeProvider, provider: str) -> None:
    model = model_of(provider)
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=30.0, clock=clock, name=model)
    path = make_path(fake, provider, breaker=breaker)
    fake.default(model, error(500))
    with make_router([path], retry_policy=retry(attempts=2)) as router:
        # Three failed requests (two HTTP calls each: one retry) open the breaker.
        for _ in range(3):
            assert fail_once(router, text="x").attempts[0].kind == "server_error"
        assert router.health()[model] == "open"
        assert fake.calls(model) == 6
        # Open: the path is skipped without an HTTP call and without an outcome row.
        (skipped,) = fail_once(router, text="x").attempts
        assert (skipped.kind, skipped.skipped) == ("breaker_open", True)
        assert fake.calls(model) == 6 and len(rows(router)) == 3
        # After the reset timeout one probe goes through; it fails: open again.
        clock.advance(30.0)
        assert fail_once(router, text="x").attempts[0].kind == "server_error"
        assert router.health()[model] == "open" and fake.calls(model) == 8
        assert fail_once(router, text="x").attempts[0].kind == "breaker_open"
        # Next probe succeeds: closed, and traffic flows again.
        clock.advance(30.0)
        fake.default(model, reply("back"))
        assert router.run(text="x") == "back"
        assert router.health()[model] == "closed"
        assert router.run(text="x") == "back"
        assert fake.calls(model) == 10


def test_open_breaker_falls_back(fake: FakeProvider) -> None:
    clock = Clock()
    gpt = make_path(
        fake, "openai", breaker=CircuitBreaker(failure_threshold=3, reset_timeout_s=30, clock=clock)
    )
    claude = make_path(fake, "anthropic")
    fake.default(GPT, error(503))
    fake.default(CLAUDE, reply("claude"))
    with make_router([gpt], fallback=claude, retry_policy=None) as router:
        assert [router.run(text="x") for _ in range(5)] == ["claude"] * 5
        assert router.health()[GPT] == "open"
    assert fake.calls(GPT) == 3 and fake.calls(CLAUDE) == 5


class ListedOrder(ThompsonSampling):
    """Ranks the paths in the order they were listed: what the breaker does to the order
    shows, not what the posteriors do."""

    def rank(self, successes: Any, failures: Any, rng: Any, **_: Any) -> Any:
        return np.arange(len(successes))


def listed_router(paths: list[Path], success_fn: Any = None, **kw: Any) -> Router:
    """Default breaker, no retries, no decay, no exploration: the first listed path first."""
    return Router(
        paths,
        success_fn=success_fn or (lambda v: v is not None),
        task="t",
        store="memory://",
        learning=Learning(policy=ListedOrder(), clock=lambda: 1_700_000_000.0),
        resilience=Resilience(retry=None),
        persistence=Persistence(durability="sync"),
        **kw,
    )


def test_the_default_breaker_opens_after_5_failures_and_moves_the_path_back(
    fake: FakeProvider,
) -> None:
    fake.script(GPT, [error(500), error(529), error(429), disconnect(), error(503)])
    fake.default(GPT, reply("never reached"))
    fake.default(CLAUDE, reply("claude"))
    with listed_router([make_path(fake, "openai"), make_path(fake, "anthropic")]) as router:
        for i in range(5):
            assert router.health()[GPT] == "closed", i
            assert router.run(text="x") == "claude"  # GPT failed first, Claude answered
        assert router.health() == {GPT: "open", CLAUDE: "closed"}
        assert [r.kind for r in rows(router) if r.path == GPT] == [
            "server_error",
            "server_error",
            "rate_limited",
            "connection",
            "server_error",
        ]
        (gpt,) = [p for p in router.posteriors() if p.path == GPT]
        assert (gpt.successes, gpt.failures) == (0, 5)  # evidence against the path
        # Open: GPT, listed first, now goes after Claude and is skipped without a call.
        assert [router.run(text="x") for _ in range(3)] == ["claude"] * 3
        fake.default(CLAUDE, error(500))
        (claude, skipped) = fail_once(router, text="x").attempts
    assert (claude.path, claude.kind) == (CLAUDE, "server_error")
    assert (skipped.path, skipped.kind, skipped.skipped) == (GPT, "breaker_open", True)
    assert fake.calls(GPT) == 5 and fake.calls(CLAUDE) == 9


def test_the_default_breaker_opens_at_half_of_the_last_20_calls(fake: FakeProvider) -> None:
    # Failures alternate with answers: never 5 in a row, but 5 of the last 10 calls.
    fake.script(GPT, [reply("gpt"), error(500)] * 5)
    fake.default(CLAUDE, reply("claude"))
    with listed_router([make_path(fake, "openai"), make_path(fake, "anthropic")]) as router:
        served = []
        for _ in range(9):
            served.append(router.run(text="x"))
            assert router.health()[GPT] == "closed"
        served.append(router.run(text="x"))  # the 10th call, the 5th failure
        assert router.health()[GPT] == "open"
        assert router.run(text="x") == "claude"
    assert served == ["gpt", "claude"] * 5
    assert fake.calls(GPT) == 10


def test_useless_answers_are_evidence_against_the_path_not_its_breaker(
    fake: FakeProvider,
) -> None:
    paris = json_reply({**ORDER, "city": "Paris"})  # valid, but success_fn rejects it
    fake.script(GPT, [malformed_json(), empty(), paris] * 2)
    fake.default(CLAUDE, json_reply(ORDER))
    gpt = make_path(fake, "openai", schema=Order)
    claude = make_path(fake, "anthropic", schema=Order)
    with listed_router([gpt, claude], success_fn=lambda o: o.city == "Berlin") as router:
        # Six useless answers in a row: more than the 5 failures that open the breaker.
        assert [router.run(text="x") for _ in range(6)] == [Order(**ORDER)] * 6
        kinds = [r.kind for r in rows(router) if r.path == GPT]
        (post,) = [p for p in router.posteriors() if p.path == GPT]
        health = router.health()
    assert kinds == ["invalid_output", "empty", "rejected"] * 2
    assert (post.successes, post.failures) == (0, 6)
    assert health[GPT] == "closed"  # it answered: the breaker is for paths that cannot
    assert fake.calls(GPT) == 6  # none retried


# -- async -------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_arun_uses_the_async_client(fake: FakeProvider, provider: str) -> None:
    model = model_of(provider)

    async def main() -> None:
        aclient: Any = (
            fake.async_openai_client() if provider == "openai" else fake.async_anthropic_client()
        )
        path = make_path(fake, provider, async_client=aclient, schema=Order, timeout=0.3)
        sleeps: list[float] = []

        async def asleep(s: float) -> None:
            sleeps.append(s)

        policy = retry(attempts=3, asleep=asleep)
        async with aclient:
            with make_router([path], retry_policy=policy) as router:
                fake.script(model, [error(500), json_reply(ORDER, output_tokens=11)])
                assert await router.arun(text="x") == Order(**ORDER)
                fake.script(model, [delay(10), delay(10), malformed_json()])
                start = time.monotonic()
                with pytest.raises(AllPathsFailed) as info:
                    await router.arun(text="x")
                assert time.monotonic() - start < 2 * 0.3 + 0.5
                assert [(a.kind, a.retries) for a in info.value.attempts] == [("invalid_output", 2)]
                fake.script(model, [error(400)])
                with pytest.raises(AllPathsFailed) as info:
                    await router.arun(text="x")
                assert info.value.attempts[0].kind == "client_error"
                recorded = rows(router)
        assert [(r.kind, r.retries) for r in recorded] == [
            (None, 1),
            ("invalid_output", 2),
            ("client_error", 0),
        ]
        assert recorded[0].output_tokens == 11
        assert len(sleeps) == 3

    asyncio.run(main())
    assert fake.calls(model) == 6
    # Every request came from the async client.
    assert {r.headers["x-stainless-async"] for r in fake.requests} == {"async:asyncio"}


def test_run_uses_the_sync_client_when_both_are_given(fake: FakeProvider) -> None:
    async def main() -> None:
        aclient = fake.async_openai_client()
        fake.default(GPT, reply("ok"))
        path = make_path(fake, "openai", async_client=aclient)
        with make_router([path]) as router:
            assert await router.arun(text="x") == "ok"
        await aclient.close()
        with make_router([path]) as router:
            assert await asyncio.to_thread(router.run, text="x") == "ok"

    asyncio.run(main())
    assert [r.headers["x-stainless-async"] for r in fake.requests] == ["async:asyncio", "false"]


def test_only_a_sync_client_runs_in_a_thread_under_arun(fake: FakeProvider) -> None:
    fake.default(GPT, reply("ok"))
    path = make_path(fake, "openai")
    assert path.afn is None
    with make_router([path]) as router:
        assert asyncio.run(router.arun(text="x")) == "ok"
    assert fake.requests[0].headers["x-stainless-async"] == "false"


# -- clients from the environment -----------------------------------------------------------------
def test_lazy_clients_from_the_environment(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.anthropic_base_url)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    fake.default(GPT, reply("gpt"))
    fake.default(CLAUDE, reply("claude"))
    gpt = openai_path(GPT, TEMPLATE, timeout=2.0)
    claude = anthropic_path(CLAUDE, TEMPLATE, timeout=2.0)
    assert gpt.afn is not None and claude.afn is not None
    with make_router([gpt]) as r1, make_router([claude]) as r2:
        assert (r1.run(text="x"), r2.run(text="x")) == ("gpt", "claude")
        # One async client per event loop: two asyncio.run calls both work.
        for _ in range(2):
            assert asyncio.run(r1.arun(text="x")) == "gpt"
            assert asyncio.run(r2.arun(text="x")) == "claude"
    assert fake.calls(GPT) == 3 and fake.calls(CLAUDE) == 3
    assert sorted(r.headers["x-stainless-async"] for r in fake.requests).count("false") == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_missing_api_key_is_an_auth_error(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    build = openai_path if provider == "openai" else anthropic_path
    with make_router([build(model_of(provider), TEMPLATE)]) as router:
        failed = fail_once(router, text="x")
    (attempt,) = failed.attempts
    assert attempt.kind == "auth_error" and attempt.retries == 0
    env = "OPENAI_API_KEY" if provider == "openai" else "ANTHROPIC_API_KEY"
    assert env in (attempt.error or "")
    assert issubclass(MissingCredentialsError, RuntimeError)
    assert fake.calls() == 0


# -- secrets --------------------------------------------------------------------------------------
def test_api_key_never_appears_in_logs_errors_rows_or_reprs(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    canary = f"sk-canary-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)
    oc = openai.OpenAI(
        api_key=canary,
        base_url=fake.openai_base_url,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    )
    ac = anthropic.Anthropic(
        api_key=canary,
        base_url=fake.anthropic_base_url,
        http_client=anthropic.DefaultHttpxClient(trust_env=False),
    )
    # No breaker: the 401 (auth_error) would otherwise open it and skip the faults after.
    gpt = openai_path(GPT, TEMPLATE, client=oc, schema=Order, timeout=0.3, breaker=None)
    claude = anthropic_path(CLAUDE, TEMPLATE, client=ac, schema=Order, timeout=0.3)
    fake.script(GPT, [error(500), error(401), delay(5), malformed_json(), disconnect()])
    fake.script(CLAUDE, [error(529), error(429, retry_after=0), empty(), json_reply(ORDER)])
    texts: list[str] = []
    with make_router([gpt], fallback=claude, retry_policy=retry(attempts=2)) as router:
        for _ in range(4):
            try:
                router.run(text="x")
            except AllPathsFailed as exc:
                texts.append(str(exc))
                texts.extend(repr(a) for a in exc.attempts)
        async_failed: list[str] = []

        async def main() -> None:
            try:
                await router.arun(text="x")
            except AllPathsFailed as exc:
                async_failed.append(str(exc))

        asyncio.run(main())
        texts.extend(async_failed)
        recorded = rows(router)
        texts.extend(repr(r) for r in recorded)
        texts.extend([repr(router), repr(gpt), repr(claude), repr(gpt.fn), repr(claude.afn)])
        texts.append(repr(router.stats()))
    oc.close()
    ac.close()
    assert fake.calls() >= 9
    assert {"auth_error", "rate_limited", "invalid_output", "empty", None} <= {
        r.kind for r in recorded
    }
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.append(repr(record.__dict__))
        if record.exc_info and record.exc_info[1] is not None:
            texts.append(repr(record.exc_info[1]))
    texts.append(repr(fake.requests))
    assert len(caplog.records) > 10  # the SDKs and httpx really did log at DEBUG
    leaks = [t for t in texts if canary in t or canary[3:] in t]
    assert leaks == []


# -- configuration ---------------------------------------------------------------------------------
def test_parameter_variants_are_separate_paths(fake: FakeProvider) -> None:
    fake.default(GPT, reply("ok"))
    client = client_for(fake, "openai")
    cold = openai_path(GPT, TEMPLATE, client=client, temperature=0.0, name="{model}-cold")
    warm = openai_path(GPT, TEMPLATE, client=client, temperature=0.9, name="gpt-4o-warm")
    assert (cold.name, warm.name, cold.model, warm.model) == (
        "gpt-4o-cold",
        "gpt-4o-warm",
        GPT,
        GPT,
    )
    with make_router([cold, warm]) as router:
        for _ in range(20):
            router.run(text="x")
        used = {r.path for r in rows(router)}
    assert used == {"gpt-4o-cold", "gpt-4o-warm"}
    assert {r.body["temperature"] for r in fake.requests} == {0.0, 0.9}
    with pytest.raises(ConfigurationError, match="duplicate"):
        Router([openai_path(GPT, TEMPLATE), openai_path(GPT, TEMPLATE)], bool, "dupe")


def temperature_dependent(success: dict[float, float], seed: int) -> Step:
    """A model whose answer depends on the request's temperature: valid JSON with
    probability ``success[temperature]``, else an order the schema rejects."""
    rng = random.Random(seed)

    def answer(request: RecordedRequest) -> Step:
        t = request.body.get("temperature")
        ok = rng.random() < success[t]
        return json_reply(ORDER if ok else {**ORDER, "quantity": 0})

    return respond(answer)


def test_router_learns_between_parameter_variants_of_one_model(fake: FakeProvider) -> None:
    fake.default(GPT, temperature_dependent({0.2: 0.9, 1.0: 0.4}, seed=4))
    client = client_for(fake, "openai")
    cold = openai_path(
        GPT, TEMPLATE, schema=Order, client=client, temperature=0.2, name="gpt-4o-cold"
    )
    hot = openai_path(
        GPT, TEMPLATE, schema=Order, client=client, temperature=1.0, name="gpt-4o-hot"
    )
    with make_router([cold, hot], explore=0.0) as router:
        for _ in range(150):
            with contextlib.suppress(AllPathsFailed):  # both variants can fail a request
                router.run(text="x")
        firsts = [r.path for r in rows(router) if r.attempt == 1]
        post = {p.path: p for p in router.posteriors()}
    assert firsts[-50:].count("gpt-4o-cold") >= 45, firsts[-50:]
    assert post["gpt-4o-cold"].mean > post["gpt-4o-hot"].mean
    # Each path sent its own temperature.
    sent = {(r.body["temperature"]) for r in fake.requests}
    assert sent == {0.2, 1.0}


def test_anthropic_parameter_variants_go_through_extra_body(fake: FakeProvider) -> None:
    # anthropic 2.x's messages.create() has no temperature argument: extra_body carries it.
    fake.default(CLAUDE, reply("ok"))
    client = client_for(fake, "anthropic")
    cold = anthropic_path(
        CLAUDE, TEMPLATE, client=client, extra_body={"temperature": 0.0}, name="claude-cold"
    )
    hot = anthropic_path(
        CLAUDE, TEMPLATE, client=client, extra_body={"temperature": 1.0}, name="claude-hot"
    )
    with make_router([cold, hot]) as router:
        for _ in range(10):
            router.run(text="x")
        used = {r.path for r in rows(router)}
    assert used == {"claude-cold", "claude-hot"}
    assert {r.body["temperature"] for r in fake.requests} == {0.0, 1.0}


def test_path_settings() -> None:
    breaker = CircuitBreaker(failure_threshold=2)
    policy = RetryPolicy(attempts=5)
    path = anthropic_path(CLAUDE, TEMPLATE, timeout=7, retry=policy, breaker=breaker)
    assert (path.name, path.model, path.timeout) == (CLAUDE, CLAUDE, 7.0)
    assert path.retry is policy and path.breaker is breaker and path.enforces_timeout
    assert path.metadata == {"provider": "anthropic"}
    assert openai_path(GPT, TEMPLATE, retry=None).retry is None


@pytest.mark.parametrize(
    ("build", "kwargs", "match"),
    [
        (openai_path, {"model": "", "prompt": TEMPLATE}, "model"),
        (openai_path, {"model": GPT, "prompt": 3}, "prompt"),
        (openai_path, {"model": GPT, "prompt": "  "}, "prompt"),
        (openai_path, {"model": GPT, "prompt": TEMPLATE, "timeout": -1}, "timeout"),
        (openai_path, {"model": GPT, "prompt": TEMPLATE, "stream": True}, "stream"),
        (openai_path, {"model": GPT, "prompt": TEMPLATE, "messages": []}, "messages"),
        (openai_path, {"model": GPT, "prompt": TEMPLATE, "temprature": 0.1}, "temprature"),
        (anthropic_path, {"model": CLAUDE, "prompt": TEMPLATE, "temperatur": 1}, "extra_body"),
        (anthropic_path, {"model": CLAUDE, "prompt": TEMPLATE, "max_tokens": 0}, "max_tokens"),
        (anthropic_path, {"model": CLAUDE, "prompt": TEMPLATE, "timeout": 0}, "timeout"),
    ],
)
def test_bad_configuration(build: Any, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        build(**kwargs)


# -- a positional argument fills a template's one placeholder ---------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_one_placeholder_template_takes_one_positional_argument(
    fake: FakeProvider, provider: str
) -> None:
    model = model_of(provider)
    fake.default(model, reply("done"))
    with make_router([make_path(fake, provider)]) as router:
        assert router.run("2x widget to Berlin") == "done"
        assert router.run(text="3x gizmo") == "done"
    assert [r.prompt for r in fake.requests] == [
        "Extract the order: 2x widget to Berlin",
        "Extract the order: 3x gizmo",
    ]


@pytest.mark.parametrize(
    ("prompt", "args", "named"),
    [
        ("Summarise the order.", ("2x widget",), "no placeholders"),
        ("Order {item} to {city}", ("2x widget",), "{item}, {city}"),
        ("Order: {text}", ("a", "b"), "{text}"),
    ],
)
def test_positional_arguments_that_do_not_fit_the_template_name_its_placeholders(
    fake: FakeProvider, prompt: str, args: tuple[str, ...], named: str
) -> None:
    path = make_path(fake, "openai", prompt=prompt)
    with pytest.raises(PromptError, match="pass them by keyword") as info:
        path.fn(*args)
    assert named in str(info.value)
    assert fake.calls() == 0
