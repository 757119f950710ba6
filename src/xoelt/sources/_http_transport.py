"""A keep-alive HTTP/1.1 transport for httpx over the stdlib's ``http.client``.

Why: a paginated extraction is one small request per page, and httpx's default transport
(httpcore + h11, pure Python) is most of a request's CPU; with this one a whole
``httpx.Client.request`` of a 100-row Sprout page costs ~100 µs less (340 vs 440 µs here,
``http.client`` parsing the status line and headers with less Python per request).
Everything above the transport stays httpx: the client's headers, auth flows, redirects,
cookies, timeouts and content decoding (gzip) work as before, and errors are httpx's own (``ConnectTimeout``, ``ReadTimeout``, ``ConnectError``,
``RemoteProtocolError``…), so :class:`~xoelt.sources.http.HttpClient` maps them unchanged.

Connections are pooled per origin (scheme, host, port) and reused when the previous
response was read to its end; an idle connection the server has closed (its socket reads
as ready) is dropped before reuse rather than failing the next request. TLS uses httpx's
own SSL context (certifi, ``SSL_CERT_FILE``).

It is opt-in (``XOELT_HTTP_TRANSPORT=stdlib``): by default every source keeps httpx's own,
well-kept transport (httpcore), because a SaaS API's rate limit (Sprout: 60 requests a
minute) bounds an extraction long before 100 µs of CPU per request does; the saving only
matters for high-volume page-heavy extractions against fast APIs (``make bench`` measures
both). :func:`transport` also returns None, keeping httpx's default, when the environment
names a proxy (httpx honours ``HTTP(S)_PROXY`` only with its default transport).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import socket
import threading
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from xoelt.errors import ConfigError

if TYPE_CHECKING:
    import httpx

_Origin = tuple[str, str, int]


CHOICES = ("httpx", "stdlib")


def transport() -> httpx.BaseTransport | None:
    """The stdlib transport when ``XOELT_HTTP_TRANSPORT=stdlib`` and no proxy is configured;
    otherwise None (httpx's default transport)."""
    choice = os.environ.get("XOELT_HTTP_TRANSPORT", "httpx").strip().lower() or "httpx"
    if choice not in CHOICES:
        raise ConfigError(f"XOELT_HTTP_TRANSPORT: {choice!r} is not one of {', '.join(CHOICES)}")
    if choice == "httpx" or urllib.request.getproxies():
        return None
    import httpx

    class _Stream(httpx.SyncByteStream):
        """The response body; the connection goes back to the pool once it is read."""

        def __init__(self, owner: Transport, origin: _Origin, conn: Any, resp: Any) -> None:
            self.owner, self.origin, self.conn = owner, origin, conn
            self.resp: Any = resp  # None once closed

        def __iter__(self) -> Iterator[bytes]:
            resp: Any = self.resp
            with self.owner.errors():
                while chunk := resp.read1(1 << 16):
                    yield chunk
            if resp.length:  # the server closed before the Content-Length was sent
                raise httpx.RemoteProtocolError(
                    f"peer closed connection without sending complete message body "
                    f"({resp.length} bytes missing)"
                )

        def close(self) -> None:
            resp, self.resp = self.resp, None
            if resp is None:
                return
            # Read to its end (``read1`` leaves a Content-Length body at length 0 unclosed;
            # closing it then closes its file object, not the connection's socket).
            done = resp.isclosed() or resp.length == 0
            resp.close()
            if done and not resp.will_close:
                self.owner.release(self.origin, self.conn)
            else:
                self.owner.discard(self.conn)

    class Transport(httpx.BaseTransport):
        def __init__(self) -> None:
            self._ssl = httpx.create_ssl_context()
            self._idle: dict[_Origin, list[Any]] = {}
            self._lock = threading.Lock()
            self._open: set[Any] = set()

        def errors(self) -> Any:
            return _map_errors(httpx)

        def release(self, origin: _Origin, conn: Any) -> None:
            with self._lock:
                if conn in self._open:
                    self._idle.setdefault(origin, []).append(conn)
                    return
            conn.close()  # the transport was closed meanwhile

        def discard(self, conn: Any) -> None:
            with self._lock:
                self._open.discard(conn)
            conn.close()

        def _take(self, origin: _Origin, connect: float | None) -> Any:
            with self._lock:
                idle = self._idle.get(origin, [])
                while idle:
                    conn = idle.pop()
                    if conn.sock is not None and not _readable(conn.sock):
                        return conn
                    self._open.discard(conn)
                    conn.close()
            scheme, host, port = origin
            if scheme == "https":
                conn = http.client.HTTPSConnection(host, port, timeout=connect, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=connect)
            with self._lock:
                self._open.add(conn)
            return conn

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            url = request.url
            scheme = url.scheme
            port = url.port or (443 if scheme == "https" else 80)
            origin = (scheme, url.raw_host.decode("ascii"), port)  # IDNA: what SNI takes
            timeouts = request.extensions.get("timeout", {})
            body = request.read()
            target = url.raw_path.decode("ascii")
            if request.headers.get("transfer-encoding", "").lower() == "chunked":
                body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
            conn = self._take(origin, timeouts.get("connect"))
            try:
                if conn.sock is None:
                    with _map_errors(httpx, connecting=True):
                        conn.connect()
                        # http.client sends the head and the body in two writes: without
                        # this, Nagle holds the body until the server's delayed ACK.
                        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with _map_errors(httpx):
                    conn.sock.settimeout(timeouts.get("read"))
                    conn.putrequest(
                        request.method, target, skip_host=True, skip_accept_encoding=True
                    )
                    try:
                        for name, value in request.headers.raw:
                            conn.putheader(name, value)
                    except (
                        ValueError
                    ):  # a name or value with a line break; its text may be a secret
                        raise httpx.LocalProtocolError("invalid header name or value") from None
                    conn.endheaders(body or None)
                    resp = conn.getresponse()
            except BaseException:
                self.discard(conn)
                raise
            return httpx.Response(
                resp.status,
                headers=resp.getheaders(),
                stream=_Stream(self, origin, conn, resp),
                extensions={
                    "http_version": b"HTTP/1.1",
                    "reason_phrase": resp.reason.encode("latin-1"),
                },
            )

        def close(self) -> None:
            with self._lock:
                conns, self._open, self._idle = self._open, set(), {}
            for conn in conns:  # a request in flight in another thread ends with an error
                sock = conn.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                conn.close()

    return Transport()


def _readable(sock: socket.socket) -> bool:
    """An idle keep-alive socket that reads as ready was closed by the server (or is broken)."""
    try:
        poller = select.poll()  # not select.select: file descriptors past 1023
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class _map_errors:
    """``socket``/``http.client`` errors as the httpx exceptions its own transport raises."""

    def __init__(self, httpx: Any, *, connecting: bool = False) -> None:
        self.httpx, self.connecting = httpx, connecting

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if exc is None or not isinstance(exc, (OSError, http.client.HTTPException)):
            return False
        httpx = self.httpx
        if isinstance(exc, TimeoutError):
            raise (httpx.ConnectTimeout if self.connecting else httpx.ReadTimeout)(
                str(exc)
            ) from exc
        if self.connecting and isinstance(exc, OSError):
            raise httpx.ConnectError(str(exc)) from exc
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__) from exc
