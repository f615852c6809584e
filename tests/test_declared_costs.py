"""Declared costs: ``Path(cost_usd=...)`` for a path whose calls report no usage (a regex,
a flat-priced API), so cost reports are complete — not lower bounds — once every path's
cost is known; usage the path reports or its metered calls win over the declaration."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from adaptive_router import (
    AllPathsFailed,
    ConfigurationError,
    Learning,
    Path,
    Persistence,
    Reporter,
    Resilience,
    Router,
)
from adaptive_router.cli import app
from adaptive_router.cli.reports import register
from adaptive_router.dashboard.data import parse_window, summary
from adaptive_router.metering import capture
from adaptive_router.metering.prices import Pricer
from adaptive_router.outcomes import ErrorKind, Outcome, Result, Usage
from adaptive_router.stores import open_store
from adaptive_router.testing import FakeProvider, delay, reply

register(app)  # idempotent: a no-op once cli.py registers the commands itself
runner = CliRunner()
T0 = 1_700_000_000.0
MODEL_COST = 0.0021  # what the model path reports per attempt


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def model_path(answers: Iterator[str | None]) -> Path:
    """A path that reports its own cost (a Result), answering from ``answers``."""

    def call(text: str) -> Result:
        return Result(next(answers), Usage(cost_usd=MODEL_COST))

    return Path(call, name="model")


def regex(text: str) -> str:
    return "regex"


def build(
    store: Any, answers: Iterator[str | None], *, declared: float | None, task: str = "t"
) -> Router:
    return Router(
        [model_path(answers)],
        success_fn=lambda v: v is not None,
        task=task,
        store=store,
        fallback=Path(regex, name="regex", cost_usd=declared),
        learning=Learning(seed=1, clock=Clock(T0)),
        persistence=Persistence(durability="sync"),
    )


@pytest.mark.parametrize("bad", [-0.01, math.nan, math.inf, "0", True, [0.0]])
def test_cost_usd_must_be_a_finite_number_at_least_zero(bad: object) -> None:
    with pytest.raises(ConfigurationError, match=r"path 'regex': cost_usd must be a finite"):
        Path(regex, name="regex", cost_usd=bad)  # type: ignore[arg-type]


def test_cost_usd_is_kept_as_a_float() -> None:
    assert Path(regex, cost_usd=0).cost_usd == 0.0
    assert isinstance(Path(regex, cost_usd=0).cost_usd, float)
    assert Path(regex).cost_usd is None


def test_a_regex_fallback_declaring_zero_makes_costs_complete_and_exact(store_url: str) -> None:
    # The model fails twice (rejected, its cost known) and succeeds once; the regex serves
    # the two failures. Without the declaration the regex's attempts are unknown.
    answers = ["ok", None, None]
    store = open_store(store_url)
    for declared, complete in ((None, False), (0.0, True)):
        with build(store, iter(answers), declared=declared, task=f"t-{declared}") as r:
            assert [r.run(text="x") for _ in answers] == ["ok", "regex", "regex"]
            report = r.costs()
        by_path = {p.path: p for p in report.paths}
        assert report.complete is complete
        assert (report.requests, report.attempts) == (3, 5)
        assert by_path["model"].cost_usd == pytest.approx(3 * MODEL_COST, abs=1e-15)
        if complete:
            assert report.unknown_cost_attempts == 0
            assert by_path["regex"].cost_usd == 0.0
            assert report.cost_usd == pytest.approx(3 * MODEL_COST, abs=1e-15)
            assert report.cost_per_1000_requests == pytest.approx(MODEL_COST * 1000, abs=1e-12)
        else:
            assert (report.unknown_cost_attempts, by_path["regex"].cost_usd) == (2, None)
    store.close()


def test_a_declared_cost_is_used_only_when_the_cost_is_otherwise_unknown() -> None:
    """Reported usage wins; an unbilled failure stays $0; a plain value or an exception of
    unknown cost takes the declaration."""
    plan: list[Any] = [
        Result("reported", Usage(cost_usd=0.5)),  # the path's own usage wins
        "plain",  # no usage: the declared cost
        ValueError("bug"),  # an exception of unknown cost: the declared cost
        _status_error(503),  # no billable answer: $0, known
    ]

    def flat_priced_api(text: str) -> Any:
        step = plan.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    with Router(
        [Path(flat_priced_api, name="api", cost_usd=0.002, retry=None, breaker=None)],
        success_fn=bool,
        task="t",
        store="memory://",
        learning=Learning(seed=1),
        persistence=Persistence(durability="sync"),
    ) as r:
        results = []
        for _ in range(4):
            try:
                results.append(r.run(text="x"))
            except AllPathsFailed as exc:
                results.append(exc.attempts[0].kind)
        r.flush()
        rows = sorted(r.store.outcomes("t"), key=_order(results))
        report = r.costs()
    assert results == ["reported", "plain", "exception", "server_error"]
    assert [o.cost_usd for o in rows] == [0.5, 0.002, 0.002, 0.0]
    assert report.complete and report.cost_usd == pytest.approx(0.504, abs=1e-15)


def _status_error(status: int) -> Exception:
    class StatusError(Exception):
        status_code = status

    return StatusError(f"HTTP {status}")


def _order(results: list[str]) -> Any:
    # Outcomes share a timestamp here: order them by what each request returned.
    keys = {"reported": 0, "plain": 1, ErrorKind.EXCEPTION.value: 2, "server_error": 3}

    def key(o: Outcome) -> int:
        if o.success:
            return 0 if o.cost_usd == 0.5 else 1
        return keys[o.kind or ""]

    return key


def test_the_declared_cost_is_the_cost_prior() -> None:
    with Router(
        [Path(regex, name="regex", cost_usd=0.0), Path(regex, name="api", cost_usd=0.004)],
        success_fn=bool,
        task="t",
        store="memory://",
        objective="cost",
        learning=Learning(seed=1),
    ) as r:
        priors = {p.path: p.expected_cost_usd for p in r.posteriors()}
    assert priors == {"regex": 0.0, "api": 0.004}
    # An explicit prior still wins over the declaration.
    explicit = Path(regex, name="api", cost_usd=0.004, expected_cost_usd=0.01)
    with Router(
        [explicit],
        success_fn=bool,
        task="t",
        store="memory://",
        objective="cost",
        learning=Learning(seed=1),
    ) as r:
        (post,) = r.posteriors()
    assert post.expected_cost_usd == 0.01


def test_reported_decisions_take_the_declared_cost(sqlite_url: str) -> None:
    with Router(
        [Path(regex, name="regex", cost_usd=0.0)],
        success_fn=bool,
        task="t",
        store=sqlite_url,
        learning=Learning(seed=1),
        persistence=Persistence(durability="sync"),
    ) as r:
        first, second = r.choose(), r.choose()
        assert r.report(first.request_id, success=True)
        assert r.report(second.request_id, success=True, cost_usd=0.25)  # given: it wins
        report = r.costs()
    assert report.complete and report.cost_usd == 0.25
    # A Reporter in another process knows the declaration when it is told.
    with Router(
        [Path(regex, name="regex", cost_usd=0.0)], success_fn=bool, task="t", store=sqlite_url
    ) as r:
        third = r.choose()
    with Reporter("t", sqlite_url, costs={"regex": 0.0}) as reporter:
        assert reporter.report(third.request_id, success=True)
    with pytest.raises(ConfigurationError, match="costs must map path names"):
        Reporter("t", sqlite_url, costs={"regex": -1.0})


def test_cli_and_dashboard_show_the_spend_as_complete(sqlite_url: str) -> None:
    with build(sqlite_url, iter(["ok", None]), declared=0.0) as r:
        assert [r.run(text="x"), r.run(text="x")] == ["ok", "regex"]
    since = "99999999s"  # the clock is in 2023: a window that reaches it
    result = runner.invoke(app, ["costs", "--db", sqlite_url, "--task", "t", "--since", since])
    assert result.exit_code == 0, result.output
    assert "lower bound" not in " ".join(result.output.split())
    data = json.loads(
        runner.invoke(
            app, ["costs", "--db", sqlite_url, "--task", "t", "--since", since, "--json"]
        ).output
    )
    assert (data["complete"], data["unknown_cost_attempts"]) == (True, 0)
    assert data["cost_usd"] == pytest.approx(2 * MODEL_COST, abs=1e-15)
    store = open_store(sqlite_url)
    try:
        page = summary(store, "t", parse_window("24h", None, T0 + 60))
    finally:
        store.close()
    assert page["costs"]["complete"] is True
    assert page["costs"]["unknown_cost_attempts"] == 0
    assert page["series"]["unknown_cost_attempts"] == 0


# -- a call that ends after its attempt timed out -------------------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as f:
        yield f
    capture.uninstall()


def _wait_for(read: Any, until: Any, timeout: float = 10.0) -> list[Outcome]:
    deadline = time.monotonic() + timeout
    while True:
        got = list(read())
        if until(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


@pytest.mark.parametrize(("model", "priced"), [("gpt-4o", True), ("unpriced-model", False)])
def test_a_late_call_replaces_the_declared_cost_only_with_a_known_one(
    fake: FakeProvider, model: str, priced: bool
) -> None:
    fake.script(model, [delay(0.4, reply("late", input_tokens=40, output_tokens=4))])
    client = fake.openai_client(timeout=5.0)
    messages: Any = [{"role": "user", "content": "x"}]

    def slow() -> str:
        return str(client.chat.completions.create(model=model, messages=messages).id)

    with Router(
        [Path(slow, name="slow", model=model, cost_usd=0.01)],
        bool,
        task="late",
        store="memory://",
        resilience=Resilience(timeout=0.05, retry=None),
        persistence=Persistence(durability="sync"),
    ) as router:
        with pytest.raises(AllPathsFailed) as info:
            router.run()
        assert info.value.attempts[0].cost_usd == 0.01  # unknown so far: the declaration
        (row,) = _wait_for(
            lambda: router.store.outcomes("late"), lambda r: r and r[0].input_tokens is not None
        )
    assert (row.kind, row.input_tokens, row.output_tokens) == ("timeout", 40, 4)
    if priced:
        expected = Pricer().cost(model, 40, 4, cache_read_tokens=0, cache_write_tokens=0)
        assert expected is not None and row.cost_usd == pytest.approx(expected, rel=1e-12)
    else:
        assert row.cost_usd == 0.01  # the late call's cost is unknown: still the declaration
