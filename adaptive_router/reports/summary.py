"""Everything a dashboard shows for one task and window, from one call: the data request.

:func:`summary` reads through the Store contract only, with the same functions as
``Router.stats()`` (``Store.window_stats``), ``Router.costs()`` (:func:`cost_report`),
``Router.posteriors()``'s stored evidence and :func:`time_series`, so its numbers equal
theirs for the same pinned window. On the SQL store those reads come from the hourly
rollups (see ``adaptive_router.stores.rollup_reads``): a week of a busy task is read in
tens of milliseconds.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from adaptive_router.outcomes import PathWindowStats, PositionPosterior, Posterior
from adaptive_router.policies.pacing import SpendStatus, paced_costs
from adaptive_router.reports.costs import CostReport, cost_report
from adaptive_router.reports.timeseries import TimeSeries, time_series
from adaptive_router.stores.base import SpendTotals, Store
from adaptive_router.stores.evidence import posteriors_from_states, stored_half_life

__all__ = [
    "Summary",
    "json_number",
    "posterior_dict",
    "read_spend",
    "stats_dict",
    "summary",
    "with_spend_penalties",
]


@dataclass(frozen=True, slots=True)
class Summary:
    """One task over ``since <= created_at < until`` (``until`` None: up to now)."""

    task: str
    since: float
    until: float | None
    now: float
    stats: list[PathWindowStats]
    """Per path: success rate, latency p50/p95, tokens, cost, error kinds."""
    costs: CostReport
    """Spend, cost per 1,000 requests, retries, fallback requests and attempts."""
    series: TimeSeries
    """Traffic share, success rate and spend per time bucket."""
    half_life: float | None
    posteriors: list[Posterior]
    """Task-level posteriors decayed to ``now``."""
    context_posteriors: dict[str, list[Posterior]]
    """Each named context's own evidence, decayed to ``now``."""
    spend: SpendStatus | None = None
    """The task's spend against its spend target (None: the store keeps no spend sums)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: NaN (no attempts in a bucket) and missing figures are None."""
        return {
            "task": self.task,
            "since": self.since,
            "until": self.until,
            "now": self.now,
            "half_life_s": self.half_life,
            "stats": [stats_dict(s) for s in self.stats],
            "costs": self.costs.to_dict(),
            "series": _clean(asdict(self.series)),
            "posteriors": [posterior_dict(p) for p in self.posteriors],
            "context_posteriors": {
                ctx: [posterior_dict(p) for p in ps] for ctx, ps in self.context_posteriors.items()
            },
            "spend": None if self.spend is None else self.spend.to_dict(),
        }


def read_spend(store: Store, task: str, half_life: float | None, now: float) -> SpendStatus | None:
    """``task``'s spend status from the store: its spend sums decayed to ``now``, the
    spend target a router of the task last set and the price λ it gives (what the routers
    compute from the same sums); None for a store without :class:`SpendTotals`."""
    if not isinstance(store, SpendTotals):
        return None
    return SpendStatus.of(store.load_spend(task), store.spend_target(task), half_life, now)


def with_spend_penalties(posteriors: list[Posterior], spend: SpendStatus | None) -> list[Posterior]:
    """``posteriors`` with each ranked path's ``spend_penalty`` (λ times its expected cost
    per attempt, a path of unknown cost charged the dearest known one, as the router does)
    when a spend target is set; unchanged otherwise.

    The store does not say which path is a router's final fallback, which the router
    never ranks or charges: a path never tried first (no first-attempt evidence: the
    fallback, or a path not chosen yet) gets no penalty and sets no one's charge. The
    router charges a cost prior where nothing was measured, which the store does not know
    either."""
    if spend is None or spend.target_usd_per_request is None or not posteriors:
        return posteriors
    ranked = [p for p in posteriors if p.n > 0]
    charged = paced_costs([p.expected_cost_usd for p in ranked])
    lam = spend.price_per_usd
    penalty = {p.path: lam * c for p, c in zip(ranked, charged, strict=True)}
    return [
        dataclasses.replace(p, spend_penalty=penalty[p.path]) if p.path in penalty else p
        for p in posteriors
    ]


def json_number(value: float | None) -> float | None:
    """``value`` for JSON, which has no NaN: a missing figure (None or NaN) is null."""
    return None if value is None or math.isnan(value) else value


