"""The storage contract shared by the memory and SQL stores."""

from __future__ import annotations

import abc
import json
import math
import reprlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard

from adaptive_router.errors import OutcomesRejected
from adaptive_router.outcomes import (
    MAX_AMOUNT,
    MAX_MODEL_LENGTH,
    MAX_TOKENS,
    TOKEN_FIELDS,
    UNBILLED,
    ErrorKind,
    Outcome,
    PathWindowStats,
)
from adaptive_router.policies.pacing import SpendStats as SpendStats
from adaptive_router.policies.thompson import TINY, decay_factor
from adaptive_router.stores.series import AttemptRow as AttemptRow
from adaptive_router.stores.series import SeriesCounts, bucket_rows

if TYPE_CHECKING:
    from adaptive_router.policies.contextual import LinearStats

_TIMEOUT = ErrorKind.TIMEOUT.value


#: The two evidence positions (``path_stats.position``): a request's first attempt, which
#: sees every input, and the attempts made after an earlier path of the request failed,
#: which see only the inputs that path failed on.
FIRST = "first"
AFTER_FAILURE = "after_failure"
POSITIONS = (FIRST, AFTER_FAILURE)


def position_of(attempt: int) -> str:
    """The evidence position of an attempt number: :data:`FIRST` for the first path the
    request executed (``attempt == 1``; a path skipped before it, never called, has no
    number), else :data:`AFTER_FAILURE` (an earlier path executed and did not succeed)."""
    return FIRST if attempt == 1 else AFTER_FAILURE


