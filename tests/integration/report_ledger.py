"""A run history to report on: ledger rows written with :func:`xoelt.ledger.record` (as runs
write them) and, optionally, a data-test results table with the shape the data-test
feature's migration (V002) creates, so the report is tested with and without it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from xoelt import ledger
from xoelt.core import make_plan
from xoelt.runtime import Runtime
from xoelt.settings import Settings
from xoelt.warehouse.base import Warehouse, execute, literal

PIPELINE = "demo/gladly_demo"
SOURCES = ("contact_timestamps", "work_sessions", "agents")
STAGES = ("extract", "stage", "load", "transform")
EVIL = "</script><script>window.pwned = 1</script> & <b>bold</b> \"quoted\" 'single'"
"""A failure message a hostile source could provoke: must show as text, never run."""

# the demo pipeline's windows (America/New_York, lag one day) for run dates 11-03..11-05
WINDOWS = [
    ("2026-11-02T00:00:00-05:00", "2026-11-03T00:00:00-05:00"),
    ("2026-11-03T00:00:00-05:00", "2026-11-04T00:00:00-05:00"),
    ("2026-11-04T00:00:00-05:00", "2026-11-05T00:00:00-05:00"),
]

TEST_RESULTS_DDL = """CREATE TABLE IF NOT EXISTS "{db}"."XOELT"."TEST_RESULTS" (
    "RUN_ID" VARCHAR, "PIPELINE" VARCHAR, "SOURCE" VARCHAR,
    "WINDOW_START" TIMESTAMP_TZ, "WINDOW_END" TIMESTAMP_TZ,
    "TEST_NAME" VARCHAR, "TEST_KIND" VARCHAR, "TABLE_NAME" VARCHAR,
    "SEVERITY" VARCHAR, "STATUS" VARCHAR, "FAILING_ROWS" NUMBER(38, 0),
    "EXAMPLE_KEYS" VARCHAR, "MESSAGE" VARCHAR, "TESTED_AT" TIMESTAMP_TZ)"""


def _record(
    wh: Warehouse,
    db: str,
    run: str,
    source: str,
    stage: str,
    w: int,
    *,
    status: str = "success",
    rows: int | None = None,
    message: str = "",
) -> None:
    start, end = WINDOWS[w]
    ledger.record(
        wh,
        db,
        run_id=run,
        pipeline=PIPELINE,
        source=source,
        stage=stage,
        window_start=start,
        window_end=end,
        started_at=datetime.now(UTC) - timedelta(seconds=2),
        status=status,
        rows=rows,
        message=message,
    )


def seed_ledger(wh: Warehouse, db: str) -> None:
    """Window 0: all good. Window 1: work_sessions failed at load (the EVIL message), then a
    rerun of it succeeded. Window 2: agents interrupted in transform; gold never ran."""
    ledger.apply_migrations(wh, db)
    for w, run in ((0, "run-a"), (1, "run-b")):
        for source in SOURCES:
            for stage in STAGES:
                failed = w == 1 and source == "work_sessions" and stage == "load"
                if failed:
                    _record(wh, db, run, source, stage, w, status="failed", message=EVIL)
                    break
                _record(wh, db, run, source, stage, w, rows=40 + w)
        if w == 0:
            _record(wh, db, run, "gold", "gold", w, rows=120)
    for stage in STAGES:  # the rerun of window 1's failed source
        _record(wh, db, "run-c", "work_sessions", stage, 1, rows=41)
    for source in SOURCES:
        for stage in STAGES:
            if source == "agents" and stage == "transform":
                _record(wh, db, "run-d", source, stage, 2, status="interrupted", message="SIGTERM")
                break
            _record(wh, db, "run-d", source, stage, 2, rows=42)


def create_test_results(wh: Warehouse, db: str) -> None:
    """The data-test results table, with a pass, a warn and a failure (EVIL message)."""
    execute(wh, TEST_RESULTS_DDL.format(db=db))
    table = f'"{db}"."XOELT"."TEST_RESULTS"'
    rows = [
        ("not_null_contact_id", "not_null", "error", "pass", 0, "[]", ""),
        ("volume_contacts", "volume", "warn", "warn", 0, "[]", "rows 40 < 50% of median 90"),
        ("unique_agent_id", "unique", "error", "fail", 2, '["a-1", "a-2"]', EVIL),
    ]
    start, end = WINDOWS[2]
    for i, (name, kind, severity, status, failing, keys, message) in enumerate(rows):
        values = ", ".join(
            [
                literal("run-d"),
                literal(PIPELINE),
                literal("agents"),
                f"{literal(start)}::TIMESTAMP_TZ",
                f"{literal(end)}::TIMESTAMP_TZ",
                literal(name),
                literal(kind),
                literal("DEMO_DB.SILVER.AGENTS"),
                literal(severity),
                literal(status),
                str(failing),
                literal(keys),
                literal(message),
                f"{literal(f'2026-11-05T07:0{i}:00+00:00')}::TIMESTAMP_TZ",
            ]
        )
        execute(wh, f"INSERT INTO {table} VALUES ({values})")


def seed_local(with_tests: bool) -> None:
    """The history in the local target's DEMO_DB (``$XOELT_HOME``), as the demo's runs keep it."""
    settings = Settings.from_env()
    with Runtime(make_plan(PIPELINE, "2026-11-03", settings=settings), settings) as rt:
        seed_ledger(rt.warehouse, "DEMO_DB")
        if with_tests:
            create_test_results(rt.warehouse, "DEMO_DB")
