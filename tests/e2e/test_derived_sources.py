"""Derived sources as a user runs them: one landing file a day loaded once into bronze (silver
disabled), two sources deriving their silver from it by a ``where`` (SCD2 ``historical`` and
``full_refresh``), over three windows by ``xoelt backfill``; then skip-done, ``--source``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import textwrap
from typing import Any

import duckdb
import pytest

from tests.e2e.conftest import Project
from xoelt.storage.local import LocalObjectStore

PIPE = "demo/people"
PIPELINE = """\
dag:
  domain: demo
  pipeline_name: people
  schedule: "50 6 * * *"
  time_window:
    refresh_type: daily
    lag: { days: 1 }
    timezone: "America/New_York"
globals:
  snowflake:
    database: DEMO_DB
sources:
  team_b:                         # before its parent in the file: it still runs after it
    from_source: people
    where: "TEAM = 'b'"
    load_strategy: full_refresh
    silver:
      table: TEAM_B
      columns:
        AGE: NUMBER(38,0)
  people:
    source_type: s3_upload
    load_strategy: full_refresh
    extractor:
      bucket: xoelt-landing
      prefix: "people/{date}/"
    snowflake:
      target_table: LANDING_PEOPLE
    silver:
      enabled: false
  team_a:
    from_source: people
    where: "TEAM = 'a'"
    load_strategy: historical
    silver:
      table: TEAM_A
      primary_key: [ID]
      columns:
        ID: NUMBER(38,0)
      tests:
        - { kind: unique, columns: [ID] }
transform:
  gold_models: []
