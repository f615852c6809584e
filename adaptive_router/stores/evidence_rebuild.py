"""Migration 0009's data step: ``path_stats`` split by position, rebuilt from the outcome rows.

Before 0009 every attempt of a path was folded into one row per (task, context, path),
first attempts and attempts after another path's failure alike (*mixed* evidence). 0009
keys the table by position too. :func:`rebuild_rows` replays each group's outcome rows
(oldest first) through the very fold the stores run live
(:func:`~adaptive_router.stores.base.fold_evidence`, same half-life, same contexts, same
kinds that are no evidence), so a rebuilt group is what this version would have learned
from the same outcomes. A group is rebuilt only when its rows account for its stored
counts exactly (as many successes and failures); otherwise — outcome rows deleted, or
folded under other rules by an old version — its mixed row is kept, as first-attempt
evidence, and named in a warning: nothing recorded is lost, and the group's bias fades as
new evidence arrives (and decays, with a half-life). Groups without a ``path_stats`` row
(evidence someone reset by deleting it) stay absent.

:func:`mixed_rows` is the downgrade's: each group's two positions folded back into one
row, which equals what the older version would have kept.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from adaptive_router.outcomes import Outcome
from adaptive_router.policies.thompson import decay_factor
from adaptive_router.stores.base import (
    AFTER_FAILURE,
    FIRST,
    PathEvidence,
    PathState,
    fold_evidence,
)
from adaptive_router.stores.sql_tasks import TASK_ROW

__all__ = ["STATE_COLUMNS", "Rebuilt", "mixed_rows", "rebuild_rows"]

logger = logging.getLogger(__name__)

#: The ``path_stats`` columns of one evidence row, besides its key.
STATE_COLUMNS = (
    "success_w",
    "failure_w",
    "ref_time",
    "successes",
    "failures",
    "half_life_s",
    "updated_at",
    "cost_sum",
    "cost_weight",
    "latency_sum",
    "latency_weight",
)
#: The decayed sums among them.
_SUMS = ("success_w", "failure_w", "cost_sum", "cost_weight", "latency_sum", "latency_weight")
#: Groups named in the warning about kept mixed rows (the rest are counted).
_NAMED = 20

Key = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """The new ``path_stats`` rows (dicts with ``position``), and the (task, context,
    path) groups rebuilt from outcome rows and those kept as they were."""

    rows: list[dict[str, Any]]
    rebuilt: list[Key]
    kept: list[Key]


def _old_rows(conn: sa.Connection) -> dict[Key, dict[str, Any]]:
    cols = ", ".join(STATE_COLUMNS)
    result = conn.execute(sa.text(f"SELECT task, context, path, {cols} FROM path_stats"))
    return {(r[0], r[1], r[2]): dict(zip(STATE_COLUMNS, r[3:], strict=True)) for r in result}


def _half_lives(
    old: dict[Key, dict[str, Any]], settings: dict[str, dict[str, Any]]
) -> dict[str, float | None]:
    """Each task's half-life: the registered one (its settings row), else the most common
    one among its rows with evidence (the routers of a task share one)."""
    votes: dict[str, Counter[float | None]] = {}
    for (task, _, _), row in old.items():
        votes.setdefault(task, Counter())
        if row["successes"] + row["failures"]:
            hl = row["half_life_s"]
            votes[task][None if hl is None else float(hl)] += 1
    out = {task: (c.most_common(1)[0][0] if c else None) for task, c in votes.items()}
    for task, row in settings.items():
        hl = row["half_life_s"]
        out[task] = None if hl is None else float(hl)
    return out


def _replay(
    conn: sa.Connection, task: str, half_life: float | None, wanted: set[tuple[str, str]]
) -> dict[tuple[str, str], PathEvidence]:
    """The task's outcome rows, oldest first, folded per (context, path) of ``wanted``."""
    out: dict[tuple[str, str], PathEvidence] = {}
    # Streamed (a server-side cursor on PostgreSQL): a task may have millions of rows.
    query = sa.text(
        "SELECT request_id, path, attempt, success, error_kind, score, cost_usd, "
        "latency_ms, created_at, context FROM outcomes WHERE task = :task "
        "ORDER BY created_at, id"
    ).execution_options(stream_results=True, yield_per=5_000)
    rows = conn.execute(query, {"task": task})
    for r in rows:
        o = Outcome(
            request_id=r[0],
            task=task,
            path=r[1],
            attempt=int(r[2]),
            success=bool(r[3]),
            kind=r[4],
            score=None if r[5] is None else float(r[5]),
            cost_usd=None if r[6] is None else float(r[6]),
            latency_ms=None if r[7] is None else float(r[7]),
            created_at=float(r[8]),
            context=r[9] or "",
        )
        for ctx in o.evidence_keys():
            if (ctx, o.path) not in wanted:
                continue
            ev = out.get((ctx, o.path))
            if ev is None:
                ev = out[(ctx, o.path)] = PathEvidence()
            fold_evidence(ev, o, half_life)
    return out


