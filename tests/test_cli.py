"""The adaptive-router CLI against real databases filled by a real Router."""

from __future__ import annotations

import json
import math
import os
import pathlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner, Result

from adaptive_router import Learning, Path, Router
from adaptive_router.cli import app, parse_duration, parse_prior, redact
from adaptive_router.migrations import current_revision
from adaptive_router.outcomes import PathWindowStats, Posterior, Usage
from adaptive_router.outcomes import Result as PathResult
from adaptive_router.stores.schema import HEAD_REVISION

PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
CANARY = "canary-secret-123"
CANARY_URL = f"postgresql://postgres:{CANARY}@127.0.0.1:5432/test"

runner = CliRunner()


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return runner.invoke(app, list(args), env=env)


def ok_json(*args: str) -> Any:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class ManualClock:
    """Epoch seconds set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _paths(seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)

    def good(x: int) -> dict[str, int] | None:
        return {"x": x} if rng.random() < 0.9 else None

    def flaky(x: int) -> dict[str, int] | None:
        if rng.random() < 0.4:
            return {"x": x}
        if rng.random() < 0.5:
            raise RuntimeError("flaky failed")
        return None

    return [Path(good, name="good"), Path(flaky, name="flaky")]


def _regex() -> Path:
    return Path(lambda x: {"x": x}, name="regex")


def _fill(
    url: str, task: str, requests: int, *, half_life: timedelta | None, clock: ManualClock | None
) -> Router:
    router = Router(
        _paths(11),
        success_fn=lambda r: r is not None,
        task=task,
        store=url,
        fallback=_regex(),
        half_life=half_life,
        learning=Learning(seed=42, clock=clock),
    )
    start = clock.now if clock else 0.0
    for i in range(requests):
        if clock is not None:
            clock.now = start + 10.0 * i
        router.run(i)
    router.flush()
    return router


@dataclass
class Filled:
    url: str
    steady: Router
    steady_posteriors: list[Posterior]
    steady_stats: list[PathWindowStats]
    decaying: Router
    decaying_clock: ManualClock


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Filled]:
    """A SQLite file with two tasks: one without decay (real clock), one with a half-life
    whose outcomes span the last 50 minutes (every 10 s, the last 5 s ago)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli')}/cli.db"
    steady = _fill(url, "steady", 300, half_life=None, clock=None)
    clock = ManualClock(time.time() - 2995.0)
    decaying = _fill(url, "decaying", 300, half_life=timedelta(minutes=10), clock=clock)
    try:
        yield Filled(
            url,
            steady,
            steady.posteriors(),
            steady.stats(timedelta(hours=1)),
            decaying,
            clock,
        )
    finally:
        steady.close()
        decaying.close()


def _assert_posterior(got: dict[str, Any], want: Posterior, rel: float = 1e-9) -> None:
    assert got["path"] == want.path
    assert got["n"] == want.n
    assert got["successes"] == want.successes
    assert got["failures"] == want.failures
    for key in ("alpha", "beta", "mean", "traffic_share"):
        assert got[key] == pytest.approx(getattr(want, key), rel=rel), key
    assert got["interval"] == pytest.approx(list(want.interval), rel=rel)
    after, theirs = got["after_failure"], want.after_failure
    assert (after["n"], after["successes"], after["failures"]) == (
        theirs.n,
        theirs.successes,
        theirs.failures,
    )
    for key in ("alpha", "beta", "mean"):
        assert after[key] == pytest.approx(getattr(theirs, key), rel=rel), key
    assert after["interval"] == pytest.approx(list(theirs.interval), rel=rel)


def _stats_equal(got: dict[str, Any], want: PathWindowStats) -> None:
    assert _same_stats(got, want), (got, want)


