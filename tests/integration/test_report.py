"""``xoelt report`` without a browser: what the page holds (grid, chart series, failures,
test results), that ledger values cannot break out of it, and that it needs no network.

The ledger is written as runs write it (:mod:`tests.integration.report_ledger`), on DuckDB
through the local target and on the Snowflake path (the real connector against fakesnow).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, clean_env
from tests.integration.report_ledger import (
    EVIL,
    PIPELINE,
    create_test_results,
    seed_ledger,
    seed_local,
)
from tests.integration.snowflake_fixtures import (
    fakesnow_kwargs,
    snowflake_database,
    snowflake_wh,
    stage_bucket,
)
from xoelt.report import write_report
from xoelt.report.history import Span, read_ledger, read_tests, summarise
from xoelt.report.render import chart_js

NOW = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
DAYS = ["2026-10-30", "2026-10-31", "2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
DAYS.append("2026-11-05")
__all__ = ["fakesnow_kwargs", "snowflake_database", "snowflake_wh", "stage_bucket"]  # fixtures
_BLOB = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)


def blob(page: str) -> dict[str, Any]:
    """The report's data, as the page's script reads it."""
    (text,) = _BLOB.findall(page)
    return json.loads(text)


def report(tmp_path: Path, **kw: Any) -> tuple[str, dict[str, Any]]:
    out = tmp_path / "out" / "report.html"
    result = write_report(PIPELINE, days=7, out=out, until=date(2026, 11, 5), now=NOW, **kw)
    assert result.path == out and out.is_file()
    page = out.read_text(encoding="utf-8")
    return page, blob(page)


def statuses(data: dict[str, Any]) -> dict[str, list[str]]:
    return {
        line["source"]: [c["status"] if c else "not_run" for c in line["cells"]]
        for line in data["grid"]
    }


def check_history(data: dict[str, Any]) -> None:
    """The seeded history, as the report must summarise it (whichever warehouse held it)."""
    assert data["days"] == DAYS
    assert list(statuses(data)) == ["agents", "contact_timestamps", "work_sessions", "gold"]
    before = ["not_run"] * 3
    assert statuses(data) == {
        "agents": [*before, "success", "success", "interrupted", "not_run"],
        "contact_timestamps": [*before, "success", "success", "success", "not_run"],
        # window 11-03 failed at load, then its rerun succeeded: the latest run decides
        "work_sessions": [*before, "success", "success", "success", "not_run"],
        "gold": [*before, "success", "not_run", "not_run", "not_run"],
    }
    work = next(line for line in data["grid"] if line["source"] == "work_sessions")
    assert work["cells"][4]["runs"] == 2
    agents = next(line for line in data["grid"] if line["source"] == "agents")
    assert agents["cells"][5]["message"].startswith("transform: ")
    rows = {s["label"]: s["data"] for s in data["rows"]["datasets"]}
    assert rows == {
        "bronze": [None, None, None, 120, 123, 126, None],
        "silver": [None, None, None, 120, 123, 84, None],
        "gold": [None, None, None, 120, None, None, None],
    }
    durations = {s["label"]: s["data"] for s in data["durations"]["datasets"]}
    assert list(durations) == ["extract", "stage", "load", "transform", "gold"]
    assert all(v is None or v >= 1.5 for v in durations["load"])  # ~2 s each, summed
    assert durations["load"][3] >= 6  # three sources' loads on window 11-02
    assert [(f["source"], f["stage"], f["status"]) for f in data["failures"]] == [
        ("agents", "transform", "interrupted"),
        ("work_sessions", "load", "failed"),
    ]
    assert data["failures"][1]["message"] == EVIL
    assert data["failures"][1]["window_start"] == "2026-11-03T00:00:00-05:00"


def test_report_without_test_results(tmp_path: Path, xoelt_home: Path, in_repo: Path) -> None:
    seed_local(with_tests=False)
    page, data = report(tmp_path)
    check_history(data)
    assert data["tests"] is None and data["test_totals"] is None
    assert "No data-test results recorded." in page  # what the page says then
    assert '<table id="grid">' in page


def test_report_with_test_results(tmp_path: Path, xoelt_home: Path, in_repo: Path) -> None:
    seed_local(with_tests=True)
    _, data = report(tmp_path)
    check_history(data)
    assert data["test_totals"] == {"pass": 1, "warn": 1, "fail": 1}
    newest = data["tests"][0]
    assert (newest["test_name"], newest["status"], newest["failing_rows"]) == (
        "unique_agent_id",
        "fail",
        2,
    )
    assert newest["example_keys"] == ["a-1", "a-2"]
    assert newest["message"] == EVIL
    assert newest["window_start"] == "2026-11-04T00:00:00-05:00"


def test_ledger_values_cannot_break_out_of_the_page(
    tmp_path: Path, xoelt_home: Path, in_repo: Path
) -> None:
    seed_local(with_tests=True)
    page, data = report(tmp_path)
    # the hostile message is in the data, intact, but nowhere in the page as markup
    assert data["failures"][1]["message"] == EVIL
    assert "window.pwned" in page
    assert "<script>window.pwned" not in page and "<b>bold</b>" not in page
    # only our own three script elements (data, Chart.js, the page's script) open or close
    assert page.count("<script") == 3 and page.count("</script>") == 3


def test_the_page_needs_no_network(tmp_path: Path, xoelt_home: Path, in_repo: Path) -> None:
    seed_local(with_tests=True)
    page, _ = report(tmp_path)
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    library = chart_js()
    assert library in page, "Chart.js is inlined whole"
    assert "sourceMappingURL" not in page
    # past the library (whose licence banner names its home page) no URL at all
    rest = page.replace(library, "")
    assert "http://" not in rest and "https://" not in rest
    assert not re.search(r"<link\b|@import|url\(|<iframe|<img", rest, re.I)
    assert "default-src 'none'" in rest  # and the browser is told to fetch nothing


def test_cli_prints_the_path_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = clean_env(XOELT_HOME=str(home))
    proc = subprocess.run(
        [sys.executable, "-m", "xoelt", "report", PIPELINE, "--days", "3", "--out", "r.html"],
        cwd=tmp_path,
        env={**env, "XOELT_PIPELINES": str(REPO / "pipelines"), "XOELT_SQL": str(REPO / "sql")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tmp_path / "r.html")
    data = blob((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert len(data["days"]) == 3 and data["grid"] == [] and data["ledger_rows"] == 0
    bad = subprocess.run(
        [sys.executable, "-m", "xoelt", "report", PIPELINE, "--until", "soon"],
        cwd=tmp_path,
        env={**env, "XOELT_PIPELINES": str(REPO / "pipelines")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--until 'soon' is not a date" in bad.stderr


@pytest.mark.slow
@pytest.mark.parametrize("with_tests", [False, True], ids=["no-test-table", "test-table"])
def test_reading_the_history_on_snowflake(
    snowflake_wh: Any, snowflake_database: str, with_tests: bool
) -> None:
    db = snowflake_database
    seed_ledger(snowflake_wh, db)
    if with_tests:
        create_test_results(snowflake_wh, db)
    span = Span.ending(date(2026, 11, 5), 7)
    rows = read_ledger(snowflake_wh, db, [PIPELINE], span.since)
    tests = read_tests(snowflake_wh, db, [PIPELINE], span.since)
    from zoneinfo import ZoneInfo

    data = summarise(rows, tests, {PIPELINE: ZoneInfo("America/New_York")}, span, NOW)
    check_history(data)
    if with_tests:
        assert data["test_totals"] == {"pass": 1, "warn": 1, "fail": 1}
        assert data["tests"][0]["example_keys"] == ["a-1", "a-2"]
    else:
        assert data["tests"] is None


def test_without_a_pipeline_every_pipeline_is_read(
    tmp_path: Path, xoelt_home: Path, in_repo: Path
) -> None:
    seed_local(with_tests=False)
    out = tmp_path / "all.html"
    result = write_report(None, days=7, out=out, until=date(2026, 11, 5), now=NOW)
    data = blob(out.read_text(encoding="utf-8"))
    assert PIPELINE in result.pipelines and "warbyparker/gladly_daily" in result.pipelines
    assert result.databases == ["CND_DB", "CORE_DB", "DEMO_DB", "WBP_DB"]  # each ledger, once
    assert {line["pipeline"] for line in data["grid"]} == {PIPELINE}
    # with several pipelines, each series says whose it is
    assert {s["label"] for s in data["rows"]["datasets"]} == {
        f"{PIPELINE} bronze",
        f"{PIPELINE} silver",
        f"{PIPELINE} gold",
    }
    assert "all pipelines" in out.read_text(encoding="utf-8").split("</title>")[0]
