"""Two-phase feedback: recording the outcome of a ``choose`` that is reported later.

:class:`Reporter` is what a process that only reports outcomes needs: the task and the
store, no paths. :meth:`Router.report <adaptive_router.Router.report>` goes through the same
:meth:`Reporter.validate` and :meth:`Reporter.claim`, so validation, the exactly-once claim
and pricing are one code.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from adaptive_router.errors import ConfigurationError, StoreUnavailableError, UnknownRequestError
from adaptive_router.features import decode_features
from adaptive_router.metering.prices import Pricer
from adaptive_router.outcomes import ErrorKind, Outcome, check_amount, check_count
from adaptive_router.paths import check_name
from adaptive_router.stores import Store, open_store
from adaptive_router.stores.base import CompleteResult, PendingDecision

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

#: Metadata larger than this (as JSON) is rejected: it would bloat every outcome row.
MAX_METADATA_BYTES = 16_384


def check_metadata(metadata: object) -> dict[str, Any] | None:
    """A private JSON-safe copy of ``metadata`` (at most ``MAX_METADATA_BYTES``) or None."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    try:
        encoded = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"metadata must be JSON-serialisable: {exc}") from None
    if len(encoded.encode()) > MAX_METADATA_BYTES:
        raise ValueError(
            f"metadata is {len(encoded.encode())} bytes as JSON; the limit is "
            f"{MAX_METADATA_BYTES}. Store large payloads elsewhere and keep a reference."
        )
    result: dict[str, Any] = json.loads(encoded)  # a private copy: later mutation can't leak in
    return result


def as_score(value: Any) -> float | None:
    """A finite number in [0, 1] (bools count as 0/1) -> float; anything else -> None."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    v = float(value)
    return v if math.isfinite(v) and 0.0 <= v <= 1.0 else None


def as_verdict(value: Any) -> bool | None:
    """bool, numpy bool or the ints 0/1 -> bool; anything else -> None (invalid)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    return None


def _seconds(half_life: float | None) -> str:
    return "None (never forget)" if half_life is None else f"{half_life:g} s"


def check_half_life(store: Store, task: str, half_life: float | None, who: str) -> None:
    """Register ``half_life`` as ``task``'s when the task has none yet (the first router or
    Reporter of a task does, atomically: :meth:`Store.register_half_life`), else refuse
    one that differs from the registered one with a ConfigurationError naming both.
    ``who`` is "Router" or "Reporter", for the message. Decayed sums mean nothing under
    another half-life, and evidence folded with two would flip to the last writer's."""
    registered = store.register_half_life(task, half_life)
    if registered != half_life:
        raise ConfigurationError(
            f"half_life: task {task!r} is learned with half_life={_seconds(registered)} "
            f"(registered in the store by its first router or Reporter), but this {who} "
            f"has half_life={_seconds(half_life)}; every router and Reporter of a task must "
            f"use the same half_life: pass half_life={registered!r}, or use a new task name"
        )


class _WrongTask(Exception):
    """Raised inside a claim transaction to roll it back."""


@dataclass(frozen=True, slots=True)
class Report:
    """A report's validated arguments and its time, not recorded yet
    (:meth:`Reporter.validate`)."""

    request_id: str
    success: bool
    latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    metadata: dict[str, Any] | None
    score: float | None
    created_at: float


@dataclass(frozen=True, slots=True)
class Recorded:
    """What :meth:`Reporter.claim` did: ``recorded`` is False for an id already reported;
    ``outcomes`` holds the outcome written (empty then)."""

    recorded: bool
    outcomes: tuple[Outcome, ...]


def _default_write(write: Callable[[], Sequence[Outcome]]) -> None:
    write()


