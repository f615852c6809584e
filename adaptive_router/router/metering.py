"""An attempt's usage from the SDK calls captured while it ran (``Router(capture_usage=True)``).

The request loops open a capture :class:`~adaptive_router.capture.Scope` around each
call of a path (``Call.meter``); the calls an attempt made (a retried attempt makes
several, each billed) become one :class:`Usage` by :func:`captured_usage`, used only
when the path reported no usage of its own (a :class:`~adaptive_router.Result`, a
provider path, an exception's ``usage``).
"""

from __future__ import annotations

from adaptive_router.capture import CallUsage, install
from adaptive_router.costs import Pricer
from adaptive_router.outcomes import Usage

__all__ = ["captured_usage", "start_capture"]


def start_capture(capture_usage: object) -> bool:
    """Check ``Router(capture_usage=...)`` and, when True, hook the SDKs (idempotent:
    every router shares the one set of hooks)."""
    if not isinstance(capture_usage, bool):
        raise TypeError(f"capture_usage must be True or False, got {capture_usage!r}")
    if capture_usage:
        install()
    return capture_usage


def _sum(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def captured_usage(calls: list[CallUsage], pricer: Pricer, model: str | None) -> Usage | None:
    """The usage of an attempt's captured ``calls``, or None when it made none.

    Tokens are summed over the calls that reported them (``None`` when none did); the
    cost is each call priced at its own model (``model``, the path's, when the call's is
    unknown), and unknown as soon as one call's usage or price is unknown, so a
    partial sum is never shown as the attempt's cost.
    """
    if not calls:
        return None
    cost: float | None = 0.0
    for c in calls:
        price = (
            pricer.cost(
                c.model or model,
                c.input_tokens,
                c.output_tokens,
                cache_read_tokens=c.cache_read_tokens,
                cache_write_tokens=c.cache_write_tokens,
            )
            if c.known
            else None
        )
        cost = None if price is None or cost is None else cost + price
    models = {c.model for c in calls if c.model}
    return Usage(
        input_tokens=_sum([c.input_tokens for c in calls]),
        output_tokens=_sum([c.output_tokens for c in calls]),
        cost_usd=cost,
        model=models.pop() if len(models) == 1 else model,
        cache_read_tokens=_sum([c.cache_read_tokens for c in calls]),
        cache_write_tokens=_sum([c.cache_write_tokens for c in calls]),
    )
