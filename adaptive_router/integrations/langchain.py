"""LangChain: :func:`as_runnable` wraps a Router as a ``Runnable`` (``langchain-core``, an
optional extra, imported on call)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adaptive_router._imports import needs_extra

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from adaptive_router.router import Router


def as_runnable(
    router: Router, *, unpack: bool = False, name: str | None = None
) -> Runnable[Any, Any]:
    """A LangChain ``Runnable`` that routes each ``invoke``/``ainvoke``/``batch`` call.

    The input is passed to the paths as one positional argument, or — with
    ``unpack=True`` and a dict input — as keyword arguments. Needs ``langchain-core``
    (``pip install adaptive-router[langchain]``).
    """
    with needs_extra("langchain", "as_runnable"):
        from langchain_core.runnables import RunnableLambda

    def call(value: Any) -> Any:
        if unpack and isinstance(value, dict):
            return router.run(**value)
        return router.run(value)

    async def acall(value: Any) -> Any:
        if unpack and isinstance(value, dict):
            return await router.arun(**value)
        return await router.arun(value)

    return RunnableLambda(call, afunc=acall, name=name or f"adaptive-router:{router.task}")
