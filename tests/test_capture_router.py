"""The router meters the SDK calls of each attempt (Observability(capture_usage=True)): the real
openai and anthropic SDKs against FakeProvider."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from typing import Any

import openai
import pytest

from adaptive_router import (
    ConfigurationError,
    Observability,
    Outcome,
    Path,
    Persistence,
    Resilience,
    Result,
    Router,
    Usage,
)
from adaptive_router.metering import capture
from adaptive_router.metering.prices import Pricer
from adaptive_router.providers import openai_path
from adaptive_router.resilience import RetryPolicy
from adaptive_router.stores import open_store
from adaptive_router.testing import FakeProvider, reply, respond

pytestmark = pytest.mark.usefixtures("capture_uninstalled")

GPT = "gpt-4o"
MINI = "gpt-4o-mini"
CLAUDE = "claude-test-model"
CLAUDE_PRICE = (3.0, 15.0)  # USD per million input / output tokens (an override)
MESSAGES = [{"role": "user", "content": "Extract: order 7"}]


def router(
    paths: list[Any], outcomes: list[Outcome], capture_usage: Any = True, **kw: Any
) -> Router:
    kw.setdefault("resilience", Resilience(timeout=5.0))
    return Router(
        paths,
        lambda r: r is not None,
        task="capture",
        store="memory://",
        **kw,
        observability=Observability(
            on_outcome=outcomes.append,
            prices={CLAUDE: CLAUDE_PRICE},
            capture_usage=capture_usage,
        ),
    )


def tokens(o: Outcome) -> tuple[int | None, int | None]:
    return o.input_tokens, o.output_tokens


def gpt_cost(inp: int, out: int) -> float:
    cost = Pricer().cost(GPT, inp, out, cache_read_tokens=0, cache_write_tokens=0)
    assert cost is not None and cost > 0
    return cost


def claude_cost(inp: int, out: int) -> float:
    return (inp * CLAUDE_PRICE[0] + out * CLAUDE_PRICE[1]) / 1_000_000


# -- plain functions -------------------------------------------------------------------------
def test_plain_sync_functions_of_the_three_apis_get_tokens_and_cost(fake: FakeProvider) -> None:
    oai, ant = fake.openai_client(), fake.anthropic_client()
    fake.script(GPT, [reply("a", input_tokens=11, output_tokens=3)])
    fake.script(GPT, [reply("b", input_tokens=17, output_tokens=4)])
    fake.script(CLAUDE, [reply("c", input_tokens=20, output_tokens=5)])

    def chat() -> str | None:
        return oai.chat.completions.create(model=GPT, messages=MESSAGES).choices[0].message.content  # type: ignore[arg-type]

    def responses() -> str:
        return oai.responses.create(model=GPT, input="hi").output_text

    def messages() -> str:
        msg = ant.messages.create(model=CLAUDE, max_tokens=64, messages=MESSAGES)  # type: ignore[arg-type]
        return msg.content[0].text  # type: ignore[union-attr]

    seen: list[Outcome] = []
    for fn in (chat, responses, messages):
        assert router([fn], seen).run() in ("a", "b", "c")
    assert [tokens(o) for o in seen] == [(11, 3), (17, 4), (20, 5)]
    assert seen[0].cost_usd == pytest.approx(gpt_cost(11, 3))
    assert seen[1].cost_usd == pytest.approx(gpt_cost(17, 4))
    assert seen[2].cost_usd == pytest.approx(claude_cost(20, 5))


def test_plain_async_functions_of_the_three_apis_get_tokens_and_cost(fake: FakeProvider) -> None:
    oai, ant = fake.async_openai_client(), fake.async_anthropic_client()
    fake.script(GPT, [reply("a", input_tokens=12, output_tokens=3)])
    fake.script(GPT, [reply("b", input_tokens=18, output_tokens=4)])
    fake.script(CLAUDE, [reply("c", input_tokens=21, output_tokens=5)])

    async def chat() -> Any:
        return (await oai.chat.completions.create(model=GPT, messages=MESSAGES)).id  # type: ignore[arg-type]

    async def responses() -> Any:
        return (await oai.responses.create(model=GPT, input="hi")).id

    async def messages() -> Any:
        return (await ant.messages.create(model=CLAUDE, max_tokens=64, messages=MESSAGES)).id  # type: ignore[arg-type]

    seen: list[Outcome] = []

    async def main() -> None:
        for fn in (chat, responses, messages):
            await router([fn], seen).arun()

    asyncio.run(main())
    assert [tokens(o) for o in seen] == [(12, 3), (18, 4), (21, 5)]
    assert seen[0].cost_usd == pytest.approx(gpt_cost(12, 3))
    assert seen[1].cost_usd == pytest.approx(gpt_cost(18, 4))
    assert seen[2].cost_usd == pytest.approx(claude_cost(21, 5))


def test_sync_function_under_arun_runs_in_a_worker_thread_and_is_metered(
    fake: FakeProvider,
) -> None:
    oai = fake.openai_client()
    fake.script(GPT, [reply("a", input_tokens=9, output_tokens=2)])

    def chat() -> Any:
        assert threading.current_thread() is not threading.main_thread()
        return oai.chat.completions.create(model=GPT, messages=MESSAGES).id  # type: ignore[arg-type]

    seen: list[Outcome] = []
    asyncio.run(router([chat], seen).arun())
    assert tokens(seen[0]) == (9, 2)


def test_two_calls_of_two_models_in_one_attempt_are_summed_each_at_its_price(
    fake: FakeProvider,
) -> None:
    oai, ant = fake.openai_client(), fake.anthropic_client()
    fake.script(GPT, [reply("a", input_tokens=100, output_tokens=10)])
    fake.script(CLAUDE, [reply("b", input_tokens=200, output_tokens=20)])

    def two() -> str:
        oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        ant.messages.create(model=CLAUDE, max_tokens=64, messages=MESSAGES)  # type: ignore[arg-type]
        return "ok"

    seen: list[Outcome] = []
    router([Path(two, model=MINI)], seen).run()
    assert tokens(seen[0]) == (300, 30)
    # Each call at its own model, not the path's gpt-4o-mini.
    assert seen[0].cost_usd == pytest.approx(gpt_cost(100, 10) + claude_cost(200, 20))


def test_calls_of_a_retried_attempt_are_all_billed(fake: FakeProvider) -> None:
    oai = fake.openai_client()
    fake.script(GPT, [reply("a", input_tokens=5, output_tokens=1)] * 2)
    tries = iter([True, False])

    def flaky() -> str:
        oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        if next(tries):
            raise ConnectionError("dropped after the call")
        return "ok"

    seen: list[Outcome] = []
    retry = RetryPolicy(attempts=2, sleep=lambda s: None)
    router([Path(flaky, retry=retry)], seen).run()
    [o] = seen
    assert o.retries == 1 and tokens(o) == (10, 2)
    assert o.cost_usd == pytest.approx(2 * gpt_cost(5, 1))


def test_a_stream_without_usage_is_unknown_never_zero(fake: FakeProvider) -> None:
    oai = fake.openai_client()
    fake.default(GPT, reply("streamed text", input_tokens=8, output_tokens=6))

    def streamed() -> str:
        stream = oai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        return "".join(c.choices[0].delta.content or "" for c in stream)

    seen: list[Outcome] = []
    r = router([streamed], seen)
    assert r.run() == "streamed text"
    assert tokens(seen[0]) == (None, None) and seen[0].cost_usd is None


def test_one_call_known_one_unknown_records_the_known_part_and_cost_unknown(
    fake: FakeProvider,
) -> None:
    oai = fake.openai_client()
    fake.default(GPT, reply("x", input_tokens=8, output_tokens=6))

    def mixed() -> str:
        oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        list(oai.chat.completions.create(model=GPT, messages=MESSAGES, stream=True))  # type: ignore[arg-type]
        return "ok"

    seen: list[Outcome] = []
    router([mixed], seen).run()
    assert tokens(seen[0]) == (8, 6)
    assert seen[0].cost_usd is None


def test_the_usage_a_path_reports_wins_over_its_captured_calls(fake: FakeProvider) -> None:
    oai = fake.openai_client()
    fake.script(GPT, [reply("x", input_tokens=8, output_tokens=6)])

    def reports() -> Result:
        oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        return Result("ok", Usage(input_tokens=1, output_tokens=2, cost_usd=0.5))

    seen: list[Outcome] = []
    router([reports], seen).run()
    assert (tokens(seen[0]), seen[0].cost_usd) == ((1, 2), 0.5)


def test_a_result_returned_for_its_metadata_alone_keeps_its_calls_metered(
    fake: FakeProvider,
) -> None:
    # Result(value) carries an empty Usage(): it was taken for the path's own report, so
    # the attempt's metered calls were dropped and its cost recorded as unknown.
    oai = fake.openai_client()
    fake.script(GPT, [reply("x", input_tokens=8, output_tokens=6)])

    def tagged() -> Result:
        oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        return Result("ok", metadata={"source": "cache-miss"})

    seen: list[Outcome] = []
    assert router([tagged], seen).run() == "ok"
    assert tokens(seen[0]) == (8, 6)
    assert seen[0].cost_usd == pytest.approx(gpt_cost(8, 6))
    assert seen[0].metadata == {"source": "cache-miss"}


# -- attribution -----------------------------------------------------------------------------
def counted(n: int) -> Any:
    """A step whose token counts are read from the prompt, so each request is its own."""
    return respond(lambda r: reply("x", input_tokens=int(r.prompt), output_tokens=n))


def test_eight_threads_each_get_exactly_their_own_usage(fake: FakeProvider) -> None:
    oai = fake.openai_client()
    fake.default(GPT, counted(3))

    def call(n: int) -> int:
        oai.chat.completions.create(model=GPT, messages=[{"role": "user", "content": str(n)}])
        return n

    seen: list[Outcome] = []
    r = router([call], seen)
    barrier = threading.Barrier(8)

    def worker(t: int) -> None:
        barrier.wait()
        for i in range(10):
            n = 1000 + t * 100 + i
            assert r.run(n) == n

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # Each request's tokens are its own argument: a call counted into another thread's
    # attempt (or twice, or not at all) would change this multiset.
    assert len(seen) == 80
    assert sorted(o.input_tokens or 0 for o in seen) == sorted(
        1000 + t * 100 + i for t in range(8) for i in range(10)
    )
    assert all(o.output_tokens == 3 for o in seen)


def test_fifty_concurrent_aruns_each_get_exactly_their_own_usage(fake: FakeProvider) -> None:
    oai = fake.async_openai_client()
    fake.default(GPT, counted(4))
    seen: list[Outcome] = []
    per_request: dict[str, int] = {}

    async def call(n: int) -> int:
        await asyncio.sleep(0)  # interleave the requests
        await oai.chat.completions.create(model=GPT, messages=[{"role": "user", "content": str(n)}])
        return n

    r = router([call], seen)

    async def one(n: int) -> None:
        assert await r.arun(n) == n

    async def main() -> None:
        await asyncio.gather(*(one(2000 + i) for i in range(50)))

    asyncio.run(main())
    for o in seen:
        per_request[o.request_id] = o.input_tokens or 0
    assert len(seen) == 50
    assert sorted(per_request.values()) == [2000 + i for i in range(50)]
    assert all(o.output_tokens == 4 for o in seen)


def test_a_provider_path_is_counted_once(fake: FakeProvider) -> None:
    fake.script(GPT, [reply("order 7", input_tokens=40, output_tokens=9)])
    path = openai_path(GPT, "Extract: {text}", client=fake.openai_client(), timeout=2.0)
    seen: list[Outcome] = []
    assert router([path], seen).run(text="order 7") == "order 7"
    assert tokens(seen[0]) == (40, 9)
    assert seen[0].cost_usd == pytest.approx(gpt_cost(40, 9))
    # The path reads the usage itself and makes its SDK call under capture.suppress():
    # an enclosing scope (a plain function calling a provider path) sees nothing of it.
    fake.script(GPT, [reply("order 8", input_tokens=41, output_tokens=9)])
    with capture.scope() as got:
        result = path.fn(text="order 8")
    assert result.usage.input_tokens == 41 and got.calls == []


def test_capture_usage_false_records_none(fake: FakeProvider) -> None:
    oai = fake.openai_client()
    fake.script(GPT, [reply("a", input_tokens=11, output_tokens=3)])

    def chat() -> Any:
        return oai.chat.completions.create(model=GPT, messages=MESSAGES).id  # type: ignore[arg-type]

    seen: list[Outcome] = []
    router([chat], seen, capture_usage=False).run()
    assert tokens(seen[0]) == (None, None) and seen[0].cost_usd is None
    assert not capture.installed()


def test_capture_usage_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError, match=r"capture_usage must be True, False or .inc"):
        router([lambda: 1], [], capture_usage="yes")


def test_a_call_outside_any_attempt_is_untouched(fake: FakeProvider) -> None:
    oai = fake.openai_client()
    fake.default(GPT, reply("a", input_tokens=11, output_tokens=3))
    seen: list[Outcome] = []
    router([lambda: "no call"], seen)  # installs the hooks
    assert capture.installed()
    response = oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
    assert type(response) is openai.types.chat.ChatCompletion
    assert response.usage is not None and response.usage.prompt_tokens == 11
    assert capture.current_scope() is None and seen == []


# -- unknown stays unknown -------------------------------------------------------------------
def test_stats_and_costs_show_unknown_tokens_as_none_not_zero(
    fake: FakeProvider, store_url: str
) -> None:
    oai = fake.openai_client()
    fake.default(GPT, reply("x", input_tokens=8, output_tokens=6))

    def plain() -> str:
        return "no SDK call"

    def known() -> str:
        oai.chat.completions.create(model=GPT, messages=MESSAGES)  # type: ignore[arg-type]
        return "ok"

    store = open_store(store_url)

    routers: list[Router] = []

    def one(fn: Any, name: str) -> Router:
        routers.append(
            Router(
                [Path(fn, name=name)],
                bool,
                task="unknown",
                store=store,
                persistence=Persistence(durability="sync"),
            )
        )
        return routers[-1]

    try:
        one(plain, "plain").run()
        one(plain, "plain").run()
        r = one(known, "known")
        r.run()
        stats = {s.path: s for s in r.stats()}
        assert (stats["plain"].input_tokens, stats["plain"].output_tokens) == (None, None)
        assert (stats["known"].input_tokens, stats["known"].output_tokens) == (8, 6)
        report = r.costs()
        by_path = {p.path: p for p in report.paths}
        assert (by_path["plain"].input_tokens, by_path["plain"].output_tokens) == (None, None)
        assert (by_path["known"].input_tokens, by_path["known"].output_tokens) == (8, 6)
        assert (report.input_tokens, report.output_tokens) == (8, 6)
    finally:
        for router_ in routers:
            router_.close()
        store.close()


def test_an_async_function_under_run_is_metered(fake: FakeProvider) -> None:
    fake.script(GPT, [reply("a", input_tokens=13, output_tokens=2)])

    async def chat() -> Any:
        async with fake.async_openai_client() as oai:
            return (await oai.chat.completions.create(model=GPT, messages=MESSAGES)).id  # type: ignore[arg-type]

    seen: list[Outcome] = []
    router([chat], seen).run()  # asyncio.run in the caller's context: the scope follows
    assert tokens(seen[0]) == (13, 2)


def test_a_router_works_when_an_sdk_cannot_be_imported() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["openai"] = None  # makes `import openai` fail
        from adaptive_router import Router
        from adaptive_router.metering import capture
        r = Router([lambda: 1], bool, task="t", store="memory://")
        assert r.run() == 1 and capture.installed()
        import anthropic._base_client as base
        assert hasattr(base.SyncAPIClient.request, "__wrapped__")  # anthropic is metered
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_no_scope_before_an_sdk_is_imported_then_metered_from_the_next_attempt() -> None:
    """Until openai or anthropic is imported nothing can be metered, so attempts open no
    capture scope (and pay nothing for it); an SDK first imported inside an attempt is
    hooked on import and metered from the next attempt on (the first stays unknown)."""
    code = f"""
import sys
from adaptive_router import Observability, Resilience, Router
from adaptive_router.metering import capture
from adaptive_router.testing import FakeProvider, reply
seen = []
with FakeProvider() as fake:
    fake.script({GPT!r}, [reply("a", input_tokens=11, output_tokens=3)])
    fake.script({GPT!r}, [reply("b", input_tokens=17, output_tokens=4)])

    def ask():
        import openai  # first imported here, inside the attempt
        client = fake.openai_client()
        out = client.chat.completions.create(model={GPT!r}, messages={MESSAGES!r})
        return out.choices[0].message.content

    r = Router([ask], bool, task="t", store="memory://",
               resilience=Resilience(timeout=None),
               observability=Observability(on_outcome=seen.append))
    assert "openai" not in sys.modules and capture.installed() and not capture.hooked()
    assert r.run() == "a" and capture.hooked()
    assert r.run() == "b"
    r.close()
print([(o.input_tokens, o.output_tokens) for o in seen])
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[(None, None), (17, 4)]"
