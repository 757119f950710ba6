"""dbt as the transform engine, through the CLI on the embedded target (real dbt-core and
dbt-duckdb): the demo's silver feeds the small dbt project in tests/fixtures/dbt_demo.

A passing build puts its models in gold and its node results on the gold ledger row; a
failing dbt test fails the run with exit 1 and one line naming the test; the plan shows the
engine; validate names a missing dbt_project.yml; dbt leaves nothing in the project folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, Project

pytest.importorskip("dbt.adapters.duckdb", reason="the dbt extra (xoelt[dbt]) is not installed")

PIPE = "demo/gladly_dbt"
DAY = "2026-11-03"
WINDOW = "window=[2026-11-02T00:00:00-05:00, 2026-11-03T00:00:00-05:00)"
TRANSFORM = """
transform:
  engine: dbt
  project_dir: dbt/demo   # relative to the SQL root (sql/)
  select: "+agg_channel_window"
  vars: { team: support }
"""


@pytest.fixture
def dbt_project(project: Project) -> Project:
    """The demo pipeline as ``demo/gladly_dbt`` with ``transform: {engine: dbt}``, and the
    fixture dbt project at ``sql/dbt/demo``."""
    shutil.copytree(REPO / "tests" / "fixtures" / "dbt_demo", project.root / "sql" / "dbt" / "demo")
    demo = (project.root / "pipelines" / "demo" / "gladly_demo.yaml").read_text()
    text = demo.replace("pipeline_name: gladly_demo", "pipeline_name: gladly_dbt") + TRANSFORM
    (project.root / "pipelines" / "demo" / "gladly_dbt.yaml").write_text(text)
    project.publish_demo_files()
    return project


def gold_row(project: Project) -> dict[str, Any]:
    status = json.loads(project.xoelt("status", PIPE, "--format", "json", check=True).stdout)
    return next(r for r in status["runs"] if r["source"] == "gold")


def query(project: Project, sql: str) -> list[tuple[Any, ...]]:
    import duckdb

    path = project.home / "warehouse" / "DEMO_DB.duckdb"
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_dbt_build_materialises_models_and_records_its_tests(dbt_project: Project) -> None:
    run = dbt_project.xoelt("run", PIPE, "--date", DAY, "--format", "json", check=True)
    report = json.loads(run.stdout)  # stdout is xoelt's JSON alone: dbt prints nothing there
    sessions = next(s for s in report["sources"] if s["name"] == "work_sessions")
    assert report["gold"] == {"fct_window_sessions": 45, "agg_channel_window": 4}
    assert sessions["rows"]["transform"] == 45

    # the models read silver through {{ source() }} and the window through the vars
    rows = query(
        dbt_project,
        'SELECT channel, sessions, window_start FROM "DEMO_DB"."GOLD"."agg_channel_window" '
        "ORDER BY channel",
    )
    assert sum(r[1] for r in rows) == 45
    assert {r[0] for r in rows} <= {"CHAT", "EMAIL", "PHONE", "SMS"}
    assert {r[2].isoformat() for r in rows} == {"2026-11-02T05:00:00+00:00"}
    (run_ids,) = query(dbt_project, 'SELECT DISTINCT run_id FROM "GOLD"."fct_window_sessions"')
    assert run_ids == (report["run_id"],)

    gold = gold_row(dbt_project)  # written after dbt released and xoelt reopened the file
    assert (gold["stage"], gold["status"], gold["rows"]) == ("gold", "success", 49)
    (summary,) = gold["findings"]
    assert summary["kind"] == "dbt_build"
    assert summary["data"]["counts"] == {
        "built": 2,
        "passed": 7,
        "warned": 0,
        "failed": 0,
        "skipped": 0,
    }
    assert sorted(summary["data"]["built"]) == [
        "model.xoelt_dbt_demo.agg_channel_window",
        "model.xoelt_dbt_demo.fct_window_sessions",
    ]
    assert any(t.startswith("test.xoelt_dbt_demo.unique_") for t in summary["data"]["passed"])

    # dbt's artifacts and logs live under XOELT_HOME, never in the project folder
    project_dir = dbt_project.root / "sql" / "dbt" / "demo"
    assert sorted(p.name for p in project_dir.iterdir()) == ["dbt_project.yml", "models"]
    work = dbt_project.home / "dbt" / "demo" / "gladly_dbt"
    assert (work / "target" / "run_results.json").is_file()
    assert (work / "logs" / "dbt.log").is_file()
    assert not (dbt_project.root / "logs").exists()


def test_a_failing_dbt_test_fails_the_run_naming_the_test(dbt_project: Project) -> None:
    schema = dbt_project.root / "sql" / "dbt" / "demo" / "models" / "schema.yml"
    narrowed = schema.read_text().replace("[CHAT, EMAIL, PHONE, SMS]", "[CHAT, EMAIL]")
    assert narrowed != schema.read_text()
    schema.write_text(narrowed)
    # a failing test of severity warn is reported and does not fail the run by itself
    singular = dbt_project.root / "sql" / "dbt" / "demo" / "tests" / "warn_handled_sessions.sql"
    singular.parent.mkdir()
    singular.write_text(
        "{{ config(severity='warn') }}\n"
        "SELECT * FROM {{ ref('fct_window_sessions') }} WHERE handle_seconds > 0\n"
    )

    failed = dbt_project.xoelt("run", PIPE, "--date", DAY)
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: transform failed source=gold {WINDOW}: dbt build failed: test "
        "accepted_values_fct_window_sessions_channel__CHAT__EMAIL failed (2 failing rows)"
    ]
    assert "Traceback" not in failed.stderr

    gold = gold_row(dbt_project)
    assert gold["status"] == "failed"
    assert "accepted_values_fct_window_sessions_channel__CHAT__EMAIL" in gold["message"]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for f in gold["findings"]:
        by_kind.setdefault(f["kind"], []).append(f)
    (summary,) = by_kind["dbt_build"]
    assert summary["severity"] == "error"
    assert (summary["data"]["counts"]["failed"], summary["data"]["counts"]["warned"]) == (1, 1)
    (warned,) = [f for f in by_kind["dbt_test"] if f["data"]["status"] == "warn"]
    assert warned["message"] == "test warn_handled_sessions warned (45 failing rows)"
    failing = [f for f in by_kind["dbt_test"] if f["severity"] == "error"]
    assert [(f["count"], f["data"]["status"]) for f in failing] == [(2, "fail")]
    # what depends on the failed test's model is skipped, and says so
    assert any(f["message"] == "model agg_channel_window skipped" for f in by_kind["dbt_model"])


def test_plan_shows_the_dbt_engine_and_imports_no_dbt(dbt_project: Project) -> None:
    plan = json.loads(
        dbt_project.xoelt("plan", PIPE, "--date", DAY, "--format", "json", check=True).stdout
    )
    assert plan["gold"] == []  # xoelt's own gold SQL does not run beside dbt
    transform = plan["transform"]
    assert transform["engine"] == "dbt"
    assert transform["select"] == ["+agg_channel_window"]
    assert Path(transform["project_dir"]) == dbt_project.root / "sql" / "dbt" / "demo"
    assert {"team", "xoelt_window_start", "xoelt_window_end"} <= set(transform["vars"])
    text = dbt_project.xoelt("plan", PIPE, "--date", DAY, "--no-sql", check=True).stdout
    assert "gold by dbt build" in text and "select   +agg_channel_window" in text

    import subprocess
    import sys

    code = (
        "import sys\n"
        "from xoelt.cli import cli\n"
        "try:\n"
        f"    cli(['plan', '{PIPE}', '--date', '{DAY}', '--format', 'json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('DBT', sorted(m for m in sys.modules if m == 'dbt' or m.startswith('dbt.')), "
        "file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=dbt_project.root, capture_output=True, text=True
    )
    assert "DBT []" in proc.stderr, proc.stderr


def test_validate_names_a_missing_dbt_project(dbt_project: Project) -> None:
    assert dbt_project.xoelt("validate", check=True).returncode == 0
    (dbt_project.root / "sql" / "dbt" / "demo" / "dbt_project.yml").unlink()
    bad = dbt_project.xoelt("validate")
    assert bad.returncode == 2
    pipeline = Path("pipelines") / "demo" / "gladly_dbt.yaml"
    line = 1 + dbt_project.root.joinpath(pipeline).read_text().splitlines().index(
        "  project_dir: dbt/demo   # relative to the SQL root (sql/)"
    )
    expected = f"{pipeline}:{line} transform.project_dir: no dbt_project.yml in"
    assert expected in bad.stdout + bad.stderr


def test_a_backfill_runs_dbt_for_each_window_on_its_pooled_connection(
    dbt_project: Project,
) -> None:
    done = dbt_project.xoelt(
        "backfill", PIPE, "--start", "2026-11-03", "--end", "2026-11-04", "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    # the second window's models replaced the first's, and both gold rows are in the ledger
    (starts,) = query(dbt_project, 'SELECT DISTINCT window_start FROM "GOLD"."agg_channel_window"')
    assert starts[0].isoformat() == "2026-11-03T05:00:00+00:00"
    ledger = query(
        dbt_project,
        'SELECT "STATUS", COUNT(*) FROM "XOELT"."RUN_LEDGER" WHERE "STAGE" = \'gold\' '
        'GROUP BY "STATUS"',
    )
    assert ledger == [("success", 2)]


def test_a_dbt_error_fails_the_run_with_dbts_message_on_one_line(dbt_project: Project) -> None:
    broken = dbt_project.root / "sql" / "dbt" / "demo" / "models" / "agg_channel_window.sql"
    broken.write_text("SELECT * FROM {{ ref('no_such_model') }}\n")
    failed = dbt_project.xoelt("run", PIPE, "--date", DAY)
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, failed.stderr[-2000:]
    assert errors[0].startswith(f"error: transform failed source=gold {WINDOW}: dbt build failed: ")
    assert "no_such_model" in errors[0] or "agg_channel_window" in errors[0]
    gold = gold_row(dbt_project)
    assert gold["status"] == "failed" and gold["message"].endswith(errors[0][len("error: ") :])