@dataclass(slots=True)
class PathState:
    """Durable evidence of one (task, context, path, position) row.

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


@dataclass(slots=True)
class PathEvidence:
    """A path's evidence in one (task, context), kept apart by position.

    ``first``: the requests' first attempts, unconditioned (every input the task gets);
    the first choice is ranked by it. ``after_failure``: attempts made after an earlier
    path of the same request failed (only the inputs it failed on); the later positions
    are ranked by it. Folding both into one posterior would make a path that is mostly
    tried second look as bad as the hardest inputs (see the README's *Design*).
    """

    first: PathState = field(default_factory=PathState)
    after_failure: PathState = field(default_factory=PathState)

    def at(self, position: str) -> PathState:
        """The state of ``position`` (:data:`FIRST` or :data:`AFTER_FAILURE`)."""
        return self.first if position == FIRST else self.after_failure

    @property
    def n(self) -> int:
        """Attempts counted in both positions."""
        return self.first.n + self.after_failure.n

    def copy(self) -> PathEvidence:
        """An independent copy (both states copied)."""
        return PathEvidence(replace(self.first), replace(self.after_failure))

    def states(self) -> tuple[PathState, PathState]:
        """``(first, after_failure)``."""
        return self.first, self.after_failure


def fold_evidence(ev: PathEvidence, o: Outcome, half_life: float | None) -> None:
    """Fold ``o`` into the position of ``ev`` its attempt number says (:func:`position_of`)."""
    fold_outcome(ev.first if o.attempt == 1 else ev.after_failure, o, half_life)


def fold_outcome(st: PathState, o: Outcome, half_life: float | None) -> None:
    """Add one outcome to a path's durable state, exactly as the SQL store's one atomic
    upsert does: the decayed success/failure, cost and latency sums (relative to
    ``ref_time``, the newest observation's time; see :func:`~adaptive_router.policies.thompson.fold`
    for why an older observation is added already decayed), the plain counts and the
    half-life. The memory store and the Router's in-process cache both fold with this.
    """
    at, ref = o.created_at, st.ref_time
    # One of the two factors is 1.0 (the older side is decayed to the newer): one call;
    # none without a half-life (the default).
    if half_life is None:
        keep = add = 1.0
    elif at >= ref:
        keep, add = decay_factor(at - ref, half_life), 1.0
    else:
        keep, add = 1.0, decay_factor(ref - at, half_life)
    reward = o.reward
    cost, latency = o.cost_usd, o.latency_ms
    # _scale inlined (this runs twice per request on the hot path): sums below TINY snap
    # to 0 before they are multiplied, as in policy.fold and the SQL upsert.
    s_w, f_w, c_s, c_w, l_s, l_w = (
        st.success_w,
        st.failure_w,
        st.cost_sum,
        st.cost_weight,
        st.latency_sum,
        st.latency_weight,
    )
    st.success_w = (s_w * keep if s_w >= TINY else 0.0) + reward * add
    st.failure_w = (f_w * keep if f_w >= TINY else 0.0) + (1.0 - reward) * add
    st.cost_sum = (c_s * keep if c_s >= TINY else 0.0) + (0.0 if cost is None else cost * add)
    st.cost_weight = (c_w * keep if c_w >= TINY else 0.0) + (0.0 if cost is None else add)
    st.latency_sum = (l_s * keep if l_s >= TINY else 0.0) + (
        0.0 if latency is None else latency * add
    )
    st.latency_weight = (l_w * keep if l_w >= TINY else 0.0) + (0.0 if latency is None else add)
    st.ref_time = at if at > ref else ref
    st.half_life_s = half_life
    if o.success:
        st.successes += 1
    else:
        st.failures += 1


def fold_spend(st: SpendStats, o: Outcome, half_life: float | None) -> None:
    """Add one attempt to its task's spend sums: its cost (None, not metered: 0) at its
    time, and one request when it is the request's first executed attempt (a report
    of a ``choose`` is one). So a request's spend is every attempt it made, fallbacks
    and later paths included, whatever kind of outcome each was. The memory store, the
    SQL upsert (:mod:`adaptive_router.stores.sql_spend`) and the Router's cache fold the
    same way: :meth:`SpendStats.add`, inlined (every write of every router runs it)."""
    cost = o.cost_usd
    c = 0.0 if cost is None else cost
    r = 1 if o.attempt == 1 else 0
    at, ref = o.created_at, st.ref_time
    if half_life is None:
        keep = add = 1.0
    elif at >= ref:
        keep, add = decay_factor(at - ref, half_life), 1.0
    else:
        keep, add = 1.0, decay_factor(ref - at, half_life)
    sw, rw = st.spend_w, st.requests_w
    st.spend_w = (sw * keep if sw >= TINY else 0.0) + c * add
    st.requests_w = (rw * keep if rw >= TINY else 0.0) + r * add
    if at > ref:
        st.ref_time = at
    st.requests += r
    st.spend_usd += c


#: The Outcome fields that :meth:`Store.update_usage` rewrites.
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "model",
    "cache_read_tokens",
    "cache_write_tokens",
)


def copy_usage(source: Outcome, target: Outcome) -> None:
    """Set ``target``'s usage fields to ``source``'s."""
    for name in USAGE_FIELDS:
        setattr(target, name, getattr(source, name))


_INF = math.inf
#: The DB-API (PEP 249) exceptions that mean "this data", not "this connection", under
#: every driver's and SQLAlchemy's own names for them.
_DATA_ERRORS = frozenset({"IntegrityError", "DataError"})


def _row_ok(o: Outcome) -> bool:
    """Whether every value of ``o`` is of the plain types a store holds and in range: a
    type check per field, unrolled (this runs for every outcome, on the request's thread
    for memory stores). False sends :func:`outcome_problem` to its slower, exact rules."""
    n = o.input_tokens
    if n is not None and (type(n) is not int or not 0 <= n <= MAX_TOKENS):
        return False
    n = o.output_tokens
    if n is not None and (type(n) is not int or not 0 <= n <= MAX_TOKENS):
        return False
    n = o.cache_read_tokens
    if n is not None and (type(n) is not int or not 0 <= n <= MAX_TOKENS):
        return False
    n = o.cache_write_tokens
    if n is not None and (type(n) is not int or not 0 <= n <= MAX_TOKENS):
        return False
    v = o.cost_usd
    if v is not None and not (type(v) is float and 0.0 <= v <= MAX_AMOUNT):
        return False
    v = o.latency_ms
    if v is not None and not (type(v) is float and 0.0 <= v <= MAX_AMOUNT):
        return False
    v = o.score
    if v is not None and not (type(v) is float and 0.0 <= v <= 1.0):
        return False
    v = o.propensity
    if v is not None and not (type(v) is float and 0.0 <= v <= 1.0):
        return False
    t, a, r, m = o.created_at, o.attempt, o.retries, o.model
    if type(t) is not float or not -_INF < t < _INF:
        return False
    if type(a) is not int or a < 0 or type(r) is not int or r < 0:
        return False
    if m is not None and (type(m) is not str or len(m) > MAX_MODEL_LENGTH):
        return False
    return o.metadata is None


def _metadata_problem(metadata: object) -> str | None:
    if not isinstance(metadata, dict):
        return f"metadata must be a dict or None, got {type(metadata).__name__}"
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"metadata must be JSON without NaN or infinities: {exc}"
    return None


def outcome_problem(o: Outcome) -> str | None:
    """Why no store may hold ``o`` (naming the field and its value), or None.

    The check constraint every store applies in code before it writes (the same on
    SQLite, PostgreSQL and in memory, with no migration): token counts, ``attempt`` and
    ``retries`` are ints >= 0; ``cost_usd`` and ``latency_ms`` finite and >= 0;
    ``score`` and ``propensity`` in [0, 1]; ``created_at`` finite; ``model`` a str of at
    most 255 characters; ``metadata`` a JSON object without NaN. None is "unknown" for
    every optional field. A NaN cost would make every later sum (``costs()``, the cost
    objective's means) NaN; SQLite turns it into NULL and fails the batch.
    """
    if _row_ok(o):
        return None
    # Subclasses of int and float (numpy's float64) are fine; bools, strings are not.
    for name in (*TOKEN_FIELDS, "attempt", "retries"):
        v = getattr(o, name)
        optional = name in TOKEN_FIELDS
        if (v is not None or not optional) and not (
            _real(v) and isinstance(v, int) and 0 <= v <= MAX_TOKENS
        ):
            return (
                f"{name} must be an int in [0, 10**12]{' or None' if optional else ''}, "
                f"got {reprlib.repr(v)}"
            )
    for name in ("cost_usd", "latency_ms"):
        v = getattr(o, name)
        if v is not None and not (_real(v) and 0.0 <= v <= MAX_AMOUNT):
            return f"{name} must be a finite number in [0, 1e12] or None, got {reprlib.repr(v)}"
    for name in ("score", "propensity"):
        v = getattr(o, name)
        if v is not None and not (_real(v) and 0.0 <= v <= 1.0):
            return f"{name} must be a number in [0, 1] or None, got {v!r}"
    if not (_real(o.created_at) and math.isfinite(o.created_at)):
        return f"created_at must be finite epoch seconds, got {o.created_at!r}"
    m = o.model
    if m is not None and not (isinstance(m, str) and len(m) <= MAX_MODEL_LENGTH):
        return f"model must be a str of at most {MAX_MODEL_LENGTH} characters, got {m!r:.80}"
    return None if o.metadata is None else _metadata_problem(o.metadata)


def _real(v: object) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def refuse_invalid(outcomes: Sequence[Outcome]) -> None:
    """Raise :class:`~adaptive_router.errors.OutcomesRejected` listing every outcome of
    ``outcomes`` that :func:`outcome_problem` finds fault with; before anything is
    written, as a check constraint fails a statement."""
    bad = [(o, why) for o in outcomes if (why := outcome_problem(o)) is not None]
    if bad:
        raise OutcomesRejected(bad)


def is_data_error(exc: BaseException) -> bool:
    """Whether a failed write failed for its data (some row cannot be written however
    often it is retried), not for the connection: :class:`OutcomesRejected`, or a DB-API
    ``IntegrityError``/``DataError`` (SQLAlchemy's wrappers and the drivers' own,
    psycopg's from ``COPY`` included). Anything else — operational errors, timeouts, a
    lost connection — is an outage: the rows wait in the buffer. A value the driver
    cannot bind (sqlite3's ``OverflowError`` for an int beyond 64 bits, raw or wrapped in
    SQLAlchemy's ``StatementError``) is the row's too: retried, it would block every
    later batch."""
    if isinstance(exc, (OutcomesRejected, OverflowError)):
        return True
    if isinstance(getattr(exc, "orig", None), OverflowError):
        return True
    return any(c.__name__ in _DATA_ERRORS for c in type(exc).__mro__)


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
    features: bytes | None = None
    """The request's encoded feature vector (a contextual router's ``choose``): the report
    folds its outcome into the linear statistics with it. None without features."""


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """What one router process last said about itself (its heartbeat).

    ``breakers`` maps each path to its circuit-breaker state (``closed``, ``open``,
    ``half_open`` or ``none``); ``alerts`` are the router's most recent alerts as plain
    dicts (``kind``, ``path``, ``message``, ``value``, ``threshold``, ``at``).
    ``updated_at`` is the router clock's time of the beat.
    """

    router_id: str
    host: str
    pid: int
    task: str
    breakers: dict[str, str]
    started_at: float
    updated_at: float
    alerts: tuple[dict[str, Any], ...] = ()


class CompleteResult:
    """What :meth:`Store.complete_pending` found for a request id."""

    UNKNOWN = "unknown"
    ALREADY_REPORTED = "already_reported"


# -- optional capabilities ---------------------------------------------------------------
# A store has one when it also subclasses the capability's ABC, and callers check with
# isinstance (the ``limits`` library's style: MovingWindowSupport,
# SlidingWindowCounterSupport); a store without one is never asked for it. No flags, no
# NotImplementedError, no defaults that quietly do nothing.


class InProcess(abc.ABC):  # noqa: B024 - a marker: what it promises is in the docstring
    """A store that keeps everything in this process's memory: a write is a dict update
    that cannot fail for an outage, there is nothing to refresh from and no other process
    to share with. Routers write to it synchronously, from the caller's thread (no writer
    thread, no hop to a worker thread under asyncio), and hold no decisions for it."""


class SharedEvidence(abc.ABC):
    """An optional capability: a store whose evidence lives in this process, as the very
    :class:`PathEvidence` objects its ``write`` folds into.

    A router's cache reads them in place, under the store's own lock, instead of keeping
    a copy and folding every outcome a second time (half of the fold work per request)."""

    @abc.abstractmethod
    def shared_contexts(
        self, task: str
    ) -> tuple[dict[str, dict[str, PathEvidence]], threading.Lock]:
        """``task``'s live evidence (context -> path -> evidence, "" = task level; an empty
        mapping for a new task, filled in as outcomes are written) and the lock that every
        read and fold of it holds."""


class HealthSnapshots(abc.ABC):
    """A store that keeps the routers' health snapshots (their heartbeats, which the
    dashboard reads). A router on a store without it writes none."""

    @abc.abstractmethod
    def put_health(self, snapshot: HealthSnapshot, expire_before: float) -> None:
        """Insert or replace ``snapshot`` (keyed by its ``router_id``) and delete the
        snapshots last updated before ``expire_before`` (routers gone for good)."""

    @abc.abstractmethod
    def health(self, task: str | None = None) -> list[HealthSnapshot]:
        """The stored health snapshots (of one task when given), by task, host and pid."""

    @abc.abstractmethod
    def remove_health(self, router_id: str) -> None:
        """Forget a router's snapshot (it closed cleanly)."""


