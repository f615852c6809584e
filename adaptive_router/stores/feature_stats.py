"""Feature evidence: each path's additive linear statistics per (task, context).

A contextual router (``Router(features=...)``) ranks by per-path Bayesian linear models
(:mod:`adaptive_router.policies.contextual`) whose sufficient statistics
(:class:`~adaptive_router.policies.contextual.LinearStats`: Σ w x xᵀ, Σ w y x, decayed
like the Beta evidence) are additive: folded in any order and partition, they equal one
replay (to rounding). The stores fold them from the outcomes they write, in the same
transaction, exactly once (only new rows), like ``path_stats``.

What counts: a request's **first attempt** that carries its feature vector
(``Outcome.features``) and is evidence (its kind is), at the task level and in its
context. Later attempts add Beta evidence only: the linear model ranks the first choice,
and its cold start compares its weight with the first-attempt Beta weight.

The contextual module needs scipy, which a router without features must not load: it
is imported when the first outcome with features is folded, not with the stores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from adaptive_router.features import decode_features
from adaptive_router.outcomes import Outcome

if TYPE_CHECKING:
    from adaptive_router.policies.contextual import LinearStats

__all__ = ["Key", "fold_group", "groups", "pack", "unpack"]

#: (task, context, path)
Key = tuple[str, str, str]


def counts(o: Outcome) -> bool:
    """Whether ``o`` is feature evidence: a first attempt with features that is evidence."""
    return o.features is not None and o.attempt == 1 and bool(o.evidence_keys())


def groups(outcomes: Iterable[Outcome]) -> dict[Key, list[Outcome]]:
    """The feature evidence of ``outcomes`` by (task, context, path), each group in time
    order (ties in the given order); the task level and the outcome's context."""
    out: dict[Key, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        if counts(o):
            for ctx in o.evidence_keys():
                out[(o.task, ctx, o.path)].append(o)
    for group in out.values():
        group.sort(key=lambda o: o.created_at)
    return dict(out)


def fold_group(
    stats: LinearStats | None, group: Sequence[Outcome], half_life: float | None
) -> LinearStats:
    """``stats`` (None: none yet) with ``group``'s outcomes folded in. An outcome of
    another dimension than the statistics' starts them afresh at its dimension: a router
    of the task changed its feature dimension, and statistics of different hashings
    cannot be added (every router of a task must use one dimension). A router keeps a
    decision of the old dimension reported after such a change out of this (the
    Reporter's ``features_dim``), so it cannot restart the statistics backwards."""
    from adaptive_router.policies.contextual import LinearStats, with_bias

    for o in group:
        assert o.features is not None  # groups() keeps only those
        dim, x = decode_features(o.features)
        if stats is None or stats.dim != dim:
            stats = LinearStats.zeros(dim)
        idx, val = with_bias(x, dim)
        stats.fold(idx, val, o.reward, o.created_at, half_life)
    assert stats is not None  # a group is never empty
    return stats


def pack(stats: LinearStats) -> tuple[int, bytes, bytes]:
    """``(dim, xx, xy)``: the upper triangle of Σ w x xᵀ row by row and Σ w y x, as
    little-endian float64s (what ``feature_stats`` stores)."""
    d = stats.dim + 1
    rows, cols = np.triu_indices(d)
    return (
        stats.dim,
        np.ascontiguousarray(stats.xx[rows, cols], dtype="<f8").tobytes(),
        np.ascontiguousarray(stats.xy, dtype="<f8").tobytes(),
    )


def unpack(dim: int, xx: bytes, xy: bytes, ref_time: float, count: int) -> LinearStats:
    """The statistics :func:`pack` wrote."""
    from adaptive_router.policies.contextual import LinearStats

    d = dim + 1
    rows, cols = np.triu_indices(d)
    full = np.zeros((d, d))
    full[rows, cols] = np.frombuffer(xx, dtype="<f8")
    return LinearStats(full, np.frombuffer(xy, dtype="<f8").copy(), ref_time, count)
