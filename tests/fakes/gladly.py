"""A fake of the Gladly API subset ``gladly_api`` uses, as routes on the fake-API kit.

It speaks the published contract: HTTP Basic auth (401 with a JSON ``errors`` body
otherwise, which echoes the token it got, so a test proves we scrub it); ``POST
/api/v1/reports`` validates ``{metricSet, startAt, endAt, timezone}`` (+ ``filters``,
``aggregationLevel``) and answers ``text/csv`` with a Content-Disposition and human-readable
headers, or 400 ``{"errors":[{attr, code, detail}]}``; the work-session endpoint selects
sessions by ``COALESCE(ended_at, created_at)`` in ``[startAtTime, endAtTime + 1 min]``
(minute-precision times only, the end inclusive "up to 1 min past" read as widely as it can
be); ``startAtTime``/``endAtTime`` on a report only for the sets that take them; the export API lists jobs filtered by ``status`` and ``updatedAt
>= startAt`` (400 if ``startAt`` is more than 14 days ago) and serves NDJSON files.
Routes: ``reports``, ``sessions``, ``jobs``, ``file``, ``agents`` (what ``doctor`` probes).
"""

from __future__ import annotations

import base64
import binascii
import csv
import re
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

from tests.fakes.api import FakeApi, Request, Response, route

REPORT_KEYS = {"metricSet", "startAt", "endAt", "timezone", "filters", "aggregationLevel",
               "startAtTime", "endAtTime"}  # fmt: skip
TIMED_SETS = {"AgentSummaryReport", "ContactExportReportV3"}  # take startAtTime/endAtTime
MINUTE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(Z|[+-]\d\d:\d\d)$")  # YYYY-mm-ddThh:mmZ
WS_COLUMNS = [
    "id",
    "contact_session_id",
    "contact_session_created_at",
    "agent_id",
    "contact_session_ended_at",
    "status",
]


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    """A CSV document as Gladly's report endpoints send it."""
    out = StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _errors(status: int, attr: str, code: str, detail: str) -> Response:
    return Response(status, json={"errors": [{"attr": attr, "code": code, "detail": detail}]})


def _check_report_body(body: Any) -> tuple[str, str, str] | None:
    if not isinstance(body, dict) or set(body) - REPORT_KEYS:
        return ("body", "invalid", "unknown keys")
    if "startAtTime" in body or "endAtTime" in body:
        return _check_times(body)
    for key in ("metricSet", "startAt", "endAt"):
        if key not in body:
            return (key, "blank", f"{key} is required")
    try:
        start, end = date.fromisoformat(body["startAt"]), date.fromisoformat(body["endAt"])
        ZoneInfo(body.get("timezone", "UTC"))
    except (ValueError, TypeError):
        return ("startAt", "invalid", "dates are YYYY-MM-DD, timezone an IANA name")
    if len(body["startAt"]) != 10 or end < start:
        return ("endAt", "invalid", "endAt must be a YYYY-MM-DD on or after startAt")
    return None


def _check_times(body: dict[str, Any]) -> tuple[str, str, str] | None:
    """startAtTime/endAtTime: only some metric sets, never with dates or timezone."""
    if body.get("metricSet") not in TIMED_SETS:
        return ("startAtTime", "invalid", f"not supported for {body.get('metricSet')}")
    if {"startAt", "endAt", "timezone"} & set(body):
        return ("startAtTime", "invalid", "cannot be combined with startAt, endAt or timezone")
    for key in ("startAtTime", "endAtTime"):
        if not isinstance(body.get(key), str) or not MINUTE.match(body[key]):
            return (key, "invalid", f"{key} must be YYYY-mm-ddThh:mmZ")
    return None


def _minute_time(text: Any) -> datetime | None:
    """A ``YYYY-mm-ddThh:mmZ`` time (minute precision, as documented), else None."""
    if not isinstance(text, str) or not MINUTE.match(text):
        return None
    return datetime.fromisoformat(text)


