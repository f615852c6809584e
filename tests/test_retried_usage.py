"""A retried attempt's usage is counted try by try: each try's reported usage (a
``Result``'s, an exception's ``.usage``), else the SDK calls metered during it — never
both, never only the last try's. The real openai SDK against FakeProvider where calls
are metered."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import StepClock

from adaptive_router import (
    AllPathsFailed,
    Budget,
    Learning,
    Objective,
    Observability,
    Outcome,
    Path,
    Resilience,
    Result,
    Router,
    Usage,
)
from adaptive_router.metering.prices import Pricer
from adaptive_router.resilience import RetryPolicy
from adaptive_router.testing import FakeProvider, delay, reply
from adaptive_router.validation import OutputValidationError

pytestmark = pytest.mark.usefixtures("capture_uninstalled")

GPT = "gpt-4o"
MINI = "gpt-4o-mini"
UNPRICED = "no-such-model-anywhere"
MESSAGES = [{"role": "user", "content": "Extract: order 7"}]


class Dropped(Exception):
    """A retryable failure (``server_error``), which may carry what its try consumed."""

    kind = "server_error"

    def __init__(self, usage: Any = None) -> None:
        super().__init__("dropped mid-answer")
        if usage is not None:
            self.usage = usage


class Refused(Exception):
    """Credentials refused (``auth_error``): never retried."""

    kind = "auth_error"


def cost(model: str, inp: int, out: int) -> float:
    got = Pricer().cost(model, inp, out, cache_read_tokens=0, cache_write_tokens=0)
    assert got is not None and got > 0
    return got


def tries(*steps: Callable[[], Any]) -> Callable[[], Any]:
    """A path function whose n-th call runs ``steps[n]``."""
    it = iter(steps)
    return lambda: next(it)()


def atries(*steps: Callable[[], Any]) -> Callable[[], Any]:
    """The async twin of :func:`tries`: each step is a coroutine function."""
    it = iter(steps)

    async def fn() -> Any:
        return await next(it)()

    return fn


def retry(attempts: int = 2, **kw: Any) -> RetryPolicy:
    async def no_wait(seconds: float) -> None:
        return None

    return RetryPolicy(attempts=attempts, sleep=lambda s: None, asleep=no_wait, **kw)


def router(paths: list[Path], seen: list[Outcome], capture_usage: Any = True, **kw: Any) -> Router:
    kw.setdefault("resilience", Resilience(timeout=5.0))
    return Router(
        paths,
        lambda r: r is not None,
        task="retried-usage",
        store="memory://",
        **kw,
        observability=Observability(on_outcome=seen.append, capture_usage=capture_usage),
    )


def raise_(exc: Exception) -> Callable[[], Any]:
    def step() -> Any:
        raise exc

    return step


def usage_of(o: Outcome) -> tuple[Any, ...]:
    return o.input_tokens, o.output_tokens, o.model, o.retries


# -- reported usages ---------------------------------------------------------------------------
@pytest.mark.parametrize("capture_usage", [False, True])
def test_a_failed_trys_reported_usage_is_added_to_the_successful_retrys(
    capture_usage: bool,
) -> None:
    fn = tries(
        raise_(Dropped(Usage(100, 10, model=GPT))),
        lambda: Result("ok", Usage(50, 5)),
    )
    seen: list[Outcome] = []
    with router([Path(fn, name="p", model=MINI, retry=retry())], seen, capture_usage) as r:
        assert r.run() == "ok"
    [o] = seen
    # The final try names no model: the path's serves it, and prices its tokens.
    assert usage_of(o) == (150, 15, MINI, 1)
    assert o.cost_usd == pytest.approx(cost(GPT, 100, 10) + cost(MINI, 50, 5), rel=1e-12)


def test_a_failed_repair_then_a_failure_of_another_kind_still_counts_the_repairs_tokens() -> None:
    # What a provider path raises after its repair failed: the tokens of both requests.
    invalid = OutputValidationError("not JSON", "Sure! Which one?")
    invalid.usage = Usage(120, 30, model=GPT)  # type: ignore[attr-defined]
    fn = tries(raise_(invalid), raise_(TimeoutError("no answer")))
    policy = retry(retry_on={"invalid_output", "timeout"})
    seen: list[Outcome] = []
    with (
        router([Path(fn, name="p", model=GPT, retry=policy)], seen) as r,
        pytest.raises(AllPathsFailed),
    ):
        r.run()
    [o] = seen
    assert (o.kind, *usage_of(o)) == ("timeout", 120, 30, GPT, 1)
    assert o.cost_usd == pytest.approx(cost(GPT, 120, 30), rel=1e-12)


def test_an_auth_error_after_a_retry_keeps_the_first_trys_usage() -> None:
    fn = tries(raise_(Dropped(Usage(100, 10, model=GPT))), raise_(Refused("key revoked")))
    seen: list[Outcome] = []
    path = Path(fn, name="p", model=GPT, retry=retry())
    with router([path], seen) as r, pytest.raises(AllPathsFailed):
        r.run()
    [o] = seen
    # Refused credentials bill nothing themselves; the try before did consume tokens.
    assert (o.kind, *usage_of(o)) == ("auth_error", 100, 10, GPT, 1)
    assert o.cost_usd == pytest.approx(cost(GPT, 100, 10), rel=1e-12)


def test_the_tokens_of_three_tries_are_summed_cache_tokens_too() -> None:
    fn = tries(
        raise_(Dropped(Usage(100, 10, model=GPT, cache_read_tokens=40, cache_write_tokens=0))),
        raise_(Dropped(Usage(cost_usd=0.25))),  # a flat-priced API's try: its cost, no tokens
        lambda: Result("ok", Usage(60, 6, model=MINI, cache_read_tokens=20)),
    )
    seen: list[Outcome] = []
    with router([Path(fn, name="p", model=GPT, retry=retry(3))], seen) as r:
        assert r.run() == "ok"
    [o] = seen
    assert usage_of(o) == (160, 16, MINI, 2)
    assert (o.cache_read_tokens, o.cache_write_tokens) == (60, 0)
    first = Pricer().cost(GPT, 100, 10, cache_read_tokens=40, cache_write_tokens=0)
    last = Pricer().cost(MINI, 60, 6, cache_read_tokens=20, cache_write_tokens=None)
    assert first is not None and last is not None
    assert o.cost_usd == pytest.approx(first + 0.25 + last, rel=1e-12)


@pytest.mark.parametrize("declared", [None, 0.004])
def test_a_try_of_unknown_cost_makes_the_attempts_cost_unknown_never_a_partial_sum(
    declared: float | None,
) -> None:
    fn = tries(
        raise_(Dropped(Usage(100, 10))),  # priced at the path's model: no price known
        lambda: Result("ok", Usage(50, 5, model=GPT)),
    )
    seen: list[Outcome] = []
    path = Path(fn, name="p", model=UNPRICED, retry=retry(), cost_usd=declared)
    with router([path], seen) as r:
        assert r.run() == "ok"
    [o] = seen
    # The tokens known are summed; the cost is the path's declared one (unknown without),
    # not the priced try's alone.
    assert usage_of(o) == (150, 15, GPT, 1)
    assert o.cost_usd == declared


@pytest.mark.parametrize("capture_usage", [False, True])
@pytest.mark.parametrize("declared", [None, 0.125])
@pytest.mark.parametrize("value", ["ok", "bad"])
def test_a_value_returned_without_usage_after_a_reporting_try_makes_the_cost_unknown(
    value: str, declared: float | None, capture_usage: bool
) -> None:
    """A final try that returned a value, reported nothing and made no metered call costs
    what an attempt of that try alone costs (the path's declared cost, else unknown), so
    the attempt takes the declared cost or stays unknown, never the failed try's partial
    sum: a path declaring $0.125 an attempt read $0.00035, its failed try's cost alone."""
    fn = tries(raise_(Dropped(Usage(100, 10, model=GPT))), lambda: value)
    seen: list[Outcome] = []
    path = Path(fn, name="p", model=GPT, retry=retry(), cost_usd=declared)
    with (
        Router(
            [path],
            lambda v: v == "ok",
            task="retried-usage",
            store="memory://",
            resilience=Resilience(timeout=5.0),
            observability=Observability(on_outcome=seen.append, capture_usage=capture_usage),
        ) as r,
        contextlib.suppress(AllPathsFailed),
    ):
        r.run()
    [o] = seen
    assert o.kind == (None if value == "ok" else "rejected")
    assert usage_of(o) == (100, 10, GPT, 1)  # the tokens known are still summed
    assert o.cost_usd == declared


# -- reported usages and metered calls ----------------------------------------------------------
def test_a_metered_try_then_a_reporting_try_are_both_counted(fake: FakeProvider) -> None:
    oai = fake.openai_client()
    fake.script(GPT, [reply("a", input_tokens=30, output_tokens=3)])
    fake.script(GPT, [reply("b", input_tokens=40, output_tokens=4)])

    def metered_then_dropped() -> Any:
        oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        raise Dropped()  # nothing reported: the call it made counts

    def metered_and_reported() -> Any:
        oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        # Its report covers the call it made (40/4): counted once, as reported.
        return Result("ok", Usage(41, 5, model=GPT))

    seen: list[Outcome] = []
    fn = tries(metered_then_dropped, metered_and_reported)
    with router([Path(fn, name="p", model=GPT, retry=retry())], seen) as r:
        assert r.run() == "ok"
    [o] = seen
    assert usage_of(o) == (71, 8, GPT, 1)
    assert o.cost_usd == pytest.approx(cost(GPT, 30, 3) + cost(GPT, 41, 5), rel=1e-12)


def test_a_reporting_try_covers_its_own_calls_only(fake: FakeProvider) -> None:
    oai = fake.openai_client()
    fake.script(GPT, [reply("a", input_tokens=30, output_tokens=3)])
    fake.script(GPT, [reply("b", input_tokens=40, output_tokens=4)])

    def metered_and_reported_then_dropped() -> Any:
        oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        raise Dropped(Usage(100, 10, model=GPT))  # its report covers its call (30/3)

    def metered() -> str:
        oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        return "ok"

    seen: list[Outcome] = []
    fn = tries(metered_and_reported_then_dropped, metered)
    with router([Path(fn, name="p", model=GPT, retry=retry())], seen) as r:
        assert r.run() == "ok"
    [o] = seen
    assert usage_of(o) == (140, 14, GPT, 1)
    assert o.cost_usd == pytest.approx(cost(GPT, 100, 10) + cost(GPT, 40, 4), rel=1e-12)


def test_a_trys_invalid_report_falls_back_to_its_metered_calls(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    oai = fake.openai_client()
    fake.script(GPT, [reply("a", input_tokens=30, output_tokens=3)])
    bad = Usage(100, 10)
    object.__setattr__(bad, "input_tokens", -5)  # past Usage's checks

    def metered_then_dropped_with_a_bad_report() -> Any:
        oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        raise Dropped(bad)

    seen: list[Outcome] = []
    fn = tries(metered_then_dropped_with_a_bad_report, lambda: Result("ok", Usage(50, 5)))
    path = Path(fn, name="p", model=GPT, retry=retry())
    with caplog.at_level(logging.WARNING, logger="adaptive_router"), router([path], seen) as r:
        assert r.run() == "ok"
    [o] = seen
    assert usage_of(o) == (80, 8, GPT, 1)
    assert o.cost_usd == pytest.approx(cost(GPT, 30, 3) + cost(GPT, 50, 5), rel=1e-12)
    assert "reported an invalid usage, recorded as unknown" in caplog.text


def test_arun_counts_every_try_like_run(fake: FakeProvider) -> None:
    oai = fake.async_openai_client()
    fake.script(GPT, [reply("a", input_tokens=30, output_tokens=3)])
    fake.script(GPT, [reply("b", input_tokens=40, output_tokens=4)])
    fake.script(GPT, [reply("c", input_tokens=50, output_tokens=5)])

    async def metered_then_dropped() -> Any:
        await oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        raise Dropped()

    async def metered_and_reported_then_dropped() -> Any:
        await oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        raise Dropped(Usage(100, 10, model=GPT))

    async def metered_and_reported() -> Any:
        await oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        return Result("ok", Usage(51, 6, model=GPT))

    seen: list[Outcome] = []
    fn = atries(metered_then_dropped, metered_and_reported_then_dropped, metered_and_reported)
    with router([Path(fn, name="p", model=GPT, retry=retry(3))], seen) as r:
        assert asyncio.run(r.arun()) == "ok"
    [o] = seen
    assert usage_of(o) == (181, 19, GPT, 2)
    expected = cost(GPT, 30, 3) + cost(GPT, 100, 10) + cost(GPT, 51, 6)
    assert o.cost_usd == pytest.approx(expected, rel=1e-12)


def test_a_timed_out_trys_late_call_is_added_to_the_reporting_retrys_usage(
    fake: FakeProvider,
) -> None:
    """Try 1 times out (its call ends after the attempt settled), try 2 reports its usage:
    the late call still belongs to try 1, which reported nothing, so it is billed."""
    fake.script(GPT, [delay(0.4, reply("late", input_tokens=40, output_tokens=4))])
    client = fake.openai_client(timeout=5.0)

    def slow() -> str:
        return str(client.chat.completions.create(model=GPT, messages=MESSAGES).id)  # type: ignore[arg-type]

    seen: list[Outcome] = []
    fn = tries(slow, lambda: Result("ok", Usage(7, 2, model=GPT)))
    resilience = Resilience(timeout=0.1, retry=retry())
    with router([Path(fn, name="p", model=GPT)], seen, resilience=resilience) as r:
        assert r.run() == "ok"
        [o] = seen
        assert usage_of(o) == (7, 2, GPT, 1)  # when it settled: try 1's call not ended
        deadline = time.monotonic() + 10.0
        while o.input_tokens != 47 and time.monotonic() < deadline:
            time.sleep(0.02)
        [row] = r.store.outcomes("retried-usage")
    assert usage_of(o) == (47, 6, GPT, 1)
    assert (row.input_tokens, row.output_tokens) == (47, 6)
    assert row.cost_usd == pytest.approx(cost(GPT, 40, 4) + cost(GPT, 7, 2), rel=1e-12)


# -- one rule for one try and many ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda: Usage(cost_usd=0.5), None),
        (lambda: Usage(100, 10), None),
        (lambda: Usage(100, 10, model=GPT), None),
        (lambda: Usage(100, None, model=GPT), None),
        (lambda: Usage(100, 10, model=UNPRICED), None),
        (lambda: Usage(), None),
        (lambda: Usage(), "server_error"),
        (lambda: Usage(100, 10, model=GPT), "server_error"),
        (lambda: Usage(), "timeout"),
    ],
)
def test_a_retried_attempt_prices_a_try_as_an_attempt_of_one_try_is_priced(
    make: Callable[[], Usage], kind: str | None
) -> None:
    """The final try's report, after a try that reported nothing, costs what the same
    report costs an attempt that was not retried (build_outcome's pricing)."""

    class Failed(Exception):
        pass

    def final() -> Any:
        if kind is None:
            return Result("ok", make())
        exc = Failed("failed")
        exc.kind = kind  # type: ignore[attr-defined]
        exc.usage = make()  # type: ignore[attr-defined]
        raise exc

    got = []
    for fn, policy in ((final, None), (tries(raise_(Dropped()), final), retry())):
        seen: list[Outcome] = []
        path = Path(fn, name="p", model=MINI, retry=policy, cost_usd=0.125)
        with router([path], seen, capture_usage=False) as r, contextlib.suppress(AllPathsFailed):
            r.run()
        [o] = seen
        got.append((o.kind, o.input_tokens, o.output_tokens, o.cost_usd, o.model))
    assert got[0] == got[1]


