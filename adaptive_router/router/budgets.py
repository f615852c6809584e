"""Per-request budgets: how many learned paths, how much time, how much money a request
may spend before it goes to the final fallback. Decisions without I/O.

:class:`Budget` holds the Router's validated limits; :class:`RequestBudget` is one
request's account (its deadline on the monotonic clock and the expected cost of each
learned path), asked by the request core before each learned path. The final fallback
is never refused by a budget: it is the answer of last resort and runs with its own
timeout.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from numbers import Integral

from adaptive_router.errors import ConfigurationError
from adaptive_router.outcomes import ErrorKind, Outcome

__all__ = ["MIN_TIMEOUT_S", "Budget", "RequestBudget"]

#: The smallest cut timeout (seconds).
MIN_TIMEOUT_S = 1e-3


@dataclass(frozen=True, slots=True)
class Budget:
    """A request's limits (None = no limit), checked here.

    ``max_attempts``: learned paths tried (skipped ones not counted) before the final
    fallback. ``request_timeout``: seconds (or a ``timedelta``) for the whole request
    across attempts and retries; each attempt's timeout is cut to what is left.
    ``max_cost_usd``: dollars per request; a learned path whose expected cost exceeds what
    is left is skipped (a path with neither a measured cost nor a prior is not).
    """

    max_attempts: int | None = None
    request_timeout: float | timedelta | None = None
    max_cost_usd: float | None = None
    active: bool = field(init=False)
    """Whether any limit is set (computed once: it is read on every request)."""

    def __post_init__(self) -> None:
        n = self.max_attempts
        if n is not None and (isinstance(n, bool) or not isinstance(n, Integral) or n < 1):
            raise ConfigurationError(
                f"max_attempts must be an int >= 1 (learned paths per request before the final "
                f"fallback) or None, got {n!r}"
            )
        timeout = self.request_timeout
        if timeout is not None:
            if isinstance(timeout, timedelta):
                timeout = timeout.total_seconds()
            if (
                isinstance(timeout, bool)
                or not isinstance(timeout, (int, float))
                or not (0.0 < float(timeout) < math.inf)
            ):
                raise ConfigurationError(
                    "request_timeout must be a number of seconds > 0 or a timedelta (the whole "
                    f"request, across attempts and retries) or None, got {self.request_timeout!r}"
                )
            object.__setattr__(self, "request_timeout", float(timeout))
        cost = self.max_cost_usd
        if cost is not None:
            if (
                isinstance(cost, bool)
                or not isinstance(cost, (int, float))
                or not (0.0 <= float(cost) < math.inf)
            ):
                raise ConfigurationError(
                    f"max_cost_usd must be a number of dollars >= 0 per request or None, "
                    f"got {cost!r}"
                )
            object.__setattr__(self, "max_cost_usd", float(cost))
        if n is not None:
            object.__setattr__(self, "max_attempts", int(n))
        limits = (self.max_attempts, self.request_timeout, self.max_cost_usd)
        object.__setattr__(self, "active", any(v is not None for v in limits))

    @property
    def timeout_s(self) -> float | None:
        """``request_timeout`` in seconds (checked and converted when the budget was made)."""
        return self.request_timeout  # type: ignore[return-value]  # a float since __post_init__

    def start(
        self, fallback: str | None, expected_cost: Mapping[str, float] | None = None
    ) -> RequestBudget:
        """A new request's account; ``expected_cost`` by path name (paths without a known
        cost are left out: they are never skipped for cost); ``fallback`` is the final
        fallback's name, which no budget refuses."""
        limit = self.timeout_s
        deadline = None if limit is None else time.perf_counter() + limit
        return RequestBudget(self, deadline, expected_cost or {}, fallback)


class RequestBudget:
    """One request's account against its :class:`Budget`."""

    __slots__ = ("budget", "deadline", "expected_cost", "fallback")

    def __init__(
        self,
        budget: Budget,
        deadline: float | None,
        expected_cost: Mapping[str, float],
        fallback: str | None = None,
    ) -> None:
        self.budget = budget
        self.deadline = deadline
        self.expected_cost = expected_cost
        self.fallback = fallback

    def limits(self, path: str) -> bool:
        """Whether the budget applies to ``path`` (every path but the final fallback)."""
        return path != self.fallback

    def remaining_s(self) -> float | None:
        """Seconds left (may be <= 0), None without a request timeout."""
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def refuse(self, path: str, attempts: Sequence[Outcome]) -> tuple[str, str] | None:
        """``(kind, reason)`` when the learned path ``path`` must be skipped, else None."""
        if not self.limits(path):
            return None
        b = self.budget
        if b.max_attempts is not None:
            tried = sum(1 for a in attempts if not a.skipped)
            if tried >= b.max_attempts:
                return (
                    ErrorKind.MAX_ATTEMPTS.value,
                    f"max_attempts={b.max_attempts} learned paths already tried",
                )
        left = self.remaining_s()
        if left is not None and left <= 0.0:
            return (
                ErrorKind.REQUEST_TIMEOUT.value,
                f"request_timeout={b.timeout_s:g} s used up",
            )
        if b.max_cost_usd is not None:
            expected = self.expected_cost.get(path)
            if expected is not None:
                spent = sum(a.cost_usd or 0.0 for a in attempts)
                if expected > b.max_cost_usd - spent:
                    return (
                        ErrorKind.OVER_BUDGET.value,
                        f"expected cost ${expected:.6g} exceeds the ${b.max_cost_usd - spent:.6g}"
                        f" left of max_cost_usd={b.max_cost_usd:g}",
                    )
        return None

    def cut(self, timeout_s: float | None) -> float | None:
        """An attempt's timeout cut to what is left of the request's (None = no limit)."""
        left = self.remaining_s()
        if left is None:
            return timeout_s
        # Timeouts must be > 0: an attempt that starts at the deadline gets a token
        # millisecond and times out, rather than a zero the timeout helpers refuse.
        left = max(left, MIN_TIMEOUT_S)
        return left if timeout_s is None or left < timeout_s else timeout_s