def _state_row(key: Key, position: str, st: PathState) -> dict[str, Any]:
    task, context, path = key
    return {
        "task": task,
        "context": context,
        "path": path,
        "position": position,
        "success_w": st.success_w,
        "failure_w": st.failure_w,
        "ref_time": st.ref_time,
        "successes": st.successes,
        "failures": st.failures,
        "half_life_s": st.half_life_s,
        "updated_at": st.ref_time,
        "cost_sum": st.cost_sum,
        "cost_weight": st.cost_weight,
        "latency_sum": st.latency_sum,
        "latency_weight": st.latency_weight,
    }


def rebuild_rows(conn: sa.Connection) -> Rebuilt:
    """The ``path_stats`` rows of the split layout for the (pre-0009) table in ``conn``'s
    database, rebuilt from its outcome rows where they account for the stored counts."""
    old = _old_rows(conn)
    # A task's settings row (its registered half-life) is no evidence: carried over as is.
    settings = {k[0]: old.pop(k) for k in list(old) if k[1] == TASK_ROW and k[2] == TASK_ROW}
    half_lives = _half_lives(old, settings)
    rows: list[dict[str, Any]] = [
        {"task": task, "context": TASK_ROW, "path": TASK_ROW, "position": FIRST, **row}
        for task, row in sorted(settings.items())
    ]
    rebuilt: list[Key] = []
    kept: list[Key] = []
    for task in sorted({t for t, _, _ in old}):
        wanted = {(c, p) for (t, c, p) in old if t == task}
        replayed = _replay(conn, task, half_lives[task], wanted)
        for ctx, path in sorted(wanted):
            key = (task, ctx, path)
            was = old[key]
            ev = replayed.get((ctx, path))
            if ev is not None and (
                ev.first.successes + ev.after_failure.successes == was["successes"]
                and ev.first.failures + ev.after_failure.failures == was["failures"]
            ):
                rebuilt.append(key)
                # A row per position with evidence (the live stores create none before).
                rows += [
                    _state_row(key, pos, ev.at(pos))
                    for pos in (FIRST, AFTER_FAILURE)
                    if ev.at(pos).n
                ]
            else:
                kept.append(key)
                rows.append({"task": task, "context": ctx, "path": path, "position": FIRST, **was})
    if kept:
        shown = ", ".join(f"{t}/{c or '(task level)'}/{p}" for t, c, p in kept[:_NAMED])
        more = f" and {len(kept) - _NAMED} more" if len(kept) > _NAMED else ""
        logger.warning(
            "path_stats: %d of %d (task, context, path) groups were not rebuilt from the "
            "outcome rows (the rows do not account for their counts: deleted, or folded "
            "by an older version's rules); their mixed evidence is kept as first-attempt "
            "evidence: %s%s",
            len(kept),
            len(kept) + len(rebuilt),
            shown,
            more,
            extra={"kept": len(kept), "rebuilt": len(rebuilt)},
        )
    return Rebuilt(rows, rebuilt, kept)


def mixed_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The downgrade's rows: each (task, context, path)'s positions folded into one row,
    what the older version would have kept (the older position's decayed sums decayed to
    the newer one's ``ref_time`` and added; counts added)."""
    groups: dict[Key, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["context"], r["path"]), []).append(r)
    out = []
    for (task, context, path), parts in sorted(groups.items()):
        ref = max(float(p["ref_time"]) for p in parts)
        hl = next((p["half_life_s"] for p in parts if p["half_life_s"] is not None), None)
        row: dict[str, Any] = {
            "task": task,
            "context": context,
            "path": path,
            "ref_time": ref,
            "updated_at": max(float(p["updated_at"]) for p in parts),
            "successes": sum(int(p["successes"]) for p in parts),
            "failures": sum(int(p["failures"]) for p in parts),
            "half_life_s": hl,
        }
        for name in _SUMS:
            row[name] = 0.0
        for p in parts:
            k = decay_factor(ref - float(p["ref_time"]), None if hl is None else float(hl))
            for name in _SUMS:
                row[name] += float(p[name]) * k
        out.append(row)
    return out
