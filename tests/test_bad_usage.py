"""Bad usage values: refused where they enter (``Usage``), recorded as unknown when a path
slips one past, refused by every store, and never able to block a batch of good rows."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import reprlib
import uuid
from typing import Any

import numpy as np
import pytest
from conftest import StepClock
from netproxy import CuttableProxy

from adaptive_router import (
    Learning,
    Observability,
    Outcome,
    OutcomesRejected,
    Path,
    Resilience,
    Result,
    Router,
    Usage,
)
from adaptive_router.feedback.reporter import Reporter
from adaptive_router.log_throttle import ThrottledLog
from adaptive_router.observe.metrics import default_registry
from adaptive_router.outcomes import check_amount, check_count
from adaptive_router.providers.base import add_usage
from adaptive_router.router.recorder import Recorder
from adaptive_router.stores import SQLStore, open_store

NAN, INF = float("nan"), float("inf")
TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def rejected_metric(task: str) -> float:
    value = default_registry().get_sample_value(
        "adaptive_router_rejected_outcomes_total", {"task": task}
    )
    return 0.0 if value is None else value


# -- Usage(...) refuses bad values, naming the field --------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "accepts"),
    [
        ("cost_usd", NAN, "a finite number in [0, 1e12] or None"),
        ("cost_usd", INF, "a finite number in [0, 1e12] or None"),
        ("cost_usd", -INF, "a finite number in [0, 1e12] or None"),
        ("cost_usd", -0.01, "a finite number in [0, 1e12] or None"),
        ("cost_usd", "0.005", "a finite number in [0, 1e12] or None"),
        ("cost_usd", True, "a finite number in [0, 1e12] or None"),
        ("cost_usd", np.float64("nan"), "a finite number in [0, 1e12] or None"),
        *[(f, 2.5, "an int in [0, 10**12] or None") for f in TOKENS],
        *[(f, 10.0, "an int in [0, 10**12] or None") for f in TOKENS],
        *[(f, -1, "an int in [0, 10**12] or None") for f in TOKENS],
        *[(f, "10", "an int in [0, 10**12] or None") for f in TOKENS],
        *[(f, False, "an int in [0, 10**12] or None") for f in TOKENS],
        *[(f, NAN, "an int in [0, 10**12] or None") for f in TOKENS],
        # Beyond what a database's 64-bit integer sums (or a float price) can hold.
        *[(f, 2**63, "an int in [0, 10**12] or None") for f in TOKENS],
        *[(f, 10**12 + 1, "an int in [0, 10**12] or None") for f in TOKENS],
        ("cost_usd", 1e13, "a finite number in [0, 1e12] or None"),
        ("cost_usd", 10**400, "a finite number in [0, 1e12] or None"),
        ("model", 4, "a str or None"),
        ("model", "m" * 256, "the limit is 255"),
    ],
)
def test_usage_construction_errors_name_the_field(field: str, value: Any, accepts: str) -> None:
    with pytest.raises(ValueError) as info:
        Usage(**{field: value})
    text = str(info.value)
    assert text.startswith(f"Usage.{field} ")
    assert accepts in text
    if field != "model":
        assert text.endswith(f"got {reprlib.repr(value)}")


def test_usage_keeps_valid_values_and_makes_numpy_ones_plain() -> None:
    u = Usage(np.int64(12), np.int32(3), np.float32(0.5), "gpt-4o", np.uint8(2), 0)
    assert (u.input_tokens, u.output_tokens, u.cost_usd, u.cache_read_tokens) == (12, 3, 0.5, 2)
    assert type(u.input_tokens) is int and type(u.cost_usd) is float
    assert type(Usage(cost_usd=0).cost_usd) is float
    assert Usage() == Usage(None, None, None, None, None, None)


def test_report_and_usage_share_one_validator() -> None:
    import adaptive_router.feedback.reporter as reporting

    assert reporting.check_amount is check_amount and reporting.check_count is check_count
    with Router([Path(lambda: "x", name="main")], bool, "one-validator", store="memory://") as r:
        for kwargs, field in [
            ({"cost_usd": NAN}, "cost_usd"),
            ({"cost_usd": "0.005"}, "cost_usd"),
            ({"input_tokens": 2.5}, "input_tokens"),
            ({"output_tokens": -3}, "output_tokens"),
            ({"latency_ms": INF}, "latency_ms"),
        ]:
            decision = r.choose()
            with pytest.raises(ValueError, match=f"^{field} must be"):
                r.report(decision.request_id, True, **kwargs)
            assert r.report(decision.request_id, True)  # the bad call recorded nothing


# -- a path that returns invalid usage anyway ------------------------------------------


class Unchecked(Usage):
    """A Usage subclass that skips the checks (as a careless wrapper might)."""

    def __post_init__(self) -> None:
        pass


def mutated(**fields: Any) -> Usage:
    u = Usage(input_tokens=10, output_tokens=5)
    for name, value in fields.items():
        object.__setattr__(u, name, value)  # past the frozen dataclass and its checks
    return u


class Duck:
    """Usage-shaped, but no Usage."""

    input_tokens = 10
    output_tokens = -5
    cost_usd = NAN


BAD_USAGES: dict[str, Any] = {
    "subclass_nan_cost": Unchecked(input_tokens=10, output_tokens=5, cost_usd=NAN),
    "subclass_inf_cost": Unchecked(cost_usd=INF),
    "subclass_fractional_tokens": Unchecked(input_tokens=2.5),
    "subclass_string_cost": Unchecked(cost_usd="0.005"),
    "mutated_negative_tokens": mutated(output_tokens=-7),
    "mutated_nan_cost": mutated(cost_usd=NAN),
    "dict": {"cost_usd": 0.01, "input_tokens": 3},
    "duck": Duck(),
}


@pytest.mark.parametrize("how", ["returned", "raised"])
@pytest.mark.parametrize("name", sorted(BAD_USAGES))
def test_a_path_reporting_invalid_usage_is_recorded_with_the_usage_unknown(
    sqlite_url: str, caplog: pytest.LogCaptureFixture, name: str, how: str
) -> None:
    bad = BAD_USAGES[name]
    calls = 0

    def main() -> Any:
        nonlocal calls
        calls += 1
        if how == "raised" and calls % 10 == 0:
            exc = RuntimeError("provider said no")
            exc.usage = bad  # type: ignore[attr-defined]
            raise exc
        if how == "returned" and calls % 10 == 0:
            return Result("bad", bad)  # type: ignore[arg-type]  # what the test is about
        return Result("ok", Usage(input_tokens=10, output_tokens=5, cost_usd=0.001))

    task = f"bad-usage-{name}-{how}"
    caplog.set_level(logging.WARNING, logger="adaptive_router")
    with Router(
        [Path(main, name="main", retry=None)],
        bool,
        task,
        store=sqlite_url,
        fallback=Path(lambda: "fb", name="fb"),
        learning=Learning(seed=1, clock=StepClock()),  # one log window for the whole test
        resilience=Resilience(breaker=None),
        observability=Observability(capture_usage=False),
    ) as router:
        for _ in range(100):
            assert router.run() in ("ok", "bad", "fb")  # never an exception to the caller
        router.flush()
        assert router.rejected_outcomes == 0
        rows = router.store.outcomes(task)
        costs = router.costs()
    mains = [o for o in rows if o.path == "main"]
    assert len(mains) == 100  # every attempt recorded
    unknown = [o for o in mains if o.input_tokens is None]
    dict_like = name in ("dict", "duck")
    if how == "raised" and dict_like:
        # Another library's exception may carry a ``usage`` of its own: ignored, silently.
        assert len(unknown) == 10
        assert not [r for r in caplog.records if "invalid usage" in r.getMessage()]
        return
    assert len(unknown) == 10
    for o in unknown:
        assert (o.output_tokens, o.cache_read_tokens, o.cache_write_tokens) == (None, None, None)
        assert o.cost_usd is None  # unknown, never NaN and never a guess
    warnings = [r for r in caplog.records if "reported an invalid usage" in r.getMessage()]
    # One WARNING per path per window (the test clock stays in one window), then a count
    # at close.
    first = [r for r in warnings if "recorded as unknown" in r.getMessage()]
    assert len(first) == 1 and first[0].levelno == logging.WARNING
    assert first[0].path == "main"  # type: ignore[attr-defined]
    summary = [r for r in warnings if "more times" in r.getMessage()]
    assert [r.count for r in summary] == [9]  # type: ignore[attr-defined]
    if not dict_like:
        field = next(f for f in ("cost_usd", *TOKENS) if f in first[0].getMessage())
        assert f"Usage.{field} must be" in first[0].getMessage()
    else:
        assert "usage must be an adaptive_router.Usage or None" in first[0].getMessage()
    assert costs.cost_usd is not None and math.isfinite(costs.cost_usd)
    assert costs.cost_usd == pytest.approx(0.001 * 90)


# -- the stores refuse bad values themselves ----------------------------------------------


def outcome(i: int, task: str = "t", **fields: Any) -> Outcome:
    base = Outcome(
        request_id=f"r{i:05d}",
        task=task,
        path="a" if i % 2 else "b",
        attempt=1,
        success=i % 3 != 0,
        kind=None if i % 3 != 0 else "rejected",
        latency_ms=1.0 + i % 7,
        input_tokens=100,
        output_tokens=20,
        cost_usd=0.002,
        created_at=1_700_000_000.0 + i,
    )
    return dataclasses.replace(base, **fields)


BAD_ROWS = [
    ("cost_usd", NAN),
    ("cost_usd", INF),
    ("cost_usd", -0.5),
    ("input_tokens", -1),
    ("output_tokens", 2.5),
    ("cache_read_tokens", "3"),
    ("latency_ms", NAN),
    ("score", 1.5),
    ("created_at", INF),
    ("metadata", {"x": NAN}),
    ("model", "m" * 300),
]


@pytest.mark.parametrize(("field", "value"), BAD_ROWS)
def test_every_store_refuses_bad_values_naming_the_field(
    store_url: str, field: str, value: Any
) -> None:
    store = open_store(store_url)
    try:
        bad = outcome(2, **{field: value})
        with pytest.raises(OutcomesRejected) as info:
            store.write([outcome(1), bad, outcome(3)], None)
        assert [o for o, _ in info.value.rejected] == [bad]
        (why,) = [why for _, why in info.value.rejected]
        assert why.startswith(f"{field} must be")
        assert field in str(info.value) and "r00002" in str(info.value)
        assert store.outcomes("t") == []  # nothing of the batch was written
        assert store.load("t") == {}
        assert store.write([outcome(1), outcome(3)], None) == 2
        late = dataclasses.replace(outcome(1), **{field: value})
        if field in ("cost_usd", "input_tokens", "output_tokens", "cache_read_tokens", "model"):
            with pytest.raises(OutcomesRejected, match=field):
                store.update_usage(late)  # a late call's usage rewrite is refused too
        rows = store.outcomes("t")
        assert [o.cost_usd for o in rows] == [0.002, 0.002]
        assert all(math.isfinite(p.cost or 0.0) for p in store.path_totals("t", 0.0)[0])
    finally:
        store.close()


@pytest.mark.parametrize("value", [INF, -1.0, NAN])
def test_postgres_refuses_infinite_negative_and_nan_costs_and_fractional_tokens(
    pg_url: str, value: float
) -> None:
    store = SQLStore(pg_url)
    try:
        for bad in (outcome(1, cost_usd=value), outcome(1, input_tokens=7.5)):
            with pytest.raises(OutcomesRejected):
                store.write([bad, *(outcome(i) for i in range(2, 20))], None)
        assert store.outcomes("t") == []
    finally:
        store.close()


# -- no single row can block a store ---------------------------------------------------


def recorder_on(store_url: str, log: ThrottledLog | None = None) -> Recorder:
    # A writer that waits for flush(): the test decides when the batch is written.
    return Recorder(
        open_store(store_url),
        "one-bad-row",
        None,
        durability="batch",
        clock=lambda: 1_700_000_000.0,
        flush_interval=3600.0,
        refresh_interval=3600.0,
        max_buffer=100_000,
        log=log,
    )


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("cost_usd", NAN, "cost_usd must be a finite number in [0, 1e12] or None, got nan"),
        # sqlite3 raised OverflowError for it, taken for an outage: the batch was retried
        # forever and every later outcome lost at close.
        ("input_tokens", 2**63, "input_tokens must be an int in [0, 10**12] or None, got 92"),
    ],
)
@pytest.mark.parametrize("where", ["recorded", "rewritten_after_recording"])
def test_one_bad_value_among_1000_outcomes_leaves_999_rows_written(
    sql_url: str, caplog: pytest.LogCaptureFixture, where: str, field: str, value: Any, says: str
) -> None:
    """The Done-when case on SQLite and PostgreSQL: the bad row counted and logged with
    its field, the 999 others written at once, the store never called unreachable."""
    caplog.set_level(logging.INFO, logger="adaptive_router")
    rec = recorder_on(sql_url)
    rejected: list[tuple[int, int]] = []
    rec.on_reject = lambda n, total: rejected.append((n, total))
    try:
        batch = [outcome(i, task="one-bad-row") for i in range(1000)]
        bad = batch[617]
        if where == "recorded":
            setattr(bad, field, value)  # refused before it reaches the cache or the buffer
            rec.record(batch)
        else:
            rec.record(batch)
            setattr(bad, field, value)  # as a late usage rewrite of a buffered row would
        assert rec.flush() is True
        assert rec.buffered == 0
        assert rec.rejected == 1 and rejected == [(1, 1)]
        rows = rec.store.outcomes("one-bad-row")
        assert len(rows) == 999
        assert bad.request_id not in {o.request_id for o in rows}
        stats = rec.store.load("one-bad-row")
        assert sum(st.n for st in stats.values()) == 999
        assert all(math.isfinite(st.cost_sum) for ev in stats.values() for st in ev.states())
        for totals in rec.store.path_totals("one-bad-row", 0.0)[0]:
            assert totals.cost is not None and math.isfinite(totals.cost)
        assert rec.flush() is True  # nothing left, nothing retried
        assert len(rec.store.outcomes("one-bad-row")) == 999
    finally:
        rec.close()
        rec.store.close()
    lines = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    text = lines[0].getMessage()
    assert says in text
    assert bad.request_id in text and "path a" in text
    assert lines[0].reason.startswith(field)  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert not [r for r in caplog.records if "store write failed" in r.getMessage()]


def test_a_row_postgres_itself_refuses_is_isolated_by_bisection(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A value that passes the store's own checks but not PostgreSQL (a NUL byte in an
    error text) fails the batch with a driver DataError: bisected down to that row."""
    caplog.set_level(logging.ERROR, logger="adaptive_router")
    rec = recorder_on(pg_url)
    try:
        batch = [outcome(i, task="one-bad-row") for i in range(1000)]
        batch[333].error = "provider said \x00 nothing"
        rec.record(batch)
        assert rec.flush() is True
        assert rec.rejected == 1 and rec.buffered == 0
        rows = rec.store.outcomes("one-bad-row")
        assert len(rows) == 999 and batch[333].request_id not in {o.request_id for o in rows}
        assert sum(st.n for st in rec.store.load("one-bad-row").values()) == 999
    finally:
        rec.close()
        rec.store.close()
    (line,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "NUL" in line.getMessage() and batch[333].request_id in line.getMessage()


def test_a_router_counts_rejected_outcomes_in_its_property_and_metrics(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Through a Router (every store, sync and batch alike): an outcome spoiled after it
    was built (here by an on_outcome hook) is rejected, counted and logged; requests go on
    and the other outcomes are written."""
    task = f"rejected-{uuid.uuid4().hex[:8]}"
    seen = 0

    def spoil(o: Outcome) -> None:
        nonlocal seen
        seen += 1
        if seen in (5, 6):
            o.input_tokens = -1 if seen == 5 else None
            o.cost_usd = NAN if seen == 6 else o.cost_usd

    caplog.set_level(logging.ERROR, logger="adaptive_router")
    with Router(
        [Path(lambda: Result("x", Usage(10, 2, 0.001)), name="main")],
        bool,
        task,
        store=store_url,
        learning=Learning(seed=3),
        observability=Observability(on_outcome=spoil),
    ) as router:
        for _ in range(50):
            assert router.run() == "x"
        router.flush()
        assert router.rejected_outcomes == 2
        assert rejected_metric(task) == 2.0
        assert len(router.store.outcomes(task)) == 48
        assert [p.n for p in router.posteriors()] == [48]
        assert router.costs().cost_usd == pytest.approx(0.048)
        assert math.isfinite(router.posteriors()[0].expected_cost_usd or 0.0)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(messages) == 2, messages
    assert any("input_tokens must be an int in [0, 10**12] or None, got -1" in m for m in messages)
    assert any(
        "cost_usd must be a finite number in [0, 1e12] or None, got nan" in m for m in messages
    )


def test_connection_errors_keep_the_buffer_and_are_not_rejections(pg_url: str) -> None:
    """A store that is down is an outage, never a reason to reject rows."""
    proxy = CuttableProxy("127.0.0.1", 5432)
    store = SQLStore(
        pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
        connect_timeout_s=1,
        statement_timeout_s=2,
    )
    rec = Recorder(
        store,
        "down",
        None,
        durability="batch",
        clock=lambda: 1_700_000_000.0,
        flush_interval=3600.0,
        refresh_interval=3600.0,
        max_buffer=100_000,
    )
    try:
        batch = [outcome(i, task="down") for i in range(10)]
        batch[4].cost_usd = NAN  # rejected once, at record: never retried as an outage
        rec.record(batch)
        assert rec.rejected == 1
        proxy.cut()
        assert rec.flush() is False
        assert rec.buffered == 9 and rec.rejected == 1
        proxy.restore()
        assert rec.flush() is True and rec.buffered == 0
        assert len(store.outcomes("down")) == 9
    finally:
        rec.close()
        store.close()
        proxy.close()


def test_a_reporter_on_a_store_refuses_nothing_valid(sqlite_url: str) -> None:
    with Router([Path(lambda: "x", name="main")], bool, "rep", store=sqlite_url) as router:
        decision = router.choose()
        with Reporter("rep", sqlite_url) as reporter:
            assert reporter.report(decision.request_id, True, cost_usd=0.25, input_tokens=3)
        assert router.costs().cost_usd == 0.25


def test_a_nan_cost_built_inside_a_path_fails_that_attempt_and_blocks_nothing(
    sqlite_url: str,
) -> None:
    """The issue's reproduction: a path builds ``Usage(cost_usd=nan)`` once. The attempt
    fails naming the field (the fallback answers), and all 205 requests are stored,
    before and at close()."""
    calls = 0

    def main() -> Result:
        nonlocal calls
        calls += 1
        return Result("ok", Usage(cost_usd=NAN if calls == 7 else 0.001))

    with Router(
        [Path(main, name="main", retry=None)],
        bool,
        "issue-nan",
        store=sqlite_url,
        fallback=Path(lambda: "fb", name="fb"),
        learning=Learning(seed=2),
        resilience=Resilience(breaker=None),
    ) as router:
        answers = [router.run() for _ in range(205)]
        assert answers.count("fb") == 1 and answers.count("ok") == 204
    store = SQLStore(sqlite_url)
    try:
        rows = store.outcomes("issue-nan")
    finally:
        store.close()
    mains = [o for o in rows if o.path == "main"]
    assert len(mains) == 205 and len({o.request_id for o in rows}) == 205
    (failed,) = [o for o in mains if not o.success]
    assert failed.kind == "exception"
    assert failed.error is not None and "Usage.cost_usd must be a finite number" in failed.error
    assert sum(o.cost_usd or 0.0 for o in rows) == pytest.approx(0.204)


def test_bad_token_counts_from_a_provider_are_recorded_as_unknown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An OpenAI-compatible server that sends a negative and a fractional token count:
    the real SDK hands them over as given; metering (a plain function) and a provider path
    alike record the tokens as unknown, and the request succeeds."""
    from adaptive_router.providers import openai_path
    from adaptive_router.testing import FakeProvider, raw

    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": -5, "completion_tokens": 2.5, "total_tokens": -3},
    }
    seen: list[Outcome] = []
    with FakeProvider() as fake:
        client = fake.openai_client()
        fake.script("gpt-4o", [raw(200, json.dumps(body))] * 2)

        def plain(text: str) -> str | None:
            messages = [{"role": "user", "content": text}]
            answer = client.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
            return answer.choices[0].message.content

        provider = openai_path("gpt-4o", "Say: {text}", client=client, timeout=5.0)
        for path in (Path(plain, name="plain"), provider):
            with Router(
                [path],
                bool,
                f"sdk-{path.name}",
                store="memory://",
                observability=Observability(on_outcome=seen.append),
            ) as router:
                assert router.run("hi") == "ok"
    assert [(o.path, o.success) for o in seen] == [("plain", True), (provider.name, True)]
    for o in seen:
        assert (o.input_tokens, o.output_tokens, o.cost_usd) == (None, None, None)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_rejections_past_the_first_are_summed_up_in_one_line(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The summary's format once put the count first; formatting it raised and the line
    # was lost ("--- Logging error ---").
    caplog.set_level(logging.INFO, logger="adaptive_router")
    log = ThrottledLog(logging.getLogger("adaptive_router.test"), 60.0, lambda: 1_700_000_000.0)
    rec = recorder_on(sqlite_url, log)
    try:
        batch = [outcome(i, task="one-bad-row") for i in range(10)]
        bad = [o for o in batch if o.path == "a"][:3]
        for o in bad:
            o.cost_usd = NAN
        rec.record(batch)
        assert rec.flush() is True
        assert rec.rejected == 3
    finally:
        rec.close()
        rec.store.close()
        log.close()  # the owner's close sums up what the window held back
    lines = [r.getMessage() for r in caplog.records if "rejected" in r.msg]
    assert len(lines) == 2, lines
    assert bad[0].request_id in lines[0]
    assert lines[1] == (
        "the store rejected outcomes of path a (task one-bad-row) for cost_usd: "
        "2 more in the last 60 s"
    )


def test_a_value_the_driver_cannot_bind_is_the_rows_fault_not_an_outage(sqlite_url: str) -> None:
    # Taken for an outage, it was retried with every later batch, which it blocked.
    from sqlalchemy.exc import OperationalError, StatementError

    from adaptive_router.stores.base import is_data_error

    store = open_store(sqlite_url)
    try:
        row = outcome(0, task="bind")
        row.retries = 2**63  # past the row check, as a subclass or a late rewrite could
        with pytest.raises(OverflowError) as raised:
            store.write([row], None)
    finally:
        store.close()
    assert is_data_error(raised.value)
    assert is_data_error(StatementError("bind", "INSERT", {}, OverflowError("too large")))
    assert not is_data_error(OperationalError("INSERT", {}, Exception("database is locked")))
    assert not is_data_error(TimeoutError())


def test_a_repairs_cost_is_known_only_when_every_requests_is() -> None:
    # A provider attempt's requests (the first answer, then a repair) are summed by
    # add_usage: one side's cost unknown was taken as $0, so a partial sum was recorded as
    # the attempt's cost; unknown lets the router price the summed tokens instead.
    first = Usage(input_tokens=10, output_tokens=2, model="m")
    repair = Usage(input_tokens=5, output_tokens=1, cost_usd=0.01, model="m")
    assert add_usage(first, repair) == Usage(15, 3, None, "m")
    assert add_usage(repair, first) == Usage(15, 3, None, "m")
    priced = Usage(input_tokens=10, output_tokens=2, cost_usd=0.02, model="m")
    both = add_usage(priced, repair)
    assert (both.input_tokens, both.output_tokens, both.model) == (15, 3, "m")
    assert both.cost_usd == pytest.approx(0.03)
    assert add_usage(None, repair) is repair