class FakeGladly(FakeApi):
    """Gladly's reports, work-session events and export API over in-memory state."""

    def setup(self) -> None:
        """No credentials, reports, sessions, jobs or files until a test adds them."""
        self.user = ""
        self.token = ""
        self.reports: dict[str, str] = {}  # metricSet -> CSV text
        # (metricSet, startAt) -> CSV text: a report per day, ahead of ``reports``
        self.daily_reports: dict[tuple[str, str], str] = {}
        self.sessions: list[dict[str, str]] = []  # rows with (at least) the session columns
        self.session_columns: list[str] = list(WS_COLUMNS)  # what the endpoint answers
        self.jobs: list[dict[str, Any]] = []
        self.files: dict[tuple[str, str], bytes] = {}  # (job id, file name) -> NDJSON

    def guard(self, request: Request) -> Response | None:
        """HTTP Basic auth with ``user``/``token``; the 401 echoes the token it got."""
        supplied = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
        if supplied == expected:
            return None
        try:
            got = base64.b64decode(supplied.removeprefix("Basic ")).decode(errors="replace")
        except binascii.Error:
            got = ""
        detail = f"API token {got.partition(':')[2]!r} is invalid or expired"
        return _errors(401, "authorization", "unauthorized", detail)

    def error(self, status: int, detail: str) -> Response:
        """Gladly's ``errors`` body."""
        if status == 404:
            return _errors(404, "path", "not_found", "no such endpoint")
        return _errors(status, "", "fault", "scripted")

    @route("POST", "/api/v1/reports", "reports")
    def report(self, request: Request) -> Response:
        """A report as CSV, or 400 naming the bad attribute."""
        try:
            body = request.json()
        except ValueError:
            return _errors(400, "body", "invalid", "body is not JSON")
        problem = _check_report_body(body)
        if problem:
            return _errors(400, *problem)
        first = body.get("startAt") or body["startAtTime"][:10]
        text = self.daily_reports.get(
            (body["metricSet"], first), self.reports.get(body["metricSet"])
        )
        if text is None:
            detail = f"{body['metricSet']} is not a valid metric set"
            return _errors(400, "metricSet", "invalid", detail)
        disposition = f'attachment; filename="{body["metricSet"]}-{first}.csv"'
        return Response(
            body=text.encode(),
            content_type="text/csv",
            headers={"Content-Disposition": disposition},
        )

    @route("POST", "/api/v1/reports/work-session-events", "sessions")
    def work_sessions(self, request: Request) -> Response:
        """Sessions whose end (or start, if open) is in ``[startAtTime, endAtTime]``, as CSV."""
        try:
            body = request.json()
        except ValueError:
            return _errors(400, "body", "invalid", "body is not JSON")
        if not isinstance(body, dict) or set(body) != {"startAtTime", "endAtTime"}:
            keys = sorted(body) if isinstance(body, dict) else body
            return _errors(400, "body", "invalid", f"unexpected keys {keys}")
        start, end = (_minute_time(body[k]) for k in ("startAtTime", "endAtTime"))
        if start is None or end is None:
            return _errors(400, "startAtTime", "invalid", "times are YYYY-mm-ddThh:mmZ")
        end += timedelta(minutes=1)  # inclusive "up to 1 min past": the unfavourable reading
        rows = [
            [s[c] for c in self.session_columns]
            for s in self.sessions
            if start
            <= datetime.fromisoformat(
                s["contact_session_ended_at"] or s["contact_session_created_at"]
            )
            <= end
        ]
        return Response(
            body=csv_text(self.session_columns, rows).encode(),
            content_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="ws.csv"'},
        )

    @route("GET", "/api/v1/export/jobs", "jobs")
    def export_jobs(self, request: Request) -> Response:
        """Jobs with ``status`` updated at or after ``startAt`` (at most 14 days ago)."""
        status, start_at = request.arg("status"), request.arg("startAt")
        since = datetime.fromisoformat(start_at) if start_at else None
        if since is not None and since < datetime.now(UTC) - timedelta(days=14):
            return _errors(400, "startAt", "invalid", "cannot be more than 14 days ago")
        jobs = [
            j
            for j in self.jobs
            if (status is None or j["status"] == status)
            and (since is None or datetime.fromisoformat(j["updatedAt"]) >= since)
        ]
        return Response(json=jobs)

    @route("GET", "/api/v1/export/jobs/{job}/files/{name}", "file")
    def export_file(self, request: Request) -> Response:
        """One NDJSON file of a job."""
        key = (request.params["job"], request.params["name"])
        if key not in self.files:
            return _errors(404, "filename", "not_found", "no such file")
        return Response(body=self.files[key], content_type="application/x-ndjson")

    @route("GET", "/api/v1/agents", "agents")
    def agents(self, request: Request) -> Response:
        """The org's agents (``doctor``'s cheap authenticated read)."""
        return Response(json=[{"id": "a1", "name": "Ada", "emailAddress": "ada@example.com"}])
