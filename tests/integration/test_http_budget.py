"""The HTTP client's total retry budget, against real sockets on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.fakes.dead import failing_server, silent_server
from xoelt.errors import SourceError
from xoelt.sources.http import HttpClient, RateLimiter, RetryConfig


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def ok_server() -> Generator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def budget(total: float, **extra: Any) -> RetryConfig:
    return RetryConfig(
        max_attempts=20, initial_backoff=0.05, max_backoff=0.2, total_seconds=total, **extra
    )


def test_a_server_that_never_answers_fails_within_the_budget() -> None:
    with (
        silent_server() as (host, port),
        HttpClient(f"http://{host}:{port}", retry=budget(1.5, timeout_seconds=60)) as client,
    ):
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"timed out .*retry budget 1\.5 s"):
            client.json("GET", "/x")
    # a 60 s read timeout, cut to what the 1.5 s budget had left
    assert time.monotonic() - started < 1.5 + 0.5


def test_retries_stop_when_the_budget_ends_not_after_max_attempts() -> None:
    with (
        failing_server() as server,
        HttpClient(f"http://127.0.0.1:{server.server_address[1]}", retry=budget(1.0)) as client,
    ):
        started = time.monotonic()
        # The last attempt's timeout is what the budget had left: on a loaded machine it may
        # end in a read timeout rather than the 500; either way the budget stopped it.
        with pytest.raises(
            SourceError, match=r"(HTTP 500|timed out).*gave up after \d+ attempts, retry budget 1 s"
        ):
            client.json("GET", "/x")
    assert time.monotonic() - started < 1.0 + 0.5
    assert 2 <= server.hits < 20


def test_a_retry_does_not_wait_for_the_rate_limit_past_the_budget() -> None:
    limiter = RateLimiter(per_minute=2)
    with (
        failing_server() as server,
        HttpClient(
            f"http://127.0.0.1:{server.server_address[1]}", retry=budget(5.0), limiter=limiter
        ) as client,
    ):
        started = time.monotonic()
        with pytest.raises(SourceError, match="the rate limit frees no slot") as info:
            client.json("GET", "/x")
    assert time.monotonic() - started < 2.0  # not the 60 s the limiter would have waited
    assert "HTTP 500" in str(info.value) and server.hits == 2


def test_queueing_for_the_first_slot_does_not_spend_the_budget() -> None:
    limiter = RateLimiter(concurrent=1)
    release = threading.Event()

    def hold() -> None:
        with limiter.slot():
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    threading.Timer(1.2, release.set).start()  # another request of a backfill, for 1.2 s
    with ok_server() as url, HttpClient(url, retry=budget(0.5), limiter=limiter) as client:
        assert client.json("GET", "/x") == {"ok": True}
    holder.join()
