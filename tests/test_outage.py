"""A database that goes away: reports during an outage, and a router started without it.

Real outages, no mocks of the database: a TCP proxy (``netproxy.CuttableProxy``) stands
between the router and PostgreSQL and is cut and restored; each test has its own schema.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path as FsPath
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from conftest import PG_DSN
from netproxy import CuttableProxy

from adaptive_router import (
    ConfigurationError,
    Learning,
    Observability,
    Path,
    Persistence,
    Reporter,
    Router,
    SQLStore,
    StoreUnavailableError,
)
from adaptive_router.stores.sql_engine import refused

#: A password in every proxied URL: PostgreSQL here trusts local connections and ignores
#: it, so it only shows whether a secret leaks into an error or a log line.
SECRET = "canary-outage-pw-5d1e"


@pytest.fixture
def proxy() -> Iterator[CuttableProxy]:
    p = CuttableProxy("127.0.0.1", 5432)
    try:
        yield p
    finally:
        p.close()


def via(proxy: CuttableProxy, pg_url: str) -> str:
    """``pg_url`` through the proxy, with a password that must never be shown."""
    return pg_url.replace("postgres@127.0.0.1:5432", f"postgres:{SECRET}@127.0.0.1:{proxy.port}")


def schema_of(pg_url: str) -> str:
    options = urllib.parse.parse_qs(urllib.parse.urlsplit(pg_url).query)["options"][0]
    return options.split("search_path=")[1]


def tables(pg_url: str) -> set[str]:
    with psycopg.connect(PG_DSN) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema_of(pg_url),),
        ).fetchall()
    return {r[0] for r in rows}


def pending_ids(store: SQLStore) -> list[str]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT request_id FROM pending_decisions"))]


def wait_until(pred: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def two_paths() -> list[Path]:
    return [Path(lambda: True, name="a"), Path(lambda: True, name="b")]


def router_via(url: str, task: str, half_life: float | None = None, **persistence: Any) -> Router:
    """A router of ``task`` on ``url``; ``persistence`` adds to its Persistence options."""
    return Router(
        two_paths(),
        bool,
        task,
        store=url,
        half_life=half_life,
        learning=Learning(seed=3),
        persistence=Persistence(flush_interval=0.1, refresh_interval=0.2, **persistence),
        observability=Observability(heartbeat=None),
    )


# -- reports during an outage --------------------------------------------------------


def test_report_of_a_held_decision_during_an_outage_is_stored_once(
    pg_url: str, proxy: CuttableProxy, caplog: pytest.LogCaptureFixture
) -> None:
    check = SQLStore(pg_url)
    router = router_via(via(proxy, pg_url), "held")
    try:
        decision = router.choose()
        router.flush()
        assert pending_ids(check) == [decision.request_id]  # the pending record is stored
        proxy.cut()
        with caplog.at_level(logging.DEBUG):
            # Accepted although the store is unreachable: no exception, nothing lost.
            assert router.report(decision.request_id, success=True, latency_ms=12.5) is True
            # This router knows the decision is reported: a second report is ignored.
            assert router.report(decision.request_id, success=False) is False
            assert router.buffered_outcomes == 1
            assert check.outcomes("held") == []
            proxy.restore()
            wait_until(lambda: router.buffered_outcomes == 0)
        rows = check.outcomes("held")
        assert [(o.request_id, o.path, o.success, o.latency_ms) for o in rows] == [
            (decision.request_id, decision.path, True, 12.5)
        ]
        assert pending_ids(check) == []
        stored = check.load("held")[decision.path].first  # a reported decision: attempt 1
        assert (stored.successes, stored.failures) == (1, 0)
        router.refresh()
        assert {p.path: p.n for p in router.posteriors()} == {"a": 0, "b": 0, decision.path: 1}
        assert all(
            SECRET not in r.getMessage() and SECRET not in str(r.__dict__) for r in caplog.records
        )
    finally:
        router.close()
        check.close()


def test_the_first_claim_wins_after_an_outage(pg_url: str, proxy: CuttableProxy) -> None:
    check = SQLStore(pg_url)
    router = router_via(via(proxy, pg_url), "race")
    try:
        decision = router.choose()
        proxy.cut()
        assert router.report(decision.request_id, success=True) is True  # held, deferred
        # Another process (straight to the database) reports the same decision first.
        with Reporter("race", pg_url) as other:
            assert other.report(decision.request_id, success=False, latency_ms=7.0) is True
        proxy.restore()
        wait_until(lambda: router.buffered_outcomes == 0)
        rows = check.outcomes("race")
        assert [(o.request_id, o.success, o.latency_ms) for o in rows] == [
            (decision.request_id, False, 7.0)
        ]
        stored = check.load("race")[decision.path].first
        assert (stored.successes, stored.failures) == (0, 1)
    finally:
        router.close()
        check.close()


def test_a_decision_made_during_an_outage_is_stored_and_reportable_after(
    pg_url: str, proxy: CuttableProxy
) -> None:
    check = SQLStore(pg_url)
    router = router_via(via(proxy, pg_url), "made-down")
    try:
        router.choose()
        router.flush()
        proxy.cut()
        router.refresh()  # the router notices the outage
        made_down = router.choose()  # held, its pending record waits for the store
        reported_down = router.choose()
        assert router.report(reported_down.request_id, success=True) is True
        proxy.restore()
        wait_until(lambda: router.buffered_outcomes == 0 and len(pending_ids(check)) == 2)
        # Stored when the store returned: reportable from any process now.
        with Reporter("made-down", pg_url) as other:
            assert other.report(made_down.request_id, success=False) is True
        rows = {o.request_id: o.success for o in check.outcomes("made-down")}
        assert rows == {made_down.request_id: False, reported_down.request_id: True}
        assert made_down.request_id not in pending_ids(check)
    finally:
        router.close()
        check.close()


REPORT_ELSEWHERE = textwrap.dedent(
    """
    import json, sys, time
    from adaptive_router import Reporter
    reporter = Reporter("elsewhere", sys.argv[1])
    print("ready", flush=True)
    request_id = sys.stdin.readline().strip()
    started = time.monotonic()
    try:
        reporter.report(request_id, success=True)
        out = {"raised": None}
    except Exception as exc:
        out = {"raised": type(exc).__name__, "message": str(exc)}
    out["seconds"] = time.monotonic() - started
    print(json.dumps(out), flush=True)
    """
)


def test_a_report_of_a_decision_not_held_raises_store_unavailable(
    pg_url: str, proxy: CuttableProxy
) -> None:
    url = via(proxy, pg_url)
    check = SQLStore(pg_url)
    router = router_via(url, "elsewhere")
    other_router = router_via(url, "elsewhere")  # same task, did not make the decision
    child = subprocess.Popen(
        [sys.executable, "-c", REPORT_ELSEWHERE, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        decision = router.choose()
        proxy.cut()
        # Another process: the project's error, not the driver's, within the 5 s bound.
        child.stdin.write(decision.request_id + "\n")
        child.stdin.flush()
        result = json.loads(child.stdout.readline())
        assert result["raised"] == "StoreUnavailableError", result
        assert "not recorded" in result["message"] and SECRET not in result["message"]
        assert result["seconds"] < 5.0
        # In this process, a Router and a Reporter that do not hold it: the same.
        with pytest.raises(StoreUnavailableError, match="report it again later") as info:
            other_router.report(decision.request_id, success=True)
        assert SECRET not in str(info.value) and info.value.__cause__ is None
        proxy.restore()
        assert other_router.report(decision.request_id, success=True) is True
        assert [o.success for o in check.outcomes("elsewhere")] == [True]
    finally:
        child.kill()
        child.wait()
        router.close()
        other_router.close()
        check.close()


def test_held_decisions_are_bounded(pg_url: str, proxy: CuttableProxy) -> None:
    router = router_via(via(proxy, pg_url), "bounded", max_buffer=3)
    try:
        proxy.cut()
        router.refresh()
        made = [router.choose() for _ in range(5)]  # the first two are forgotten
        for d in made[2:]:
            assert router.report(d.request_id, success=True) is True
        with pytest.raises(StoreUnavailableError):
            router.report(made[0].request_id, success=True)
        assert router.buffered_outcomes == 3
        proxy.restore()
        wait_until(lambda: router.buffered_outcomes == 0)
        assert sorted(o.request_id for o in router.store.outcomes("bounded")) == sorted(
            d.request_id for d in made[2:]
        )
    finally:
        router.close()


# -- a router started while its store is down ------------------------------------------


def test_start_without_store_routes_then_catches_up(pg_url: str, proxy: CuttableProxy) -> None:
    proxy.cut()
    router = router_via(via(proxy, pg_url), "offline", start_without_store=True)
    check: SQLStore | None = None
    try:
        assert router.store.connected is False
        assert all(router.run() is True for _ in range(40))
        during = router.choose()
        assert router.report(during.request_id, success=False) is True
        after = router.choose()
        assert router.buffered_outcomes == 41
        # Routed on what it recorded (both positions).
        assert sum(p.n + p.after_failure.n for p in router.posteriors()) == 40
        assert tables(pg_url) == set()  # nothing created or written while down
        proxy.restore()
        wait_until(lambda: router.buffered_outcomes == 0)
        assert router.store.connected is True
        assert router.report(after.request_id, success=True) is True
        check = SQLStore(pg_url)
        rows = check.outcomes("offline")
        assert len(rows) == 42 == len({(o.request_id, o.attempt) for o in rows})
        by_id = {o.request_id: o.success for o in rows}
        assert (by_id[during.request_id], by_id[after.request_id]) == (False, True)
        stored = [st for ev in check.load("offline").values() for st in ev.states()]
        assert sum(st.successes for st in stored) == 41
        assert sum(st.failures for st in stored) == 1
        assert pending_ids(check) == []
    finally:
        router.close()
        if check is not None:
            check.close()


def drop_a_column(pg_url: str) -> int:
    """An old schema: tables that lack a column this version writes."""
    SQLStore(pg_url).close()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'ALTER TABLE "{schema_of(pg_url)}".path_stats DROP COLUMN latency_weight')
    return 0


def learn_with_half_life_60(pg_url: str) -> int:
    """Evidence of the task learned with another half-life than the router's."""
    with Router(
        two_paths(),
        bool,
        "checked",
        store=pg_url,
        half_life=60,
        observability=Observability(heartbeat=None),
    ) as r:
        r.run()
    return 1