class Reporter:
    """Reports the outcomes of :meth:`Router.choose <adaptive_router.Router.choose>`
    decisions without constructing any path: for a process that only learns the result.

    Parameters
    ----------
    task:
        The task the decisions were made for.
    store:
        The routers' store: a URL, an ``Engine`` or a :class:`Store`.
    half_life:
        The task's half-life, the same as its routers' (``timedelta`` or seconds; ``None``
        = never forget). Checked against the evidence already stored.
    prices:
        Price overrides or a :class:`~adaptive_router.metering.prices.Pricer`, as for the Router.
    models:
        ``{path name: model}`` for pricing decisions that recorded no model (those made
        before the store was upgraded). A decision's own recorded model wins.
    costs:
        ``{path name: USD}``, the paths' declared cost per attempt (``Path(cost_usd=...)``):
        the cost of a report that gives neither ``cost_usd`` nor priced tokens. A Router
        passes its paths'.
    clock:
        Epoch seconds for the outcomes' timestamps (default ``time.time``).
    features_dim:
        The hashed dimension of the task's feature routers (``features.dim``; a Router
        passes its own). A decision whose features have another dimension was made
        before the routers changed it: its outcome counts as the path's evidence but
        not as feature evidence, since folding it would restart the task's linear
        statistics at the old dimension, discarding what the new one learned. ``None``
        (default): every decision's features are folded, and the statistics follow the
        dimension of the latest outcome.
    check:
        Check ``half_life`` against the stored evidence now (a Router passes False: it
        checks its own, when its store is reachable).
    """

    def __init__(
        self,
        task: str,
        store: str | Store | Engine,
        *,
        half_life: timedelta | float | None = None,
        prices: Mapping[str, tuple[float, float]] | Pricer | None = None,
        models: Mapping[str, str] | None = None,
        costs: Mapping[str, float] | None = None,
        clock: Callable[[], float] | None = None,
        features_dim: int | None = None,
        check: bool = True,
    ) -> None:
        self.task = check_name("task", task)
        if features_dim is not None and (
            isinstance(features_dim, bool) or not isinstance(features_dim, int) or features_dim < 1
        ):
            raise ConfigurationError(
                f"features_dim must be the routers' feature dimension (an int >= 1) or None, "
                f"got {features_dim!r}"
            )
        self.features_dim = features_dim
        if isinstance(half_life, timedelta):
            half_life = half_life.total_seconds()
        if half_life is not None and (
            isinstance(half_life, bool)
            or not isinstance(half_life, (int, float))
            or not (math.isfinite(half_life) and half_life > 0)
        ):
            raise ConfigurationError(
                f"half_life must be a positive timedelta or seconds, or None, got {half_life!r}"
            )
        self.half_life: float | None = None if half_life is None else float(half_life)
        if models is not None and not (
            isinstance(models, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in models.items())
        ):
            raise ConfigurationError(
                f"models must map path names to model names (str -> str), got {models!r}"
            )
        self.models: dict[str, str] = dict(models or {})
        if costs is not None and not (
            isinstance(costs, Mapping)
            and all(
                isinstance(k, str)
                and isinstance(v, (int, float))
                and not isinstance(v, bool)
                and math.isfinite(v)
                and v >= 0
                for k, v in costs.items()
            )
        ):
            raise ConfigurationError(
                "costs must map path names to their declared cost per attempt in USD "
                f"(str -> finite number >= 0), got {costs!r}"
            )
        self.costs: dict[str, float] = {k: float(v) for k, v in (costs or {}).items()}
        if clock is not None and not callable(clock):
            raise ConfigurationError("clock must be a callable returning epoch seconds")
        self.clock: Callable[[], float] = clock or time.time
        self._pricer = prices if isinstance(prices, Pricer) else Pricer(prices)
        self.store = open_store(store)
        self._owns_store = not isinstance(store, Store)
        if check:
            self._check_half_life()

    def _check_half_life(self) -> None:
        try:
            check_half_life(self.store, self.task, self.half_life, "Reporter")
        except Exception:
            if self._owns_store:
                self.store.close()
            raise

    def __repr__(self) -> str:
        return f"Reporter(task={self.task!r}, store={self.store!r})"

    def report(
        self,
        request_id: str,
        success: bool,
        latency_ms: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        metadata: dict[str, Any] | None = None,
        score: float | None = None,
    ) -> bool:
        """Complete a ``choose``: as :meth:`Router.report <adaptive_router.Router.report>`.

        Returns True if recorded, False if the id was already reported (by any process).
        Tokens without ``cost_usd`` are priced from the model recorded with the decision
        and the path's in ``models`` (an override for either first; a ``"provider/model"``
        also as ``"model"``, as the router prices its requests); a cost still unknown is
        the path's declared one (``costs``).
        Raises :class:`UnknownRequestError` for an id no ``choose`` issued, ValueError for
        bad arguments or an id of another task, and :class:`StoreUnavailableError`
        (nothing recorded: report it again later) while the database is unreachable —
        within about 5 s with the default timeouts.
        """
        report = self.validate(
            request_id,
            success,
            latency_ms=latency_ms,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd,
            metadata=metadata,
            score=score,
        )
        return self.claim(report).recorded

    def validate(
        self,
        request_id: str,
        success: bool,
        *,
        latency_ms: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        metadata: dict[str, Any] | None = None,
        score: float | None = None,
    ) -> Report:
        """The report's arguments checked (ValueError naming the first wrong one), stamped
        with the clock's time."""
        if not isinstance(request_id, str) or not request_id:
            raise ValueError(f"request_id must be the string from choose(), got {request_id!r}")
        ok = as_verdict(success)
        if ok is None:
            raise ValueError(f"success must be a bool (or 0/1), got {success!r}")
        latency = check_amount("latency_ms", latency_ms)
        in_tok = check_count("input_tokens", input_tokens)
        out_tok = check_count("output_tokens", output_tokens)
        cost = check_amount("cost_usd", cost_usd)
        meta = check_metadata(metadata)
        if score is not None and as_score(score) is None:
            raise ValueError(f"score must be a number in [0, 1] or None, got {score!r}")
        fraction = None if score is None else as_score(score)
        return Report(request_id, ok, latency, in_tok, out_tok, cost, meta, fraction, self.clock())

    def outcome(self, report: Report, found: PendingDecision) -> Outcome:
        """The outcome ``report`` records for the decision ``found`` (priced from the
        decision's model when only tokens were reported)."""
        if found.task != self.task:
            raise _WrongTask(found.task)
        price = report.cost_usd
        in_tok, out_tok = report.input_tokens, report.output_tokens
        model = found.model or self.models.get(found.path)
        if price is None and (in_tok or out_tok):
            price = self._pricer.call_cost(
                found.model, self.models.get(found.path), in_tok, out_tok
            )
        if price is None:
            price = self.costs.get(found.path)
        return Outcome(
            request_id=report.request_id,
            task=self.task,
            path=found.path,
            attempt=1,
            success=report.success,
            kind=None if report.success else ErrorKind.REJECTED.value,
            latency_ms=report.latency_ms,
            input_tokens=in_tok,
            output_tokens=out_tok,
            cost_usd=price,
            created_at=report.created_at,
            metadata=report.metadata,
            score=report.score,
            context=found.context,
            model=model,
            features=self.decision_features(found),
        )

    def decision_features(self, found: PendingDecision) -> bytes | None:
        """The encoded features ``found``'s outcome carries: none when they have another
        dimension than ``features_dim`` (see the class), with a warning."""
        data = found.features
        if data is None or self.features_dim is None:
            return data
        dim, _ = decode_features(data)
        if dim == self.features_dim:
            return data
        logger.warning(
            "request %s of task %s was chosen with features of dimension %d, the routers now "
            "use %d: its outcome counts as path evidence, not feature evidence",
            found.request_id,
            self.task,
            dim,
            self.features_dim,
            extra={"request_id": found.request_id, "task": self.task, "dim": dim},
        )
        return None

    def claim(
        self,
        report: Report,
        write: Callable[[Callable[[], Sequence[Outcome]]], None] = _default_write,
    ) -> Recorded:
        """Claim the pending decision and record ``report``'s outcome, in one transaction.

        ``write`` runs the transaction (a Router's folds what it wrote into its cache).
        Raises as :meth:`report` does."""
        request_id = report.request_id
        built: list[Outcome] = []

        def build(found: PendingDecision) -> Outcome:
            built.append(self.outcome(report, found))
            return built[-1]

        claimed: list[PendingDecision | str] = []
        recorded: list[Outcome] = []

        def claim() -> list[Outcome]:
            result = self.store.claim_pending(request_id, build, self.half_life)
            claimed.append(result)
            if isinstance(result, PendingDecision):
                # The outcome the claim transaction wrote (its last try, if it was retried).
                recorded.append(built[-1])
            return recorded

        try:
            write(claim)
        except _WrongTask as exc:
            # The transaction rolled back: the decision stays pending for its own task.
            raise ValueError(
                f"report: request_id {request_id!r} belongs to task {exc.args[0]!r}, "
                f"not {self.task!r}; report it through that task's router or Reporter"
            ) from None
        except StoreUnavailableError as exc:
            raise StoreUnavailableError(
                f"report: request {request_id!r} of task {self.task!r} was not recorded, "
                f"the store is unreachable ({exc}); report it again later"
            ) from None
        if claimed[0] == CompleteResult.UNKNOWN:
            raise UnknownRequestError(
                f"report: request_id {request_id!r} is unknown to this store (never chosen, "
                "or expired and dropped); pass the request_id returned by choose()"
            )
        if claimed[0] == CompleteResult.ALREADY_REPORTED:
            logger.warning(
                "report ignored: request %s of task %s already reported",
                request_id,
                self.task,
                extra={"request_id": request_id, "task": self.task},
            )
            return Recorded(False, ())
        return Recorded(True, tuple(recorded))

    def close(self) -> None:
        """Release the store if this Reporter opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
