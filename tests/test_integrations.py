"""LangChain Runnable and the @routed decorator."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.runnables import RunnableLambda

from adaptive_router import Path, Router
from adaptive_router.integrations import as_runnable, routed


def test_a_langchain_chain_invokes_the_router() -> None:
    seen: list[Any] = []

    def upper(text: str) -> str:
        seen.append(text)
        return text.upper()

    with Router([Path(upper, name="upper", timeout=None)], bool, "lc", store="memory://") as router:
        chain = (
            RunnableLambda(lambda x: x.strip())
            | as_runnable(router)
            | RunnableLambda(lambda y: f"<{y}>")
        )
        assert chain.invoke("  hello ") == "<HELLO>"
        assert chain.batch([" a", "b "]) == ["<A>", "<B>"]
        assert asyncio.run(chain.ainvoke(" async ")) == "<ASYNC>"
        rows = router.store.outcomes("lc")
    assert sorted(seen) == ["a", "async", "b", "hello"]
    assert len(rows) == 4 and all(o.success for o in rows)


def test_runnable_can_unpack_dict_inputs() -> None:
    with Router(
        [Path(lambda a, b: a + b, name="add", timeout=None)], bool, "lc2", store="memory://"
    ) as router:
        assert as_runnable(router, unpack=True).invoke({"a": 2, "b": 3}) == 5


def test_routed_decorator_falls_back_to_the_function() -> None:
    calls: list[str] = []

    def flaky(x: int) -> int | None:
        calls.append("flaky")
        return None if x < 0 else x * 10

    @routed(task="deco", paths=[Path(flaky, name="flaky", timeout=None)], store="memory://")
    def compute(x: int) -> int:
        calls.append("fallback")
        return 0

    assert compute(3) == 30
    assert compute(-1) == 0
    assert calls == ["flaky", "flaky", "fallback"]
    router = compute.router_factory()  # type: ignore[attr-defined]
    assert router.task == "deco" and router.fallback.name.endswith("compute")
    assert compute.__name__ == "compute"


def test_routed_async_function() -> None:
    async def fast(x: int) -> int:
        return x + 1

    @routed(task="adeco", paths=[Path(fast, name="fast")], store="memory://")
    async def slow(x: int) -> int:
        return -1

    assert asyncio.run(slow(1)) == 2
