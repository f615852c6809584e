"""Optional store capabilities are ABCs a store also subclasses, checked with isinstance
(the ``limits`` library's style): no flag, no NotImplementedError, no default that quietly
does nothing. A store with only the required methods works; nobody asks it for more."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import pytest

from adaptive_router import Observability, Path, Router
from adaptive_router.outcomes import Outcome, PathWindowStats
from adaptive_router.router.decisions import DecisionLog
from adaptive_router.router.heartbeat import Heartbeat
from adaptive_router.stores import (
    HealthSnapshots,
    InProcess,
    MemoryStore,
    OutcomeUpdates,
    SharedEvidence,
    SQLStore,
    Store,
)
from adaptive_router.stores.base import PathState, PendingDecision

CAPABILITIES = (InProcess, SharedEvidence, HealthSnapshots, OutcomeUpdates)


def test_each_store_declares_its_capabilities_by_subclassing(sqlite_url: str) -> None:
    memory = MemoryStore()
    assert [c.__name__ for c in CAPABILITIES if isinstance(memory, c)] == [
        "InProcess",
        "SharedEvidence",
        "HealthSnapshots",
        "OutcomeUpdates",
    ]
    sql = SQLStore(sqlite_url)
    try:
        assert [c.__name__ for c in CAPABILITIES if isinstance(sql, c)] == [
            "HealthSnapshots",
            "OutcomeUpdates",
        ]
    finally:
        sql.close()


def test_the_store_contract_has_no_optional_methods_or_flags() -> None:
    """What a capability provides is not on the base class: a store lacking it has no
    method to be called by mistake."""
    for name in ("in_process", "put_health", "health", "remove_health"):
        assert not hasattr(Store, name), name
    for name in ("update_usage", "set_propensities", "shared_contexts"):
        assert not hasattr(Store, name), name
    assert set(HealthSnapshots.__abstractmethods__) == {"put_health", "health", "remove_health"}
    assert set(OutcomeUpdates.__abstractmethods__) == {"update_usage", "set_propensities"}
    assert set(SharedEvidence.__abstractmethods__) == {"shared_contexts"}


class Minimal(Store):
    """A third-party store with the required methods only (over a memory store's)."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    def write(self, outcomes: Sequence[Outcome], half_life: float | None) -> int:
        return self.inner.write(outcomes, half_life)

    def load_contexts(self, task: str) -> dict[str, dict[str, PathState]]:
        return self.inner.load_contexts(task)

    def window_stats(
        self, task: str, since: float, until: float | None = None, context: str | None = None
    ) -> list[PathWindowStats]:
        return self.inner.window_stats(task, since, until, context)

    def tasks(self) -> list[str]:
        return self.inner.tasks()

    def add_pending(self, pending: PendingDecision) -> None:
        self.inner.add_pending(pending)

    def claim_pending(
        self,
        request_id: str,
        build: Callable[[PendingDecision], Outcome],
        half_life: float | None,
    ) -> PendingDecision | str:
        return self.inner.claim_pending(request_id, build, half_life)

    def expire_pending(
        self,
        task: str,
        older_than: float,
        build: Callable[[PendingDecision], Outcome] | None,
        half_life: float | None,
    ) -> list[tuple[PendingDecision, Outcome | None]]:
        return self.inner.expire_pending(task, older_than, build, half_life)

    def outcomes(self, task: str, since: float | None = None) -> list[Outcome]:
        return self.inner.outcomes(task, since)


def test_a_store_with_only_the_required_methods_routes_and_is_asked_for_nothing_else(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    queued: list[int] = []
    original = DecisionLog.written

    def counting(self: DecisionLog, outcomes: Sequence[Outcome]) -> None:
        queued.append(len(outcomes))
        original(self, outcomes)

    monkeypatch.setattr(DecisionLog, "written", counting)
    store = Minimal()
    with caplog.at_level(logging.INFO, logger="adaptive_router"):
        with Router(
            [Path(lambda: "ok", name="a", timeout=None)],
            success_fn=bool,
            task="minimal",
            store=store,
            observability=Observability(heartbeat=None),
        ) as router:
            for _ in range(3):
                assert router.run() == "ok"
            router.flush()
            assert router.buffered_outcomes == 0  # not in process: a writer thread's buffer
        beat = Heartbeat(store, "minimal", dict, list, lambda: 0.0)
        assert beat.beat() is False and beat.beat() is False
        beat.stop()
    rows = store.outcomes("minimal")
    assert [(o.path, o.success) for o in rows] == [("a", True)] * 3
    # No row could take a propensity: none was queued for computing (none is stored).
    assert queued == [] and all(o.propensity is None for o in rows)
    said = [r.getMessage() for r in caplog.records]
    assert sum("keeps no heartbeats" in m for m in said) == 1  # said once, at INFO
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_memory_store_is_written_in_the_callers_thread() -> None:
    """InProcess: routers write it synchronously and start no writer thread."""
    with Router(
        [Path(lambda: "ok", name="a", timeout=None)], bool, "mem", store="memory://"
    ) as router:
        router.run()
        assert router.buffered_outcomes == 0 and len(router.store.outcomes("mem")) == 1
        assert not [t for t in threading.enumerate() if t.name == "adaptive-router-writer[mem]"]
