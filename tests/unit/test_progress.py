"""Extraction progress: the accounting, and the reports of the sink and the HTTP client.

The bar itself is checked through the CLI in tests/e2e/test_progress_tty.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from xoelt import progress
from xoelt.progress import ExtractCounts, ExtractProgress
from xoelt.sources.base import CsvSink
from xoelt.sources.http import HttpClient, RetryConfig
from xoelt.sources.prefetch import Prefetch


def test_totals_add_up_across_threads_and_reach_the_listener() -> None:
    heard: list[ExtractCounts] = []
    tracker = ExtractProgress("orders", heard.append)

    def work() -> None:
        for _ in range(500):
            tracker.add(rows=2, bytes=10, pages=1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.counts == ExtractCounts("orders", rows=4000, bytes=20000, pages=2000)
    assert len(heard) == 2000 and heard[-1] == tracker.counts  # every change, latest last
    assert [c.rows for c in heard] == sorted(c.rows for c in heard)  # running totals
    tracker.finish()
    tracker.finish()
    assert heard[-1].done and sum(c.done for c in heard) == 1
    with pytest.raises(ValueError, match="negative"):
        tracker.add(rows=-1)


def test_sink_reports_every_row_and_byte_it_wrote(tmp_path: Path) -> None:
    tracker = ExtractProgress("orders")
    sink = CsvSink(tmp_path / "out.csv", progress=tracker.add)
    sink.open(["id", "name"])
    for i in range(10_000):  # single rows: reported every 4,096, the rest at close
        sink.write_values([str(i), "x" if i % 3 else ""])
    mid = tracker.counts
    assert mid.rows == 8192 and mid.bytes > 8192 * len("1,x\r\n")  # bytes reported with them
    sink.write_many_values([[str(i), None] for i in range(300)])  # a page: reported at once
    assert tracker.counts.rows == 10_300
    sink.close()
    assert tracker.counts.rows == sink.rows == 10_300
    assert tracker.counts.bytes == (tmp_path / "out.csv").stat().st_size  # header included
    assert tracker.counts.pages == 0


class _Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    failures = 1  # the first request answers 503: a retried page still counts once

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status = 503 if type(self).failures > 0 else 200
        type(self).failures -= 1
        body = json.dumps({"page": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def api() -> Generator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_client_counts_successful_answers_as_pages_also_from_a_prefetch_thread(
    api: str,
) -> None:
    tracker = ExtractProgress("orders")
    retry = RetryConfig(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
    with HttpClient(api, retry=retry, retry_statuses=frozenset({503})) as client:
        client.json("GET", "/outside")  # no extraction in progress: nobody hears it
        with progress.reporting(tracker.add):
            assert client.json("GET", "/one") == {"page": "/one"}

            def pages() -> Iterator[Any]:
                for n in range(3):
                    yield client.json("GET", f"/p{n}")

            fetched = list(Prefetch(pages()))
    assert [p["page"] for p in fetched] == ["/p0", "/p1", "/p2"]
    assert tracker.counts.pages == 4  # /one (after a 503 and its retry) and three prefetched
