"""``bamboohr_api`` against a fake BambooHR API v1 on 127.0.0.1 (``tests.fakes.bamboohr``).

The fake checks Basic auth as BambooHR does (the key as user name, any password), answers
the custom report and the directory in BambooHR's JSON shapes and throttles with 503 +
``Retry-After``. The CSV is compared as raw text: a missing value is an empty unquoted
field, an empty string ``""`` (xoelt's convention).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FOREVER, FakeApis
from tests.fakes.bamboohr import FAULTS, FakeBambooHr
from tests.integration.sources.conftest import FAST_RETRY, SourceHarness, data_text, ingest_csv

KEY = "bamboo-test-key-5c1e9d"
COMPANY = "acme"
FIELDS = ["id", "employeeNumber", "firstName", "lastName", "workEmail", "supervisorEId",
          "status", "customTags"]  # fmt: skip
EMPLOYEES: list[dict[str, Any]] = [
    {"id": "101", "employeeNumber": "E-1", "firstName": "Ana", "lastName": 'O"Neil, Jr.',
     "workEmail": "ana@acme.test", "supervisorEId": None, "status": "Active",
     "customTags": {"team": "support", "langs": ["en", "es"]}, "department": "Care"},
    {"id": "102", "employeeNumber": "", "firstName": "Bo", "lastName": "Li",
     "workEmail": "", "supervisorEId": "101", "status": "Active", "customTags": None,
     "department": "Care"},
    {"id": "103", "employeeNumber": "E-3", "firstName": "Cy", "lastName": "Né",
     "status": "Inactive", "customTags": [], "department": None},  # no workEmail/supervisor
]  # fmt: skip
REPORT_CSV = (
    "id,employeeNumber,firstName,lastName,workEmail,supervisorEId,status,customTags\r\n"
    '101,E-1,Ana,"O""Neil, Jr.",ana@acme.test,,Active,"{""langs"":[""en"",""es""],""team"":""support""}"\r\n'
    '102,"",Bo,Li,"",101,Active,\r\n'
    "103,E-3,Cy,Né,,,Inactive,[]\r\n"
)


@pytest.fixture
def bamboo(fake_apis: FakeApis) -> Iterator[FakeBambooHr]:
    with fake_apis.use(FakeBambooHr) as api:
        api.company, api.key = COMPANY, KEY
        api.employees = [dict(e) for e in EMPLOYEES]
        api.fields = [*FIELDS, "department", "jobTitle"]
        api.directory_fields = ["firstName", "lastName", "department", "workEmail"]
        yield api


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAMBOOHR_API_KEY", KEY)
    monkeypatch.setenv("BAMBOOHR_COMPANY", COMPANY)


def _source(fake: FakeBambooHr, **extra: Any) -> dict[str, Any]:
    extractor: dict[str, Any] = {"base_url": fake.url, "fields": FIELDS, "retry": FAST_RETRY}
    extractor.update(extra)
    return {"source_type": "bamboohr_api", "extractor": extractor}


def _run(harness: SourceHarness, source: dict[str, Any]) -> Any:
    harness.pipeline("roster", source)
    return harness.cli("extract", "test/roster", "--date", "2026-11-03")


def _text(harness: SourceHarness) -> str:
    return data_text(harness.ingest_files())


def _manifest(harness: SourceHarness) -> dict[str, Any]:
    return ingest_csv(harness.ingest_files())[1]


def _basic(request: Any) -> str:
    import base64

    return base64.b64decode(request.headers["Authorization"].removeprefix("Basic ")).decode()


def test_custom_report_writes_the_fields_in_order_with_nulls_and_empty_strings(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None
) -> None:
    result = _run(harness, _source(bamboo))
    assert result.exit_code == 0, result.output
    assert _text(harness) == REPORT_CSV
    [request] = bamboo.requests("report")
    assert request.path == f"/api/gateway.php/{COMPANY}/v1/reports/custom"
    assert request.query == {"format": ["JSON"]}  # onlyCurrent only when configured
    assert request.json() == {"title": "xoelt extract", "fields": FIELDS}
    assert request.headers["Accept"] == "application/json"
    assert _basic(request) == f"{KEY}:x"
    details = _manifest(harness)["details"]
    assert details["mode"] == "custom_report"
    assert details["fields"] == FIELDS
    assert details["rows"] == 3
    assert details["snapshot_at"].endswith("+00:00")


def test_only_current_is_sent_and_filters(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None
) -> None:
    result = _run(harness, _source(bamboo, only_current=True, fields=["id", "status"]))
    assert result.exit_code == 0, result.output
    assert _text(harness) == "id,status\r\n101,Active\r\n102,Active\r\n"
    assert bamboo.requests("report")[0].query["onlyCurrent"] == ["true"]


def test_a_field_the_answer_lacks_is_an_empty_column_and_a_finding(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None
) -> None:
    result = _run(harness, _source(bamboo, fields=["id", "noSuchField"]))
    assert result.exit_code == 0, result.output
    assert _text(harness) == "id,noSuchField\r\n101,\r\n102,\r\n103,\r\n"
    [finding] = _manifest(harness)["findings"]
    assert finding["kind"] == "fields_not_in_answer"
    assert "noSuchField" in finding["message"]


def test_directory_columns_are_id_then_the_answers_fields(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None
) -> None:
    source = _source(bamboo, mode="directory")
    del source["extractor"]["fields"]
    result = _run(harness, source)
    assert result.exit_code == 0, result.output
    assert _text(harness) == (
        "id,firstName,lastName,department,workEmail\r\n"
        '101,Ana,"O""Neil, Jr.",Care,ana@acme.test\r\n'
        '102,Bo,Li,Care,""\r\n'
    )
    [request] = bamboo.requests("directory")
    assert request.method == "GET" and request.headers["Accept"] == "application/json"
    details = _manifest(harness)["details"]
    assert details["mode"] == "directory" and details["rows"] == 2
    assert details["fields"] == ["id", "firstName", "lastName", "department", "workEmail"]


def test_directory_refuses_fields(harness: SourceHarness, bamboo: FakeBambooHr) -> None:
    path = harness.pipeline("roster", _source(bamboo, mode="directory"))
    result = harness.cli("validate", str(path))
    assert result.exit_code != 0
    assert "mode directory takes neither fields nor only_current" in result.output


def test_keep_writes_only_the_employees_whose_field_matches(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None
) -> None:
    keep = {"field": "status", "values": ["Inactive", "Leave"]}
    result = _run(harness, _source(bamboo, keep=keep))
    assert result.exit_code == 0, result.output
    header, *_, last = REPORT_CSV.splitlines(keepends=True)
    assert _text(harness) == header + last  # 103, the one Inactive employee
    assert bamboo.requests("report")[0].json()["fields"] == FIELDS  # the same request
    details = _manifest(harness)["details"]
    assert (details["rows"], details["dropped_by_keep"]) == (1, 2)


def test_keep_on_a_field_the_report_does_not_ask_for_is_refused(
    harness: SourceHarness, bamboo: FakeBambooHr
) -> None:
    path = harness.pipeline("roster", _source(bamboo, keep={"field": "department", "values": ["Care"]}))  # fmt: skip
    result = harness.cli("validate", str(path))
    assert result.exit_code == 2
    assert "keep.field 'department' is not one of fields" in result.output


def test_503_with_retry_after_is_waited_out(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None
) -> None:
    bamboo.fault("report", FAULTS["503-retry-after"])
    retry = {**FAST_RETRY, "max_backoff": 5, "timeout_seconds": 2}
    result = _run(harness, _source(bamboo, retry=retry))
    assert result.exit_code == 0, result.output
    assert _text(harness) == REPORT_CSV
    first, second = bamboo.requests("report")
    assert second.at - first.at >= 0.95
    assert first.json() == second.json()


def test_429_is_retried(harness: SourceHarness, bamboo: FakeBambooHr, creds: None) -> None:
    bamboo.fault("report", FAULTS["429"], FAULTS["429"])
    result = _run(harness, _source(bamboo))
    assert result.exit_code == 0, result.output
    assert _text(harness) == REPORT_CSV
    assert len(bamboo.requests("report")) == 3


def test_persistent_throttling_gives_up_with_nothing_in_ingest(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None
) -> None:
    fault = replace(FAULTS["503-retry-after"], headers={"Retry-After": "0"}, times=FOREVER)
    bamboo.fault("report", fault)
    result = _run(harness, _source(bamboo))
    harness.assert_failed(result, "HTTP 503", "gave up after 4 attempts", secrets=(KEY,))
    assert len(bamboo.requests("report")) == 4


def test_wrong_key_is_401_naming_the_variable_and_never_the_key(
    harness: SourceHarness, bamboo: FakeBambooHr, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "not-the-bamboo-key-77"
    monkeypatch.setenv("BAMBOOHR_API_KEY", wrong)
    monkeypatch.setenv("BAMBOOHR_COMPANY", COMPANY)
    result = _run(harness, _source(bamboo))
    # the fake echoes the key it got in X-BambooHR-Error-Message: it must come out masked
    harness.assert_failed(
        result, "HTTP 401", "check BAMBOOHR_API_KEY", "Invalid API key", secrets=(wrong, KEY)
    )
    assert len(bamboo.requests("report")) == 1  # terminal: not retried


def test_unknown_company_is_404_naming_it(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAMBOOHR_COMPANY", "other-co")
    result = _run(harness, _source(bamboo))
    harness.assert_failed(result, "HTTP 404", "/gateway.php/other-co/v1", secrets=(KEY,))


@pytest.mark.parametrize(
    ("fault", "needles"),
    [
        ("malformed", ["response is not JSON"]),
        ("html-200", ["response is not JSON", "maintenance"]),
    ],
)
def test_invalid_json_fails_with_nothing_in_ingest(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None, fault: str, needles: list[str]
) -> None:
    bamboo.fault("report", FAULTS[fault])
    result = _run(harness, _source(bamboo))
    harness.assert_failed(result, "POST", "/reports/custom", *needles, secrets=(KEY,))


def test_a_cut_body_is_retried_and_a_persistently_cut_one_fails(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None
) -> None:
    bamboo.fault("report", FAULTS["cut"])
    result = _run(harness, _source(bamboo))
    assert result.exit_code == 0, result.output
    assert _text(harness) == REPORT_CSV
    assert len(bamboo.requests("report")) == 2

    bamboo.reset()
    bamboo.company, bamboo.key, bamboo.fields = COMPANY, KEY, FIELDS
    bamboo.employees = [dict(e) for e in EMPLOYEES]
    for path in harness.ingest_files():
        path.unlink()
    bamboo.fault("report", replace(FAULTS["cut"], times=FOREVER))
    failed = _run(harness, _source(bamboo))
    harness.assert_failed(failed, "connection failed", "gave up after 4 attempts", secrets=(KEY,))


def test_an_answer_without_employees_fails(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None
) -> None:
    bamboo.fault("report", replace(FAULTS["malformed"], body=b'{"title": "x", "fields": []}'))
    result = _run(harness, _source(bamboo))
    harness.assert_failed(result, "no 'employees' list", secrets=(KEY,))


def test_missing_company_is_a_config_error(
    harness: SourceHarness, bamboo: FakeBambooHr, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BAMBOOHR_API_KEY", KEY)
    monkeypatch.delenv("BAMBOOHR_COMPANY", raising=False)
    result = _run(harness, _source(bamboo))
    assert result.exit_code != 0
    assert "BAMBOOHR_COMPANY is not set" in result.output
    assert bamboo.requests() == []


def test_literal_key_is_rejected(harness: SourceHarness, bamboo: FakeBambooHr) -> None:
    path = harness.pipeline("roster", _source(bamboo, api_key=KEY))
    result = harness.cli("validate", str(path))
    assert result.exit_code != 0
    assert KEY not in result.output


def test_validate_and_plan_need_no_credentials(
    harness: SourceHarness, bamboo: FakeBambooHr, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("BAMBOOHR_API_KEY", "BAMBOOHR_COMPANY"):
        monkeypatch.delenv(var, raising=False)
    path = harness.pipeline("roster", _source(bamboo, only_current=False))
    validated = harness.cli("validate", str(path))
    assert validated.exit_code == 0, validated.output
    planned = harness.cli("plan", "test/roster", "--date", "2026-11-03")
    assert planned.exit_code == 0, planned.output
    assert f"POST {bamboo.url}/api/gateway.php/${{BAMBOOHR_COMPANY}}/v1/reports/custom" in (
        planned.output
    )
    assert '"onlyCurrent": "false"' in planned.output
    assert "snapshot" in planned.output
    assert bamboo.requests() == []


def test_doctor_probes_meta_fields(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None
) -> None:
    harness.pipeline("roster", _source(bamboo))
    result = harness.cli("doctor", "test/roster", "--format", "json")
    report = json.loads(result.stdout[result.stdout.index("{") :])
    rows = {(c["check"], c["subject"]): c for c in report["checks"]}
    creds_row = rows[("credentials", "test/roster src")]
    assert creds_row["status"] == "pass", creds_row
    assert "BAMBOOHR_API_KEY" in creds_row["detail"] and "BAMBOOHR_COMPANY" in creds_row["detail"]
    probe = rows[("source", "test/roster src")]
    assert probe["status"] == "pass", probe
    assert f"company {COMPANY}, 10 fields visible" in probe["detail"]
    [request] = bamboo.requests("meta")
    assert _basic(request) == f"{KEY}:x"


def test_doctor_names_the_key_on_a_bad_one(
    harness: SourceHarness, bamboo: FakeBambooHr, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-bamboo-key-0042"
    monkeypatch.setenv("BAMBOOHR_API_KEY", wrong)
    monkeypatch.setenv("BAMBOOHR_COMPANY", COMPANY)
    harness.pipeline("roster", _source(bamboo))
    result = harness.cli("doctor", "test/roster", "--format", "json")
    assert result.exit_code != 0
    report = json.loads(result.stdout[result.stdout.index("{") :])
    probe = next(c for c in report["checks"] if c["check"] == "source")
    assert probe["status"] == "fail"
    assert "HTTP 401" in probe["detail"] and "BAMBOOHR_API_KEY" in probe["detail"]
    assert wrong not in result.output


def test_the_readme_example_validates_and_plans(
    harness: SourceHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    marker = "# pipelines/core/bamboohr_employees.yaml\n"
    start = readme.index(marker)
    block = readme[start : readme.index("```", start)]
    for var in ("BAMBOOHR_API_KEY", "BAMBOOHR_COMPANY"):
        monkeypatch.delenv(var, raising=False)
    path = harness.root / "pipelines" / "core" / "bamboohr_employees.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block)
    validated = harness.cli("validate", str(path))
    assert validated.exit_code == 0, validated.output
    planned = harness.cli("plan", "core/bamboohr_employees", "--date", "2026-11-03")
    assert planned.exit_code == 0, planned.output
    assert "bamboohr_api, historical" in planned.output
    assert "CORE_DB" in planned.output


def test_historical_runs_keep_each_employees_history_with_nulls_and_empty_strings(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    monkeypatch.setenv("XOELT_SQL", str(Path(__file__).resolve().parents[3] / "sql"))
    source = {
        **_source(bamboo, fields=["id", "lastName", "workEmail", "customTags"]),
        "load_strategy": "historical",
        "silver": {"table": "EMPLOYEES", "primary_key": ["ID"]},
    }
    harness.pipeline("roster", source)
    first = harness.cli("run", "test/roster", "--date", "2026-11-03")
    assert first.exit_code == 0, first.output
    bamboo.employees[1]["lastName"] = "Li-Park"  # Bo renamed the next day
    second = harness.cli("run", "test/roster", "--date", "2026-11-04")
    assert second.exit_code == 0, second.output
    con = duckdb.connect(str(harness.home / "warehouse" / "TEST_DB.duckdb"), read_only=True)
    try:
        bronze = con.execute(
            'SELECT "ID", "WORKEMAIL", "CUSTOMTAGS" FROM "TEST_DB"."BRONZE"."T_SRC" ORDER BY 1'
        ).fetchall()
        history = con.execute(
            'SELECT "ID", "LASTNAME", "IS_CURRENT" FROM "TEST_DB"."SILVER"."EMPLOYEES" '
            'ORDER BY "ID", "VALID_FROM"'
        ).fetchall()
    finally:
        con.close()
    assert bronze == [
        ("101", "ana@acme.test", '{"langs":["en","es"],"team":"support"}'),
        ("102", "", None),  # "" stays an empty string, null is NULL
        ("103", None, "[]"),  # an absent key is NULL
    ]
    assert history == [
        ("101", 'O"Neil, Jr.', True),
        ("102", "Li", False),
        ("102", "Li-Park", True),
        ("103", "Né", True),
    ]


def test_an_empty_roster_writes_the_header_only(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None
) -> None:
    bamboo.employees = []
    result = _run(harness, _source(bamboo, fields=["id", "firstName"]))
    assert result.exit_code == 0, result.output
    assert _text(harness) == "id,firstName\r\n"
    assert _manifest(harness)["details"]["rows"] == 0


def test_numbers_and_booleans_are_written_as_text(
    harness: SourceHarness, bamboo: FakeBambooHr, creds: None
) -> None:
    # some answers carry typed values (an integer id, a boolean custom field)
    bamboo.employees = [{"id": 7, "firstName": "Di", "isPhotoUploaded": False, "ratio": 0.5}]
    bamboo.fields = ["id", "firstName", "isPhotoUploaded", "ratio"]
    result = _run(harness, _source(bamboo, fields=bamboo.fields))
    assert result.exit_code == 0, result.output
    assert _text(harness) == "id,firstName,isPhotoUploaded,ratio\r\n7,Di,false,0.5\r\n"
