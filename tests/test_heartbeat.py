"""Routers' heartbeats: snapshots of breaker states in the store, also while idle, pruned
after a TTL, removed on close, shown stale after a minute."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import StepClock

from adaptive_router import Learning, Observability, Path, Persistence, Resilience, Router
from adaptive_router.dashboard.data import parse_window, summary
from adaptive_router.errors import ConfigurationError
from adaptive_router.observe.alerts import Alert
from adaptive_router.resilience import CircuitBreaker
from adaptive_router.router.heartbeat import Heartbeat
from adaptive_router.stores import open_store
from adaptive_router.stores.base import HealthSnapshot, HealthSnapshots, Store

T0 = 1_700_000_000.0


def _broken(x: int) -> int:
    raise RuntimeError("down")


def _router(store: Any, clock: StepClock, heartbeat: float | None = None) -> Router:
    return Router(
        [Path(_broken, name="broken"), Path(lambda x: x, name="ok")],
        lambda r: r is not None,
        "hb",
        store=store,
        learning=Learning(clock=clock, seed=1),
        resilience=Resilience(
            breaker=CircuitBreaker(failure_threshold=2, reset_timeout_s=600, clock=clock)
        ),
        persistence=Persistence(durability="sync"),
        observability=Observability(heartbeat=heartbeat),
    )


def test_a_beat_stores_breaker_states_and_alerts(store_url: str) -> None:
    store = open_store(store_url)
    clock = StepClock(T0)
    router = _router(store, clock)
    router.run(1)
    breaker = router.path_settings["broken"].breaker
    assert breaker is not None
    for _ in range(2):
        breaker.record_failure("timeout")  # opens it: the router's alerts hear of it
    beat = Heartbeat(
        store,
        "hb",
        router.health,
        lambda: list(router.alerts.recent),
        clock,
        router_id="r-1",
        host="host-a",
        pid=4242,
    )
    clock.advance(10)
    assert beat.beat() is True
    (snap,) = store.health("hb")
    assert (snap.router_id, snap.host, snap.pid, snap.task) == ("r-1", "host-a", 4242, "hb")
    assert snap.breakers == {"broken": "open", "ok": "closed"}
    assert snap.updated_at == T0 + 10 and snap.started_at == T0
    assert [a["kind"] for a in snap.alerts] == ["breaker_open"]
    assert snap.alerts[0]["path"] == "broken"
    # A second beat replaces the row rather than adding one.
    clock.advance(5)
    beat.beat()
    assert [h.updated_at for h in store.health("hb")] == [T0 + 15]
    assert store.health("other-task") == []
    router.close()
    store.close()


def test_rows_of_routers_gone_past_the_ttl_are_removed(store_url: str) -> None:
    store = open_store(store_url)
    clock = StepClock(T0)
    old = HealthSnapshot("gone", "h", 1, "hb", {"a": "closed"}, T0 - 2000, T0 - 1000)
    recent = HealthSnapshot("quiet", "h", 2, "hb", {"a": "open"}, T0 - 200, T0 - 100)
    store.put_health(old, 0.0)
    store.put_health(recent, 0.0)
    beat = Heartbeat(store, "hb", dict, list, clock, interval=1.0, ttl=900.0, router_id="me")
    beat.beat()
    assert sorted(h.router_id for h in store.health()) == ["me", "quiet"]
    beat.stop()  # a clean close removes the router's own row
    assert [h.router_id for h in store.health()] == ["quiet"]
    store.close()


def test_an_idle_router_keeps_beating_and_close_stops_it(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/hb.db"
    clock = StepClock(T0)
    router = _router(url, clock, heartbeat=0.05)
    seen: set[float] = set()
    deadline = time.monotonic() + 10
    while len(seen) < 3 and time.monotonic() < deadline:
        clock.advance(1)  # no request is made: only the heartbeat writes
        seen.update(h.updated_at for h in router.store.health("hb"))
        time.sleep(0.05)
    assert len(seen) >= 3
    (snap,) = router.store.health("hb")
    assert snap.breakers == {"broken": "closed", "ok": "closed"}
    threads = [t for t in __import__("threading").enumerate() if "heartbeat-hb" in t.name]
    assert threads
    router.close()
    assert not any(t.is_alive() for t in threads)
    check = open_store(url)
    assert check.health() == []  # removed on close
    check.close()


def test_the_page_marks_snapshots_older_than_a_minute_stale() -> None:
    store = open_store("memory://")
    clock = StepClock(T0)
    router = _router(store, clock)
    router.run(1)
    for rid, age in (("fresh", 5.0), ("old", 61.0)):
        store.put_health(HealthSnapshot(rid, "h", 1, "hb", {"ok": "closed"}, T0, T0 - age), 0.0)
    data = summary(store, "hb", parse_window("1h", None, T0))
    stale = {h["router_id"]: h["stale"] for h in data["health"]}
    assert stale == {"fresh": False, "old": True}
    router.close()


def test_bad_heartbeat_settings_raise_naming_the_parameter() -> None:
    with pytest.raises(ConfigurationError, match="heartbeat must be positive"):
        _router("memory://", StepClock(T0), heartbeat=0)
    with pytest.raises(ConfigurationError, match=r"heartbeat must be a timedelta .* or seconds"):
        _router("memory://", StepClock(T0), heartbeat="5s")  # type: ignore[arg-type]


class _NoHealth(Store):
    """A third-party store written before heartbeats existed."""

    def __init__(self) -> None:
        self.inner = open_store("memory://")

    def __getattribute__(self, name: str) -> Any:
        if name in {"put_health", "health", "remove_health", "inner", "__class__"}:
            return object.__getattribute__(self, name)
        return getattr(object.__getattribute__(self, "inner"), name)

    write = load_contexts = window_stats = tasks = add_pending = None  # type: ignore[assignment]
    claim_pending = expire_pending = outcomes = None  # type: ignore[assignment]


def test_a_store_without_heartbeats_turns_the_heartbeat_off() -> None:
    beat = Heartbeat(_NoHealth(), "hb", dict, list, StepClock(T0))
    assert beat.beat() is False and beat.beat() is False
    beat.stop()


def test_a_failing_store_is_logged_once_and_never_raises(caplog: Any) -> None:
    class Down(Store, HealthSnapshots):
        def put_health(self, snapshot: HealthSnapshot, expire_before: float) -> None:
            raise OSError("connection refused")

    Down.__abstractmethods__ = frozenset()
    beat = Heartbeat(
        Down(), "hb", dict, lambda: [Alert("k", "other", None, 1, 0, "m", 0)], time.time
    )
    assert beat.beat() is False and beat.beat() is False
    warnings = [r for r in caplog.records if "heartbeat" in r.getMessage()]
    assert len([r for r in warnings if r.levelname == "WARNING"]) == 1
    assert "connection refused" in warnings[0].getMessage()
