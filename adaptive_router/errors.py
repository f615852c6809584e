"""Exceptions raised by the router."""

from __future__ import annotations

from collections.abc import Sequence

from adaptive_router.outcomes import Outcome


class ConfigurationError(ValueError):
    """A constructor argument is wrong; the message names it and says what to change."""


class AllPathsFailed(RuntimeError):
    """No path succeeded and there was no final fallback.

    ``attempts`` lists every attempt in order, each with ``.path``, ``.kind``,
    ``.error`` and ``.latency_ms``.
    """

    def __init__(self, task: str, request_id: str, attempts: Sequence[Outcome]) -> None:
        self.task = task
        self.request_id = request_id
        self.attempts: list[Outcome] = list(attempts)
        detail = "; ".join(f"{a.path}: {a.kind} ({a.error or 'no detail'})" for a in self.attempts)
        super().__init__(
            f"all {len(self.attempts)} attempts failed for task {task!r} "
            f"(request {request_id}): {detail}"
        )


class UnknownRequestError(KeyError):
    """``report`` was given a request_id that no ``choose`` issued (or it was dropped)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown request_id"


class StoreUnavailableError(RuntimeError):
    """The database cannot be reached (or refused the connection): when the store was
    created, or for a call that needs it now (a ``report`` of a decision this process does
    not hold, during an outage). The message names the database with its password
    masked."""


class OutcomesRejected(ValueError):
    """A store refused to write outcomes for their data, not for want of a connection: a
    value it cannot hold (NaN, an infinity, a negative or fractional token count, a bad
    type) or one the database rejected (an integrity or data error).

    ``rejected`` lists ``(outcome, reason)`` for the rows known to be bad, each reason
    naming the field and its value; it is empty when the database refused the batch as a
    whole without saying which row. Nothing of the batch was written. The router's writer
    then writes the other rows and counts the refused ones (``Router.rejected_outcomes``).
    """

    def __init__(self, rejected: Sequence[tuple[Outcome, str]], reason: str | None = None) -> None:
        self.rejected: list[tuple[Outcome, str]] = list(rejected)
        if reason is None:
            reason = "; ".join(
                f"request {o.request_id} attempt {o.attempt} of path {o.path!r}: {why}"
                for o, why in self.rejected[:3]
            )
            if len(self.rejected) > 3:
                reason += f"; and {len(self.rejected) - 3} more"
        super().__init__(f"outcomes refused by the store: {reason}")
