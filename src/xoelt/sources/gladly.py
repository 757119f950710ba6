"""``gladly_api``: Gladly reports, work-session events and the conversation export.

One Basic-auth client (the API user's e-mail and API token, ``GLADLY_API_USER`` /
``GLADLY_API_TOKEN`` unless ``user:``/``token:`` name other variables) and three ``kind``s:

- ``report`` (default): ``POST /api/v1/reports`` with ``{metricSet, startAt, endAt, timezone}``.
  Reports are synchronous (the CSV is the response), so the body is streamed to disk and copied
  row by row with Gladly's human-readable headers (``Conversation ID``) unchanged. Reports take
  whole local days: ``startAt``/``endAt`` are the first and last dates the window touches in its
  own zone (``endAt`` includes its whole day), so a daily window sends the same date twice and
  an intraday window gets its whole day(s) (logged as a warning).
- ``work_session_events``: ``POST /api/v1/reports/work-session-events`` with ISO instants
  (see :func:`work_session_times` for the inclusive end).
- ``conversation_export``: the org's scheduled export jobs (no ad-hoc jobs exist). The COMPLETED
  jobs are listed, the fewest whose ``parameters`` cover the window are chosen, one NDJSON file
  of each (``export_file``) is streamed to disk and flattened to CSV (see :meth:`_export`).

The base URL is ``base_url`` if given, else ``https://{org}.gladly.com`` when ``org`` is set,
else ``https://us-1.gladly.com`` (the host of Gladly's sample config). Rate limits: report POSTs
(both report endpoints) at most 10 a minute and 2 at once per org; other calls 10 a second,
(``per_second``).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from xoelt.config.types import Secret, SecretRef, StrictModel
from xoelt.errors import SourceError
from xoelt.sources import register
from xoelt.sources.base import CsvSink, Source, copy_csv_rows
from xoelt.sources.http import HttpClient, RetryConfig, redact, shared_limiter
from xoelt.timewindow import TimeWindow

if TYPE_CHECKING:
    import httpx

DEFAULT_BASE_URL = "https://us-1.gladly.com"
USER_VAR, TOKEN_VAR = "GLADLY_API_USER", "GLADLY_API_TOKEN"
REPORTS_PATH = "/api/v1/reports"
WORK_SESSIONS_PATH = "/api/v1/reports/work-session-events"
JOBS_PATH = "/api/v1/export/jobs"
# Jobs can be listed (and files fetched) for 14 days; ask a little less so clock skew between
# us and Gladly never makes startAt "more than 14 days ago".
LISTABLE = timedelta(days=14) - timedelta(minutes=5)
# The header written when an export has no rows in the window (the documented required fields).
EMPTY_EXPORT_COLUMNS = {
    "conversation_items.jsonl": ["id", "conversationId", "customerId", "timestamp"]
}


class GladlyFilters(StrictModel):
    """The report ``filters`` object, sent with Gladly's key names."""

    channel: str | None = None
    inboxes: list[str] | None = None
    teams: list[str] | None = None
    phone_number: str | None = Field(None, alias="phoneNumber")


