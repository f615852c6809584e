"""Configuration errors are not evidence: refused credentials (401, 403) and a missing API
key, through the real openai and anthropic SDKs against FakeProvider on loopback.

Each leaves the path's evidence exactly as it was (in the router and in the store), is
never retried, opens the path's breaker in this process only, and logs one ERROR line
naming the path and what to set, without the key; the breaker's re-probes do not log
it again within the window. Unknown exceptions stay ``exception`` (evidence) unless the
user classifies them with a ``kind`` attribute.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from adaptive_router import AllPathsFailed, Learning, Path, Persistence, Resilience, Router
from adaptive_router.outcomes import ErrorKind, Outcome
from adaptive_router.providers import anthropic_path, openai_path
from adaptive_router.resilience import CircuitBreaker, RetryPolicy, auth_advice, classify
from adaptive_router.stores import Store, open_store
from adaptive_router.testing import FakeProvider, error

GPT = "gpt-4o"
CLAUDE = "claude-sonnet-4-6"
ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
# Every variable either SDK could take a key (or a proxy) from.
_CREDENTIAL_VARS = (
    "OPENAI_API_KEY",
    "OPENAI_ADMIN_KEY",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
)
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
RESET_S = 30.0
#: The routers' wall clock at the start of a test; the seed's evidence is older.
WALL0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        yield f


@pytest.fixture
def fake(server: FakeProvider) -> Iterator[FakeProvider]:
    server.reset()
    yield server
    server.reset()


class Clock:
    """Seconds the test moves by hand (the breaker's monotonic clock, the router's)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def model_of(provider: str) -> str:
    return GPT if provider == "openai" else CLAUDE


def env_path(provider: str) -> Path:
    """A provider path whose client comes from the environment (the README's snippet)."""
    build = openai_path if provider == "openai" else anthropic_path
    return build(model_of(provider), "Extract: {text}", timeout=2.0)


def regex(text: str) -> str:
    return "regex"


def seed(store: Store, name: str) -> None:
    """Evidence for path ``name``: 3 successes and 1 failure, from a plain function."""
    answers = iter(["ok", "ok", None, "ok"])
    with Router(
        [Path(lambda text: next(answers), name=name)],
        success_fn=lambda v: v is not None,
        task="t",
        store=store,
        learning=Learning(seed=1, clock=lambda: WALL0 - 100.0),
        persistence=Persistence(durability="sync"),
    ) as r:
        for _ in range(4):
            with contextlib.suppress(AllPathsFailed):  # the one failure
                r.run(text="x", context="short")


def evidence(router: Router) -> list[tuple[str, float, float, int, int, int]]:
    """What the router learns from about its learned paths, task level and context."""
    out = []
    for ctx in (None, "short"):
        out += [
            (p.path, p.alpha, p.beta, p.n, p.successes, p.failures)
            for p in router.posteriors(ctx)
            if p.path != "regex"
        ]
    return out


def stored_evidence(store: Store, name: str) -> list[tuple[str, float, float, int, int, int]]:
    """The same, read back from the store by a fresh router."""
    with Router(
        [Path(regex, name=name)],
        success_fn=bool,
        task="t",
        store=store,
        learning=Learning(seed=1, clock=Clock(WALL0)),
    ) as r:
        return evidence(r)


def auth_router(store: Store, path: Path, mono: Clock, wall: Clock) -> Router:
    return Router(
        [path],
        success_fn=lambda v: v is not None,
        task="t",
        store=store,
        fallback=Path(regex, name="regex", cost_usd=0.0),
        learning=Learning(seed=1, clock=wall),
        resilience=Resilience(
            retry=RetryPolicy(attempts=3, initial=0.01, max_wait=0.02, rng=1, sleep=lambda s: None),
            breaker=CircuitBreaker(failure_threshold=5, reset_timeout_s=RESET_S, clock=mono),
        ),
        persistence=Persistence(durability="sync"),
    )


def rows(router: Router) -> list[Outcome]:
    router.flush()
    return list(router.store.outcomes("t"))


