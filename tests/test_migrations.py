"""Alembic migrations in storage/: they build exactly the schema the stores use."""

from __future__ import annotations

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
from adaptive_router.stores import schema
from adaptive_router.stores.base import Store, totals_from_outcomes
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
        assert store.load("t")["echo"].successes == 1
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
    """A database at 0001 with evidence in it keeps every row and resumes routing at head."""
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
        assert (st.success_w, st.failure_w, st.successes, st.failures) == (3.0, 1.0, 3, 1)
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
