"""Serving a :class:`~tests.fakes.api.FakeApi` on 127.0.0.1, and keeping servers for a session.

A ``ThreadingHTTPServer`` (HTTP/1.1, keep-alive, a thread per connection) rather than
pytest-httpserver's werkzeug: a dropped connection, a body cut halfway and a delay are then
exactly that on the socket. :class:`FakeServer` is a context manager; :class:`FakeApis` is
what the session fixture ``fake_apis`` holds: one server per API class, started on first
use, and the API reset for each test.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Generator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, TypeVar, cast

from tests.fakes.api import FakeApi, Response

A = TypeVar("A", bound=FakeApi)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: with Nagle on, a keep-alive client's delayed ACK would
    # hold every body back ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        api = cast(_Server, self.server).api
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = api.receive(self.command, self.path, list(self.headers.items()), body)
        try:
            response, cut = api.respond(request)
            if response is None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self._send(response, api.json_type, cut)
        except OSError:  # the client gave up (a timeout test) or the socket is gone
            self.close_connection = True
        finally:
            api.done(request)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def _send(self, response: Response, json_type: str, cut: bool) -> None:
        data = response.body
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type or json_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if cut else data)
        self.wfile.flush()
        if cut:
            self.close_connection = True


class FakeServer:
    """One API served by a thread on 127.0.0.1 at a free port; sets ``api.url``.

    ``with FakeServer(api):`` starts and stops it; ``stop(release=False)`` stops answering but
    keeps the port bound, so no later server gets the same ``host:port``.
    """

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind and serve in a daemon thread."""
        self._server = _Server(self.api)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.01,), daemon=True
        )
        self._thread.start()
        self.api.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self, *, release: bool = True) -> None:
        """Stop serving; unbind the port unless ``release`` is false."""
        if self._thread is not None and self._server is not None:
            self._server.shutdown()
            self._thread = None
        if release and self._server is not None:
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeApis:
    """Fake-API servers for a test session: one per API class, its API reset for each test."""

    def __init__(self) -> None:
        self._shared: dict[type[FakeApi], FakeServer] = {}
        self._retired: list[FakeServer] = []

    @contextmanager
    def use(self, kind: type[A], *, own_port: bool = False) -> Generator[A]:
        """The API of class ``kind``, freshly reset, for the body of the ``with``.

        ``own_port`` serves it on a new port no other test of the session gets: for clients
        that keep state per ``host:port`` across tests (a process-wide rate limiter). After a
        clean exit, fails if a handler of the fake raised.
        """
        if own_port:
            server = FakeServer(kind()).start()
            self._retired.append(server)
        else:
            if kind not in self._shared:
                self._shared[kind] = FakeServer(kind()).start()
            server = self._shared[kind]
            server.api.reset()
        api = cast(A, server.api)
        try:
            yield api
        finally:
            if own_port:
                server.stop(release=False)
        if api.errors:
            raise AssertionError(f"{kind.__name__} raised:\n" + "\n".join(api.errors))

    def close(self) -> None:
        """Stop every server and release its port."""
        for server in [*self._shared.values(), *self._retired]:
            server.stop()
        self._shared.clear()
        self._retired.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def serve(api: A) -> Generator[A]:
    """``with serve(FakeThing()) as api:`` the API on a fresh server, stopped afterwards."""
    with FakeServer(api):
        yield api
