"""``gladly_api``: Gladly reports, work-session events and the conversation export.

One Basic-auth client (the API user's e-mail and API token, ``GLADLY_API_USER`` /
``GLADLY_API_TOKEN`` unless ``user:``/``token:`` name other variables) and three ``kind``s:

- ``report`` (default): ``POST /api/v1/reports`` with ``{metricSet, startAt, endAt, timezone}``.
  Reports are synchronous (the CSV is the response), so the body is streamed to disk and copied
  row by row with Gladly's human-readable headers (``Conversation ID``) unchanged. Most metric
  sets take whole local days: ``startAt``/``endAt`` are the first and last dates the window
  touches in its own zone (``endAt`` includes its whole day), so a daily window sends the same
  date twice. Such a set on an intraday pipeline is refused by ``validate`` (each intraday
  window would get its whole day). The sets that take times (``TIMED_METRIC_SETS``) get
  ``startAtTime``/``endAtTime`` on intraday windows instead (see :func:`report_times`).
- ``work_session_events``: ``POST /api/v1/reports/work-session-events`` with minute-precision
  instants covering the window, rows then kept by their anchor time (see
  :func:`work_session_times` and :class:`WorkSessionEvents`).
- ``conversation_export``: the org's scheduled export jobs (no ad-hoc jobs exist). The COMPLETED
  jobs are listed, the fewest whose ``parameters`` cover the window are chosen, one NDJSON file
  of each (``export_file``) is streamed to disk and flattened to CSV (see
  :mod:`xoelt.sources._gladly_export`).

Each kind is one :class:`~xoelt.sources._gladly.GladlyKind` object (its ``describe`` and
``extract``), chosen in one place: :data:`KINDS`.

The base URL is ``base_url`` if given, else ``https://{org}.gladly.com`` when ``org`` is set,
else ``https://us-1.gladly.com`` (the host of Gladly's sample config). Rate limits: report POSTs
(both report endpoints) at most 10 a minute and 2 at once per org, held across every xoelt
process sharing the target (:mod:`xoelt.sources.ratelimit`); other calls 10 a second
(``per_second``, per process). ``rate_limit:`` overrides any of these.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from xoelt.errors import SourceError
from xoelt.sources._gladly import (
    REPORTS_PATH,
    TIMED_METRIC_SETS,
    TOKEN_VAR,
    USER_VAR,
    WORK_SESSIONS_PATH,
    GladlyConfig,
    GladlyKind,
)
from xoelt.sources._gladly_export import ConversationExport
from xoelt.sources.base import CsvSink, ExtractContext, Source, copy_csv_rows, env_label, secret_ref
from xoelt.sources.http import HttpClient, redact
from xoelt.sources.ratelimit import RateLimits, limiter_for
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


def _minute(moment: datetime) -> str:
    """Gladly's documented time form, ``YYYY-mm-ddThh:mmZ`` (UTC, minute precision)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _whole_minute(moment: datetime) -> bool:
    return moment.second == 0 and moment.microsecond == 0


def work_session_times(window: TimeWindow) -> tuple[str, str]:
    """``startAtTime``/``endAtTime`` for the work-session endpoint: a superset of the window.

    Gladly documents minute precision and an end that is inclusive "up to 1 min past". We
    send the window's start rounded down and its end rounded up to the minute (a window on
    whole minutes, as every cron/HH:MM window is, is sent as it is), so whatever the inclusive
    end means the answer holds every session of ``[start, end)``; rows outside it are then
    dropped by their anchor time (:class:`WorkSessionEvents`), never sent twice.
    """
    start = window.start.astimezone(UTC).replace(second=0, microsecond=0)
    end = window.end.astimezone(UTC)
    if not _whole_minute(end):
        end = end.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return _minute(start), _minute(end)


