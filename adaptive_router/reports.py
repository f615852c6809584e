"""What routing costs, from the recorded outcomes: spend reports, pre-launch estimates, plots.

Every figure comes from the ``outcomes`` rows (one per attempt), so retries and fallback
attempts are paid for like first attempts. An attempt that got no billable answer (an
error status such as a 5xx or a 429, or a refused connection) cost $0, known. An attempt
whose cost is unknown (no model, a model without a price, no token counts, or a
client-side timeout the provider may still bill) is counted apart and never as $0: the
reported spend is then a lower bound, and the report says by how many attempts.

Plotting needs the optional ``matplotlib`` (``pip install 'adaptive-router[plot]'``); it is
imported only when a plot is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Any, NamedTuple

import sqlalchemy as sa

from adaptive_router.costs import Pricer
from adaptive_router.outcomes import UNBILLED, ErrorKind
from adaptive_router.stores.base import Store
from adaptive_router.stores.schema import outcomes as outcomes_table
from adaptive_router.stores.sql import SQLStore

__all__ = [
    "CostEstimate",
    "CostReport",
    "PathCost",
    "PathEstimate",
    "PathSpec",
    "PlotUnavailableError",
    "TimeSeries",
    "cost_report",
    "cost_reports",
    "estimate_cost_per_1000",
    "plot_report",
    "time_series",
]

_TIMEOUT = ErrorKind.TIMEOUT.value


class PlotUnavailableError(RuntimeError):
    """Plotting was asked for without matplotlib (the ``plot`` extra) installed."""


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
            "complete": self.complete,
            "cost_per_request": self.cost_per_request,
            "cost_per_1000_requests": self.cost_per_1000_requests,
            "paths": [p.to_dict() for p in self.paths],
        }


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


class _PathRow(NamedTuple):
    path: str
    requests: int
    attempts: int
    first: int
    fallback: int
    successes: int
    retries: int
    timeouts: int
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    priced: int
    unpriced_tokens: int


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _add(total: int | None, value: int | None) -> int | None:
    """A sum of the known values: unknown (None) until one is known."""
    return total if value is None else (total or 0) + value


def _known_sum(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _sql_aggregates(
    store: SQLStore, task: str, since: float, until: float | None
) -> tuple[list[_PathRow], tuple[int, int, int]]:
    """Per-path sums and request counts computed by the database (no rows shipped)."""
    c = outcomes_table.c
    where = [c.task == task, c.created_at >= since]
    if until is not None:
        where.append(c.created_at < until)

    def count_if(cond: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((cond, 1), else_=0)), 0)

    per_path = (
        sa.select(
            c.path,
            sa.func.count(sa.distinct(c.request_id)),
            sa.func.count(),
            count_if(c.attempt == 1),
            count_if(c.attempt > 1),
            count_if(c.success),
            sa.func.coalesce(sa.func.sum(c.retries), 0),
            count_if(c.error_kind == _TIMEOUT),
            # NULL (unknown) when no attempt reported tokens: never shown as 0.
            sa.func.sum(c.input_tokens),
            sa.func.sum(c.output_tokens),
            sa.func.sum(c.cost_usd),
            # Rows written before unbilled failures were recorded as $0 have NULL there.
            count_if(c.cost_usd.is_not(None) | c.error_kind.in_(sorted(UNBILLED))),
            count_if(
                c.cost_usd.is_(None)
                & (c.error_kind.is_(None) | c.error_kind.not_in(sorted(UNBILLED)))
                & (c.input_tokens.is_not(None) | c.output_tokens.is_not(None))
            ),
        )
        .where(*where)
        .group_by(c.path)
    )
    totals = sa.select(
        sa.func.count(sa.distinct(c.request_id)),
        sa.func.count(sa.distinct(sa.case((c.success, c.request_id)))),
        sa.func.count(sa.distinct(sa.case((c.attempt > 1, c.request_id)))),
    ).where(*where)
    with store.engine.connect() as conn:
        rows = [
            # PostgreSQL returns SUM(bigint) as numeric (Decimal): normalise the types.
            _PathRow(
                str(r[0]),
                int(r[1]),
                int(r[2]),
                int(r[3]),
                int(r[4]),
                int(r[5]),
                int(r[6]),
                int(r[7]),
                _int(r[8]),
                _int(r[9]),
                None if r[10] is None else float(r[10]),
                int(r[11]),
                int(r[12]),
            )
            for r in conn.execute(per_path)
        ]
        t = conn.execute(totals).one()
    return rows, (int(t[0]), int(t[1]), int(t[2]))


def _python_aggregates(
    store: Store, task: str, since: float, until: float | None
) -> tuple[list[_PathRow], tuple[int, int, int]]:
    """The same sums over ``store.outcomes`` (memory and custom stores)."""
    accs: dict[str, _PathAcc] = {}
    requests: set[str] = set()
    succeeded: set[str] = set()
    fell_back: set[str] = set()
    for o in store.outcomes(task, since):
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
        acc.input_tokens = _add(acc.input_tokens, o.input_tokens)
        acc.output_tokens = _add(acc.output_tokens, o.output_tokens)
        if o.cost_usd is not None:
            acc.cost += o.cost_usd
            acc.priced += 1
        elif o.kind in UNBILLED:
            acc.priced += 1  # recorded before unbilled failures were written as $0
        elif o.input_tokens is not None or o.output_tokens is not None:
            acc.unpriced_tokens += 1
    rows = [
        _PathRow(
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


def cost_report(store: Store, task: str, since: float, until: float | None = None) -> CostReport:
    """The spend of ``task`` over ``since <= created_at < until`` (epoch seconds).

    SQL stores aggregate in the database (GROUP BY path), so a day of traffic costs one
    query, not a million rows in Python; other stores are summed from ``store.outcomes``.
    """
    if isinstance(store, SQLStore):
        rows, (requests, succeeded, fell_back) = _sql_aggregates(store, task, since, until)
    else:
        rows, (requests, succeeded, fell_back) = _python_aggregates(store, task, since, until)
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
    )


def cost_reports(store: Store, since: float, until: float | None = None) -> list[CostReport]:
    """:func:`cost_report` for every task in the store that had traffic in the window."""
    reports = (cost_report(store, task, since, until) for task in store.tasks())
    return [r for r in reports if r.requests]


# -- pre-launch estimate -----------------------------------------------------------------


class PathSpec(NamedTuple):
    """A path as the estimate sees it.

    ``price`` is a model name priced by ``genai-prices`` (through :class:`Pricer`, so
    ``prices`` overrides apply) or ``(input_usd_per_million, output_usd_per_million)``;
    ``(0, 0)`` for a free local path such as a regex.
    """

    name: str
    price: str | tuple[float, float]
    success_rate: float
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class PathEstimate:
    """One path's expected share of the traffic and cost."""

    path: str
    cost_per_call: float
    reach_probability: float
    """Probability that a request gets as far as this path (every earlier one failed)."""
    success_rate: float

    @property
    def attempts_per_1000(self) -> float:
        return 1000.0 * self.reach_probability

    @property
    def cost_per_1000(self) -> float:
        return 1000.0 * self.reach_probability * self.cost_per_call

    @property
    def successes_per_1000(self) -> float:
        return 1000.0 * self.reach_probability * self.success_rate


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """Expected cost of trying the paths in ``order`` until one succeeds."""

    order: tuple[str, ...]
    paths: tuple[PathEstimate, ...]

    @property
    def cost_per_request(self) -> float:
        return math.fsum(p.reach_probability * p.cost_per_call for p in self.paths)

    @property
    def cost_per_1000_requests(self) -> float:
        return 1000.0 * self.cost_per_request

    @property
    def attempts_per_request(self) -> float:
        return math.fsum(p.reach_probability for p in self.paths)

    @property
    def success_rate(self) -> float:
        """Probability that some path succeeds (1 minus the chance all of them fail)."""
        return 1.0 - math.prod(1.0 - p.success_rate for p in self.paths)


