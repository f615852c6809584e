"""The demo: real SDK paths against the fake provider; traffic leaves the degraded path
quickly, requests keep succeeding, and the run is reproducible from its seed."""

from __future__ import annotations

import json
import os
import pathlib
import re
import sqlite3
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from adaptive_router.cli import app
from adaptive_router.demo import (
    CLAUDE,
    DEFAULT_REQUESTS,
    DEFAULT_SEED,
    DEGRADED,
    FALLBACK,
    MODELS,
    TASK,
    DemoProgress,
    Order,
    behave,
    is_valid_order,
    make_order,
    parse_lenient,
    parse_strict,
    requests_to_shift,
    run_demo,
)
from adaptive_router.errors import ConfigurationError
from adaptive_router.testing import FakeProvider

runner = CliRunner()


def test_traffic_leaves_the_degraded_path_within_150_requests(tmp_path: pathlib.Path) -> None:
    # Another seed goes through the CLI below.
    s = run_demo(str(tmp_path / "demo.db"), requests=600, seed=DEFAULT_SEED)
    assert s.drop_at == 300
    assert s.requests_to_shift is not None
    assert s.requests_to_shift <= 150
    assert s.success_rate > 0.95
    healthy, settled = s.phase("healthy"), s.phase("settled")
    # Before the drop the best path carries most traffic; after adapting, almost none.
    assert healthy.share(DEGRADED) > 0.6
    assert settled.share(DEGRADED) < 0.10
    assert settled.share(CLAUDE) > 0.8
    posteriors = {p.path: p for p in s.posteriors}
    assert posteriors[DEGRADED].mean < posteriors[CLAUDE].mean
    assert sum(sum(ph.first_attempts.values()) for ph in s.phases) == s.requests
    # The resilience machinery was exercised, through the real SDKs: retries, the
    # breaker opening on the degraded path, faults recorded by kind, tokens counted.
    assert s.retries > 0 and s.breaker_opened.get(DEGRADED, 0) >= 1
    gpt = s.kinds[DEGRADED]
    assert gpt["ok"] > 0 and gpt.get("server_error", 0) + gpt.get("connection", 0) > 0
    assert s.kinds[CLAUDE]["ok"] > 0
    assert s.http_calls[DEGRADED] >= sum(gpt.values())  # retries are extra calls
    assert s.input_tokens > 0 and s.output_tokens > 0 and s.cost_usd > 0