def report_times(window: TimeWindow) -> tuple[str, str]:
    """``startAtTime``/``endAtTime`` for a metric set that takes times, exactly ``[start, end)``.

    A report's rows carry no time we could filter on, so the request itself must be exact:
    the end is inclusive up to a minute past, so we send the last minute *in* the window
    (``end - 1 min``). That needs bounds on whole minutes, which anything else is refused for.
    """
    if not (_whole_minute(window.start) and _whole_minute(window.end)):
        raise SourceError(
            f"window {window.label} is not on whole minutes; Gladly report times have minute "
            "precision, so the request cannot be exactly this window"
        )
    return _minute(window.start), _minute(window.end - timedelta(minutes=1))


def report_body(config: GladlyConfig, window: TimeWindow) -> dict[str, Any]:
    """The JSON body of ``POST /api/v1/reports`` for this window.

    Whole local days (``startAt``/``endAt``/``timezone``), except for a metric set that takes
    times on a window that is not whole days: ``startAtTime``/``endAtTime`` (which Gladly
    refuses alongside ``startAt``, ``endAt`` or ``timezone``).
    """
    body: dict[str, Any] = {"metricSet": config.metric_set}
    if config.metric_set in TIMED_METRIC_SETS and not _whole_days(window):
        body["startAtTime"], body["endAtTime"] = report_times(window)
    else:
        start, end = report_dates(window)
        body.update(startAt=start, endAt=end, timezone=window.timezone)
    if config.filters is not None:
        body["filters"] = config.filters.model_dump(by_alias=True, exclude_none=True)
    if config.aggregation_level:
        body["aggregationLevel"] = config.aggregation_level
    return body


def _filename(disposition: str | None) -> str | None:
    match = re.search(r'filename="?([^";]+)"?', disposition or "")
    return re.sub(r"[^A-Za-z0-9._ -]", "_", match.group(1))[:200] if match else None


def check_csv_answer(response: httpx.Response, path: Path, where: str) -> None:
    """An empty body or a non-CSV answer (JSON, HTML) is an error naming the request."""
    ctype = response.headers.get("content-type", "")
    if "json" in ctype or "html" in ctype:
        snippet = path.read_bytes()[:120].decode("utf-8", "replace").replace("\n", " ")
        raise SourceError(f"{where}: expected CSV, got {ctype}: {snippet!r}")
    if path.stat().st_size == 0:
        raise SourceError(f"{where}: HTTP {response.status_code} with an empty body (expected CSV)")


def copy_csv(response: httpx.Response, path: Path, where: str, sink: CsvSink) -> None:
    """Copy a downloaded CSV into the sink; an empty body or a non-CSV answer is an error."""
    check_csv_answer(response, path, where)
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

    API = "gladly-reports"
    LIMITS = RateLimits(concurrent=2, per_minute=10)


class Report(_ReportKind):
    """``POST /api/v1/reports``: a metric set for the window (see :func:`report_body`)."""

    def describe(self, window: TimeWindow) -> dict[str, Any]:
        try:
            body = report_body(self.config, window)
        except SourceError as exc:  # plan shows why the run would fail
            return {"method": "POST", "url": self.config.url + REPORTS_PATH, "error": exc.detail}
        return {"method": "POST", "url": self.config.url + REPORTS_PATH, "body": body}

    def extract(self, client: HttpClient, ctx: ExtractContext, sink: CsvSink) -> None:
        window, url = ctx.window, self.config.url + REPORTS_PATH
        body = report_body(self.config, window)
        if "startAt" in body and not _whole_days(window):  # refused by validate; not reachable
            raise SourceError(f"{self.config.metric_set} takes whole days, not {window.label}")
        path = ctx.workdir / "report.csv"
        response = client.download("POST", url, path, json=body)
        copy_csv(response, path, f"POST {url}", sink)
        sink.details.update(
            kind="report",
            request=body,
            filename=_filename(response.headers.get("content-disposition")),
        )