def outcome_rows(pg_url: str, task: str) -> int:
    with psycopg.connect(PG_DSN) as conn:
        row = conn.execute(
            f'SELECT count(*) FROM "{schema_of(pg_url)}".outcomes WHERE task = %s', (task,)
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("misfit", "message"),
    [(learn_with_half_life_60, "half_life"), (drop_a_column, "schema is older")],
    ids=["half_life", "old_schema"],
)
def test_start_without_store_runs_the_skipped_checks_when_it_returns(
    pg_url: str,
    proxy: CuttableProxy,
    caplog: pytest.LogCaptureFixture,
    misfit: Any,
    message: str,
) -> None:
    rows_before = misfit(pg_url)
    proxy.cut()
    router = router_via(via(proxy, pg_url), "checked", half_life=3600, start_without_store=True)
    try:
        assert router.run() is True
        with caplog.at_level(logging.ERROR):
            proxy.restore()
            wait_until(lambda: "start-up check failed" in caplog.text)
        assert message in caplog.text
        assert router.run() is True  # still routing, from what it has
        for call in (router.flush, router.choose, router.stats):
            with pytest.raises(ConfigurationError, match=message):
                call()
        assert router.buffered_outcomes == 2  # kept, never written
    finally:
        router.close()
    assert outcome_rows(pg_url, "checked") == rows_before


