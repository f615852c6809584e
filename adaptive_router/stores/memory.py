"""A store that lives in this process only: for tests, notebooks and single-process use."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import adaptive_router.stores.feature_stats as feature_stats
from adaptive_router import forks
from adaptive_router.outcomes import Outcome, PathWindowStats
from adaptive_router.stores.aggregate import aggregate
from adaptive_router.stores.base import (
    CompleteResult,
    FeatureEvidence,
    HealthSnapshot,
    HealthSnapshots,
    InProcess,
    OutcomeUpdates,
    PathEvidence,
    PendingDecision,
    SharedEvidence,
    SpendStats,
    SpendTotals,
    Store,
    copy_usage,
    fold_evidence,
    fold_spend,
    refuse_invalid,
)

if TYPE_CHECKING:
    from adaptive_router.policies.contextual import LinearStats

#: Outcomes a MemoryStore keeps by default. Each costs ~650 bytes with its decision
#: record (the Outcome, its request id, the log's key and entry): 10,000 keep a
#: long-lived routing process's memory ~6.5 MB above its start (20,000 took 13 MB).
MAX_OUTCOMES = 10_000


class MemoryStore(
    Store, InProcess, SharedEvidence, HealthSnapshots, OutcomeUpdates, SpendTotals, FeatureEvidence
):
    """Everything in dicts behind one lock. Same semantics as :class:`SQLStore`.

    Its evidence is shared with the routers that use it (:class:`SharedEvidence`): a
    router on this store sees every outcome written to it at once, its own and other
    routers' alike.

    ``max_outcomes`` bounds the outcome log kept for ``stats``, ``outcomes()`` and
    ``evaluate()`` (oldest dropped first; :data:`MAX_OUTCOMES` by default); posteriors,
    spend and feature statistics are unaffected because they are folded as outcomes
    arrive.
    """

    def __init__(self, max_outcomes: int = MAX_OUTCOMES) -> None:
        if not isinstance(max_outcomes, int) or max_outcomes < 0:
            raise ValueError(f"max_outcomes must be an int >= 0, got {max_outcomes!r}")
        self._lock = threading.Lock()
        # task -> context -> path -> evidence (first attempts and after a failure)
        self._stats: dict[str, dict[str, dict[str, PathEvidence]]] = {}
        self._outcomes: OrderedDict[tuple[str, int], Outcome] = OrderedDict()
        # The cost each stored outcome added to its task's spend, where not $0: the
        # outcome object is the router's, which a late call rewrites before update_usage,
        # so the difference to add to the spend sums cannot be read from it.
        self._spent: dict[tuple[str, int], float] = {}
        self._pending: dict[str, PendingDecision] = {}
        self._health: dict[str, HealthSnapshot] = {}
        self._half_lives: dict[str, float | None] = {}  # task -> its registered half-life
        self._spend: dict[str, SpendStats] = {}  # task -> its realized spend sums
        self._targets: dict[str, float] = {}  # task -> the spend target last set
        # (task, context, path) -> linear statistics of request features
        self._features: dict[feature_stats.Key, LinearStats] = {}
        self._max_outcomes = max_outcomes
        forks.follow(self)

    def __repr__(self) -> str:
        return "MemoryStore()"

    def _after_fork_in_child(self) -> None:
        """In a forked child the contents are the child's own copy; only the lock, which a
        parent thread may have held at the fork, is renewed."""
        self._lock = threading.Lock()

    def write(self, outcomes: Sequence[Outcome], half_life: float | None) -> int:
        refuse_invalid(outcomes)
        with self._lock:
            return self._write_locked(outcomes, half_life)

    def _write_locked(self, outcomes: Sequence[Outcome], half_life: float | None) -> int:
        new = 0
        for o in outcomes:
            key = (o.request_id, o.attempt)
            if key in self._outcomes:
                continue
            new += 1
            self._outcomes[key] = o
            if o.cost_usd:
                self._spent[key] = o.cost_usd
            if len(self._outcomes) > self._max_outcomes:
                # O(1): a plain dict's next(iter()) rescans deleted slots after many pops.
                self._spent.pop(self._outcomes.popitem(last=False)[0], None)
            spend = self._spend.get(o.task)
            if spend is None:
                spend = self._spend[o.task] = SpendStats()
            fold_spend(spend, o, half_life)
            if o.features is not None and feature_stats.counts(o):
                for ctx in o.evidence_keys():
                    fkey = (o.task, ctx, o.path)
                    self._features[fkey] = feature_stats.fold_group(
                        self._features.get(fkey), [o], half_life
                    )
            keys = o.evidence_keys()
            if not keys:
                continue
            contexts = self._stats.get(o.task)
            if contexts is None:
                contexts = self._stats[o.task] = {}
            for ctx in keys:
                paths = contexts.get(ctx)
                if paths is None:
                    paths = contexts[ctx] = {}
                ev = paths.get(o.path)
                if ev is None:
                    ev = paths[o.path] = PathEvidence()
                fold_evidence(ev, o, half_life)
        return new

    def shared_contexts(
        self, task: str
    ) -> tuple[dict[str, dict[str, PathEvidence]], threading.Lock]:
        with self._lock:
            contexts = self._stats.get(task)
            if contexts is None:
                contexts = self._stats[task] = {}
        return contexts, self._lock

    def register_half_life(self, task: str, half_life: float | None) -> float | None:
        with self._lock:
            if task not in self._half_lives:
                # A task written to before (directly, say) keeps what it was learned with.
                learned = [
                    st.half_life_s
                    for ev in self._stats.get(task, {}).get("", {}).values()
                    for st in ev.states()
                    if st.n
                ]
                self._half_lives[task] = learned[0] if learned else half_life
            return self._half_lives[task]

    def load_features(self, task: str) -> dict[str, dict[str, LinearStats]]:
        out: dict[str, dict[str, LinearStats]] = {}
        with self._lock:
            for (t, ctx, path), st in self._features.items():
                if t == task:
                    out.setdefault(ctx, {})[path] = st.copy()
        return out

    def load_spend(self, task: str) -> SpendStats:
        with self._lock:
            st = self._spend.get(task)
            return SpendStats() if st is None else dataclasses.replace(st)

    def spend_target(self, task: str) -> float | None:
        with self._lock:
            return self._targets.get(task)

    def set_spend_target(self, task: str, target_usd_per_request: float | None) -> None:
        with self._lock:
            if target_usd_per_request is None:
                self._targets.pop(task, None)
            else:
                self._targets[task] = float(target_usd_per_request)

    def update_usage(self, outcome: Outcome) -> bool:
        refuse_invalid([outcome])
        with self._lock:
            key = (outcome.request_id, outcome.attempt)
            stored = self._outcomes.get(key)
            if stored is None:
                return False
            if stored is not outcome:
                copy_usage(outcome, stored)
            # The spend sums move by the difference, at the outcome's time (an unknown
            # cost counts as $0, as when it was written): they equal a replay of the rows.
            cost = outcome.cost_usd or 0.0
            change = cost - self._spent.get(key, 0.0)
            if change:
                if cost:
                    self._spent[key] = cost
                else:
                    self._spent.pop(key, None)
                # The task's sums exist: writing the outcome made them.
                self._spend[stored.task].revise(
                    change, stored.created_at, self._half_lives.get(stored.task)
                )
            return True

    def load_contexts(self, task: str) -> dict[str, dict[str, PathEvidence]]:
        out: dict[str, dict[str, PathEvidence]] = {}
        with self._lock:
            for ctx, paths in self._stats.get(task, {}).items():
                out[ctx] = {path: ev.copy() for path, ev in paths.items()}
        return out

    def window_stats(
        self, task: str, since: float, until: float | None = None, context: str | None = None
    ) -> list[PathWindowStats]:
        with self._lock:
            rows = [
                (
                    o.path,
                    o.attempt,
                    o.success,
                    o.kind,
                    o.latency_ms,
                    o.input_tokens,
                    o.output_tokens,
                    o.cost_usd,
                    o.score,
                )
                for o in self._outcomes.values()
                if o.task == task
                and o.created_at >= since
                and (until is None or o.created_at < until)
                and (context is None or o.context == context)
            ]
        return aggregate(rows)

    def tasks(self) -> list[str]:
        with self._lock:
            # A task a router opened (shared_contexts) but never wrote to has no evidence.
            return sorted(t for t, contexts in self._stats.items() if contexts)

    def add_pending(self, pending: PendingDecision) -> None:
        with self._lock:
            self._pending[pending.request_id] = pending

    def claim_pending(
        self,
        request_id: str,
        build: Callable[[PendingDecision], Outcome],
        half_life: float | None,
    ) -> PendingDecision | str:
        with self._lock:
            found = self._pending.get(request_id)
            if found is None:
                if (request_id, 1) in self._outcomes:
                    return CompleteResult.ALREADY_REPORTED
                return CompleteResult.UNKNOWN
            outcome = build(found)  # first: if it raises, the decision stays pending (a rollback)
            del self._pending[request_id]
            self._write_locked([outcome], half_life)
            return found

    def expire_pending(
        self,
        task: str,
        older_than: float,
        build: Callable[[PendingDecision], Outcome] | None,
        half_life: float | None,
    ) -> list[tuple[PendingDecision, Outcome | None]]:
        with self._lock:
            old = [
                p for p in self._pending.values() if p.task == task and p.created_at < older_than
            ]
            for p in old:
                del self._pending[p.request_id]
            done = [(p, build(p) if build else None) for p in old]
            self._write_locked([o for _, o in done if o is not None], half_life)
            return done

    def set_propensities(self, task: str, values: Sequence[tuple[str, int, float]]) -> int:
        done = 0
        with self._lock:
            for rid, attempt, p in values:
                o = self._outcomes.get((rid, attempt))
                if o is not None and o.task == task:
                    o.propensity = p
                    done += 1
        return done

    def outcomes(self, task: str, since: float | None = None) -> list[Outcome]:
        with self._lock:
            rows = [
                o
                for o in self._outcomes.values()
                if o.task == task and (since is None or o.created_at >= since)
            ]
        return sorted(rows, key=lambda o: (o.created_at, o.request_id, o.attempt))

    def put_health(self, snapshot: HealthSnapshot, expire_before: float) -> None:
        with self._lock:
            self._health[snapshot.router_id] = snapshot
            for rid in [r for r, h in self._health.items() if h.updated_at < expire_before]:
                del self._health[rid]

    def health(self, task: str | None = None) -> list[HealthSnapshot]:
        with self._lock:
            rows = [h for h in self._health.values() if task is None or h.task == task]
        return sorted(rows, key=lambda h: (h.task, h.host, h.pid, h.router_id))

    def remove_health(self, router_id: str) -> None:
        with self._lock:
            self._health.pop(router_id, None)
