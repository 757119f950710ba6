"""A fake of Sprout Social's ``POST /v1/{customer_id}/messages``, as a route on the kit.

It answers as the published API does: bearer token, ``Accept``/``Content-Type`` of
``application/json`` (415 otherwise), a ``filters``/``fields``/``limit``/``sort``/``timezone``
body it validates, forward-only opaque cursors (400 on a bad one), no ``paging`` object on
the last page, ``{"error": "..."}`` bodies. It reads ``created_time.in(a..b)`` as inclusive
of ``b`` (the unfavourable reading), so the boundary message must be dropped by the source.
Like the real API it truncates a query at :attr:`FakeSprout.cap` (10,000) results in the
requested order: the page holding the last one has no ``paging`` object, as if that were all.
:data:`FAULTS` names the API's misbehaviours; :meth:`FakeSprout.script` schedules them by
request number. (``tests/benchmarks/fake_sprout_server.py`` is a separate, fast fake.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

from tests.fakes.api import FakeApi, Fault, Request, Response, route

RESULT_CAP = 10_000  # results per query; the rest are truncated
RANGE = re.compile(r"^created_time\.in\((.+?)(\.\.\.?)(.+)\)$")


def _error(status: int, message: str, **extra: Any) -> Fault:
    return Fault(status=status, body={"error": message}, **extra)


def _not_object(request: Request, response: Response) -> Response:
    page = response.json()
    page["data"][0] = "oops"
    return Response(response.status, json=page, headers=response.headers)


def _same_cursor(request: Request, response: Response) -> Response:
    page = response.json()
    page["paging"] = {"next_cursor": request.json()["page_cursor"]}
    return Response(response.status, json=page, headers=response.headers)


FAULTS: dict[str, Fault] = {
    "401": _error(401, "Unauthorized: token is invalid or expired"),
    "drop": Fault(drop=True),
    "slow": Fault(delay=1.6),
    "500": _error(500, "Internal error"),
    "503": _error(503, "Internal error"),
    "504": _error(504, "Internal error"),
    "429": _error(429, "Too many requests"),
    "429-retry-after": _error(429, "Too many requests", headers={"Retry-After": "1"}),
    "202": _error(202, "Results are not ready yet; try again"),
    "400-cursor": _error(400, "Invalid page_cursor"),
    "error-200": _error(200, "Something went wrong on our side"),
    "malformed": Fault(status=200, body=b'{"data": [{"guid": "msg-4", "created_'),
    "not-object": Fault(mangle=_not_object),  # the first message of the page is a string
    "same-cursor": Fault(mangle=_same_cursor),  # paging repeats the request's cursor
}


def _project(value: Any, parts: list[str]) -> Any:
    """What the API returns for one requested field path, nested as it nests."""
    if isinstance(value, list):
        return [_project(v, parts) for v in value]
    if not isinstance(value, dict) or parts[0] not in value:
        return None
    inner = value[parts[0]]
    return {parts[0]: inner if len(parts) == 1 else _project(inner, parts[1:])}


def _merge(into: dict[str, Any], part: Any) -> None:
    for key, value in (part or {}).items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif key not in into or value is not None:
            into[key] = value


def _instant(text: str, zone: ZoneInfo) -> datetime:
    if len(text) == 10:  # a bare date means midnight
        return datetime.combine(date.fromisoformat(text), dtime(), zone)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


class FakeSprout(FakeApi):
    """One customer's messages, paged by opaque cursors (route ``messages``)."""

    def setup(self) -> None:
        """No messages and no credentials until a test sets them."""
        self.token = ""
        self.customer = ""
        self.messages: list[dict[str, Any]] = []
        self.cap = RESULT_CAP
        self._parsed: tuple[int, int, list[tuple[datetime, dict[str, Any]]]] = (0, -1, [])

    def script(self, faults: Mapping[int, str]) -> None:
        """Schedule :data:`FAULTS` by request number (1-based), e.g. ``{2: "429"}``."""
        for number, name in faults.items():
            self.fault_on(number, FAULTS[name])

    def guard(self, request: Request) -> Response | None:
        """Unknown customer 404, bad token 401, anything but JSON both ways 415."""
        if request.params.get("customer", self.customer) != self.customer:
            return self._error(404, "Not found", request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(401, "Unauthorized: token is invalid or expired", request)
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype != "application/json" or request.headers.get("Accept") != "application/json":
            return self._error(415, "Unsupported Media Type", request)
        return None

    @route("POST", "/v1/{customer}/messages", "messages")
    def messages_page(self, request: Request) -> Response:
        """One page of the messages the body's filters select."""
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self._error(400, "Body is not JSON", request)
        try:
            page = self._page(body)
        except ValueError as exc:
            return self._error(400, str(exc), request)
        return Response(json=page, headers=self._request_id(request))

    def _by_time(self) -> list[tuple[datetime, dict[str, Any]]]:
        """The messages in created_time order (parsed once per list, not per request)."""
        key = (id(self.messages), len(self.messages))
        if self._parsed[:2] != key:
            pairs = [(datetime.fromisoformat(m["created_time"]), m) for m in self.messages]
            pairs.sort(key=lambda p: p[0])
            self._parsed = (*key, pairs)
        return self._parsed[2]

    @staticmethod
    def _request_id(request: Request) -> dict[str, str]:
        return {"X-Sprout-Request-ID": f"req-{request.number}"}

    def _error(self, status: int, message: str, request: Request) -> Response:
        return Response(status, json={"error": message}, headers=self._request_id(request))

    def _page(self, body: dict[str, Any]) -> dict[str, Any]:
        fields, filters, limit = body.get("fields"), body.get("filters"), body.get("limit", 50)
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            fields = ["guid"]
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            raise ValueError("limit must be between 1 and 100")
        try:
            zone = ZoneInfo(body.get("timezone", "UTC"))
        except Exception:
            raise ValueError("Unknown timezone") from None
        if body.get("sort", ["created_time:desc"]) not in (
            ["created_time:asc"],
            ["created_time:desc"],
        ):
            raise ValueError("Unsupported sort")
        ranges = [RANGE.match(f) for f in filters or [] if f.startswith("created_time.")]
        if len(ranges) != 1 or ranges[0] is None:
            raise ValueError("Exactly one created_time.in(start..end) filter is required")
        start, end = _instant(ranges[0].group(1), zone), _instant(ranges[0].group(3), zone)
        for f in filters or []:
            if not re.match(r"^[a-z_.]+\.(eq|in)\([^()]*\)$", f):
                raise ValueError(f"Malformed filter: {f}")
        chosen = [m for at, m in self._by_time() if start <= at <= end]
        if body.get("sort") != ["created_time:asc"]:
            chosen.reverse()
        chosen = chosen[: self.cap]
        query = hashlib.sha256(
            json.dumps(
                {k: v for k, v in body.items() if k != "page_cursor"}, sort_keys=True
            ).encode()
        ).hexdigest()[:12]
        offset = 0
        if "page_cursor" in body:
            try:
                decoded = json.loads(base64.urlsafe_b64decode(body["page_cursor"]))
                offset, same = int(decoded["o"]), decoded["q"] == query
            except Exception:
                raise ValueError("Invalid page_cursor") from None
            if not same:
                raise ValueError("Invalid page_cursor")
        data = []
        for m in chosen[offset : offset + limit]:
            out: dict[str, Any] = {}
            for f in fields:
                _merge(out, _project(m, f.split(".")))
            data.append(out)
        answer: dict[str, Any] = {"data": data}
        if offset + limit < len(chosen):
            token = json.dumps({"o": offset + limit, "q": query}).encode()
            answer["paging"] = {"next_cursor": base64.urlsafe_b64encode(token).decode()}
        return answer

    @route("GET", "/v1/metadata/client", "client")
    def client_metadata(self, request: Request) -> Response:
        """The customers the token can see (``doctor``'s probe)."""
        data = [{"customer_id": self.customer, "name": "Test customer"}]
        return Response(json={"data": data}, headers=self._request_id(request))
