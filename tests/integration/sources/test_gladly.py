"""``gladly_api`` against the fake Gladly API (``tests.fakes.gladly``) on 127.0.0.1.

The fake speaks the published contract (Basic auth, report/work-session CSV, the export
API's jobs and NDJSON files, Gladly's ``errors`` bodies); faults are queued per route
(``reports``, ``sessions``, ``jobs``, ``file``) and consumed one per request.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from click.testing import CliRunner

from tests.fakes import FakeApis, Fault
from tests.fakes.gladly import WS_COLUMNS, FakeGladly, csv_text
from tests.integration.sources.conftest import SourceHarness, data_text
from xoelt.cli import cli
from xoelt.sources.csvio import CsvReader

USER, TOKEN = "api.robot@example.com", "gl-tok-5ecret-0a1b2c3d"
FAST = {"max_attempts": 4, "initial_backoff": 0.01, "max_backoff": 0.05, "timeout_seconds": 5}
NY = ZoneInfo("America/New_York")
CONTACT_HEADER = [
    "Timezone Filter",
    "Timestamp",
    "Event Type",
    "Contact ID",
    "Channel",
    "Inbox Name",
]
CONTACT_ROWS = [
    [
        "America/New_York",
        "2026-11-02T09:00:00.000-05:00",
        "CONTACT_CREATED",
        "c1",
        "CHAT",
        "Support",
    ],
    [
        "America/New_York",
        "2026-11-02T09:01:00.000-05:00",
        "CONTACT_ACCEPTED",
        "c1",
        "CHAT",
        'Returns, "VIP"',
    ],
    [
        "America/New_York",
        "2026-11-02T10:00:00.000-05:00",
        "CONTACT_ENDED",
        "c2",
        "EMAIL",
        "Lunettes é ✓",
    ],
]

# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def fake(fake_apis: FakeApis) -> Iterator[FakeGladly]:
    """A port of its own per test: xoelt's rate limiters are process-wide and keyed by
    host:port (10 report POSTs a minute), so tests sharing one would wait on each other."""
    with fake_apis.use(FakeGladly, own_port=True) as api:
        api.user, api.token = USER, TOKEN
        api.reports["ContactTimestampsReport"] = csv_text(CONTACT_HEADER, CONTACT_ROWS)
        yield api


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLADLY_API_USER", USER)
    monkeypatch.setenv("GLADLY_API_TOKEN", TOKEN)


def _pipeline(
    harness: SourceHarness,
    fake: FakeGladly,
    refresh: dict[str, Any] | None = None,
    **extractor: Any,
) -> None:
    ext = {"base_url": fake.url, "retry": FAST, **extractor}
    harness.pipeline("g", {"source_type": "gladly_api", "extractor": ext}, refresh=refresh)


def _extract(harness: SourceHarness, day: str = "2026-11-03") -> Any:
    return harness.cli("extract", "test/g", "--date", day)


def _output(harness: SourceHarness) -> tuple[list[list[str]], dict[str, Any]]:
    files = harness.ingest_files()
    manifest = json.loads(next(p for p in files if p.name == "_manifest.json").read_text())
    return list(csv.reader(io.StringIO(data_text(files), newline=""))), manifest


def _failed(harness: SourceHarness, result: Any, *needles: str) -> None:
    harness.assert_failed(result, *needles, secrets=(TOKEN,))


# -- reports --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run_date", "day", "hours"),
    [
        ("2026-11-03", "2026-11-02", 24),
        ("2026-11-02", "2026-11-01", 25),
        ("2026-03-09", "2026-03-08", 23),
    ],
)
def test_report_sends_local_day_and_copies_rows(
    harness: SourceHarness, fake: FakeGladly, creds: None, run_date: str, day: str, hours: int
) -> None:
    """Basic auth + body with the window's local date twice (endAt inclusive), DST days too."""
    _pipeline(harness, fake, metric_set="ContactTimestampsReport")
    result = _extract(harness, run_date)
    assert result.exit_code == 0, result.output
    (seen,) = fake.requests("reports")
    assert json.loads(seen.body) == {
        "metricSet": "ContactTimestampsReport",
        "startAt": day,
        "endAt": day,
        "timezone": "America/New_York",
    }
    rows, manifest = _output(harness)
    assert rows == [CONTACT_HEADER, *CONTACT_ROWS]
    assert manifest["rows"] == 3 and manifest["columns"] == CONTACT_HEADER
    assert (
        manifest["window"]["duration"]
        == {24: "1 day, 0:00:00", 25: "1 day, 1:00:00", 23: "23:00:00"}[hours]
    )
    assert manifest["details"]["filename"] == f"ContactTimestampsReport-{day}.csv"

    # The org-wide limit (2 at once, 10 a minute) is kept in the target's store, by org host:
    # one start claimed, its lease released.
    host = urlsplit(fake.url).netloc.replace(":", "_")
    state_file = harness.home / "objects/xoelt-stage/ratelimits/gladly-reports" / f"{host}.json"
    state = json.loads(state_file.read_text())
    assert state["leases"] == {} and [n for _, n, _ in state["starts"]] == [1]


