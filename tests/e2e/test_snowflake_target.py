"""The demo pipeline on the production target: S3 (moto) + Snowflake (fakesnow), via the CLI.

The CLI runs in a subprocess, as a user runs it; it reaches fakesnow's server and moto over
HTTP on 127.0.0.1 with the real snowflake-connector-python and boto3. fakesnow cannot run COPY
transformations, so the target uses ``copy_transformations: false`` (the production COPY is
checked at statement level in tests/integration/test_snowflake_warehouse.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import REPO, Project
from tests.integration.snowflake_fixtures import (
    STAGE,
    create_database,
    fakesnow_kwargs,
    fakesnow_target,
)

__all__ = ["fakesnow_kwargs"]

PIPE = "demo/gladly_demo"


@pytest.fixture
def sf_project(
    project: Project, fakesnow_kwargs: dict[str, Any], moto_endpoint: str, s3_client: Any
) -> Project:
    create_database(fakesnow_kwargs, "DEMO_DB")
    for bucket in ("xoelt-landing", "xoelt-ingest", "xoelt-stage"):
        existing = {b["Name"] for b in s3_client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            s3_client.create_bucket(Bucket=bucket)
    data = REPO / "pipelines" / "demo" / "data"
    for path in sorted(data.rglob("*.csv")):
        s3_client.upload_file(str(path), "xoelt-landing", path.relative_to(data).as_posix())
    target = {"prod": fakesnow_target(fakesnow_kwargs, f"DEMO_DB.BRONZE.{STAGE}", moto_endpoint)}
    (project.root / "targets.yaml").write_text(yaml.safe_dump(target))
    return project


def run(project: Project, *args: str, check: bool = True) -> Any:
    return project.xoelt(
        *args,
        "--target",
        "prod",
        check=check,
        env={
            "XO_TEST_SNOWFLAKE_PASSWORD": "Zq9-secret-pw",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        },
    )


def test_demo_runs_on_snowflake_and_s3(
    sf_project: Project, fakesnow_kwargs: dict[str, Any]
) -> None:
    plan = json.loads(
        run(sf_project, "plan", PIPE, "--date", "2026-11-03", "--format", "json").stdout
    )
    load_sql = plan["sources"][0]["sql"]["load"]
    assert any(
        s.startswith("COPY INTO") and '@"DEMO_DB"."BRONZE"."XO_STAGE"' in s for s in load_sql
    )
    assert "Zq9-secret-pw" not in json.dumps(plan)  # a reference, never the value
    for day in ("2026-11-03", "2026-11-04"):
        report = json.loads(run(sf_project, "run", PIPE, "--date", day, "--format", "json").stdout)
    rows = {s["name"]: s["rows"] for s in report["sources"]}
    assert rows["contact_timestamps"] == {
        "extract": 138,
        "stage": 138,
        "load": 138,
        "transform": 138,
    }
    assert rows["agents"]["transform"] == 5
    assert report["gold"]["fct_contacts"] == 91  # 45 + 46 contacts over the two windows
    assert report["warehouse"].startswith("snowflake://")
    status = json.loads(run(sf_project, "status", PIPE, "--format", "json").stdout)
    # the account's URL, not a local path made from it
    assert status["warehouse"] == f"snowflake://{fakesnow_kwargs['account']}/DEMO_DB"
    text = run(sf_project, "status", PIPE).stdout
    assert f"warehouse: snowflake://{fakesnow_kwargs['account']}/DEMO_DB" in text
    assert "DuckDB" not in text
    counts = {t["table"]: t["rows"] for t in status["tables"]}
    assert counts["DEMO_DB.SILVER.CONTACT_TIMESTAMPS"] == 135 + 138
    assert [r["status"] for r in status["runs"]] == ["success"] * 13  # 3 sources × 4 + gold
    # the run lock lived in the S3 stage bucket and was released
    again = json.loads(
        run(sf_project, "run", PIPE, "--date", "2026-11-04", "--format", "json").stdout
    )
    assert again["gold"]["fct_contacts"] == 91


def test_each_stage_runs_under_its_own_query_tag(sf_project: Project) -> None:
    from tests.integration.snowflake_fixtures import STATEMENTS

    first = len(STATEMENTS)
    report = json.loads(
        run(sf_project, "run", PIPE, "--date", "2026-11-03", "--format", "json").stdout
    )
    ran = STATEMENTS[first:]
    prefix = "ALTER SESSION SET QUERY_TAG = "
    tagged: list[tuple[dict[str, Any], list[str]]] = []
    for sql in ran:
        if sql.startswith(prefix):
            tagged.append((json.loads(sql.removeprefix(prefix)[1:-1].replace("''", "'")), []))
        elif tagged:
            tagged[-1][1].append(sql)
    tags = [t for t, _ in tagged]
    window = "[2026-11-02T00:00:00-05:00, 2026-11-03T00:00:00-05:00)"
    assert {(t["pipeline"], t["run_id"], t["window"], t["app"]) for t in tags} == {
        (PIPE, report["run_id"], window, "xoelt")
    }
    sources = [s["name"] for s in report["sources"]]
    expected = [("open", None)]
    for source in sources:
        expected += [("extract", source), ("stage", source), ("load", source)]
        expected += [("transform", source)]
    expected.append(("transform", "gold"))
    assert [(t["stage"], t["source"]) for t in tags] == expected
    # what each stage ran is under its tag: bronze's COPY under load, silver under transform
    by_stage = {(t["stage"], t["source"]): sqls for t, sqls in tagged}
    load = by_stage[("load", "contact_timestamps")]
    assert any(s.startswith("COPY INTO") and "GLADLY_CONTACT_TIMESTAMPS" in s for s in load)
    silver = " ".join(by_stage[("transform", "contact_timestamps")])
    assert '"SILVER"."CONTACT_TIMESTAMPS"' in silver
    assert any("fct_contacts" in s.lower() for s in by_stage[("transform", "gold")])


def test_a_window_in_parts_loads_with_one_copy_on_snowflake(sf_project: Project) -> None:
    """Plain parts of 1 KiB (several for the window) and a gzip part, through S3 and COPY."""
    from tests.integration.snowflake_fixtures import STATEMENTS

    pipe = sf_project.root / "pipelines" / "demo" / "gladly_demo.yaml"
    doc = yaml.safe_load(pipe.read_text())
    doc["sources"]["contact_timestamps"]["output"] = {"format": "csv", "part_size": "1KiB"}
    doc["sources"]["work_sessions"]["output"] = {"format": "csv.gz"}
    pipe.write_text(yaml.safe_dump(doc, sort_keys=False))
    first = len(STATEMENTS)
    proc = run(sf_project, "run", PIPE, "--date", "2026-11-03", "--format", "json")
    report = json.loads(proc.stdout)
    rows = {s["name"]: s["rows"] for s in report["sources"]}
    assert rows["contact_timestamps"]["load"] == rows["contact_timestamps"]["extract"] == 135
    assert rows["work_sessions"]["load"] == rows["work_sessions"]["extract"]
    copies = [s for s in STATEMENTS[first:] if s.startswith("COPY INTO") and "__XO_COPY" in s]
    by_table = {
        t: [s for s in copies if f'"GLADLY_{t}__XO_COPY"' in s]
        for t in ("CONTACT_TIMESTAMPS", "WORK_SESSIONS")
    }
    # one COPY statement for all the parts (fakesnow may record a statement twice)
    [contacts] = set(by_table["CONTACT_TIMESTAMPS"])
    assert contacts.count("contact_timestamps.part-") >= 3
    [sessions] = set(by_table["WORK_SESSIONS"])
    assert "work_sessions.part-00000.csv.gz" in sessions
