"""An HTTP proxy on 127.0.0.1 in front of fakesnow that drops the connection mid-statement.

The Snowflake connector sends each statement as ``POST /queries/v1/query-request`` with a
(gzip) JSON body holding ``sqlText``. :class:`DroppingProxy` relays every request to the
upstream server unchanged, except the first ``times`` statements matching ``pattern``: for
those it closes the client's connection without an answer, either ``before`` relaying (the
statement never reached the warehouse) or ``after`` (it ran; only the answer was lost, as
when a load balancer or NAT drops an idle-looking connection during a long COPY). What the
connector then does — retry the request, give up — is its own, real behaviour.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self, cast

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Drop:
    """Drop the next ``times`` statements whose SQL matches ``pattern`` (``when`` relayed)."""

    pattern: str
    when: Literal["before", "after"]
    times: int = 1
    dropped: list[str] = field(default_factory=list)

    def take(self, sql: str) -> bool:
        if self.times > 0 and re.search(self.pattern, sql, re.I | re.S):
            self.times -= 1
            self.dropped.append(sql)
            return True
        return False


def statement_of(body: bytes, encoding: str | None) -> str:
    """The ``sqlText`` of a query request body ("" for anything else)."""
    try:
        raw = gzip.decompress(body) if encoding == "gzip" else body
        text = json.loads(raw).get("sqlText")
    except (OSError, ValueError, AttributeError):
        return ""
    return text if isinstance(text, str) else ""


class DroppingProxy:
    """A context manager: ``with DroppingProxy(host, port) as proxy: proxy.port``."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.drop: Drop | None = None
        self.statements: list[str] = []
        self._lock = threading.Lock()
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def decide(self, sql: str) -> str | None:
        """``before``/``after`` when this statement is to be dropped, else None."""
        with self._lock:
            if sql:
                self.statements.append(sql)
            drop = self.drop
            return drop.when if drop is not None and sql and drop.take(sql) else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: DroppingProxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body of an answer go out in two writes: with Nagle on, the body
    # waits for the client's delayed ACK (~40 ms a statement, most of a proxied run).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _relay(self) -> None:
        proxy = cast(_Server, self.server).proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        sql = ""
        if "/queries/v1/query-request" in self.path:
            sql = statement_of(body, self.headers.get("Content-Encoding"))
        when = proxy.decide(sql)
        if when == "before":
            self._hang_up()
            return
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
            if when == "after":
                self._hang_up()
                return
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        finally:
            upstream.close()

    def _hang_up(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_POST = _relay
