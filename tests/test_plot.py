"""Time-bucketed series, the PNG report and ``adaptive-router plot``."""

from __future__ import annotations

import math
import struct
import time
from dataclasses import replace
from pathlib import Path as FilePath

import numpy as np
import pytest
from typer.testing import CliRunner

from adaptive_router import Learning, Outcome, Path, Router
from adaptive_router.cli import app
from adaptive_router.cli.reports import register
from adaptive_router.outcomes import Result, Usage
from adaptive_router.reports import plot_report, time_series
from adaptive_router.stores import open_store

pytest.importorskip("matplotlib")

register(app)  # idempotent: a no-op once cli.py registers the commands itself
runner = CliRunner()

T0 = 1_699_999_980.0  # a multiple of 60: buckets start exactly here
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: FilePath) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert data[-8:-4] == b"IEND"
    return width, height


def out(rid: str, attempt: int, path: str, ok: bool, cost: float | None, at: float) -> Outcome:
    return Outcome(rid, "t", path, attempt, ok, None if ok else "rejected", cost_usd=cost,
                   created_at=at)  # fmt: skip


def test_time_series_hand_computed() -> None:
    store = open_store("memory://")
    store.write(
        [
            out("r1", 1, "a", True, 0.01, T0 + 1),
            out("r2", 1, "a", False, 0.01, T0 + 2),
            out("r2", 2, "b", True, 0.02, T0 + 2),
            out("r3", 1, "b", True, None, T0 + 61),
            out("r4", 1, "b", True, 0.02, T0 + 119),
        ],
        None,
    )
    ts = time_series(store, "t", T0, bucket_s=60)
    assert ts.starts == (T0, T0 + 60)
    assert ts.paths == ("a", "b")
    assert ts.requests == (2, 2)
    assert ts.first_share == {"a": (1.0, 0.0), "b": (0.0, 1.0)}
    assert ts.attempts == {"a": (2, 0), "b": (1, 2)}
    assert ts.success_rate["a"][0] == 0.5 and math.isnan(ts.success_rate["a"][1])
    assert ts.success_rate["b"] == (1.0, 1.0)
    assert ts.cost_usd["a"] == pytest.approx((0.02, 0.0))
    assert ts.cost_usd["b"] == pytest.approx((0.02, 0.02))
    assert ts.unknown_cost_attempts == 1
    assert time_series(store, "t", T0 + 1000).starts == ()
    # Chosen width: 2 minutes of data fit in 60 buckets of 5 s.
    assert time_series(store, "t", T0).bucket_s == 5


def shifting_db(url: str, requests: int = 600) -> None:
    """Two hours of traffic: path a takes 90% of first attempts, then b does."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(requests):
        at = T0 + i * 7200 / requests
        late = i >= requests // 2
        first = "b" if (rng.random() < 0.9) == late else "a"
        ok = bool(rng.random() < (0.9 if first == "b" or not late else 0.3))
        rows.append(out(f"r{i}", 1, first, ok, 0.004 if first == "a" else 0.002, at))
        if not ok:
            rows.append(out(f"r{i}", 2, "fb", True, None, at))
    store = open_store(url)
    try:
        store.write(rows, None)
    finally:
        store.close()


def test_plot_report_writes_a_png(sqlite_url: str, tmp_path: FilePath) -> None:
    shifting_db(sqlite_url)
    store = open_store(sqlite_url)
    try:
        ts = time_series(store, "t", T0)
        written = plot_report(store, "t", T0, tmp_path / "report.png")
        with pytest.raises(ValueError, match="no outcomes"):
            plot_report(store, "t", T0 + 10_000, tmp_path / "none.png")
    finally:
        store.close()
    assert ts.bucket_s == 120  # 2 hours in 60 buckets of 2 minutes
    assert ts.first_share["a"][0] > 0.7 and ts.first_share["b"][-1] > 0.7
    assert written == tmp_path / "report.png"
    assert png_size(written) == (1100, 900)
    assert written.stat().st_size > 20_000  # three drawn panels, not a blank canvas
    assert not (tmp_path / "none.png").exists()


def test_plot_cli_on_a_router_database(sqlite_url: str, tmp_path: FilePath) -> None:
    rng = np.random.default_rng(1)

    def flaky() -> Result:
        return Result("ok" if rng.random() < 0.5 else "", Usage(100, 20))

    with Router(
        [
            Path(flaky, name="flaky", model="gpt-4o-mini", timeout=None),
            Path(lambda: Result("ok", Usage(100, 20)), name="solid", model="gpt-4o", timeout=None),
        ],
        bool,
        "cli-plot",
        store=sqlite_url,
        fallback=Path(lambda: "ok", name="fb", timeout=None),
        learning=Learning(seed=1),
    ) as r:
        for _ in range(200):
            r.run()
    png = tmp_path / "out.png"
    args = ["plot", "--db", sqlite_url, "--task", "cli-plot", "--since", "1h", "--out", str(png)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    assert png_size(png) == (1100, 900)
    again = runner.invoke(app, [*args, "--bucket", "1s"])
    assert again.exit_code == 0, again.output

    unknown = runner.invoke(app, ["plot", "--db", sqlite_url, "--task", "nope", "--out", str(png)])
    assert unknown.exit_code == 1 and "unknown task" in unknown.output
    bad = runner.invoke(app, [*args, "--bucket", "soon"])
    assert bad.exit_code == 2 and "--bucket" in bad.output
    nodir = runner.invoke(
        app, ["plot", "--db", sqlite_url, "--task", "cli-plot", "--out", "/nonexistent/x.png"]
    )
    assert nodir.exit_code == 2 and "does not exist" in nodir.output


def test_plot_cli_with_an_empty_window(sqlite_url: str, tmp_path: FilePath) -> None:
    shifting_db(sqlite_url, requests=20)  # in 2023: far outside --since 1h
    png = tmp_path / "x.png"
    result = runner.invoke(
        app, ["plot", "--db", sqlite_url, "--task", "t", "--since", "1h", "--out", str(png)]
    )
    assert result.exit_code == 1 and "no outcomes" in result.output
    assert not png.exists()
    assert time.time() > T0


def test_buckets_are_by_request_start_not_finish() -> None:
    # Requests every second for two minutes. Until T0+60 path "slow" answers first and
    # retries for 90 s before failing (then "fast" serves the request); from T0+60 its
    # breaker is open and "fast" takes every request. By finish time the slow attempts
    # that drain after T0+120 made "slow" hold 100% of a later bucket.
    store = open_store("memory://")
    rows = []
    for i in range(120):
        start = T0 + i
        rid = f"r{i}"
        if i < 60:
            rows.append(replace(out(rid, 1, "slow", False, 0.0, start + 90.0), latency_ms=90e3))
            rows.append(replace(out(rid, 2, "fast", True, 0.0, start + 90.1), latency_ms=100.0))
        else:
            rows.append(replace(out(rid, 1, "fast", True, 0.0, start + 0.1), latency_ms=100.0))
    store.write(rows, None)
    ts = time_series(store, "t", T0, bucket_s=60)
    assert ts.starts == (T0, T0 + 60)
    assert ts.requests == (60, 60)
    assert ts.first_share == {"fast": (0.0, 1.0), "slow": (1.0, 0.0)}
    assert ts.attempts == {"fast": (60, 60), "slow": (60, 0)}