def test_without_the_opt_in_an_unreachable_store_fails_at_once(
    pg_url: str, proxy: CuttableProxy
) -> None:
    proxy.cut()
    with pytest.raises(StoreUnavailableError, match="cannot reach") as info:
        router_via(via(proxy, pg_url), "strict")
    assert SECRET not in str(info.value) and "***" in str(info.value)


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        # PostgreSQL here trusts local connections: a wrong password is accepted, so the
        # refusals tested are an unknown database and an unknown role.
        (
            f"postgresql://postgres:{SECRET}@127.0.0.1:5432/no_such_database_x",
            StoreUnavailableError,
            'refused the connection: .*database "no_such_database_x" does not exist',
        ),
        (
            f"postgresql://nobody_here:{SECRET}@127.0.0.1:5432/test",
            StoreUnavailableError,
            'refused the connection: .*role "nobody_here" does not exist',
        ),
        (f"mysql://root:{SECRET}@127.0.0.1/test", ConfigurationError, "unsupported URL scheme"),
    ],
    ids=["unknown_database", "unknown_role", "unknown_scheme"],
)
def test_start_without_store_still_refuses_a_misconfiguration(
    url: str, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        router_via(url, "misconfigured", start_without_store=True)
    assert SECRET not in str(info.value)


def test_refused_tells_a_misconfiguration_from_an_outage() -> None:
    # The texts libpq gives for a wrong password and the outage cases the proxy cannot
    # produce (a server starting up, out of connection slots, a timeout).
    misconfigured = [
        'connection failed: FATAL:  password authentication failed for user "app"',
        'connection failed: FATAL:  no pg_hba.conf entry for host "10.0.0.5", user "app"',
        "connection failed: fe_sendauth: no password supplied",
    ]
    outages = [
        "connection failed: FATAL:  the database system is starting up",
        "connection failed: FATAL:  sorry, too many clients already",
        "connection timeout expired",
        "connection failed: server closed the connection unexpectedly",
        "connection failed: Connection refused\n\tIs the server running on that host?",
    ]
    assert [refused(psycopg.OperationalError(t)) for t in misconfigured] == [True] * 3
    assert [refused(psycopg.OperationalError(t)) for t in outages] == [False] * 5


def test_postgres_connections_give_up_on_a_vanished_server(pg_url: str) -> None:
    def parameters(url: str) -> dict[str, str]:
        store = SQLStore(url)
        try:
            with store.engine.connect() as conn:
                info = conn.connection.driver_connection.info  # type: ignore[union-attr]
                return dict(info.get_parameters())
        finally:
            store.close()

    got = parameters(pg_url)
    assert {k: got[k] for k in ("connect_timeout", "tcp_user_timeout", "keepalives_idle")} == {
        "connect_timeout": "3",
        "tcp_user_timeout": "2000",
        "keepalives_idle": "2",
    }
    assert parameters(pg_url + "&connect_timeout=7")["connect_timeout"] == "7"  # the URL wins


def test_sqlite_report_while_the_file_is_read_only(tmp_path: FsPath) -> None:
    db = tmp_path / "ro.db"
    router = Router(
        two_paths(),
        bool,
        "ro",
        store=f"sqlite:///{db}",
        learning=Learning(seed=2),
        persistence=Persistence(flush_interval=0.1),
        observability=Observability(heartbeat=None),
    )
    try:
        decision = router.choose()
        files = [str(db), f"{db}-wal"]
        made = subprocess.run(["chattr", "+i", *files], capture_output=True, check=False)
        if made.returncode != 0:
            if os.environ.get("CI") == "true":
                pytest.fail(f"chattr unavailable: {made.stderr!r}")
            pytest.skip(f"chattr +i is not available here: {made.stderr!r}")
        try:
            assert router.report(decision.request_id, success=True) is True
            assert router.buffered_outcomes == 1
        finally:
            subprocess.run(["chattr", "-i", *files], check=True)
        wait_until(lambda: router.buffered_outcomes == 0)
        assert [o.request_id for o in router.store.outcomes("ro")] == [decision.request_id]
    finally:
        router.close()


# -- a store that hangs rather than refuses ----------------------------------------------


def test_a_hanging_store_slows_a_request_by_the_backpressure_bound_at_most(pg_url: str) -> None:
    """A table lock (a migration, a long transaction) makes writes wait instead of fail.
    Requests that outran the writer queued behind its write and then each repeated it:
    a run() took as long as the lock was held. Now a caller waits for a write in progress
    at most BACKPRESSURE_WAIT_S from its start, then routes on; nothing is lost."""
    from adaptive_router.router.recorder import BACKPRESSURE_WAIT_S, HIGH_WATER

    hold_s = BACKPRESSURE_WAIT_S + 4.0
    with router_via(pg_url, "hang") as router:
        router.run()
        router.flush()  # the schema exists; the lock below blocks the outcomes table
        with router.store.engine.connect() as conn:  # type: ignore[attr-defined]
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        locker = psycopg.connect(PG_DSN, autocommit=False)
        try:
            locker.execute(f'LOCK TABLE "{schema}".outcomes IN ACCESS EXCLUSIVE MODE')
            locked_at = time.monotonic()
            slowest = 0.0
            n = 0
            while time.monotonic() - locked_at < hold_s - 1.0:
                t0 = time.monotonic()
                router.run()
                slowest = max(slowest, time.monotonic() - t0)
                n += 1
            assert n > 2 * HIGH_WATER  # the buffer passed the high-water mark
        finally:
            locker.rollback()
            locker.close()
        router.flush()
        assert len(router.store.outcomes("hang")) == n + 1
    assert slowest < BACKPRESSURE_WAIT_S + 1.0, slowest