def new_rows(router: Router) -> list[Outcome]:
    """The outcomes after the seed's, in the order of the requests."""
    return [o for o in rows(router) if o.created_at >= WALL0]


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def auth_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The router's ERROR lines (the breaker_open alert is the alerts module's)."""
    return [r for r in errors(caplog) if r.name == "adaptive_router.router"]


def all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)


FAULTS = ["401", "403", "missing_key"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", FAULTS)
def test_configuration_error_is_no_evidence_opens_the_breaker_and_logs_once(
    fake: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    sqlite_url: str,
    provider: str,
    fault: str,
) -> None:
    model, env = model_of(provider), ENV[provider]
    canary = f"sk-canary-{uuid.uuid4().hex}"
    for var in _CREDENTIAL_VARS + _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.anthropic_base_url)
    if fault != "missing_key":
        monkeypatch.setenv(env, canary)
        status = int(fault)
        # A provider that quotes the key it refused, as OpenAI's 401 does (partly masked).
        step = error(status, f"Incorrect API key provided: {canary}. Check it.")
        fake.script(model, [step, step])
    store = open_store(sqlite_url)
    seed(store, model)
    before = stored_evidence(store, model)
    assert before[0][3] == 4 and before[0][2] > 1.0  # real evidence, failures included
    mono, wall = Clock(1000.0), Clock(WALL0)
    caplog.set_level(logging.DEBUG)
    with auth_router(store, env_path(provider), mono, wall) as router:
        assert evidence(router) == before
        assert router.run(text="x", context="short") == "regex"  # the fallback served it
        (row, served) = new_rows(router)
        assert (row.path, row.kind, row.success, row.retries) == (
            model,
            "auth_error",
            False,
            0,
        )
        assert row.cost_usd == 0.0  # nothing generated, nothing billed
        assert (served.path, served.success, served.cost_usd) == ("regex", True, 0.0)
        # Evidence unchanged: the router's, and what the store hands other processes.
        assert evidence(router) == before
        assert stored_evidence(store, model) == before
        # The breaker is open in this process; nothing else says so to other processes.
        assert router.health() == {model: "open", "regex": "none"}
        # One ERROR line names the path and what to set (no key in it); the only other
        # ERROR record is the breaker_open alert every opening breaker fires (Alerts).
        (line,) = [r for r in errors(caplog) if env in r.getMessage()]
        assert [r.getMessage() for r in errors(caplog) if r is not line] == [
            f"alert breaker_open: circuit breaker of path {model!r} (task 't') opened "
            "(was closed); the path is skipped until it recovers"
        ]
        message = line.getMessage()
        assert f"path {model!r}" in message and env in message
        assert ("no API key" in message) == (fault == "missing_key")
        if fault != "missing_key":
            assert f"HTTP {status}" in message
        assert line.__dict__["path"] == model and line.__dict__["kind"] == "auth_error"

        # While open, the path is skipped: no call, no new outcome, no new ERROR line.
        wall.now += 1.0  # each request at its own time (the log window is 60 s)
        calls = fake.calls(model)
        assert router.run(text="x") == "regex"
        assert fake.calls(model) == calls
        assert [r.path for r in new_rows(router)] == [model, "regex", "regex"]

        # After reset_timeout_s the breaker lets one probe through; it is refused again:
        # open again, still no evidence, and the same window logs nothing new.
        mono.now += RESET_S
        wall.now += 1.0
        assert router.run(text="x") == "regex"
        assert router.health()[model] == "open"
        assert [r.kind for r in new_rows(router) if r.path == model] == ["auth_error"] * 2
        assert evidence(router) == before
        assert len(errors(caplog)) == 2  # neither line again: one per path and window
        expected_calls = 0 if fault == "missing_key" else 2
        assert fake.calls(model) == expected_calls
        outcome_text = "\n".join(repr(r) for r in new_rows(router))
    assert stored_evidence(store, model) == before
    for text in (all_log_text(caplog), outcome_text):
        assert canary not in text and canary[3:] not in text
    store.close()


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_given_client_refused_says_to_check_that_client(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture, provider: str
) -> None:
    model = model_of(provider)
    client: Any = fake.openai_client() if provider == "openai" else fake.anthropic_client()
    build = openai_path if provider == "openai" else anthropic_path
    path = build(model, "Extract: {text}", client=client, timeout=2.0)
    fake.script(model, [error(401)])
    caplog.set_level(logging.ERROR)
    with auth_router(open_store("memory://"), path, Clock(0.0), Clock(WALL0)) as router:
        assert router.run(text="x") == "regex"
        assert router.health()[model] == "open"
        (posterior,) = [p for p in router.posteriors() if p.path == model]
        assert (posterior.n, posterior.alpha, posterior.beta) == (0, 1.0, 1.0)
    (line,) = auth_lines(caplog)
    assert f"client given to {provider}_path(client=" in line.getMessage()


def test_a_path_without_a_breaker_still_logs_once_per_window(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    path = openai_path(GPT, "Extract: {text}", client=fake.openai_client(), breaker=None)
    fake.default(GPT, error(403))
    wall = Clock(WALL0)
    caplog.set_level(logging.ERROR)
    with auth_router(open_store("memory://"), path, Clock(0.0), wall) as router:
        for _ in range(5):
            assert router.run(text="x") == "regex"
        assert router.health()[GPT] == "none"
        assert fake.calls(GPT) == 5  # no breaker: every request tries it, none retried
        assert len(errors(caplog)) == 1
        assert "no circuit breaker" in errors(caplog)[0].getMessage()
        wall.now += 61.0  # the next window: one summary line, then the line itself
        router.run(text="x")
        assert len(errors(caplog)) == 3
        assert "4 more times" in errors(caplog)[1].getMessage()
        (posterior,) = [p for p in router.posteriors() if p.path == GPT]
        assert posterior.n == 0


# -- classification ------------------------------------------------------------------


def _request() -> httpx2.Request:
    return httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")


def test_sdk_missing_key_messages_are_auth_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _CREDENTIAL_VARS:
        monkeypatch.delenv(var, raising=False)
    # openai raises on construction; anthropic only when a request is built.
    with pytest.raises(openai.OpenAIError) as no_openai:
        openai.OpenAI()
    assert classify(no_openai.value) is ErrorKind.AUTH_ERROR
    client = anthropic.Anthropic(base_url="http://127.0.0.1:9", max_retries=0)
    with pytest.raises(TypeError) as no_anthropic:
        client.messages.create(
            model=CLAUDE, max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert classify(no_anthropic.value) is ErrorKind.AUTH_ERROR
    what, fix = auth_advice(no_anthropic.value)
    assert what == "no API key" and "ANTHROPIC_API_KEY" in fix
    what, fix = auth_advice(no_openai.value)
    assert what == "no API key" and "OPENAI_API_KEY" in fix
    # Wrapped by user code (raise ... from err), it keeps its kind.
    try:
        try:
            raise no_openai.value
        except openai.OpenAIError as err:
            raise RuntimeError("could not build the client") from err
    except RuntimeError as wrapped:
        assert classify(wrapped) is ErrorKind.AUTH_ERROR


def test_statuses_and_body_types_without_an_sdk_class() -> None:
    class HTTPFailure(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(f"HTTP {status}")
            self.status_code = status

    assert classify(HTTPFailure(401)) is ErrorKind.AUTH_ERROR
    assert classify(HTTPFailure(403)) is ErrorKind.AUTH_ERROR
    assert classify(HTTPFailure(404)) is ErrorKind.CLIENT_ERROR
    assert auth_advice(HTTPFailure(403))[0].endswith("(HTTP 403)")
    # httpx's own status error, read from its response.
    response = httpx2.Response(401, request=_request())
    status_error = httpx2.HTTPStatusError("401", request=_request(), response=response)
    assert classify(status_error) is ErrorKind.AUTH_ERROR
    # A streamed error event arrives on a 200: its body's type decides.
    streamed = anthropic.APIStatusError(
        "denied",
        response=httpx2.Response(200, request=_request()),
        body={"type": "error", "error": {"type": "permission_error", "message": "no"}},
    )
    assert classify(streamed) is ErrorKind.AUTH_ERROR


class UnknownError(Exception):
    """An exception the router knows nothing about."""


class ConfigError(Exception):
    """A user's own configuration error, classified with a ``kind`` attribute."""

    kind = "auth_error"


