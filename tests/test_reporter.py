"""Reporter: two-phase feedback from a process that constructs no path."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from adaptive_router import (
    ConfigurationError,
    Path,
    Persistence,
    Reporter,
    Router,
    UnknownRequestError,
)
from adaptive_router.feedback.reporter import Report
from adaptive_router.stores import open_store
from adaptive_router.stores.schema import pending


def never_called() -> str:
    raise AssertionError("a two-phase router does not call its paths")


def gpt4o(inp: int, out: int) -> float:
    return float(calc_price(PriceUsage(input_tokens=inp, output_tokens=out), "gpt-4o").total_price)


def test_reporter_in_a_second_store_object_prices_from_the_recorded_model(sql_url: str) -> None:
    with Router(
        [Path(never_called, name="main", model="gpt-4o")],
        bool,
        "two-phase",
        store=sql_url,
        half_life=3600,
        persistence=Persistence(durability="sync"),
    ) as router:
        decision = router.choose()
    with Reporter(task="two-phase", store=sql_url, half_life=3600) as reporter:
        assert reporter.report(decision.request_id, True, input_tokens=1000, output_tokens=500)
        assert not reporter.report(decision.request_id, False)  # exactly once
        with pytest.raises(UnknownRequestError, match="never chosen"):
            reporter.report("0" * 32, True)
        (outcome,) = reporter.store.outcomes("two-phase")
    assert (outcome.path, outcome.success) == ("main", True)
    assert outcome.cost_usd == pytest.approx(gpt4o(1000, 500))
    with Router(
        [Path(never_called, name="main", model="gpt-4o")],
        bool,
        "two-phase",
        store=sql_url,
        half_life=3600,
    ) as router:
        (post,) = router.posteriors()
        assert not router.report(decision.request_id, True)  # the router sees the same claim
    assert (post.alpha, post.beta, post.n) == (pytest.approx(2.0, rel=1e-3), 1.0, 1)


def test_reporter_prices_old_decisions_from_models(sqlite_url: str) -> None:
    with Router(
        [Path(never_called, name="main", model="gpt-4o")], bool, "old", store=sqlite_url
    ) as router:
        decision = router.choose()
    store = open_store(sqlite_url)
    with store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(sa.update(pending).values(model=None))  # as a pre-0003 decision
    with Reporter(task="old", store=store, models={"main": "gpt-4o"}) as reporter:
        assert reporter.report(decision.request_id, False, input_tokens=10, output_tokens=5)
    (outcome,) = store.outcomes("old")
    store.close()
    assert outcome.kind == "rejected" and outcome.cost_usd == pytest.approx(gpt4o(10, 5))


def test_reporter_validates_like_the_router() -> None:
    with Router([Path(never_called, name="main")], bool, "v", store="memory://") as router:
        decision = router.choose()
        reporter = Reporter("v", router.store)
        other = Reporter("w", router.store)
        with pytest.raises(ValueError, match="input_tokens must be an int"):
            reporter.report(decision.request_id, True, input_tokens=-1)
        with pytest.raises(ValueError, match="belongs to task 'v'"):
            other.report(decision.request_id, True)
        assert reporter.report(decision.request_id, True)
        assert not router.report(decision.request_id, True)
    with pytest.raises(ConfigurationError, match="models must map"):
        Reporter("v", "memory://", models={"main": 4})  # type: ignore[dict-item]


def test_reporter_refuses_a_half_life_the_task_was_not_learned_with() -> None:
    with Router(
        [Path(lambda: "x", name="main")], bool, "hl", store="memory://", half_life=60
    ) as router:
        router.run()
        with pytest.raises(ConfigurationError, match="half_life"):
            Reporter("hl", router.store)


def test_router_report_goes_through_its_reporter(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    with Router([Path(never_called, name="main")], bool, "shared", store="memory://") as router:
        decision = router.choose()
        original = Reporter.claim

        def spy(self: Reporter, report: Report, *a: object, **kw: object) -> object:
            calls.append(report.request_id)
            return original(self, report, *a, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(Reporter, "claim", spy)
        assert router.report(decision.request_id, True)
    assert calls == [decision.request_id]