def _spec(item: PathSpec | Sequence[Any]) -> PathSpec:
    if isinstance(item, PathSpec):
        spec = item
    else:
        try:
            spec = PathSpec(*item)
        except TypeError:
            raise ValueError(
                "each path must be (name, model or (input_per_mtok, output_per_mtok), "
                f"success_rate, input_tokens, output_tokens), got {item!r}"
            ) from None
    rate = spec.success_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"path {spec.name!r}: success_rate must be in [0, 1], got {rate!r}")
    for label, n in (("input_tokens", spec.input_tokens), ("output_tokens", spec.output_tokens)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"path {spec.name!r}: {label} must be an int >= 0, got {n!r}")
    return spec


def _call_cost(spec: PathSpec, pricer: Pricer) -> float:
    price = spec.price
    if isinstance(price, str):
        cost = pricer.cost(price, spec.input_tokens, spec.output_tokens)
        if cost is None:
            raise ValueError(
                f"path {spec.name!r}: no price known for model {price!r}; pass its price as "
                "(input_usd_per_million, output_usd_per_million) or in prices={...}"
            )
        return cost
    # A pair is priced exactly as a Pricer override would price it.
    pair = Pricer({spec.name: price}).overrides[spec.name]
    return (spec.input_tokens * pair[0] + spec.output_tokens * pair[1]) / 1_000_000


