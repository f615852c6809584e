"""litellm_path: the real LiteLLM, through a Router, against FakeProvider on loopback."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from adaptive_router import (
    AllPathsFailed,
    ConfigurationError,
    Learning,
    Observability,
    Path,
    Persistence,
    Resilience,
    Router,
)
from adaptive_router.metering import capture
from adaptive_router.metering.prices import Pricer
from adaptive_router.outcomes import ErrorKind, Outcome
from adaptive_router.resilience import CircuitBreaker, RetryPolicy, classify
from adaptive_router.testing import (
    DUMMY_API_KEY,
    FakeProvider,
    Step,
    delay,
    disconnect,
    error,
    json_reply,
    reply,
)

# The path's module first: it tells LiteLLM not to fetch its price map at import.
from adaptive_router.providers import litellm as litellm_module  # isort: skip
from adaptive_router.providers import litellm_path  # isort: skip

import litellm  # isort: skip

GPT = "gpt-4o"
CLAUDE = "claude-3-5-haiku-20241022"


class Order(BaseModel):
    quantity: int
    item: str


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        yield f


@pytest.fixture
def fake(server: FakeProvider) -> Iterator[FakeProvider]:
    server.reset()
    yield server
    server.reset()
    capture.uninstall()


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def retry(sleeps: Sleeps | None = None) -> RetryPolicy:
    return RetryPolicy(
        attempts=3,
        budget_s=10.0,
        initial=0.01,
        max_wait=0.05,
        rng=1,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


def gpt(fake: FakeProvider, **kw: Any) -> Path:
    kw.setdefault("timeout", 2.0)
    return litellm_path(
        f"openai/{GPT}",
        kw.pop("prompt", "Extract: {text}"),
        api_base=fake.openai_base_url,
        api_key=DUMMY_API_KEY,
        **kw,
    )


def router(
    paths: list[Path],
    fallback: Path | None = None,
    retry_policy: RetryPolicy | None = None,
    breaker: CircuitBreaker | None = None,
    capture_usage: bool = True,
    objective: str = "success",
) -> Router:
    return Router(
        paths,
        success_fn=lambda v: v is not None,
        task="t",
        store="memory://",
        fallback=fallback,
        objective=objective,
        learning=Learning(seed=1),
        resilience=Resilience(
            retry=retry_policy or retry(),
            **({} if breaker is None else {"breaker": breaker}),
        ),
        persistence=Persistence(durability="sync"),
        observability=Observability(capture_usage=capture_usage),
    )


def rows(r: Router) -> list[Outcome]:
    r.flush()
    return list(r.store.outcomes("t"))


def test_parsed_result_tokens_and_genai_prices_cost(fake: FakeProvider) -> None:
    fake.script(GPT, [json_reply({"quantity": 2, "item": "widget"}, input_tokens=31)])
    with router([gpt(fake, schema=Order)]) as r:
        assert r.run(text="2x widget") == Order(quantity=2, item="widget")
        (row,) = rows(r)
    (req,) = fake.requests
    assert req.model == GPT and "2x widget" in req.prompt
    assert row.success and row.input_tokens == 31 and row.output_tokens is not None
    expected = Pricer().cost(GPT, 31, row.output_tokens)
    assert expected is not None and expected > 0
    assert row.cost_usd == pytest.approx(expected, rel=1e-12)
    assert row.model == GPT


def test_anthropic_route_tokens(fake: FakeProvider) -> None:
    fake.script(CLAUDE, [reply("hello", input_tokens=12, output_tokens=3)])
    path = litellm_path(
        f"anthropic/{CLAUDE}", "Say: {text}", api_base=fake.anthropic_base_url,
        api_key=DUMMY_API_KEY, timeout=2.0,
    )  # fmt: skip
    with router([path]) as r:
        assert r.run(text="hi") == "hello"
        (row,) = rows(r)
    assert (row.input_tokens, row.output_tokens) == (12, 3)
    assert row.cost_usd == pytest.approx(Pricer().cost(CLAUDE, 12, 3), rel=1e-12)


@dataclass
class Fault:
    label: str
    steps: list[Step]
    kind: str
    retries: int
    calls: int


FAULTS = [
    Fault("429", [error(429)] * 3, "rate_limited", 2, 3),
    Fault("500", [error(500)] * 3, "server_error", 2, 3),
    Fault("503", [error(503)] * 3, "server_error", 2, 3),
    Fault("400", [error(400)], "client_error", 0, 1),
    Fault("401", [error(401)], "auth_error", 0, 1),
    Fault("403", [error(403)], "auth_error", 0, 1),
    Fault("disconnect", [disconnect()] * 3, "connection", 2, 3),
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.label)
def test_litellm_errors_get_the_kinds_and_retries_of_the_other_paths(
    fake: FakeProvider, fault: Fault
) -> None:
    fake.script(GPT, fault.steps)
    fake.default(GPT, reply("never reached"))
    sleeps = Sleeps()
    with router([gpt(fake)], retry_policy=retry(sleeps)) as r:
        with pytest.raises(AllPathsFailed) as info:
            r.run(text="x")
        (row,) = rows(r)
    (attempt,) = info.value.attempts
    assert (attempt.kind, attempt.retries) == (fault.kind, fault.retries)
    assert (row.kind, row.retries) == (fault.kind, fault.retries)
    assert fake.calls(GPT) == fault.calls and len(sleeps.waits) == fault.retries
    assert row.cost_usd == 0.0  # an error status: nothing generated, nothing billed


def test_transient_errors_then_success(fake: FakeProvider) -> None:
    fake.script(GPT, [error(429), error(500), reply("third", input_tokens=7, output_tokens=2)])
    with router([gpt(fake)]) as r:
        assert r.run(text="x") == "third"
        (row,) = rows(r)
    assert (row.retries, row.input_tokens, row.output_tokens) == (2, 7, 2)
    assert fake.calls(GPT) == 3


def test_timeouts_are_timeout_and_retried(fake: FakeProvider) -> None:
    fake.script(GPT, [delay(10), delay(10)])
    fake.default(GPT, reply("ok"))
    with router([gpt(fake, timeout=0.3)]) as r:
        assert r.run(text="x") == "ok"
        (row,) = rows(r)
    assert row.retries == 2 and fake.calls(GPT) == 3


def test_arun_uses_acompletion(fake: FakeProvider) -> None:
    fake.script(GPT, [error(429), reply("async ok", input_tokens=9, output_tokens=2)])
    with router([gpt(fake)]) as r:
        assert asyncio.run(r.arun(text="x")) == "async ok"
        (row,) = rows(r)
    assert (row.retries, row.input_tokens, row.output_tokens) == (1, 9, 2)


def test_counted_once_with_capture_on(fake: FakeProvider) -> None:
    """LiteLLM's OpenAI route calls the openai SDK (with_raw_response): capture must not
    add that call to the path's own usage."""
    fake.script(GPT, [reply("once", input_tokens=40, output_tokens=5)])
    with router([gpt(fake)], capture_usage=True) as r:
        assert capture.installed()
        r.run(text="x")
        (row,) = rows(r)
    assert (row.input_tokens, row.output_tokens) == (40, 5)
    assert row.cost_usd == pytest.approx(Pricer().cost(GPT, 40, 5), rel=1e-12)