def _same_stats(got: dict[str, Any], want: PathWindowStats) -> bool:
    def number(v: float) -> float | None:
        return None if math.isnan(v) else v

    return got == {
        "path": want.path,
        "attempts": want.attempts,
        "successes": want.successes,
        "success_rate": want.success_rate,
        "first_attempts": want.first_attempts,
        "first_successes": want.first_successes,
        "first_success_rate": number(want.first_successes / want.first_attempts)
        if want.first_attempts
        else None,
        "after_failure_attempts": want.attempts - want.first_attempts,
        "after_failure_successes": want.successes - want.first_successes,
        "after_failure_success_rate": (want.successes - want.first_successes)
        / (want.attempts - want.first_attempts)
        if want.attempts > want.first_attempts
        else None,
        "timeouts": want.timeouts,
        "latency_p50_ms": want.latency_p50_ms,
        "latency_p95_ms": want.latency_p95_ms,
        "input_tokens": want.input_tokens,
        "output_tokens": want.output_tokens,
        "cost_usd": want.cost_usd,
        "mean_score": want.mean_score,
        "errors": want.errors,
    }


# -- posteriors --------------------------------------------------------------------------


def test_posteriors_json_equals_router_posteriors(filled: Filled) -> None:
    got = {p["path"]: p for p in ok_json("posteriors", "--db", filled.url, "--task", "steady")}
    assert set(got) == {"good", "flaky", "regex"}
    for want in filled.steady_posteriors:
        _assert_posterior(got[want.path], want)
    # Sanity of the fixture itself: the better path earned the traffic.
    assert got["good"]["n"] > got["flaky"]["n"]
    assert sum(p["traffic_share"] for p in got.values()) == pytest.approx(1.0)


def test_posteriors_apply_the_stored_half_life(filled: Filled) -> None:
    router, clock = filled.decaying, filled.decaying_clock
    clock.now = time.time()
    upper = {p.path: p for p in router.posteriors()}
    got = {p["path"]: p for p in ok_json("posteriors", "--db", filled.url, "--task", "decaying")}
    clock.now = time.time()
    lower = {p.path: p for p in router.posteriors()}
    assert set(got) == set(upper)
    for name, p in got.items():
        # The CLI decays to its own "now", taken between the two router snapshots.
        assert lower[name].alpha - 1e-9 <= p["alpha"] <= upper[name].alpha + 1e-9
        assert lower[name].beta - 1e-9 <= p["beta"] <= upper[name].beta + 1e-9
        assert p["traffic_share"] == pytest.approx(upper[name].traffic_share, rel=1e-6)
        assert (p["n"], p["successes"]) == (upper[name].n, upper[name].successes)
        after = p["after_failure"]
        assert lower[name].after_failure.alpha - 1e-9 <= after["alpha"]
        assert after["alpha"] <= upper[name].after_failure.alpha + 1e-9
        # 300 requests over 50 minutes with a 10-minute half-life: most evidence is gone.
        decayed = p["alpha"] + p["beta"] - 2 + after["alpha"] + after["beta"] - 2
        assert decayed < 0.5 * (p["n"] + after["n"])


def test_posteriors_prior_option(filled: Filled) -> None:
    got = ok_json("posteriors", "--db", filled.url, "--task", "steady", "--prior", "2,3")
    want = {p.path: p for p in filled.steady_posteriors}
    for p in got:
        assert p["alpha"] == pytest.approx(want[p["path"]].alpha + 1.0)
        assert p["beta"] == pytest.approx(want[p["path"]].beta + 2.0)


def test_posteriors_table(filled: Filled) -> None:
    result = invoke("posteriors", "--db", filled.url, "--task", "steady")
    assert result.exit_code == 0, result.output
    good = next(p for p in filled.steady_posteriors if p.path == "good")
    for text in ("good", "flaky", "regex", f"{good.alpha:.2f}", f"{good.mean:.3f}", "no decay"):
        assert text in result.stdout