def test_unknown_exceptions_stay_evidence_unless_classified(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def unknown(text: str) -> str:
        raise UnknownError("a bug in the path")

    def misconfigured(text: str) -> str:
        raise ConfigError("LOCAL_MODEL_URL is not set")

    assert classify(UnknownError()) is ErrorKind.EXCEPTION
    assert classify(ConfigError()) is ErrorKind.AUTH_ERROR
    caplog.set_level(logging.ERROR)
    mono = Clock(0.0)
    with Router(
        [Path(unknown, name="unknown"), Path(misconfigured, name="misconfigured")],
        success_fn=bool,
        task="t",
        store="memory://",
        fallback=Path(regex, name="regex"),
        learning=Learning(seed=1),
        resilience=Resilience(
            breaker=CircuitBreaker(failure_threshold=5, reset_timeout_s=RESET_S, clock=mono)
        ),
        persistence=Persistence(durability="sync"),
    ) as router:
        assert router.run(text="x") == "regex"
        kinds = {r.path: r.kind for r in rows(router)}
        # Both positions: "unknown" ran first, or after "misconfigured" failed.
        post = {
            p.path: (p.n + p.after_failure.n, p.failures + p.after_failure.failures)
            for p in router.posteriors()
        }
        health = router.health()
    assert kinds == {"unknown": "exception", "misconfigured": "auth_error", "regex": None}
    assert post["unknown"] == (1, 1)  # an unknown exception is evidence against the path
    assert post["misconfigured"] == (0, 0)  # a classified one is not
    assert health == {"unknown": "closed", "misconfigured": "open", "regex": "none"}
    (line,) = auth_lines(caplog)
    assert "path 'misconfigured'" in line.getMessage()
    assert "check the API key or token the path uses" in line.getMessage()


def test_breaker_trip_opens_now_and_keeps_an_open_timer() -> None:
    mono = Clock(0.0)
    breaker = CircuitBreaker(failure_threshold=5, reset_timeout_s=10.0, clock=mono, name="p")
    changes: list[tuple[str, str]] = []
    breaker.on_change(lambda name, old, new: changes.append((old.value, new.value)))
    breaker.trip("auth_error: no API key")
    assert breaker.state == "open" and not breaker.allow()
    mono.now = 5.0
    breaker.trip("again")  # already open: the timer is not extended
    mono.now = 10.0
    assert breaker.allow()  # half-open, one probe
    breaker.trip("probe refused")
    assert breaker.state == "open"
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "open")]


def test_a_batch_of_outcomes_that_are_no_evidence_is_still_written(
    sql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Every attempt refused (no evidence, so no path_stats increments, no spend of a
    # first attempt): the batch's upserts have no parameters. The store wrote nothing and
    # kept failing, so the outcomes were lost at close.
    def misconfigured(text: str) -> str:
        raise ConfigError("LOCAL_MODEL_URL is not set")

    caplog.set_level(logging.WARNING)
    with Router(
        [Path(misconfigured, name="a", breaker=None), Path(misconfigured, name="b", breaker=None)],
        success_fn=bool,
        task="t",
        store=sql_url,
        learning=Learning(seed=1),
    ) as router:
        for _ in range(3):
            with contextlib.suppress(AllPathsFailed):
                router.run(text="x")
        written = rows(router)
    assert (
        sorted((o.path, o.kind) for o in written)
        == [("a", "auth_error")] * 3 + [("b", "auth_error")] * 3
    )
    assert not [m for m in caplog.messages if "store write failed" in m or "unwritten" in m]
    store = open_store(sql_url)
    try:
        assert len(store.outcomes("t")) == 6
    finally:
        store.close()
