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


def test_an_async_routed_function_opens_its_store_off_the_event_loop(
    monkeypatch: Any,
) -> None:
    # The first call creates the Router, which opens its store (blocking I/O: a
    # connection, a schema check); it ran on the event loop's thread, stalling every
    # other coroutine for as long. Record the thread each router opens its store in.
    import threading

    from adaptive_router.router import router as router_module

    opened_in: list[int] = []
    real = router_module._open

    def spy(*args: Any, **kwargs: Any) -> Any:
        opened_in.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(router_module, "_open", spy)

    async def fast(x: int) -> int:
        return x + 1

    @routed(task="adeco-thread", paths=[Path(fast, name="fast")], store="memory://")
    async def slow(x: int) -> int:
        return -1

    async def main() -> tuple[list[int], int]:
        loop_thread = threading.get_ident()
        # Two first calls at once: one Router between them.
        results = await asyncio.gather(slow(1), slow(2))
        return list(results), loop_thread

    results, loop_thread = asyncio.run(main())
    assert results == [2, 3]
    assert len(opened_in) == 1 and opened_in[0] != loop_thread
    assert asyncio.run(slow(5)) == 6 and len(opened_in) == 1
    slow.router_factory().close()


def test_a_routed_function_keeps_its_signature_for_a_type_checker(tmp_path: Any) -> None:
    # routed returned the function's own type, so `router_factory` was an error under
    # mypy, and the Routed protocol now says both: the call as declared, and the factory.
    from mypy import api

    user = tmp_path / "user.py"
    user.write_text(
        "from adaptive_router import Router\n"
        "from adaptive_router.integrations import routed\n\n"
        "@routed(task='t', paths=[str.upper], store='memory://')\n"
        "def summarise(text: str) -> str:\n"
        "    return text[:200]\n\n"
        "out: str = summarise('hello')\n"
        "router: Router = summarise.router_factory()\n"
        "wrong: int = summarise('hello')\n"
        "summarise(3)\n"
    )
    stdout, _, status = api.run(
        ["--strict", "--no-incremental", "--follow-imports=silent", str(user)]
    )
    errors = [line.split(": error: ")[1] for line in stdout.splitlines() if ": error: " in line]
    assert status == 1
    assert errors == [
        'Incompatible types in assignment (expression has type "str", variable has type "int")'
        "  [assignment]",
        'Argument 1 to "__call__" of "Routed" has incompatible type "int"; expected "str"'
        "  [arg-type]",
    ]