def test_posteriors_show_expected_cost_and_latency(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/costs.db"
    costs = {"premium": 0.0125, "small": 0.00075}
    tick = [1_000_000.0]

    def priced(name: str) -> Path:
        def fn() -> PathResult:
            return PathResult(name, Usage(cost_usd=costs[name]))

        return Path(fn, name=name, timeout=None)

    with Router(
        [priced("premium"), priced("small"), Path(lambda: "local", name="local", timeout=None)],
        success_fn=lambda v: v == "small",  # the others fail: every path gets attempts
        task="priced",
        store=url,
        fallback=Path(lambda: "fb", name="fb", timeout=None),
        learning=Learning(clock=lambda: tick[0], seed=3),
    ) as router:
        for _ in range(40):
            router.run()
        router.flush()
        want = {p.path: p for p in router.posteriors()}
    got = {p["path"]: p for p in ok_json("posteriors", "--db", url, "--task", "priced")}
    assert got["premium"]["expected_cost_usd"] == pytest.approx(0.0125)
    assert got["small"]["expected_cost_usd"] == pytest.approx(0.00075)
    for name in ("premium", "small"):
        latency = got[name]["expected_latency_ms"]
        assert latency == pytest.approx(want[name].expected_latency_ms, rel=1e-9)
        assert latency > 0.0
    # A path that reports no usage has no measured cost: null in JSON.
    assert got["local"]["expected_cost_usd"] is None
    table = invoke("posteriors", "--db", url, "--task", "priced")
    assert table.exit_code == 0, table.output
    assert "expected" in table.stdout and "cost USD" in table.stdout
    assert "latency ms" in table.stdout
    assert "0.0125" in table.stdout and "0.00075" in table.stdout


def test_db_defaults_from_environment(filled: Filled) -> None:
    result = runner.invoke(
        app, ["posteriors", "--task", "steady", "--json"], env={"ADAPTIVE_ROUTER_DB": filled.url}
    )
    assert result.exit_code == 0, result.output
    assert {p["path"] for p in json.loads(result.stdout)} == {"good", "flaky", "regex"}


def test_plain_file_path_is_a_sqlite_database(filled: Filled) -> None:
    path = filled.url.removeprefix("sqlite:///")
    got = ok_json("posteriors", "--db", path, "--task", "steady")
    assert len(got) == 3


# -- stats -------------------------------------------------------------------------------


def test_stats_json_equals_router_stats(filled: Filled) -> None:
    got = ok_json("stats", "--db", filled.url, "--task", "steady", "--since", "1h")
    assert [g["path"] for g in got] == [s.path for s in filled.steady_stats]
    for g, want in zip(got, filled.steady_stats, strict=True):
        _stats_equal(g, want)
    assert sum(g["first_attempts"] for g in got) == 300


def test_stats_window_boundary(filled: Filled) -> None:
    router, clock = filled.decaying, filled.decaying_clock
    clock.now = time.time()
    before = router.stats(timedelta(minutes=30))
    got = ok_json("stats", "--db", filled.url, "--task", "decaying", "--since", "30m")
    clock.now = time.time()
    after = router.stats(timedelta(minutes=30))
    # Outcomes are 10 s apart, so the window almost never moves past one between the two
    # router snapshots; the CLI's window, taken in between, matches one of them exactly.
    assert any(
        len(got) == len(want) and all(_same_stats(g, w) for g, w in zip(got, want, strict=True))
        for want in (before, after)
    )
    # About the last 180 of the 300 outcomes (one fewer per 10 s since the fixture ran).
    assert 170 <= sum(g["first_attempts"] for g in got) <= 180


def test_stats_table_and_empty_window(filled: Filled) -> None:
    result = invoke("stats", "--db", filled.url, "--task", "steady", "--since", "2d")
    assert result.exit_code == 0, result.output
    assert "good" in result.stdout and "flaky" in result.stdout
    empty = invoke("stats", "--db", filled.url, "--task", "decaying", "--since", "1s")
    assert empty.exit_code == 0, empty.output
    assert "no outcomes for task decaying" in empty.stdout
    assert ok_json("stats", "--db", filled.url, "--task", "decaying", "--since", "1s") == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172800), ("1w", 604800), ("1.5h", 5400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "1", "h", "10x", "-1h", "0m", "1 hour", "1h30m", "1e3s"])
