"""Day two, through the CLI: ``list``, ``migrate``, ``doctor`` on the local target, the packaged
ledger migrations, and errors that say where they looked and what failed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb

from tests.e2e.conftest import Project

PIPE = "demo/gladly_demo"


def _db(project: Project, name: str = "DEMO_DB") -> Path:
    return project.home / "warehouse" / f"{name}.duckdb"


def _history(project: Project) -> list[tuple[str, ...]]:
    with duckdb.connect(str(_db(project)), read_only=True) as con:
        return con.execute(
            'SELECT "VERSION", "DESCRIPTION", "SCRIPT", "SCRIPT_TYPE", "CHECKSUM", "STATUS", '
            '"INSTALLED_BY", "INSTALLED_ON" IS NOT NULL, "EXECUTION_TIME" >= 0 '
            'FROM "XOELT"."CHANGE_HISTORY" ORDER BY "INSTALLED_ON"'
        ).fetchall()


# -- list ---------------------------------------------------------------------------------------


def test_list_shows_the_next_runs_and_marks_dst(project: Project) -> None:
    # New York leaves DST on Sunday 2026-11-01; the demo fires daily at 06:50.
    proc = project.xoelt("list", "--now", "2026-10-30T12:00-04:00", "--format", "json", check=True)
    (demo,) = json.loads(proc.stdout)["pipelines"]
    assert demo["name"] == PIPE and demo["domain"] == "demo"
    assert (demo["schedule"], demo["timezone"]) == ("50 6 * * *", "America/New_York")
    assert demo["sources"] == [
        {"name": "contact_timestamps", "source_type": "s3_upload", "load_strategy": "full_refresh"},
        {"name": "work_sessions", "source_type": "s3_upload", "load_strategy": "full_refresh"},
        {"name": "agents", "source_type": "s3_upload", "load_strategy": "historical"},
    ]
    runs = [
        (r["at"], r["window"]["start"], r["window"]["end"], r["dst"]) for r in demo["next_runs"]
    ]
    assert runs == [
        ("2026-10-31T06:50:00-04:00", "2026-10-30T00:00:00-04:00", "2026-10-31T00:00:00-04:00", ""),
        (
            "2026-11-01T06:50:00-05:00", "2026-10-31T00:00:00-04:00", "2026-11-01T00:00:00-04:00",
            "fires on a DST-change day (UTC-04:00 → UTC-05:00)",
        ),
        (
            "2026-11-02T06:50:00-05:00", "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00",
            "window is 1 day, 1:00:00 long (UTC offset UTC-04:00 → UTC-05:00)",
        ),
    ]  # fmt: skip
    text = project.xoelt("list", "--now", "2026-10-30T12:00-04:00", check=True).stdout
    assert "next     2026-11-02T06:50:00-05:00  loads [2026-11-01T00:00:00-04:00" in text
    assert "DST: window is 1 day, 1:00:00 long" in text


def test_list_reports_bad_files_and_where_it_looked(project: Project, tmp_path: Path) -> None:
    (project.root / "pipelines" / "demo" / "broken.yaml").write_text("dag: {domain: x}\n")
    proc = project.xoelt("list")
    assert proc.returncode == 2
    assert "demo/gladly_demo" in proc.stdout  # the good one is still listed
    assert "broken.yaml" in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = Project(empty, project.home).xoelt("list")
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == (
        f"error: no pipeline files found under {empty}/pipelines (the working directory's "
        "pipelines/; set XOELT_PIPELINES to look elsewhere)"
    )
    validate = Project(empty, project.home).xoelt("validate")
    assert validate.returncode == 2
    assert f"no pipeline files found under {empty}/pipelines" in validate.stderr
    moved = Project(empty, project.home).xoelt(
        "list", env={"XOELT_PIPELINES": str(project.root / "nowhere")}
    )
    assert f"under {project.root}/nowhere (from $XOELT_PIPELINES)" in moved.stderr


# -- migrate ------------------------------------------------------------------------------------


def test_migrate_applies_once_reapplies_changed_repeatables_and_always_scripts(
    project: Project,
) -> None:
    folder = project.root / "sql" / "migrations"
    assert sorted(p.name for p in folder.iterdir()) == ["V1__reporting_schema.sql"]
    (folder / "V1.10__later.sql").write_text(
        'CREATE TABLE "DEMO_DB"."REPORTING"."T" ("A" INTEGER);\n'
        'INSERT INTO "DEMO_DB"."REPORTING"."T" VALUES (${XO_TEST_VALUE});\n'
    )
    (folder / "nested").mkdir()
    (folder / "nested" / "V1.9__earlier.sql").write_text(
        'CREATE TABLE "DEMO_DB"."REPORTING"."E" ("A" INTEGER);\n'
    )
    view = folder / "R__totals_view.sql"
    view.write_text('CREATE OR REPLACE VIEW "DEMO_DB"."REPORTING"."V" AS SELECT 1 AS "X";\n')
    (folder / "A__grants.sql").write_text("SELECT 1;\n")
    env = {"XO_TEST_VALUE": "42"}

    dry = project.xoelt("migrate", "--dry-run", "--format", "json", env=env, check=True)
    planned = json.loads(dry.stdout)
    assert [(s["script"], s["action"]) for s in planned["scripts"]] == [
        ("V1__reporting_schema.sql", "apply"),
        ("V1.9__earlier.sql", "apply"),
        ("V1.10__later.sql", "apply"),  # 1.10 after 1.9: parts compare as numbers
        ("R__totals_view.sql", "apply"),
        ("A__grants.sql", "apply"),
    ]
    with duckdb.connect(str(_db(project)), read_only=True) as con:
        assert con.execute(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'XOELT'"
        ).fetchone() == (0,), "--dry-run changes nothing"

    first = json.loads(project.xoelt("migrate", "--format", "json", env=env, check=True).stdout)
    assert [s["action"] for s in first["scripts"]] == ["applied"] * 5
    with duckdb.connect(str(_db(project)), read_only=True) as con:
        assert con.execute('SELECT "A" FROM "REPORTING"."T"').fetchall() == [(42,)]
    history = _history(project)
    assert [(h[0], h[1], h[2], h[3], h[5]) for h in history] == [
        ("1", "Reporting schema", "V1__reporting_schema.sql", "V", "Success"),
        ("1.9", "Earlier", "V1.9__earlier.sql", "V", "Success"),
        ("1.10", "Later", "V1.10__later.sql", "V", "Success"),
        (None, "Totals view", "R__totals_view.sql", "R", "Success"),
        (None, "Grants", "A__grants.sql", "A", "Success"),
    ]
    assert all(len(h[4]) == 56 and "@" in h[6] and h[7] and h[8] for h in history)

    again = json.loads(project.xoelt("migrate", "--format", "json", env=env, check=True).stdout)
    assert [s["action"] for s in again["scripts"]] == ["up to date"] * 4 + ["applied"]

    view.write_text('CREATE OR REPLACE VIEW "DEMO_DB"."REPORTING"."V" AS SELECT 2 AS "X";\n')
    third = project.xoelt("migrate", env=env, check=True).stdout
    assert "R__totals_view.sql" in third and "checksum changed" in third
    with duckdb.connect(str(_db(project)), read_only=True) as con:
        assert con.execute('SELECT "X" FROM "REPORTING"."V"').fetchall() == [(2,)]
    assert [h[2] for h in _history(project)].count("R__totals_view.sql") == 2


def test_migrate_refuses_changed_out_of_order_secret_and_failing_scripts(project: Project) -> None:
    folder = project.root / "sql" / "migrations"
    project.xoelt("migrate", check=True)
    v1 = folder / "V1__reporting_schema.sql"
    original = v1.read_text()

    v1.write_text(original + "-- edited after it was applied\n")
    changed = project.xoelt("migrate")
    assert changed.returncode == 2
    assert "V1__reporting_schema.sql: version 1 was applied on" in changed.stderr
    assert "its content has changed since" in changed.stderr
    v1.write_text(original)

    (folder / "V2__two.sql").write_text("SELECT 1;\n")
    project.xoelt("migrate", check=True)
    (folder / "V1.5__late.sql").write_text("SELECT 1;\n")
    late = project.xoelt("migrate")
    assert late.returncode == 2
    assert "version 1.5 was never applied and is older than the latest applied version 2" in (
        late.stderr
    )
    (folder / "V1.5__late.sql").unlink()

    secret = folder / "V3__uses_a_secret.sql"
    secret.write_text("SELECT 1;\nSELECT '${XO_API_TOKEN}';\n")
    refused = project.xoelt("migrate", env={"XO_API_TOKEN": "tok-s3cr3t"})
    assert refused.returncode == 2
    assert (
        "sql/migrations/V3__uses_a_secret.sql:2: ${XO_API_TOKEN} is secret-like" in refused.stderr
    )
    assert "tok-s3cr3t" not in refused.stderr + refused.stdout
    secret.write_text("SELECT '${XO_UNSET_NAME}';\n")
    unset = project.xoelt("migrate")
    assert unset.returncode == 2
    assert "environment variable XO_UNSET_NAME is not set" in unset.stderr
    secret.unlink()

    (folder / "V3__half.sql").write_text(
        'CREATE TABLE "DEMO_DB"."REPORTING"."HALF" ("A" INTEGER);\nSELECT * FROM "NO_SUCH";\n'
    )
    failed = project.xoelt("migrate")
    assert failed.returncode == 1
    assert "V3__half.sql statement 2 of 2 failed: DuckDB:" in failed.stderr
    assert "nothing of it was kept" in failed.stderr
    with duckdb.connect(str(_db(project)), read_only=True) as con:
        tables = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    assert "HALF" not in tables  # its own transaction, rolled back
    assert [h[2] for h in _history(project)] == ["V1__reporting_schema.sql", "V2__two.sql"]

    (folder / "notes.sql").write_text("SELECT 1;\n")
    bad_name = project.xoelt("migrate")
    assert bad_name.returncode == 2 and "notes.sql: not a change script name" in bad_name.stderr


# -- the packaged ledger migrations, and what status says when the ledger cannot be read ----------


def test_an_existing_ledger_database_keeps_working(project: Project) -> None:
    """A DuckDB ledger made when V001 lived in sql/migrations: V001 does not re-run, rows stay."""
    (project.root / "sql" / "migrations" / "V1__reporting_schema.sql").unlink()
    _db(project).parent.mkdir(parents=True)
    with duckdb.connect(str(_db(project))) as con:
        con.execute('CREATE SCHEMA "XOELT"')
        con.execute(
            'CREATE TABLE "XOELT"."SCHEMA_MIGRATIONS" ("VERSION" VARCHAR, "APPLIED_AT" TIMESTAMPTZ)'
        )
        con.execute('INSERT INTO "XOELT"."SCHEMA_MIGRATIONS" VALUES (\'V001\', now())')
        ddl = Path(__file__).resolve().parents[2] / "src/xoelt/migrations/V001__run_ledger.sql"
        con.execute(
            ddl.read_text()
            .replace("TIMESTAMP_TZ", "TIMESTAMPTZ")
            .replace("NUMBER(38, 0)", "BIGINT")
        )
        con.execute(
            "INSERT INTO \"XOELT\".\"RUN_LEDGER\" VALUES ('old-run', 'demo/gladly_demo', 'agents', "
            "'load', '2026-11-01', '2026-11-02', 'success', 5, '', '{}', 'me', now(), now())"
        )
    project.publish_demo_files()
    project.xoelt("run", PIPE, "--date", "2026-11-03", check=True)
    with duckdb.connect(str(_db(project)), read_only=True) as con:
        versions = 'SELECT "VERSION" FROM "XOELT"."SCHEMA_MIGRATIONS" ORDER BY "VERSION"'
        # V001 is not run again; V002 (data test results) is new, so it is applied once
        assert con.execute(versions).fetchall() == [("V001",), ("V002",)]
        runs = con.execute('SELECT DISTINCT "RUN_ID" FROM "XOELT"."RUN_LEDGER"').fetchall()
    assert len(runs) == 2 and ("old-run",) in runs


def test_status_failures_are_status_failures(project: Project) -> None:
    project.publish_demo_files()
    project.xoelt("run", PIPE, "--date", "2026-11-03", check=True)
    with duckdb.connect(str(_db(project))) as con:
        con.execute('DROP TABLE "XOELT"."RUN_LEDGER"')
    proc = project.xoelt("status", PIPE)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: status failed: reading the run ledger DEMO_DB.XOELT.RUN_LEDGER failed: DuckDB:"
    ), last
    assert "load failed" not in proc.stderr
    back = project.xoelt("backfill", PIPE, "--start", "2026-11-03", "--end", "2026-11-03")
    assert back.returncode == 1
    assert "reading the run ledger DEMO_DB.XOELT.RUN_LEDGER failed" in back.stderr
    assert "load failed" not in back.stderr


# -- doctor on the local target -----------------------------------------------------------------


def test_doctor_on_the_local_target(project: Project) -> None:
    ok = json.loads(project.xoelt("doctor", "--format", "json", check=True).stdout)
    assert ok["ok"] and ok["target"] == "local"
    assert {(c["check"], c["subject"], c["status"]) for c in ok["checks"]} >= {
        ("bucket", "xoelt-ingest", "pass"),
        ("bucket", "xoelt-stage", "pass"),
        ("warehouse", "duckdb DEMO_DB", "pass"),
        ("source", f"{PIPE} agents", "pass"),
    }
    # the object store's root is a file: no bucket can be written, the rest still checked
    shutil.rmtree(project.home / "objects")
    (project.home / "objects").write_text("not a directory")
    bad = project.xoelt("doctor", PIPE)
    assert bad.returncode == 1
    assert "error: bucket xoelt-ingest:" in bad.stderr
    assert "PASS" in bad.stdout and "FAIL" in bad.stdout
    unknown = project.xoelt("doctor", "no/such_pipeline")
    assert unknown.returncode == 2 and "not found" in unknown.stderr