class WorkSessionEvents(_ReportKind):
    """``POST /api/v1/reports/work-session-events``, rows kept to exactly ``[start, end)``.

    Gladly selects sessions by ``COALESCE(ended_at, created_at)``; we keep a row when
    ``contact_session_ended_at`` (or, if empty, ``contact_session_created_at``) is in the
    window, so the extra minute the request may return goes to the next window only. A
    timestamp without an offset is read as UTC; one that does not parse, or a header without
    those columns, fails the run (the window could not be proven).
    """

    ENDED, CREATED = "contact_session_ended_at", "contact_session_created_at"

    def describe(self, window: TimeWindow) -> dict[str, Any]:
        start, end = work_session_times(window)
        body = {"startAtTime": start, "endAtTime": end}
        return {
            "method": "POST",
            "url": self.config.url + WORK_SESSIONS_PATH,
            "body": body,
            "keep": f"rows with COALESCE({self.ENDED}, {self.CREATED}) in {window.label}",
        }

    def extract(self, client: HttpClient, ctx: ExtractContext, sink: CsvSink) -> None:
        start, end = work_session_times(ctx.window)
        body = {"startAtTime": start, "endAtTime": end}
        url = self.config.url + WORK_SESSIONS_PATH
        path = ctx.workdir / "work_session_events.csv"
        response = client.download("POST", url, path, json=body)
        where = f"POST {url}"
        check_csv_answer(response, path, where)
        kept = ctx.workdir / "work_session_events.kept.csv"
        outside = self._keep_window(path, kept, where, ctx.window)
        copy_csv(response, kept, where, sink)
        sink.details.update(kind="work_session_events", request=body, outside_window=outside)

    def _keep_window(self, path: Path, out: Path, where: str, window: TimeWindow) -> int:
        """Copy ``path`` to ``out`` without the rows anchored outside the window; their count."""
        lo, hi = window.start.astimezone(UTC), window.end.astimezone(UTC)
        dropped = 0
        try:
            with (
                path.open(encoding="utf-8-sig", newline="") as src,
                out.open("w", encoding="utf-8", newline="") as dst,
            ):
                reader, writer = csv.reader(src), csv.writer(dst)
                header = next(reader, None)
                if header is not None:
                    writer.writerow(header)
                if not header or not any(h.strip() for h in header):
                    return 0  # copy_csv names the missing header
                missing = [c for c in (self.ENDED, self.CREATED) if c not in header]
                if missing:
                    raise SourceError(
                        f"{where}: the CSV has no {' or '.join(missing)} column, so its rows "
                        "cannot be kept to the window"
                    )
                ended, created = header.index(self.ENDED), header.index(self.CREATED)
                for row in reader:
                    if len(row) != len(header):  # copy_csv names the ragged line
                        writer.writerow(row)
                        continue
                    stamp = row[ended] or row[created]
                    try:
                        moment = datetime.fromisoformat(stamp.strip())
                    except ValueError:
                        raise SourceError(
                            f"{where} line {reader.line_num}: {stamp!r} is not a timestamp "
                            f"({self.ENDED} / {self.CREATED})"
                        ) from None
                    if moment.tzinfo is None:
                        moment = moment.replace(tzinfo=UTC)
                    if lo <= moment < hi:
                        writer.writerow(row)
                    else:
                        dropped += 1
        except (UnicodeDecodeError, csv.Error) as exc:
            raise SourceError(f"{where}: unreadable CSV: {exc}") from exc
        return dropped


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
        host = urlsplit(self.config.url).netloc.lower()  # the org: limits are per org
        limiter = limiter_for(self.ctx.limits, f"{kind.API}/{host}", kind.limits(), self.ctx.log)
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
            limiter=limiter_for(
                self.ctx.limits,
                f"gladly-api/{urlsplit(url).netloc.lower()}",
                ConversationExport.LIMITS.merged(self.config.rate_limit),
                self.ctx.log,
            ),
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