def test_since_parse_errors(filled: Filled, text: str) -> None:
    with pytest.raises(ValueError, match="30s, 15m, 1h, 2d, 1w"):
        parse_duration(text)
    result = invoke("stats", "--db", filled.url, "--task", "steady", "--since", text)
    assert result.exit_code == 2
    _one_line_error(result, "30s, 15m, 1h, 2d, 1w")


@pytest.mark.parametrize("text", ["1", "1,2,3", "0,1", "a,b", "-1,1", "nan,1", "inf,1"])
def test_prior_parse_errors(filled: Filled, text: str) -> None:
    with pytest.raises(ValueError):
        parse_prior(text)
    result = invoke("posteriors", "--db", filled.url, "--task", "steady", "--prior", text)
    assert result.exit_code == 2
    _one_line_error(result, "--prior")


# -- errors ------------------------------------------------------------------------------


def _one_line_error(result: Result, fragment: str) -> None:
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["posteriors", "stats"])
def test_unknown_task(filled: Filled, command: str) -> None:
    result = invoke(command, "--db", filled.url, "--task", "nope")
    assert result.exit_code == 1
    _one_line_error(result, "unknown task 'nope'")
    assert "decaying, steady" in result.stderr


def test_missing_sqlite_file_is_not_created(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing.db"
    result = invoke("posteriors", "--db", f"sqlite:///{missing}", "--task", "t")
    assert result.exit_code == 1
    _one_line_error(result, "no SQLite database")
    assert not missing.exists()


def test_database_without_tables(tmp_path: pathlib.Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    result = invoke("stats", "--db", str(empty), "--task", "t")
    assert result.exit_code == 1
    _one_line_error(result, "db upgrade")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://user@host/db", "unsupported URL scheme"),
        ("postgresql://postgres:pw@127.0.0.1:notaport/test", "cannot parse --db"),
        ("://", "cannot parse --db"),
    ],
)
def test_bad_url(url: str, fragment: str) -> None:
    result = invoke("stats", "--db", url, "--task", "t")
    assert result.exit_code == 2
    _one_line_error(result, fragment)


def test_unreachable_database() -> None:
    # Port 1 refuses connections at once.
    result = invoke("posteriors", "--db", "postgresql://postgres@127.0.0.1:1/test", "--task", "t")
    assert result.exit_code == 1
    _one_line_error(result, "cannot reach")


def test_missing_db_option() -> None:
    result = runner.invoke(app, ["stats", "--task", "t"], env={"ADAPTIVE_ROUTER_DB": None})
    assert result.exit_code == 2
    assert "--db" in result.output


# -- db upgrade --------------------------------------------------------------------------


