"""What a long-lived routing process keeps per request on the memory store: its outcome
log's retention and the bytes each retained outcome costs, as values (tracemalloc's
count of Python allocations, no timings). ``benchmarks/memory.py`` measures the RSS of
a million requests; this fails fast when either of its causes regresses."""

from __future__ import annotations

import gc
import time
import tracemalloc

from adaptive_router import Learning, Path, Router
from adaptive_router.policies.propensity import decision_propensities
from adaptive_router.router.decisions import MAX_BACKLOG
from adaptive_router.stores import MemoryStore
from adaptive_router.stores.memory import MAX_OUTCOMES

PATHS = ("alpha", "beta", "gamma")
#: Python allocations per retained outcome, with its decision record and propensity:
#: ~670 bytes on CPython 3.11 (the Outcome ~216, its request id ~81, the decision record
#: ~123, the log's key and entry ~180, three floats). A decision kept as Python objects,
#: or a second copy of the outcome anywhere, goes well past this.
MAX_BYTES_PER_OUTCOME = 800


def _answer() -> str:
    return "ok"


def _settled_traced_bytes() -> int:
    """Traced bytes once the process is quiet: tracemalloc counts every thread, and the
    router's background threads (propensities, heartbeat) hold short-lived buffers
    while they work, which a loaded host can catch in a single reading (+5 MB once in
    CI). The least of readings 0.1 s apart, stopping when two agree: a transient
    passes, memory the log retains does not."""
    gc.collect()
    low = last = tracemalloc.get_traced_memory()[0]
    for _ in range(30):
        time.sleep(0.1)
        now = tracemalloc.get_traced_memory()[0]
        low = min(low, now)
        if now == last:
            break
        last = now
    return low


def _router(store: MemoryStore) -> Router:
    paths = [Path(_answer, name=n) for n in PATHS]
    return Router(paths, bool, task="t", store=store, learning=Learning(seed=3))


def test_the_memory_store_keeps_its_documented_retention() -> None:
    assert MAX_OUTCOMES == 10_000  # documented in docs/guides/stores.md and the README
    assert MAX_BACKLOG == 2_000
    store = MemoryStore()
    router = _router(store)
    for _ in range(MAX_OUTCOMES + 500):
        router.run()
    router.close()
    kept = store.outcomes("t")
    assert len(kept) == MAX_OUTCOMES
    # Evidence is folded as outcomes arrive: nothing of it is lost with the evicted rows.
    assert sum(p.n for p in router.posteriors()) == MAX_OUTCOMES + 500


def test_a_retained_outcome_and_its_decision_record_stay_compact() -> None:
    store = MemoryStore()
    router = _router(store)
    for _ in range(1_000):
        router.run()
    first = store.outcomes("t")[0]
    # The record is a plain bytes of the fixed layout: version, flags, k, the names, prior,
    # explore, successes[k], failures[k], the first path's index.
    names = sum(2 + len(n) for n in PATHS)
    assert type(first.decision_data) is bytes
    assert len(first.decision_data) == 4 + names + 3 * 8 + 2 * 3 * 8 + 2
    # Loaded before measuring: the first propensity imports its module.
    decision_propensities([first.decision])
    router._decisions.drain()  # type: ignore[union-attr]
    gc.collect()
    tracemalloc.start()
    try:
        before = _settled_traced_bytes()
        # A full log of outcomes allocated while tracing (the warm-up's are evicted).
        for _ in range(MAX_OUTCOMES):
            router.run()
        router._decisions.drain()  # type: ignore[union-attr]  # its queue is not the log
        held = _settled_traced_bytes() - before
        assert len(store.outcomes("t")) == MAX_OUTCOMES
        per_outcome = held / MAX_OUTCOMES
        assert per_outcome <= MAX_BYTES_PER_OUTCOME, f"{per_outcome:.0f} bytes per outcome"
        # Past the retention bound the log holds steady: evicted rows are freed.
        for _ in range(MAX_OUTCOMES // 2):
            router.run()
        router._decisions.drain()  # type: ignore[union-attr]
        grown = _settled_traced_bytes() - before - held
        assert grown <= 0.05 * held, f"{grown:,} bytes more past the bound"
    finally:
        tracemalloc.stop()
        router.close()
