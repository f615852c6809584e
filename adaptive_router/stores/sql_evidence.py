"""The SQL store's evidence table, ``path_stats``: the atomic upsert that adds a batch's
evidence (one row per task, context, path and position), and the read of a task's rows.

Each row keeps decayed sums relative to its newest observation time ``ref_time``; the
upsert multiplies the stored sums by the decay factor when the batch is newer, or adds the
batch already decayed when it is older, so many writers equal a replay in any order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from adaptive_router.outcomes import Outcome
from adaptive_router.policies.thompson import MAX_HALF_LIVES, TINY, decay_factor
from adaptive_router.stores.base import FIRST, PathEvidence, PathState, position_of
from adaptive_router.stores.schema import path_stats

__all__ = ["build_upsert", "decay_expr", "increments", "load", "scaled"]


def decay_expr(elapsed: sa.ColumnElement[float], half_life: float | None) -> Any:
    """SQL twin of :func:`adaptive_router.policies.thompson.decay_factor`."""
    if half_life is None:
        return sa.literal(1.0, sa.Float)
    halvings = elapsed / sa.literal(half_life, sa.Float)
    return sa.case(
        (elapsed <= 0, sa.literal(1.0, sa.Float)),
        (halvings > MAX_HALF_LIVES, sa.literal(0.0, sa.Float)),
        else_=sa.func.power(sa.literal(0.5, sa.Float), halvings),
    )


def scaled(value: sa.ColumnElement[float], factor: Any) -> Any:
    """SQL twin of ``policy._scale``: snap tiny sums to 0 so PostgreSQL never underflows."""
    return sa.case((value < TINY, sa.literal(0.0, sa.Float)), else_=value * factor)


def build_upsert(insert: Callable[[sa.Table], Any], half_life: float | None) -> Any:
    """The ``INSERT … ON CONFLICT DO UPDATE`` that adds rows of :func:`increments` made
    with ``half_life`` (``insert`` is the dialect's ``insert``). Compiling it costs ~0.6 ms:
    the store builds it once per half-life."""
    stmt = insert(path_stats)
    ps, ex = path_stats.c, stmt.excluded
    keep = decay_expr(ex.ref_time - ps.ref_time, half_life)
    add = decay_expr(ps.ref_time - ex.ref_time, half_life)
    newer = ex.ref_time > ps.ref_time
    return stmt.on_conflict_do_update(
        index_elements=["task", "context", "path", "position"],
        set_={
            "success_w": scaled(ps.success_w, keep) + scaled(ex.success_w, add),
            "failure_w": scaled(ps.failure_w, keep) + scaled(ex.failure_w, add),
            "ref_time": sa.case((newer, ex.ref_time), else_=ps.ref_time),
            "successes": ps.successes + ex.successes,
            "failures": ps.failures + ex.failures,
            "half_life_s": ex.half_life_s,
            "cost_sum": scaled(ps.cost_sum, keep) + scaled(ex.cost_sum, add),
            "cost_weight": scaled(ps.cost_weight, keep) + scaled(ex.cost_weight, add),
            "latency_sum": scaled(ps.latency_sum, keep) + scaled(ex.latency_sum, add),
            "latency_weight": scaled(ps.latency_weight, keep) + scaled(ex.latency_weight, add),
            "updated_at": sa.case((newer, ex.updated_at), else_=ps.updated_at),
        },
    )


def increments(new: Sequence[Outcome], half_life: float | None) -> list[dict[str, Any]]:
    """The upsert's parameters for newly inserted outcomes: one row per (task, context,
    path, position), in key order (a fixed lock order across processes rules out deadlocks
    between batches). Each outcome counts at the task level and in its context, at the
    position its attempt number says."""
    groups: dict[tuple[str, str, str, str], list[Outcome]] = defaultdict(list)
    for o in new:
        for ctx in o.evidence_keys():
            groups[(o.task, ctx, o.path, position_of(o.attempt))].append(o)
    return [_increment(*key, groups[key], half_life) for key in sorted(groups)]


def _increment(
    task: str,
    context: str,
    path: str,
    position: str,
    group: list[Outcome],
    half_life: float | None,
) -> dict[str, Any]:
    """One path_stats row's increment: the group's evidence decayed to its newest time."""
    ref = max(o.created_at for o in group)
    s_w = f_w = c_s = c_w = l_s = l_w = 0.0
    succ = 0
    for o in group:
        w = decay_factor(ref - o.created_at, half_life)
        s_w += o.reward * w
        f_w += (1.0 - o.reward) * w
        succ += 1 if o.success else 0
        # Attempts of unknown cost (or latency) add to neither the sum nor its weight.
        if o.cost_usd is not None:
            c_s += o.cost_usd * w
            c_w += w
        if o.latency_ms is not None:
            l_s += o.latency_ms * w
            l_w += w
    return {
        "task": task,
        "context": context,
        "path": path,
        "position": position,
        "success_w": s_w,
        "failure_w": f_w,
        "ref_time": ref,
        "successes": succ,
        "failures": len(group) - succ,
        "half_life_s": half_life,
        "cost_sum": c_s,
        "cost_weight": c_w,
        "latency_sum": l_s,
        "latency_weight": l_w,
        "updated_at": ref,
    }


def load(engine: sa.Engine, task: str, context: str | None) -> dict[str, dict[str, PathEvidence]]:
    """context -> path -> evidence for ``task`` (one context only when given)."""
    c = path_stats.c
    q = sa.select(
        c.context,
        c.path,
        c.position,
        c.success_w,
        c.failure_w,
        c.ref_time,
        c.successes,
        c.failures,
        c.half_life_s,
        c.cost_sum,
        c.cost_weight,
        c.latency_sum,
        c.latency_weight,
    ).where(c.task == task)
    if context is not None:
        q = q.where(c.context == context)
    out: dict[str, dict[str, PathEvidence]] = {}
    with engine.connect() as conn:
        for r in conn.execute(q):
            paths = out.setdefault(r[0], {})
            ev = paths.get(r[1])
            if ev is None:
                ev = paths[r[1]] = PathEvidence()
            state = PathState(
                float(r[3]),
                float(r[4]),
                float(r[5]),
                int(r[6]),
                int(r[7]),
                None if r[8] is None else float(r[8]),
                float(r[9]),
                float(r[10]),
                float(r[11]),
                float(r[12]),
            )
            if r[2] == FIRST:
                ev.first = state
            else:
                ev.after_failure = state
    return out