class OutcomeUpdates(abc.ABC):
    """A store whose outcome rows can be updated after they were written (a store that
    keeps rows immutable does without): a late SDK call's usage, and the propensities
    computed after their rows were written."""

    @abc.abstractmethod
    def update_usage(self, outcome: Outcome) -> bool:
        """Rewrite the usage of the stored outcome ``(outcome.request_id, outcome.attempt)``
        — tokens, cache tokens, model and cost — with ``outcome``'s; True if a row was
        updated (False: not written yet).

        Used when an SDK call finishes after its attempt timed out: the provider bills
        it, so the attempt's usage grows. The task's spend sums (:class:`SpendTotals`)
        move by the cost's difference at the outcome's time, so a spend target counts the
        late call; the evidence already folded into ``path_stats`` (the decayed cost
        means) is left as it was. Without this capability the late usage stays in the
        process (the outcome object), not in the store.
        """

    @abc.abstractmethod
    def set_propensities(self, task: str, values: Sequence[tuple[str, int, float]]) -> int:
        """Fill ``outcomes.propensity`` of logged first attempts, given as ``(request_id,
        attempt, propensity)``; returns the rows updated.

        Propensities are computed after their rows are written (they cost more than a
        request). Without this capability routers do not compute them, and
        ``evaluate()`` computes them from ``outcomes.decision`` each time.
        """


