"""Cost reports from outcome rows, the pre-launch estimate, and ``adaptive-router costs``."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from typer.testing import CliRunner

from adaptive_router import AllPathsFailed, Learning, Outcome, Path, Persistence, Router
from adaptive_router.cli import app
from adaptive_router.cli.reports import register
from adaptive_router.metering.prices import Pricer
from adaptive_router.outcomes import Result, Usage
from adaptive_router.reports import PathSpec, cost_report, cost_reports, estimate_cost_per_1000
from adaptive_router.resilience import RetryPolicy
from adaptive_router.stores import open_store

register(app)  # idempotent: a no-op once cli.py registers the commands itself
runner = CliRunner()

T0 = 1_700_000_000.0
A_COST = 0.0075  # 1000 in, 500 out at $2.50 / $10 per million
B_COST = 0.0105  # 1000 in, 500 out at $3 / $15 per million


def o(
    rid: str,
    attempt: int,
    path: str,
    ok: bool,
    cost: float | None,
    *,
    tokens: tuple[int, int] | None = (1000, 500),
    kind: str | None = None,
    retries: int = 0,
    at: float = T0,
    task: str = "t",
) -> Outcome:
    return Outcome(
        request_id=rid,
        task=task,
        path=path,
        attempt=attempt,
        success=ok,
        kind=None if ok else (kind or "rejected"),
        latency_ms=10.0,
        input_tokens=tokens[0] if tokens else None,
        output_tokens=tokens[1] if tokens else None,
        cost_usd=cost,
        created_at=at,
        retries=retries,
    )


SCRIPT = [
    o("r1", 1, "a", True, A_COST, at=T0 + 1),
    o("r2", 1, "a", False, A_COST, at=T0 + 2),
    o("r2", 2, "b", True, B_COST, at=T0 + 2),
    o("r3", 1, "a", False, None, tokens=None, kind="timeout", retries=2, at=T0 + 3),
    o("r3", 2, "b", False, B_COST, at=T0 + 3),
    o("r3", 3, "fb", True, None, tokens=None, at=T0 + 3),
    o("r4", 1, "b", True, B_COST, at=T0 + 4),
    # Outside the window or another task: never counted.
    o("old", 1, "a", True, 9.0, at=T0 - 1),
    o("late", 1, "a", True, 9.0, at=T0 + 100),
    o("x", 1, "a", True, 9.0, at=T0 + 2, task="other"),
]


def test_cost_report_hand_computed(store_url: str) -> None:
    store = open_store(store_url)
    try:
        store.write(SCRIPT, None)
        rep = cost_report(store, "t", T0, T0 + 100)
        assert cost_report(store, "t", T0).requests == 5  # open-ended: "late" counts
        all_tasks = {r.task: r.requests for r in cost_reports(store, T0, T0 + 100)}
    finally:
        store.close()
    assert all_tasks == {"t": 4, "other": 1}
    assert (rep.requests, rep.succeeded_requests, rep.fallback_requests) == (4, 4, 2)
    assert (rep.attempts, rep.fallback_attempts, rep.retries, rep.timeouts) == (7, 3, 2, 1)
    assert (rep.input_tokens, rep.output_tokens) == (5000, 2500)
    # Every attempt's known cost counts, failed and fallback attempts included.
    assert rep.cost_usd == pytest.approx(2 * A_COST + 3 * B_COST)  # 0.0465
    assert (rep.priced_attempts, rep.unknown_cost_attempts, rep.complete) == (5, 2, False)
    assert rep.cost_per_request == pytest.approx(0.0465 / 4)
    assert rep.cost_per_1000_requests == pytest.approx(11.625)
    assert rep.attempts_per_request == pytest.approx(7 / 4)

    a, b, fb = rep.paths
    assert (a.path, a.requests, a.attempts, a.first_attempts, a.fallback_attempts) == (
        "a",
        3,
        3,
        3,
        0,
    )
    assert (a.successes, a.retries, a.timeouts, a.unknown_cost_attempts) == (1, 2, 1, 1)
    assert (a.input_tokens, a.output_tokens) == (2000, 1000)
    assert a.cost_usd == pytest.approx(0.015)
    assert a.cost_per_1000_requests == pytest.approx(3.75)  # 0.015 over the task's 4 requests
    assert a.cost_per_attempt == pytest.approx(A_COST)
    assert (b.requests, b.attempts, b.first_attempts, b.fallback_attempts) == (3, 3, 1, 2)
    assert b.cost_usd == pytest.approx(0.0315)
    assert b.cost_per_1000_requests == pytest.approx(7.875)
    assert b.unknown_cost_attempts == 0
    # The fallback's cost is unknown: None, never 0.
    assert (fb.path, fb.attempts, fb.fallback_attempts, fb.cost_usd) == ("fb", 1, 1, None)
    assert fb.cost_per_request is None and fb.unknown_cost_attempts == 1
    # The paths' per-1,000 figures add up to the task's.
    assert a.cost_per_1000_requests + b.cost_per_1000_requests == pytest.approx(11.625)
    data = rep.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["paths"][2]["cost_usd"] is None


def test_empty_window_and_all_unknown() -> None:
    store = open_store("memory://")
    store.write([o("r", 1, "fb", True, None, tokens=None, at=T0)], None)
    empty = cost_report(store, "t", T0 + 1)
    assert (empty.requests, empty.cost_usd, empty.cost_per_request, empty.paths) == (
        0,
        None,
        None,
        (),
    )
    unknown = cost_report(store, "t", T0)
    assert (unknown.requests, unknown.cost_usd, unknown.cost_per_1000_requests) == (1, None, None)
    assert unknown.unknown_cost_attempts == 1


class Script:
    def __init__(self, steps: Iterable[Any]) -> None:
        self.steps = deque(steps)

    def __call__(self) -> Any:
        step = self.steps.popleft()
        if isinstance(step, BaseException):
            raise step
        return step


def gpt4o(inp: int, out: int) -> float:
    return float(calc_price(PriceUsage(input_tokens=inp, output_tokens=out), "gpt-4o").total_price)


def fill(url: str, age_s: float = 0.0) -> float:
    """Four requests through a Router (a retry, two fallbacks, one failure), ``age_s``
    seconds ago; returns their spend."""
    main = Script(
        [
            Result("ok", Usage(1000, 500)),
            Result("bad", Usage(800, 400)),  # rejected, billed all the same
            TimeoutError("slow"),  # retried once, then rejected
            Result("bad", Usage(100, 50)),
            Result("bad", Usage(100, 50)),
        ]
    )
    fb = Script(["fb", "fb", "bad"])
    retry = RetryPolicy(attempts=2, initial=1e-6, sleep=lambda _s: None)
    with Router(
        [Path(main, name="gpt", model="gpt-4o", timeout=None, retry=retry)],
        lambda v: v != "bad",
        "costly",
        store=url,
        fallback=Path(fb, name="fb", timeout=None),
        learning=Learning(clock=lambda: time.time() - age_s),
        persistence=Persistence(durability="sync"),
    ) as r:
        for _ in range(3):
            r.run()
        with pytest.raises(AllPathsFailed):
            r.run()
    return gpt4o(1000, 500) + gpt4o(800, 400) + 2 * gpt4o(100, 50)


def test_cost_report_of_a_router_run_counts_retries_and_fallbacks(sqlite_url: str) -> None:
    spent = fill(sqlite_url)
    store = open_store(sqlite_url)
    try:
        rep = cost_report(store, "costly", time.time() - 3600)
    finally:
        store.close()
    assert rep.cost_usd == pytest.approx(spent)
    assert (rep.requests, rep.succeeded_requests, rep.fallback_requests) == (4, 3, 3)
    assert (rep.attempts, rep.fallback_attempts, rep.retries) == (7, 3, 1)
    assert rep.cost_per_1000_requests == pytest.approx(spent / 4 * 1000)
    fb, gpt = rep.paths
    assert gpt.unknown_cost_attempts == 0
    assert (fb.attempts, fb.cost_usd, fb.unknown_cost_attempts) == (3, None, 3)


def test_costs_cli_table_and_json(sql_url: str) -> None:
    spent = fill(sql_url)
    result = runner.invoke(app, ["costs", "--db", sql_url, "--task", "costly", "--since", "1h"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # the caption wraps at the terminal's width
    for text in ("gpt", "fb", "total", "unknown", "1,000 req", "lower bound"):
        assert text in out
    assert f"{spent / 4 * 1000:,.4f}" in out  # cost per 1,000 requests, total line
    result = runner.invoke(
        app, ["costs", "--db", sql_url, "--task", "costly", "--since", "1h", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["cost_usd"] == pytest.approx(spent)
    assert data["cost_per_1000_requests"] == pytest.approx(spent * 250)
    assert (data["requests"], data["attempts"], data["unknown_cost_attempts"]) == (4, 7, 3)
    assert [p["path"] for p in data["paths"]] == ["fb", "gpt"]


def test_costs_cli_errors(sqlite_url: str) -> None:
    fill(sqlite_url)
    unknown = runner.invoke(app, ["costs", "--db", sqlite_url, "--task", "nope"])
    assert unknown.exit_code == 1
    assert "unknown task 'nope'" in unknown.output and "costly" in unknown.output
    bad = runner.invoke(app, ["costs", "--db", sqlite_url, "--task", "costly", "--since", "x"])
    assert bad.exit_code == 2 and "duration" in bad.output
    missing = runner.invoke(app, ["costs", "--db", "/nonexistent/x.db", "--task", "t"])
    assert missing.exit_code == 1


def test_costs_cli_with_nothing_in_the_window(sqlite_url: str) -> None:
    fill(sqlite_url, age_s=7200)
    quiet = runner.invoke(app, ["costs", "--db", sqlite_url, "--task", "costly", "--since", "1h"])
    assert quiet.exit_code == 0 and "no outcomes" in quiet.output
    two_hours = runner.invoke(
        app, ["costs", "--db", sqlite_url, "--task", "costly", "--since", "3h", "--json"]
    )
    assert json.loads(two_hours.output)["requests"] == 4


# -- the pre-launch estimate -------------------------------------------------------------


def test_estimate_hand_computed() -> None:
    est = estimate_cost_per_1000(
        [
            ("a", (2.5, 10.0), 0.9, 1000, 500),  # $0.0075 a call
            ("b", (3.0, 15.0), 0.8, 1000, 500),  # $0.0105 a call
        ],
        fallback=("regex", (0.0, 0.0), 1.0, 0, 0),
    )
    assert est.order == ("a", "b", "regex")
    a, b, regex = est.paths
    assert a.cost_per_call == pytest.approx(0.0075)
    assert b.cost_per_call == pytest.approx(0.0105)
    assert (a.reach_probability, b.reach_probability) == pytest.approx((1.0, 0.1))
    assert regex.reach_probability == pytest.approx(0.02)
    # 0.0075 + 0.1 * 0.0105 = 0.00855 per request.
    assert est.cost_per_request == pytest.approx(0.00855)
    assert est.cost_per_1000_requests == pytest.approx(8.55)
    assert est.attempts_per_request == pytest.approx(1.12)
    assert est.success_rate == pytest.approx(1.0)
    assert b.attempts_per_1000 == pytest.approx(100)
    assert b.cost_per_1000 == pytest.approx(1.05)
    assert a.successes_per_1000 + b.successes_per_1000 + regex.successes_per_1000 == (
        pytest.approx(1000)
    )


def test_estimate_orders() -> None:
    paths = [
        PathSpec("b", (3.0, 15.0), 0.8, 1000, 500),
        PathSpec("a", (2.5, 10.0), 0.9, 1000, 500),
    ]
    given = estimate_cost_per_1000(paths)
    # b first: 0.0105 + 0.2 * 0.0075 = 0.012 per request.
    assert given.order == ("b", "a")
    assert given.cost_per_1000_requests == pytest.approx(12.0)
    assert given.success_rate == pytest.approx(1 - 0.2 * 0.1)
    best = estimate_cost_per_1000(paths, order="best_first")
    assert best.order == ("a", "b")
    assert best.cost_per_1000_requests == pytest.approx(8.55)
    explicit = estimate_cost_per_1000(paths, order=["a", "b"])
    assert explicit.cost_per_1000_requests == pytest.approx(8.55)


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-6"])
def test_estimate_prices_models_with_genai_prices(model: str) -> None:
    est = estimate_cost_per_1000([("m", model, 0.5, 1000, 500), ("m2", model, 0.5, 1000, 500)])
    call = float(
        calc_price(PriceUsage(input_tokens=1000, output_tokens=500), model_ref=model).total_price
    )
    assert est.paths[0].cost_per_call == call
    assert est.cost_per_1000_requests == pytest.approx(1000 * call * 1.5)
    # User prices override the table, as they do for the Router.
    own = estimate_cost_per_1000(
        [("m", model, 1.0, 1_000_000, 0)], prices=Pricer({model: (1.0, 2.0)})
    )
    assert own.cost_per_request == pytest.approx(1.0)


def test_estimate_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no price known"):
        estimate_cost_per_1000([("x", "no-such-model-zz", 0.5, 10, 10)])
    with pytest.raises(ValueError, match="success_rate"):
        estimate_cost_per_1000([("x", (1.0, 1.0), 1.5, 10, 10)])
    with pytest.raises(ValueError, match="input_tokens"):
        estimate_cost_per_1000([("x", (1.0, 1.0), 0.5, -1, 10)])
    with pytest.raises(ValueError, match="exactly once"):
        estimate_cost_per_1000([("x", (1.0, 1.0), 0.5, 1, 1)], order=["y"])
    with pytest.raises(ValueError, match="empty"):
        estimate_cost_per_1000([])
    with pytest.raises(ValueError, match="finite"):
        estimate_cost_per_1000([("x", (-1.0, 1.0), 0.5, 1, 1)])
    with pytest.raises(ValueError, match="each path must be"):
        estimate_cost_per_1000([("x", (1.0, 1.0))])


# -- failures with no billable answer cost $0, known ---------------------------------------------
class Status(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


@pytest.mark.parametrize(
    ("exc", "kind", "cost"),
    [
        (Status(500), "server_error", 0.0),
        (Status(429), "rate_limited", 0.0),
        (Status(400), "client_error", 0.0),
        (ConnectionRefusedError("refused"), "connection", 0.0),
        (TimeoutError("slow"), "timeout", None),  # the provider may still bill it
    ],
)
def test_failures_without_a_billable_answer_cost_zero(
    exc: Exception, kind: str, cost: float | None
) -> None:
    def call() -> Any:
        raise exc

    def fb() -> Result:
        return Result("ok", Usage(1000, 500))

    with Router(
        [Path(call, name="gpt", model="gpt-4o", retry=None, timeout=None)],
        bool,
        "unbilled",
        store="memory://",
        fallback=Path(fb, name="fb", model="gpt-4o", timeout=None),
        learning=Learning(seed=1),
    ) as r:
        r.run()
        report = r.costs()
        (first, _fb) = sorted(r.store.outcomes("unbilled"), key=lambda x: x.attempt)
    assert (first.kind, first.cost_usd) == (kind, cost)
    assert report.complete is (cost is not None)
    assert report.cost_usd == pytest.approx(gpt4o(1000, 500))


@pytest.mark.parametrize("url_kind", ["memory", "sql"])
def test_unbilled_failures_recorded_with_null_cost_count_as_zero(
    url_kind: str, sqlite_url: str
) -> None:
    # Rows written before such failures were recorded as $0 carry a NULL cost.
    store = open_store("memory://" if url_kind == "memory" else sqlite_url)
    try:
        store.write(
            [
                o("r1", 1, "a", False, None, tokens=None, kind="server_error"),
                o("r1", 2, "a", True, A_COST),
                o("r2", 1, "a", False, None, tokens=None, kind="timeout"),
                o("r2", 2, "b", False, None, tokens=None, kind="rate_limited"),
            ],
            None,
        )
        rep = cost_report(store, "t", T0 - 1)
    finally:
        store.close()
    a, b = rep.paths
    assert (a.priced_attempts, a.unknown_cost_attempts) == (2, 1)
    assert (b.cost_usd, b.unknown_cost_attempts) == (0.0, 0)
    assert rep.cost_usd == pytest.approx(A_COST)


def test_costs_table_names_requests_touched_and_why_costs_are_unknown(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    try:
        store.write(
            [
                o("r1", 1, "a", False, None, kind="rejected"),  # tokens, no price
                o("r1", 2, "b", True, None, tokens=None),  # no usage at all
                o("r2", 1, "a", True, None),
            ],
            None,
        )
    finally:
        store.close()
    since = str(int(time.time() - T0 + 3600)) + "s"
    result = runner.invoke(app, ["costs", "--db", sqlite_url, "--task", "t", "--since", since])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "requests touched" in out
    assert "they add up to more than the total when requests fall back" in out
    assert "2 reported token counts but have no price" in out
    assert "1 reported no usage" in out
    assert "Path(model=" not in out
    data = json.loads(
        runner.invoke(
            app, ["costs", "--db", sqlite_url, "--task", "t", "--since", since, "--json"]
        ).output
    )
    assert (data["unknown_cost_attempts"], data["unpriced_token_attempts"]) == (3, 2)
