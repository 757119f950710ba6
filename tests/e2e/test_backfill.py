"""Backfill as a user runs it: windows from the schedule, ledger skips, --force, failures."""

from __future__ import annotations

import json
import os
import signal
from datetime import date
from pathlib import Path

import pytest

from tests.e2e.conftest import Project
from xoelt import interrupts
from xoelt.backfill import backfill, plan_windows

PIPE = "demo/gladly_demo"


def test_backfill_runs_skips_and_forces(project: Project) -> None:
    project.publish_demo_files()
    dry = json.loads(
        project.xoelt(
            "backfill",
            PIPE,
            "--start",
            "2026-11-03",
            "--end",
            "2026-11-05",
            "--dry-run",
            "--format",
            "json",
            check=True,
        ).stdout
    )
    assert [w["window_start"] for w in dry] == [
        "2026-11-02T00:00:00-05:00",
        "2026-11-03T00:00:00-05:00",
        "2026-11-04T00:00:00-05:00",
    ]
    args = ["backfill", PIPE, "--start", "2026-11-03", "--end", "2026-11-05", "--format", "json"]
    first = json.loads(project.xoelt(*args, check=True).stdout)
    assert [(w["status"], w["rows_loaded"]) for w in first] == [
        ("done", 185),
        ("done", 189),
        ("done", 153),
    ]
    again = json.loads(project.xoelt(*args, check=True).stdout)
    assert [w["status"] for w in again] == ["skipped"] * 3
    forced = json.loads(project.xoelt(*args, "--force", check=True).stdout)
    assert [w["status"] for w in forced] == ["done"] * 3


def test_backfill_stops_at_a_failure_unless_keep_going(project: Project) -> None:
    project.publish_demo_files()
    args = ["backfill", PIPE, "--start", "2026-11-05", "--end", "2026-11-07", "--format", "json"]
    proc = project.xoelt(*args)
    assert proc.returncode == 1
    assert [w["status"] for w in json.loads(proc.stdout)] == ["done", "failed", "not_run"]
    assert (
        "extract failed source=contact_timestamps window=[2026-11-05"
        in proc.stderr.splitlines()[-1]
    )
    proc = project.xoelt(*args, "--keep-going")
    assert [w["status"] for w in json.loads(proc.stdout)] == ["skipped", "failed", "failed"]


def test_backfill_bad_dates_exit_2(project: Project) -> None:
    proc = project.xoelt("backfill", PIPE, "--start", "2026-11-40", "--end", "2026-11-05")
    assert proc.returncode == 2 and "--start '2026-11-40' is not a date" in proc.stderr
    proc = project.xoelt("backfill", PIPE, "--start", "2026-11-05", "--end", "2026-11-01")
    assert proc.returncode == 2 and "ends" in proc.stderr


def test_sigterm_starts_no_new_window(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.publish_demo_files()
    monkeypatch.chdir(project.root)
    monkeypatch.setenv("XOELT_HOME", str(project.home))
    plans = plan_windows(
        PIPE,
        date(2026, 11, 3),
        date(2026, 11, 5),
        None,
    )

    def after_first(outcome: object) -> None:
        if getattr(outcome, "status", "") == "done":
            os.kill(os.getpid(), signal.SIGTERM)  # a real signal, as Kubernetes sends it

    try:
        with interrupts.handling():  # what the CLI installs for every command
            result = backfill(plans, on_window=after_first)
        assert [o.status for o in result.outcomes] == ["done", "not_run", "not_run"]
        assert result.exit_code == 143
    finally:
        interrupts.reset()
    ingest = Path(project.home, "objects", "xoelt-ingest", "ingest", "demo", "gladly_demo")
    assert (ingest / "contact_timestamps" / "2026-11-02").is_dir()
    assert not (ingest / "contact_timestamps" / "2026-11-03").exists()


def test_a_window_whose_gold_did_not_finish_is_not_done(project: Project) -> None:
    """Every source transformed but gold failed part-way (as a kill after fct_contacts
    leaves it): the window is not done, and a backfill runs it again."""
    project.publish_demo_files()
    model = project.root / "sql" / "gold" / "demo" / "agg_agent_daily.sql"
    good = model.read_text(encoding="utf-8")
    model.write_text("SELECT * FROM no_such_table\n", encoding="utf-8")
    failed = project.xoelt("run", PIPE, "--date", "2026-11-04")
    assert failed.returncode == 1 and "agg_agent_daily" in failed.stderr
    runs = json.loads(project.xoelt("status", PIPE, "--format", "json", check=True).stdout)["runs"]
    assert {(r["source"], r["status"]) for r in runs if r["stage"] == "transform"} == {
        (s, "success") for s in ("contact_timestamps", "work_sessions", "agents")
    }
    assert [(r["source"], r["status"]) for r in runs if r["stage"] == "gold"] == [
        ("gold", "failed")
    ]
    model.write_text(good, encoding="utf-8")

    args = ("backfill", PIPE, "--start", "2026-11-04", "--end", "2026-11-04", "--format", "json")
    first = json.loads(project.xoelt(*args, check=True).stdout)
    assert [w["status"] for w in first] == ["done"]
    again = json.loads(project.xoelt(*args, check=True).stdout)
    assert [w["status"] for w in again] == ["skipped"]
    tables = json.loads(project.xoelt("status", PIPE, "--format", "json", check=True).stdout)
    rows = {t["table"]: t["rows"] for t in tables["tables"]}
    assert rows["DEMO_DB.GOLD.AGG_AGENT_DAILY"]
