"""Every script in examples/ runs as a user would run it — a fresh interpreter, an empty
working directory, no API key — and prints what its docstring promises."""

from __future__ import annotations

import os
import pathlib
import re
import sqlite3
import subprocess
import sys

import pytest

from adaptive_router.metering.prices import Pricer

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str, cwd: pathlib.Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def fields(line: str) -> dict[str, str]:
    """``key=value`` pairs of a printed line."""
    return dict(re.findall(r"([\w-]+)=(\S+)", line))


def line_starting(output: str, prefix: str) -> str:
    (line,) = [x for x in output.splitlines() if x.startswith(prefix)]
    return line


def test_every_example_is_tested() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    tested = {
        "plain_functions.py",
        "provider_paths.py",
        "async_service.py",
        "delayed_feedback.py",
        "cost_objective.py",
        "evaluate_policy.py",
    }
    assert scripts == tested


def test_plain_functions_meter_tokens_and_cost(tmp_path: pathlib.Path) -> None:
    out = run_example("plain_functions.py", tmp_path)
    pricer = Pricer()
    assert line_starting(out, "requests:") == "requests: 300"
    total = 0.0
    for name, model in (("gpt-4o", "gpt-4o"), ("claude", "claude-sonnet-4-6")):
        f = fields(line_starting(out, f"{name}:"))
        attempts = int(f["attempts"])
        # Every reply reports 40 input and 20 output tokens: the bill is per attempt.
        assert int(f["input_tokens"]) == 40 * attempts
        assert int(f["output_tokens"]) == 20 * attempts
        price = pricer.cost(model, 40, 20)
        assert price is not None
        assert float(f["cost_usd"]) == pytest.approx(attempts * price, abs=1e-6)
        total += float(f["cost_usd"])
    calls = fields(line_starting(out, "http calls:"))
    assert int(calls["gpt-4o"]) == int(fields(line_starting(out, "gpt-4o:"))["attempts"])
    summary = fields(line_starting(out, "total"))
    assert float(summary["cost_usd"]) == pytest.approx(total, abs=1e-5)
    assert summary["complete"] == "True"  # the regex declared its cost


def test_provider_paths_validate_and_repair(tmp_path: pathlib.Path) -> None:
    out = run_example("provider_paths.py", tmp_path)
    assert line_starting(out, "result:") == "result: Order(qty=2, item='widget', city='Berlin')"
    assert line_starting(out, "all results") == "all results are orders: True"
    gpt = {k: int(v) for k, v in fields(line_starting(out, "gpt-4o:")).items()}
    claude = {k: int(v) for k, v in fields(line_starting(out, "claude:")).items()}
    # GPT-4o's broken JSON fails the schema; Claude's is repaired on every attempt.
    assert gpt["successes"] + gpt["invalid_output"] == gpt["attempts"]
    assert claude["successes"] == claude["attempts"] and claude["invalid_output"] == 0
    repairs = {k: int(v) for k, v in fields(line_starting(out, "claude repairs:")).items()}
    assert repairs == {"sent": claude["attempts"], "fixed": claude["attempts"]}
    assert gpt["successes"] + claude["successes"] == 200


def test_async_service_answers_every_request_and_stores_every_attempt(
    tmp_path: pathlib.Path,
) -> None:
    out = run_example("async_service.py", tmp_path)
    assert line_starting(out, "answered") == "answered 120 of 120 requests"
    stored = fields(line_starting(out, "stored"))
    assert stored["attempts"] == stored["calls"]  # one stored outcome per HTTP call
    gpt = line_starting(out, "gpt-4o:")
    errors = int(re.search(r"'client_error': (\d+)", gpt).group(1)) if "client_error" in gpt else 0
    attempts = int(fields(gpt)["attempts"])
    assert int(fields(gpt)["successes"]) + errors == attempts


def test_delayed_feedback_reports_once_and_expires_the_rest(tmp_path: pathlib.Path) -> None:
    out = run_example("delayed_feedback.py", tmp_path)
    assert line_starting(out, "decisions:") == "decisions: 61"
    assert line_starting(out, "reported by the router:") == (
        "reported by the router: 50; duplicate recorded: False"
    )
    assert line_starting(out, "reported by a Reporter:") == "reported by a Reporter: 5"
    assert line_starting(out, "unknown id:") == "unknown id: UnknownRequestError"
    assert line_starting(out, "expired:") == "expired: 5"
    assert line_starting(out, "outcomes stored:").startswith("outcomes stored: 61;")


def test_cost_objective_is_cheaper_and_the_budget_skips_the_dear_path(
    tmp_path: pathlib.Path,
) -> None:
    out = run_example("cost_objective.py", tmp_path)
    assert float(fields(line_starting(out, "prior gpt-4o:"))["expected_cost_usd"]) == (
        pytest.approx(Pricer().cost("gpt-4o", 1200, 300), abs=1e-5)
    )

    def path(label: str, name: str) -> dict[str, int]:
        return {k: int(v) for k, v in fields(line_starting(out, f"[{label}] {name}:")).items()}

    def usd(label: str) -> float:
        return float(fields(line_starting(out, f"[{label}] usd_per_1000"))["usd_per_1000"])

    # Success first: GPT-4o leads. Cost first: the mini leads, GPT-4o catches its failures.
    assert (
        path("success", "gpt-4o")["first_attempts"]
        > path("success", "gpt-4o-mini")["first_attempts"]
    )
    mini, gpt = path("cost", "gpt-4o-mini"), path("cost", "gpt-4o")
    assert mini["first_attempts"] > gpt["first_attempts"]
    assert gpt["attempts"] == gpt["first_attempts"] + mini["attempts"] - mini["successes"]
    assert usd("cost") < usd("success") / 2
    # The budget ($0.005) is below GPT-4o's expected $0.006: never called; the regex
    # fallback answers every request the mini fails.
    assert path("budget", "gpt-4o")["attempts"] == 0
    mini = path("budget", "gpt-4o-mini")
    assert path("budget", "regex")["attempts"] == mini["attempts"] - mini["successes"] > 0
    assert usd("budget") < usd("cost")


def test_evaluate_policy_runs_the_demo_when_needed_and_reads_its_logs(
    tmp_path: pathlib.Path,
) -> None:
    out = run_example("evaluate_policy.py", tmp_path, "--requests", "400")
    assert out.startswith("adaptive_router_demo.db not found: running the demo (400 requests)")
    with sqlite3.connect(tmp_path / "adaptive_router_demo.db") as db:
        logged, rate = db.execute(
            "SELECT COUNT(*), AVG(success) FROM outcomes "
            "WHERE attempt = 1 AND propensity IS NOT NULL AND task = 'order-extraction'"
        ).fetchone()
    assert logged == 400
    for label in ("always claude-sonnet-4-6", "always gpt-4o", "half and half"):
        f = fields(line_starting(out, f"{label}:"))
        assert int(f["rows"]) == logged
        assert float(f["logged"]) == pytest.approx(rate, abs=1e-5)
        if f["value"] != "none":
            assert float(f["low"]) <= float(f["value"]) <= float(f["high"])
    cost = fields(line_starting(out, "the cost objective:"))
    assert 0 < float(cost["low"]) <= float(cost["high"])
    # A second run reads the same database: it does not run the demo again.
    again = run_example("evaluate_policy.py", tmp_path)
    assert "running the demo" not in again
    assert line_starting(again, "always gpt-4o:") == line_starting(out, "always gpt-4o:")
