"""Many processes and threads on one database: nothing lost, nothing counted twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path as FsPath

import pytest
import sqlalchemy as sa

from adaptive_router import SQLStore
from adaptive_router.outcomes import Outcome
from adaptive_router.policies.thompson import decay_factor
from adaptive_router.stores.base import PathEvidence, PathState, totals_from_outcomes
from adaptive_router.stores.rollups import backfill_sql
from adaptive_router.stores.schema import rollups

WORKER = str(FsPath(__file__).with_name("mp_worker.py"))


def run_worker(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, WORKER, *args], capture_output=True, text=True, timeout=240, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def replay(rows: list[tuple[float, float]], ref: float, half_life: float | None) -> float:
    return sum(r * decay_factor(ref - t, half_life) for r, t in rows)


def test_four_processes_count_exactly(sql_url: str) -> None:
    task = "concurrency"
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "route", sql_url, task, str(seed), "504", "8"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        assert "database is locked" not in err
        results.append(json.loads(out.strip().splitlines()[-1]))
    made: Counter[str] = Counter()
    for r in results:
        made.update(r["attempts"])
    assert sum(r["requests"] for r in results) == 2016

    store = SQLStore(sql_url)
    try:
        rows = store.outcomes(task)
        contexts = store.load_contexts(task)
    finally:
        store.close()
    logged = Counter(o.path for o in rows)
    assert logged == made, (logged, made)
    assert len({(o.request_id, o.attempt) for o in rows}) == len(rows)
    assert {o.request_id for o in rows if o.attempt == 1}.__len__() == 2016
    assert set(contexts) == {"", "even", "odd"}
    for ctx, states in contexts.items():
        assert set(states) == {"a", "b", "c"}
        for name, ev in states.items():
            # The task level ("") folds every outcome; a context only its own. First
            # attempts and attempts after a failure each have their own row.
            mine = [o for o in rows if o.path == name and ctx in ("", o.context)]
            _assert_positions_replayed(name, ev, mine)
    assert_rollups_exact(sql_url, task, rows)


def _assert_positions_replayed(name: str, ev: PathEvidence, mine: list[Outcome]) -> None:
    """Both positions' path_stats rows equal a replay of their own outcomes."""
    first = [o for o in mine if o.attempt == 1]
    later = [o for o in mine if o.attempt > 1]
    assert first and later  # both positions written by four processes at once
    _assert_replayed(name, ev.first, first)
    _assert_replayed(name, ev.after_failure, later)


def _assert_replayed(name: str, st: PathState, mine: list[Outcome]) -> None:
    """A path_stats row equals a replay of its outcomes (half-life 2 s) to 1e-9."""
    assert st.successes == sum(o.success for o in mine)
    assert st.failures == sum(not o.success for o in mine)
    assert st.ref_time == max(o.created_at for o in mine)
    s = replay([(o.reward, o.created_at) for o in mine], st.ref_time, 2.0)
    f = replay([(1 - o.reward, o.created_at) for o in mine], st.ref_time, 2.0)
    assert st.success_w == pytest.approx(s, rel=1e-9, abs=1e-12)
    assert st.failure_w == pytest.approx(f, rel=1e-9, abs=1e-12)
    # Cost and latency evidence: decayed sums over the attempts where each is known,
    # and the decayed count of those attempts, equal to a replay.
    costed = [o for o in mine if o.cost_usd is not None]
    timed = [o for o in mine if o.latency_ms is not None]
    assert costed and timed
    if name == "c":
        assert len(costed) < len(mine)  # some costs unknown: excluded from the weight
    c_sum = replay([(o.cost_usd, o.created_at) for o in costed], st.ref_time, 2.0)
    c_w = replay([(1.0, o.created_at) for o in costed], st.ref_time, 2.0)
    l_sum = replay([(o.latency_ms, o.created_at) for o in timed], st.ref_time, 2.0)
    l_w = replay([(1.0, o.created_at) for o in timed], st.ref_time, 2.0)
    assert st.cost_sum == pytest.approx(c_sum, rel=1e-9, abs=1e-12)
    assert st.cost_weight == pytest.approx(c_w, rel=1e-9, abs=1e-12)
    assert st.latency_sum == pytest.approx(l_sum, rel=1e-9, abs=1e-12)
    assert st.latency_weight == pytest.approx(l_w, rel=1e-9, abs=1e-12)
    assert st.cost_weight > 0 and st.mean_cost_usd == pytest.approx(c_sum / c_w)


def assert_rollups_exact(url: str, task: str, rows: list[Outcome]) -> None:
    """Four writers' concurrent rollup upserts lost nothing: the rollups equal a backfill
    from the outcome rows, and the reads from them equal the row-by-row sums."""
    store = SQLStore(url)
    try:
        with store.engine.connect() as conn:
            kept = sorted(tuple(r) for r in conn.execute(sa.select(rollups)))
        with store.engine.begin() as conn:
            conn.execute(rollups.delete())
            conn.exec_driver_sql(backfill_sql(store.dialect))
        with store.engine.connect() as conn:
            again = sorted(tuple(r) for r in conn.execute(sa.select(rollups)))
        since = min(o.created_at for o in rows) - 1.0
        totals = store.path_totals(task, since)
    finally:
        store.close()
    assert [r[:7] for r in kept] == [r[:7] for r in again]  # the same keys
    for a, b in zip(kept, again, strict=True):
        # Counts exactly (far below 1e9), float sums to the last bits of their order.
        assert a[7:] == pytest.approx(b[7:], rel=1e-12), a[:7]
    want = totals_from_outcomes(rows, None)
    for got, ref in zip(sorted(totals[0]), sorted(want[0]), strict=True):
        assert got._replace(cost=None) == ref._replace(cost=None)
        assert got.cost == pytest.approx(ref.cost, rel=1e-9)
    assert totals[1] == want[1]
    assert want[1][2] > 0  # fallbacks happened: multi-row requests were corrected


def test_report_from_another_process(sql_url: str) -> None:
    chosen = run_worker("choose", sql_url, "xproc")
    reported = run_worker("report", sql_url, "xproc", str(chosen["request_id"]))
    assert reported == {"recorded": True}
    again = run_worker("report", sql_url, "xproc", str(chosen["request_id"]))
    assert again == {"recorded": False}
    store = SQLStore(sql_url)
    try:
        rows = store.outcomes("xproc")
        st = store.load("xproc")
    finally:
        store.close()
    assert [(o.path, o.success, o.latency_ms) for o in rows] == [(chosen["path"], True, 5.0)]
    assert st[str(chosen["path"])].first.successes == 1


def test_two_processes_share_a_redis_rate_limit_of_60_per_minute(sqlite_url: str) -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            pytest.fail("Redis at 127.0.0.1:6379 is required under CI=true")
        pytest.skip("Redis is not reachable")
    key = f"ar-test-{uuid.uuid4().hex}"
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "ratelimit", sqlite_url, "rl", key, "50"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    # 100 requests inside one minute: exactly 60 reach the path between both processes.
    assert sum(r["calls"] for r in results) == 60, results
    assert sum(r["fallbacks"] for r in results) == 40
    for k in client.scan_iter(f"*{key}*"):
        client.delete(k)
