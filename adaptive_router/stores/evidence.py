"""Posteriors from stored evidence, without a Router: what ``Router.posteriors()``, the
CLI and the dashboard's summary compute from ``path_stats`` rows."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from adaptive_router.outcomes import Posterior
from adaptive_router.policy import decay_factor
from adaptive_router.stores.base import PathState

logger = logging.getLogger(__name__)


def posteriors_from_states(
    states: dict[str, PathState],
    names: Sequence[str],
    prior: tuple[float, float],
    half_life: float | None,
    now: float,
) -> list[Posterior]:
    """Posteriors of ``names`` from stored evidence, decayed to ``now``.

    Shared by :meth:`Router.posteriors`, the CLI and the dashboard's summary (which read a
    store without a Router).
    """
    rows: list[tuple[str, float, float, int, int, float | None]] = []
    means: list[tuple[float | None, float | None]] = []
    for name in names:
        st = states.get(name)
        if st is None:
            rows.append((name, 0.0, 0.0, 0, 0, None))
            means.append((None, None))
            continue
        means.append((st.mean_cost_usd, st.mean_latency_ms))
        k = decay_factor(now - st.ref_time, half_life)
        rows.append(
            (name, st.success_w * k, st.failure_w * k, st.successes, st.failures, st.ref_time)
        )
    total = sum(s + f for _, s, f, *_ in rows)
    return [
        Posterior(
            path=name,
            alpha=prior[0] + s,
            beta=prior[1] + f,
            n=succ + fail,
            successes=succ,
            failures=fail,
            traffic_share=(s + f) / total if total else 0.0,
            updated_at=ref,
            expected_cost_usd=cost,
            expected_latency_ms=latency,
        )
        for (name, s, f, succ, fail, ref), (cost, latency) in zip(rows, means, strict=True)
    ]


def stored_half_life(states: dict[str, PathState]) -> float | None:
    """The half-life the task's rows were learned with (routers of a task share one).

    Should rows disagree (routers misconfigured at different times), the most common
    value among paths with evidence is used and a warning logged.
    """
    values = Counter(st.half_life_s for st in states.values() if st.n) or Counter(
        st.half_life_s for st in states.values()
    )
    if not values:
        return None
    if len(values) > 1:
        logger.warning("paths of one task were learned with different half-lives: %s", dict(values))
    return values.most_common(1)[0][0]
