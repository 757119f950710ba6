"""A fast fake of Sprout Social's ``POST /v1/{customer_id}/messages`` for the benchmark.

Run as a script in its own process (so its CPU and memory are not the extractor's)::

    python tests/benchmarks/fake_sprout_server.py --rows 1000000 [--page-size 100]

It prints ``READY <port>`` once listening on 127.0.0.1 and serves until killed. Like the
real API it wants ``Authorization: Bearer <token>`` (401 otherwise), ``Accept`` and
``Content-Type`` of ``application/json`` (415 otherwise), a ``created_time.in(a..b)``
filter and a valid ``page_cursor`` (400 otherwise), and it leaves ``paging`` out of the last
page. Rows are generated deterministically from their index, spread evenly over the window
of the first query (a fixed data set: a later query's ``created_time.in`` range selects from
it), so no two runs differ. Like Sprout it stops a query at 10,000 results, so the
extractor's continuation past the cap is part of what is measured. ``--page-size`` above 100 is *beyond the documented
maximum* and exists only to show where the per-request cost goes.

An asyncio protocol instead of ``http.server``: the stdlib handler's header parsing alone
would cap the benchmark well below the extractor's own speed. So it does not use the
fake-API kit (``tests/fakes``, ~700 requests/s on this machine, i.e. under 100k rows/s at the
documented 100 rows a page before any row is built) and shares no code with the kit's
contract-faithful Sprout fake (``tests/fakes/sprout.py``), whose paging filters, sorts and
projects an in-memory message list per request; it also runs as a standalone script.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import functools
import json
import re
from datetime import UTC, datetime, timedelta
from typing import cast

RANGE = re.compile(r"created_time\.in\(([^.)]+)\.\.\.?([^)]+)\)")
RESULT_CAP = 10_000
NETWORKS = ("INSTAGRAM", "TWITTER", "FACEBOOK", "LINKEDIN")
POST_TYPES = ("INSTAGRAM_MEDIA", "TWITTER_MENTION", "FACEBOOK_POST", "LINKEDIN_COMPANY_UPDATE")


def _row(i: int, created: str) -> str:
    """Message ``i`` as JSON text (hand-built: ``json.dumps`` would dominate the server)."""
    case = str(i) if i % 5 == 0 else "null"
    return (
        f'{{"guid":"msg-{i:08d}","created_time":"{created}","network":"{NETWORKS[i % 4]}",'
        f'"post_type":"{POST_TYPES[i % 4]}","text":"Message {i}: thanks, \\"see\\" you soon",'
        f'"perma_link":"https://example.com/p/{i:x}",'
        f'"from":{{"guid":"u{i % 997}","name":"user {i % 997}","profile_picture":null}},'
        f'"internal":{{"tags":[{{"id":{i % 13},"name":"t{i % 13}"}}],'
        f'"sent_by":{{"email":"agent{i % 17}@example.com"}}}},"case_id":{case},'
        f'"is_reply":{"true" if i % 3 == 0 else "false"}}}'
    )


@functools.lru_cache(maxsize=8)
def _day(days: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=days)).strftime("%Y-%m-%d")


def _stamp(epoch: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` without strftime per row."""
    days, secs = divmod(epoch, 86400)
    hours, secs = divmod(secs, 3600)
    minutes, secs = divmod(secs, 60)
    return f"{_day(days)}T{hours:02d}:{minutes:02d}:{secs:02d}Z"


class Api:
    """Request validation and page building; no I/O."""

    def __init__(self, rows: int, page_size: int, token: str, customer: str) -> None:
        self.rows, self.page_size = rows, page_size
        self.window: tuple[int, int] | None = None  # (first second, span) of the data set
        self.auth = f"Bearer {token}".encode()
        self.path = f"/v1/{customer}/messages".encode()

    def answer(self, path: bytes, headers: dict[bytes, bytes], body: bytes) -> tuple[int, bytes]:
        if path != self.path:
            return 404, b'{"error":"Not found"}'
        if headers.get(b"authorization") != self.auth:
            return 401, b'{"error":"Unauthorized"}'
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip()
        if ctype != b"application/json" or headers.get(b"accept") != b"application/json":
            return 415, b'{"error":"Unsupported Media Type"}'
        try:
            request = json.loads(body)
            match = next(filter(None, (RANGE.fullmatch(f) for f in request["filters"])))
            start = datetime.fromisoformat(match.group(1)).astimezone(UTC)
            end = datetime.fromisoformat(match.group(2)).astimezone(UTC)
        except (ValueError, KeyError, TypeError, StopIteration):
            return 400, b'{"error":"A created_time.in(start..end) filter is required"}'
        if self.window is None:
            self.window = (int(start.timestamp()), int((end - start).total_seconds()))
        first, span = self.window

        def at(i: int) -> int:
            return first + i * span // self.rows

        lo = bisect.bisect_left(range(self.rows), int(start.timestamp()), key=at)
        hi = bisect.bisect_right(range(self.rows), int(end.timestamp()), key=at)  # end inclusive
        last = min(hi, lo + RESULT_CAP)
        offset = lo
        if "page_cursor" in request:
            try:
                offset = int(base64.b64decode(request["page_cursor"], validate=True)[7:])
            except ValueError:
                return 400, b'{"error":"Invalid page_cursor"}'
        stop = min(offset + self.page_size, last)
        data = ",".join(_row(i, _stamp(at(i))) for i in range(offset, stop))
        paging = ""
        if stop < last:
            cursor = base64.b64encode(f"cursor:{stop}".encode()).decode()
            paging = f',"paging":{{"next_cursor":"{cursor}"}}'
        return 200, f'{{"data":[{data}]{paging}}}'.encode()


REASONS = {200: b"OK", 400: b"Bad Request", 401: b"Unauthorized", 404: b"Not Found"}


class Http(asyncio.Protocol):
    """Minimal HTTP/1.1 with keep-alive and Content-Length bodies (what httpx sends)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            lines = self.buffer[:head_end].split(b"\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4 : head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length :]
            parts = lines[0].split(b" ")
            status, payload = (
                self.api.answer(parts[1], headers, body)
                if parts[0] == b"POST"
                else (404, b'{"error":"Not found"}')
            )
            self.transport.write(
                b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                b"X-Sprout-API-Version: v1\r\n\r\n%s"
                % (status, REASONS.get(status, b"Error"), len(payload), payload)
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="bench-token")
    parser.add_argument("--customer", default="1001")
    args = parser.parse_args()
    api = Api(args.rows, args.page_size, args.token, args.customer)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Http(api), "127.0.0.1", args.port)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
