"""``Router(features=...)``: routing each request by its features, live.

A contextual policy (per path a Bayesian linear model of success on the hashed features)
ranks each request; the statistics are the store's (``feature_stats``), shared by every
router of the task and resumed after a restart; ``choose`` keeps the vector with the
pending decision so a report from anywhere updates the right statistics. Bad features
inside ``run`` rank the request without them (one warning per window); ``choose`` raises.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from typing import Any

import numpy as np
import pytest
from conftest import StepClock

import adaptive_router.stores.feature_stats as fs
from adaptive_router import (
    AllPathsFailed,
    Budget,
    Learning,
    Objective,
    Path,
    Persistence,
    Reporter,
    Router,
)
from adaptive_router.errors import ConfigurationError
from adaptive_router.features import FeatureError, decode_features, text_features
from adaptive_router.outcomes import Result, Usage
from adaptive_router.policies.thompson import ThompsonSampling
from adaptive_router.stores import FeatureEvidence

DIM = 32


def _world(seed: int) -> tuple[list[Path], list[tuple[str, bool]]]:
    """Two paths: ``small`` answers maths well (0.95) and history badly (0.2), ``large``
    both fairly (0.8). Each call is noted as (path, maths?)."""
    rng = random.Random(seed)
    seen: list[tuple[str, bool]] = []

    def large(q: str) -> Result:
        seen.append(("large", "maths" in q))
        return Result(rng.random() < 0.8, Usage(cost_usd=0.01))

    def small(q: str) -> Result:
        maths = "maths" in q
        seen.append(("small", maths))
        return Result(rng.random() < (0.95 if maths else 0.2), Usage(cost_usd=0.001))

    return [Path(large, name="large"), Path(small, name="small")], seen


def _question(i: int) -> str:
    return f"{'maths' if i % 2 else 'history'} question {i % 7}"


def _router(url: str, clock: StepClock, paths: list[Path], **kw: Any) -> Router:
    return Router(
        paths,
        bool,
        kw.pop("task", "feat"),
        store=url,
        features=kw.pop("features", text_features(dim=DIM)),
        budget=Budget(max_attempts=1),
        learning=Learning(seed=kw.pop("seed", 1), clock=clock),
        **kw,
    )


def _run(router: Router, start: int, n: int) -> None:
    for i in range(start, start + n):
        with contextlib.suppress(AllPathsFailed):
            router.run(_question(i))


def _share(seen: list[tuple[str, bool]], path: str, maths: bool) -> float:
    sub = [p for p, m in seen if m == maths]
    return sum(p == path for p in sub) / len(sub)


@pytest.fixture(autouse=True)
def _quiet_fallbacks() -> Any:
    logging.getLogger("adaptive_router.router.attempts").setLevel(logging.ERROR)
    yield
    logging.getLogger("adaptive_router.router.attempts").setLevel(logging.NOTSET)


def test_bad_feature_configuration_names_the_parameter() -> None:
    paths, _ = _world(0)
    with pytest.raises(ConfigurationError, match="features must be a function"):
        Router(paths, bool, "t", store="memory://", features="text")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="features: rank by success"):
        Router(paths, bool, "t", store="memory://", features=text_features(), objective="cost")
    with pytest.raises(ConfigurationError, match="features: a feature router"):
        Router(
            paths,
            bool,
            "t",
            store="memory://",
            features=text_features(),
            learning=Learning(policy=ThompsonSampling()),
        )

    def no_dim(*a: object) -> dict[str, float]:
        return {}

    no_dim.dim = 0  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match=r"features\.dim"):
        Router(paths, bool, "t", store="memory://", features=no_dim)
    # Refused at construction, not by a MemoryError at the first request.
    with pytest.raises(ConfigurationError, match=r"features\.dim must be an int in \[1, 4096\]"):
        Router(paths, bool, "t", store="memory://", features=text_features(dim=2**20))


def test_each_request_goes_to_the_path_its_features_favour(store_url: str) -> None:
    paths, seen = _world(1)
    with _router(store_url, StepClock(step=1.0), paths) as router:
        _run(router, 0, 800)
        posts = {p.path: p for p in router.posteriors()}
    tail = seen[-300:]
    assert _share(tail, "small", maths=True) >= 0.8
    assert _share(tail, "large", maths=False) >= 0.8
    # A feature-less Beta router would send everything to one path: the features matter,
    # and posteriors() names them (a hashed bucket by a feature seen in it).
    names = " ".join(n for n, _ in posts["small"].features)
    assert "maths" in names or "history" in names


def test_features_and_a_spend_target_together(store_url: str) -> None:
    """Under a spend target the contextual scores pay λ·c: spend converges on B too."""
    paths, _ = _world(2)
    clock = StepClock(step=1.0)
    with _router(
        store_url, clock, paths, objective=Objective(target_usd_per_request=0.004)
    ) as router:
        _run(router, 0, 1500)
        router.flush()
        status = router.spend()
    assert status.realized_usd_per_request == pytest.approx(0.004, rel=0.05)


def test_bad_features_inside_run_rank_without_them_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = {"n": 0}

    def flaky(q: str) -> dict[str, float]:
        calls["n"] += 1
        if calls["n"] % 2:
            return {"length": math.nan}
        raise RuntimeError("tokenizer down")

    flaky.dim = DIM  # type: ignore[attr-defined]
    paths, _ = _world(3)
    with (
        caplog.at_level(logging.WARNING, logger="adaptive_router"),
        _router("memory://", StepClock(step=1.0), paths, features=flaky) as router,
    ):
        for i in range(10):
            with contextlib.suppress(AllPathsFailed):
                router.run(_question(i))
        rows = router.store.outcomes("feat")
        assert isinstance(router.store, FeatureEvidence)
        assert router.store.load_features("feat") == {}
    # One line per window names the first problem; the rest are counted (at close).
    lines = [r.getMessage() for r in caplog.records if "without features" in r.getMessage()]
    assert len(lines) == 2
    assert "'length' is nan" in lines[0]
    assert "9 more requests ranked without features" in lines[1]
    assert len(rows) == 10 and all(o.features is None for o in rows)


def test_a_huge_feature_value_never_reaches_the_stored_statistics(sql_url: str) -> None:
    # Its square would overflow: stored once, the path's model would be NaN for every process.
    def scaled(q: str, v: float) -> dict[str, float]:
        return {"v": v}

    scaled.dim = DIM  # type: ignore[attr-defined]
    paths = [Path(lambda q, v: True, name=n, cost_usd=0.001) for n in ("a", "b")]
    with _router(sql_url, StepClock(step=1.0), paths, features=scaled) as router:
        for v in (0.5, 1e200, 10**400, -0.5):
            with contextlib.suppress(AllPathsFailed):
                router.run("q", v)
        with pytest.raises(FeatureError, match="feature 'v' is 1e\\+200"):
            router.choose("q", 1e200)
        router.flush()
        store = router.store
        assert isinstance(store, FeatureEvidence)
        stats = store.load_features("feat")[""]
        rows = store.outcomes("feat")
    assert sum(st.count for st in stats.values()) == 2
    assert all(np.isfinite(st.xx).all() and np.isfinite(st.xy).all() for st in stats.values())
    # All four requests are recorded; the two huge ones without features.
    assert [o.features is None for o in sorted(rows, key=lambda o: o.created_at)] == [
        False,
        True,
        True,
        False,
    ]


def test_a_decision_from_before_a_dimension_change_is_path_evidence_only(
    sql_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Folding its old-dimension vector would restart the task's statistics at the old
    # dimension and discard what the routers learned since the change.
    clock = StepClock(step=1.0)
    paths, _ = _world(8)
    with _router(sql_url, clock, paths, features=text_features(dim=16)) as old:
        pending = [old.choose(_question(i)) for i in range(3)]
    with (
        caplog.at_level(logging.WARNING, logger="adaptive_router"),
        _router(
            sql_url,
            clock,
            paths,
            persistence=Persistence(pending_ttl=500.0),
        ) as new,
    ):
        _run(new, 0, 40)
        new.flush()
        store = new.store
        assert isinstance(store, FeatureEvidence)

        def stats() -> dict[str, tuple[int, int]]:
            return {p: (st.dim, st.count) for p, st in store.load_features("feat")[""].items()}

        before = stats()
        assert {d for d, _ in before.values()} == {DIM} and sum(n for _, n in before.values()) == 40
        assert new.report(pending[0].request_id, True, cost_usd=0.001)
        with Reporter("feat", sql_url, features_dim=DIM) as reporter:
            assert reporter.report(pending[1].request_id, False, cost_usd=0.001)
        clock.advance(1_000.0)  # the third expires (a failure) at the next decision
        new.choose(_question(1))
        new.flush()
        assert stats() == before
        by_rid = {o.request_id: o for o in store.outcomes("feat")}
    got = [by_rid[d.request_id] for d in pending]
    assert [(o.success, o.kind, o.features) for o in got] == [
        (True, None, None),
        (False, "rejected", None),
        (False, "expired", None),
    ]
    warned = [
        r.getMessage() for r in caplog.records if "features of dimension 16" in r.getMessage()
    ]
    assert len(warned) == 3 and all(f"now use {DIM}" in m for m in warned)
    # Without features_dim a Reporter folds whatever dimension the decision had.
    with pytest.raises(ConfigurationError, match="features_dim must be"):
        Reporter("feat", sql_url, features_dim=0)


def test_choose_raises_for_bad_features_and_needs_a_feature_router() -> None:
    paths, _ = _world(4)
    with _router("memory://", StepClock(step=1.0), paths) as router:
        with pytest.raises(FeatureError, match="'score'"):
            router.choose(features={"score": math.inf})
        with pytest.raises(FeatureError, match="found no text"):
            router.choose(42)
    with (
        Router(paths, bool, "plain", store="memory://") as plain,
        pytest.raises(ConfigurationError, match=r"choose\(features=\.\.\.\)"),
    ):
        plain.choose(features={"a": 1.0})


def test_a_report_from_another_router_folds_the_chosen_features(sql_url: str) -> None:
    clock = StepClock(step=1.0)
    paths, _ = _world(5)
    with _router(sql_url, clock, paths) as chooser, _router(sql_url, clock, paths) as other:
        d = chooser.choose("a maths question 3")
        g = chooser.choose(features={"topic": "history", "length": 0.5})
        assert other.report(d.request_id, True, cost_usd=0.001)
        assert other.report(g.request_id, False, cost_usd=0.01)
        store = other.store
        assert isinstance(store, FeatureEvidence)
        stats = store.load_features("feat")[""]
        outcomes = store.outcomes("feat")
    assert sum(st.count for st in stats.values()) == 2
    by_rid = {o.request_id: o for o in outcomes}
    assert by_rid[d.request_id].features is not None
    dim, x = decode_features(by_rid[g.request_id].features or b"")
    assert dim == DIM and len(x.indices) == 2
    if d.path != g.path:  # then each path's statistics hold exactly its one report
        want = fs.fold_group(None, [by_rid[g.request_id]], None)
        np.testing.assert_allclose(stats[g.path].xy, want.xy, atol=1e-12)
        np.testing.assert_allclose(stats[g.path].xx, want.xx, atol=1e-12)


def test_a_restarted_router_resumes_the_feature_statistics(sql_url: str) -> None:
    clock = StepClock(step=1.0)
    paths, _ = _world(6)
    with _router(sql_url, clock, paths, half_life=600.0) as first:
        _run(first, 0, 300)
    paths2, seen = _world(7)
    with _router(sql_url, clock, paths2, half_life=600.0, seed=2) as second:
        store = second.store
        assert isinstance(store, FeatureEvidence)
        stored = store.load_features("feat")
        groups = fs.groups(store.outcomes("feat"))
        replay = {(c, p): fs.fold_group(None, g, 600.0) for (_, c, p), g in groups.items()}
        assert {(c, p) for c in stored for p in stored[c]} == set(replay)
        for (ctx, path), st in replay.items():
            np.testing.assert_allclose(stored[ctx][path].xx, st.xx, atol=1e-9)
        # Routed from the resumed statistics at once: history to the large path.
        _run(second, 0, 60)
    assert _share(seen, "large", maths=False) >= 0.8


def test_arun_ranks_by_features_and_records_them() -> None:
    import asyncio

    paths, seen = _world(8)

    async def main(router: Router) -> None:
        for i in range(400):
            with contextlib.suppress(AllPathsFailed):
                await router.arun(_question(i))

    with _router("memory://", StepClock(step=1.0), paths) as router:
        asyncio.run(main(router))
        rows = router.store.outcomes("feat")
    assert all(o.features is not None for o in rows if o.attempt == 1)
    assert _share(seen[-150:], "large", maths=False) >= 0.8


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_routes_by_features_and_writes_its_evidence(sqlite_url: str) -> None:
    """The models' lock is renewed in the child; the child's outcomes reach the store."""
    import os

    paths, _ = _world(9)
    with _router(sqlite_url, StepClock(step=1.0), paths) as router:
        _run(router, 0, 50)
        router.flush()
        pid = os.fork()
        if pid == 0:  # the child: route, flush, and leave without running atexit hooks
            code = 1
            try:
                _run(router, 50, 50)
                router.flush()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        router.refresh()
        store = router.store
        assert isinstance(store, FeatureEvidence)
        stats = store.load_features("feat")[""]
    assert sum(st.count for st in stats.values()) == 100


def test_the_cli_says_a_feature_router_ranks_by_its_features(sqlite_url: str) -> None:
    from typer.testing import CliRunner

    from adaptive_router.cli import app

    paths, _ = _world(10)
    with _router(sqlite_url, StepClock(step=1.0), paths) as router:
        _run(router, 0, 20)
    with Router(paths, bool, "plain", store=sqlite_url) as plain:
        _run(plain, 0, 5)
    said = {}
    for task in ("feat", "plain"):
        out = CliRunner().invoke(app, ["posteriors", "--db", sqlite_url, "--task", task])
        assert out.exit_code == 0, out.output
        said[task] = " ".join(out.output.split())
    assert "a feature router ranks the first choice by its per-path linear models" in said["feat"]
    assert "the first choice is ranked by them" not in said["feat"]
    assert "the first choice is ranked by them" in said["plain"]
    assert "feature router" not in said["plain"]