"""
# Dee (team c) has an age that is no number: only a source reading team c's rows may see it.
DAYS = {
    "2026-11-02": "id,team,name,age\r\n1,a,Ann,30\r\n2,a,Bob,40\r\n3,b,Cy,50\r\n4,c,Dee,n/a\r\n",
    "2026-11-03": "id,team,name,age\r\n1,a,Ann,31\r\n2,a,Bob,40\r\n3,b,Cy,50\r\n5,b,Eve,22\r\n4,c,Dee,n/a\r\n",
    "2026-11-04": "id,team,name,age\r\n1,a,Ann,31\r\n2,b,Bob,40\r\n3,b,Cy,50\r\n",
}
RUN_DATES = ["2026-11-03", "2026-11-04", "2026-11-05"]  # windows: the day before each


def rows_of(day: str, team: str) -> list[dict[str, str]]:
    """The landing file's rows of ``team`` (what the derived source's silver must hold)."""
    return [r for r in csv.DictReader(io.StringIO(DAYS[day])) if r["team"] == team]


def query(project: Project, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(project.home / "warehouse" / "DEMO_DB.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def people(project: Project) -> Project:
    (project.root / "pipelines" / "demo" / "people.yaml").write_text(textwrap.dedent(PIPELINE))
    store = LocalObjectStore(project.home / "objects")
    for day, body in DAYS.items():
        path = project.root / f"{day}.csv"
        path.write_text(body, newline="")
        store.put_file("xoelt-landing", f"people/{day}/people.csv", path)
    return project


def backfill(project: Project) -> list[dict[str, Any]]:
    args = ["backfill", PIPE, "--start", RUN_DATES[0], "--end", RUN_DATES[-1], "--format", "json"]
    return json.loads(project.xoelt(*args, check=True).stdout)


def test_derived_silvers_hold_the_filtered_bronze_rows_and_backfill_skips_done(
    people: Project,
) -> None:
    assert [w["status"] for w in backfill(people)] == ["done"] * 3
    d = dt.date
    # SCD2 of team a: Ann's age changed on the 3rd; Bob left team a on the 4th (no longer in
    # its rows: his version closes), though he is still in bronze, as team b's
    assert query(
        people,
        'SELECT "ID", "NAME", "AGE", "VALID_FROM_DATE", "VALID_TO_DATE", "IS_CURRENT" '
        'FROM "SILVER"."TEAM_A" ORDER BY ALL',
    ) == [
        (1, "Ann", "30", d(2026, 11, 2), d(2026, 11, 3), False),
        (1, "Ann", "31", d(2026, 11, 3), None, True),
        (2, "Bob", "40", d(2026, 11, 2), d(2026, 11, 4), False),
    ]
    # team b's daily snapshots: each window's partition is exactly that day's team b rows
    by_day = query(
        people,
        "SELECT CAST(timezone('America/New_York', \"_XO_WINDOW_START\") AS DATE), "
        '"ID", "AGE" FROM "SILVER"."TEAM_B" ORDER BY ALL',
    )
    expected = sorted(
        (d.fromisoformat(day), r["id"], int(r["age"])) for day in DAYS for r in rows_of(day, "b")
    )
    assert by_day == expected
    # bronze holds the last window, every team's rows; no silver of the parent exists
    assert query(people, 'SELECT COUNT(*) FROM "BRONZE"."LANDING_PEOPLE"') == [(3,)]
    tables = {r[0] for r in query(people, "SELECT table_name FROM information_schema.tables")}
    assert "PEOPLE" not in tables

    status = json.loads(people.xoelt("status", PIPE, "--format", "json", check=True).stdout)
    assert [(t["layer"], t["table"], t["rows"]) for t in status["tables"]] == [
        ("bronze", "DEMO_DB.BRONZE.LANDING_PEOPLE", 3),
        ("silver", "DEMO_DB.SILVER.TEAM_B", len(expected)),
        ("silver", "DEMO_DB.SILVER.TEAM_A", 3),
    ]
    # the last window's ledger: the parent's four stages, then one transform per derived
    # source, each counting its filtered rows (not the parent's bronze count)
    runs = [(r["source"], r["stage"], r["status"], r["rows"]) for r in status["runs"]]
    assert runs == [
        ("people", "extract", "success", 3),
        ("people", "stage", "success", 3),
        ("people", "load", "success", 3),
        ("people", "transform", "success", 0),
        ("team_b", "transform", "success", len(rows_of("2026-11-04", "b"))),
        ("team_a", "transform", "success", len(rows_of("2026-11-04", "a"))),
    ]
    disabled = next(
        r for r in status["runs"] if r["source"] == "people" and r["stage"] == "transform"
    )
    assert [f["kind"] for f in disabled["findings"]] == ["silver_disabled"]
    team_b = next(r for r in status["runs"] if r["source"] == "team_b")
    casts = next(f for f in team_b["findings"] if f["kind"] == "cast_counts")
    assert casts["data"]["columns"]["AGE"] == {"type": "NUMBER(38,0)", "non_empty": 2, "failed": 0}

    # every window is done (the derived sources have no extract/stage/load rows to wait for)
    assert [w["status"] for w in backfill(people)] == ["skipped"] * 3


def test_a_derived_source_is_transformed_alone_and_refuses_the_other_stages(
    people: Project,
) -> None:
    people.xoelt("run", PIPE, "--date", RUN_DATES[0], check=True)
    for stage in ("extract", "stage", "load"):
        proc = people.xoelt(stage, PIPE, "--source", "team_a", "--date", RUN_DATES[0])
        assert proc.returncode == 2, proc.stderr
        assert "source team_a is derived from people" in proc.stderr
        assert "Traceback" not in proc.stderr
    again = people.xoelt(
        "transform", PIPE, "--source", "team_b", "--date", RUN_DATES[0], "--format", "json"
    )
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert [(s["name"], s["rows"]) for s in report["sources"]] == [
        ("team_b", {"transform": len(rows_of("2026-11-02", "b"))})
    ]
    assert query(people, 'SELECT COUNT(*) FROM "SILVER"."TEAM_B"') == [(1,)]  # replaced, not added
    # bronze holds the 2nd's window: transforming the 3rd's from it is refused
    wrong = people.xoelt("transform", PIPE, "--source", "team_a", "--date", RUN_DATES[1])
    assert wrong.returncode == 1
    assert "run `xoelt load` for this window first" in wrong.stderr
    # a where naming a column bronze lacks fails before any SQL runs, saying which
    path = people.root / "pipelines" / "demo" / "people.yaml"
    path.write_text(path.read_text().replace("TEAM = 'a'", "TAEM = 'a'"))
    typo = people.xoelt("transform", PIPE, "--source", "team_a", "--date", RUN_DATES[0])
    assert typo.returncode == 1
    assert (
        "where \"TAEM = 'a'\" names TAEM, which bronze DEMO_DB.BRONZE.LANDING_PEOPLE "
        "(source people) lacks; its columns: ID, TEAM, NAME, AGE"
    ) in typo.stderr


def test_plan_shows_the_parent_the_filter_and_the_run_order(people: Project) -> None:
    plan = json.loads(
        people.xoelt("plan", PIPE, "--date", RUN_DATES[0], "--format", "json", check=True).stdout
    )
    sources = {s["name"]: s for s in plan["sources"]}
    assert list(sources) == ["people", "team_b", "team_a"]  # each parent, then its derived
    assert sources["people"]["silver_table"] is None
    assert "transform" not in sources["people"]["sql"]
    team_a = sources["team_a"]
    assert (team_a["from_source"], team_a["where"]) == ("people", "TEAM = 'a'")
    assert team_a["bronze_table"] == "DEMO_DB.BRONZE.LANDING_PEOPLE"
    assert team_a["silver_table"] == "DEMO_DB.SILVER.TEAM_A"
    assert "ingest_key" not in team_a and list(team_a["sql"]) == ["transform"]
    assert any(
        'FROM "DEMO_DB"."BRONZE"."LANDING_PEOPLE" WHERE (TEAM = \'a\')' in s
        for s in team_a["sql"]["transform"]
    )
    text = people.xoelt("plan", PIPE, "--date", RUN_DATES[0], check=True).stdout
    assert "source team_a (derived from people, historical)" in text
    assert "where    TEAM = 'a'" in text
    assert "silver   (disabled: bronze only)" in text


def test_a_pull_without_a_column_a_derived_source_reads_is_refused_at_load(
    people: Project,
) -> None:
    people.xoelt("run", PIPE, "--date", RUN_DATES[0], check=True)
    path = people.root / "no-team.csv"
    path.write_text("id,name,age\r\n1,Ann,31\r\n", newline="")
    LocalObjectStore(people.home / "objects").put_file(
        "xoelt-landing", "people/2026-11-03/people.csv", path
    )
    proc = people.xoelt("run", PIPE, "--date", RUN_DATES[1])
    assert proc.returncode == 1
    assert "load failed source=people" in proc.stderr
    assert "TEAM missing from this pull (derived source team_b's where reads it)" in proc.stderr
    # bronze still holds the 2nd's window, every derived silver untouched
    assert query(people, 'SELECT COUNT(*) FROM "BRONZE"."LANDING_PEOPLE"') == [(4,)]
    assert query(people, 'SELECT COUNT(*) FROM "SILVER"."TEAM_A"') == [(2,)]
