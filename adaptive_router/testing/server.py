"""The fake's HTTP side: a threading loopback server, its handler, and how bytes go out.

Only the standard library (a ``ThreadingHTTPServer`` whose ``serve_forever`` runs in a
daemon thread). What to answer is decided elsewhere: the server hands every request to
the ``handle`` callable it was built with.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

#: How many connections may wait to be accepted. The standard library's 5 made a burst
#: of fresh clients (64 threads, each with its own connection pool) fail with
#: "connection refused/reset" whenever the accept loop fell behind; the kernel caps this
#: at ``net.core.somaxconn`` anyway.
LISTEN_BACKLOG = 1024


class Dropped(Exception):
    """The connection must be closed without a response (disconnect step or shutdown)."""

    def __init__(self, reset: bool = False) -> None:
        super().__init__("dropped")
        self.reset = reset


class Server(ThreadingHTTPServer):
    """A loopback ``ThreadingHTTPServer`` on a free port that can drop every connection."""

    daemon_threads = True
    # The stdlib joins every handler thread on close; idle keep-alive connections
    # would make that hang, so connections are shut down explicitly instead.
    block_on_close = False
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, handle: Callable[[Handler], None]) -> None:
        self.handle = handle
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Shut down every open connection (idle keep-alive ones included)."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up are normal here; keep stderr quiet.
        logger.debug("FakeProvider connection error from %s", client_address, exc_info=True)


class Handler(BaseHTTPRequestHandler):
    """Passes every request to the server's ``handle``."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs; the SDKs pool connections
    server_version = "FakeProvider/1.0"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection ends by itself eventually
    # Headers and body go out in two writes; with Nagle on, the second waits for a
    # delayed ACK (~40 ms) on every keep-alive request.
    disable_nagle_algorithm = True
    server: Server

    def do_POST(self) -> None:
        self.server.handle(self)

    def do_GET(self) -> None:
        self.server.handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("FakeProvider %s - " + format, self.address_string(), *args)


def send(h: Handler, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
    """A whole response with a ``content-length``."""
    h.send_response(status)
    h.send_header("content-type", content_type)
    h.send_header("content-length", str(len(data)))
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)
    h.wfile.flush()


def send_stream(h: Handler, frames: Iterable[bytes], headers: dict[str, str]) -> None:
    """A ``200 text/event-stream`` response, chunked so the connection stays reusable."""
    h.send_response(200)
    h.send_header("content-type", "text/event-stream; charset=utf-8")
    h.send_header("transfer-encoding", "chunked")
    h.send_header("cache-control", "no-cache")
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    for frame in frames:
        h.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        h.wfile.flush()
    h.wfile.write(b"0\r\n\r\n")
    h.wfile.flush()


def drop(h: Handler, *, reset: bool = False) -> None:
    """Close the connection without a response: FIN, or RST with ``reset=True``."""
    h.close_connection = True
    with contextlib.suppress(OSError):
        if reset:
            # Linger 0: closing sends RST instead of FIN ("connection reset by peer").
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
        else:
            h.connection.shutdown(socket.SHUT_RDWR)
