"""The keep-alive ``http.client`` transport under httpx, against a raw socket server on loopback.

The server speaks just enough HTTP/1.1 to script what the transport must survive: it counts
the connections it accepts (keep-alive means one for many requests), can close a connection
once idle, cut a body short, answer late, or gzip a body.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from xoelt.errors import ConfigError
from xoelt.sources._http_transport import transport


@pytest.fixture(autouse=True)
def _opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """The transport is opt-in: every test here asks for it as a user would."""
    monkeypatch.setenv("XOELT_HTTP_TRANSPORT", "stdlib")


def test_httpx_default_transport_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XOELT_HTTP_TRANSPORT")
    assert transport() is None
    monkeypatch.setenv("XOELT_HTTP_TRANSPORT", "httpx")
    assert transport() is None
    monkeypatch.setenv("XOELT_HTTP_TRANSPORT", "curl")
    with pytest.raises(
        ConfigError, match="XOELT_HTTP_TRANSPORT: 'curl' is not one of httpx, stdlib"
    ):
        transport()


class RawServer:
    """HTTP/1.1 with Content-Length bodies; ``mode`` scripts the next answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.requests: list[bytes] = []
        self.mode = "ok"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                self.requests.append(head + b"\r\n\r\n" + body)
                payload, extra = b'{"echo": %d}' % len(body), b""
                if self.mode == "slow":
                    time.sleep(0.5)
                if self.mode == "gzip":
                    payload, extra = gzip.compress(payload), b"Content-Encoding: gzip\r\n"
                declared = len(payload) + (10 if self.mode == "cut" else 0)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%s"
                    b"Content-Length: %d\r\n\r\n%s" % (extra, declared, payload)
                )
                if self.mode in ("cut", "close-idle"):
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[RawServer]:
    srv = RawServer()
    yield srv
    srv.close()


def _client(
    headers: dict[str, str] | None = None, timeout: httpx.Timeout | None = None
) -> httpx.Client:
    fast = transport()
    assert fast is not None
    return httpx.Client(transport=fast, headers=headers, timeout=timeout or httpx.Timeout(5.0))


def test_many_requests_share_one_connection_and_bodies_arrive_whole(server: RawServer) -> None:
    url = f"http://127.0.0.1:{server.port}/v1/x?q=1"
    with _client(headers={"Authorization": "Bearer t"}) as client:
        for n in range(20):
            response = client.post(url, content=b"x" * n)
            assert response.status_code == 200
            assert response.json() == {"echo": n}
            assert response.http_version == "HTTP/1.1"
    assert server.accepted == 1
    head = server.requests[0].split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"post /v1/x?q=1 http/1.1\r\n")
    assert b"\r\nhost: 127.0.0.1:" in head and b"\r\nauthorization: bearer t" in head
    assert head.count(b"\r\nhost:") == 1 and b"accept-encoding: identity" not in head


def test_a_connection_the_server_closed_while_idle_is_replaced(server: RawServer) -> None:
    url = f"http://127.0.0.1:{server.port}/"
    server.mode = "close-idle"
    with _client() as client:
        for _ in range(3):
            assert client.get(url).json() == {"echo": 0}
            time.sleep(0.05)  # the server's FIN arrives before the next request
    assert server.accepted == 3


def test_a_cut_body_is_a_protocol_error(server: RawServer) -> None:
    server.mode = "cut"
    with _client() as client, pytest.raises(httpx.RemoteProtocolError, match="10 bytes missing"):
        client.get(f"http://127.0.0.1:{server.port}/")


def test_timeouts_and_refused_connections_are_httpx_errors(server: RawServer) -> None:
    server.mode = "slow"
    with _client(timeout=httpx.Timeout(0.1)) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"http://127.0.0.1:{server.port}/")
        closed = socket.create_server(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        with pytest.raises(httpx.ConnectError):
            client.get(f"http://127.0.0.1:{port}/")


def test_gzip_bodies_are_decoded_by_httpx(server: RawServer) -> None:
    server.mode = "gzip"
    with _client() as client:
        assert client.get(f"http://127.0.0.1:{server.port}/").json() == {"echo": 0}


def test_a_configured_proxy_keeps_httpx_default_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert transport() is None


def test_a_header_with_a_line_break_fails_without_showing_it(server: RawServer) -> None:
    client = _client(headers={"Authorization": "Bearer s3cret\nX: y"})
    with client, pytest.raises(httpx.LocalProtocolError) as caught:
        client.get(f"http://127.0.0.1:{server.port}/")
    assert "s3cret" not in str(caught.value) and caught.value.__cause__ is None
    assert server.requests == []
