"""Calling one path for the request loops (``walk`` and ``awalk`` in
:mod:`adaptive_router.router.attempts`): the call's timeout, the worker thread a sync
function runs in under ``arun`` or a timeout, the shared event loop an async path runs
on under ``run``, and the capture scope its SDK calls are metered in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from adaptive_router.metering.capture import Scope
from adaptive_router.paths import Path
from adaptive_router.resilience import acall_with_timeout, call_with_timeout, to_daemon_thread
from adaptive_router.resilience.timeouts import run_coroutine

__all__ = ["acall_path", "call_path"]


def call_path(
    path: Path, timeout_s: float | None, args: Any, kwargs: Any, meter: Scope | None = None
) -> Any:
    """Call ``path`` from a thread without an event loop, enforcing ``timeout_s``, its SDK
    calls metered into ``meter``."""
    if meter is not None:
        with meter:
            return call_path(path, timeout_s, args, kwargs)
    if path.is_async:
        coro = path.fn(*args, **kwargs)
        if timeout_s is not None:
            coro = asyncio.wait_for(coro, timeout_s)
        return _run_coroutine(coro)
    if timeout_s is None:
        return path.fn(*args, **kwargs)
    return call_with_timeout(path.fn, timeout_s, *args, **kwargs)


def acall_path(
    path: Path, timeout_s: float | None, args: Any, kwargs: Any, meter: Scope | None = None
) -> Awaitable[Any]:
    """What to await for ``path`` (its ``afn``, else a sync function in a worker thread),
    enforcing ``timeout_s``, its SDK calls metered into ``meter``."""
    if meter is None and timeout_s is None:
        afn = path.afn or (path.fn if path.is_async else None)
        if afn is not None:
            # The path's own coroutine, awaited by the caller: no frame of ours between.
            return afn(*args, **kwargs)
    return _acall_path(path, timeout_s, args, kwargs, meter)


async def _acall_path(
    path: Path, timeout_s: float | None, args: Any, kwargs: Any, meter: Scope | None
) -> Any:
    if meter is not None:
        with meter:
            return await acall_path(path, timeout_s, args, kwargs)
    afn = path.afn or (path.fn if path.is_async else None)
    if afn is not None:
        if timeout_s is None:
            return await afn(*args, **kwargs)
        return await acall_with_timeout(afn, timeout_s, *args, **kwargs)
    if timeout_s is None:
        return await to_daemon_thread(path.fn, *args, **kwargs)
    return await acall_with_timeout(to_daemon_thread, timeout_s, path.fn, *args, **kwargs)


def _run_coroutine(coro: Any) -> Any:
    # On the shared loop thread, not a new loop per call: an async client's pool belongs
    # to the loop it first ran on.
    return run_coroutine(
        coro, "an async path cannot be run by run() inside an event loop; use arun()"
    )
