"""``dashboard``: serve the live, read-only web page over a router database (uvicorn)."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from adaptive_router._checks import redact_url
from adaptive_router._imports import install_hint
from adaptive_router.cli.common import (
    CLIError,
    DbOption,
    console_out,
    one_line_errors,
    parse_duration,
    resolve_url,
)

__all__ = ["ENV_TOKEN", "dashboard", "is_loopback"]

#: Where ``--token`` is read from when not given (keeps it out of ``ps`` listings).
ENV_TOKEN = "ADAPTIVE_ROUTER_DASHBOARD_TOKEN"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def dashboard(
    db: DbOption,
    task: Annotated[
        str | None, typer.Option("--task", help="Task shown first (default: the first stored).")
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; other than loopback needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8050,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar=ENV_TOKEN,
            show_envvar=True,
            help="Secret every request must carry (?token=, 'Authorization: Bearer', or "
            "'X-Dashboard-Token'). Required when binding beyond loopback.",
        ),
    ] = None,
    since: Annotated[str, typer.Option("--since", help="Default window: 15m, 1h, 7d...")] = "1h",
    refresh: Annotated[int, typer.Option("--refresh", help="Seconds between redraws.")] = 5,
) -> None:
    """Serve a live, read-only dashboard of the database: traffic, posteriors, costs,
    latency, errors, fallbacks, alerts and the fleet's circuit breakers."""
    with one_line_errors(db):
        url = resolve_url(db, must_exist=True)
        try:
            parse_duration(since)
        except ValueError as exc:
            raise CLIError(str(exc), 2) from None
        if not 0 < port < 65536:
            raise CLIError(f"--port {port} is not a TCP port (1-65535)", 2)
        if refresh < 1:
            raise CLIError(f"--refresh {refresh} must be at least 1 second", 2)
        if token is not None and not token.strip():
            raise CLIError("--token is empty; give a secret or leave it out", 2)
        if not is_loopback(host) and token is None:
            raise CLIError(
                f"--host {host} is reachable from other machines: give --token (or set "
                f"{ENV_TOKEN}), or bind to 127.0.0.1",
                2,
            )
        try:
            import uvicorn

            from adaptive_router.dashboard.app import create_app
        except ImportError:
            raise CLIError(install_hint("dashboard", "the dashboard"), 2) from None
        app = create_app(url, task=task, token=token, refresh_s=refresh, since=since)
        shown = f"[{host}]" if ":" in host else host
        hint = " (add ?token=<your token>)" if token else ""
        console_out().print(
            f"dashboard of {redact_url(url)} on http://{shown}:{port}/{hint}; Ctrl+C stops it"
        )
        uvicorn.run(app, host=host, port=port, log_level="warning")
