"""Data tests through the CLI: the demo's pass; an error fails the run with exit 1 and a
message naming test and table; a warning is reported and exits 0; ``xoelt test`` runs them
alone; every outcome is a row of XOELT.TEST_RESULTS and each non-pass a finding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Project

PIPE = "demo/gladly_demo"
DAY = "2026-11-03"
WINDOW = "window=[2026-11-02T00:00:00-05:00, 2026-11-03T00:00:00-05:00)"


def results(project: Project, where: str = "") -> list[tuple[Any, ...]]:
    """(run id, source, test, status, failing rows, example keys) from the results table."""
    import duckdb

    path = project.home / "warehouse" / "DEMO_DB.duckdb"
    if not path.is_file():
        (path,) = project.home.rglob("DEMO_DB.duckdb")
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            'SELECT "RUN_ID", "SOURCE", "TEST_NAME", "STATUS", "FAILING_ROWS", "EXAMPLE_KEYS" '
            f'FROM "XOELT"."TEST_RESULTS" {where} ORDER BY "TESTED_AT", "TEST_NAME"'
        ).fetchall()


def add_gold_test(project: Project, line: str) -> None:
    sidecar = project.root / "sql" / "gold" / "demo" / "fct_contacts.yml"
    sidecar.write_text(sidecar.read_text() + line + "\n")


def test_demo_tests_pass_then_an_error_fails_the_run_and_a_warning_does_not(
    project: Project,
) -> None:
    project.publish_demo_files()
    project.xoelt("run", PIPE, "--date", DAY, check=True)
    first = results(project)
    assert first and {r[3] for r in first} == {"pass"}
    assert {r[1] for r in first} == {"work_sessions", "agents", "gold"}
    assert len({r[0] for r in first}) == 1  # one run id

    add_gold_test(project, "  - { kind: row_count, max: 3 }")
    failed = project.xoelt("run", PIPE, "--date", DAY)
    assert failed.returncode == 1
    message = failed.stderr.strip().splitlines()[-1]
    assert message == (
        f"error: transform failed source=gold {WINDOW}: data test "
        "row_count_GOLD_FCT_CONTACTS_2 failed on DEMO_DB.GOLD.FCT_CONTACTS: 45 row(s); "
        "expected at most 3"
    )
    status = json.loads(project.xoelt("status", PIPE, "--format", "json", check=True).stdout)
    gold = next(r for r in status["runs"] if r["source"] == "gold")
    assert gold["status"] == "failed"
    (finding,) = [f for f in gold["findings"] if f["kind"] == "data_test"]
    assert finding["severity"] == "error"
    assert finding["data"] == {
        "test": "row_count_GOLD_FCT_CONTACTS_2",
        "table": "DEMO_DB.GOLD.FCT_CONTACTS",
        "kind": "row_count",
        "examples": [],
    }

    # xoelt test alone: the same failure, exit 1, a table on stdout, rows in the results table
    alone = project.xoelt("test", PIPE, "--date", DAY)
    assert alone.returncode == 1
    assert alone.stderr.strip().splitlines()[-1] == (
        "error: data test row_count_GOLD_FCT_CONTACTS_2 failed on DEMO_DB.GOLD.FCT_CONTACTS: "
        "45 row(s); expected at most 3"
    )
    assert "data tests: 12 passed, 0 warned, 1 failed" in alone.stdout
    latest = results(project)[-13:]
    assert len({r[0] for r in latest}) == 1
    assert sorted(r[3] for r in latest) == ["fail"] + ["pass"] * 12

    # the same test as a warning: reported, exit 0, and a warn finding on the gold row
    sidecar = project.root / "sql" / "gold" / "demo" / "fct_contacts.yml"
    sidecar.write_text(sidecar.read_text().replace("max: 3 }", "max: 3, severity: warn }"))
    warned = project.xoelt("run", PIPE, "--date", DAY)
    assert warned.returncode == 0, warned.stderr
    status = json.loads(project.xoelt("status", PIPE, "--format", "json", check=True).stdout)
    gold = next(r for r in status["runs"] if r["source"] == "gold")
    assert gold["status"] == "success"
    found = [(f["kind"], f["severity"], f.get("count")) for f in gold["findings"]]
    assert found == [("data_test", "warn", None)]
    alone = project.xoelt("test", PIPE, "--date", DAY, "--format", "json", check=True)
    report = json.loads(alone.stdout)
    assert [r["status"] for r in report["results"]].count("warn") == 1


def test_a_failing_silver_test_fails_that_sources_transform_with_examples(
    project: Project,
) -> None:
    pipeline = project.root / "pipelines" / "demo" / "gladly_demo.yaml"
    text = pipeline.read_text()
    text = text.replace(
        "values: [CHAT, EMAIL, PHONE, SMS] }",
        "values: [CHAT, EMAIL, PHONE] }\n"
        "        - { kind: expression, expression: \"CHANNEL <> 'CHAT'\", severity: warn }",
    )
    pipeline.write_text(text)
    assert project.xoelt("validate", str(pipeline)).returncode == 0
    project.publish_demo_files()
    failed = project.xoelt("run", PIPE, "--date", DAY)
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: transform failed source=work_sessions {WINDOW}: data test "
        "accepted_values_SILVER_WORK_SESSIONS_CHANNEL failed on DEMO_DB.SILVER.WORK_SESSIONS: "
    )
    assert "with a CHANNEL not in CHAT, EMAIL, PHONE" in last
    rows = {r[2]: r for r in results(project)}
    failing = rows["accepted_values_SILVER_WORK_SESSIONS_CHANNEL"]
    assert failing[3] == "fail" and failing[4] > 0
    examples = json.loads(failing[5])
    assert 1 <= len(examples) <= 5 and all(isinstance(e, str) for e in examples)
    assert rows["expression_SILVER_WORK_SESSIONS"][3] == "warn"  # declared before the demo's
    assert "agents" not in {r[1] for r in rows.values()}  # the run stopped at the failure


def test_a_bad_expression_is_a_config_error_at_validate(project: Project, tmp_path: Path) -> None:
    pipeline = project.root / "pipelines" / "demo" / "gladly_demo.yaml"
    pipeline.write_text(
        pipeline.read_text().replace(
            'expression: "WORK_SESSION_HANDLE_TIME_SEC >= 0"',
            'expression: "WORK_SESSION_HANDLE_TIME_SEC >= AND 1"',
        )
    )
    proc = project.xoelt("validate", str(pipeline))
    assert proc.returncode == 2
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error")]
    assert "gladly_demo.yaml:" in line
    assert "sources.work_sessions.silver.tests.3.expression: " in line
    assert "does not parse as SQL" in line
    assert project.xoelt("test", PIPE, "--date", DAY).returncode == 2


def test_validate_checks_gold_sidecars(project: Project) -> None:
    sidecar = project.root / "sql" / "gold" / "demo" / "fct_contacts.yml"
    sidecar.write_text(sidecar.read_text() + "  - { kind: volume }\n")
    proc = project.xoelt("validate", "pipelines/demo/gladly_demo.yaml")
    assert proc.returncode == 2
    assert "fct_contacts.yml:3 tests: tests[4]: volume is for silver tables" in proc.stderr


def test_plan_lists_each_tables_tests(project: Project) -> None:
    shown = project.xoelt("plan", PIPE, "--date", DAY, "--no-sql", check=True).stdout
    assert "  tests    not_null(AGENT_ID), unique(AGENT_ID)\n" in shown
    assert "    tests  unique(CONTACT_ID), not_null(CREATED_AT), row_count, " in shown
    assert "freshness(CONTACT_SESSION_CREATED_AT) [warn], volume [warn]" in shown


def test_a_second_plan_parses_no_expression_again(project: Project, tmp_path: Path) -> None:
    """Expressions that parsed are remembered (like gold's dependencies): plan stays fast."""
    import os
    import subprocess
    import sys

    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    project.xoelt("plan", PIPE, "--date", DAY, check=True, env=env)  # fills both caches
    code = (
        "import sys\n"
        "from xoelt.cli import cli\n"
        "try:\n"
        f"    cli(['plan', '{PIPE}', '--date', '{DAY}', '--no-sql'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('SQLGLOT', 'sqlglot' in sys.modules, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project.root,
        capture_output=True,
        text=True,
        env={**os.environ, **env, "XOELT_HOME": str(project.home)},
    )
    assert "SQLGLOT False" in proc.stderr, proc.stderr