def estimate_cost_per_1000(
    paths: Sequence[PathSpec | Sequence[Any]],
    order: Sequence[str] | str | None = None,
    *,
    fallback: PathSpec | Sequence[Any] | None = None,
    prices: Mapping[str, tuple[float, float]] | Pricer | None = None,
) -> CostEstimate:
    """Expected cost per 1,000 requests before launch, fallback attempts included.

    Each request tries the paths in ``order`` until one succeeds, so path *i* is called
    with probability ``prod(1 - success_rate_j for j < i)`` and the expected cost of a
    request is the sum of those probabilities times each path's cost per call. A failed
    attempt is assumed to cost as much as a successful one (a rejected answer is billed in
    full); where failures are errors billed at nothing, the estimate is an upper bound.

    ``order``: ``None`` keeps the given order; a list of names sets it (each path once);
    ``"best_first"`` sorts by success rate, highest first, the order Thompson Sampling
    converges to. ``fallback`` is always tried last, as the Router's final path is.
    ``paths`` items are :class:`PathSpec` or plain tuples in its field order.
    """
    specs = [_spec(p) for p in paths]
    if not specs:
        raise ValueError("paths is empty; give at least one path to estimate")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate path names in {names}")
    by_name = {s.name: s for s in specs}
    if order is None:
        ranked = specs
    elif isinstance(order, str):
        if order != "best_first":
            raise ValueError(f"order must be None, 'best_first' or a list of names, got {order!r}")
        ranked = sorted(specs, key=lambda s: -s.success_rate)  # stable: ties keep given order
    else:
        if sorted(order) != sorted(names):
            raise ValueError(f"order {list(order)} must name each of {names} exactly once")
        ranked = [by_name[n] for n in order]
    if fallback is not None:
        fb = _spec(fallback)
        if fb.name in by_name:
            raise ValueError(f"fallback {fb.name!r} is also in paths")
        ranked = [*ranked, fb]
    pricer = prices if isinstance(prices, Pricer) else Pricer(prices)
    reach = 1.0
    out = []
    for spec in ranked:
        out.append(PathEstimate(spec.name, _call_cost(spec, pricer), reach, spec.success_rate))
        reach *= 1.0 - spec.success_rate
    return CostEstimate(order=tuple(s.name for s in ranked), paths=tuple(out))


# -- time series and plots ---------------------------------------------------------------

#: Bucket widths a plot may use (seconds): the smallest giving at most MAX_BUCKETS buckets.
_NICE_WIDTHS = (
    *(1, 5, 10, 15, 30),
    *(60 * m for m in (1, 2, 5, 10, 15, 30)),
    *(3600 * h for h in (1, 2, 3, 6, 12, 24)),
    7 * 86400,
)
MAX_BUCKETS = 60

# path, attempt, success, cost, created_at (when the attempt finished), request_id, latency_ms
_Row = tuple[str, int, bool, "float | None", float, str, "float | None"]


def _rows(store: Store, task: str, since: float, until: float | None) -> list[_Row]:
    if isinstance(store, SQLStore):
        # A few columns rather than whole Outcome objects: a day of traffic plots quickly.
        c = outcomes_table.c
        q = (
            sa.select(
                c.path, c.attempt, c.success, c.cost_usd, c.created_at, c.request_id, c.latency_ms
            )
            .where(c.task == task, c.created_at >= since)
            .order_by(c.created_at)
        )
        if until is not None:
            q = q.where(c.created_at < until)
        with store.engine.connect() as conn:
            return [
                (str(r[0]), int(r[1]), bool(r[2]), r[3], float(r[4]), str(r[5]), r[6])
                for r in conn.execute(q)
            ]
    return [
        (o.path, o.attempt, o.success, o.cost_usd, o.created_at, o.request_id, o.latency_ms)
        for o in store.outcomes(task, since)
        if until is None or o.created_at < until
    ]