def test_runs_are_reproducible(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "demo.db"
    first = run_demo(str(db), requests=300, seed=4)
    assert first.success_rate > 0.95
    # A second run deletes the file first: same numbers, and the rows are not doubled.
    second = run_demo(str(db), requests=300, seed=4)
    assert (second.phases, second.requests_to_shift, second.attempts) == (
        first.phases,
        first.requests_to_shift,
        first.attempts,
    )
    assert (second.kinds, second.http_calls, second.retries, second.input_tokens) == (
        first.kinds,
        first.http_calls,
        first.retries,
        first.input_tokens,
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
    result = runner.invoke(
        app, ["demo", "--db", str(db), "--requests", "600", "--seed", "1", "--no-table"]
    )
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.stdout and "later it had under 10%" in result.stdout
    shift = re.search(r"; (\d+) requests later it had under 10%", result.stdout)
    assert shift is not None and int(shift.group(1)) <= 150
    rate = re.search(r"([\d.]+)% succeeded", result.stdout)
    assert rate is not None and float(rate.group(1)) > 95
    assert "breakers opened: gpt-4o" in result.stdout
    png = db.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the report the demo draws
    costs = runner.invoke(
        app, ["costs", "--db", str(db), "--task", TASK, "--since", "1h", "--json"]
    )
    assert costs.exit_code == 0, costs.output
    report = json.loads(costs.stdout)
    assert report["cost_usd"] > 0 and report["cost_per_1000_requests"] > 0
    posteriors = runner.invoke(app, ["posteriors", "--db", str(db), "--task", TASK, "--json"])
    assert posteriors.exit_code == 0, posteriors.output
    means = {p["path"]: p["mean"] for p in json.loads(posteriors.stdout)}
    assert set(means) == {DEGRADED, CLAUDE, FALLBACK}
    assert means[DEGRADED] < means[CLAUDE]
    # The simulated clock ends at the real "now": the last 5 minutes hold the last ~300
    # requests, the last hour all 600.
    for since, low, high in (("5m", 280, 301), ("1h", 600, 600)):
        stats = runner.invoke(
            app, ["stats", "--db", str(db), "--task", TASK, "--since", since, "--json"]
        )
        assert stats.exit_code == 0, stats.output
        rows = json.loads(stats.stdout)
        firsts = sum(s["first_attempts"] for s in rows)
        assert low <= firsts <= high, since
    by_path = {s["path"]: s for s in rows}
    assert by_path[CLAUDE]["input_tokens"] > 0 and by_path[CLAUDE]["cost_usd"] > 0
    assert by_path[DEGRADED]["errors"]  # failures by kind


def test_live_progress_reports(tmp_path: pathlib.Path) -> None:
    seen: list[DemoProgress] = []
    s = run_demo(None, requests=300, seed=3, on_progress=seen.append, progress_every=50)
    assert [p.done for p in seen] == [50, 100, 150, 200, 250, 300]
    last = seen[-1]
    assert last.window == 100
    assert sum(row.first_attempt_share for row in last.paths) == pytest.approx(1.0)
    assert last.success_rate == pytest.approx(s.success_rate)
    rows = {row.name: row for row in last.paths}
    assert rows[DEGRADED].true_rate == MODELS[0].after
    assert rows[FALLBACK].true_rate is None
    assert {row.breaker for row in last.paths} <= {"closed", "open", "half_open", "none"}
    assert rows[FALLBACK].breaker == "none"
    assert last.attempts == s.attempts and last.retries == s.retries
    assert last.http_calls == sum(s.http_calls.values())
    assert last.input_tokens == s.input_tokens > 0


def test_live_display_runs(tmp_path: pathlib.Path) -> None:
    result = runner.invoke(app, ["demo", "--db", str(tmp_path / "d.db"), "--requests", "300"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "first attempts, tries, ok rate and retries over the last 100 requests" in text
    for column in ("breaker", "post. mean", "retries,", "API calls", "tokens"):
        assert column in text


def test_defaults() -> None:
    assert DEFAULT_REQUESTS == 2000
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    assert "--live" in result.stdout and "--no-table" in result.stdout


def test_live_mode_needs_api_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-canary-not-to-be-shown")
    result = runner.invoke(app, ["demo", "--live", "--db", str(tmp_path / "d.db")])
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in result.output
    assert "sk-ant-canary" not in result.output
    assert not (tmp_path / "d.db").exists()


def test_live_mode_code_path_against_the_fake_via_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # --live cannot reach the real APIs here; pointing the SDKs' base URLs at a
    # FakeProvider exercises everything but the network.
    with FakeProvider() as fake:
        for model, seed in zip(MODELS, (1, 2), strict=True):
            behave(fake, model, degraded=False, seed=seed)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.anthropic_base_url)
        monkeypatch.setattr("adaptive_router.demo.run.LIVE_RETRY_INITIAL_S", 0.001)
        s = run_demo(None, requests=30, seed=5, live=True)
    assert s.live and s.requests == 30 and s.success_rate > 0.9
    # After the drop, GPT-4o's calls mostly fail before reaching the provider.
    assert s.kinds[DEGRADED].get("server_error", 0) >= 1
    assert fake.calls() == sum(s.http_calls.values())


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
    assert is_valid_order(Order(quantity=1, item="x", city="y"))
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
    [
        {"requests": 10},
        {"db": "postgresql://u@h/db"},
        {"db": ":memory:"},
        {"requests": True},
        {"requests": 5, "live": True},
    ],
)
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        run_demo(**kwargs)  # type: ignore[arg-type]


def test_demo_without_matplotlib_skips_the_png_and_exits_0(tmp_path: pathlib.Path) -> None:
    # A plain `pip install .` has no matplotlib: simulate its absence in a fresh process.
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from adaptive_router.cli import main\n"
        "sys.argv = ['adaptive-router', *sys.argv[1:]]\n"
        "main()\n"
    )
    db = tmp_path / "demo.db"
    done = subprocess.run(
        [sys.executable, "-c", code, "demo", "--db", str(db), "--requests", "300", "--no-table"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    assert "error:" not in done.stderr  # the CLI's failure line
    assert "RuntimeError" not in done.stdout + done.stderr
    assert "pip install 'adaptive-router[plot]'" in done.stdout
    assert not db.with_suffix(".png").exists()
