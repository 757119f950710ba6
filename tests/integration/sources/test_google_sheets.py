"""``google_sheets`` against a fake Sheets API + OAuth token endpoint on 127.0.0.1.

The fake decodes the range path segment and parses it as A1 the way Sheets does: a sheet
name with a space must be single-quoted (else 400 "Unable to parse range"), so a success
on ``'Store Targets'`` proves the quoting and the encoding. It trims trailing empty cells
and rows like the real API, and omits ``values`` for an empty range.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeApis, Fault
from tests.fakes.google import MALFORMED, ServiceAccount, forbidden_403
from tests.fakes.sheets import Cell, FakeSheets
from tests.integration.sources.conftest import FAST_RETRY, SourceHarness, ingest_csv

SHEET_ID = "1wbpStoreTargets_test-0123456789"
READONLY = "https://www.googleapis.com/auth/spreadsheets.readonly"
HEADER = ["store_id", "store name", "month", "target", "notes"]
EXPECTED = [
    ["001", "Soho", "2026-11", "1000", ""],
    ["002", "Williamsburg, BK", "2026-11", "1500", 'new "flagship"'],
    ["003", "", "2026-11", "", ""],
    ["004", "Café ✓", "2026-11", "900", ""],
]


@pytest.fixture
def google(fake_apis: FakeApis, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSheets]:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    with fake_apis.use(FakeSheets) as fake:
        yield fill(fake)


def fill(fake: FakeSheets) -> FakeSheets:
    """The spreadsheet the tests read, one sheet per case."""
    fake.sheets[SHEET_ID] = {
        "Store Targets": [
            HEADER,
            ["001", "Soho", "2026-11", "1000"],  # ragged: notes left out
            ["002", "Williamsburg, BK", "2026-11", "1500", 'new "flagship"'],
            [],  # a blank spacer row
            ["003", "", "2026-11"],
            ["004", "Café ✓", "2026-11", "900", ""],
            [],
            [],
        ],
        "Bob's Targets": [["ignored", "store", "target"], ["x", "001", "5"], ["y", "002"]],
        "Typed": [
            ["store", "target", "active", "ratio"],
            ["001", 1000, True, 0.25],
            ["002", 1500.0, False, 1e-07],
        ],
        "Extra": [["a", "b"], ["1", "2"], ["3", "4", "", "surprise"]],
        "Empty": [],
        "HeaderOnly": [["a", "b"]],
        "Blank Header": [["a", "", "c"], ["1", "2", "3"]],
        "Dupes": [["a", "b", "a"], ["1", "2", "3"]],
        "Sheet1": [["k", "v"], ["x", "1"], ["y", "2"], ["z", "3"]],
        "Money": [
            ["Store", "Revenue ($)", "Share", "Opened", "Active", "Visits", "Note"],
            [
                "001",
                Cell(1234.5, "$1,234.50"),
                Cell(0.25, "25%"),
                Cell(46329, "2026-11-03", date=True),
                True,
                Cell(3.0, "3.00"),
                Cell(7, "007"),
            ],
            [
                "002",
                Cell(-0.1, "($0.10)"),
                Cell(1.0, "100%"),
                Cell(46330, "2026-11-04", date=True),
                False,
                1200,
                "plain",
            ],
            ["003", Cell(1e-07, "$0.00"), "", "", "", Cell(0, ""), ""],
        ],
    }
    return fake


@pytest.fixture
def sa(google: FakeSheets, tmp_path: Path) -> ServiceAccount:
    return google.service_account(tmp_path)


def run(
    harness: SourceHarness,
    fake: FakeSheets,
    credentials: Path | None,
    env: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    extractor: dict[str, Any] = {
        "spreadsheet_id": SHEET_ID,
        "base_url": fake.url,
        "retry": FAST_RETRY,
    }
    if "range" not in extra:
        extractor["sheet"] = "Store Targets"
    if credentials is not None:
        extractor["credentials_file"] = str(credentials)
    extractor.update(extra)
    harness.pipeline("targets", {"source_type": "google_sheets", "extractor": extractor})
    return harness.cli("extract", "test/targets", "--date", "2026-11-03", env=env)


def read(harness: SourceHarness, result: Any) -> tuple[list[list[str]], dict[str, Any]]:
    assert result.exit_code == 0, result.output
    rows, manifest = ingest_csv(harness.ingest_files())
    assert manifest["rows"] == len(rows) - 1
    return rows, manifest


def assert_expected(harness: SourceHarness, result: Any) -> dict[str, Any]:
    rows, manifest = read(harness, result)
    assert rows == [HEADER, *EXPECTED]
    return manifest


def assert_failed(harness: SourceHarness, result: Any, *needles: str) -> None:
    harness.assert_failed(result, *needles)


def test_ragged_rows_and_a_quoted_sheet_name(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    manifest = assert_expected(harness, run(harness, google, sa.path))
    [request] = google.api_requests()
    assert request.raw_path == f"/v4/spreadsheets/{SHEET_ID}/values/%27Store%20Targets%27"
    assert request.query == {"majorDimension": ["ROWS"], "valueRenderOption": ["FORMATTED_VALUE"]}
    [grant] = google.grants
    assert grant["claims"]["scope"] == READONLY and "sub" not in grant["claims"]
    assert request.token == grant["token"]
    details = manifest["details"]
    assert details["blank_rows_skipped"] == 1
    assert details["range_requested"] == "'Store Targets'"
    assert details["range_returned"].startswith("'Store Targets'!A1:")
    assert details["snapshot_at"].endswith("+00:00")


def test_apostrophe_in_name_and_cells_offset(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    rows, _ = read(harness, run(harness, google, sa.path, sheet="Bob's Targets", cells="B:C"))
    assert rows == [["store", "target"], ["001", "5"], ["002", ""]]
    [request] = google.api_requests()
    assert request.raw_path.endswith("/values/%27Bob%27%27s%20Targets%27%21B%3AC")


def test_unformatted_values_are_written_as_text(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    result = run(
        harness,
        google,
        sa.path,
        sheet="Typed",
        value_render_option="UNFORMATTED_VALUE",
        date_time_render_option="FORMATTED_STRING",
    )
    rows, _ = read(harness, result)
    assert rows == [
        ["store", "target", "active", "ratio"],
        ["001", "1000", "TRUE", "0.25"],
        ["002", "1500", "FALSE", "0.0000001"],  # no exponent: every cast reads it
    ]
    [request] = google.api_requests()
    assert request.query["valueRenderOption"] == ["UNFORMATTED_VALUE"]
    assert request.query["dateTimeRenderOption"] == ["FORMATTED_STRING"]


def test_raw_a1_range(harness: SourceHarness, google: FakeSheets, sa: ServiceAccount) -> None:
    rows, _ = read(harness, run(harness, google, sa.path, range="Sheet1!A1:B3"))
    assert rows == [
        ["k", "v"],
        ["x", "1"],
        ["y", "2"],
        ["z", "3"],
    ]  # the fake ignores the end bound
    assert google.api_requests()[0].raw_path.endswith("/values/Sheet1%21A1%3AB3")


def test_unquoted_name_with_space_is_rejected_by_the_api(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    result = run(harness, google, sa.path, range="Store Targets!A:E")
    assert_failed(harness, result, "HTTP 400", "Unable to parse range")


@pytest.mark.parametrize(
    ("sheet", "needle"),
    [
        ("Extra", "row 3 has a value in D3, beyond the header's 2 columns"),
        ("Empty", "is empty, so there is no header row"),
        ("Blank Header", "header cell B1 is empty"),
        ("Dupes", "header cells A1 and C1 are both 'a'"),
    ],
)
def test_shape_errors(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount, sheet: str, needle: str
) -> None:
    assert_failed(harness, run(harness, google, sa.path, sheet=sheet), needle)


def test_header_only_is_zero_rows(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    rows, manifest = read(harness, run(harness, google, sa.path, sheet="HeaderOnly"))
    assert rows == [["a", "b"]] and manifest["rows"] == 0


def test_authorized_user_refresh_token(
    harness: SourceHarness, google: FakeSheets, tmp_path: Path
) -> None:
    user = google.authorized_user(tmp_path)
    result = run(harness, google, None, env={"GOOGLE_APPLICATION_CREDENTIALS": str(user.path)})
    assert_expected(harness, result)
    [grant] = google.grants
    assert grant == {
        "grant_type": "refresh_token",
        "scope": READONLY,
        "status": 200,
        "token": grant["token"],
    }


def test_authorized_user_revoked_fails_without_secrets(
    harness: SourceHarness, google: FakeSheets, tmp_path: Path
) -> None:
    user = google.authorized_user(tmp_path)
    google.revoked = True
    result = run(harness, google, user.path)
    assert_failed(
        harness, result, str(user.path), "invalid_grant: Token has been expired or revoked."
    )
    for secret in (user.refresh_token, user.client_secret):
        assert secret not in result.output
    assert google.api_requests() == []


def test_service_account_revoked_fails_without_key_material(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    google.revoked = True
    result = run(harness, google, sa.path)
    assert_failed(harness, result, str(sa.path), "invalid_grant")
    body = [line for line in sa.private_pem.splitlines() if "PRIVATE KEY" not in line]
    for secret in [sa.key_id, "PRIVATE KEY", *body]:
        assert secret not in result.output


def test_subject_needs_a_service_account(
    harness: SourceHarness, google: FakeSheets, tmp_path: Path
) -> None:
    user = google.authorized_user(tmp_path)
    result = run(harness, google, user.path, subject="someone@warbyparker.com")
    assert result.exit_code == 2, result.output
    assert "domain-wide delegation" in result.output


@pytest.mark.parametrize(
    ("route", "fault"),
    [
        ("sheets.values", Fault(status=429, headers={"Retry-After": "0"})),
        ("sheets.values", Fault(status=429)),
        ("sheets.values", Fault(status=500)),
        ("sheets.values", Fault(status=503, times=2)),
        ("sheets.values", Fault(drop=True)),
        ("sheets.values", Fault(delay=2.5)),
        ("token", Fault(status=503)),
        ("token", Fault(drop=True)),
    ],
    ids=[
        "429-retry-after",
        "429-no-retry-after",
        "500",
        "503-twice",
        "dropped",
        "slow",
        "token-503",
        "token-dropped",
    ],
)
def test_transient_faults_recover(
    harness: SourceHarness,
    google: FakeSheets,
    sa: ServiceAccount,
    route: str,
    fault: Fault,
) -> None:
    google.fault(route, fault)
    retry = {**FAST_RETRY, "timeout_seconds": 0.5} if fault.delay else FAST_RETRY
    assert_expected(harness, run(harness, google, sa.path, retry=retry))
    assert google.pending_faults() == []


def test_retry_after_is_honoured(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    google.fault("sheets.values", Fault(status=429, headers={"Retry-After": "1"}))
    assert_expected(harness, run(harness, google, sa.path, retry={**FAST_RETRY, "max_backoff": 5}))
    first, second = google.api_requests()
    assert second.at - first.at >= 0.95


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        (MALFORMED, "response is not JSON"),
        (Fault(status=503, times=10), "gave up after 4 attempts"),
        (Fault(status=403, body=forbidden_403()), "HTTP 403"),
    ],
    ids=["malformed", "503-forever", "403-not-shared"],
)
def test_terminal_faults_fail_cleanly(
    harness: SourceHarness,
    google: FakeSheets,
    sa: ServiceAccount,
    fault: Fault,
    needle: str,
) -> None:
    google.fault("sheets.values", fault)
    result = run(harness, google, sa.path)
    assert_failed(harness, result, needle)
    if fault.status == 403:
        assert sa.email in result.output and len(google.api_requests()) == 1


def test_unknown_spreadsheet_is_404(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    assert_failed(
        harness, run(harness, google, sa.path, spreadsheet_id="nope"), "HTTP 404", "NOT_FOUND"
    )


def test_expired_access_token_is_refreshed_once(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    google.expire_next = True
    assert_expected(harness, run(harness, google, sa.path))
    assert [g["status"] for g in google.grants] == [200, 200]
    first, again = google.api_requests()
    assert (first.token, again.token) == (google.grants[0]["token"], google.grants[1]["token"])


def test_token_refused_after_refresh_fails(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    google.reject_all_tokens = True
    assert_failed(harness, run(harness, google, sa.path), "HTTP 401", "UNAUTHENTICATED")
    assert len(google.grants) == 2 and len(google.api_requests()) == 2


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"range": "Sheet1!A:B"}, "exactly one of sheet"),
        ({"cells": "A1:B2:C3"}, "not an A1 range"),
        ({"spreadsheet_id": "../etc"}, "spreadsheet_id"),
        ({"value_render_option": "RAW"}, "value_render_option"),
    ],
)
def test_config_errors(
    harness: SourceHarness,
    google: FakeSheets,
    sa: ServiceAccount,
    extra: dict[str, Any],
    needle: str,
) -> None:
    extractor: dict[str, Any] = {"sheet": "Store Targets", **extra}
    result = run(harness, google, sa.path, None, **extractor)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert google.requests() == []


def test_example_pipeline_plans_and_validates_without_credentials(
    in_repo: Path, xoelt_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from xoelt.cli import cli

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["validate", "pipelines/warbyparker/sheets_store_targets_daily.yaml"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        cli,
        [
            "plan",
            "warbyparker/sheets_store_targets_daily",
            "--date",
            "2026-11-03",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "%27Store%20Targets%27%21A%3AH" in result.output
    assert "snapshot" in result.output


MONEY_SILVER = {"columns": {"REVENUE": "NUMBER(12,2)", "SHARE": "FLOAT", "OPENED": "DATE",
                            "ACTIVE": "BOOLEAN", "VISITS": "INTEGER"}}  # fmt: skip


def _money(harness: SourceHarness, fake: FakeSheets, sa: ServiceAccount, **extra: Any) -> None:
    extractor = {"spreadsheet_id": SHEET_ID, "base_url": fake.url, "retry": FAST_RETRY,
                 "sheet": "Money", "credentials_file": str(sa.path), **extra}  # fmt: skip
    harness.pipeline(
        "targets",
        {"source_type": "google_sheets", "extractor": extractor, "silver": MONEY_SILVER},
    )


def test_typed_columns_are_read_unformatted(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    """Before: "$1,234.50" and "25%" went to silver, whose casts made them NULL."""
    _money(harness, google, sa)
    result = harness.cli("extract", "test/targets", "--date", "2026-11-03")
    rows, manifest = read(harness, result)
    assert rows == [
        ["Store", "Revenue ($)", "Share", "Opened", "Active", "Visits", "Note"],
        ["001", "1234.5", "0.25", "2026-11-03", "TRUE", "3", "007"],
        ["002", "-0.1", "1", "2026-11-04", "FALSE", "1200", "plain"],
        ["003", "0.0000001", "", "", "", "0", ""],
    ]
    first, second = google.api_requests()
    assert first.query["valueRenderOption"] == ["FORMATTED_VALUE"]
    assert "dateTimeRenderOption" not in first.query
    assert second.query["valueRenderOption"] == ["UNFORMATTED_VALUE"]
    assert second.query["dateTimeRenderOption"] == ["FORMATTED_STRING"]
    details = manifest["details"]
    assert details["unformatted_columns"] == ["Revenue ($)", "Share", "Opened", "Active", "Visits"]
    assert details["reads"] == 2


def test_typed_columns_reach_silver_with_their_values(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    monkeypatch.setenv("XOELT_SQL", str(Path(__file__).resolve().parents[3] / "sql"))
    _money(harness, google, sa)
    result = harness.cli("run", "test/targets", "--date", "2026-11-03")
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(harness.home / "warehouse" / "TEST_DB.duckdb"), read_only=True)
    try:
        got = con.execute(
            'SELECT "STORE", "REVENUE", "SHARE", "OPENED", "ACTIVE", "VISITS", "NOTE" '
            'FROM "TEST_DB"."SILVER"."SRC" ORDER BY "STORE"'
        ).fetchall()
    finally:
        con.close()
    from datetime import date
    from decimal import Decimal

    assert got == [
        ("001", Decimal("1234.50"), 0.25, date(2026, 11, 3), True, 3, "007"),
        ("002", Decimal("-0.10"), 1.0, date(2026, 11, 4), False, 1200, "plain"),
        ("003", Decimal("0.00"), None, None, None, 0, None),
    ]


def test_one_read_when_configured_unformatted(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    _money(harness, google, sa, value_render_option="UNFORMATTED_VALUE",
           date_time_render_option="FORMATTED_STRING")  # fmt: skip
    rows, manifest = read(harness, harness.cli("extract", "test/targets", "--date", "2026-11-03"))
    assert rows[1] == ["001", "1234.5", "0.25", "2026-11-03", "TRUE", "3", "7"]
    assert len(google.api_requests()) == 1 and manifest["details"]["reads"] == 1


def test_no_typed_column_is_one_formatted_read(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    rows, _ = read(harness, run(harness, google, sa.path, sheet="Money"))
    assert rows[1] == ["001", "$1,234.50", "25%", "2026-11-03", "TRUE", "3.00", "007"]
    assert len(google.api_requests()) == 1


def _row_added(request: Any, response: Any) -> Any:
    from tests.fakes.api import Response

    page = response.json()
    page["values"].append(["004", 5])
    return Response(response.status, json=page, headers=response.headers)


def test_a_sheet_changing_between_the_two_reads_is_read_again(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    google.fault("sheets.values", Fault(), Fault(mangle=_row_added))
    _money(harness, google, sa)
    rows, manifest = read(harness, harness.cli("extract", "test/targets", "--date", "2026-11-03"))
    assert len(rows) == 4 and manifest["details"]["reads"] == 4


def test_a_sheet_changing_on_every_read_fails(
    harness: SourceHarness, google: FakeSheets, sa: ServiceAccount
) -> None:
    google.fault("sheets.values", Fault(), Fault(mangle=_row_added), Fault(),
                 Fault(mangle=_row_added))  # fmt: skip
    _money(harness, google, sa)
    result = harness.cli("extract", "test/targets", "--date", "2026-11-03")
    assert_failed(harness, result, "formatted and unformatted reads", "disagree (4 and 5 rows)",
                  "value_render_option: UNFORMATTED_VALUE")  # fmt: skip
