"""Expected cost and latency per attempt in a named context, mixed with the task level.

Decision math without I/O. A path's cost and latency are learned per context from the
context's own decayed sums (``path_stats`` rows of that context, same half-life as the
success evidence), with the task level as the prior, mixed exactly as
:meth:`Ranking.evidence <adaptive_router.router.ranking.Ranking.evidence>` mixes success
evidence: the task-level sum and weight, decayed to now, are scaled down to at most
``strength`` (``Learning(context_prior_strength=...)``) pseudo-attempts, then the
context's own decayed sum and weight are added. So a new context starts from what the
task knows, and a context where a path costs (or takes) something else soon says so:
the same model can be cheap on short inputs and dear on long ones.

Both sums are relative to their row's ``ref_time``; decaying each to ``now`` before
adding them puts the two rows on one time base (a single row's mean needs no decay: the
factor cancels in ``sum / weight``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from adaptive_router.policies.thompson import decay_factor
from adaptive_router.stores.base import PathEvidence
from adaptive_router.stores.evidence import pooled_costs

__all__ = ["CostRow", "cost_row", "mixed_means"]

#: One path's stored cost and latency evidence:
#: ``(cost_sum, cost_weight, latency_sum, latency_weight, ref_time)``.
CostRow = tuple[float, float, float, float, float]


def cost_row(ev: PathEvidence, half_life: float | None) -> CostRow:
    """The cost and latency part of a path's stored evidence, both positions added
    (:func:`~adaptive_router.stores.evidence.pooled_costs`)."""
    return pooled_costs(ev, half_life)


def _mix(
    t_sum: float,
    t_weight: float,
    t_k: float,
    o_sum: float,
    o_weight: float,
    o_k: float,
    strength: float,
) -> float | None:
    s, w = t_sum * t_k, t_weight * t_k
    if w > strength:
        # The task level counts as at most `strength` attempts: same cap as for success.
        s, w = s * (strength / w), strength
    s += o_sum * o_k
    w += o_weight * o_k
    return s / w if w > 0.0 else None


def mixed_means(
    names: Sequence[str],
    task: Mapping[str, CostRow],
    own: Mapping[str, CostRow],
    now: float,
    half_life: float | None,
    strength: float,
) -> tuple[list[float | None], list[float | None]]:
    """Each path's expected cost (USD) and latency (ms) per attempt in a context, in
    ``names`` order: its own evidence on top of the task level's (capped at ``strength``
    pseudo-attempts); None where neither row has measured anything."""
    costs: list[float | None] = []
    latencies: list[float | None] = []
    for name in names:
        t = task.get(name)
        o = own.get(name)
        if t is None and o is None:
            costs.append(None)
            latencies.append(None)
            continue
        t_k = 0.0 if t is None else decay_factor(now - t[4], half_life)
        o_k = 0.0 if o is None else decay_factor(now - o[4], half_life)
        t = t or (0.0, 0.0, 0.0, 0.0, 0.0)
        o = o or (0.0, 0.0, 0.0, 0.0, 0.0)
        costs.append(_mix(t[0], t[1], t_k, o[0], o[1], o_k, strength))
        latencies.append(_mix(t[2], t[3], t_k, o[2], o[3], o_k, strength))
    return costs, latencies