def test_db_upgrade_then_noop(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/up.db"
    first = invoke("db", "upgrade", "--db", url)
    assert first.exit_code == 0, first.output
    assert f"from an empty database to {HEAD_REVISION}" in first.stdout
    assert current_revision(url) == HEAD_REVISION
    again = invoke("db", "upgrade", "--db", url)
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.stdout


def test_db_upgrade_on_a_store_database_is_a_noop(filled: Filled) -> None:
    result = invoke("db", "upgrade", "--db", filled.url)
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.stdout


def test_db_upgrade_unknown_revision(tmp_path: pathlib.Path) -> None:
    result = invoke("db", "upgrade", "--db", str(tmp_path / "x.db"), "--revision", "nope")
    assert result.exit_code == 2
    _one_line_error(result, "nope")


# -- passwords ---------------------------------------------------------------------------


def test_redact() -> None:
    assert CANARY not in redact(f"failed for {CANARY_URL}")
    assert CANARY not in redact(f"password {CANARY} leaked", CANARY_URL)
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


@pytest.fixture
def canary_url() -> Iterator[str]:
    """The canary URL on a fresh schema (trust auth ignores the password); dropped after."""
    try:
        psycopg.connect(PG_DSN).close()
    except psycopg.Error:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required under CI=true")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    schema = f"ar_{uuid.uuid4().hex}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{CANARY_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_no_output_contains_the_password(canary_url: str) -> None:
    with _fill(canary_url, "pg", 50, half_life=timedelta(days=1), clock=None) as router:
        want = router.posteriors()
    env_db = {"ADAPTIVE_ROUTER_DB": canary_url}
    results = [
        invoke("posteriors", "--db", canary_url, "--task", "pg"),
        invoke("posteriors", "--db", canary_url, "--task", "pg", "--json"),
        invoke("stats", "--db", canary_url, "--task", "pg"),
        invoke("stats", "--db", canary_url, "--task", "pg", "--json", "--since", "1w"),
        invoke("db", "upgrade", "--db", canary_url),
        invoke("posteriors", "--db", canary_url, "--task", "unknown"),
        invoke("stats", "--db", canary_url, "--task", "pg", "--since", "1y"),
        invoke("posteriors", "--task", "pg", env=env_db),
        invoke("posteriors", "--help", env=env_db),
        invoke("db", "upgrade", "--help", env=env_db),
        invoke("posteriors", "--db", CANARY_URL.replace("5432", "1"), "--task", "pg"),
        invoke("posteriors", "--db", CANARY_URL.replace("5432", "x"), "--task", "pg"),
        invoke("posteriors", "--db", CANARY_URL.replace("/test", "/no_such_db"), "--task", "pg"),
        invoke("demo", "--db", canary_url, "--no-table"),
    ]
    codes = [r.exit_code for r in results]
    assert codes == [0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 1, 2, 1, 2]
    for r in results:
        assert CANARY not in r.output
        assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "postgres:***@127.0.0.1:5432/test" in results[0].stdout
    got = {p["path"]: p for p in json.loads(results[1].stdout)}
    for w in want:
        _assert_posterior(got[w.path], w, rel=1e-3)
    assert all(math.isfinite(p["alpha"]) for p in got.values())


# -- check -----------------------------------------------------------------------------------
CHECK_MODULE = """
import os

import openai

from adaptive_router import Path, Router
from adaptive_router.providers import openai_path

client = openai.OpenAI(
    api_key="sk-check-canary",
    base_url=os.environ["CHECK_FAKE_URL"],
    http_client=openai.DefaultHttpxClient(trust_env=False),
)


def flaky(text):
    if "gizmo" in text:
        raise ConnectionError("reset by peer")
    return text.upper()


def regex(text):
    return {"order": text} if text[:1].isdigit() else None


def make_router():
    return Router(
        [
            openai_path("gpt-4o", "Extract: {text}", client=client, timeout=2.0, retry=None),
            Path(flaky, name="flaky", retry=None),
        ],
        success_fn=lambda result: result is not None,
        task="check",
        store="memory://",
        fallback=Path(regex, name="regex", timeout=None),
    )


router = make_router()
not_a_router = 42
"""


@pytest.fixture
def check_module(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, pathlib.Path]]:
    from adaptive_router.testing import FakeProvider, error, reply, respond

    name = f"routing_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(CHECK_MODULE)
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        '{"text": "2x widget to Berlin"}\n\n# a comment\n{"text": "three gizmo for Oslo"}\n'
        '{"text": "5x bolt pack to Dublin"}\n{"text": "fail here"}\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p != ""])
    with FakeProvider() as fake:
        fake.default(
            "gpt-4o",
            respond(lambda r: error(500) if "fail" in r.prompt else reply('{"ok": true}')),
        )
        monkeypatch.setenv("CHECK_FAKE_URL", fake.openai_base_url)
        yield name, samples
        assert fake.calls("gpt-4o") % 4 == 0  # once per sample and check run


def test_check_runs_every_path_on_every_sample(check_module: tuple[str, pathlib.Path]) -> None:
    name, samples = check_module
    got = {c["path"]: c for c in ok_json("check", f"{name}:router", "--samples", str(samples))}
    assert list(got) == ["gpt-4o", "flaky", "regex"]  # the fallback is checked too
    assert (got["gpt-4o"]["runs"], got["gpt-4o"]["successes"]) == (4, 3)
    assert got["gpt-4o"]["errors"] == {"server_error": 1}
    assert (got["flaky"]["successes"], got["flaky"]["errors"]) == (3, {"connection": 1})
    assert (got["regex"]["successes"], got["regex"]["errors"]) == (2, {"empty": 2})
    assert got["regex"]["success_rate"] == 0.5
    assert all(c["latency_p50_ms"] >= 0 for c in got.values())
    # A factory works as well as the router object.
    again = ok_json("check", f"{name}:make_router", "--samples", str(samples))
    assert [c["successes"] for c in again] == [3, 3, 2]


TWO_ARGS_MODULE = """
from adaptive_router import Path, Router


def greet(name, lang, *, loud=False):
    text = {"de": "Hallo", "fr": "Salut"}[lang] + " " + name
    return text.upper() if loud else text


router = Router(
    [Path(greet, name="greet", retry=None, timeout=None)],
    success_fn=lambda r: r.endswith("ADA") or r.endswith("Bo"),
    task="two-args",
    store="memory://",
)
"""


def test_check_passes_positional_and_keyword_arguments(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"two_args_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TWO_ARGS_MODULE)
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        '{"$args": ["ada", "de"], "$kwargs": {"loud": true}}\n'  # HALLO ADA: success
        '{"$args": ["Bo", "fr"]}\n'  # Salut Bo: success
        '{"$args": ["ada", "xx"]}\n'  # KeyError: an exception
        '{"name": "ada", "lang": "fr"}\n'  # plain keywords: Salut ada, rejected
    )
    monkeypatch.chdir(tmp_path)
    (got,) = ok_json("check", f"{name}:router", "--samples", str(samples))
    assert (got["runs"], got["successes"]) == (4, 2)
    assert got["errors"] == {"exception": 1, "rejected": 1}
    samples.write_text('{"$args": ["ada", "de"], "lang": "fr"}\n')
    bad = invoke("check", f"{name}:router", "--samples", str(samples))
    assert bad.exit_code == 2
    assert "sample 1: a sample with '$args'/'$kwargs' takes no other keys" in bad.output


def test_check_table_and_fail_under(check_module: tuple[str, pathlib.Path]) -> None:
    name, samples = check_module
    table = invoke("check", f"{name}:router", "--samples", str(samples))
    assert table.exit_code == 0, table.output
    for text in ("gpt-4o", "flaky", "regex", "server_error 1", "empty 2", "4 samples"):
        assert text in table.stdout
    assert "sk-check-canary" not in table.output
    gate = invoke("check", f"{name}:router", "--samples", str(samples), "--fail-under", "0.6")
    assert gate.exit_code == 1
    assert "regex" in gate.stderr and "flaky" not in gate.stderr


@pytest.mark.parametrize(
    ("target", "samples_text", "code", "message"),
    [
        ("no-colon", '"x"\n', 2, "MODULE:ATTR"),
        ("no_such_module_xyz:router", '"x"\n', 1, "cannot import"),
        ("{mod}:missing", '"x"\n', 1, "no attribute"),
        ("{mod}:not_a_router", '"x"\n', 2, "not a Router"),
        ("{mod}:router", "", 2, "no samples"),
        ("{mod}:router", '"ok"\n{broken\n', 2, "line 2 is not JSON"),
    ],
)
def test_check_errors(
    check_module: tuple[str, pathlib.Path],
    target: str,
    samples_text: str,
    code: int,
    message: str,
) -> None:
    name, samples = check_module
    samples.write_text(samples_text)
    result = invoke("check", target.format(mod=name), "--samples", str(samples))
    assert result.exit_code == code, result.output
    assert message in result.stderr


def test_check_missing_samples_file(check_module: tuple[str, pathlib.Path]) -> None:
    name, samples = check_module
    result = invoke("check", f"{name}:router", "--samples", str(samples) + ".missing")
    assert result.exit_code == 2 and "cannot read samples" in result.stderr


def test_posteriors_and_stats_filter_by_context(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/ctx.db"
    with Router(
        [Path(lambda kind: kind == "x", name="a", timeout=None)],
        bool,
        "ctx",
        store=url,
        fallback=Path(lambda kind: True, name="fb", timeout=None),
        learning=Learning(seed=1),
    ) as r:
        for i in range(20):
            r.run("x" if i % 2 else "y", context="x" if i % 2 else "y")
    out = runner.invoke(
        app, ["posteriors", "--db", url, "--task", "ctx", "--context", "x", "--json"]
    )
    assert out.exit_code == 0, out.output
    rows = {p["path"]: p for p in json.loads(out.stdout)}
    assert (rows["a"]["successes"], rows["a"]["failures"]) == (10, 0)
    out = runner.invoke(app, ["stats", "--db", url, "--task", "ctx", "--context", "y", "--json"])
    stats = {s["path"]: s for s in json.loads(out.stdout)}
    assert (stats["a"]["attempts"], stats["a"]["successes"]) == (10, 0)
    assert stats["fb"]["attempts"] == 10
    whole = runner.invoke(app, ["posteriors", "--db", url, "--task", "ctx", "--json"])
    # The fallback only runs after "a" failed: all its evidence is after a failure.
    assert {p["path"]: (p["n"], p["after_failure"]["n"]) for p in json.loads(whole.stdout)} == {
        "a": (20, 0),
        "fb": (0, 10),
    }
    missing = runner.invoke(app, ["posteriors", "--db", url, "--task", "ctx", "--context", "z"])
    assert missing.exit_code == 1 and "context 'z'" in missing.output


def test_simulate_quick_writes_table_and_png(tmp_path: pathlib.Path) -> None:
    out = runner.invoke(app, ["simulate", "degradation", "--quick", "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    md = tmp_path / "degradation-quick.md"
    png = tmp_path / "degradation-quick.png"
    assert md.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| fixed: large → small → rules" in md.read_text()
    bad = runner.invoke(app, ["simulate", "nope"])
    assert bad.exit_code == 2 and "unknown experiment" in bad.output


def test_check_shows_each_failure_kinds_first_message(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"two_args_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TWO_ARGS_MODULE)
    samples = tmp_path / "samples.jsonl"
    samples.write_text('{"$args": ["ada", "xx"]}\n{"name": "ada", "lang": "fr"}\n')
    monkeypatch.chdir(tmp_path)
    (got,) = ok_json("check", f"{name}:router", "--samples", str(samples))
    assert got["errors"] == {"exception": 1, "rejected": 1}
    assert got["examples"] == {
        "exception": "KeyError: 'xx'",
        "rejected": "success_fn rejected the result 'Salut ada'",
    }
    table = invoke("check", f"{name}:router", "--samples", str(samples))
    assert table.exit_code == 0, table.output
    flat = " ".join(table.stdout.split())
    assert "KeyError: 'xx'" in flat and "Salut ada" in flat


def test_router_check_keeps_the_first_message_per_kind() -> None:
    def parse(text: str) -> int:
        return int(text)

    with Router(
        [Path(parse, name="parse", retry=None)], lambda v: v > 0, "chk", store="memory://"
    ) as router:
        (res,) = router.check(["x", "y", "-1", "3"])
    assert res.errors == {"exception": 2, "rejected": 1}
    assert res.examples == {
        "exception": "ValueError: invalid literal for int() with base 10: 'x'",
        "rejected": "success_fn rejected the result -1",
    }
