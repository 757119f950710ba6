"""``gmail_attachments`` against a fake Gmail API + OAuth token endpoint on 127.0.0.1.

The service-account key is generated per test; the fake token endpoint verifies the JWT
assertion's signature with its public half, ``aud``, ``scope`` and ``sub`` before it issues
a short-lived token, and the fake Gmail accepts only that token (``tests.fakes.gmail``).
The run date 2026-11-02 gives the window 2026-11-01 in America/New_York: the 25-hour day
DST ends, ``[2026-11-01T00:00-04:00, 2026-11-02T00:00-05:00)`` = epochs
``[1793505600, 1793595600)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeApis, Fault
from tests.fakes.gmail import FakeGmail, attachment, inline, multipart, rate_limit_403, text
from tests.fakes.google import MALFORMED, ServiceAccount, b64url, forbidden_403
from tests.integration.sources.conftest import FAST_RETRY, SourceHarness, ingest_csv

START, END = 1793505600, 1793595600  # computed by hand: 04:00Z Nov 1, 05:00Z Nov 2
QUERY = "from:reports@vendor.com has:attachment"
EXPECTED_Q = f"({QUERY}) after:{START} before:{END}"
SUBJECT = "vendor-reports@warbyparker.com"
READONLY = "https://www.googleapis.com/auth/gmail.readonly"
WEIRD = "Weird/../name\x07.CSV"
WEIRD_SAFE = "Weird_._name.CSV"
HEADER = ["store_id", "sales", "date", "returns", "_gmail_message_id", "_attachment_filename"]
EXPECTED = [
    ["001", "100.50", "2026-11-01", "", "m-a", "report-a.csv"],
    ["002", "200", "2026-11-01", "", "m-a", "report-a.csv"],
    ["003", "300", "", "5", "m-b", "inline.csv"],
    ["006", "600", "2026-11-01", "", "m-h", "daily.csv"],
    ["004", "1,234.00", "2026-11-01", "", "m-d", WEIRD_SAFE],
    ["005", "multi\nline ünïcode", "2026-11-01", "", "m-d", WEIRD_SAFE],
    ["007", "700", "", "", "m-e", "report-e.csv"],
]


@pytest.fixture
def google(fake_apis: FakeApis, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGmail]:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    with fake_apis.use(FakeGmail) as api:
        yield api


@pytest.fixture
def sa(google: FakeGmail, tmp_path: Path) -> ServiceAccount:
    google.expected_subject = SUBJECT
    return google.service_account(tmp_path)


def fill_mailbox(fake: FakeGmail) -> None:
    """Seven messages the window query returns (three pages at max_results 2 and one more)."""
    fake.add_message(
        "m-old", START - 3600, multipart("mixed", text("hi"), attachment("old.csv", b"x\n1\n"))
    )
    fake.add_message(
        "m-a",
        START,  # the first instant of the window belongs to it
        multipart(
            "mixed",
            multipart("alternative", text("Report attached"), text("<p>Report</p>", "text/html")),
            attachment(
                "report-a.csv",
                b"store_id,sales,date\r\n001,100.50,2026-11-01\r\n002,200,2026-11-01\r\n",
            ),
        ),
    )
    fake.add_message(
        "m-b",
        START + 5400,  # 01:30 EDT
        multipart(
            "mixed",
            text("see inline"),
            multipart(
                "related",
                inline("inline.csv", b"store_id,sales,returns\n003,300,5\n"),
                attachment("logo.png", b"\x89PNG\r\n\x1a\n....", "image/png"),
            ),
        ),
    )
    fake.add_message(
        "m-c", START + 9000, multipart("alternative", text("no files"), text("<p>none</p>"))
    )  # 01:30 EST
    fake.add_message(
        "m-h",
        START + 32400,
        multipart(
            "mixed",
            text("x"),
            attachment("daily.csv", b"store_id,sales,date\n006,600,2026-11-01\n"),
        ),
    )
    weird = '\ufeffstore_id,sales,date\n"004","1,234.00","2026-11-01"\n005,"multi\nline ünïcode",2026-11-01\n\n'
    fake.add_message(
        "m-d",
        START + 46800,
        multipart(
            "mixed",
            text("two files"),
            attachment(WEIRD, weird.encode()),
            attachment("summary.xlsx", b"PK\x03\x04....", "application/vnd.ms-excel"),
        ),
    )
    fake.add_message(
        "m-e", END - 1, multipart("mixed", attachment("report-e.csv", b"sales,store_id\n700,007\n"))
    )
    # Exactly at the window's end: the fake's inclusive before: lists it, the source must not take it.
    fake.add_message(
        "m-f", END, multipart("mixed", attachment("report-f.csv", b"store_id,sales\n999,999\n"))
    )
    fake.add_message(
        "m-g",
        END + 60,
        multipart("mixed", attachment("report-g.csv", b"store_id,sales\n998,998\n")),
    )


def source(fake: FakeGmail, sa: ServiceAccount | None, **extra: Any) -> dict[str, Any]:
    extractor: dict[str, Any] = {
        "query": QUERY,
        "base_url": fake.url,
        "subject": SUBJECT,
        "max_results": 2,
        "retry": FAST_RETRY,
    }
    if sa is not None:
        extractor["credentials_file"] = str(sa.path)
    extractor.update(extra)
    return {"source_type": "gmail_attachments", "extractor": extractor}


def run(
    harness: SourceHarness,
    fake: FakeGmail,
    sa: ServiceAccount | None,
    env: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    harness.pipeline("mail", source(fake, sa, **extra))
    return harness.cli("extract", "test/mail", "--date", "2026-11-02", env=env)


def assert_expected(harness: SourceHarness, result: Any) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    rows, manifest = ingest_csv(harness.ingest_files())
    assert rows[0] == HEADER
    assert rows[1:] == EXPECTED
    assert manifest["rows"] == len(EXPECTED)
    return manifest


def assert_failed(harness: SourceHarness, result: Any, *needles: str) -> None:
    harness.assert_failed(result, *needles)


def test_window_pagination_nested_parts_and_real_token_flow(
    harness: SourceHarness, google: FakeGmail, sa: ServiceAccount
) -> None:
    fill_mailbox(google)
    manifest = assert_expected(harness, run(harness, google, sa))

    lists = google.api_requests("/messages")
    lists = [r for r in lists if r.path == "/gmail/v1/users/me/messages"]
    assert {r.query["q"][0] for r in lists} == {EXPECTED_Q}
    assert [r.query.get("pageToken", [None])[0] for r in lists] == [
        None,
        "page-2",
        "page-4",
        "page-6",
    ]
    assert all(r.query["maxResults"] == ["2"] for r in lists)
    gets = [r for r in google.api_requests("/messages/") if "/attachments/" not in r.path]
    assert sorted(r.path.rsplit("/", 1)[1] for r in gets) == [
        "m-a",
        "m-b",
        "m-c",
        "m-d",
        "m-e",
        "m-f",
        "m-h",
    ]
    # attachments.get only for matching parts that are not inline: a, h, d (weird), e
    assert len(google.api_requests("/attachments/")) == 4

    [grant] = google.grants
    assert grant["status"] == 200
    claims = grant["claims"]
    assert claims["iss"] == sa.email
    assert claims["scope"] == READONLY
    assert claims["sub"] == SUBJECT
    assert claims["aud"] == "https://oauth2.googleapis.com/token"
    assert {r.token for r in google.api_requests()} == {grant["token"]}

    details = manifest["details"]
    assert details["query"] == EXPECTED_Q
    assert details["messages_listed"] == 7
    assert details["messages_outside_window"] == 1
    assert [(a["message_id"], a["filename"], a["rows"]) for a in details["attachments"]] == [
        ("m-a", "report-a.csv", 2),
        ("m-b", "inline.csv", 1),
        ("m-h", "daily.csv", 1),
        ("m-d", WEIRD_SAFE, 2),
        ("m-e", "report-e.csv", 1),
    ]
    assert details["attachments"][0]["internal_date"] == "2026-11-01T04:00:00+00:00"
    assert {(s["message_id"], s["filename"]) for s in details["skipped_attachments"]} == {
        ("m-b", "logo.png"),
        ("m-d", "summary.xlsx"),
    }
    assert all("filename_pattern" in s["reason"] for s in details["skipped_attachments"])


def test_credentials_from_env_and_no_delegation(
    harness: SourceHarness, google: FakeGmail, tmp_path: Path
) -> None:
    """No credentials_file: GOOGLE_APPLICATION_CREDENTIALS; no subject: no ``sub`` claim."""
    account = google.service_account(tmp_path)
    fill_mailbox(google)
    result = run(
        harness,
        google,
        None,
        env={"GOOGLE_APPLICATION_CREDENTIALS": str(account.path)},
        subject=None,
    )
    assert_expected(harness, result)
    assert "sub" not in google.grants[0]["claims"]


@pytest.mark.parametrize(
    ("route", "fault"),
    [
        ("gmail.list", Fault(status=429, headers={"Retry-After": "0"})),
        ("gmail.attachment", Fault(status=429)),
        ("gmail.message", Fault(status=500, path="/messages/m-b")),
        ("gmail.list", Fault(status=503, times=2)),
        (
            "gmail.message",
            Fault(status=403, body=rate_limit_403("userRateLimitExceeded"), path="/messages/m-d"),
        ),
        ("gmail.attachment", Fault(status=403, body=rate_limit_403("rateLimitExceeded"))),
        ("gmail.attachment", Fault(drop=True)),
        ("gmail.list", Fault(delay=2.5)),
        ("token", Fault(status=503)),
        ("token", Fault(status=429)),
        ("token", Fault(drop=True)),
    ],
    ids=[
        "429-retry-after",
        "429-no-retry-after",
        "500",
        "503-twice",
        "403-userRateLimitExceeded",
        "403-rateLimitExceeded",
        "dropped-connection",
        "slow-past-timeout",
        "token-503",
        "token-429",
        "token-dropped",
    ],
)
def test_transient_faults_recover_with_exact_rows(
    harness: SourceHarness,
    google: FakeGmail,
    sa: ServiceAccount,
    route: str,
    fault: Fault,
) -> None:
    fill_mailbox(google)
    google.fault(route, fault)
    retry = {**FAST_RETRY, "timeout_seconds": 0.5} if fault.delay else FAST_RETRY
    assert_expected(harness, run(harness, google, sa, retry=retry))
    assert google.pending_faults() == []


def test_retry_after_is_honoured(
    harness: SourceHarness, google: FakeGmail, sa: ServiceAccount
) -> None:
    fill_mailbox(google)
    google.fault("gmail.list", Fault(status=429, headers={"Retry-After": "1"}))
    assert_expected(harness, run(harness, google, sa, retry={**FAST_RETRY, "max_backoff": 5}))
    first, second = [r for r in google.requests() if r.path == "/gmail/v1/users/me/messages"][:2]
    assert second.at - first.at >= 0.95


def test_expired_access_token_is_refreshed_once(
    harness: SourceHarness, google: FakeGmail, sa: ServiceAccount
) -> None:
    fill_mailbox(google)
    google.expire_next = True
    assert_expected(harness, run(harness, google, sa))
    assert [g["status"] for g in google.grants] == [200, 200]
    first, again = google.api_requests()[:2]
    assert first.path == again.path == "/gmail/v1/users/me/messages"
    assert (first.token, again.token) == (google.grants[0]["token"], google.grants[1]["token"])


def test_token_refused_after_refresh_fails(
    harness: SourceHarness, google: FakeGmail, sa: ServiceAccount
) -> None:
    fill_mailbox(google)
    google.reject_all_tokens = True
    result = run(harness, google, sa)
    assert_failed(harness, result, "HTTP 401", "/gmail/v1/users/me/messages", sa.email)
    assert len(google.grants) == 2  # one refresh, not a loop
    assert len(google.api_requests()) == 2


def test_revoked_key_fails_without_key_material(
    harness: SourceHarness, google: FakeGmail, sa: ServiceAccount
) -> None:
    fill_mailbox(google)
    google.revoked = True
    result = run(harness, google, sa)
    assert_failed(harness, result, str(sa.path), "invalid_grant", "Invalid JWT Signature")
    pem_lines = [line for line in sa.private_pem.splitlines() if "PRIVATE KEY" not in line]
    for secret in [sa.key_id, "PRIVATE KEY", *pem_lines]:
        assert secret not in result.output
    assert google.api_requests() == []


def test_delegation_refused_fails(
    harness: SourceHarness, google: FakeGmail, sa: ServiceAccount
) -> None:
    google.expected_subject = "someone-else@warbyparker.com"
    result = run(harness, google, sa)
    assert_failed(harness, result, "unauthorized_client", str(sa.path))


@pytest.mark.parametrize(
    ("route", "fault", "needle"),
    [
        ("gmail.message", replace(MALFORMED, path="/messages/m-b"), "not JSON"),
        ("gmail.list", Fault(status=503, times=10), "gave up after 4 attempts"),
        ("gmail.attachment", Fault(status=403, body=forbidden_403()), "HTTP 403"),
        ("token", Fault(status=500, times=10), "gave up after 4 attempts"),
    ],
    ids=["malformed-json", "503-forever", "403-permission", "token-500-forever"],
)
def test_terminal_faults_fail_cleanly(
    harness: SourceHarness,
    google: FakeGmail,
    sa: ServiceAccount,
    route: str,
    fault: Fault,
    needle: str,
) -> None:
    fill_mailbox(google)
    google.fault(route, fault)
    assert_failed(harness, run(harness, google, sa), needle)
    if fault.status == 403:
        assert len(google.api_requests("/attachments/")) == 1  # a permission 403 is not retried


def test_scope_is_checked_by_the_api(
    harness: SourceHarness, google: FakeGmail, sa: ServiceAccount
) -> None:
    result = run(harness, google, sa, scope="https://www.googleapis.com/auth/drive.readonly")
    assert_failed(harness, result, "HTTP 403", "insufficient authentication scopes")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"size": 4, "data": "!!not*base64"}, "not valid base64url"),
        ({"size": 99, "data": b64url(b"a\n1\n")}, "4 bytes, Gmail says 99"),
        ({"size": 4}, "has no data"),
    ],
    ids=["bad-base64", "truncated", "no-data"],
)
def test_corrupt_attachment_fails(
    harness: SourceHarness,
    google: FakeGmail,
    sa: ServiceAccount,
    body: dict[str, Any],
    needle: str,
) -> None:
    google.add_message("m-x", START + 60, multipart("mixed", attachment("a.csv", b"a\n1\n")))
    google.fault("gmail.attachment", Fault(status=200, body=body))
    assert_failed(harness, run(harness, google, sa), "'a.csv'", needle)


def test_xlsx_matched_by_a_broad_pattern_is_a_clear_error(
    harness: SourceHarness, google: FakeGmail, sa: ServiceAccount
) -> None:
    google.add_message(
        "m-x", START + 60, multipart("mixed", attachment("r.xlsx", b"PK\x03\x04rest"))
    )
    assert_failed(harness, run(harness, google, sa, filename_pattern="*"), "ZIP/XLSX")


def test_no_attachments_fails_unless_allowed(
    harness: SourceHarness, google: FakeGmail, sa: ServiceAccount
) -> None:
    assert_failed(harness, run(harness, google, sa), "no attachment matching", "allow_empty")
    result = run(harness, google, sa, allow_empty=True, columns=["store_id", "sales"])
    assert result.exit_code == 0, result.output
    rows, manifest = ingest_csv(harness.ingest_files())
    assert rows == [["store_id", "sales", "_gmail_message_id", "_attachment_filename"]]
    assert manifest["rows"] == 0


def test_missing_credentials_is_a_config_error(harness: SourceHarness, google: FakeGmail) -> None:
    result = run(harness, google, None)
    assert result.exit_code == 2, result.output
    assert "GOOGLE_APPLICATION_CREDENTIALS" in result.output
    assert harness.ingest_files() == []
    result = run(
        harness, google, None, env={"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/key.json"}
    )
    assert result.exit_code == 2 and "/nonexistent/key.json" in result.output


def test_query_must_not_carry_dates(
    harness: SourceHarness, google: FakeGmail, sa: ServiceAccount
) -> None:
    result = run(harness, google, sa, query="from:x after:2026/01/01")
    assert result.exit_code == 2, result.output
    assert "query" in result.output


def test_example_pipeline_plans_and_validates_without_credentials(
    in_repo: Path, xoelt_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from xoelt.cli import cli

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    runner = CliRunner()
    path = "pipelines/warbyparker/gmail_vendor_reports_daily.yaml"
    result = runner.invoke(cli, ["validate", path])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        cli,
        [
            "plan",
            "warbyparker/gmail_vendor_reports_daily",
            "--date",
            "2026-11-02",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"after:{START} before:{END}" in result.output
    assert "$GOOGLE_APPLICATION_CREDENTIALS" in result.output