def _position_dict(p: PositionPosterior) -> dict[str, Any]:
    lo, hi = p.interval
    return {
        "alpha": p.alpha,
        "beta": p.beta,
        "mean": p.mean,
        "interval": [lo, hi],
        "n": p.n,
        "successes": p.successes,
        "failures": p.failures,
        "updated_at": p.updated_at,
    }


def posterior_dict(p: Posterior) -> dict[str, Any]:
    """One path's posteriors (a ``Router.posteriors()`` item) as JSON-ready data: the rows
    of ``adaptive-router posteriors --json`` and of the dashboard's ``/api/summary``.

    ``alpha``, ``beta``, ``mean``, ``interval``, ``n``, ``successes``, ``failures`` and
    ``updated_at`` are the first-attempt posterior (the path's success rate, what the
    first choice is ranked by); ``after_failure`` holds the same fields for its attempts
    made after another path failed (the later positions' evidence)."""
    return {
        "path": p.path,
        **_position_dict(p.first),
        "after_failure": _position_dict(p.after_failure),
        "traffic_share": p.traffic_share,
        "expected_cost_usd": json_number(p.expected_cost_usd),
        "expected_latency_ms": json_number(p.expected_latency_ms),
        "spend_penalty": json_number(p.spend_penalty),
    }


def stats_dict(s: PathWindowStats) -> dict[str, Any]:
    """One path's window stats (a ``Router.stats()`` item) as JSON-ready data: the rows of
    ``adaptive-router stats --json`` and of the dashboard's ``/api/summary``.

    ``attempts``, ``successes`` and ``success_rate`` count both positions; the
    ``first_*`` fields count the attempts that were their request's first (the path's
    success rate on the inputs the task gets) and the ``after_failure_*`` fields those
    made after another path of the request failed (only the inputs it failed on)."""
    return {
        "path": s.path,
        "attempts": s.attempts,
        "successes": s.successes,
        "success_rate": json_number(s.success_rate),
        "first_attempts": s.first_attempts,
        "first_successes": s.first_successes,
        "first_success_rate": json_number(s.first_success_rate),
        "after_failure_attempts": s.after_failure_attempts,
        "after_failure_successes": s.after_failure_successes,
        "after_failure_success_rate": json_number(s.after_failure_success_rate),
        "timeouts": s.timeouts,
        "latency_p50_ms": s.latency_p50_ms,
        "latency_p95_ms": s.latency_p95_ms,
        "input_tokens": s.input_tokens,
        "output_tokens": s.output_tokens,
        "cost_usd": json_number(s.cost_usd),
        "mean_score": json_number(s.mean_score),
        "errors": dict(sorted(s.errors.items())),
    }


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return json_number(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def summary(
    store: Store,
    task: str,
    since: float,
    until: float | None = None,
    now: float | None = None,
    prior: tuple[float, float] = (1.0, 1.0),
    bucket_s: float | None = None,
) -> Summary:
    """The dashboard's numbers for ``task`` over ``since <= created_at < until`` (epoch
    seconds); posteriors are decayed to ``now`` (default: ``until``, else the wall clock).

    Raises ``ValueError`` naming the parameter when the window is empty or inverted.
    """
    if not math.isfinite(since):
        raise ValueError(f"since must be a finite epoch time in seconds, got {since!r}")
    if until is not None and not until > since:
        raise ValueError(f"until must be later than since ({since!r}), got {until!r}")
    at = now if now is not None else (until if until is not None else time.time())
    contexts = store.load_contexts(task)
    task_states = contexts.get("", {})
    half_life = stored_half_life(task_states)

    spend = read_spend(store, task, half_life, at)

    def decayed(ctx: str) -> list[Posterior]:
        states = contexts.get(ctx, {})
        posts = posteriors_from_states(states, sorted(states), prior, half_life, at)
        return with_spend_penalties(posts, spend) if not ctx else posts

    return Summary(
        task=task,
        since=since,
        until=until,
        now=at,
        stats=store.window_stats(task, since, until),
        costs=cost_report(store, task, since, until),
        series=time_series(store, task, since, until, bucket_s),
        half_life=half_life,
        posteriors=decayed(""),
        context_posteriors={ctx: decayed(ctx) for ctx in sorted(contexts) if ctx},
        spend=spend,
    )
