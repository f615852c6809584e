"""Posteriors from stored evidence, without a Router: what ``Router.posteriors()``, the
CLI and the dashboard's summary compute from ``path_stats`` rows."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from adaptive_router.outcomes import PositionPosterior, Posterior
from adaptive_router.policies.thompson import decay_factor
from adaptive_router.stores.base import PathEvidence, PathState

logger = logging.getLogger(__name__)

__all__ = ["pooled_costs", "pooled_means", "posteriors_from_states", "stored_half_life"]


def _decayed(st: PathState | None, now: float, half_life: float | None) -> tuple[float, float]:
    if st is None:
        return 0.0, 0.0
    k = decay_factor(now - st.ref_time, half_life)
    return st.success_w * k, st.failure_w * k


def pooled_costs(
    ev: PathEvidence, half_life: float | None
) -> tuple[float, float, float, float, float]:
    """A path's cost and latency evidence over both positions: ``(cost_sum, cost_weight,
    latency_sum, latency_weight, ref_time)``, the older position's sums decayed to the
    newer one's ``ref_time`` and added. Per-attempt cost and latency depend on the path
    and its prompt far more than on whether an earlier path failed, so both positions
    count (and a path mostly tried second still has a measured cost)."""
    a, b = ev.first, ev.after_failure
    if not b.n:
        return (a.cost_sum, a.cost_weight, a.latency_sum, a.latency_weight, a.ref_time)
    if not a.n:
        return (b.cost_sum, b.cost_weight, b.latency_sum, b.latency_weight, b.ref_time)
    ka = decay_factor(b.ref_time - a.ref_time, half_life)
    kb = decay_factor(a.ref_time - b.ref_time, half_life)
    return (
        a.cost_sum * ka + b.cost_sum * kb,
        a.cost_weight * ka + b.cost_weight * kb,
        a.latency_sum * ka + b.latency_sum * kb,
        a.latency_weight * ka + b.latency_weight * kb,
        max(a.ref_time, b.ref_time),
    )


def pooled_means(ev: PathEvidence, half_life: float | None) -> tuple[float | None, float | None]:
    """A path's decayed mean cost (USD) and latency (ms) per attempt over both positions
    (:func:`pooled_costs`), None where nothing was measured."""
    a, b = ev.first, ev.after_failure
    if not b.n:  # the common case of a path never tried second: one row's means
        return a.mean_cost_usd, a.mean_latency_ms
    c_s, c_w, l_s, l_w, _ = pooled_costs(ev, half_life)
    return (c_s / c_w if c_w > 0.0 else None, l_s / l_w if l_w > 0.0 else None)


def posteriors_from_states(
    states: dict[str, PathEvidence],
    names: Sequence[str],
    prior: tuple[float, float],
    half_life: float | None,
    now: float,
) -> list[Posterior]:
    """Posteriors of ``names`` from stored evidence, decayed to ``now``: each path's
    first-attempt posterior, with its after-failure posterior as ``after_failure``.

    Shared by :meth:`Router.posteriors`, the CLI and the dashboard's summary (which read a
    store without a Router).
    """
    a0, b0 = prior
    rows = []
    total = 0.0
    for name in names:
        ev = states.get(name)
        first = None if ev is None else ev.first
        after = None if ev is None else ev.after_failure
        s1, f1 = _decayed(first, now, half_life)
        s2, f2 = _decayed(after, now, half_life)
        total += s1 + f1 + s2 + f2
        rows.append((name, ev, s1, f1, s2, f2))
    out = []
    for name, ev, s1, f1, s2, f2 in rows:
        cost = latency = None
        if ev is not None:
            cost, latency = pooled_means(ev, half_life)
        first = ev.first if ev is not None else PathState()
        after = ev.after_failure if ev is not None else PathState()
        out.append(
            Posterior(
                path=name,
                alpha=a0 + s1,
                beta=b0 + f1,
                n=first.n,
                successes=first.successes,
                failures=first.failures,
                traffic_share=(s1 + f1 + s2 + f2) / total if total else 0.0,
                updated_at=first.ref_time if first.n else None,
                expected_cost_usd=cost,
                expected_latency_ms=latency,
                after_failure=PositionPosterior(
                    a0 + s2,
                    b0 + f2,
                    after.n,
                    after.successes,
                    after.failures,
                    after.ref_time if after.n else None,
                ),
            )
        )
    return out


def stored_half_life(states: dict[str, PathEvidence]) -> float | None:
    """The half-life the task's rows were learned with (routers of a task share one).

    Should rows disagree (routers misconfigured at different times), the most common
    value among rows with evidence is used and a warning logged.
    """
    every = [st for ev in states.values() for st in ev.states()]
    values = Counter(st.half_life_s for st in every if st.n)
    if not values:
        return None
    if len(values) > 1:
        logger.warning("paths of one task were learned with different half-lives: %s", dict(values))
    return values.most_common(1)[0][0]
