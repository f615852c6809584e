"""Alembic migrations in storage/: they build exactly the schema the stores use."""

from __future__ import annotations

import logging
import os
import pathlib
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from adaptive_router import AllPathsFailed, Path, Persistence, Router, SQLStore
from adaptive_router.errors import ConfigurationError
from adaptive_router.migrations import (
    alembic_config,
    current_revision,
    head_revision,
    storage_dir,
    upgrade,
)
from adaptive_router.outcomes import Outcome
from adaptive_router.stores import MemoryStore, schema
from adaptive_router.stores.base import PathState, Store, fold_outcome, totals_from_outcomes
from adaptive_router.stores.schema import HEAD_REVISION, metadata
from adaptive_router.stores.sql import create_engine

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _require_pg() -> None:
    try:
        psycopg.connect(PG_DSN).close()
    except psycopg.Error:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required under CI=true")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")


@pytest.fixture
def new_pg_url() -> Iterator[Callable[[], str]]:
    """A factory of URLs, each on a fresh PostgreSQL schema; all dropped afterwards."""
    _require_pg()
    schemas: list[str] = []

    def make() -> str:
        schema = f"ar_{uuid.uuid4().hex}"
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        schemas.append(schema)
        return f"{PG_URL}?options=-csearch_path%3D{schema}"

    yield make
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def new_url(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Callable[[], str]:
    """A factory of URLs of empty databases, for each backend."""
    if request.param == "postgres":
        factory: Callable[[], str] = request.getfixturevalue("new_pg_url")
        return factory
    counter = iter(range(1_000))
    return lambda: f"sqlite:///{tmp_path}/db{next(counter)}.db"


def _diff(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(ctx, metadata))
    finally:
        engine.dispose()


def _reflect(url: str) -> dict[str, Any]:
    """Everything about the tables that DDL decides, in a comparable form."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            out: dict[str, Any] = {}
            for table in sorted(insp.get_table_names()):
                out[table] = {
                    "columns": [
                        (
                            c["name"],
                            str(c["type"]),
                            c["nullable"],
                            str(c.get("default")),
                            c.get("autoincrement"),
                        )
                        for c in insp.get_columns(table)
                    ],
                    "pk": insp.get_pk_constraint(table)["constrained_columns"],
                    "unique": sorted(
                        (u["name"], tuple(u["column_names"]))
                        for u in insp.get_unique_constraints(table)
                    ),
                    "indexes": sorted(
                        (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                        for i in insp.get_indexes(table)
                    ),
                }
            return out
    finally:
        engine.dispose()


def test_head_revision_is_the_one_the_stores_stamp() -> None:
    assert (storage_dir() / "env.py").is_file()
    assert head_revision() == HEAD_REVISION
    script = ScriptDirectory.from_config(alembic_config())
    assert [r.revision for r in script.walk_revisions()][-1] == "0001_initial"
    # The stores' list of known revisions is the scripts' chain, oldest first.
    assert [r.revision for r in script.walk_revisions()][::-1] == list(schema.REVISIONS)


def test_a_store_refuses_a_database_one_revision_behind_until_it_is_upgraded(
    new_url: Callable[[], str],
) -> None:
    """At 0011 every column this version checks is there, but not the tasks table, and
    the half-lives are still in path_stats: the store opened it, create_all made the
    table 0012 creates, and `db upgrade` then failed on "table tasks already exists"."""
    url = new_url()
    with Router([Path(lambda: True, name="a")], bool, "t", store=url, half_life=600.0) as r:
        r.run()
    command.downgrade(alembic_config(url), "0011_feature_stats")
    with pytest.raises(ConfigurationError, match=r"at revision 0011_feature_stats.*db upgrade"):
        SQLStore(url)
    assert current_revision(url) == "0011_feature_stats"  # nothing was created meanwhile
    assert upgrade(url).after == HEAD_REVISION
    with Router([Path(lambda: True, name="a")], bool, "t", store=url, half_life=600.0) as r:
        assert r.contexts() == []
        assert [p.n for p in r.posteriors()] == [1]


def test_a_store_refuses_a_database_a_newer_version_migrated(new_url: Callable[[], str]) -> None:
    url = new_url()
    SQLStore(url).close()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0013_future'"))
    finally:
        engine.dispose()
    with pytest.raises(ConfigurationError, match="migrated by a newer adaptive-router"):
        SQLStore(url)


def test_upgrade_empty_database_to_head_matches_metadata(new_url: Callable[[], str]) -> None:
    url = new_url()
    assert current_revision(url) is None
    result = upgrade(url)
    assert (result.before, result.after, result.changed) == (None, HEAD_REVISION, True)
    assert current_revision(url) == HEAD_REVISION
    assert _diff(url) == []


def test_migrated_schema_equals_the_one_a_store_creates(new_url: Callable[[], str]) -> None:
    migrated, created = new_url(), new_url()
    upgrade(migrated)
    SQLStore(created).close()
    assert _reflect(migrated) == _reflect(created)
    assert set(_reflect(migrated)) == {
        "alembic_version",
        "outcome_rollups",
        "outcomes",
        "path_stats",
        "pending_decisions",
        "router_health",
        "spend_stats",
        "feature_stats",
        "tasks",
    }


def test_store_created_database_is_at_head_and_upgrade_is_a_noop(
    new_url: Callable[[], str],
) -> None:
    url = new_url()
    with Router(
        [Path(lambda x: x, name="echo")],
        success_fn=bool,
        task="t",
        store=url,
        persistence=Persistence(durability="sync"),
    ) as router:
        router.run(1)
    assert current_revision(url) == HEAD_REVISION
    before = _reflect(url)
    result = upgrade(url)
    assert (result.before, result.after, result.changed) == (HEAD_REVISION, HEAD_REVISION, False)
    assert _reflect(url) == before
    store = SQLStore(url, create=False)
    try:
        assert store.load("t")["echo"].first.successes == 1
    finally:
        store.close()


def test_store_works_on_a_migrated_database(new_url: Callable[[], str]) -> None:
    url = new_url()
    upgrade(url)
    with Router(
        [Path(lambda x: x, name="echo")],
        success_fn=bool,
        task="t",
        store=url,
        persistence=Persistence(durability="sync"),
    ) as router:
        router.run(1)
        with pytest.raises(AllPathsFailed):
            router.run(0)
        assert [(p.successes, p.failures) for p in router.posteriors()] == [(1, 1)]
    assert current_revision(url) == HEAD_REVISION
    assert _diff(url) == []


def test_downgrade_to_base_and_back(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/down.db"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    assert current_revision(url) is None
    assert set(_reflect(url)) == {"alembic_version"}
    assert upgrade(url).after == HEAD_REVISION


def test_url_with_percent_escapes_survives_the_config(tmp_path: pathlib.Path) -> None:
    # configparser treats '%' specially; a PostgreSQL search_path option is percent-encoded.
    url = f"sqlite:///{tmp_path}/a%20b.db"
    assert upgrade(url).after == HEAD_REVISION
    assert current_revision(url) == HEAD_REVISION
    assert (tmp_path / "a b.db").is_file()


def test_comparison_would_notice_a_drifted_schema(tmp_path: pathlib.Path) -> None:
    # Guards the tests above: an empty diff must mean "same schema", not "compared nothing".
    url = f"sqlite:///{tmp_path}/drift.db"
    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_outcomes_task_created"))
            conn.execute(sa.text("ALTER TABLE path_stats ADD COLUMN extra INTEGER"))
    finally:
        engine.dispose()
    kinds = sorted(d[0] for d in _diff(url))
    assert kinds == ["add_index", "remove_column"]


def test_first_schema_with_data_upgrades_to_head(new_url: Callable[[], str]) -> None:
    """A database at 0001 with evidence in it keeps every row and resumes routing at head.
    Its one outcome row does not account for the 3 + 1 attempts folded (rows deleted, say),
    so 0009 keeps the mixed evidence, as first-attempt evidence, rather than lose it."""
    url = new_url()
    upgrade(url, revision="0001_initial")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO path_stats (task, path, success_w, failure_w, ref_time, successes,"
                " failures, half_life_s, updated_at) VALUES ('t', 'a', 3.0, 1.0, 100.0, 3, 1,"
                " NULL, 100.0)"
            )
            conn.exec_driver_sql(
                "INSERT INTO outcomes (request_id, attempt, task, path, success, created_at,"
                " retries) VALUES ('r1', 1, 't', 'a', true, 100.0, 0)"
            )
    finally:
        engine.dispose()
    result = upgrade(url)
    assert (result.before, result.after) == ("0001_initial", HEAD_REVISION)
    assert _diff(url) == []
    store = SQLStore(url)
    try:
        st = store.load("t")["a"]
        first = st.first
        assert (first.success_w, first.failure_w, first.successes, first.failures) == (
            3.0,
            1.0,
            3,
            1,
        )
        assert st.after_failure.n == 0
        (row,) = store.outcomes("t")
        assert (row.request_id, row.context, row.score) == ("r1", "", None)
    finally:
        store.close()


def test_health_upgrade_skips_a_table_a_newer_store_created(new_url: Callable[[], str]) -> None:
    """A database at the revision before 0007 that a store of a version with router_health
    (but before the rollups) opened has the table from that store's create_all; the 0007
    upgrade finds it and only moves the revision, and 0008 follows."""
    url = new_url()
    upgrade(url, revision="0006_propensity")
    engine = create_engine(url)
    try:
        metadata.tables["router_health"].create(engine)  # that store's create_all
    finally:
        engine.dispose()
    assert current_revision(url) == "0006_propensity"
    assert upgrade(url, revision="0007_health").after == "0007_health"
    assert upgrade(url).after == HEAD_REVISION
    assert _diff(url) == []


def _old_rows(n_requests: int) -> list[dict[str, Any]]:
    """Outcome rows as a database at 0004 holds them: fallbacks, unknown latencies, costs."""
    rng = random.Random(6)
    rows = []
    for i in range(n_requests):
        t = 1_700_000_000.0 + rng.random() * 5 * 86_400.0
        paths = rng.sample(["a", "b", "c"], k=rng.choice([1, 1, 2, 3]))
        for k, path in enumerate(paths, start=1):
            ok = k == len(paths) and rng.random() < 0.7
            latency = None if rng.random() < 0.1 else rng.uniform(50.0, 9000.0)
            t += (latency or 0.0) / 1000.0
            rows.append(
                {
                    "request_id": f"r{i}",
                    "attempt": k,
                    "task": "t",
                    "path": path,
                    "success": ok,
                    "error_kind": None if ok else rng.choice(["timeout", "server_error"]),
                    "latency_ms": latency,
                    "input_tokens": rng.choice([None, 120]),
                    "output_tokens": rng.choice([None, 30]),
                    "cost_usd": rng.choice([None, 0.002, 0.0]),
                    "retries": rng.choice([0, 1]),
                    "created_at": t,
                    "score": rng.choice([None, 0.5]),
                    "context": rng.choice(["", "eu"]),
                }
            )
            t += rng.random()
    return rows


def test_0006_backfills_the_rollups_from_existing_outcomes(new_url: Callable[[], str]) -> None:
    """A database at 0004 with outcomes is refused until migrated; after 0008 the reads
    from the backfilled rollups equal the row-by-row sums."""
    url = new_url()
    upgrade(url, revision="0004_cost_latency")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(schema.outcomes.insert(), _old_rows(400))
    finally:
        engine.dispose()
    with pytest.raises(ConfigurationError, match=r"outcome_rollups.*db upgrade"):
        SQLStore(url)
    assert upgrade(url).after == HEAD_REVISION
    store = SQLStore(url)
    try:
        rows = store.outcomes("t")
        since, until = rows[0].created_at + 5_000.5, rows[-1].created_at - 7_000.25
        got, (requests, succeeded, fell_back) = store.path_totals("t", since, until)
        want = totals_from_outcomes(store.outcomes("t", since), until)
        assert (requests, succeeded, fell_back) == want[1]
        assert fell_back > 0
        for g, w in zip(sorted(got), sorted(want[0]), strict=True):
            assert g._replace(cost=None) == w._replace(cost=None)
            assert g.cost == pytest.approx(w.cost, rel=1e-9)
        fast, slow = store.series("t", since, until), Store.series(store, "t", since, until)
        assert fast is not None and slow is not None and fast.width % 3600 == 0  # rollups
        assert (fast.base, fast.n, fast.requests, fast.tried, fast.won, fast.priced) == (
            slow.base, slow.n, slow.requests, slow.tried, slow.won, slow.priced
        )  # fmt: skip
        for p in fast.paths:
            assert fast.spend[p] == pytest.approx(slow.spend[p], rel=1e-9, abs=1e-12)
        stats = {s.path: s for s in store.window_stats("t", since, until)}
        assert sum(s.attempts for s in stats.values()) == sum(w.attempts for w in want[0])
        assert {p: s.first_attempts for p, s in stats.items()} == {w.path: w.first for w in want[0]}
    finally:
        store.close()


def _mixed_state(rows: list[Outcome], half_life: float | None) -> PathState:
    """What a store before 0009 kept for these rows: every attempt in one state."""
    st = PathState()
    for o in rows:
        fold_outcome(st, o, half_life)
    return st


def _pre_0009_outcomes(task: str, n_requests: int, seed: int) -> list[Outcome]:
    """Requests of up to three attempts, in two contexts, some scored, some judged by a
    success_fn that raised (no evidence), times slightly out of order (late writers)."""
    rng = random.Random(seed)
    out = []
    t = 1_700_000_000.0
    for i in range(n_requests):
        t += rng.uniform(0.0, 20.0)
        ctx = rng.choice(["", "", "eu"])
        hard = rng.random() < 0.2  # an input every path fails
        paths = rng.sample(["a", "b", "c"], k=3)
        for k, path in enumerate(paths, start=1):
            raised = rng.random() < 0.03
            ok = not raised and not hard and rng.random() < 0.7
            score = rng.choice([None, None, 0.8 if ok else 0.3])
            out.append(
                Outcome(
                    request_id=f"{task}-{i}",
                    task=task,
                    path=path,
                    attempt=k,
                    success=ok,
                    kind=None if ok else ("success_fn_error" if raised else "rejected"),
                    latency_ms=None if rng.random() < 0.1 else rng.uniform(50.0, 900.0),
                    cost_usd=rng.choice([None, 0.002, 0.0005]),
                    created_at=t + k * 0.5 - rng.uniform(0.0, 2.0),
                    score=score,
                    context=ctx,
                )
            )
            if ok:
                break
    return out


def test_0009_rebuilds_each_position_from_the_outcome_rows(
    new_url: Callable[[], str], caplog: pytest.LogCaptureFixture
) -> None:
    """A database at 0008 with outcome rows and the mixed evidence an earlier version kept:
    after 0009 each group's first-attempt and after-failure rows equal what this version
    folds live from the same outcomes (a memory store written with them); a group whose
    rows do not account for its counts keeps its mixed row as first-attempt evidence; a
    reset group (no row) stays absent. The downgrade gives the mixed rows back."""
    url = new_url()
    upgrade(url, revision="0008_rollups")
    half_lives = {"hl": 300.0, "plain": None}
    rows = {task: _pre_0009_outcomes(task, 400, seed) for seed, task in enumerate(half_lives)}
    old: dict[tuple[str, str, str], PathState] = {}
    for task, mine in rows.items():
        for o in mine:
            for ctx in o.evidence_keys():
                old.setdefault((task, ctx, o.path), PathState())
        for task_, ctx, path in [k for k in old if k[0] == task]:
            group = [
                o for o in mine if o.path == path and ctx in o.evidence_keys() and o.task == task_
            ]
            old[(task_, ctx, path)] = _mixed_state(group, half_lives[task])
    # Evidence someone reset (its row deleted): it must not come back.
    reset = old.pop(("plain", "eu", "c"))
    # Task "hl" registered its half-life (a settings row, no evidence): carried over.
    settings = (
        "INSERT INTO path_stats (task, context, path, success_w, failure_w, ref_time, "
        "successes, failures, half_life_s, updated_at) VALUES ('hl', ' ', ' ', 0, 0, 0, 0, 0, "
        "300.0, 0)"
    )
    # Outcome rows someone deleted: the stored counts exceed what the rows account for.
    deleted = [o for o in rows["hl"] if o.path == "b" and o.context == "eu"][:5]
    assert deleted
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for mine in rows.values():
                conn.execute(
                    schema.outcomes.insert(),
                    [
                        {
                            "request_id": o.request_id,
                            "attempt": o.attempt,
                            "task": o.task,
                            "path": o.path,
                            "success": o.success,
                            "error_kind": o.kind,
                            "latency_ms": o.latency_ms,
                            "cost_usd": o.cost_usd,
                            "retries": 0,
                            "created_at": o.created_at,
                            "score": o.score,
                            "context": o.context,
                        }
                        for o in mine
                        if o not in deleted
                    ],
                )
            conn.execute(sa.text(settings))
            for (task, ctx, path), st in old.items():
                conn.execute(
                    sa.text(
                        "INSERT INTO path_stats (task, context, path, success_w, failure_w, "
                        "ref_time, successes, failures, half_life_s, updated_at, cost_sum, "
                        "cost_weight, latency_sum, latency_weight) VALUES (:t, :c, :p, :sw, "
                        ":fw, :ref, :s, :f, :hl, :ref, :cs, :cw, :ls, :lw)"
                    ),
                    {
                        "t": task,
                        "c": ctx,
                        "p": path,
                        "sw": st.success_w,
                        "fw": st.failure_w,
                        "ref": st.ref_time,
                        "s": st.successes,
                        "f": st.failures,
                        "hl": half_lives[task],
                        "cs": st.cost_sum,
                        "cw": st.cost_weight,
                        "ls": st.latency_sum,
                        "lw": st.latency_weight,
                    },
                )
    finally:
        engine.dispose()
    with pytest.raises(ConfigurationError, match=r"path_stats\.position.*db upgrade"):
        SQLStore(url)
    with caplog.at_level(logging.WARNING, logger="adaptive_router.stores.evidence_rebuild"):
        assert upgrade(url).after == HEAD_REVISION
    (warning,) = [r for r in caplog.records if r.name.endswith("evidence_rebuild")]
    assert "2 of 11 (task, context, path) groups were not rebuilt" in warning.getMessage()
    assert "hl/(task level)/b, hl/eu/b" in warning.getMessage()
    assert _diff(url) == []
    store = SQLStore(url)
    try:
        assert store.register_half_life("hl", 999.0) == 300.0  # still registered
        assert store.tasks() == ["hl", "plain"]
        for task, mine in rows.items():
            live = MemoryStore()
            live.write(mine, half_lives[task])
            want, got = live.load_contexts(task), store.load_contexts(task)
            assert set(got) == {"", "eu"}
            for ctx, paths in want.items():
                for path, ev in paths.items():
                    key = (task, ctx, path)
                    if key == ("plain", "eu", "c"):
                        assert path not in got[ctx]  # reset evidence stays reset
                        continue
                    if key in (("hl", "eu", "b"), ("hl", "", "b")):
                        # Kept as it was, as first-attempt evidence (the deleted rows were
                        # folded into the task level too).
                        kept, was = got[ctx][path], old[key]
                        assert (
                            kept.first.successes,
                            kept.first.failures,
                            kept.after_failure.n,
                        ) == (
                            was.successes,
                            was.failures,
                            0,
                        )
                        assert kept.first.success_w == pytest.approx(was.success_w, rel=1e-12)
                        continue
                    assert ev.first.n and ev.after_failure.n  # both positions are exercised
                    for pos in ("first", "after_failure"):
                        g, w = getattr(got[ctx][path], pos), getattr(ev, pos)
                        assert (g.successes, g.failures, g.ref_time, g.half_life_s) == (
                            w.successes,
                            w.failures,
                            w.ref_time,
                            w.half_life_s,
                        ), (key, pos)
                        for name in (
                            "success_w",
                            "failure_w",
                            "cost_sum",
                            "cost_weight",
                            "latency_sum",
                            "latency_weight",
                        ):
                            assert getattr(g, name) == pytest.approx(
                                getattr(w, name), rel=1e-9, abs=1e-12
                            ), (key, pos, name)
                    # The split is what the mixed row was made of.
                    assert got[ctx][path].n == old[key].n
    finally:
        store.close()
    assert reset.n > 0
    # Down again: one mixed row per group, as the earlier version kept it.
    command.downgrade(alembic_config(url), "0008_rollups")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            back = {
                (r.task, r.context, r.path): r
                for r in conn.execute(sa.text("SELECT * FROM path_stats"))
            }
    finally:
        engine.dispose()
    assert set(back) == {*old, ("hl", " ", " ")}
    assert back[("hl", " ", " ")].half_life_s == 300.0
    for key, st in old.items():
        r = back[key]
        assert (r.successes, r.failures, r.ref_time) == (st.successes, st.failures, st.ref_time)
        assert r.success_w == pytest.approx(st.success_w, rel=1e-9)
        assert r.failure_w == pytest.approx(st.failure_w, rel=1e-9)
        assert r.latency_sum == pytest.approx(st.latency_sum, rel=1e-9)


def test_0012_moves_each_registered_half_life_to_the_tasks_table(
    new_url: Callable[[], str],
) -> None:
    """A database at 0011 whose task "hl" registered 300 s (the blank-named settings row of
    path_stats then) and holds evidence: after 0012 the half-life is in ``tasks``, no
    settings row is left, the evidence is untouched, and a router of "hl" asking for
    another half-life is still refused naming both; the downgrade puts the row back."""
    url = new_url()
    upgrade(url, revision="0011_feature_stats")
    insert = (
        "INSERT INTO path_stats (task, context, path, position, success_w, failure_w, "
        "ref_time, successes, failures, half_life_s, updated_at) VALUES "
        "(:t, :c, :p, 'first', :s, :f, 100.0, :n, :m, :hl, :at)"
    )
    rows = [
        {"t": "hl", "c": " ", "p": " ", "s": 0, "f": 0, "n": 0, "m": 0, "hl": 300.0, "at": 7.0},
        {"t": "hl", "c": "", "p": "a", "s": 3.5, "f": 1.5, "n": 4, "m": 2, "hl": 300.0, "at": 9.0},
        {"t": "plain", "c": "", "p": "a", "s": 2, "f": 1, "n": 2, "m": 1, "hl": None, "at": 9.0},
    ]
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for r in rows:
                conn.execute(sa.text(insert), r)
        evidence = "SELECT task, context, path, success_w, failure_w FROM path_stats ORDER BY task"
        with engine.connect() as conn:
            before = conn.execute(sa.text(evidence + "")).all()
        assert upgrade(url).after == HEAD_REVISION
        with engine.connect() as conn:
            assert conn.execute(
                sa.text("SELECT task, half_life_s, registered_at FROM tasks")
            ).all() == [("hl", 300.0, 7.0)]
            after = conn.execute(sa.text(evidence)).all()
        assert after == [r for r in before if r[1] != " "] and len(after) == 2
        store = SQLStore(url, create=False)
        try:
            assert store.tasks() == ["hl", "plain"]
            assert store.register_half_life("hl", 60.0) == 300.0  # the registered one wins
            assert store.register_half_life("plain", 60.0) is None  # its evidence's
        finally:
            store.close()
        with pytest.raises(ConfigurationError, match="300"):
            Router([Path(lambda: "x", name="a")], bool, task="hl", store=url, half_life=60.0)
        command.downgrade(alembic_config(url), "0011_feature_stats")
        with engine.connect() as conn:
            assert sorted(conn.execute(sa.text(evidence)).all()) == sorted(
                # "plain" registered its evidence's half-life (None) above: its row too.
                [*after, ("hl", " ", " ", 0.0, 0.0), ("plain", " ", " ", 0.0, 0.0)]
            )
            assert "tasks" not in sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()
