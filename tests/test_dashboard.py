"""The dashboard's numbers, escaping, token, errors and the command that serves it."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

import pytest
from conftest import StepClock
from netproxy import CuttableProxy
from sqlalchemy import event
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient
from typer.testing import CliRunner

from adaptive_router import Learning, Observability, Path, Persistence, Router
from adaptive_router.cli import app as cli_app
from adaptive_router.cli.dashboard import is_loopback
from adaptive_router.dashboard.app import create_app
from adaptive_router.dashboard.data import parse_window
from adaptive_router.stores import open_store
from adaptive_router.stores.base import HealthSnapshot

T0 = 1_700_000_000.0
EVIL = "<script>alert(1)</script>"


def _fill(store: Any, clock: StepClock, task: str = "extract", *, evil: bool = False) -> Router:
    """Deterministic traffic: 'flaky' fails every third call, 'steady' every fourth, then
    the regex fallback."""
    calls = {"n": 0, "steady": 0}

    def flaky(x: int) -> int | None:
        calls["n"] += 1
        return None if calls["n"] % 3 == 0 else x

    def steady(x: int) -> int | None:
        calls["steady"] += 1
        return None if calls["steady"] % 4 == 0 else x

    paths = [Path(flaky, name=EVIL if evil else "flaky"), Path(steady, name="steady")]
    router = Router(
        paths,
        lambda r: r is not None,
        task,
        store=store,
        fallback=Path(lambda x: x, name="regex", timeout=None),
        half_life=600.0,
        learning=Learning(
            seed=7, clock=clock, context_fn=lambda x: "even" if x % 2 == 0 else "odd"
        ),
        persistence=Persistence(durability="sync"),
        observability=Observability(heartbeat=None),
    )
    for i in range(120):
        router.run(i)
        clock.advance(5.0)
    return router


@pytest.mark.parametrize("store_kind", ["memory", "sqlite", "postgres"])
def test_api_summary_equals_the_routers_reads_for_a_pinned_window(
    store_kind: str, request: pytest.FixtureRequest, tmp_path: Any
) -> None:
    url = {
        "memory": lambda: "memory://",
        "sqlite": lambda: f"sqlite:///{tmp_path}/d.db",
        "postgres": lambda: request.getfixturevalue("pg_url"),
    }[store_kind]()
    store = open_store(url)
    clock = StepClock(T0)
    router = _fill(store, clock)
    until = clock.now  # the pinned end: no outcome after it
    since = until - 300.0  # the last 60 of 120 requests; older outcomes must be left out
    client = TestClient(create_app(store, clock=lambda: until + 3600.0))
    got = client.get("/api/summary", params={"task": "extract", "since": since, "until": until})
    assert got.status_code == 200, got.text
    api = got.json()
    # The router, its clock pinned at `until`, reads the same window back from now.
    window = until - since
    stats = sorted(router.stats(timedelta(seconds=window)), key=lambda s: s.path)
    assert (
        [s["path"] for s in api["stats"]]
        == [s.path for s in stats]
        == [
            "flaky",
            "regex",
            "steady",
        ]
    )
    for mine, theirs in zip(api["stats"], stats, strict=True):
        assert mine["attempts"] == theirs.attempts and mine["successes"] == theirs.successes
        assert mine["first_attempts"] == theirs.first_attempts
        assert mine["first_successes"] == theirs.first_successes
        assert mine["after_failure_attempts"] == theirs.attempts - theirs.first_attempts
        assert mine["after_failure_successes"] == theirs.successes - theirs.first_successes
        assert mine["errors"] == dict(theirs.errors)
        assert mine["latency_p50_ms"] == pytest.approx(theirs.latency_p50_ms)
        assert mine["latency_p95_ms"] == pytest.approx(theirs.latency_p95_ms)
    assert sum(s["first_attempts"] for s in api["stats"]) == 60  # the window, not all 120
    costs = router.costs(timedelta(seconds=window)).to_dict()
    assert {k: v for k, v in api["costs"].items() if k != "until"} == {
        k: v for k, v in costs.items() if k != "until"
    }
    assert api["costs"]["until"] == until and api["costs"]["requests"] == 60
    assert api["costs"]["fallback_requests"] == costs["fallback_requests"] > 0
    posteriors = {p.path: p for p in router.posteriors()}
    assert {p["path"] for p in api["posteriors"]} == set(posteriors)
    for p in api["posteriors"]:
        theirs = posteriors[p["path"]]
        assert p["alpha"] == pytest.approx(theirs.alpha, rel=1e-12)
        assert p["beta"] == pytest.approx(theirs.beta, rel=1e-12)
        assert p["interval"] == pytest.approx(list(theirs.interval), rel=1e-9)
        assert p["traffic_share"] == pytest.approx(theirs.traffic_share, rel=1e-12)
        assert p["n"] == theirs.n
        after = p["after_failure"]
        assert after["n"] == theirs.after_failure.n
        assert after["alpha"] == pytest.approx(theirs.after_failure.alpha, rel=1e-12)
        assert after["beta"] == pytest.approx(theirs.after_failure.beta, rel=1e-12)
    # The fallback only ever runs after the others failed; "flaky" and "steady" both have
    # first attempts and attempts after a failure.
    by_path = {p["path"]: p for p in api["posteriors"]}
    assert by_path["regex"]["n"] == 0 and by_path["regex"]["after_failure"]["n"] > 0
    assert by_path["flaky"]["n"] > 0 and by_path["flaky"]["after_failure"]["n"] > 0
    # Per context: each context's own evidence, both positions.
    assert set(api["contexts"]) == {"even", "odd"}
    even = {p["path"]: p for p in api["contexts"]["even"]}
    rows = [o for o in store.outcomes("extract") if o.context == "even"]
    assert sum(p["n"] for p in even.values()) == sum(1 for o in rows if o.attempt == 1)
    assert sum(p["after_failure"]["n"] for p in even.values()) == sum(
        1 for o in rows if o.attempt > 1
    )
    # The series cover the window's requests.
    assert sum(api["series"]["requests"]) == 60
    router.close()
    store.close()


def test_unknown_task_is_a_404_naming_the_known_tasks() -> None:
    store = open_store("memory://")
    _fill(store, StepClock(T0), task="known-one").close()
    client = TestClient(create_app(store))
    got = client.get("/api/summary", params={"task": "nope", "since": "1h"})
    assert got.status_code == 404
    assert got.json()["known_tasks"] == ["known-one"]
    assert "unknown task 'nope'" in got.json()["error"] and "known-one" in got.json()["error"]
    page = client.get("/", params={"task": "nope"})
    assert page.status_code == 404 and "known tasks: &#x27;known-one&#x27;" in page.text
    bad = client.get("/api/summary", params={"task": "known-one", "since": "yesterday"})
    assert bad.status_code == 400 and "since='yesterday'" in bad.json()["error"]


def test_every_name_is_escaped() -> None:
    store = open_store("memory://")
    clock = StepClock(T0)
    _fill(store, clock, task="<b>task</b>", evil=True).close()
    store.put_health(
        HealthSnapshot(
            "r1",
            "<i>host</i>",
            1,
            "<b>task</b>",
            {EVIL: "open"},
            T0,
            clock.now,
            ({"kind": "breaker_open", "path": EVIL, "message": f"opened {EVIL}", "at": clock.now},),
        ),
        0.0,
    )
    client = TestClient(create_app(store, clock=lambda: clock.now))
    html = client.get("/", params={"task": "<b>task</b>", "since": "1d"}).text
    assert EVIL not in html and "<b>task</b>" not in html and "<i>host</i>" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6  # tables, charts, fleet
    assert "&lt;b&gt;task&lt;/b&gt;" in html
    # The only script on the page is the page's own, with its nonce.
    assert len(re.findall(r"<script", html)) == 1
    assert "script-src 'nonce-" in client.get("/").headers["content-security-policy"]


def test_token_is_checked_on_every_request() -> None:
    store = open_store("memory://")
    _fill(store, StepClock(T0)).close()
    client = TestClient(create_app(store, token="s3cret"))
    for path in ("/", "/fragment", "/api/summary", "/api/tasks"):
        assert client.get(path).status_code == 401
        assert client.get(path, params={"token": "wrong"}).status_code == 401
    assert client.get("/api/tasks", params={"token": "s3cret"}).json() == {"tasks": ["extract"]}
    assert client.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/fragment", headers={"X-Dashboard-Token": "s3cret"}).status_code == 200
    # The page's task links keep the token so navigation keeps working.
    page = client.get("/", params={"token": "s3cret", "since": "1d"}).text
    assert "token=s3cret" in page


def test_database_down_shows_the_error_and_recovers(pg_url: str) -> None:
    clock = StepClock(T0)
    _fill(pg_url, clock).close()
    proxy = CuttableProxy("127.0.0.1", 5432)
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    try:
        with TestClient(create_app(url, clock=lambda: clock.now)) as client:
            ok = client.get("/", params={"since": "1d"})
            assert ok.status_code == 200 and 'data-chart="traffic"' in ok.text
            proxy.cut()
            for path in ("/", "/fragment"):
                down = client.get(path, params={"since": "1d"})
                assert down.status_code == 503
                assert "database unavailable" in down.text and 'class="error"' in down.text
            api = client.get("/api/summary", params={"since": "1d"})
            assert api.status_code == 503 and "database unavailable" in api.json()["error"]
            proxy.restore()
            back = client.get("/fragment", params={"since": "1d"})
            assert back.status_code == 200 and 'data-chart="posteriors"' in back.text
    finally:
        proxy.close()


def test_database_down_at_start_up_recovers(pg_url: str) -> None:
    _fill(pg_url, StepClock(T0)).close()
    proxy = CuttableProxy("127.0.0.1", 5432)
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    proxy.cut()
    try:
        client = TestClient(create_app(url, clock=lambda: T0 + 600))
        assert client.get("/").status_code == 503
        proxy.restore()
        assert client.get("/api/summary", params={"since": "1d"}).json()["costs"]["requests"] == 120
    finally:
        proxy.close()


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "pg_url"])
def test_the_dashboard_only_reads(url_fixture: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(url_fixture)
    _fill(url, StepClock(T0)).close()
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)  # every engine, the dashboard's too
    try:
        with TestClient(create_app(url, clock=lambda: T0 + 600)) as client:
            for path in ("/", "/fragment", "/api/summary"):
                assert client.get(path, params={"since": "1d"}).status_code == 200
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert len(statements) > 5
    # No INSERT, UPDATE, DELETE or DDL. (The SQLite store begins every transaction,
    # reads included, with BEGIN IMMEDIATE: a lock, not a write.)
    words = {s.split(None, 1)[0].upper() for s in statements}
    assert words <= {"SELECT", "WITH", "SET", "SHOW", "PRAGMA", "BEGIN"}, words
    assert "SELECT" in words


def test_window_parsing() -> None:
    w = parse_window("1h", None, 10_000.0)
    assert (w.since, w.until, w.end) == (6_400.0, None, 10_000.0)
    w = parse_window("7d", "2023-11-14T22:13:20Z", 0.0)
    assert w.until == 1_700_000_000.0 and w.since == 1_700_000_000.0 - 7 * 86400
    assert parse_window("100", "200", 0.0).since == 100.0
    with pytest.raises(ValueError, match="until"):
        parse_window("300", "200", 0.0)
    with pytest.raises(ValueError, match="since='soon'"):
        parse_window("soon", None, 0.0)
    with pytest.raises(ValueError, match="until='x'"):
        parse_window("1h", "x", 0.0)
    assert math.isfinite(parse_window("1.5m", None, 100.0).since)


def test_command_refuses_a_public_bind_without_a_token(tmp_path: Any) -> None:
    db = tmp_path / "d.db"
    _fill(f"sqlite:///{db}", StepClock(T0)).close()
    runner = CliRunner()
    result = runner.invoke(cli_app, ["dashboard", "--db", str(db), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--token" in result.stderr and "127.0.0.1" in result.stderr
    missing = runner.invoke(cli_app, ["dashboard", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 1 and "no SQLite database" in missing.stderr
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")
    assert not is_loopback("example.com")


def test_small_dollar_amounts_keep_four_significant_digits() -> None:
    # A request's spend is often below $0.0001: fixed places showed target and realized
    # spend alike as $0.0000, hiding a 10% overrun.
    from adaptive_router.dashboard.views import _usd

    assert [_usd(v) for v in (4e-5, 4.41e-5, 0.00024, 0.0002, 0.5, 1.23456)] == [
        "$0.00004000",
        "$0.00004410",
        "$0.0002400",
        "$0.0002000",
        "$0.5000",
        "$1.2346",
    ]
    assert [_usd(v) for v in (None, 0.0, 12.345, 1234.5)] == ["—", "$0", "$12.35", "$1,234.50"]