def test_report_filters_aggregation_and_other_zone(
    harness: SourceHarness, fake: FakeGladly, creds: None
) -> None:
    refresh = {"refresh_type": "daily", "lag": {"days": 1}, "timezone": "Asia/Tokyo"}
    filters = {
        "channel": "CHAT",
        "inboxes": ["inbox-1"],
        "teams": ["t-9"],
        "phone_number": "+15550100",
    }
    _pipeline(
        harness,
        fake,
        refresh,
        metric_set="ContactTimestampsReport",
        filters=filters,
        aggregation_level="halfHourly",
    )
    assert _extract(harness).exit_code == 0
    assert json.loads(fake.requests("reports")[0].body) == {
        "metricSet": "ContactTimestampsReport",
        "startAt": "2026-11-02",
        "endAt": "2026-11-02",
        "timezone": "Asia/Tokyo",
        "filters": {
            "channel": "CHAT",
            "inboxes": ["inbox-1"],
            "teams": ["t-9"],
            "phoneNumber": "+15550100",
        },
        "aggregationLevel": "halfHourly",
    }


NIGHT = {"refresh_type": "intraday_absolute", "lag": {"days": 1}, "timezone": "America/New_York",
         "start_time": "22:00", "end_time": "02:00"}  # fmt: skip


@pytest.mark.parametrize("refresh", [NIGHT, {"refresh_type": "intraday_relative",
                         "lookback": {"hours": 3}, "lag": {"minutes": 15}}])  # fmt: skip
def test_whole_day_metric_set_on_intraday_windows_is_refused_by_validate(
    harness: SourceHarness, fake: FakeGladly, refresh: dict[str, Any]
) -> None:
    """Before: accepted, and every intraday window got the whole day(s) it touched."""
    _pipeline(harness, fake, refresh, metric_set="ContactTimestampsReport")
    path = harness.root / "pipelines" / "test" / "g.yaml"
    result = harness.cli("validate", str(path))
    assert result.exit_code == 2, result.output
    line = next(
        n for n, text in enumerate(path.read_text().splitlines(), 1) if "metric_set:" in text
    )
    assert f"{path}:{line} sources.src.extractor.metric_set" in result.output
    assert "ContactTimestampsReport takes whole days only" in result.output
    assert refresh["refresh_type"] in result.output
    assert _extract(harness).exit_code == 2 and fake.requests() == []


def test_timed_metric_set_on_an_intraday_window_sends_exact_minutes(
    harness: SourceHarness, fake: FakeGladly, creds: None
) -> None:
    """[D 22:00, D+1 02:00) New York: startAtTime/endAtTime in UTC, the end's minute inclusive."""
    fake.reports["AgentSummaryReport"] = csv_text(["Agent", "Handled"], [["a1", "3"]])
    _pipeline(harness, fake, NIGHT, metric_set="AgentSummaryReport")
    result = _extract(harness)
    assert result.exit_code == 0, result.output
    assert json.loads(fake.requests("reports")[0].body) == {
        "metricSet": "AgentSummaryReport",
        "startAtTime": "2026-11-03T03:00Z",
        "endAtTime": "2026-11-03T06:59Z",
    }
    assert _output(harness)[0] == [["Agent", "Handled"], ["a1", "3"]]


def test_timed_metric_set_on_a_daily_window_keeps_dates(
    harness: SourceHarness, fake: FakeGladly, creds: None
) -> None:
    fake.reports["ContactExportReportV3"] = csv_text(["Contact ID"], [["c1"]])
    _pipeline(harness, fake, metric_set="ContactExportReportV3")
    assert _extract(harness).exit_code == 0
    body = json.loads(fake.requests("reports")[0].body)
    assert (body["startAt"], body["endAt"], "startAtTime" in body) == (
        "2026-11-02", "2026-11-02", False)  # fmt: skip