class SpendTotals(abc.ABC):
    """A store that keeps each task's realized spend as decayed sums (one
    :class:`~adaptive_router.policies.pacing.SpendStats` per task, folded by
    :func:`fold_spend` from every outcome its ``write`` records, in the same transaction),
    and the spend target last set for the task. A router with a spend target
    (``Objective(target_usd_per_request=...)``) needs it: the price per dollar is computed
    from these sums, which every process of the task adds to and reads."""

    @abc.abstractmethod
    def load_spend(self, task: str) -> SpendStats:
        """``task``'s spend sums (zeros before its first outcome)."""

    @abc.abstractmethod
    def spend_target(self, task: str) -> float | None:
        """The spend target (dollars per request) last set for ``task``, None if none."""

    @abc.abstractmethod
    def set_spend_target(self, task: str, target_usd_per_request: float | None) -> None:
        """Record the spend target a router of ``task`` routes with (for the CLI and the
        dashboard, which have no router to ask); None clears it."""


class FeatureEvidence(abc.ABC):
    """A store that keeps each path's linear statistics of request features per (task,
    context) (:mod:`adaptive_router.stores.feature_stats`), folded from every written
    first attempt that carries a feature vector, in the same transaction and exactly once,
    and that keeps a ``choose``'s feature vector with its pending decision. A router with
    ``features=`` needs it."""

    @abc.abstractmethod
    def load_features(self, task: str) -> dict[str, dict[str, LinearStats]]:
        """``task``'s statistics: context ("" = task level) -> path -> statistics."""


