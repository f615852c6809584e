"""Deployment under a real gunicorn: forked sync workers store every request they answer,
exactly once, with and without ``--preload``, on SQLite and PostgreSQL.

The app (``deploy_app.py``) builds its Router at import and routes a warm-up request
there. With ``--preload`` the master imports it and forks four workers that inherit the
router (its buffer holding the warm-up outcome, its connection pool, its idle timeout
worker); without it each worker builds its own. A fixed number of requests is sent on
loopback, then the master gets SIGTERM (workers stop gracefully and exit normally).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path as FsPath

import pytest
import sqlalchemy as sa

from adaptive_router.stores.sql import create_engine

APP_DIR = FsPath(__file__).parent
REQUESTS = 200
WORKERS = 4


def _get(port: int) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, body[:500]
        answer: dict[str, object] = json.loads(body)
        return answer
    finally:
        conn.close()


def _serve(url: str, task: str, preload: bool, log: FsPath) -> tuple[list[dict[str, object]], int]:
    """Run gunicorn, send REQUESTS requests, SIGTERM the master: (answers, master pid)."""
    # The test binds the socket and hands it over: no port to guess, and requests sent
    # before the workers are up wait in the listen backlog instead of failing.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    cmd = [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--worker-class", "sync"]
    cmd += ["--bind", f"fd://{fd}", "--pythonpath", str(APP_DIR), "--graceful-timeout", "60"]
    cmd += ["--preload"] if preload else []
    env = {**os.environ, "ROUTER_STORE": url, "ROUTER_TASK": task}
    with log.open("wb") as out:
        master = subprocess.Popen(
            [*cmd, "deploy_app:app"], env=env, pass_fds=[fd], stdout=out, stderr=out
        )
    listener.close()
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: _get(port), range(REQUESTS)))
    finally:
        master.send_signal(signal.SIGTERM)
        code = master.wait(timeout=120)
    assert code == 0, log.read_text()[-3000:]
    return answers, master.pid


@pytest.mark.timeout(300)
@pytest.mark.parametrize("preload", [True, False], ids=["preload", "no-preload"])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_gunicorn_workers_store_every_answered_request_once(
    backend: str, preload: bool, tmp_path: FsPath, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path}/router.db"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    task = f"deploy-{uuid.uuid4().hex[:8]}"
    answers, master = _serve(url, task, preload, tmp_path / "gunicorn.log")

    served = [str(a["request_id"]) for a in answers]
    pids = {a["pid"] for a in answers}
    assert len(set(served)) == REQUESTS
    # Forked workers answered, not the master, and more than one of them.
    assert master not in pids
    assert len(pids) >= 2

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = dict(
                conn.execute(
                    sa.text(
                        "SELECT request_id, COUNT(*) FROM outcomes WHERE task = :t "
                        "GROUP BY request_id"
                    ),
                    {"t": task},
                ).all()
            )
            evidence = conn.execute(
                sa.text(
                    "SELECT SUM(successes + failures) FROM path_stats "
                    "WHERE task = :t AND context = ''"
                ),
                {"t": task},
            ).scalar_one()
    finally:
        engine.dispose()
    # Every answered request is one stored outcome (one attempt: the path succeeds).
    assert {rid: rows.get(rid) for rid in served} == dict.fromkeys(served, 1)
    # The warm-ups: the master's one (written by the master, not by the four workers that
    # inherited it in their buffers), or each worker's own.
    warmups = {rid: n for rid, n in rows.items() if rid not in set(served)}
    assert list(warmups.values()) == [1] * (1 if preload else WORKERS)
    # The evidence counts each stored outcome once.
    assert evidence == REQUESTS + len(warmups)