def _request_starts(rows: list[_Row]) -> dict[str, float]:
    """When each request started: its earliest attempt's finish time minus its latency.

    Outcomes are stamped when an attempt finishes; bucketing by that would move a slow,
    retrying attempt into a later bucket than the request it belongs to (a path whose
    breaker opened would seem to keep its traffic while its last retries drain).
    """
    starts: dict[str, float] = {}
    for r in rows:
        began = r[4] - (r[6] or 0.0) / 1000.0
        if began < starts.get(r[5], math.inf):
            starts[r[5]] = began
    return starts


def _bucket_width(span: float) -> float:
    for width in _NICE_WIDTHS:
        if span / width <= MAX_BUCKETS:
            return float(width)
    return float(math.ceil(span / MAX_BUCKETS))


@dataclass(frozen=True, slots=True)
class TimeSeries:
    """Per-path figures per time bucket (``starts`` are the buckets' start times)."""

    task: str
    bucket_s: float
    starts: tuple[float, ...]
    paths: tuple[str, ...]
    requests: tuple[int, ...]
    """Requests per bucket (counted by their first attempt)."""
    first_share: dict[str, tuple[float, ...]]
    """Share of each bucket's requests whose first attempt went to the path (0 if none)."""
    attempts: dict[str, tuple[int, ...]]
    success_rate: dict[str, tuple[float, ...]]
    """Attempt success rate; NaN in buckets where the path was not attempted."""
    cost_usd: dict[str, tuple[float, ...]]
    """Known spend per bucket; NaN where the path had attempts but no known cost."""
    unknown_cost_attempts: int


