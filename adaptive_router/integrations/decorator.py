"""``@routed``: route calls of a function between paths, the function as the fallback."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from adaptive_router.paths import Path
from adaptive_router.resilience.timeouts import to_daemon_thread

if TYPE_CHECKING:
    from adaptive_router.router import Router

__all__ = ["Routed", "routed"]

P = ParamSpec("P")
R_co = TypeVar("R_co", covariant=True)


class Routed(Protocol[P, R_co]):
    """What :func:`routed` makes of a function: called exactly as the function was (its
    parameters and return type, for a type checker too), plus ``router_factory()``."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def router_factory(self) -> Router:
        """The function's Router (created by the first call, or by this one)."""
        ...


def routed(
    *,
    task: str,
    paths: Sequence[Path | Callable[..., Any]],
    success_fn: Callable[[Any], Any] | None = None,
    **router_kwargs: Any,
) -> Callable[[Callable[P, R_co]], Routed[P, R_co]]:
    """Route calls of a function between ``paths``, the function itself as the fallback.

    ::

        @routed(task="summarise", paths=[summarise_gpt4o, summarise_claude],
                store="sqlite:///router.db")
        def summarise(text: str) -> str:      # the always-works fallback
            return text[:200]

        summarise("...")                      # routed; summarise.router_factory() is the Router

    ``success_fn`` defaults to "the result is not None". Other keyword arguments go to
    :class:`Router`. The Router is created on the first call (so importing a module
    opens no database); async functions get an async wrapper using ``arun``, whose first
    call creates the Router in a worker thread, so opening the store never blocks the
    event loop.
    """
    judge = success_fn if success_fn is not None else _not_none

    def decorate(fn: Callable[P, R_co]) -> Routed[P, R_co]:
        lock = threading.Lock()
        holder: list[Router] = []

        def router() -> Router:
            if not holder:
                with lock:
                    if not holder:
                        from adaptive_router.router import Router

                        fallback = Path(fn, name=getattr(fn, "__qualname__", "fallback"))
                        holder.append(
                            Router(list(paths), judge, task, fallback=fallback, **router_kwargs)
                        )
            return holder[0]

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                # Creating the Router opens its store (a connection, a schema check, a
                # migration's stamp read): blocking I/O kept off the caller's event loop.
                r = holder[0] if holder else await to_daemon_thread(router)
                return await r.arun(*args, **kwargs)

            wrapper: Any = awrapper
        else:

            @functools.wraps(fn)
            def swrapper(*args: Any, **kwargs: Any) -> Any:
                return router().run(*args, **kwargs)

            wrapper = swrapper
        # Exposed lazily too: reading it creates the Router.
        wrapper.router_factory = router
        return wrapper  # type: ignore[no-any-return]

    return decorate


def _not_none(result: Any) -> bool:
    return result is not None
