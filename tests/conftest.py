"""Shared fixtures: one suite over the memory store, SQLite and PostgreSQL.

PostgreSQL tests get a schema of their own per test (created here, dropped after),
so concurrent runs on one server cannot collide. Under CI=true an unreachable
PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from adaptive_router.metering import capture
from adaptive_router.testing import FakeProvider

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_reachable() -> bool:
    try:
        with psycopg.connect(PG_DSN):
            return True
    except psycopg.Error:
        return False


def require_pg() -> None:
    if not _pg_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required under CI=true")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")


def pg_schema_url(schema: str) -> str:
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped after the test."""
    require_pg()
    schema = f"ar_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield pg_schema_url(schema)
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """The project's fake LLM provider on loopback (a file may define its own ``fake``,
    e.g. with a default reply)."""
    with FakeProvider() as f:
        yield f


@pytest.fixture
def capture_uninstalled() -> Iterator[None]:
    """Remove the SDK hooks after the test (a module opts in with ``pytestmark``)."""
    yield
    capture.uninstall()


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    return f"sqlite:///{tmp_path}/router.db"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """The same test against every store."""
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/router.db"
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture(params=["sqlite", "postgres"])
def sql_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """The same test against both SQL backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/router.db"
    url: str = request.getfixturevalue("pg_url")
    return url


class StepClock:
    """A clock the test advances by hand (epoch seconds)."""

    def __init__(self, start: float = 1_700_000_000.0, step: float = 0.0) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> float:
        t = self.now
        self.now += self.step
        return t

    def advance(self, seconds: float) -> None:
        self.now += seconds
