"""The demo: traffic leaves the degraded path quickly, requests keep succeeding."""

from __future__ import annotations

import json
import pathlib
import sqlite3

import pytest
from typer.testing import CliRunner

from adaptive_router.cli import app
from adaptive_router.demo import (
    DEFAULT_SEED,
    DEGRADED,
    FALLBACK,
    TASK,
    DemoProgress,
    is_valid_order,
    make_order,
    parse_lenient,
    parse_strict,
    requests_to_shift,
    run_demo,
)
from adaptive_router.errors import ConfigurationError

runner = CliRunner()


@pytest.mark.parametrize("seed", [DEFAULT_SEED, 1, 2])
def test_traffic_leaves_the_degraded_path_within_150_requests(
    tmp_path: pathlib.Path, seed: int
) -> None:
    s = run_demo(str(tmp_path / "demo.db"), requests=800, seed=seed)
    assert s.drop_at == 400
    assert s.requests_to_shift is not None
    assert s.requests_to_shift <= 150
    assert s.success_rate > 0.95
    healthy, settled = s.phase("healthy"), s.phase("settled")
    # Before the drop the best path carries most traffic; after adapting, almost none.
    assert healthy.share(DEGRADED) > 0.6
    assert settled.share(DEGRADED) < 0.10
    assert settled.share("claude-3-5-sonnet") > 0.8
    posteriors = {p.path: p for p in s.posteriors}
    assert posteriors[DEGRADED].mean < posteriors["claude-3-5-sonnet"].mean
    assert sum(sum(ph.first_attempts.values()) for ph in s.phases) == s.requests


def test_default_run_is_fast_and_reproducible(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "demo.db"
    first = run_demo(str(db))
    assert first.requests == 2000
    assert first.elapsed_s < 20
    assert first.requests_to_shift is not None and first.requests_to_shift <= 150
    assert first.success_rate > 0.95
    # A second run deletes the file first: same numbers, and the rows are not doubled.
    second = run_demo(str(db))
    assert (second.phases, second.requests_to_shift, second.attempts) == (
        first.phases,
        first.requests_to_shift,
        first.attempts,
    )
    # Only the wall-clock anchor differs between runs, so the posteriors agree to rounding.
    assert [p.alpha for p in second.posteriors] == pytest.approx(
        [p.alpha for p in first.posteriors]
    )
    assert [p.beta for p in second.posteriors] == pytest.approx([p.beta for p in first.posteriors])
    with sqlite3.connect(db) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM outcomes").fetchone()
    assert rows == second.attempts


def test_outcomes_are_readable_by_the_cli_afterwards(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "demo.db"
    result = runner.invoke(app, ["demo", "--db", str(db), "--requests", "600", "--no-live"])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.stdout and "later it had under 10%" in result.stdout
    posteriors = runner.invoke(app, ["posteriors", "--db", str(db), "--task", TASK, "--json"])
    assert posteriors.exit_code == 0, posteriors.output
    means = {p["path"]: p["mean"] for p in json.loads(posteriors.stdout)}
    assert set(means) == {DEGRADED, "claude-3-5-sonnet", "gpt-4o-mini", FALLBACK}
    assert means[DEGRADED] < means["claude-3-5-sonnet"]
    # The simulated clock ends at the real "now": the last 5 minutes hold the last ~300
    # requests, the last hour all 600.
    for since, low, high in (("5m", 280, 301), ("1h", 600, 600)):
        stats = runner.invoke(
            app, ["stats", "--db", str(db), "--task", TASK, "--since", since, "--json"]
        )
        assert stats.exit_code == 0, stats.output
        firsts = sum(s["first_attempts"] for s in json.loads(stats.stdout))
        assert low <= firsts <= high, since


def test_live_progress_reports(tmp_path: pathlib.Path) -> None:
    seen: list[DemoProgress] = []
    s = run_demo(None, requests=300, seed=3, on_progress=seen.append, progress_every=50)
    assert [p.done for p in seen] == [50, 100, 150, 200, 250, 300]
    last = seen[-1]
    assert last.window == 100
    assert sum(row.first_attempt_share for row in last.paths) == pytest.approx(1.0)
    assert last.success_rate == pytest.approx(s.success_rate)
    rows = {row.name: row for row in last.paths}
    assert rows[DEGRADED].true_rate == 0.30
    assert rows[FALLBACK].true_rate is None


def test_live_display_runs(tmp_path: pathlib.Path) -> None:
    result = runner.invoke(app, ["demo", "--db", str(tmp_path / "d.db"), "--requests", "300"])
    assert result.exit_code == 0, result.output
    assert "first attempts (last 100)" in result.stdout


def test_parsers_and_success_function() -> None:
    assert parse_strict("2x widget to Berlin") == {
        "quantity": 2,
        "item": "widget",
        "city": "Berlin",
    }
    assert parse_strict("three gizmo for Oslo, thanks") is None
    assert parse_lenient("three gizmo for Oslo, thanks") == {
        "quantity": 3,
        "item": "gizmo",
        "city": "Oslo",
    }
    assert parse_lenient("could you ship ten bolt pack to Dublin please") == {
        "quantity": 10,
        "item": "bolt pack",
        "city": "Dublin",
    }
    assert is_valid_order({"quantity": 1, "item": "x", "city": "y"})
    for bad in (None, {}, {"quantity": "some", "item": "x", "city": "y"}, {"quantity": True}):
        assert not is_valid_order(bad)


def test_every_generated_order_is_parsed_by_a_working_model() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    texts = [make_order(rng, free_form=0.2) for _ in range(500)]
    assert all(is_valid_order(parse_lenient(t)) for t in texts)
    strict = [t for t in texts if parse_strict(t) is not None]
    assert 0.7 < len(strict) / len(texts) < 0.9  # the free-form ones need a model


def test_requests_to_shift() -> None:
    # Under 10% of a 50-request window means at most 4 of them: the window starting at 6.
    assert requests_to_shift(["a"] * 10 + ["b"] * 60, path="a") == 6
    assert requests_to_shift(["b", "a"] * 10 + ["b"] * 50, path="a") == 12
    assert requests_to_shift(["a"] * 100, path="a") is None
    assert requests_to_shift(["b"] * 49, path="a") is None


@pytest.mark.parametrize(
    "kwargs",
    [{"requests": 10}, {"db": "postgresql://u@h/db"}, {"db": ":memory:"}, {"requests": True}],
)
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        run_demo(**kwargs)  # type: ignore[arg-type]