# -- the spend target --------------------------------------------------------------------------
def test_the_spend_target_sees_every_trys_cost() -> None:
    # Each request: a try that fails having spent $0.003, a retry that answers for $0.002.
    steps = itertools.cycle(
        [raise_(Dropped(Usage(cost_usd=0.003))), lambda: Result(True, Usage(cost_usd=0.002))]
    )
    clock = StepClock(step=1.0)
    with Router(
        [Path(lambda: next(steps)(), name="p", retry=retry())],
        bool,
        "paced-retries",
        store="memory://",
        objective=Objective(target_usd_per_request=0.01),
        budget=Budget(max_attempts=1),
        learning=Learning(seed=1, clock=clock),
    ) as r:
        for _ in range(10):
            assert r.run() is True
        status = r.spend()
        [post] = r.posteriors()
    assert status.requests == 10
    assert status.spend_usd == pytest.approx(10 * 0.005, rel=1e-12)
    assert status.realized_usd_per_request == pytest.approx(0.005, rel=1e-9)
    assert post.expected_cost_usd == pytest.approx(0.005, rel=1e-9)


# -- the bill ----------------------------------------------------------------------------------
def test_a_late_call_counts_for_its_own_try_only_if_that_try_reported_nothing() -> None:
    from adaptive_router.metering.bill import Bill
    from adaptive_router.metering.capture import CallUsage

    def call(inp: int, out: int) -> CallUsage:
        return CallUsage("openai", "chat", GPT, input_tokens=inp, output_tokens=out)

    rebilled: list[Outcome] = []
    bill = Bill(Pricer(), GPT, rebilled.append)
    with bill:
        bill._add(call(30, 3))  # try 1 (the bill's own scope): reports nothing
    retry_scope = bill.retry()
    with retry_scope:
        retry_scope._add(call(40, 4))  # try 2: covered by its report
    reported = Usage(41, 5, cost_usd=0.01, model=GPT)
    usage = bill.close_tries([None, reported])
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (71, 8)
    assert usage.cost_usd == pytest.approx(cost(GPT, 30, 3) + 0.01, rel=1e-12)
    outcome = Outcome(
        request_id="r",
        task="t",
        path="p",
        attempt=1,
        success=True,
        input_tokens=71,
        output_tokens=8,
        cost_usd=usage.cost_usd,
        model=GPT,
    )
    bill.settled(outcome)
    retry_scope._add(call(500, 50))  # a late call of try 2: its report covers it
    assert rebilled == [] and outcome.input_tokens == 71
    bill._add(call(7, 1))  # a late call of try 1: billed
    assert rebilled == [outcome]
    assert (outcome.input_tokens, outcome.output_tokens) == (78, 9)
    assert outcome.cost_usd == pytest.approx(cost(GPT, 30, 3) + cost(GPT, 7, 1) + 0.01, rel=1e-12)
