"""``backfill --workers 2`` on the production target (fakesnow + moto) gives the serial result.

Snowflake allows concurrent windows, so a backfill runs windows at once; windows of one
source share its bronze table. The CLI runs as a user runs it (a subprocess, real connector
and boto3 over loopback). The same pipeline, under another name and database, is backfilled
serially; silver, gold and the ledger must agree row for row (run ids and load times aside).
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

DAYS = [f"2026-11-{d:02d}" for d in range(2, 8)]  # six windows: run dates 11-03 … 11-08
SOURCES = ("contact_timestamps", "work_sessions")


def _pipeline(name: str, database: str) -> dict[str, Any]:
    demo = yaml.safe_load((REPO / "pipelines" / "demo" / "gladly_demo.yaml").read_text())
    demo["dag"]["pipeline_name"] = name
    demo["globals"]["snowflake"]["database"] = database
    demo["sources"] = {s: demo["sources"][s] for s in SOURCES}  # full_refresh only
    demo["transform"] = {"gold_models": ["fct_contacts"]}
    return demo


@pytest.fixture
def project_on_snowflake(
    project: Project, fakesnow_kwargs: dict[str, Any], moto_endpoint: str, s3_client: Any
) -> Project:
    for database in ("PAR_DB", "SER_DB"):
        create_database(fakesnow_kwargs, database)
    existing = {b["Name"] for b in s3_client.list_buckets().get("Buckets", [])}
    for bucket in ("xoelt-landing", "xoelt-ingest", "xoelt-stage"):
        if bucket not in existing:
            s3_client.create_bucket(Bucket=bucket)
    data = REPO / "pipelines" / "demo" / "data" / "gladly"
    for i, day in enumerate(DAYS):  # the demo's three days of files, over six days
        source_day = sorted((data / "contact_timestamps").iterdir())[i % 3].name
        for source in SOURCES:
            for path in sorted((data / source / source_day).glob("*.csv")):
                key = f"gladly/{source}/{day}/{path.name}"
                s3_client.upload_file(str(path), "xoelt-landing", key)
    for name, database in (("parallel", "PAR_DB"), ("serial", "SER_DB")):
        path = project.root / "pipelines" / "demo" / f"{name}.yaml"
        path.write_text(yaml.safe_dump(_pipeline(name, database), sort_keys=False))
    target = {"prod": fakesnow_target(fakesnow_kwargs, f"PAR_DB.BRONZE.{STAGE}", moto_endpoint)}
    (project.root / "targets.yaml").write_text(yaml.safe_dump(target))
    return project


def _xoelt(project: Project, *args: str) -> Any:
    return project.xoelt(
        *args,
        "--target",
        "prod",
        env={
            "XO_TEST_SNOWFLAKE_PASSWORD": "Zq9-secret-pw",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        },
    )


def _backfill(project: Project, pipeline: str, workers: int) -> list[dict[str, Any]]:
    proc = _xoelt(
        project,
        "backfill",
        f"demo/{pipeline}",
        "--start",
        "2026-11-03",
        "--end",
        "2026-11-08",
        "--workers",
        str(workers),
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _contents(kwargs: dict[str, Any], database: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every silver and gold row (minus what differs per run) and the ledger's outcomes."""
    import snowflake.connector

    con = snowflake.connector.connect(**kwargs, database=database)
    tables = {
        "SILVER.CONTACT_TIMESTAMPS": "",
        "SILVER.WORK_SESSIONS": "",
        "GOLD.FCT_CONTACTS": "",
    }
    out: dict[str, list[tuple[Any, ...]]] = {}
    try:
        with con.cursor() as cur:
            for table in tables:
                cur.execute(f"SELECT * FROM {table} LIMIT 0")
                cols = [d[0] for d in cur.description]
                keep = [c for c in cols if c not in ("_XO_RUN_ID", "_XO_LOADED_AT")]
                listed = ", ".join(f'"{c}"' for c in keep)
                cur.execute(f"SELECT {listed} FROM {table}")
                out[table] = sorted(cur.fetchall(), key=repr)
            cur.execute("SELECT SOURCE, STAGE, WINDOW_START, STATUS, ROWS FROM XOELT.RUN_LEDGER")
            # Gold rebuilds over all of silver, so the rows its ledger row counts depend on
            # which windows' silver was in when it ran: in parallel, an order of finishing.
            ledger = [r[:4] + ((None,) if r[0] == "gold" else r[4:]) for r in cur.fetchall()]
            out["ledger"] = sorted(ledger, key=repr)
    finally:
        con.close()
    return out


@pytest.mark.slow
def test_backfill_with_two_workers_gives_the_serial_result(
    project_on_snowflake: Project, fakesnow_kwargs: dict[str, Any]
) -> None:
    parallel = _backfill(project_on_snowflake, "parallel", workers=2)
    serial = _backfill(project_on_snowflake, "serial", workers=1)
    assert [w["status"] for w in parallel] == ["done"] * 6
    assert [(w["window_start"], w["rows_loaded"]) for w in parallel] == [
        (w["window_start"], w["rows_loaded"]) for w in serial
    ]
    par, ser = _contents(fakesnow_kwargs, "PAR_DB"), _contents(fakesnow_kwargs, "SER_DB")
    assert {t: len(rows) for t, rows in par.items()} == {t: len(rows) for t, rows in ser.items()}
    assert par == ser
    assert {row[3] for row in par["ledger"]} == {"success"}
    assert len(par["ledger"]) == 6 * 2 * 4 + 6  # windows x sources x stages, + gold per window
