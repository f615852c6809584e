"""What routing cost, from the recorded outcomes: spend reports per task and path.

Every figure comes from the ``outcomes`` rows (one per attempt), so retries and fallback
attempts are paid for like first attempts. An attempt that got no billable answer (an
error status such as a 5xx or a 429, or a refused connection) cost $0, known. An attempt
whose cost is unknown (no model, a model without a price, no token counts, or a
client-side timeout the provider may still bill) is counted apart and never as $0: the
reported spend is then a lower bound, and the report says by how many attempts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from adaptive_router.stores.base import Store

__all__ = ["CostReport", "PathCost", "cost_report", "cost_reports"]


def _per(value: float | None, count: int, scale: float = 1.0) -> float | None:
    if value is None or count == 0:
        return None
    return value / count * scale


# -- cost report ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathCost:
    """One path's share of a task's spend over a window.

    ``cost_usd`` sums the attempts whose cost is known; it is ``None`` when none is (not
    0: nothing says the calls were free). ``cost_per_request`` and
    ``cost_per_1000_requests`` divide by the *task's* request count, so the paths' figures
    add up to the task's: they say what this path adds to the cost of an average request.
    """

    path: str
    requests: int
    """Requests this path was attempted in (first attempt or fallback): a request that
    fell back counts for each path it touched, so these add up to more than the task's."""
    attempts: int
    first_attempts: int
    fallback_attempts: int
    """Attempts made because an earlier path of the same request failed."""
    successes: int
    retries: int
    """Retries inside this path's attempts (each attempt records how many it needed)."""
    timeouts: int
    input_tokens: int | None
    """Summed over the attempts that reported tokens; None when none did (unknown, not 0)."""
    output_tokens: int | None
    cost_usd: float | None
    priced_attempts: int
    unknown_cost_attempts: int
    task_requests: int
    unpriced_token_attempts: int = 0
    """Of ``unknown_cost_attempts``, those that reported token counts: their model was not
    named or has no price (the others reported no usage at all)."""
    cache_read_tokens: int | None = None
    """Of ``input_tokens``, those served from the prompt cache (None: none reported)."""
    cache_write_tokens: int | None = None
    """Of ``input_tokens``, those written to the prompt cache (None: none reported)."""

    @property
    def cost_per_request(self) -> float | None:
        """This path's spend divided by the task's requests (None if spend is unknown)."""
        return _per(self.cost_usd, self.task_requests)

    @property
    def cost_per_1000_requests(self) -> float | None:
        """This path's spend per 1,000 of the task's requests."""
        return _per(self.cost_usd, self.task_requests, 1000.0)

    @property
    def cost_per_attempt(self) -> float | None:
        """Average cost of a priced attempt of this path."""
        return _per(self.cost_usd, self.priced_attempts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (missing figures are ``None``)."""
        return {
            "path": self.path,
            "requests": self.requests,
            "attempts": self.attempts,
            "first_attempts": self.first_attempts,
            "fallback_attempts": self.fallback_attempts,
            "successes": self.successes,
            "retries": self.retries,
            "timeouts": self.timeouts,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "priced_attempts": self.priced_attempts,
            "unknown_cost_attempts": self.unknown_cost_attempts,
            "unpriced_token_attempts": self.unpriced_token_attempts,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cost_per_request": self.cost_per_request,
            "cost_per_1000_requests": self.cost_per_1000_requests,
        }


@dataclass(frozen=True, slots=True)
class CostReport:
    """A task's spend over ``since <= created_at < until`` (``until`` None: open-ended)."""

    task: str
    since: float
    until: float | None
    requests: int
    """Distinct request ids with at least one recorded attempt."""
    succeeded_requests: int
    fallback_requests: int
    """Requests that needed more than one attempt."""
    attempts: int
    fallback_attempts: int
    retries: int
    timeouts: int
    input_tokens: int | None
    """Summed over the attempts that reported tokens; None when none did (unknown, not 0)."""
    output_tokens: int | None
    cost_usd: float | None
    """Spend of the attempts whose cost is known; None when no attempt's cost is known."""
    priced_attempts: int
    unknown_cost_attempts: int
    paths: tuple[PathCost, ...] = field(default=())
    unpriced_token_attempts: int = 0
    """Of ``unknown_cost_attempts``, those with token counts but no price."""
    cache_read_tokens: int | None = None
    """Of ``input_tokens``, those served from the prompt cache (None: none reported)."""
    cache_write_tokens: int | None = None
    """Of ``input_tokens``, those written to the prompt cache (None: none reported)."""

    @property
    def complete(self) -> bool:
        """True when every attempt's cost is known (the spend is exact, not a lower bound)."""
        return self.unknown_cost_attempts == 0

    @property
    def cost_per_request(self) -> float | None:
        """Spend per request, retries and fallbacks included (None if unknown)."""
        return _per(self.cost_usd, self.requests)

    @property
    def cost_per_1000_requests(self) -> float | None:
        """Spend per 1,000 requests, retries and fallbacks included (None if unknown)."""
        return _per(self.cost_usd, self.requests, 1000.0)

    @property
    def attempts_per_request(self) -> float | None:
        return _per(float(self.attempts), self.requests)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (missing figures are ``None``)."""
        return {
            "task": self.task,
            "since": self.since,
            "until": self.until,
            "requests": self.requests,
            "succeeded_requests": self.succeeded_requests,
            "fallback_requests": self.fallback_requests,
            "attempts": self.attempts,
            "fallback_attempts": self.fallback_attempts,
            "retries": self.retries,
            "timeouts": self.timeouts,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "priced_attempts": self.priced_attempts,
            "unknown_cost_attempts": self.unknown_cost_attempts,
            "unpriced_token_attempts": self.unpriced_token_attempts,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "complete": self.complete,
            "cost_per_request": self.cost_per_request,
            "cost_per_1000_requests": self.cost_per_1000_requests,
            "paths": [p.to_dict() for p in self.paths],
        }


def cost_report(store: Store, task: str, since: float, until: float | None = None) -> CostReport:
    """The spend of ``task`` over ``since <= created_at < until`` (epoch seconds).

    The sums come from :meth:`Store.path_totals`: SQL stores aggregate in the database,
    other stores sum their outcome rows.
    """
    rows, (requests, succeeded, fell_back) = store.path_totals(task, since, until)
    rows.sort(key=lambda r: r.path)
    paths = tuple(
        PathCost(
            path=r.path,
            requests=r.requests,
            attempts=r.attempts,
            first_attempts=r.first,
            fallback_attempts=r.fallback,
            successes=r.successes,
            retries=r.retries,
            timeouts=r.timeouts,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            # Only unbilled failures priced (SUM of NULLs): known to be $0.
            cost_usd=r.cost if r.cost is not None or not r.priced else 0.0,
            priced_attempts=r.priced,
            unknown_cost_attempts=r.attempts - r.priced,
            task_requests=requests,
            unpriced_token_attempts=r.unpriced_tokens,
            cache_read_tokens=r.cache_read_tokens,
            cache_write_tokens=r.cache_write_tokens,
        )
        for r in rows
    )
    known = [p.cost_usd for p in paths if p.cost_usd is not None]
    attempts = sum(p.attempts for p in paths)
    priced = sum(p.priced_attempts for p in paths)
    return CostReport(
        task=task,
        since=since,
        until=until,
        requests=requests,
        succeeded_requests=succeeded,
        fallback_requests=fell_back,
        attempts=attempts,
        fallback_attempts=sum(p.fallback_attempts for p in paths),
        retries=sum(p.retries for p in paths),
        timeouts=sum(p.timeouts for p in paths),
        input_tokens=_known_sum(p.input_tokens for p in paths),
        output_tokens=_known_sum(p.output_tokens for p in paths),
        cost_usd=math.fsum(known) if known else None,
        priced_attempts=priced,
        unknown_cost_attempts=attempts - priced,
        paths=paths,
        unpriced_token_attempts=sum(p.unpriced_token_attempts for p in paths),
        cache_read_tokens=_known_sum(p.cache_read_tokens for p in paths),
        cache_write_tokens=_known_sum(p.cache_write_tokens for p in paths),
    )


def cost_reports(store: Store, since: float, until: float | None = None) -> list[CostReport]:
    """:func:`cost_report` for every task in the store that had traffic in the window."""
    reports = (cost_report(store, task, since, until) for task in store.tasks())
    return [r for r in reports if r.requests]


def _known_sum(values: Iterable[int | None]) -> int | None:
    """A sum of the known values; None (unknown) when none is known."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None
