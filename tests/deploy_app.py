"""A tiny WSGI app for the deployment tests: one Router built at import, each request
routed once.

``gunicorn --preload`` imports this module in the master, which then forks the workers
(the router is inherited); without ``--preload`` each worker imports it and builds its
own. The store and task come from ``ROUTER_STORE`` and ``ROUTER_TASK``. Each response is
``{"request_id": ..., "pid": ...}``: the id of the request's (only) outcome and the
worker that served it.

At import the app routes one warm-up request, as an app checking itself at start would:
with ``--preload`` its outcome is still in the master's write buffer when the workers are
forked, and the master's timeout pool has an idle worker thread that the children do not.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from adaptive_router import Learning, Observability, Outcome, Path, Router

_last = threading.local()


def _remember(outcome: Outcome) -> None:
    # Called in the request's thread as each attempt finishes.
    _last.request_id = outcome.request_id


def _answer(text: str) -> str:
    # Long enough that concurrent requests keep several workers busy at once.
    time.sleep(0.01)
    return text.upper()


router = Router(
    [Path(_answer, name="upper"), Path(_answer, name="upper-too")],
    success_fn=lambda value: value is not None,
    task=os.environ["ROUTER_TASK"],
    store=os.environ["ROUTER_STORE"],
    learning=Learning(seed=7),
    observability=Observability(on_outcome=_remember),
)
router.run("warm-up")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    router.run("hello")
    body = json.dumps({"request_id": _last.request_id, "pid": os.getpid()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
