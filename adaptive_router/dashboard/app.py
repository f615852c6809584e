"""The dashboard's ASGI app (Starlette): the page, its refreshable fragment and
``/api/summary``, read-only over one database.

Every request is answered from the store as it is now: nothing is cached, so a database
that goes down shows its error on the page (503) and the next refresh after it is back
shows the charts again. With a ``token``, every request must carry it — header
``Authorization: Bearer <token>``, header ``X-Dashboard-Token`` or query ``?token=`` —
or gets a 401.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

import adaptive_router.dashboard.views as views
from adaptive_router._checks import first_line, redact
from adaptive_router._imports import needs_extra
from adaptive_router.dashboard.data import UnknownTaskError, parse_window, summary
from adaptive_router.errors import ConfigurationError, StoreUnavailableError
from adaptive_router.stores import SQLStore
from adaptive_router.stores.base import Store

with needs_extra("dashboard", "The dashboard"):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_SINCE", "create_app"]

DEFAULT_SINCE = "1h"


class _Stores:
    """The store, opened on first use and again after a failed open (database down at
    start-up); an open store's engine reconnects by itself (pre-ping)."""

    def __init__(self, store: Store | str) -> None:
        self._url = store if isinstance(store, str) else None
        self._store = store if isinstance(store, Store) else None

    def get(self) -> Store:
        if self._store is None:
            assert self._url is not None
            # create=False: a dashboard never creates tables in the database it watches.
            self._store = SQLStore(self._url, create=False)
        return self._store

    def message(self, exc: BaseException) -> str:
        text = str(exc) if isinstance(exc, StoreUnavailableError) else first_line(exc)
        if "no such table" in text or "does not exist" in text:
            text += " (run `adaptive-router db upgrade --db URL` on this database)"
        return redact(f"database unavailable: {text}", self._url)

    def close(self) -> None:
        if self._store is not None and self._url is not None:
            self._store.close()


def _token_ok(request: Request, token: str) -> bool:
    given = request.headers.get("x-dashboard-token") or request.query_params.get("token") or ""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return hmac.compare_digest(given.encode(), token.encode())


def create_app(
    store: Store | str,
    *,
    task: str | None = None,
    token: str | None = None,
    refresh_s: int = 5,
    since: str = DEFAULT_SINCE,
    prior: tuple[float, float] = (1.0, 1.0),
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The dashboard over ``store`` (a :class:`Store` or a database URL).

    ``task`` is shown when a request names none (default: the first task in the store);
    ``since`` is the default window; ``refresh_s`` how often the page redraws; ``prior``
    the routers' Beta prior; ``clock`` what "now" is (tests pin it).
    """
    if token is not None and not token:
        raise ConfigurationError("token must be a non-empty string (or None for no token)")
    if isinstance(refresh_s, bool) or not isinstance(refresh_s, int) or refresh_s < 1:
        raise ConfigurationError(f"refresh_s must be an int >= 1 (seconds), got {refresh_s!r}")
    stores = _Stores(store)

    def window_args(request: Request) -> tuple[str, str | None]:
        return request.query_params.get("since") or since, request.query_params.get("until")

    def load(request: Request) -> tuple[dict[str, Any] | None, str | None, int, list[str]]:
        """``(summary, error, status, known tasks)`` for the request's task and window."""
        try:
            st = stores.get()
            known = st.tasks()
        except (SQLAlchemyError, StoreUnavailableError, OSError) as exc:
            return None, stores.message(exc), 503, []
        name = request.query_params.get("task") or task or (known[0] if known else None)
        if name is None:
            return None, "no task has any evidence in this database yet", 404, known
        try:
            win = parse_window(*window_args(request), clock())
        except ValueError as exc:
            return None, str(exc), 400, known
        try:
            return summary(st, name, win, prior), None, 200, known
        except UnknownTaskError as exc:
            return None, str(exc), 404, exc.known
        except (SQLAlchemyError, StoreUnavailableError, OSError) as exc:
            logger.warning("dashboard read failed: %s", stores.message(exc))
            return None, stores.message(exc), 503, known

    def index(request: Request) -> Response:
        data, error, status, known = load(request)
        nonce = secrets.token_urlsafe(12)
        html = views.page(
            data["task"] if data else request.query_params.get("task") or task,
            known,
            window_args(request)[0],
            views.fragment(data) if data else "",
            error,
            refresh_s,
            request.url.query,
            nonce,
            clock(),
        )
        return HTMLResponse(html, status, headers=_headers(nonce))

    def fragment(request: Request) -> Response:
        data, error, status, _ = load(request)
        body = views.fragment(data) if data else views.error_box(error or "")
        return HTMLResponse(body, status, headers=_headers(None))

    def api_summary(request: Request) -> Response:
        data, error, status, known = load(request)
        if data is None:
            return JSONResponse({"error": error, "known_tasks": known}, status)
        return JSONResponse(data)

    def api_tasks(request: Request) -> Response:
        try:
            return JSONResponse({"tasks": stores.get().tasks()})
        except (SQLAlchemyError, StoreUnavailableError, OSError) as exc:
            return JSONResponse({"error": stores.message(exc)}, 503)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/fragment", fragment),
            Route("/api/summary", api_summary),
            Route("/api/tasks", api_tasks),
        ],
        lifespan=lambda _app: _closing(stores),
    )
    if token is not None:
        app.add_middleware(_TokenMiddleware, token=token)
    return app


@contextlib.asynccontextmanager
async def _closing(stores: _Stores) -> AsyncIterator[None]:
    try:
        yield
    finally:
        stores.close()


def _headers(nonce: str | None) -> dict[str, str]:
    # Defence in depth besides escaping: only the page's own nonce'd script may run.
    script = f"'nonce-{nonce}'" if nonce else "'none'"
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src {script}; style-src 'unsafe-inline'; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


class _TokenMiddleware:
    """Refuses (401) every HTTP request that does not carry the token."""

    def __init__(self, app: Callable[..., Awaitable[None]], token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not _token_ok(Request(scope), self.token):
            response = JSONResponse(
                {
                    "error": "missing or wrong token: pass it as ?token=, as the header "
                    "'Authorization: Bearer <token>' or as 'X-Dashboard-Token'"
                },
                401,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
