"""An HTTP proxy on 127.0.0.1 in front of a moto S3 server: scripted faults, a request log
with the peak number of requests in flight per operation, and the bytes on its sockets.

boto3 is pointed at the proxy (``endpoint_url``) and talks real S3 HTTP through it; every
request is relayed to moto unchanged, except those a :class:`Fault` takes: they are answered
with an S3 error document (``status`` and ``code``; ``status=200`` gives the "200 OK with an
<Error> body" that CopyObject/UploadPartCopy can return) without reaching moto. ``hold``
keeps each matching request for a while before relaying it, so that requests a client sends
at once are seen in flight together. The bytes read from and written to the client's sockets
(request and status lines, headers, bodies) are counted exactly, for the stage benchmark.

``GET /__proxy__/counts`` answers the counters as JSON (not relayed, not counted), so a
proxy in another process can be read too; ``python -m tests.fakes.s3_proxy`` starts moto and
the proxy there and prints the proxy's and moto's ports.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO, Self, cast
from urllib.parse import parse_qs, urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
COUNTS_PATH = "/__proxy__/counts"


def operation(method: str, path: str, headers: Any) -> str:
    """The S3 operation a request is, by its method, query and copy-source header (the
    operations xoelt's store sends; anything else is ``METHOD``)."""
    query = parse_qs(urlsplit(path).query, keep_blank_values=True)
    copying = "x-amz-copy-source" in {k.lower() for k in headers}
    if method == "PUT" and "partNumber" in query:
        return "UploadPartCopy" if copying else "UploadPart"
    if method == "PUT":
        return "CopyObject" if copying else "PutObject"
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload"
    if method == "DELETE" and "uploadId" in query:
        return "AbortMultipartUpload"
    if method == "GET" and "uploadId" in query:
        return "ListParts"
    return {"HEAD": "HeadObject", "GET": "GetObject", "DELETE": "DeleteObject"}.get(method, method)


def part_number(path: str) -> int | None:
    values = parse_qs(urlsplit(path).query).get("partNumber")
    return int(values[0]) if values else None


@dataclass
class Fault:
    """Answer the next ``times`` requests of ``op`` (of part ``part`` if given) with an S3
    error, ``status`` and ``code``, without relaying them."""

    op: str
    status: int
    code: str
    part: int | None = None
    times: int = 1
    taken: int = 0

    def take(self, op: str, part: int | None) -> bool:
        if self.taken < self.times and op == self.op and self.part in (None, part):
            self.taken += 1
            return True
        return False


@dataclass
class Seen:
    """One request the proxy answered: its operation, part number, status, when it arrived
    and when its answer was ready (monotonic clock), and its ``x-amz-copy-source-if-match``."""

    op: str
    part: int | None
    status: int
    started: float
    ended: float
    copy_if_match: str | None = None


@dataclass
class Counters:
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    peak: dict[str, int] = field(default_factory=dict)


class S3Proxy:
    """A context manager: ``with S3Proxy(moto_port) as proxy: proxy.endpoint``."""

    def __init__(self, upstream_port: int, *, hold: dict[str, float] | None = None) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.hold = dict(hold or {})
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.counters = Counters()
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def ops(self, op: str) -> list[Seen]:
        """The requests of ``op`` answered so far, in the order they ended."""
        with self._lock:
            return [s for s in self.seen if s.op == op]

    def peak(self, op: str) -> int:
        """The most requests of ``op`` that were in flight at one time."""
        with self._lock:
            return self.counters.peak.get(op, 0)

    def counts(self) -> dict[str, Any]:
        with self._lock:
            c = self.counters
            return {"requests": c.requests, "bytes_in": c.bytes_in, "bytes_out": c.bytes_out}

    def begin(self, op: str, part: int | None) -> Fault | None:
        with self._lock:
            self.counters.requests += 1
            now = self._in_flight.get(op, 0) + 1
            self._in_flight[op] = now
            self.counters.peak[op] = max(self.counters.peak.get(op, 0), now)
            return next((f for f in self.faults if f.take(op, part)), None)

    def end(self, seen: Seen) -> None:
        with self._lock:
            self._in_flight[seen.op] -= 1
            self.seen.append(seen)

    def count(self, read: int = 0, written: int = 0) -> None:
        with self._lock:
            self.counters.bytes_in += read
            self.counters.bytes_out += written


class _Counting:
    """A socket file that adds what passes through it to the proxy's byte counters."""

    def __init__(self, raw: BinaryIO, proxy: S3Proxy, *, reading: bool) -> None:
        self.raw, self.proxy, self.reading = raw, proxy, reading
        self.counting = True
        self.this_request = 0  # bytes of the request being read (a counts request's undone)

    def _add(self, n: int) -> None:
        if self.counting:
            self.this_request += n
            self.proxy.count(read=n) if self.reading else self.proxy.count(written=n)

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self._add(len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self.raw.readline(size)
        self._add(len(data))
        return data

    def write(self, data: bytes) -> int:
        self._add(len(data))
        return self.raw.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: S3Proxy) -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are two writes: no delayed-ACK stall

    def setup(self) -> None:
        super().setup()
        proxy = cast(_Server, self.server).proxy
        reader = _Counting(cast(BinaryIO, self.rfile), proxy, reading=True)
        writer = _Counting(cast(BinaryIO, self.wfile), proxy, reading=False)
        self.rfile, self.wfile = cast(io.BufferedIOBase, reader), cast(io.BufferedIOBase, writer)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_one_request(self) -> None:
        cast(_Counting, self.rfile).this_request = 0
        super().handle_one_request()

    def _relay(self) -> None:
        proxy = cast(_Server, self.server).proxy
        if self.path == COUNTS_PATH:
            self._answer_counts(proxy)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        op, part = operation(self.command, self.path, self.headers), part_number(self.path)
        seen = Seen(op, part, 0, time.monotonic(), 0.0, self.headers["x-amz-copy-source-if-match"])
        fault = proxy.begin(op, part)
        try:
            if op in proxy.hold:
                time.sleep(proxy.hold[op])
            if fault is not None:
                self._error(proxy, fault, seen)
            else:
                self._forward(proxy, body, seen)
        finally:
            if not seen.ended:  # the relay failed before an answer was ready
                self._done(proxy, seen, 0)

    def _done(self, proxy: S3Proxy, seen: Seen, status: int) -> None:
        """Record the request before its answer is written, so a client that has its answer
        finds it in the log."""
        seen.status, seen.ended = status, time.monotonic()
        proxy.end(seen)

    def _forward(self, proxy: S3Proxy, body: bytes, seen: Seen) -> None:
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=600)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            payload = b"" if self.command == "HEAD" else answer.read()
            self._done(proxy, seen, answer.status)
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    self.send_header(key, value)
            if self.command == "HEAD":
                self.send_header("Content-Length", answer.getheader("Content-Length") or "0")
            else:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        finally:
            upstream.close()

    def _error(self, proxy: S3Proxy, fault: Fault, seen: Seen) -> None:
        self._done(proxy, seen, fault.status)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{fault.code}</Code><Message>injected by S3Proxy</Message>"
            "<RequestId>proxy</RequestId></Error>"
        ).encode()
        self.send_response(fault.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer_counts(self, proxy: S3Proxy) -> None:
        reader = cast(_Counting, self.rfile)
        proxy.count(read=-reader.this_request)
        for f in (self.rfile, self.wfile):
            cast(_Counting, f).counting = False
        body = json.dumps(proxy.counts()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True  # this connection's later bytes are not counted

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay


def main() -> None:
    """Start moto and a proxy in front of it; print ``<proxy port> <moto port>`` and serve
    until stdin closes (the stage benchmark runs this as a separate process, so that only
    the client's own CPU is counted in the benchmark's process)."""
    import logging

    from tests.fakes.moto_s3 import start_moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    moto = start_moto_server()
    _, moto_port = moto.get_host_and_port()
    with S3Proxy(moto_port) as proxy:
        print(proxy.port, moto_port, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()
    moto.stop()


if __name__ == "__main__":
    main()