def test_fake_refuses_times_for_a_whole_day_metric_set(fake: FakeGladly) -> None:
    answer = httpx.post(
        f"{fake.url}/api/v1/reports",
        auth=(USER, TOKEN),
        json={"metricSet": "ContactTimestampsReport", "startAtTime": "2026-11-03T03:00Z",
              "endAtTime": "2026-11-03T06:59Z"},
    )  # fmt: skip
    assert answer.status_code == 400
    assert "not supported for ContactTimestampsReport" in answer.text


def test_report_header_only_is_zero_rows(
    harness: SourceHarness, fake: FakeGladly, creds: None
) -> None:
    fake.reports["ContactTimestampsReport"] = csv_text(CONTACT_HEADER, [])
    _pipeline(harness, fake, metric_set="ContactTimestampsReport")
    assert _extract(harness).exit_code == 0
    rows, manifest = _output(harness)
    assert rows == [CONTACT_HEADER] and manifest["rows"] == 0


@pytest.mark.parametrize(
    ("body", "ctype", "needle"),
    [
        (b"", "text/csv", "empty body"),
        (b"\r\n", "text/csv", "no header"),
        (b'{"status":"queued"}', "application/json", "expected CSV"),
        (b"a,b\n1,2,3\n", "text/csv", "line 2: 3 fields, the header has 2"),
    ],
)
def test_report_malformed_200_fails(
    harness: SourceHarness, fake: FakeGladly, creds: None, body: bytes, ctype: str, needle: str
) -> None:
    fake.fault("reports", Fault(body=body, content_type=ctype))
    _pipeline(harness, fake, metric_set="ContactTimestampsReport")
    _failed(harness, _extract(harness), "/api/v1/reports", needle)


def test_report_400_names_the_api_error(
    harness: SourceHarness, fake: FakeGladly, creds: None
) -> None:
    _pipeline(harness, fake, metric_set="NoSuchReport")
    result = _extract(harness)
    _failed(
        harness,
        result,
        f"POST {fake.url}/api/v1/reports",
        "HTTP 400",
        "NoSuchReport is not a valid metric set",
    )
    assert len(fake.requests("reports")) == 1  # a 400 is not retried


@pytest.mark.parametrize(
    "faults",
    [
        [Fault(status=429)],
        [Fault(status=500), Fault(status=503, content_type="text/html", body=b"<h1>down</h1>")],
        [Fault(drop=True)],
        [Fault(delay=1.0)],
    ],
    ids=["429", "500-503", "dropped", "slow"],
)
def test_transient_faults_recover_with_exact_rows(
    harness: SourceHarness, fake: FakeGladly, creds: None, faults: list[Fault]
) -> None:
    fake.fault("reports", *faults)
    _pipeline(
        harness, fake, metric_set="ContactTimestampsReport", retry={**FAST, "timeout_seconds": 0.4}
    )
    result = _extract(harness)
    assert result.exit_code == 0, result.output
    assert len(fake.requests("reports")) == len(faults) + 1
    rows, manifest = _output(harness)
    assert rows == [CONTACT_HEADER, *CONTACT_ROWS] and manifest["rows"] == 3
    seen = fake.requests("reports")
    if faults[0].status == 429:  # no Retry-After: a short jittered backoff
        assert seen[1].at - seen[0].at < 0.5


def test_429_retry_after_is_honoured(harness: SourceHarness, fake: FakeGladly, creds: None) -> None:
    fake.fault("reports", Fault(status=429, headers={"Retry-After": "1"}))
    _pipeline(harness, fake, metric_set="ContactTimestampsReport", retry={**FAST, "max_backoff": 5})
    assert _extract(harness).exit_code == 0
    first, second = fake.requests("reports")
    assert second.at - first.at >= 0.9


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        (Fault(status=503), "HTTP 503"),
        (Fault(delay=0.8), "timed out"),
        (Fault(drop=True), "connection failed"),
    ],
    ids=["503", "slow", "dropped"],
)
def test_persistent_fault_fails_without_output(
    harness: SourceHarness, fake: FakeGladly, creds: None, fault: Fault, needle: str
) -> None:
    fake.fault("reports", *[fault] * 3)
    _pipeline(harness, fake, metric_set="ContactTimestampsReport",
              retry={**FAST, "max_attempts": 3, "timeout_seconds": 0.3})  # fmt: skip
    _failed(harness, _extract(harness), needle, "gave up after 3 attempts", "/api/v1/reports")


