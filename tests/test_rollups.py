"""The SQL store's rollup reads equal the straightforward computation from outcome rows.

A randomized database (several tasks, contexts, multi-attempt requests with fallbacks,
unknown latencies, tokens and costs, unbilled failures, scores, retried batches) is read
through the rollups (``SQLStore.window_stats``, ``path_totals``, ``series``) and through
the row-by-row reference (the Store contract's defaults over ``outcomes()``), over random
windows: aligned and not to the hour, open-ended, shorter than an hour.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
import sqlalchemy as sa

from adaptive_router.outcomes import ErrorKind, Outcome, PathWindowStats
from adaptive_router.reports.summary import summary
from adaptive_router.stores import SQLStore
from adaptive_router.stores.aggregate import aggregate
from adaptive_router.stores.base import Store, totals_from_outcomes
from adaptive_router.stores.rollups import KEY, backfill_sql
from adaptive_router.stores.schema import rollups
from adaptive_router.stores.series import SeriesCounts, bucket_rows

T0 = 1_700_000_000.0
DAY = 86_400.0
KINDS = [
    ErrorKind.TIMEOUT.value,
    ErrorKind.SERVER_ERROR.value,
    ErrorKind.RATE_LIMITED.value,
    ErrorKind.REJECTED.value,
]


def random_outcomes(rng: random.Random, n_requests: int) -> list[Outcome]:
    out = []
    for i in range(n_requests):
        task = rng.choice(["t", "t", "t", "u"])
        ctx = rng.choice(["", "", "eu", "us"])
        t = T0 + rng.random() * 10 * DAY
        paths = rng.sample(["a", "b", "c"], k=rng.choice([1, 1, 1, 2, 3]))
        for k, path in enumerate(paths, start=1):
            ok = k == len(paths) and rng.random() < 0.8
            latency = None if rng.random() < 0.1 else rng.lognormvariate(5.0, 1.0)
            tokens = rng.random() < 0.8
            cost = None if rng.random() < 0.2 else rng.random() * 0.01
            kind = None if ok else rng.choice(KINDS)
            if kind in (ErrorKind.SERVER_ERROR.value, ErrorKind.RATE_LIMITED.value):
                cost = None if rng.random() < 0.5 else 0.0
            t += (latency or 0.0) / 1000.0
            out.append(
                Outcome(
                    request_id=f"r{i}",
                    task=task,
                    path=path,
                    attempt=k,
                    success=ok,
                    kind=kind,
                    latency_ms=latency,
                    input_tokens=rng.randrange(10, 500) if tokens else None,
                    output_tokens=rng.randrange(1, 100) if tokens and rng.random() < 0.9 else None,
                    cost_usd=cost,
                    created_at=t,
                    retries=rng.choice([0, 0, 1, 2]),
                    score=rng.random() if rng.random() < 0.3 else None,
                    context=ctx,
                )
            )
            t += rng.random() * 5
    return out


def fill(store: SQLStore, rows: list[Outcome], rng: random.Random) -> None:
    """Write in random batches (large and small), some batches twice (a retried commit)."""
    i = 0
    while i < len(rows):
        size = rng.choice([1, 3, 8, 50, 400])
        batch = rows[i : i + size]
        assert store.write(batch, 3600.0) == len(batch)
        if rng.random() < 0.2:
            assert store.write(batch, 3600.0) == 0
        i += size


def ref_stats(
    store: Store, task: str, since: float, until: float | None, context: str | None
) -> list[PathWindowStats]:
    return aggregate(
        (o.path, o.attempt, o.success, o.kind, o.latency_ms, o.input_tokens, o.output_tokens,
         o.cost_usd, o.score)
        for o in store.outcomes(task, since)
        if (until is None or o.created_at < until) and (context is None or o.context == context)
    )  # fmt: skip


def same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 (sums added in another order), NaN equal to NaN."""
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def as_tuple(s: PathWindowStats) -> tuple[Any, ...]:
    return (
        s.path, s.attempts, s.successes, s.timeouts, s.latency_p50_ms, s.latency_p95_ms,
        s.input_tokens, s.output_tokens, s.cost_usd, s.first_attempts, s.errors, s.mean_score,
    )  # fmt: skip


