"""The storage contract shared by the memory and SQL stores."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from adaptive_router.outcomes import Outcome, PathWindowStats


@dataclass(slots=True)
class PathState:
    """Durable per-(task, path) evidence.

    ``success_w``/``failure_w`` are decayed sums relative to ``ref_time`` (the
    newest observation's time); ``successes``/``failures`` are plain counts.
    ``cost_sum``/``latency_sum`` are decayed sums (same half-life and ``ref_time``) of the
    per-attempt cost in USD and latency in ms over the attempts where each was known, and
    ``cost_weight``/``latency_weight`` the decayed number of those attempts.
    """

    success_w: float = 0.0
    failure_w: float = 0.0
    ref_time: float = 0.0
    successes: int = 0
    failures: int = 0
    half_life_s: float | None = None
    cost_sum: float = 0.0
    cost_weight: float = 0.0
    latency_sum: float = 0.0
    latency_weight: float = 0.0

    @property
    def n(self) -> int:
        return self.successes + self.failures

    @property
    def mean_cost_usd(self) -> float | None:
        """Decayed mean cost per attempt (USD), None before any attempt of known cost."""
        return self.cost_sum / self.cost_weight if self.cost_weight > 0.0 else None

    @property
    def mean_latency_ms(self) -> float | None:
        """Decayed mean latency per attempt (ms), None before any timed attempt."""
        return self.latency_sum / self.latency_weight if self.latency_weight > 0.0 else None


@dataclass(frozen=True, slots=True)
class PendingDecision:
    """A ``choose`` awaiting its ``report``."""

    request_id: str
    task: str
    path: str
    created_at: float
    context: str = ""
    model: str | None = None
    """The model the chosen path calls (prices the report's tokens); None if unknown."""


class CompleteResult:
    """What :meth:`Store.complete_pending` found for a request id."""

    UNKNOWN = "unknown"
    ALREADY_REPORTED = "already_reported"


class Store(abc.ABC):
    """Where outcomes, per-path evidence and pending decisions live.

    ``write`` must be atomic and idempotent: outcomes are keyed by
    ``(request_id, attempt)``, and the evidence of an outcome is added to
    ``path_stats`` in the same transaction as its row, only if the row is new.
    So a batch retried after a lost commit acknowledgment never counts twice.
    """

    #: True when the store keeps nothing outside this process (no refresh needed).
    in_process: bool = False

    @abc.abstractmethod
    def write(self, outcomes: Sequence[Outcome], half_life: float | None) -> int:
        """Record outcomes and fold them into ``path_stats``; return how many were new."""

    @abc.abstractmethod
    def load_contexts(self, task: str) -> dict[str, dict[str, PathState]]:
        """Stored evidence for ``task``: context -> path -> state ("" = task level)."""

    def load(self, task: str, context: str = "") -> dict[str, PathState]:
        """Every path's stored evidence for ``task`` in one context ("" = task level)."""
        return self.load_contexts(task).get(context, {})

    @abc.abstractmethod
    def window_stats(
        self, task: str, since: float, until: float | None = None, context: str | None = None
    ) -> list[PathWindowStats]:
        """Per-path aggregates of outcomes with ``since <= created_at < until``
        (in one context when ``context`` is given)."""

    @abc.abstractmethod
    def tasks(self) -> list[str]:
        """Task names that have evidence in this store."""

    @abc.abstractmethod
    def add_pending(self, pending: PendingDecision) -> None:
        """Persist a decision awaiting its report (synchronously)."""

    @abc.abstractmethod
    def claim_pending(
        self,
        request_id: str,
        build: Callable[[PendingDecision], Outcome],
        half_life: float | None,
    ) -> PendingDecision | str:
        """Atomically claim a pending decision and record ``build(decision)`` for it.

        Claim and outcome are one transaction, so a report is never half-done and two
        concurrent reports of one id record it once. Returns the decision, or
        :attr:`CompleteResult.ALREADY_REPORTED` when an outcome for the id exists
        already, or :attr:`CompleteResult.UNKNOWN`.
        """

    @abc.abstractmethod
    def expire_pending(
        self,
        task: str,
        older_than: float,
        build: Callable[[PendingDecision], Outcome] | None,
        half_life: float | None,
    ) -> list[tuple[PendingDecision, Outcome | None]]:
        """Atomically remove the task's pending decisions created before ``older_than``.

        With ``build``, each one's outcome (a failure of kind ``expired``) is recorded in
        the same transaction.
        """

    @abc.abstractmethod
    def outcomes(self, task: str, since: float | None = None) -> list[Outcome]:
        """The task's outcome rows, oldest first (for replays, exports and plots)."""

    def close(self) -> None:  # noqa: B027 - optional hook; stores without resources keep it
        """Release connections."""
