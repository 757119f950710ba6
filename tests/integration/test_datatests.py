"""Data tests on every engine: each kind passing and failing, warn and error, recorded.

The SQL is what :mod:`xoelt.datatests.sql` builds (Snowflake's dialect), run through the
real runner on the ``engine`` fixture of the warehouse contract (DuckDB, and the connector
against fakesnow). The silver table is written by hand with a known set of defects; the
full_refresh strategy's scope limits the tests to this window's partition, which an older
window's row (a duplicate ID) proves.
"""

from __future__ import annotations

import datetime as dt
import json
import types
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog
from pydantic import TypeAdapter

from tests.integration.test_warehouse_contract import (
    WINDOW,
    Engine,
    engine,
    fakesnow_kwargs,
    snowflake_database,
    snowflake_wh,
    stage_bucket,
)
from xoelt import ledger
from xoelt.config.datatests import DataTest
from xoelt.config.models import SilverConfig
from xoelt.datatests.runner import Suite, run_suites
from xoelt.datatests.sql import Subject
from xoelt.errors import DataTestFailed
from xoelt.strategies import STRATEGIES, SilverJob
from xoelt.timewindow import TimeWindow
from xoelt.warehouse.base import execute

__all__ = ["engine", "fakesnow_kwargs", "snowflake_database", "snowflake_wh", "stage_bucket"]

PIPELINE = "test/p"
TESTS = TypeAdapter(DataTest)

# (declared test, expected status, failing rows, example keys)
CASES: list[tuple[dict[str, Any], str, int | None, list[Any]]] = [
    ({"kind": "not_null", "column": "STATUS"}, "pass", 0, []),
    ({"kind": "not_null", "column": "ID"}, "fail", 1, [None]),
    ({"kind": "unique", "columns": ["ID", "STATUS"]}, "pass", 0, []),
    ({"kind": "unique", "columns": "ID"}, "fail", 2, ["b"]),
    (
        {"kind": "accepted_values", "column": "STATUS", "values": ["open", "closed", "weird"]},
        "pass",
        0,
        [],
    ),
    (
        {"kind": "accepted_values", "column": "STATUS", "values": ["open", "closed"]},
        "fail",
        1,
        ["c"],
    ),
    (
        {
            "kind": "accepted_values",
            "column": "AMOUNT",
            "values": [10, 5, 3, 1],
            "severity": "warn",
        },
        "warn",
        1,
        ["b"],
    ),
    (
        {"kind": "relationships", "column": "PARENT_ID", "to": "ALL_PARENTS", "field": "ID"},
        "pass",
        0,
        [],
    ),
    (
        {"kind": "relationships", "column": "PARENT_ID", "to": "SILVER.PARENTS", "field": "ID"},
        "fail",
        1,
        ["b"],
    ),
    ({"kind": "row_count", "min": 1, "max": 5}, "pass", None, []),
    ({"kind": "row_count", "max": 4, "severity": "warn"}, "warn", None, []),
    ({"kind": "row_count", "min": 6}, "fail", None, []),
    ({"kind": "freshness", "column": "UPDATED_AT", "max_age": {"hours": 7}}, "pass", None, []),
    ({"kind": "freshness", "column": "UPDATED_AT", "max_age": {"hours": 5}}, "fail", None, []),
    ({"kind": "expression", "expression": "AMOUNT < 100 AND STATUS <> ''"}, "pass", 0, []),
    (
        {"kind": "expression", "expression": "AMOUNT >= 0", "name": "amount_positive"},
        "fail",
        1,
        ["b"],
    ),
    ({"kind": "volume", "min_percent": 50}, "pass", None, []),
    ({"kind": "volume", "min_percent": 60, "severity": "warn"}, "warn", None, []),
    ({"kind": "volume", "max_percent": 40, "min_percent": 10}, "fail", None, []),
    ({"kind": "volume", "windows": 7, "min_history": 4, "min_percent": 90}, "pass", None, []),
    ({"kind": "not_null", "column": "NOPE"}, "fail", None, []),
    (
        {"kind": "freshness", "column": "STATUS", "max_age": {"days": 1}, "severity": "warn"},
        "warn",
        None,
        [],
    ),
]


def _window() -> TimeWindow:
    tz = ZoneInfo("America/New_York")
    start, end = (dt.datetime.fromisoformat(w).astimezone(tz) for w in WINDOW)
    return TimeWindow("daily", start, end, "America/New_York")


def _ts(text: str | None) -> str:
    return "NULL" if text is None else f"'{text}'::TIMESTAMP_TZ"