def test_401_fails_at_once_and_never_shows_the_token(
    harness: SourceHarness, fake: FakeGladly, creds: None
) -> None:
    fake.token = "the-new-token"  # ours was revoked; the server echoes what it got
    _pipeline(harness, fake, metric_set="ContactTimestampsReport")
    result = _extract(harness)
    _failed(harness, result, "HTTP 401", "GLADLY_API_TOKEN", "is invalid or expired")
    assert base64.b64encode(f"{USER}:{TOKEN}".encode()).decode() not in result.output
    assert len(fake.requests("reports")) == 1


def test_missing_credential_is_a_config_error(
    harness: SourceHarness, fake: FakeGladly, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLADLY_API_USER", USER)
    monkeypatch.delenv("GLADLY_API_TOKEN", raising=False)
    _pipeline(harness, fake, metric_set="ContactTimestampsReport")
    result = _extract(harness)
    assert result.exit_code == 2, result.output
    assert "GLADLY_API_TOKEN is not set" in result.output
    assert fake.requests() == [] and harness.ingest_files() == []


def test_secret_references_name_other_variables(
    harness: SourceHarness, fake: FakeGladly, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("GLADLY_API_USER", "GLADLY_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WBP_GLADLY_USER", USER)
    monkeypatch.setenv("WBP_GLADLY_TOKEN", TOKEN)
    _pipeline(
        harness,
        fake,
        metric_set="ContactTimestampsReport",
        user="${WBP_GLADLY_USER}",
        token="${WBP_GLADLY_TOKEN}",
    )
    assert _extract(harness).exit_code == 0
    assert _output(harness)[1]["rows"] == 3


def test_plan_shows_no_secret(harness: SourceHarness, fake: FakeGladly, creds: None) -> None:
    _pipeline(harness, fake, metric_set="ContactTimestampsReport")
    result = harness.cli("plan", "test/g", "--date", "2026-11-03", "--format", "json")
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output and USER not in result.output
    assert "${GLADLY_API_TOKEN}" in result.output and '"startAt": "2026-11-02"' in result.output
    assert fake.requests() == []


@pytest.mark.parametrize(
    ("extra", "url"),
    [({}, "https://us-1.gladly.com"), ({"org": "acme"}, "https://acme.gladly.com"),
     ({"base_url": "https://acme.gladly.qa/api/v1/"}, "https://acme.gladly.qa")],
)  # fmt: skip
def test_base_url_default_org_and_explicit(
    harness: SourceHarness, extra: dict[str, str], url: str
) -> None:
    harness.pipeline(
        "g", {"source_type": "gladly_api", "extractor": {"kind": "work_session_events", **extra}}
    )
    result = harness.cli("plan", "test/g", "--date", "2026-11-03", "--format", "json")
    assert result.exit_code == 0, result.output
    assert (
        json.loads(result.output)["sources"][0]["request"]["url"]
        == f"{url}/api/v1/reports/work-session-events"
    )


def test_contract_pipeline_validates_and_plans_without_credentials(
    in_repo: Path, xoelt_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("GLADLY_API_USER", "GLADLY_API_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    files = [
        "pipelines/warbyparker/gladly_daily.yaml",
        "pipelines/warbyparker/gladly_work_sessions_daily.yaml",
    ]
    result = runner.invoke(cli, ["validate", *files])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        cli, ["plan", "warbyparker/gladly_daily", "--date", "2026-11-03", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    request = json.loads(result.output)["sources"][0]["request"]
    assert request["url"] == "https://us-1.gladly.com/api/v1/reports"
    assert request["body"] == {"metricSet": "ContactTimestampsReport", "startAt": "2026-11-02",
                               "endAt": "2026-11-02", "timezone": "America/New_York"}  # fmt: skip


@pytest.mark.parametrize(
    ("extractor", "needle"),
    [
        ({}, "needs metric_set"),
        (
            {"kind": "work_session_events", "metric_set": "X"},
            "metric_set applies only to kind report",
        ),
        ({"kind": "conversation_export", "export_file": "../etc.jsonl"}, "export_file"),
        ({"metric_set": "X", "token": "plain-text-token"}, "${VAR} references"),
        (
            {"metric_set": "X", "org": "acme", "base_url": "https://x.gladly.qa"},
            "either org or base_url",
        ),
        ({"metric_set": "X", "metricset": "Y"}, "metricset"),
    ],
)
def test_bad_config_is_exit_2(
    harness: SourceHarness, extractor: dict[str, Any], needle: str
) -> None:
    harness.pipeline("g", {"source_type": "gladly_api", "extractor": extractor})
    result = harness.cli("validate", str(harness.root / "pipelines" / "test" / "g.yaml"))
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "plain-text-token" not in result.output


# -- work-session events --------------------------------------------------------------------


def _session(i: int, created: str, ended: str) -> dict[str, str]:
    return {"id": f"ws{i}", "contact_session_id": f"cs{i}", "contact_session_created_at": created,
            "agent_id": "a1", "contact_session_ended_at": ended, "status": "ENDED" if ended else "ACTIVE"}  # fmt: skip


def test_work_sessions_window_is_exact_on_a_dst_day(
    harness: SourceHarness, fake: FakeGladly, creds: None
) -> None:
    """25-hour day, sent at minute precision (before: milliseconds, which Gladly does not
    document); the fake returns a minute past the end, and the source keeps [start, end)."""
    fake.sessions = [
        _session(0, "2026-10-31T23:00:00.000-04:00", "2026-10-31T23:59:59.999-04:00"),  # day before
        _session(1, "2026-10-31T23:50:00.000-04:00", "2026-11-01T00:00:00.000-04:00"),  # at start
        _session(2, "2026-11-01T01:30:00.000-04:00", "2026-11-01T01:40:00.000-05:00"),  # the fold
        _session(3, "2026-11-01T10:00:00.000-05:00", ""),  # still open: by created_at
        _session(4, "2026-11-01T23:00:00.000-05:00", "2026-11-01T23:59:59.999-05:00"),  # last ms
        _session(5, "2026-11-01T23:30:00.000-05:00", "2026-11-02T00:00:00.000-05:00"),  # next day
        _session(6, "2026-11-01T23:30:00.000-05:00", "2026-11-02T05:00:40Z"),  # next day
    ]  # fmt: skip
    _pipeline(harness, fake, kind="work_session_events")
    assert _extract(harness, "2026-11-02").exit_code == 0
    assert json.loads(fake.requests("sessions")[0].body) == {
        "startAtTime": "2026-11-01T04:00Z",
        "endAtTime": "2026-11-02T05:00Z",
    }
    rows, manifest = _output(harness)
    assert rows[0] == WS_COLUMNS
    assert [r[0] for r in rows[1:]] == ["ws1", "ws2", "ws3", "ws4"] and manifest["rows"] == 4
    assert manifest["details"]["outside_window"] == 2  # ws5, ws6: the next window's


def test_work_sessions_on_a_window_off_whole_minutes_ask_a_covering_range(
    harness: SourceHarness, fake: FakeGladly, creds: None
) -> None:
    """[22:00:30, 02:00:30): sent as 22:00..02:01 (rounded outwards), rows kept exactly."""
    fake.sessions = [
        _session(1, "2026-11-02T22:00:00.000-05:00", "2026-11-02T22:00:10.000-05:00"),  # before
        _session(2, "2026-11-02T22:00:00.000-05:00", "2026-11-02T22:00:30.000-05:00"),  # start
        _session(3, "2026-11-02T23:00:00.000-05:00", "2026-11-03T02:00:29.999-05:00"),  # in
        _session(4, "2026-11-03T01:00:00.000-05:00", "2026-11-03T02:00:30.000-05:00"),  # end
    ]  # fmt: skip
    refresh = {**NIGHT, "start_time": "22:00:30", "end_time": "02:00:30"}
    _pipeline(harness, fake, refresh, kind="work_session_events")
    assert _extract(harness).exit_code == 0
    assert json.loads(fake.requests("sessions")[0].body) == {
        "startAtTime": "2026-11-03T03:00Z",
        "endAtTime": "2026-11-03T07:01Z",
    }
    rows, manifest = _output(harness)
    assert [r[0] for r in rows[1:]] == ["ws2", "ws3"]
    assert manifest["details"]["outside_window"] == 2


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"id,status\nws1,ENDED\n", "has no contact_session_ended_at or contact_session_created_at"),
        (csv_text(WS_COLUMNS, [["ws1", "cs1", "yesterday", "a1", "", "ACTIVE"]]).encode(),
         "line 2: 'yesterday' is not a timestamp"),
    ],
)  # fmt: skip
def test_work_sessions_that_cannot_be_placed_fail(
    harness: SourceHarness, fake: FakeGladly, creds: None, body: bytes, needle: str
) -> None:
    fake.fault("sessions", Fault(body=body, content_type="text/csv"))
    _pipeline(harness, fake, kind="work_session_events")
    _failed(harness, _extract(harness), "/api/v1/reports/work-session-events", needle)


def test_work_sessions_429_then_rows(harness: SourceHarness, fake: FakeGladly, creds: None) -> None:
    fake.sessions = [_session(1, "2026-11-02T10:00:00.000-05:00", "2026-11-02T10:30:00.000-05:00")]
    fake.fault("sessions", Fault(status=429, headers={"Retry-After": "0"}), Fault(status=502))
    _pipeline(harness, fake, kind="work_session_events")
    assert _extract(harness).exit_code == 0
    assert _output(harness)[1]["rows"] == 1 and len(fake.requests("sessions")) == 3


# -- conversation export --------------------------------------------------------------------


def _recent_run_date() -> tuple[str, date]:
    """A run date whose window is inside Gladly's 14-day export horizon (and already over)."""
    run = datetime.now(NY).date() - timedelta(days=2)
    return run.isoformat(), run - timedelta(days=1)


def _job(job_id: str, day: date, *, status: str = "COMPLETED", late: int = 3) -> dict[str, Any]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    return {
        "id": job_id,
        "scheduleId": "sched-1",
        "status": status,
        "updatedAt": (end + timedelta(hours=late)).isoformat().replace("+00:00", ".07272933Z"),
        "parameters": {
            "type": "CONVERSATIONS",
            "startAt": start.isoformat(),
            "endAt": end.isoformat(),
        },
        "files": ["agents.jsonl", "conversation_items.jsonl", "customers.jsonl", "topics.jsonl"],
    }


def _ndjson(*lines: dict[str, Any]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def _item(i: int, at: datetime, **extra: Any) -> dict[str, Any]:
    base = {"id": f"it{i}", "conversationId": "conv-1", "customerId": "cust-1",
            "timestamp": at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "initiator": {"id": "agent-1", "type": "AGENT"}}  # fmt: skip
    return {**base, **extra}


@pytest.fixture
def export(fake: FakeGladly) -> tuple[str, datetime]:
    """Daily UTC jobs around a recent local day W; returns (run date, W local midnight)."""
    run, day = _recent_run_date()
    w0 = datetime(day.year, day.month, day.day, tzinfo=NY)
    w1 = datetime.combine(day + timedelta(days=1), w0.time(), tzinfo=NY)
    fake.jobs = [
        _job("j-prev", day - timedelta(days=1)),
        _job("j-day-old", day, late=1),  # superseded by the re-run below
        _job("j-day", day, late=5),
        _job("j-next", day + timedelta(days=1)),
        _job("j-failed", day, status="FAILED"),
    ]
    fake.files[("j-day-old", "conversation_items.jsonl")] = _ndjson(
        _item(99, w0 + timedelta(hours=1))
    )
    fake.files[("j-day", "conversation_items.jsonl")] = _ndjson(
        _item(0, w0 - timedelta(minutes=1)),  # UTC day, but before the local window
        _item(1, w0, content={"type": "CHAT_MESSAGE", "sessionId": "s1", "content": 'Hi, "there"\nsecond line'}),
        _item(2, w0 + timedelta(hours=3), responder={"type": "CUSTOMER", "id": "cust-1"},
              content={"type": "EMAIL", "to": ["a@x.com", "b@x.com"], "subject": "Ré: order"}),
        _item(3, w0 + timedelta(hours=5), content={"type": "PHONE_CALL", "recordingDuration": 11,
                                                    "answered": True, "meta": {}, "note": None}),
    )  # fmt: skip
    fake.files[("j-next", "conversation_items.jsonl")] = _ndjson(
        _item(
            4,
            w1 - timedelta(milliseconds=1),
            content={"type": "TOPIC_CHANGE", "addedTopicIds": ["t1"]},
        ),
        _item(5, w1),  # the next local day
    )
    return run, w0


EXPORT_HEADER = [
    "id", "conversationId", "customerId", "timestamp", "initiator.id", "initiator.type",
    "content.type", "content.sessionId", "content.content", "responder.type", "responder.id",
    "content.to", "content.subject", "content.recordingDuration", "content.answered",
    "content.meta", "content.note", "content.addedTopicIds",
]  # fmt: skip


def test_export_flattens_the_jobs_covering_the_local_day(
    harness: SourceHarness, fake: FakeGladly, creds: None, export: tuple[str, datetime]
) -> None:
    run, w0 = export
    _pipeline(harness, fake, kind="conversation_export")
    result = _extract(harness, run)
    assert result.exit_code == 0, result.output
    (listing,) = fake.requests("jobs")
    assert listing.query["status"] == ["COMPLETED"]
    assert datetime.fromisoformat(listing.query["startAt"][0]) == w0
    assert [s.path.split("/")[5] for s in fake.requests("file")] == ["j-day", "j-next"]
    rows, manifest = _output(harness)
    assert rows[0] == EXPORT_HEADER
    got = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert [g["id"] for g in got] == ["it1", "it2", "it3", "it4"]
    assert got[0]["content.content"] == 'Hi, "there"\nsecond line' and got[0]["responder.id"] == ""
    assert (
        got[1]["content.to"] == '["a@x.com","b@x.com"]' and got[1]["content.subject"] == "Ré: order"
    )
    assert (got[2]["content.recordingDuration"], got[2]["content.answered"]) == ("11", "true")
    assert (got[2]["content.meta"], got[2]["content.note"]) == ("{}", "")
    assert got[3]["content.addedTopicIds"] == '["t1"]'
    # An absent key and a JSON null are missing values (bare empty: NULL in bronze), never
    # the empty string (read with the CSV convention's reader, which tells them apart).
    text = io.StringIO(data_text(harness.ingest_files()), newline="")
    exact = [dict(zip(EXPORT_HEADER, r, strict=True)) for r in list(CsvReader(text))[1:]]
    assert exact[0]["responder.id"] is None and exact[2]["content.note"] is None
    assert manifest["rows"] == 4
    jobs = manifest["details"]["jobs"]
    assert [(j["id"], j["rows"], j["outside"]) for j in jobs] == [("j-day", 3, 1), ("j-next", 1, 1)]


def test_export_file_cut_mid_body_is_fetched_again(
    harness: SourceHarness, fake: FakeGladly, creds: None, export: tuple[str, datetime]
) -> None:
    fake.fault("file", Fault(cut=True))
    fake.fault("jobs", Fault(status=503))
    _pipeline(harness, fake, kind="conversation_export")
    assert _extract(harness, export[0]).exit_code == 0
    rows, manifest = _output(harness)
    assert [r[0] for r in rows[1:]] == ["it1", "it2", "it3", "it4"] and manifest["rows"] == 4
    assert len(fake.requests("file")) == 3


def test_export_without_covering_job_fails(
    harness: SourceHarness, fake: FakeGladly, creds: None, export: tuple[str, datetime]
) -> None:
    fake.jobs = [j for j in fake.jobs if j["id"] != "j-next"]
    _pipeline(harness, fake, kind="conversation_export")
    _failed(harness, _extract(harness, export[0]), "no COMPLETED conversation export job covers")
    assert fake.requests("file") == []


def test_export_window_older_than_14_days_fails_clearly(
    harness: SourceHarness, fake: FakeGladly, creds: None
) -> None:
    """The listing's startAt is raised to Gladly's 14-day horizon (else a 400)."""
    _pipeline(harness, fake, kind="conversation_export")
    old = (datetime.now(NY).date() - timedelta(days=40)).isoformat()
    _failed(
        harness,
        _extract(harness, old),
        "no COMPLETED conversation export job covers",
        "kept 14 days",
    )


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        (Fault(body=b"<html>maintenance</html>", content_type="text/html"), "response is not JSON"),
        (Fault(body=b'{"jobs": []}'), "expected a JSON array of export jobs"),
        (Fault(body=b'[{"id": "x", "status": "COMPLETED"}]'), "malformed export job"),
    ],
)
def test_export_malformed_listing_fails(
    harness: SourceHarness,
    fake: FakeGladly,
    creds: None,
    export: tuple[str, datetime],
    fault: Fault,
    needle: str,
) -> None:
    fake.fault("jobs", fault)
    _pipeline(harness, fake, kind="conversation_export")
    _failed(harness, _extract(harness, export[0]), needle)