class Store(abc.ABC):
    """Where outcomes, per-path evidence and pending decisions live.

    ``write`` must be atomic and idempotent: outcomes are keyed by
    ``(request_id, attempt)``, and the evidence of an outcome is added to
    ``path_stats`` in the same transaction as its row, only if the row is new.
    So a batch retried after a lost commit acknowledgment never counts twice.
    An outcome's evidence goes to the position its attempt number says
    (:func:`position_of`): first attempts and attempts after a failure are kept apart.

    Optional capabilities are ABCs a store also subclasses: :class:`InProcess`,
    :class:`SharedEvidence`, :class:`HealthSnapshots`, :class:`OutcomeUpdates`.
    """

    #: False for a store built without its database (``SQLStore(start_offline=True)``)
    #: until :meth:`connect` has reached it and created or checked the schema.
    connected: bool = True

    def connect(self) -> None:  # noqa: B027 - optional hook; most stores are always connected
        """Reach the database and create or check the schema, if not done yet; raise
        :class:`~adaptive_router.errors.StoreUnavailableError` while it is unreachable."""

    @abc.abstractmethod
    def write(self, outcomes: Sequence[Outcome], half_life: float | None) -> int:
        """Record outcomes and fold them into ``path_stats``; return how many were new."""

    @abc.abstractmethod
    def load_contexts(self, task: str) -> dict[str, dict[str, PathEvidence]]:
        """Stored evidence for ``task``: context -> path -> evidence ("" = task level)."""

    def load(self, task: str, context: str = "") -> dict[str, PathEvidence]:
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

    def register_half_life(self, task: str, half_life: float | None) -> float | None:
        """The half-life ``task`` is learned with: the one registered for it, else the
        one its stored evidence was learned with, else ``half_life`` (registered now).

        The first router (or Reporter) of a task registers its half-life when it starts;
        the others compare theirs with what this returns. The memory and SQL stores do
        it atomically (two routers starting at once cannot both register); this default,
        for other stores, reads the stored evidence and registers nothing.
        """
        for ev in self.load(task).values():
            for st in ev.states():
                if st.n:
                    return st.half_life_s
        return half_life

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
    cache_read_tokens: int | None = None
    """Of ``input_tokens``, those read from the prompt cache; None when none reported it."""
    cache_write_tokens: int | None = None
    """Of ``input_tokens``, those written to the prompt cache; None when none reported it."""


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
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


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
        if o.cache_read_tokens is not None:
            acc.cache_read_tokens = (acc.cache_read_tokens or 0) + o.cache_read_tokens
        if o.cache_write_tokens is not None:
            acc.cache_write_tokens = (acc.cache_write_tokens or 0) + o.cache_write_tokens
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
            a.cache_read_tokens,
            a.cache_write_tokens,
        )
        for path, a in accs.items()
    ]
    return rows, (len(requests), len(succeeded), len(fell_back))
