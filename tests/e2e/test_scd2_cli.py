"""The SCD2 reproduction as a user runs it: files dropped for three days, the middle one
header only, ``xoelt run`` per day (in order, then the last day first), history read back."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Sequence

import duckdb

from tests.e2e.conftest import Project
from xoelt.storage.local import LocalObjectStore

PIPELINE = """\
dag:
  domain: demo
  pipeline_name: statuses
  schedule: "50 6 * * *"
  time_window:
    refresh_type: daily
    lag: { days: 1 }
    timezone: "America/New_York"
globals:
  snowflake:
    database: DEMO_DB
sources:
  statuses:
    source_type: s3_upload
    load_strategy: historical
    extractor:
      bucket: xoelt-landing
      prefix: "statuses/{date}/"
    snowflake:
      target_table: LANDING_STATUSES
    silver:
      primary_key: [ID]
transform:
  gold_models: []
"""
DAYS = {
    "2026-11-02": "id,status\r\n1,open\r\n2,open\r\n",
    "2026-11-03": "id,status\r\n",
    "2026-11-04": "id,status\r\n2,open\r\n",
}


def history(project: Project) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(project.home / "warehouse" / "DEMO_DB.duckdb"), read_only=True)
    try:
        return con.execute(
            'SELECT "ID", "STATUS", "VALID_FROM_DATE", "VALID_TO_DATE", "IS_CURRENT" '
            'FROM "SILVER"."STATUSES" ORDER BY ALL'
        ).fetchall()
    finally:
        con.close()


def run_days(project: Project, run_dates: Sequence[str]) -> None:
    (project.root / "pipelines" / "demo" / "statuses.yaml").write_text(textwrap.dedent(PIPELINE))
    store = LocalObjectStore(project.home / "objects")
    for day, body in DAYS.items():
        path = project.root / f"{day}.csv"
        path.write_text(body, newline="")
        store.put_file("xoelt-landing", f"statuses/{day}/statuses.csv", path)
    for run_date in run_dates:
        project.xoelt("run", "demo/statuses", "--date", run_date, check=True)


def test_an_empty_days_file_closes_every_key_in_any_order(project: Project) -> None:
    d = dt.date
    expected = [
        ("1", "open", d(2026, 11, 2), d(2026, 11, 3), False),
        ("2", "open", d(2026, 11, 2), d(2026, 11, 3), False),
        ("2", "open", d(2026, 11, 4), None, True),
    ]
    run_days(project, ["2026-11-03", "2026-11-04", "2026-11-05"])  # windows: the day before
    assert history(project) == expected
    other = Project(project.root, project.home.with_name("home-last-day-first"))
    run_days(other, ["2026-11-05", "2026-11-03", "2026-11-04"])
    assert history(other) == expected
