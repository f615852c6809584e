"""The spend target in the live Router: ``Objective(target_usd_per_request=B)``.

Paths are ranked by θ − λ·c with λ from the task's decayed spend sums, which every
process shares through the store (``spend_stats``), a restart resumes and a migration
backfills. Real SQLite and PostgreSQL (fixtures in conftest.py), no mocks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path as FsPath
from typing import Any

import numpy as np
import pytest
from alembic import command
from conftest import StepClock
from typer.testing import CliRunner

from adaptive_router import AllPathsFailed, Budget, Learning, Objective, Path, Router
from adaptive_router.cli import app
from adaptive_router.errors import ConfigurationError
from adaptive_router.migrations import alembic_config, upgrade
from adaptive_router.outcomes import Result, Usage
from adaptive_router.policies.objectives import ObjectiveThompsonSampling
from adaptive_router.policies.pacing import SpendStats, SpendStatus
from adaptive_router.policies.thompson import ThompsonSampling
from adaptive_router.stores import SpendTotals
from adaptive_router.stores.base import fold_spend
from adaptive_router.stores.schema import HEAD_REVISION
from adaptive_router.stores.sql import SQLStore

WORKER = str(FsPath(__file__).with_name("mp_worker.py"))
B = 0.004
#: (success rate, cost per attempt): the dear path is better, the cheap one 10x cheaper.
PATHS = {"dear": (0.9, 0.01), "cheap": (0.6, 0.001)}


@pytest.fixture(autouse=True)
def _quiet() -> Any:
    # Single-attempt budgets log each refused fallback; thousands of lines say nothing here.
    logging.getLogger("adaptive_router").setLevel(logging.ERROR)
    yield
    logging.getLogger("adaptive_router").setLevel(logging.NOTSET)


def _paths(seed: int, spec: dict[str, tuple[float, float | None]] | None = None) -> list[Path]:
    rng = random.Random(seed)

    def make(name: str, p: float, c: float | None) -> Path:
        return Path(lambda: Result(rng.random() < p, Usage(cost_usd=c)), name=name)

    return [make(n, p, c) for n, (p, c) in (spec or PATHS).items()]


def _router(url: str, clock: StepClock, target: float = B, seed: int = 1, **kw: Any) -> Router:
    return Router(
        kw.pop("paths", None) or _paths(seed),
        bool,
        kw.pop("task", "paced"),
        store=url,
        objective=Objective(target_usd_per_request=target),
        budget=Budget(max_attempts=1),
        learning=Learning(seed=seed, clock=clock),
        **kw,
    )


def _run(router: Router, n: int) -> None:
    for _ in range(n):
        with contextlib.suppress(AllPathsFailed):
            router.run()


def _replay(store: Any, task: str, half_life: float | None) -> SpendStats:
    st = SpendStats()
    for o in store.outcomes(task):
        fold_spend(st, o, half_life)
    return st


# -- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        0,
        0.0,
        -0.01,
        math.nan,
        math.inf,
        -math.inf,
        True,
        np.bool_(True),
        "0.01",
        Decimal("NaN"),
        10**400,  # beyond any float
        1e-200,  # λ divides by B²: an infinite price
        5e-324,
    ],
)
def test_a_bad_target_is_a_configuration_error_naming_it(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="target_usd_per_request must be") as err:
        Objective(target_usd_per_request=bad)  # type: ignore[arg-type]
    assert len(str(err.value)) < 200


@pytest.mark.parametrize(
    ("value", "want"),
    [(np.float32(0.5), 0.5), (np.int64(2), 2.0), (Decimal("0.002"), 0.002), (1e-9, 1e-9)],
)
def test_a_target_of_any_real_number_type_is_taken_as_a_float(value: object, want: float) -> None:
    got = Objective(target_usd_per_request=value).target_usd_per_request  # type: ignore[arg-type]
    assert type(got) is float and got == want


def test_a_target_prices_dollars_only() -> None:
    with pytest.raises(ConfigurationError, match="usd_per_second"):
        Objective(target_usd_per_request=0.01, usd_per_second=1.0)
    with pytest.raises(ConfigurationError, match="success_value_usd"):
        Objective(target_usd_per_request=0.01, success_value_usd=1.0)
    ob = Objective(target_usd_per_request=0.01)
    assert (ob.paced, ob.name, ob.target_usd_per_request) == (True, "spend target", 0.01)
    assert not Objective().paced


# -- the decision -----------------------------------------------------------------------


def test_price_zero_is_thompson_samplings_order_and_a_high_price_the_cheapest() -> None:
    paced = ObjectiveThompsonSampling(objective=Objective(target_usd_per_request=B))
    plain = ThompsonSampling()
    s, f = np.array([30.0, 5.0, 12.0]), np.array([10.0, 4.0, 9.0])
    costs = [0.01, 0.001, 0.004]
    for seed in range(200):
        a = paced.rank(s, f, np.random.default_rng(seed), costs=costs, price=0.0)
        b = plain.rank(s, f, np.random.default_rng(seed))
        assert a.tolist() == b.tolist()
    greedy = ObjectiveThompsonSampling(explore=0.0, objective=Objective(target_usd_per_request=B))
    for seed in range(50):
        order = greedy.rank(s, f, np.random.default_rng(seed), costs=costs, price=1e6)
        assert order.tolist() == [1, 2, 0]
    # The batched form (the simulator's) ranks the same draws the same way.
    batch = greedy.rank(
        np.tile(s, (4, 1)), np.tile(f, (4, 1)), np.random.default_rng(0), costs=costs, price=1e6
    )
    assert batch.tolist() == [[1, 2, 0]] * 4


# -- the live router ---------------------------------------------------------------------


def test_spend_converges_to_the_target(store_url: str) -> None:
    """3,000 single-attempt requests: the window's realized spend per request and the
    plain average of the last 2,000 are both within ±5% of B, and the mix is a real mix."""
    clock = StepClock(step=1.0)
    with _router(store_url, clock, half_life=3600.0) as router:
        _run(router, 3000)
        router.flush()
        status = router.spend()
        outcomes = router.store.outcomes("paced")
    assert len(outcomes) == 3000
    assert status.target_usd_per_request == B
    assert status.requests == 3000
    assert status.realized_usd_per_request == pytest.approx(B, rel=0.05)
    last = outcomes[-2000:]
    assert sum(o.cost_usd or 0.0 for o in last) / len(last) == pytest.approx(B, rel=0.05)
    dear = sum(o.path == "dear" for o in last) / len(last)
    # B = 0.004 between the paths' 0.001 and 0.01: a third of the calls to the dear one.
    assert 0.25 < dear < 0.42
    assert status.price_per_usd > 0.0


def test_a_target_above_the_best_paths_cost_buys_the_best_path(store_url: str) -> None:
    clock = StepClock(step=1.0)
    with _router(store_url, clock, target=0.05) as router:
        _run(router, 1500)
        router.flush()
        status = router.spend()
        posts = {p.path: p for p in router.posteriors()}
        last = router.store.outcomes("paced")[-500:]
    assert status.price_per_usd == 0.0
    assert posts["dear"].spend_penalty == 0.0
    assert sum(o.path == "dear" for o in last) / len(last) >= 0.95
    # It spends what the best path costs, never the target: nothing is paid for nothing.
    assert status.realized_usd_per_request is not None
    assert status.realized_usd_per_request < 0.0105


def test_every_process_of_a_task_converges_on_one_price(sql_url: str, tmp_path: FsPath) -> None:
    """Two processes route one task on one database; after both finished, each refreshes
    and prices at one shared time: the same λ, equal to the price of a replay of every
    stored outcome, and the stored sums equal that replay to 1e-9."""
    SQLStore(sql_url).close()  # create the schema once, before the workers race for it
    barrier = str(tmp_path / "done")
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "spend", sql_url, "shared", str(seed), "1200", barrier, "2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    store = SQLStore(sql_url)
    try:
        replay = _replay(store, "shared", 3600.0)
        stored = store.load_spend("shared")
        assert store.spend_target("shared") == B
    finally:
        store.close()
    assert stored.requests == replay.requests == 2400
    assert stored.spend_usd == pytest.approx(replay.spend_usd, rel=1e-9)
    assert stored.spend_w == pytest.approx(replay.spend_w, rel=1e-9)
    assert stored.requests_w == pytest.approx(replay.requests_w, rel=1e-9)
    assert stored.ref_time == replay.ref_time
    want = SpendStatus.of(replay, B, 3600.0, 1_700_000_000.0 + 1200 + 100.0)
    assert want.price_per_usd > 0.0
    for got in results:
        assert got["requests"] == 2400
        assert got["price_per_usd"] == pytest.approx(want.price_per_usd, rel=1e-9)
        assert got["realized_usd_per_request"] == pytest.approx(
            want.realized_usd_per_request, rel=1e-9
        )


def test_a_restarted_router_resumes_the_price(sql_url: str) -> None:
    clock = StepClock(step=1.0)
    with _router(sql_url, clock, half_life=3600.0) as first:
        _run(first, 800)
        first.flush()
        clock.step = 0.0  # both routers price at one time
        before = first.spend()
    assert before.price_per_usd > 0.0
    with _router(sql_url, clock, half_life=3600.0, seed=2) as second:
        after = second.spend()
        penalty = {p.path: p.spend_penalty for p in second.posteriors()}
    assert after.requests == before.requests == 800
    assert after.spend_usd == pytest.approx(before.spend_usd, rel=1e-12)
    assert after.price_per_usd == pytest.approx(before.price_per_usd, rel=1e-9)
    assert penalty["dear"] == pytest.approx(after.price_per_usd * 0.01, rel=1e-6)


def test_choose_and_report_count_the_reported_spend(store_url: str) -> None:
    clock = StepClock(step=1.0)
    with _router(store_url, clock, target=0.002) as router:
        spent = 0.0
        for i in range(40):
            d = router.choose()
            cost = 0.01 if d.path == "dear" else 0.001
            spent += cost
            router.report(d.request_id, success=i % 3 != 0, cost_usd=cost)
        status = router.spend()
        if isinstance(router.store, SpendTotals):
            stored = router.store.load_spend("paced")
            assert stored.requests == 40
    assert status.requests == 40
    assert status.spend_usd == pytest.approx(spent, rel=1e-12)
    assert status.realized_usd_per_request == pytest.approx(spent / 40, rel=1e-9)


def test_paths_of_unknown_cost_are_charged_the_dearest_known_cost() -> None:
    """Under a target a path never metered must not look free: it is charged the dearest
    measured cost (and its attempts add nothing to the realized spend)."""
    clock = StepClock(step=1.0)
    spec: dict[str, tuple[float, float | None]] = {
        "dear": (0.9, 0.01),
        "cheap": (0.6, 0.001),
        "unmetered": (0.5, None),
    }
    with _router("memory://", clock, target=0.0005, paths=_paths(3, spec)) as router:
        _run(router, 300)
        lam = router.spend().price_per_usd
        posts = {p.path: p for p in router.posteriors()}
    assert lam > 0.0
    assert posts["unmetered"].expected_cost_usd is None
    assert posts["unmetered"].spend_penalty == pytest.approx(lam * 0.01, rel=1e-9)
    assert posts["cheap"].spend_penalty == pytest.approx(lam * 0.001, rel=1e-6)


def test_without_a_target_the_router_still_reports_the_stores_spend(store_url: str) -> None:
    clock = StepClock(step=1.0)
    with Router(
        _paths(5), bool, "plain", store=store_url, learning=Learning(seed=5, clock=clock)
    ) as router:
        _run(router, 50)
        router.flush()
        status = router.spend()
        outcomes = router.store.outcomes("plain")
    assert status.target_usd_per_request is None
    assert status.price_per_usd == 0.0
    assert status.requests == 50
    assert status.spend_usd == pytest.approx(sum(o.cost_usd or 0.0 for o in outcomes))


def test_migration_0010_backfills_the_spend_from_the_outcome_rows(sqlite_url: str) -> None:
    clock = StepClock(step=7.0)
    with _router(sqlite_url, clock, half_life=600.0) as router:
        _run(router, 200)
    store = SQLStore(sqlite_url)
    live = store.load_spend("paced")
    store.close()
    command.downgrade(alembic_config(sqlite_url), "0009_evidence_positions")
    assert upgrade(sqlite_url).after == HEAD_REVISION
    store = SQLStore(sqlite_url)
    try:
        back = store.load_spend("paced")
        assert store.spend_target("paced") is None  # no router before 0010 had one
    finally:
        store.close()
    assert back.requests == live.requests == 200
    assert back.spend_usd == pytest.approx(live.spend_usd, rel=1e-12)
    assert back.spend_w == pytest.approx(live.spend_w, rel=1e-9)
    assert back.requests_w == pytest.approx(live.requests_w, rel=1e-9)
    assert back.ref_time == live.ref_time


def test_cli_and_dashboard_show_the_target_realized_spend_and_price(sqlite_url: str) -> None:
    import time

    from adaptive_router.dashboard.data import Window, summary

    clock = StepClock(start=time.time() - 5000.0, step=1.0)
    with _router(sqlite_url, clock) as router:
        _run(router, 600)
    out = CliRunner().invoke(app, ["posteriors", "--db", sqlite_url, "--task", "paced"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "spend target 0.004 USD per request" in text
    assert "price λ =" in text
    rows = json.loads(
        CliRunner()
        .invoke(app, ["posteriors", "--db", sqlite_url, "--task", "paced", "--json"])
        .output
    )
    assert {r["path"] for r in rows} == {"dear", "cheap"}
    store = SQLStore(sqlite_url)
    try:
        now = time.time()
        s = summary(store, "paced", Window(now - 7200.0, None, now))
        want = SpendStatus.of(store.load_spend("paced"), B, None, now)
    finally:
        store.close()
    assert s["spend"]["target_usd_per_request"] == B
    assert s["spend"]["requests"] == 600
    assert s["spend"]["price_per_usd"] == pytest.approx(want.price_per_usd, rel=1e-9)
    by_path = {r["path"]: r for r in rows}
    assert by_path["dear"]["spend_penalty"] == pytest.approx(
        want.price_per_usd * by_path["dear"]["expected_cost_usd"], rel=1e-6
    )


def test_cli_and_dashboard_penalties_match_the_routers_with_a_fallback(sqlite_url: str) -> None:
    """The fallback is never ranked or charged, so it neither gets a penalty nor sets the
    charge of a path of unknown cost; the CLI and the dashboard, which read only the store,
    show what the router shows."""
    import time

    from adaptive_router.dashboard.data import Window, summary

    clock = StepClock(start=time.time() - 5000.0, step=1.0)
    spec: dict[str, tuple[float, float | None]] = {
        "dear": (0.9, 0.01),
        "cheap": (0.0, 0.001),  # always fails: the fallback runs
        "unmetered": (0.9, None),
    }
    fallback = Path(lambda: Result(True, Usage(cost_usd=0.05)), name="fb")
    with _router(sqlite_url, clock, target=0.002, paths=_paths(2, spec), fallback=fallback) as r:
        _run(r, 1000)  # the exploration floor tries the unmetered path now and then
        r.flush()
        mine = {p.path: p.spend_penalty for p in r.posteriors()}
    assert mine["fb"] is None and mine["unmetered"] is not None and mine["unmetered"] > 0
    rows = json.loads(
        CliRunner()
        .invoke(app, ["posteriors", "--db", sqlite_url, "--task", "paced", "--json"])
        .output
    )
    store = SQLStore(sqlite_url)
    try:
        now = time.time()
        board = summary(store, "paced", Window(now - 7200.0, None, now))["posteriors"]
    finally:
        store.close()
    for shown in (rows, board):
        got = {row["path"]: row["spend_penalty"] for row in shown}
        assert got.keys() == mine.keys()
        assert got["fb"] is None
        for path in ("dear", "cheap", "unmetered"):
            assert got[path] == pytest.approx(mine[path], rel=1e-3), path


def test_the_stores_fold_is_spend_stats_add_bit_for_bit() -> None:
    """fold_spend (inlined for the write path) equals SpendStats.add exactly, in any
    arrival order, with and without a half-life."""
    from adaptive_router.outcomes import Outcome

    rng = random.Random(1)
    for half_life in (None, 300.0):
        a, b = SpendStats(), SpendStats()
        for _ in range(3000):
            at = 1.7e9 + rng.uniform(0, 5000)
            cost = rng.choice([None, 0.001, 0.02])
            attempt = rng.choice([1, 1, 2])
            fold_spend(
                a, Outcome("r", "t", "p", attempt, True, cost_usd=cost, created_at=at), half_life
            )
            b.add(0.0 if cost is None else cost, 1 if attempt == 1 else 0, at, half_life)
        assert a == b
