"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, the
page served by the real ``adaptive-router dashboard`` command over the demo's database."""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adaptive_router import Observability, Path, Router
from adaptive_router.demo import (
    CLAUDE,
    DEFAULT_HALF_LIFE,
    DEFAULT_SEED,
    DEGRADED,
    FALLBACK,
    TASK,
    run_demo,
)

CHROMIUM = "/usr/bin/chromium"
EVIL = "<script>alert(1)</script>"


def _browser_or_skip() -> Any:
    """Playwright's sync API, with Debian's Chromium; never downloads a browser."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not shutil.which(CHROMIUM):
        why = "playwright and Debian's chromium (apt-get install chromium) are required"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} under CI=true")
        pytest.skip(why)
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: pathlib.Path) -> Iterator[tuple[str, str]]:
    """The demo's database, a live router beating on it, and the dashboard command."""
    db = tmp_path / "demo.db"
    run_demo(str(db), requests=600, seed=DEFAULT_SEED)
    url = f"sqlite:///{db}"
    # A second task whose path name is markup: it must render as text.
    evil = Router(
        [Path(lambda x: x, name=EVIL)],
        lambda r: True,
        "<b>evil</b>",
        store=url,
        observability=Observability(heartbeat=None),
    )
    for i in range(5):
        evil.run(i)
    evil.close()
    # A running router of the demo's task, its GPT-4o breaker open, beating every 0.2 s.
    live = Router(
        [Path(lambda x: x, name=DEGRADED), Path(lambda x: x, name=CLAUDE)],
        lambda r: True,
        TASK,
        store=url,
        fallback=Path(lambda x: x, name=FALLBACK),
        half_life=DEFAULT_HALF_LIFE,
        observability=Observability(heartbeat=0.2),
    )
    breaker = live.path_settings[DEGRADED].breaker
    assert breaker is not None
    for _ in range(10):
        breaker.record_failure("server_error")
    port = _free_port()
    exe = pathlib.Path(sys.executable).with_name("adaptive-router")
    server = subprocess.Popen(
        [
            str(exe),
            "dashboard",
            "--db",
            str(db),
            "--task",
            TASK,
            "--port",
            str(port),
            "--refresh",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/api/tasks", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.2)
        yield base, url
    finally:
        server.terminate()
        server.wait(10)
        live.close()


def test_the_page_draws_the_demo_in_chromium(served: tuple[str, str]) -> None:
    sync_playwright = _browser_or_skip()
    base, _ = served
    # A pinned window: the page and the API decay the posteriors to the same instant.
    until = str(time.time())
    window = {"task": TASK, "since": "1h", "until": until}
    api = httpx.get(f"{base}/api/summary", params=window).json()
    shot = pathlib.Path(os.environ.get("DASHBOARD_SCREENSHOT") or "") or None
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"{base}/?since=1h&until={until}")
            page.wait_for_selector('svg[data-chart="traffic"] polygon')
            page.wait_for_selector('svg[data-chart="posteriors"] circle')
            # Every chart drew something and has a size on screen.
            charts = page.query_selector_all("svg.chart")
            kinds = {c.get_attribute("data-chart") for c in charts}
            assert {"traffic", "success", "spend", "posteriors", "cost", "latency"} <= kinds
            for c in charts:
                box = c.bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 50
                drawn = c.eval_on_selector_all(
                    "polyline, polygon, circle, rect, line", "els => els.length"
                )
                assert drawn > 0, c.get_attribute("data-chart")
            # The paths and the numbers, as the API computes them.
            names = page.locator("table.posteriors .path").all_inner_texts()
            assert names == sorted([CLAUDE, DEGRADED, FALLBACK])
            assert page.inner_text("#kpi-requests") == f"{api['costs']['requests']:,}" == "600"
            per_1000 = api["costs"]["cost_per_1000_requests"]
            assert page.inner_text("#kpi-cost-per-1000") == f"${per_1000:,.4f}"
            means = page.locator("table.posteriors tr td:nth-child(2)").all_inner_texts()
            assert means == [f"{p['mean']:.3f}" for p in api["posteriors"]]
            # The live router's heartbeat: its open breaker, not stale.
            fleet = page.inner_text("table.fleet")
            assert f"{DEGRADED}: open" in fleet and f"{CLAUDE}: closed" in fleet
            assert "live" in fleet and "stale" not in fleet
            alerts = page.inner_text("table.alerts")
            assert "breaker_open" in alerts and DEGRADED in alerts
            # It refreshes by itself (every second here).
            first = page.inner_text("#status")
            page.wait_for_function(
                "s => document.getElementById('status').textContent !== s", arg=first
            )
            page.wait_for_selector('svg[data-chart="traffic"] polygon')
            if shot is not None and str(shot) not in ("", "."):
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot), full_page=True)
            png = page.screenshot(full_page=True)
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
            # No request left the machine: no CDN, no fonts.
            assert requests and all(r.startswith(base) for r in requests)
            # A path named <script>: shown as text, never run.
            page.goto(f"{base}/?task=%3Cb%3Eevil%3C%2Fb%3E&since=1h")
            page.wait_for_selector("table.posteriors")
            assert page.locator("table.posteriors .path").all_inner_texts() == [EVIL]
            assert "<b>evil</b>" in page.inner_text("h1")
            page.wait_for_timeout(1500)  # a refresh swaps the fragment in: still inert
            assert dialogs == []
        finally:
            browser.close()
