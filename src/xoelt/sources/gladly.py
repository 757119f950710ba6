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
  of each (``export_file``) is streamed to disk and flattened to CSV (see
  :mod:`xoelt.sources._gladly_export`).

Each kind is one :class:`~xoelt.sources._gladly.GladlyKind` object (its ``describe`` and
``extract``), chosen in one place: :data:`KINDS`.

The base URL is ``base_url`` if given, else ``https://{org}.gladly.com`` when ``org`` is set,
else ``https://us-1.gladly.com`` (the host of Gladly's sample config). Rate limits: report POSTs
(both report endpoints) at most 10 a minute and 2 at once per org; other calls 10 a second,
(``per_second``).
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from xoelt.errors import SourceError
from xoelt.sources._gladly import (
    REPORTS_PATH,
    TOKEN_VAR,
    USER_VAR,
    WORK_SESSIONS_PATH,
    GladlyConfig,
    GladlyKind,
)
from xoelt.sources._gladly_export import ConversationExport
from xoelt.sources.base import CsvSink, ExtractContext, Source, copy_csv_rows, env_label, secret_ref
from xoelt.sources.http import HttpClient, RateLimiter, redact, shared_limiter
from xoelt.timewindow import TimeWindow

if TYPE_CHECKING:
    import httpx


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
        raise SourceError(f"{where}: unreadable CSV: {exc}") from exc


def _whole_days(window: TimeWindow) -> bool:
    zone = ZoneInfo(window.timezone)
    return window.start.astimezone(zone).time() == time(0) and window.end.astimezone(
        zone
    ).time() == time(0)


class _ReportKind(GladlyKind):
    """A kind that POSTs to a report endpoint (10 a minute and 2 at once per org)."""

    def limiter(self, host: str) -> RateLimiter:
        return shared_limiter(f"gladly:reports:{host}", per_minute=10, concurrent=2)


class Report(_ReportKind):
    """``POST /api/v1/reports``: a metric set for the whole local days the window touches."""

    def describe(self, window: TimeWindow) -> dict[str, Any]:
        body = report_body(self.config, window)
        out = {"method": "POST", "url": self.config.url + REPORTS_PATH, "body": body}
        if not _whole_days(window):
            out["note"] = "reports cover whole local days: more than this window"
        return out

    def extract(self, client: HttpClient, ctx: ExtractContext, sink: CsvSink) -> None:
        window, url = ctx.window, self.config.url + REPORTS_PATH
        body = report_body(self.config, window)
        if not _whole_days(window):
            ctx.log.warning(
                "gladly reports cover whole days", start_at=body["startAt"], end_at=body["endAt"]
            )
        path = ctx.workdir / "report.csv"
        response = client.download("POST", url, path, json=body)
        copy_csv(response, path, f"POST {url}", sink)
        sink.details.update(
            kind="report",
            request=body,
            filename=_filename(response.headers.get("content-disposition")),
        )


class WorkSessionEvents(_ReportKind):
    """``POST /api/v1/reports/work-session-events`` for exactly ``[start, end)``."""

    def describe(self, window: TimeWindow) -> dict[str, Any]:
        start, end = work_session_times(window)
        body = {"startAtTime": start, "endAtTime": end}
        return {"method": "POST", "url": self.config.url + WORK_SESSIONS_PATH, "body": body}

    def extract(self, client: HttpClient, ctx: ExtractContext, sink: CsvSink) -> None:
        start, end = work_session_times(ctx.window)
        body = {"startAtTime": start, "endAtTime": end}
        url = self.config.url + WORK_SESSIONS_PATH
        path = ctx.workdir / "work_session_events.csv"
        response = client.download("POST", url, path, json=body)
        copy_csv(response, path, f"POST {url}", sink)
        sink.details.update(kind="work_session_events", request=body)


KINDS: dict[str, type[GladlyKind]] = {
    "report": Report,
    "work_session_events": WorkSessionEvents,
    "conversation_export": ConversationExport,
}
"""``kind:`` → the object that describes and extracts it (the only place kinds are told apart)."""


class GladlySource(Source[GladlyConfig], source_type="gladly_api"):
    """Gladly reports (CSV), work-session events (CSV) and conversation exports (NDJSON)."""

    @classmethod
    def describe(cls, config: GladlyConfig, window: TimeWindow) -> dict[str, Any]:
        """The request(s) ``plan`` shows; credentials appear only as variable names."""
        user = env_label(config.user, USER_VAR)
        token = env_label(config.token, TOKEN_VAR)
        kind = KINDS[config.kind](config)
        return {"kind": config.kind, "auth": f"basic {user}:{token}", **kind.describe(window)}

    def extract(self, sink: CsvSink) -> None:
        """Run the configured kind; secrets are scrubbed from any error message."""
        import httpx

        kind = KINDS[self.config.kind](self.config)
        user_ref = secret_ref(self.config.user, USER_VAR, "user")
        token_ref = secret_ref(self.config.token, TOKEN_VAR, "token")
        user = user_ref.resolve(self.ctx.env).get_secret_value()
        token = token_ref.resolve(self.ctx.env).get_secret_value()
        client = HttpClient(
            self.config.url,
            retry=self.config.retry,
            limiter=kind.limiter(urlsplit(self.config.url).netloc.lower()),
            auth=httpx.BasicAuth(user, token),
            auth_hint=f"check {user_ref.var} and {token_ref.var}",
            log=self.ctx.log,
        )
        try:
            with client:
                kind.extract(client, self.ctx, sink)
        except SourceError as exc:
            clean = redact(exc.detail, token, user if len(user) > 3 else "")
            if clean == exc.detail:
                raise
            # from None: the cause's text is the unredacted message, secret included.
            raise SourceError(clean) from None
        self.ctx.log.info("gladly extracted", kind=self.config.kind, rows=sink.rows)

    @classmethod
    def credential_vars(cls, config: GladlyConfig) -> list[str]:
        """The API user's e-mail and token variables (configured or documented)."""
        return [
            secret_ref(config.user, USER_VAR, "user").var,
            secret_ref(config.token, TOKEN_VAR, "token").var,
        ]

    def probe(self, timeout: float) -> str:
        """``GET /api/v1/agents``: one cheap authenticated read (10 a second per org)."""
        import httpx

        from xoelt.sources.base import probe_retry

        user_ref = secret_ref(self.config.user, USER_VAR, "user")
        token_ref = secret_ref(self.config.token, TOKEN_VAR, "token")
        user = user_ref.resolve(self.ctx.env).get_secret_value()
        token = token_ref.resolve(self.ctx.env).get_secret_value()
        url = self.config.url + "/api/v1/agents"
        client = HttpClient(
            self.config.url,
            retry=probe_retry(timeout),
            limiter=shared_limiter(f"gladly:api:{urlsplit(url).netloc.lower()}", per_second=10),
            auth=httpx.BasicAuth(user, token),
            auth_hint=f"check {user_ref.var} and {token_ref.var}",
            log=self.ctx.log,
        )
        try:
            with client:
                agents = client.json("GET", url)
        except SourceError as exc:
            raise SourceError(redact(exc.detail, token, user if len(user) > 3 else "")) from None
        count = len(agents) if isinstance(agents, list) else "?"
        return f"GET {url}: HTTP 200, {count} agents"