def series_tuple(c: SeriesCounts | None) -> Any:
    if c is None:
        return None
    return (c.width, c.base, c.n, c.paths, c.requests, c.first, c.tried, c.won, c.spend,
            c.priced, c.unknown)  # fmt: skip


def windows(rng: random.Random) -> list[tuple[float, float | None]]:
    out: list[tuple[float, float | None]] = [
        (T0 - DAY, None),
        (T0 + 2 * DAY, T0 + 9 * DAY),  # aligned to hours
        (T0 + 3600.0 * 5, T0 + 3600.0 * 5 + 1800.0),  # inside one hour
    ]
    for _ in range(12):
        a = T0 + rng.random() * 10 * DAY
        b = a + rng.choice([600.0, 7200.0, 1.5 * DAY, 4 * DAY, 9 * DAY])
        out.append((a, None if rng.random() < 0.2 else b))
    return out


def test_rollup_reads_equal_row_by_row(sql_url: str) -> None:
    rng = random.Random(17)
    store = SQLStore(sql_url)
    try:
        fill(store, random_outcomes(rng, 3000), rng)
        for task in ("t", "u"):
            for since, until in windows(rng):
                for context in (None, "", "eu"):
                    got = [as_tuple(s) for s in store.window_stats(task, since, until, context)]
                    want = [as_tuple(s) for s in ref_stats(store, task, since, until, context)]
                    assert same(got, want), (task, since, until, context)
                got_t = store.path_totals(task, since, until)
                want_t = totals_from_outcomes(store.outcomes(task, since), until)
                assert same(sorted(got_t[0]), sorted(want_t[0])), (task, since, until)
                assert got_t[1] == want_t[1], (task, since, until)
                for bucket_s in (None, 3600.0, 7200.0, 900.0):
                    rows = Store.attempt_rows(store, task, since, until)
                    want_s = bucket_rows(rows, bucket_s)
                    got_s = store.series(task, since, until, bucket_s)
                    assert same(series_tuple(got_s), series_tuple(want_s)), (since, until, bucket_s)
    finally:
        store.close()


def rollup_rows(engine: sa.Engine) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(rollups)).all()
    n = len(KEY)
    return {tuple(r[:n]): tuple(float(x) for x in r[n:]) for r in rows}


def assert_rollups_equal_backfill(url: str) -> None:
    """The rollups the writers maintained equal a backfill from the outcome rows."""
    store = SQLStore(url)
    try:
        kept = rollup_rows(store.engine)
        assert kept
        with store.engine.begin() as conn:
            conn.execute(rollups.delete())
            conn.exec_driver_sql(backfill_sql(store.dialect))
        again = rollup_rows(store.engine)
    finally:
        store.close()
    assert kept.keys() == again.keys()
    for key, values in kept.items():
        assert same(list(values), list(again[key])), key


def test_backfill_equals_the_rollups_written_with_the_outcomes(sql_url: str) -> None:
    rng = random.Random(5)
    store = SQLStore(sql_url)
    try:
        fill(store, random_outcomes(rng, 800), rng)
    finally:
        store.close()
    assert_rollups_equal_backfill(sql_url)


def test_summary_is_the_stores_and_reports_numbers(sql_url: str) -> None:
    rng = random.Random(3)
    store = SQLStore(sql_url)
    try:
        fill(store, random_outcomes(rng, 600), rng)
        since, until = T0 + 1.25 * DAY, T0 + 8.5 * DAY
        s = summary(store, "t", since, until, now=until)
        want = [as_tuple(x) for x in ref_stats(store, "t", since, until, None)]
        assert same([as_tuple(x) for x in s.stats], want)
        assert s.costs.requests == totals_from_outcomes(store.outcomes("t", since), until)[1][0]
        assert s.series.paths == ("a", "b", "c")
        assert sum(sum(v) for v in s.series.attempts.values()) == s.costs.attempts
        assert {p.path for p in s.posteriors} == {"a", "b", "c"}
        data = s.to_dict()
        assert data["task"] == "t" and data["costs"]["requests"] == s.costs.requests
        assert [p["path"] for p in data["stats"]] == ["a", "b", "c"]
        assert json.loads(json.dumps(data, allow_nan=False)) == data  # NaN became None
        assert set(data["context_posteriors"]) == {"eu", "us"}
        with pytest.raises(ValueError, match="until must be later than since"):
            summary(store, "t", since, since)
    finally:
        store.close()