def time_series(
    store: Store,
    task: str,
    since: float,
    until: float | None = None,
    bucket_s: float | None = None,
) -> TimeSeries:
    """Bucket the task's outcomes in time; the bucket width is chosen if not given.

    Each request, with all its attempts, falls in the bucket where it *started* (its first
    attempt's finish time minus that attempt's latency), so slow retries are not drawn
    after the fact. The buckets span the first to the last request start in the window
    (not the whole window), so a short burst of traffic in a long window is still drawn in
    detail.
    """
    rows = _rows(store, task, since, until)
    if not rows:
        return TimeSeries(task, bucket_s or 60.0, (), (), (), {}, {}, {}, {}, 0)
    # Every attempt is counted in the bucket where its request started.
    starts = _request_starts(rows)
    t0 = min(starts.values())
    t1 = max(starts.values())
    width = float(bucket_s) if bucket_s else _bucket_width(max(t1 - t0, 1.0))
    if not (width > 0 and math.isfinite(width)):
        raise ValueError(f"bucket_s must be a positive number of seconds, got {bucket_s!r}")
    # Buckets are aligned to multiples of the width, so the ticks land on round times.
    base = math.floor(t0 / width) * width
    n = int((t1 - base) // width) + 1
    paths = tuple(sorted({r[0] for r in rows}))
    first = {p: [0] * n for p in paths}
    tried = {p: [0] * n for p in paths}
    won = {p: [0] * n for p in paths}
    spend = {p: [0.0] * n for p in paths}
    priced = {p: [0] * n for p in paths}
    requests = [0] * n
    unknown = 0
    for path, attempt, success, cost, _finished, request_id, _latency in rows:
        i = min(int((starts[request_id] - base) // width), n - 1)
        tried[path][i] += 1
        won[path][i] += success
        if attempt == 1:
            first[path][i] += 1
            requests[i] += 1
        if cost is None:
            unknown += 1
        else:
            spend[path][i] += cost
            priced[path][i] += 1
    nan = math.nan
    return TimeSeries(
        task=task,
        bucket_s=width,
        starts=tuple(base + i * width for i in range(n)),
        paths=paths,
        requests=tuple(requests),
        first_share={
            p: tuple(first[p][i] / requests[i] if requests[i] else 0.0 for i in range(n))
            for p in paths
        },
        attempts={p: tuple(tried[p]) for p in paths},
        success_rate={
            p: tuple(won[p][i] / tried[p][i] if tried[p][i] else nan for i in range(n))
            for p in paths
        },
        cost_usd={
            p: tuple(
                spend[p][i] if priced[p][i] else (nan if tried[p][i] else 0.0) for i in range(n)
            )
            for p in paths
        },
        unknown_cost_attempts=unknown,
    )


def _width_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def plot_report(
    store: Store,
    task: str,
    since: float,
    out_path: str | FilePath,
    until: float | None = None,
    bucket_s: float | None = None,
) -> FilePath:
    """Draw traffic share, success rate and cost per path over time into a PNG.

    Three panels sharing a UTC time axis: the share of requests whose *first* attempt went
    to each path (stacked, so a traffic shift reads as one colour giving way to another),
    each path's attempt success rate, and each path's known spend per bucket. Raises
    ``ValueError`` when the window holds no outcomes, :class:`PlotUnavailableError` (a
    ``RuntimeError``) when matplotlib is not installed. Returns the file written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailableError(
            "plotting needs matplotlib; pip install 'adaptive-router[plot]'"
        ) from None
    ts = time_series(store, task, since, until, bucket_s)
    if not ts.starts:
        raise ValueError(f"no outcomes for task {task!r} since {_utc(since):%Y-%m-%d %H:%M} UTC")
    # The figure API with an explicit Agg canvas: no pyplot global state, no GUI backend,
    # safe from any thread.
    fig = Figure(figsize=(11, 9), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    share_ax, rate_ax, cost_ax = fig.subplots(3, 1, sharex=True)
    colors = {p: f"C{i % 10}" for i, p in enumerate(ts.paths)}
    # Points at bucket centres: a bucket's figure describes its whole width.
    x = [_utc(t + ts.bucket_s / 2) for t in ts.starts]

    share_ax.stackplot(
        x,
        [ts.first_share[p] for p in ts.paths],
        labels=list(ts.paths),
        colors=[colors[p] for p in ts.paths],
        alpha=0.85,
        step="mid",
    )
    share_ax.set_ylim(0, 1)
    share_ax.set_ylabel("traffic share\n(first attempts)")
    share_ax.yaxis.set_major_formatter("{x:.0%}")
    share_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")

    for p in ts.paths:
        rate_ax.plot(x, ts.success_rate[p], marker=".", color=colors[p], label=p)
    rate_ax.set_ylim(-0.02, 1.02)
    rate_ax.set_ylabel("success rate\n(per attempt)")
    rate_ax.yaxis.set_major_formatter("{x:.0%}")
    rate_ax.grid(alpha=0.3)

    # Paths that never cost anything known (a regex fallback) would only draw a line at 0.
    spenders = [p for p in ts.paths if any(v > 0 for v in ts.cost_usd[p] if not math.isnan(v))]
    if spenders:
        for p in spenders:
            cost_ax.plot(x, ts.cost_usd[p], marker=".", color=colors[p], label=p)
        cost_ax.set_ylim(bottom=0)
    else:
        cost_ax.text(
            0.5,
            0.5,
            "no cost recorded: these paths report no tokens or cost",
            transform=cost_ax.transAxes,
            ha="center",
            va="center",
            color="0.4",
        )
        cost_ax.set_yticks([])
    cost_ax.set_ylabel(f"spend (USD)\nper {_width_text(ts.bucket_s)}")
    cost_ax.grid(alpha=0.3)
    if ts.unknown_cost_attempts:
        cost_ax.annotate(
            f"{ts.unknown_cost_attempts} attempts of unknown cost not included",
            xy=(0.0, -0.32),
            xycoords="axes fraction",
            fontsize="small",
            color="0.4",
        )
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    cost_ax.xaxis.set_major_locator(locator)
    cost_ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    cost_ax.set_xlabel("time (UTC)")
    total = sum(ts.requests)
    fig.suptitle(
        f"{task} · {total} requests · {_utc(ts.starts[0]):%Y-%m-%d %H:%M} to "
        f"{_utc(ts.starts[-1] + ts.bucket_s):%Y-%m-%d %H:%M} UTC · "
        f"buckets of {_width_text(ts.bucket_s)}"
    )
    out = FilePath(out_path)
    fig.savefig(out, format="png")
    return out
