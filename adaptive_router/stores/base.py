"""The storage contract shared by the memory and SQL stores."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from adaptive_router.outcomes import UNBILLED, ErrorKind, Outcome, PathWindowStats
from adaptive_router.policy import TINY, decay_factor
from adaptive_router.stores.series import AttemptRow as AttemptRow
from adaptive_router.stores.series import SeriesCounts, bucket_rows

_TIMEOUT = ErrorKind.TIMEOUT.value


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


def fold_cost_latency(st: PathState, o: Outcome, half_life: float | None) -> None:
    """Add the outcome's cost and latency (when known) to the decayed sums, as the SQL
    upsert does (the memory store and the Router's in-process cache share it); call
    before ``st.ref_time`` moves to the outcome's time."""
    keep = decay_factor(o.created_at - st.ref_time, half_life)
    add = decay_factor(st.ref_time - o.created_at, half_life)
    c_add = 0.0 if o.cost_usd is None else 1.0
    l_add = 0.0 if o.latency_ms is None else 1.0
    st.cost_sum = _scale(st.cost_sum, keep) + (o.cost_usd or 0.0) * add
    st.cost_weight = _scale(st.cost_weight, keep) + c_add * add
    st.latency_sum = _scale(st.latency_sum, keep) + (o.latency_ms or 0.0) * add
    st.latency_weight = _scale(st.latency_weight, keep) + l_add * add


def _scale(value: float, factor: float) -> float:
    # Same snap as policy.fold: tiny sums are 0, so a replay matches the SQL store.
    return 0.0 if value < TINY else value * factor


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

    def path_totals(
        self, task: str, since: float, until: float | None = None
    ) -> tuple[list[PathTotals], tuple[int, int, int]]:
        """Per-path sums of the task's outcomes with ``since <= created_at < until``, and
        the window's (requests, succeeded requests, requests that fell back).

        Stores that can aggregate where the data lives (SQL) override this; the default
        sums :meth:`outcomes` in Python.
        """
        return totals_from_outcomes(self.outcomes(task, since), until)

    def attempt_rows(self, task: str, since: float, until: float | None = None) -> list[AttemptRow]:
        """The few columns a time series needs, one row per attempt, oldest first."""
        return [
            AttemptRow(
                o.path, o.attempt, o.success, o.cost_usd, o.created_at, o.request_id, o.latency_ms
            )
            for o in self.outcomes(task, since)
            if until is None or o.created_at < until
        ]

    def series(
        self, task: str, since: float, until: float | None = None, bucket_s: float | None = None
    ) -> SeriesCounts | None:
        """Per-path counts per time bucket of the window's requests (None if it has none).

        See :mod:`adaptive_router.stores.series`; the default buckets :meth:`attempt_rows`
        in Python, the SQL store reads its hourly rollups where it can.
        """
        return bucket_rows(self.attempt_rows(task, since, until), bucket_s)

    def close(self) -> None:  # noqa: B027 - optional hook; stores without resources keep it
        """Release connections."""


class PathTotals(NamedTuple):
    """One path's sums over a window of outcome rows (what cost reports are built from)."""

    path: str
    requests: int
    attempts: int
    first: int
    fallback: int
    successes: int
    retries: int
    timeouts: int
    input_tokens: int | None
    """Summed over the attempts that reported tokens; None when none did (unknown, not 0)."""
    output_tokens: int | None
    cost: float | None
    priced: int
    unpriced_tokens: int


@dataclass(slots=True)
class _PathAcc:
    requests: set[str] = field(default_factory=set)
    attempts: int = 0
    first: int = 0
    fallback: int = 0
    successes: int = 0
    retries: int = 0
    timeouts: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: float = 0.0
    priced: int = 0
    unpriced_tokens: int = 0


def totals_from_outcomes(
    outcomes: Sequence[Outcome], until: float | None
) -> tuple[list[PathTotals], tuple[int, int, int]]:
    """:meth:`Store.path_totals` computed in Python from outcome rows."""
    accs: dict[str, _PathAcc] = {}
    requests: set[str] = set()
    succeeded: set[str] = set()
    fell_back: set[str] = set()
    for o in outcomes:
        if until is not None and o.created_at >= until:
            continue
        acc = accs.get(o.path)
        if acc is None:
            acc = accs[o.path] = _PathAcc()
        acc.requests.add(o.request_id)
        requests.add(o.request_id)
        acc.attempts += 1
        if o.attempt == 1:
            acc.first += 1
        elif o.attempt > 1:
            acc.fallback += 1
            fell_back.add(o.request_id)
        if o.success:
            acc.successes += 1
            succeeded.add(o.request_id)
        acc.retries += o.retries
        acc.timeouts += o.kind == _TIMEOUT
        # Unknown stays unknown: None until an attempt reports its tokens.
        if o.input_tokens is not None:
            acc.input_tokens = (acc.input_tokens or 0) + o.input_tokens
        if o.output_tokens is not None:
            acc.output_tokens = (acc.output_tokens or 0) + o.output_tokens
        if o.cost_usd is not None:
            acc.cost += o.cost_usd
            acc.priced += 1
        elif o.kind in UNBILLED:
            acc.priced += 1  # recorded before unbilled failures were written as $0
        elif o.input_tokens is not None or o.output_tokens is not None:
            acc.unpriced_tokens += 1
    rows = [
        PathTotals(
            path,
            len(a.requests),
            a.attempts,
            a.first,
            a.fallback,
            a.successes,
            a.retries,
            a.timeouts,
            a.input_tokens,
            a.output_tokens,
            a.cost if a.priced else None,
            a.priced,
            a.unpriced_tokens,
        )
        for path, a in accs.items()
    ]
    return rows, (len(requests), len(succeeded), len(fell_back))