def test_export_bad_ndjson_line_fails(
    harness: SourceHarness, fake: FakeGladly, creds: None, export: tuple[str, datetime]
) -> None:
    fake.files[("j-next", "conversation_items.jsonl")] += b'{"id": "broken", \n'
    _pipeline(harness, fake, kind="conversation_export")
    _failed(
        harness, _extract(harness, export[0]), "export job j-next conversation_items.jsonl line 3"
    )


def test_export_other_file_without_time_field(
    harness: SourceHarness, fake: FakeGladly, creds: None, export: tuple[str, datetime]
) -> None:
    """agents.jsonl has no timestamp: every line of each chosen job is kept."""
    for job in ("j-day", "j-next"):
        fake.files[(job, "agents.jsonl")] = _ndjson(
            {"id": "a1", "name": "Amy", "emailAddress": "amy@x.com"}
        )
    _pipeline(harness, fake, kind="conversation_export", export_file="agents.jsonl")
    assert _extract(harness, export[0]).exit_code == 0
    rows, _ = _output(harness)
    assert rows == [
        ["id", "name", "emailAddress"],
        ["a1", "Amy", "amy@x.com"],
        ["a1", "Amy", "amy@x.com"],
    ]


def test_export_item_of_the_window_outside_its_segment_fails_and_is_in_the_ledger(
    harness: SourceHarness,
    fake: FakeGladly,
    creds: None,
    export: tuple[str, datetime],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """j-next holds an item timed in j-day's segment that j-day does not have: before, it was
    dropped with a count in the manifest; now the run fails and the ledger shows why."""
    monkeypatch.setenv("XOELT_SQL", str(Path(__file__).resolve().parents[3] / "sql"))
    run, w0 = export
    fake.files[("j-next", "conversation_items.jsonl")] += _ndjson(
        _item(2, w0 + timedelta(hours=3)),  # j-day has it2 too: supplied elsewhere
        _item(7, w0 + timedelta(hours=2)),  # nobody supplies it7 in its segment
    )
    _pipeline(harness, fake, kind="conversation_export")
    result = harness.cli("run", "test/g", "--date", run)
    _failed(harness, result, "extract failed source=src window=",
            "1 conversation_items.jsonl line(s) timed inside the window but outside their "
            "job's segment", "j-next: 1", "it7 at", "more than max_outside_segment (0)")  # fmt: skip
    status = harness.cli("status", "test/g", "--format", "json")
    [extract] = [r for r in json.loads(status.output)["runs"] if r["stage"] == "extract"]
    assert extract["status"] == "failed"
    kinds = {f["kind"]: f for f in extract["findings"]}
    assert kinds["export_outside_segment"]["count"] == 1
    assert kinds["export_outside_segment"]["severity"] == "error"
    assert kinds["export_supplied_elsewhere"]["count"] == 1
    assert kinds["export_outside_window"]["count"] == 2


def test_export_items_outside_the_segment_within_the_threshold_are_counted(
    harness: SourceHarness, fake: FakeGladly, creds: None, export: tuple[str, datetime]
) -> None:
    run, w0 = export
    fake.files[("j-next", "conversation_items.jsonl")] += _ndjson(
        _item(2, w0 + timedelta(hours=3)), _item(7, w0 + timedelta(hours=2))
    )
    _pipeline(harness, fake, kind="conversation_export", max_outside_segment=1)
    result = _extract(harness, run)
    assert result.exit_code == 0, result.output
    rows, manifest = _output(harness)
    assert [r[0] for r in rows[1:]] == ["it1", "it2", "it3", "it4"]
    jobs = {j["id"]: j for j in manifest["details"]["jobs"]}
    assert (jobs["j-next"]["supplied_elsewhere"], jobs["j-next"]["outside_segment"]) == (1, 1)
    [lost] = [f for f in manifest["findings"] if f["kind"] == "export_outside_segment"]
    assert lost["count"] == 1 and lost["data"]["max_outside_segment"] == 1


def test_max_outside_segment_is_only_for_the_export(harness: SourceHarness) -> None:
    harness.pipeline("g", {"source_type": "gladly_api",
                           "extractor": {"metric_set": "X", "max_outside_segment": 3}})  # fmt: skip
    result = harness.cli("validate", str(harness.root / "pipelines" / "test" / "g.yaml"))
    assert result.exit_code == 2
    assert "max_outside_segment applies only to kind conversation_export" in result.output