def test_plain_function_calling_litellm_is_metered_by_capture(fake: FakeProvider) -> None:
    fake.script(GPT, [reply("plain", input_tokens=21, output_tokens=4)])

    def plain(text: str) -> str:
        response = litellm.completion(
            model=f"openai/{GPT}",
            messages=[{"role": "user", "content": text}],
            api_base=fake.openai_base_url,
            api_key=DUMMY_API_KEY,
            num_retries=0,
        )
        return str(response.choices[0].message.content)

    with router([Path(plain, name="plain", model=GPT)]) as r:
        assert r.run(text="x") == "plain"
        (row,) = rows(r)
    assert (row.input_tokens, row.output_tokens) == (21, 4)
    assert row.cost_usd == pytest.approx(Pricer().cost(GPT, 21, 4), rel=1e-12)


def test_litellm_price_for_a_model_genai_prices_lacks(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.script(GPT, [reply("x", input_tokens=1000, output_tokens=100)])
    monkeypatch.setattr(litellm_module, "genai_prices_knows", lambda model: False)
    with router([gpt(fake)]) as r:
        r.run(text="x")
        (row,) = rows(r)
    inp, out = litellm.cost_per_token(model=GPT, prompt_tokens=1000, completion_tokens=100)
    assert row.cost_usd == pytest.approx(inp + out, rel=1e-9)


def test_a_model_nobody_prices_is_unknown_not_zero(fake: FakeProvider) -> None:
    model = "acme-private-7b"
    fake.script(model, [reply("x", input_tokens=10, output_tokens=2)])
    path = litellm_path(
        f"openai/{model}", "{text}", api_base=fake.openai_base_url, api_key=DUMMY_API_KEY
    )
    with router([path]) as r:
        r.run(text="x")
        (row,) = rows(r)
    assert (row.input_tokens, row.cost_usd) == (10, None)


def test_expected_tokens_price_the_bare_model_as_the_cost_prior(fake: FakeProvider) -> None:
    path = gpt(fake, expected_tokens=(1000, 200))
    assert (path.model, path.expected_tokens) == (f"openai/{GPT}", (1000, 200))
    with router([path], objective="cost") as r:
        (post,) = r.posteriors()
    # "openai/gpt-4o" is unknown to genai-prices; the prior is gpt-4o's price.
    assert post.expected_cost_usd == pytest.approx(Pricer().cost(GPT, 1000, 200), rel=1e-12)


def test_error_kind_table_covers_litellm_classes() -> None:
    e = litellm.exceptions
    conn = e.APIConnectionError(message="refused", llm_provider="openai", model=GPT)
    assert litellm_module.error_kind(conn) is ErrorKind.CONNECTION
    litellm_module._mark(conn)
    assert classify(conn) is ErrorKind.CONNECTION  # its status_code 500 alone says server_error
    timeout = e.Timeout(message="slow", model=GPT, llm_provider="openai")
    assert litellm_module.error_kind(timeout) is ErrorKind.TIMEOUT
    assert litellm_module.error_kind(ValueError("x")) is None


@pytest.mark.parametrize("bad", ["num_retries", "max_retries", "stream", "messages"])
def test_reserved_kwargs_are_refused(bad: str) -> None:
    with pytest.raises(ConfigurationError, match=bad):
        litellm_path("openai/gpt-4o", "{text}", **{bad: 1})


def test_importing_the_package_does_not_import_litellm_nor_reach_the_network() -> None:
    code = (
        "import os, sys\n"
        "os.environ.pop('LITELLM_LOCAL_MODEL_COST_MAP', None)\n"
        "import adaptive_router, adaptive_router.providers as p\n"
        "from adaptive_router import Router\n"
        "assert 'litellm' not in sys.modules, 'litellm imported eagerly'\n"
        "p.litellm_path\n"
        "assert 'litellm' in sys.modules\n"
        "print(os.environ['LITELLM_LOCAL_MODEL_COST_MAP'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    assert "cost map" not in done.stderr.lower(), done.stderr


# -- configuration errors: auth_error ------------------------------------------------------------
class _Mono:
    """The breaker's clock, moved by hand."""

    now = 0.0

    def __call__(self) -> float:
        return self.now


def _auth_router(path: Path) -> Router:
    return router(
        [path],
        fallback=Path(lambda text: "regex", name="regex", cost_usd=0.0),
        breaker=CircuitBreaker(failure_threshold=5, reset_timeout_s=30.0, clock=_Mono()),
    )


def _auth_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name == "adaptive_router.router"
    ]


@pytest.mark.parametrize("status", [401, 403])
def test_refused_key_is_no_evidence_and_opens_the_breaker(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    fake.script(GPT, [reply("first"), error(status)])
    caplog.set_level(logging.WARNING)
    name = f"openai/{GPT}"
    with _auth_router(gpt(fake)) as r:
        assert r.run(text="x") == "first"
        before = [(p.alpha, p.beta, p.n) for p in r.posteriors() if p.path == name]
        assert before == [(2.0, 1.0, 1)]
        assert r.run(text="x") == "regex"
        after = [(p.alpha, p.beta, p.n) for p in r.posteriors() if p.path == name]
        kinds = [(o.path, o.kind, o.retries) for o in rows(r)][1:]
        assert r.health()[name] == "open"
        assert r.run(text="x") == "regex"  # skipped while open: no call
    assert after == before
    assert kinds == [(name, "auth_error", 0), ("regex", None, 0)]
    assert fake.calls(GPT) == 2
    (line,) = _auth_lines(caplog)
    assert f"path {name!r}" in line and f"HTTP {status}" in line
    assert "check the api_key= given to litellm_path('openai/gpt-4o'" in line
    assert DUMMY_API_KEY not in "\n".join(m.getMessage() for m in caplog.records)


def test_missing_key_is_an_auth_error_naming_the_variable(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY"):
        monkeypatch.delenv(var, raising=False)
    caplog.set_level(logging.WARNING)
    path = litellm_path(f"openai/{GPT}", "{text}", api_base=fake.openai_base_url, timeout=2.0)
    with _auth_router(path) as r:
        assert r.run(text="x") == "regex"
        (attempt, served) = rows(r)
        assert (served.path, served.success) == ("regex", True)
        (post,) = [p for p in r.posteriors() if p.path == path.name]
        assert r.health()[path.name] == "open"
    # LiteLLM raises InternalServerError (500) over the openai SDK's "Missing credentials":
    # not a server error to retry, but a configuration error.
    assert (attempt.kind, attempt.retries, attempt.cost_usd) == ("auth_error", 0, 0.0)
    assert (post.n, post.alpha, post.beta) == (0, 1.0, 1.0)
    assert fake.calls(GPT) == 0
    (line,) = _auth_lines(caplog)
    assert "no API key" in line and "set OPENAI_API_KEY" in line