class GladlyConfig(StrictModel):
    """The ``extractor:`` block of a ``gladly_api`` source."""

    kind: Literal["report", "work_session_events", "conversation_export"] = "report"
    metric_set: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9]*$")
    filters: GladlyFilters | None = None
    aggregation_level: Literal["halfHourly", "daily", "weekly", "monthly", "quarterly"] | None = (
        None
    )
    export_file: str = Field(
        "conversation_items.jsonl", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.jsonl$"
    )
    time_field: str | None = "timestamp"
    org: str | None = Field(None, pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    base_url: str | None = None
    user: Secret | None = None
    token: Secret | None = None
    retry: RetryConfig = RetryConfig()

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/").removesuffix("/api/v1")

    @field_validator("export_file")
    @classmethod
    def _file(cls, value: str) -> str:
        if ".." in value:
            raise ValueError(
                "export_file must be a plain file name such as conversation_items.jsonl"
            )
        return value

    @model_validator(mode="after")
    def _fits_kind(self) -> GladlyConfig:
        if self.kind == "report" and not self.metric_set:
            raise ValueError("kind report needs metric_set (e.g. ContactTimestampsReport)")
        only = {
            "metric_set": "report",
            "filters": "report",
            "aggregation_level": "report",
            "export_file": "conversation_export",
            "time_field": "conversation_export",
        }
        for key, kind in only.items():
            if key in self.model_fields_set and self.kind != kind:
                raise ValueError(f"{key} applies only to kind {kind} (this source is {self.kind})")
        if self.org and self.base_url:
            raise ValueError("set either org or base_url, not both")
        return self

    @property
    def url(self) -> str:
        """The API root (no ``/api/v1``)."""
        if self.base_url:
            return self.base_url
        return f"https://{self.org}.gladly.com" if self.org else DEFAULT_BASE_URL


def report_dates(window: TimeWindow) -> tuple[str, str]:
    """``startAt``/``endAt``: the first and the last local date touched by ``[start, end)``."""
    zone = ZoneInfo(window.timezone)
    last = window.end.astimezone(UTC) - timedelta(microseconds=1)
    return (
        window.start.astimezone(zone).date().isoformat(),
        last.astimezone(zone).date().isoformat(),
    )


def work_session_times(window: TimeWindow) -> tuple[str, str]:
    """``startAtTime``/``endAtTime`` for the work-session endpoint.

    Gladly treats ``endAtTime`` as inclusive, so sending the window's end would also return
    sessions stamped exactly at midnight, which the next window returns again. We send the end
    minus one millisecond (Gladly's timestamps have millisecond precision), which makes the
    request exactly ``[start, end)``. Filtering rows ourselves would instead depend on the
    format of ``contact_session_ended_at``/``created_at``, which is not documented. If Gladly
    refused sub-minute times the request fails loudly (HTTP 400), never silently.
    """
    zone = ZoneInfo(window.timezone)
    end = (window.end.astimezone(UTC) - timedelta(milliseconds=1)).astimezone(zone)
    return (
        window.start.astimezone(zone).isoformat(timespec="milliseconds"),
        end.isoformat(timespec="milliseconds"),
    )


def report_body(config: GladlyConfig, window: TimeWindow) -> dict[str, Any]:
    """The JSON body of ``POST /api/v1/reports`` for this window."""
    start, end = report_dates(window)
    body: dict[str, Any] = {
        "metricSet": config.metric_set,
        "startAt": start,
        "endAt": end,
        "timezone": window.timezone,
    }
    if config.filters is not None:
        body["filters"] = config.filters.model_dump(by_alias=True, exclude_none=True)
    if config.aggregation_level:
        body["aggregationLevel"] = config.aggregation_level
    return body


def _instant(value: Any) -> datetime:
    """An RFC 3339 time (nanoseconds are cut to microseconds; no offset means UTC)."""
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    moment = datetime.fromisoformat(value.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ExportJob:
    """A COMPLETED conversation export job: the period it covers and its files."""

    id: str
    start: datetime
    end: datetime
    updated: datetime
    files: tuple[str, ...]


def parse_jobs(payload: Any, where: str) -> list[ExportJob]:
    """The completed CONVERSATIONS jobs in a ``GET /export/jobs`` answer; malformed = error."""
    if not isinstance(payload, list):
        raise SourceError(
            f"{where}: expected a JSON array of export jobs, got {type(payload).__name__}"
        )
    jobs = []
    for item in payload:
        try:
            if item.get("status") != "COMPLETED":
                continue
            params = item["parameters"]
            if params.get("type", "CONVERSATIONS") != "CONVERSATIONS":
                continue
            if not isinstance(item["id"], str) or not item["id"]:
                raise ValueError("id")
            files = item.get("files") or []
            jobs.append(
                ExportJob(
                    item["id"],
                    _instant(params["startAt"]),
                    _instant(params["endAt"]),
                    _instant(item.get("updatedAt") or params["endAt"]),
                    tuple(f for f in files if isinstance(f, str)),
                )
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            raise SourceError(f"{where}: malformed export job: {json.dumps(item)[:200]}") from None
    return jobs


def choose_jobs(
    jobs: list[ExportJob], start: datetime, end: datetime
) -> list[tuple[ExportJob, datetime, datetime]] | datetime:
    """The fewest jobs covering ``[start, end)``, each with the disjoint segment it supplies.

    Greedy interval cover: from the uncovered instant take the job reaching furthest (a re-run
    of the same period: the latest ``updatedAt``). Returns the first uncovered instant if the
    jobs leave a gap.
    """
    chosen = []
    cursor = start
    while cursor < end:
        usable = [j for j in jobs if j.start <= cursor < j.end]
        if not usable:
            return cursor
        best = max(usable, key=lambda j: (j.end, j.updated))
        chosen.append((best, cursor, min(best.end, end)))
        cursor = best.end
    return chosen


def flatten(
    obj: dict[str, Any], prefix: str = "", out: dict[str, str] | None = None
) -> dict[str, str]:
    """Nested objects become dotted keys (``initiator.id``); lists and scalars become JSON text."""
    out = {} if out is None else out
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flatten(value, f"{name}.", out)
            continue
        if name in out:
            raise ValueError(f"key {name!r} occurs twice once flattened")
        if value is None:
            out[name] = ""
        elif isinstance(value, str):
            out[name] = value
        else:
            out[name] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return out


def _filename(disposition: str | None) -> str | None:
    match = re.search(r'filename="?([^";]+)"?', disposition or "")
    return re.sub(r"[^A-Za-z0-9._ -]", "_", match.group(1))[:200] if match else None


def copy_csv(response: httpx.Response, path: Path, where: str, sink: CsvSink) -> None:
    """Copy a downloaded CSV into the sink; an empty body or a non-CSV answer is an error."""
    ctype = response.headers.get("content-type", "")
    if "json" in ctype or "html" in ctype:
        snippet = path.read_bytes()[:120].decode("utf-8", "replace").replace("\n", " ")
        raise SourceError(f"{where}: expected CSV, got {ctype}: {snippet!r}")
    if path.stat().st_size == 0:
        raise SourceError(f"{where}: HTTP {response.status_code} with an empty body (expected CSV)")
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise SourceError(f"{where}: the CSV has no header row")
            sink.open(header)
            copy_csv_rows(reader, header, sink, where)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{where}: unreadable CSV: {exc}") from None


@register
class GladlySource(Source):
    """Gladly reports (CSV), work-session events (CSV) and conversation exports (NDJSON)."""

    source_type = "gladly_api"
    Config = GladlyConfig
    config: GladlyConfig

    @classmethod
    def describe(cls, config: Any, window: TimeWindow) -> dict[str, Any]:
        """The request(s) ``plan`` shows; credentials appear only as variable names."""
        user = str(config.user or f"${{{USER_VAR}}}")
        token = str(config.token or f"${{{TOKEN_VAR}}}")
        out: dict[str, Any] = {"kind": config.kind, "auth": f"basic {user}:{token}"}
        if config.kind == "report":
            body = report_body(config, window)
            out.update(method="POST", url=config.url + REPORTS_PATH, body=body)
            if not _whole_days(window):
                out["note"] = "reports cover whole local days: more than this window"
        elif config.kind == "work_session_events":
            start, end = work_session_times(window)
            body = {"startAtTime": start, "endAtTime": end}
            out.update(method="POST", url=config.url + WORK_SESSIONS_PATH, body=body)
        else:
            out.update(
                method="GET",
                url=config.url + JOBS_PATH,
                params={"status": "COMPLETED", "startAt": _utc(window.start)},
                then=f"GET {config.url}{JOBS_PATH}/<job id>/files/{config.export_file} "
                "for the fewest COMPLETED jobs whose parameters cover the window",
                time_field=config.time_field,
                note="startAt is raised to 14 days ago at run time if older (Gladly's limit)",
            )
        return out

    def extract(self, sink: CsvSink) -> None:
        """Run the configured kind; secrets are scrubbed from any error message."""
        import httpx

        user_ref = self.config.user or SecretRef(USER_VAR, "user")
        token_ref = self.config.token or SecretRef(TOKEN_VAR, "token")
        user = user_ref.resolve(self.ctx.env).get_secret_value()
        token = token_ref.resolve(self.ctx.env).get_secret_value()
        host = urlsplit(self.config.url).netloc.lower()
        if self.config.kind == "conversation_export":
            limiter = shared_limiter(f"gladly:api:{host}", per_second=10)
        else:
            limiter = shared_limiter(f"gladly:reports:{host}", per_minute=10, concurrent=2)
        client = HttpClient(
            self.config.url,
            retry=self.config.retry,
            limiter=limiter,
            auth=httpx.BasicAuth(user, token),
            auth_hint=f"check {user_ref.var} and {token_ref.var}",
            log=self.ctx.log,
        )
        try:
            with client:
                if self.config.kind == "report":
                    self._report(client, sink)
                elif self.config.kind == "work_session_events":
                    self._work_sessions(client, sink)
                else:
                    self._export(client, sink)
        except SourceError as exc:
            clean = redact(exc.detail, token, user if len(user) > 3 else "")
            if clean == exc.detail:
                raise
            raise SourceError(clean) from None
        self.ctx.log.info("gladly extracted", kind=self.config.kind, rows=sink.rows)

    def _report(self, client: HttpClient, sink: CsvSink) -> None:
        window = self.ctx.window
        body = report_body(self.config, window)
        if not _whole_days(window):
            self.ctx.log.warning(
                "gladly reports cover whole days", start_at=body["startAt"], end_at=body["endAt"]
            )
        path = self.ctx.workdir / "report.csv"
        response = client.download("POST", self.config.url + REPORTS_PATH, path, json=body)
        copy_csv(response, path, f"POST {self.config.url}{REPORTS_PATH}", sink)
        sink.details.update(
            kind="report",
            request=body,
            filename=_filename(response.headers.get("content-disposition")),
        )

    def _work_sessions(self, client: HttpClient, sink: CsvSink) -> None:
        start, end = work_session_times(self.ctx.window)
        body = {"startAtTime": start, "endAtTime": end}
        path = self.ctx.workdir / "work_session_events.csv"
        response = client.download("POST", self.config.url + WORK_SESSIONS_PATH, path, json=body)
        copy_csv(response, path, f"POST {self.config.url}{WORK_SESSIONS_PATH}", sink)
        sink.details.update(kind="work_session_events", request=body)

    def _export(self, client: HttpClient, sink: CsvSink) -> None:
        """Choose the jobs covering the window, download their file, flatten NDJSON to CSV.

        Jobs are listed by ``updatedAt`` from the window start (a job covering any of the
        window finishes after it), but never from more than 14 days ago. Each chosen job
        supplies only the lines whose ``time_field`` falls in its own segment of the window,
        so a local day spanning two UTC-day jobs, or overlapping hourly jobs, yields each
        item once; lines without that field (or ``time_field: null``) are all kept. NDJSON
        lines differ in keys, so a first pass collects the union of columns (only the key
        set is held in memory) and a second pass writes the rows.
        """
        window = self.ctx.window
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        since = max(start, datetime.now(UTC) - LISTABLE)
        where = f"GET {self.config.url}{JOBS_PATH}"
        params = {"status": "COMPLETED", "startAt": _utc(since)}
        payload = client.json("GET", self.config.url + JOBS_PATH, params=params)
        jobs = parse_jobs(payload, where)
        chosen = choose_jobs(jobs, start, end)
        if isinstance(chosen, datetime):
            raise SourceError(
                f"no COMPLETED conversation export job covers {window.label} from {_utc(chosen)} "
                f"({len(jobs)} completed job(s) updated since {_utc(since)}; jobs are kept 14 "
                "days and a daily job completes overnight UTC after its period)"
            )
        name = self.config.export_file
        parts: list[tuple[ExportJob, datetime, datetime, Path]] = []
        for i, (job, seg_start, seg_end) in enumerate(chosen):
            if name not in job.files:
                raise SourceError(
                    f"export job {job.id} has no file {name} (files: {', '.join(job.files)})"
                )
            path = self.ctx.workdir / f"export-{i}.jsonl"
            url = f"{self.config.url}{JOBS_PATH}/{quote(job.id, safe='')}/files/{quote(name, safe='')}"
            client.download("GET", url, path)
            parts.append((job, seg_start, seg_end, path))

        columns: dict[str, None] = {}
        for _, row in self._export_rows(parts, {}):
            columns.update(dict.fromkeys(row))
        header = list(columns) or EMPTY_EXPORT_COLUMNS.get(name, ["id"])
        sink.open(header)
        stats: dict[str, dict[str, Any]] = {}
        for _, row in self._export_rows(parts, stats):
            sink.write_values([row.get(c, "") for c in header])
        sink.details.update(kind="conversation_export", file=name, jobs=list(stats.values()))

    def _export_rows(
        self,
        parts: list[tuple[ExportJob, datetime, datetime, Path]],
        stats: dict[str, dict[str, Any]],
    ) -> Iterator[tuple[str, dict[str, str]]]:
        field = self.config.time_field
        for job, seg_start, seg_end, path in parts:
            entry = stats.setdefault(
                job.id,
                {
                    "id": job.id,
                    "from": _utc(seg_start),
                    "to": _utc(seg_end),
                    "rows": 0,
                    "outside": 0,
                },
            )
            label = f"export job {job.id} {self.config.export_file}"
            for number, obj in _ndjson(path, label):
                try:
                    row = flatten(obj)
                    stamp = row.get(field) if field else None
                    inside = not stamp or seg_start <= _instant(stamp) < seg_end
                except ValueError as exc:
                    raise SourceError(f"{label} line {number}: {exc}") from None
                if inside:
                    entry["rows"] += 1
                    yield job.id, row
                else:
                    entry["outside"] += 1


def _ndjson(path: Path, label: str) -> Iterator[tuple[int, dict[str, Any]]]:
    number = 0
    try:
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    raise SourceError(f"{label} line {number}: not valid JSON ({exc})") from None
                if not isinstance(obj, dict):
                    raise SourceError(f"{label} line {number}: expected a JSON object")
                yield number, obj
    except UnicodeDecodeError:
        raise SourceError(f"{label} line {number + 1}: not UTF-8") from None


def _whole_days(window: TimeWindow) -> bool:
    zone = ZoneInfo(window.timezone)
    return window.start.astimezone(zone).time() == time(0) and window.end.astimezone(
        zone
    ).time() == time(0)
