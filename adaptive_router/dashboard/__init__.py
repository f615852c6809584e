"""``adaptive-router dashboard``: a local, read-only web page over a router database.

:mod:`.app` is the Starlette app (``adaptive_router.dashboard.app.create_app``; needs
the ``dashboard`` extra: starlette, uvicorn), :mod:`.data` the numbers (through the
Store contract and the library's reports), :mod:`.views` the HTML and :mod:`.svg` the
charts, drawn on the server. The page loads nothing from the network.
"""

from __future__ import annotations

from adaptive_router.dashboard.data import (
    STALE_AFTER_S,
    UnknownTaskError,
    Window,
    parse_window,
    summary,
)

__all__ = ["STALE_AFTER_S", "UnknownTaskError", "Window", "parse_window", "summary"]
