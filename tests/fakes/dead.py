"""Endpoints that never help: one accepts connections and never answers, one answers 500.

For the "every external call is bounded" tests: point an S3 endpoint, a Snowflake host or an
API's ``base_url`` at one and the call must fail within its configured budget.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Generator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast


@contextmanager
def silent_server() -> Generator[tuple[str, int]]:
    """A TCP server on 127.0.0.1 that accepts every connection, reads, and never answers."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # kept open, never written to

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        listener.close()


class _Always500(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are two writes: no delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _fail(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        cast(FailingServer, self.server).hits += 1
        body = b'{"error": "internal error"}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _fail


class FailingServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 answering every request with 500; ``hits`` counts them."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Always500)
        self.hits = 0


@contextmanager
def failing_server() -> Generator[FailingServer]:
    """A :class:`FailingServer`, served in a thread for the block."""
    server = FailingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class _LoginThen500(_Always500):
    """Snowflake's login succeeds; every query (and anything else) answers 500."""

    def do_POST(self) -> None:
        if not self.path.startswith("/session/v1/login-request"):
            self._fail()
            return
        import gzip
        import json

        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        cast(LoginThen500Server, self.server).logins.append(json.loads(body)["data"])
        answer = json.dumps(
            {
                "success": True,
                "data": {
                    "token": "session-token",
                    "masterToken": "master-token",
                    "validityInSeconds": 3600,
                    "masterValidityInSeconds": 14400,
                    "sessionId": 1,
                    "serverVersion": "9.0.0",
                    "parameters": [],
                    "sessionInfo": {},
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class LoginThen500Server(FailingServer):
    """A Snowflake endpoint that lets a session log in, then fails every statement with 500.

    ``logins`` holds each login request's ``data`` (``SESSION_PARAMETERS`` among them).
    """

    def __init__(self) -> None:
        ThreadingHTTPServer.__init__(self, ("127.0.0.1", 0), _LoginThen500)
        self.hits = 0
        self.logins: list[dict[str, Any]] = []


@contextmanager
def snowflake_login_then_500() -> Generator[LoginThen500Server]:
    """A :class:`LoginThen500Server`, served in a thread for the block."""
    server = LoginThen500Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
