"""``xoelt doctor`` against real protocols: moto (S3), fakesnow (Snowflake), the fake APIs.

One pipeline holds one source of every type, on a Snowflake target whose buckets are moto's
and whose warehouse is fakesnow's server. First everything answers and every row passes;
then one thing of each kind is broken at once (a missing credential, a missing bucket, a
missing database, a missing stage, a refused token, an unshared sheet, a hung API) and each
fails with its own one-line reason, in bounded time, with no secret in the output.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tests.fakes import FakeApis, Fault
from tests.fakes.gladly import FakeGladly
from tests.fakes.gmail import FakeGmail
from tests.fakes.sheets import FakeSheets
from tests.fakes.sprout import FakeSprout
from tests.integration.snowflake_fixtures import (
    STAGE,
    create_database,
    fakesnow_kwargs,
    fakesnow_target,
)
from xoelt.cli import cli

__all__ = ["fakesnow_kwargs"]

DATABASE = "DOC_DB"
GLADLY_TOKEN = "gladly-token-s3cr3t"
SPROUT_TOKEN = "sprout-token-s3cr3t"
SNOWFLAKE_PASSWORD = "snowflake-pw-s3cr3t"
SHEET_ID = "sheet-1"


@pytest.fixture(scope="module")
def fake_apis() -> Iterator[FakeApis]:
    with FakeApis() as apis:
        yield apis


@pytest.fixture
def apis(fake_apis: FakeApis, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with (
        fake_apis.use(FakeGladly) as gladly,
        fake_apis.use(FakeSprout) as sprout,
        fake_apis.use(FakeGmail) as gmail,
        fake_apis.use(FakeSheets) as sheets,
    ):
        gladly.user, gladly.token = "api@example.com", GLADLY_TOKEN
        sprout.token, sprout.customer = SPROUT_TOKEN, "4242"
        sheets.sheets[SHEET_ID] = {"Targets": [["store", "target"], ["001", "5"]]}
        yield {
            "gladly": gladly,
            "sprout": sprout,
            "gmail": gmail,
            "sheets": sheets,
            "gmail_sa": gmail.service_account(tmp_path),
            "sheets_sa": sheets.service_account(tmp_path),
        }


@pytest.fixture
def warehouse_named(fakesnow_kwargs: dict[str, Any]) -> Iterator[None]:
    """The database, and what fakesnow lacks: CURRENT_WAREHOUSE() (a macro in the database's
    DuckDB catalog, which fakesnow's session resolves functions in), as Snowflake answers."""
    import fakesnow.server as fs_server

    create_database(fakesnow_kwargs, DATABASE)
    duck = fs_server.shared_fs.duck_conn
    duck.execute(f"CREATE OR REPLACE MACRO {DATABASE}.main.current_warehouse() AS 'XO_WH'")
    yield


def _project(
    root: Path,
    apis: dict[str, Any],
    fakesnow_kwargs: dict[str, Any],
    moto_endpoint: str,
    *,
    stage: str,
    ingest_bucket: str,
    landing_bucket: str,
    database: str = DATABASE,
) -> None:
    sources = {
        "contacts": {
            "source_type": "gladly_api",
            "extractor": {"metric_set": "ContactTimestampsReport", "base_url": apis["gladly"].url},
        },
        "messages": {
            "source_type": "sprout_social_api",
            "extractor": {"base_url": apis["sprout"].url, "fields": ["guid"]},
        },
        "reports": {
            "source_type": "gmail_attachments",
            "extractor": {
                "query": "from:vendor@example.com",
                "base_url": apis["gmail"].url,
                "credentials_file": str(apis["gmail_sa"].path),
            },
        },
        "targets": {
            "source_type": "google_sheets",
            "extractor": {
                "spreadsheet_id": SHEET_ID,
                "sheet": "Targets",
                "base_url": apis["sheets"].url,
                "credentials_file": str(apis["sheets_sa"].path),
            },
        },
        "uploads": {
            "source_type": "s3_upload",
            "extractor": {"bucket": landing_bucket, "prefix": "drops/{date}/"},
        },
    }
    doc = {
        "dag": {
            "domain": "ops",
            "pipeline_name": "everything",
            "schedule": "0 6 * * *",
            "time_window": {"refresh_type": "daily", "lag": {"days": 1}, "timezone": "UTC"},
        },
        "globals": {
            "snowflake": {"database": database},
            "storage": {"ingest_bucket": ingest_bucket, "stage_bucket": "xoelt-stage"},
        },
        "sources": {
            name: {
                "load_strategy": "full_refresh",
                "snowflake": {"target_table": f"T_{name.upper()}"},
                **block,
            }
            for name, block in sources.items()
        },
    }
    (root / "pipelines" / "ops").mkdir(parents=True, exist_ok=True)
    (root / "pipelines" / "ops" / "everything.yaml").write_text(yaml.safe_dump(doc))
    target = {"prod": fakesnow_target(fakesnow_kwargs, stage, moto_endpoint, warehouse="XO_WH")}
    (root / "targets.yaml").write_text(yaml.safe_dump(target))


def _doctor(root: Path, monkeypatch: pytest.MonkeyPatch, *args: str, **env: str) -> Any:
    monkeypatch.chdir(root)
    for name in ("XOELT_PIPELINES", "XOELT_SQL", "XOELT_TARGET", "XOELT_TARGETS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XOELT_HOME", str(root / ".xoelt"))
    base = {
        "XO_TEST_SNOWFLAKE_PASSWORD": SNOWFLAKE_PASSWORD,
        "GLADLY_API_USER": "api@example.com",
        "GLADLY_API_TOKEN": GLADLY_TOKEN,
        "SPROUT_API_TOKEN": SPROUT_TOKEN,
        "SPROUT_CUSTOMER_ID": "4242",
        **env,
    }
    for key, value in base.items():
        if value:
            monkeypatch.setenv(key, value)
        else:
            monkeypatch.delenv(key, raising=False)
    return CliRunner().invoke(
        cli, ["--log-format", "json", "doctor", "--target", "prod", *args], catch_exceptions=False
    )


def _rows(result: Any) -> dict[tuple[str, str], dict[str, Any]]:
    start = result.stdout.index("{")
    report = json.loads(result.stdout[start:])
    return {(c["check"], c["subject"]): c for c in report["checks"]}


@pytest.fixture
def buckets(s3_client: Any) -> Any:
    existing = {b["Name"] for b in s3_client.list_buckets().get("Buckets", [])}
    for bucket in ("xoelt-ingest", "xoelt-stage", "xoelt-landing"):
        if bucket not in existing:
            s3_client.create_bucket(Bucket=bucket)
    return s3_client


def test_doctor_passes_when_everything_answers(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    apis: dict[str, Any],
    fakesnow_kwargs: dict[str, Any],
    moto_endpoint: str,
    buckets: Any,
    warehouse_named: None,
) -> None:
    _project(
        tmp_path, apis, fakesnow_kwargs, moto_endpoint,
        stage=f"{DATABASE}.BRONZE.{STAGE}", ingest_bucket="xoelt-ingest",
        landing_bucket="xoelt-landing",
    )  # fmt: skip
    table = _doctor(tmp_path, monkeypatch)
    print(table.stdout)  # the table the report quotes (pytest -s)
    assert table.exit_code == 0, table.output
    result = _doctor(tmp_path, monkeypatch, "ops/everything", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = _rows(result)
    assert {k: v["status"] for k, v in rows.items() if v["status"] != "pass"} == {}
    pipe = "ops/everything"
    assert set(rows) == {
        ("credentials", "target prod"),
        *(("credentials", f"{pipe} {s}") for s in ("contacts", "messages", "reports", "targets", "uploads")),
        ("bucket", "xoelt-ingest"),
        ("bucket", "xoelt-stage"),
        ("warehouse", f"snowflake {DATABASE}"),
        ("stage", f"{DATABASE}.BRONZE.{STAGE}"),
        *(("source", f"{pipe} {s}") for s in ("contacts", "messages", "reports", "targets", "uploads")),
    }  # fmt: skip
    assert rows[("credentials", "target prod")]["detail"] == "XO_TEST_SNOWFLAKE_PASSWORD present"
    assert rows[("warehouse", f"snowflake {DATABASE}")]["detail"].endswith(
        f"warehouse XO_WH, database {DATABASE}"
    )
    assert "s3://xoelt-stage/" in rows[("stage", f"{DATABASE}.BRONZE.{STAGE}")]["detail"]
    assert "GET " in rows[("source", f"{pipe} contacts")]["detail"]
    assert "customer 4242 visible" in rows[("source", f"{pipe} messages")]["detail"]
    assert "reports@example.com" in rows[("source", f"{pipe} reports")]["detail"]
    # the probe objects were removed again
    for bucket in ("xoelt-ingest", "xoelt-stage"):
        listed = buckets.list_objects_v2(Bucket=bucket, Prefix="xoelt-doctor/")
        assert listed.get("KeyCount", 0) == 0
    assert apis["gladly"].requests("agents")
    assert apis["sprout"].requests("client")
    assert apis["gmail"].requests("gmail.profile")
    assert {r.params["range"] for r in apis["sheets"].requests("sheets.values")} == {"'Targets'!A1"}
    assert rows[("credentials", f"{pipe} reports")]["detail"] == (
        f"{apis['gmail_sa'].path} present"
    )


def test_doctor_names_each_broken_thing_in_bounded_time(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    apis: dict[str, Any],
    fakesnow_kwargs: dict[str, Any],
    moto_endpoint: str,
    buckets: Any,
    warehouse_named: None,
) -> None:
    _project(
        tmp_path, apis, fakesnow_kwargs, moto_endpoint,
        stage=f"{DATABASE}.BRONZE.NO_SUCH_STAGE", ingest_bucket="xo-missing-ingest",
        landing_bucket="xo-missing-landing", database="NO_SUCH_DB",
    )  # fmt: skip
    apis["gladly"].token = "another-token"  # ours is refused (and the fake echoes it back)
    apis["sheets"].sheets.clear()  # the sheet is not shared with the service account
    apis["gmail"].fault("gmail.profile", Fault(delay=30, times=5))  # Gmail hangs
    t0 = time.monotonic()
    result = _doctor(
        tmp_path, monkeypatch, "--timeout", "8", "--format", "json", SPROUT_API_TOKEN=""
    )
    elapsed = time.monotonic() - t0
    assert result.exit_code == 1, result.output
    rows = _rows(result)
    pipe = "ops/everything"
    status = {k: v["status"] for k, v in rows.items()}
    detail = {k: v["detail"] for k, v in rows.items()}
    assert status[("credentials", f"{pipe} messages")] == "fail"
    assert detail[("credentials", f"{pipe} messages")] == "SPROUT_API_TOKEN is not set"
    assert status[("source", f"{pipe} messages")] == "skip"
    assert status[("bucket", "xo-missing-ingest")] == "fail"
    assert "NoSuchBucket" in detail[("bucket", "xo-missing-ingest")]
    assert status[("bucket", "xoelt-stage")] == "pass"
    assert status[("warehouse", "snowflake NO_SUCH_DB")] == "fail"
    assert "NO_SUCH_DB" in detail[("warehouse", "snowflake NO_SUCH_DB")]
    assert status[("stage", f"{DATABASE}.BRONZE.NO_SUCH_STAGE")] == "skip"
    assert status[("source", f"{pipe} contacts")] == "fail"
    assert "HTTP 401" in detail[("source", f"{pipe} contacts")]
    assert "GLADLY_API_TOKEN" in detail[("source", f"{pipe} contacts")]
    assert status[("source", f"{pipe} targets")] == "fail"
    assert "HTTP 404" in detail[("source", f"{pipe} targets")]
    assert status[("source", f"{pipe} reports")] == "fail"
    assert detail[("source", f"{pipe} reports")] == "no answer within 8 s"
    assert status[("source", f"{pipe} uploads")] == "fail"
    assert "NoSuchBucket" in detail[("source", f"{pipe} uploads")]
    assert elapsed < 60
    for secret in (GLADLY_TOKEN, SNOWFLAKE_PASSWORD):
        assert secret not in result.output
    # every failure is also one line on stderr
    failures = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(failures) == sum(1 for s in status.values() if s == "fail")
    table = _doctor(tmp_path, monkeypatch, "--timeout", "3", SPROUT_API_TOKEN="")
    print(table.stdout)  # the table the report quotes (pytest -s)
    assert table.exit_code == 1 and table.stdout.count("FAIL") == len(failures)


def test_doctor_checks_the_stage_on_its_own(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    apis: dict[str, Any],
    fakesnow_kwargs: dict[str, Any],
    moto_endpoint: str,
    buckets: Any,
    warehouse_named: None,
) -> None:
    _project(
        tmp_path, apis, fakesnow_kwargs, moto_endpoint,
        stage=f"{DATABASE}.BRONZE.NO_SUCH_STAGE", ingest_bucket="xoelt-ingest",
        landing_bucket="xoelt-landing",
    )  # fmt: skip
    result = _doctor(tmp_path, monkeypatch, "--format", "json")
    assert result.exit_code == 1
    rows = _rows(result)
    failing = {k: v["detail"] for k, v in rows.items() if v["status"] != "pass"}
    assert failing == {
        ("stage", f"{DATABASE}.BRONZE.NO_SUCH_STAGE"): (
            f"stage {DATABASE}.BRONZE.NO_SUCH_STAGE does not exist (or this role cannot see it)"
        )
    }