def _setup(engine: Engine) -> tuple[Any, Subject]:
    """Silver THINGS with known defects, its parents, three earlier windows in the ledger."""
    wh, db = engine.wh, engine.database
    ledger.apply_migrations(wh, db)
    table = engine.table("THINGS", "SILVER")
    execute(wh, f'CREATE SCHEMA IF NOT EXISTS "{db}"."SILVER"')
    execute(
        wh,
        f'CREATE TABLE {table.sql} ("ID" VARCHAR, "STATUS" VARCHAR, "AMOUNT" NUMBER(38,0), '
        '"PARENT_ID" VARCHAR, "UPDATED_AT" TIMESTAMP_TZ, "_XO_WINDOW_START" TIMESTAMP_TZ)',
    )
    this, older = WINDOW[0], "2026-11-01T00:00:00-05:00"
    rows = [
        ("'a'", "'open'", "10", "'p1'", _ts("2026-11-02T20:00:00+00:00"), this),
        ("'b'", "'closed'", "5", "'p2'", _ts("2026-11-02T21:00:00+00:00"), this),
        ("'b'", "'open'", "-1", "'p9'", _ts(None), this),  # duplicate, negative, orphan
        ("'c'", "'weird'", "3", "NULL", _ts("2026-11-02T22:00:00+00:00"), this),
        ("NULL", "'open'", "1", "'p1'", _ts("2026-11-02T23:00:00+00:00"), this),
        ("'a'", "'open'", "1", "'p1'", _ts("2026-11-01T20:00:00+00:00"), older),  # not this window
    ]
    values = ", ".join(f"({', '.join([*r[:5], _ts(r[5])])})" for r in rows)
    execute(wh, f"INSERT INTO {table.sql} VALUES {values}")
    for name, ids in (("PARENTS", ["p1", "p2"]), ("ALL_PARENTS", ["p1", "p2", "p9"])):
        parents = table.with_name(name)
        execute(wh, f'CREATE TABLE {parents.sql} ("ID" VARCHAR)')
        execute(wh, f"INSERT INTO {parents.sql} VALUES {', '.join(f'({i!r})' for i in ids)}")
    for day, count in ((29, 12), (30, 10), (31, 10)):  # median 10; this window has 5
        ledger.record(
            wh,
            db,
            run_id=f"old{day}",
            pipeline=PIPELINE,
            source="things",
            stage="transform",
            window_start=f"2026-10-{day}T00:00:00-04:00",
            window_end=f"2026-10-{day}T23:59:00-04:00",
            status="success",
            started_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
            rows=count,
        )
    window = _window()
    job = SilverJob(table, table, SilverConfig(), window.start.isoformat(), window.timezone)
    scope = STRATEGIES["full_refresh"].test_scope(job)
    plan = types.SimpleNamespace(window=window, database=db, name=PIPELINE)
    rt = types.SimpleNamespace(warehouse=wh, plan=plan, run_id="run1")
    return rt, Subject("things", table, scope, ("ID",))


def test_every_kind_passes_and_fails_and_is_recorded(engine: Engine) -> None:
    rt, subject = _setup(engine)
    tests = tuple(TESTS.validate_python(case) for case, *_ in CASES)
    report = run_suites(rt, [Suite(subject, tests, current_rows=5)], structlog.get_logger())

    got = [(o.status, o.failing_rows, o.examples) for o in report.outcomes]
    assert got == [(status, rows, ex) for _, status, rows, ex in CASES]
    by_name = {o.test_name: o for o in report.outcomes}
    assert "unique_SILVER_THINGS_ID" in by_name and "amount_positive" in by_name
    assert "volume_SILVER_THINGS_2" in by_name  # repeated names are numbered
    assert by_name["row_count_SILVER_THINGS_3"].message == "5 row(s); expected at least 6"
    assert (
        "is 50% of the median 10 of the last 3 windows" in by_name["volume_SILVER_THINGS"].message
    )
    assert "not enough history" in by_name["volume_SILVER_THINGS_4"].message
    assert by_name["freshness_SILVER_THINGS_STATUS"].message.startswith("STATUS is not a timestamp")
    assert by_name["not_null_SILVER_THINGS_NOPE"].message == (
        f"cannot run: {subject.table} has no column NOPE"
    )

    findings = report.findings
    assert [f.kind for f in findings] == ["data_test"] * sum(c[1] != "pass" for c in CASES)
    dup = next(f for f in findings if f.data["test"] == "unique_SILVER_THINGS_ID")
    assert (dup.severity, dup.count) == ("error", 2)
    assert dup.data == {
        "test": "unique_SILVER_THINGS_ID",
        "table": str(subject.table),
        "kind": "unique",
        "examples": ["b"],
    }
    assert {f.severity for f in findings if f.data["test"].startswith("row_count")} == {
        "warn",
        "error",
    }

    with pytest.raises(DataTestFailed) as caught:
        report.raise_for_errors()
    assert str(caught.value).startswith(
        f"data test not_null_SILVER_THINGS_ID failed on {subject.table}: 1 row(s) with NULL ID "
        "(and "
    )
    assert caught.value.exit_code == 1 and len(caught.value.findings) == len(findings)

    stored = execute(
        engine.wh,
        'SELECT "RUN_ID", "PIPELINE", "SOURCE", "TEST_NAME", "TEST_KIND", "TABLE_NAME", '
        '"SEVERITY", "STATUS", "FAILING_ROWS", "EXAMPLE_KEYS", "WINDOW_START" '
        f'FROM "{engine.database}"."XOELT"."TEST_RESULTS" ORDER BY "TESTED_AT"',
    )
    assert len(stored) == len(CASES)
    row = next(r for r in stored if r[3] == "unique_SILVER_THINGS_ID")
    assert row[:9] == ("run1", PIPELINE, "things", "unique_SILVER_THINGS_ID", "unique",
                       str(subject.table), "error", "fail", 2)  # fmt: skip
    assert json.loads(row[9]) == ["b"]
    assert row[10] == dt.datetime(2026, 11, 2, 5, tzinfo=dt.UTC)
    assert sorted({r[7] for r in stored}) == ["fail", "pass", "warn"]


def test_only_warnings_do_not_raise(engine: Engine) -> None:
    rt, subject = _setup(engine)
    warn = TESTS.validate_python({"kind": "unique", "columns": ["ID"], "severity": "warn"})
    compound = TESTS.validate_python({"kind": "unique", "columns": ["ID", "PARENT_ID"]})
    report = run_suites(rt, [Suite(subject, (warn, compound))], structlog.get_logger())
    assert [o.status for o in report.outcomes] == ["warn", "pass"]
    report.raise_for_errors()  # nothing failed at severity error
    (finding,) = report.findings
    assert (finding.severity, finding.count, finding.data["examples"]) == ("warn", 2, ["b"])
