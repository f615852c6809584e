"""Metering beyond one call: late calls billed into the stored outcome, the columns
metering records (model, cache tokens) in every store, the ``include_usage`` opt-in, and
hooks that cost no SDK import time."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import openai
import pytest

from adaptive_router import (
    AllPathsFailed,
    Objective,
    Observability,
    Path,
    Persistence,
    Resilience,
    Router,
)
from adaptive_router.metering import capture
from adaptive_router.metering.prices import Pricer
from adaptive_router.outcomes import Outcome
from adaptive_router.policies.pacing import SpendStats
from adaptive_router.stores import open_store
from adaptive_router.stores.base import SpendTotals, totals_from_outcomes
from adaptive_router.testing import FakeProvider, delay, reply

pytestmark = pytest.mark.usefixtures("capture_uninstalled")

GPT = "gpt-4o"
CLAUDE = "claude-test-model"
CLAUDE_PRICE = (3.0, 15.0)
MESSAGES = [{"role": "user", "content": "Extract: order 7"}]
TEXT = "The order is 7 widgets, to Berlin."


def gpt_cost(inp: int, out: int) -> float:
    cost = Pricer().cost(GPT, inp, out, cache_read_tokens=0, cache_write_tokens=0)
    assert cost is not None and cost > 0
    return cost


def wait_for(rows: Any, until: Any, timeout: float = 10.0) -> list[Outcome]:
    deadline = time.monotonic() + timeout
    while True:
        got = rows()
        if until(got) or time.monotonic() > deadline:
            return list(got)
        time.sleep(0.02)


# -- late calls --------------------------------------------------------------------------------
def test_a_call_finishing_after_its_attempt_timed_out_is_billed_in_the_store(
    fake: FakeProvider, store_url: str
) -> None:
    fake.script(GPT, [delay(0.4, reply("late", input_tokens=40, output_tokens=4))])
    client = fake.openai_client(timeout=5.0)

    def slow() -> str:
        return str(client.chat.completions.create(model=GPT, messages=MESSAGES).id)  # type: ignore[arg-type]

    with Router(
        [Path(slow, name="slow", model=GPT)],
        bool,
        task="late",
        store=store_url,
        resilience=Resilience(timeout=0.05, retry=None),
        # Written when the attempt ends, before its call does: the row is rewritten.
        persistence=Persistence(durability="sync"),
        objective=Objective(target_usd_per_request=0.01),
    ) as router:
        with pytest.raises(AllPathsFailed) as info:
            router.run()
        (attempt,) = info.value.attempts
        # When the attempt gave up, nothing was known yet: unknown, never 0.
        assert attempt.kind == "timeout"
        rows = wait_for(
            lambda: router.store.outcomes("late"), lambda r: r and r[0].input_tokens is not None
        )
        (row,) = rows
        assert (row.request_id, row.attempt, row.kind) == (attempt.request_id, 1, "timeout")
        assert (row.input_tokens, row.output_tokens, row.model) == (40, 4, GPT)
        assert row.cost_usd == pytest.approx(gpt_cost(40, 4), rel=1e-12)
        report = router.costs()
        assert report.cost_usd == pytest.approx(gpt_cost(40, 4), rel=1e-12)
        assert (report.input_tokens, report.unknown_cost_attempts) == (40, 0)
        # The spend target counts it too: the store's spend sums moved with the row.
        spent = router.store.load_spend("late")  # type: ignore[attr-defined]
        assert spent.spend_usd == pytest.approx(row.cost_usd, rel=1e-12)
        assert spent.requests == 1


def test_a_late_call_adds_to_the_calls_its_attempt_already_counted(fake: FakeProvider) -> None:
    """Retry 1 times out (its call finishes later), retry 2 answers: both are billed."""
    fake.script(
        GPT,
        [
            delay(0.4, reply("late", input_tokens=40, output_tokens=4)),
            reply("fast", input_tokens=7, output_tokens=2),
        ],
    )
    client = fake.openai_client(timeout=5.0)
    seen: list[Outcome] = []

    def call() -> str:
        return str(client.chat.completions.create(model=GPT, messages=MESSAGES).id)  # type: ignore[arg-type]

    from adaptive_router.resilience import RetryPolicy

    policy = RetryPolicy(attempts=2, initial=0.01, max_wait=0.01, rng=1, sleep=lambda s: None)
    with Router(
        [Path(call, name="p", model=GPT)],
        bool,
        task="late2",
        store="memory://",
        resilience=Resilience(timeout=0.1, retry=policy),
        observability=Observability(on_outcome=seen.append),
    ) as router:
        router.run()
        (row,) = wait_for(
            lambda: router.store.outcomes("late2"), lambda r: r and r[0].input_tokens == 47
        )
    assert (row.success, row.retries, row.input_tokens, row.output_tokens) == (True, 1, 47, 6)
    assert row.cost_usd == pytest.approx(gpt_cost(40, 4) + gpt_cost(7, 2), rel=1e-12)
    assert seen[0] is row or seen[0].input_tokens == 47  # the recorded object itself grew


def test_update_usage_rewrites_one_row_in_every_store(store_url: str) -> None:
    store = open_store(store_url)
    try:
        first = Outcome("r1", "t", "p", 1, False, kind="timeout", created_at=1.0)
        other = Outcome("r1", "t", "p", 2, True, input_tokens=3, output_tokens=1, created_at=2.0)
        store.write([first, other], None)
        grown = Outcome(
            "r1",
            "t",
            "p",
            1,
            False,
            kind="timeout",
            input_tokens=40,
            output_tokens=4,
            cost_usd=0.5,
            model=GPT,
            cache_read_tokens=10,
            cache_write_tokens=0,
        )
        assert store.update_usage(grown) is True
        assert store.update_usage(Outcome("nope", "t", "p", 1, False)) is False
        rows = {(o.request_id, o.attempt): o for o in store.outcomes("t")}
        a = rows[("r1", 1)]
        assert (a.input_tokens, a.output_tokens, a.cost_usd, a.model) == (40, 4, 0.5, GPT)
        assert (a.cache_read_tokens, a.cache_write_tokens, a.kind) == (10, 0, "timeout")
        b = rows[("r1", 2)]
        assert (b.input_tokens, b.output_tokens, b.cost_usd, b.model) == (3, 1, None, None)
        # Reports see the rewritten usage (the SQL store reads its hourly rollups here:
        # the window covers whole hours, so the rollups moved by the difference).
        (totals,), requests = store.path_totals("t", 0.0)
        assert totals == totals_from_outcomes(list(rows.values()), None)[0][0]
        assert (totals.input_tokens, totals.output_tokens, totals.cost) == (43, 5, 0.5)
        assert (totals.cache_read_tokens, totals.cache_write_tokens) == (10, 0)
        assert requests == (1, 1, 1)
    finally:
        store.close()


def test_a_late_calls_cost_moves_the_tasks_spend_sums_in_every_store(store_url: str) -> None:
    # update_usage rewrote the row and its rollups but not the spend sums, so a spend
    # target never counted a call that ended after its attempt timed out (the provider
    # bills it). The sums must equal a replay of the rows as they now read.
    half_life = 600.0
    store = open_store(store_url)
    try:
        store.register_half_life("t", half_life)
        first = Outcome("r1", "t", "p", 1, False, kind="timeout", cost_usd=0.25, created_at=100.0)
        later = Outcome("r2", "t", "p", 1, True, cost_usd=0.5, created_at=700.0)
        store.write([first, later], half_life)
        # The router's own object, rewritten in place before update_usage (the memory
        # store holds that very object), as Bill does for a late call.
        first.cost_usd, first.input_tokens = 1.0, 400
        assert store.update_usage(first) is True
        # A second late call, and one making the cost unknown (counted as $0, as a row
        # written with an unknown cost is).
        first.cost_usd = 1.5
        assert store.update_usage(first) is True
        assert isinstance(store, SpendTotals)
        got = store.load_spend("t")
        replay = SpendStats()
        for o in (first, later):
            replay.add(o.cost_usd or 0.0, 1, o.created_at, half_life)
        assert got.spend_usd == pytest.approx(2.0, rel=1e-12)
        assert (got.requests, got.ref_time) == (2, 700.0)
        assert got.spend_w == pytest.approx(replay.spend_w, rel=1e-12)
        assert got.requests_w == pytest.approx(replay.requests_w, rel=1e-12)
        first.cost_usd = None
        assert store.update_usage(first) is True
        got = store.load_spend("t")
        assert got.spend_usd == pytest.approx(0.5, rel=1e-12)
        assert got.spend_w == pytest.approx(0.5, rel=1e-9)  # r2 at the newest time
        # A row not written yet moves nothing: it is written with its new cost.
        assert store.update_usage(Outcome("r3", "t", "p", 1, True, cost_usd=9.0)) is False
        assert store.load_spend("t").spend_usd == pytest.approx(0.5, rel=1e-12)
    finally:
        store.close()


# -- the columns metering records --------------------------------------------------------------
def test_model_and_cache_tokens_are_stored_and_reported(fake: FakeProvider, store_url: str) -> None:
    ant = fake.anthropic_client()
    fake.default(
        CLAUDE, reply("x", input_tokens=1000, output_tokens=10, cached_tokens=600,
                      cache_write_tokens=100),
    )  # fmt: skip

    def cached() -> str:
        ant.messages.create(model=CLAUDE, max_tokens=64, messages=MESSAGES)  # type: ignore[arg-type]
        return "ok"

    def plain() -> str:
        return "no SDK call"

    store = open_store(store_url)
    routers = [
        Router(
            [Path(fn, name=name, model=model)],
            bool,
            task="cols",
            store=store,
            persistence=Persistence(durability="sync"),
            observability=Observability(prices={CLAUDE: CLAUDE_PRICE}),
        )
        for fn, name, model in ((cached, "cached", None), (plain, "plain", "gpt-4o-mini"))
    ]
    try:
        for router in routers:
            for _ in range(3):
                router.run()
        by_path = {o.path: o for o in store.outcomes("cols")}
        c, p = by_path["cached"], by_path["plain"]
        assert (c.model, c.input_tokens, c.cache_read_tokens, c.cache_write_tokens) == (
            CLAUDE,
            1000,
            600,
            100,
        )
        # No call, no usage: the path's model, tokens unknown (None), not 0.
        assert (p.model, p.input_tokens, p.cache_read_tokens) == ("gpt-4o-mini", None, None)
        report = routers[0].costs()
        costs = {q.path: q for q in report.paths}
        assert (costs["cached"].cache_read_tokens, costs["cached"].cache_write_tokens) == (
            1800,
            300,
        )
        assert costs["plain"].cache_read_tokens is None
        assert report.cache_read_tokens == 1800
        assert report.to_dict()["cache_write_tokens"] == 300
    finally:
        for router in routers:
            router.close()
        store.close()


# -- include_usage -----------------------------------------------------------------------------
def stream_texts(client: openai.OpenAI, **kw: Any) -> list[str]:
    """What a user loop indexing ``choices[0]`` reads, chunk by chunk."""
    stream = client.chat.completions.create(model=GPT, messages=MESSAGES, stream=True, **kw)  # type: ignore[call-overload]
    return [chunk.choices[0].delta.content or "" for chunk in stream]


@pytest.mark.parametrize("mode", [True, "include_usage"])
def test_include_usage_is_opt_in_and_hides_its_chunk(fake: FakeProvider, mode: Any) -> None:
    fake.default(GPT, reply(TEXT, input_tokens=8, output_tokens=6))
    client = fake.openai_client()
    seen_chunks: list[list[str]] = []
    outcomes: list[Outcome] = []

    def user_loop() -> str:
        texts = stream_texts(client)
        seen_chunks.append(texts)
        return "".join(texts)

    watch = Observability(capture_usage=mode, on_outcome=outcomes.append)
    with Router([user_loop], bool, task="s", store="memory://", observability=watch) as router:
        assert router.run() == TEXT
    # The same chunks, one by one, as the stream without capture gives.
    capture.uninstall()
    assert seen_chunks == [stream_texts(client)]
    body = fake.requests[0].body
    (o,) = outcomes
    if mode == "include_usage":
        assert body["stream_options"] == {"include_usage": True}
        assert (o.input_tokens, o.output_tokens) == (8, 6)
        assert o.cost_usd == pytest.approx(gpt_cost(8, 6), rel=1e-12)
    else:
        assert "stream_options" not in body
        assert (o.input_tokens, o.output_tokens, o.cost_usd) == (None, None, None)


@pytest.mark.parametrize("where", ["stream_options", "extra_body"])
def test_include_usage_leaves_a_stream_that_asked_itself_alone(
    fake: FakeProvider, where: str
) -> None:
    # Asked for through extra_body, the usage chunk was hidden from the user's loop: the
    # injection looked at the body's stream_options only.
    fake.default(GPT, reply(TEXT, input_tokens=8, output_tokens=6))
    client = fake.openai_client()
    asked = {"include_usage": True}
    kw: dict[str, Any] = (
        {"stream_options": asked}
        if where == "stream_options"
        else {"extra_body": {"stream_options": asked}}
    )
    capture.install()
    with capture.scope(include_usage=True) as got:
        chunks = list(
            client.chat.completions.create(
                model=GPT,
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                **kw,
            )
        )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None  # the user's to see
    assert (got.calls[0].input_tokens, got.calls[0].output_tokens) == (8, 6)
    assert fake.requests[0].body["stream_options"] == asked


def test_include_usage_async_stream(fake: FakeProvider) -> None:
    fake.default(GPT, reply(TEXT, input_tokens=9, output_tokens=6))
    client = fake.async_openai_client()
    capture.install()

    async def main() -> list[str]:
        with capture.scope(include_usage=True) as got:
            stream = await client.chat.completions.create(
                model=GPT,
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
            )
            texts = [chunk.choices[0].delta.content or "" async for chunk in stream]
        assert (got.calls[0].input_tokens, got.calls[0].output_tokens) == (9, 6)
        return texts

    assert "".join(asyncio.run(main())) == TEXT
    assert fake.requests[0].body["stream_options"] == {"include_usage": True}


def test_include_usage_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="include_usage must be True or False"):
        capture.Scope(include_usage="yes")  # type: ignore[arg-type]


# -- no SDK import time ------------------------------------------------------------------------
def test_a_router_imports_no_sdk_and_hooks_one_when_it_is_imported() -> None:
    code = (
        "import sys\n"
        "from adaptive_router import Router\n"
        "from adaptive_router.metering import capture\n"
        "Router([lambda: 1], bool, task='t', store='memory://')\n"
        "assert capture.installed()\n"
        "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules\n"
        "import openai\n"
        "from openai._base_client import SyncAPIClient\n"
        "assert hasattr(vars(SyncAPIClient)['request'], '__wrapped__')\n"
        "capture.uninstall()\n"
        "assert not hasattr(vars(SyncAPIClient)['request'], '__wrapped__')\n"
        "import anthropic\n"  # the pending hook does nothing after uninstall
        "from anthropic._base_client import SyncAPIClient as A\n"
        "assert not hasattr(vars(A)['request'], '__wrapped__')\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_stream_finishing_between_close_and_settled_is_billed() -> None:
    # close() counted the stream, not complete yet; it finished before settled(), which
    # only looked for calls added since, so the outcome stayed unknown for good.
    from adaptive_router.metering.bill import Bill
    from adaptive_router.metering.capture import CallUsage

    rebilled: list[Outcome] = []
    bill = Bill(Pricer(), GPT, rebilled.append)
    with bill:
        stream = CallUsage("openai", "chat", GPT, streamed=True, complete=False)
        bill._add(stream)
    assert bill.close() is not None  # counted, its usage unknown so far
    stream.input_tokens, stream.output_tokens = 100, 40
    bill._finished(stream)  # the reader thread ends the stream now
    outcome = Outcome(request_id="r", task="t", path="p", attempt=1, success=True)
    bill.settled(outcome)
    assert (outcome.input_tokens, outcome.output_tokens) == (100, 40)
    assert outcome.cost_usd == pytest.approx(gpt_cost(100, 40), rel=1e-12)
    assert rebilled == [outcome]
