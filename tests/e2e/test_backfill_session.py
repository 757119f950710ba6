"""A backfill is one warehouse session: opened once, migrated once, lent to every window.

Connections are counted where they are made (the DuckDB target config's ``open``) and
migration checks where they reach the warehouse (statements on ``XOELT.SCHEMA_MIGRATIONS``);
the windows' ledger rows are read back from the DuckDB file afterwards.
"""

from __future__ import annotations

import csv
import io
import threading
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import duckdb
import pytest

from tests.e2e.conftest import REPO, Project
from xoelt.backfill import backfill, plan_windows
from xoelt.errors import WarehouseError
from xoelt.runtime import SharedConnections
from xoelt.storage.local import LocalObjectStore, LocalStoreConfig
from xoelt.warehouse.duckdb import DuckDBConfig, DuckDBWarehouse

PIPE = "demo/gladly_demo"
STAGE_ROWS = 3 * 4 + 1  # per window: 3 sources x 4 stages, + gold


@pytest.fixture
def spied(project: Project, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The demo's files published; counts of warehouse connections and store clients made,
    and of migration checks."""
    project.publish_demo_files()
    monkeypatch.chdir(project.root)
    monkeypatch.setenv("XOELT_HOME", str(project.home))
    seen: Counter[str] = Counter()
    real_open, real_query, real_store = (
        DuckDBConfig.open,
        DuckDBWarehouse.query,
        LocalStoreConfig.open,
    )

    def counting_open(self: DuckDBConfig, *args: Any, **kwargs: Any) -> DuckDBWarehouse:
        seen["opened"] += 1
        return real_open(self, *args, **kwargs)

    def counting_query(self: DuckDBWarehouse, sql: str, *, native: bool = False) -> Any:
        if "SCHEMA_MIGRATIONS" in sql and sql.lstrip().upper().startswith("SELECT"):
            seen["migration checks"] += 1
        return real_query(self, sql, native=native)

    def counting_store(self: LocalStoreConfig) -> LocalObjectStore:
        seen["stores"] += 1
        return real_store(self)

    monkeypatch.setattr(DuckDBConfig, "open", counting_open)
    monkeypatch.setattr(LocalStoreConfig, "open", counting_store)
    monkeypatch.setattr(DuckDBWarehouse, "query", counting_query)
    return seen


def ledger_rows(project: Project) -> list[tuple[Any, ...]]:
    """(window start date, status, rows of that status, run ids) per window and status."""
    con = duckdb.connect(str(project.home / "warehouse" / "DEMO_DB.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT CAST(timezone('America/New_York', \"WINDOW_START\") AS DATE)::VARCHAR, "
            '"STATUS", COUNT(*), COUNT(DISTINCT "RUN_ID") FROM "XOELT"."RUN_LEDGER" '
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


def test_one_connection_and_one_migration_for_every_window(
    project: Project, spied: Counter[str]
) -> None:
    plans = plan_windows(PIPE, date(2026, 11, 3), date(2026, 11, 5), None)
    result = backfill(plans)
    assert [o.status for o in result.outcomes] == ["done"] * 3
    assert spied == {"opened": 1, "migration checks": 1, "stores": 1}
    assert ledger_rows(project) == [
        (day, "success", STAGE_ROWS, 1) for day in ("2026-11-02", "2026-11-03", "2026-11-04")
    ]
    for outcome in result.outcomes:  # each window is still its own run, reported as one
        assert outcome.report is not None and outcome.seconds > 0
        assert {s.name for s in outcome.report.sources} == {
            "contact_timestamps",
            "work_sessions",
            "agents",
        }

    again = backfill(plans)  # the ledger check for done windows borrows the session too
    assert [o.status for o in again.outcomes] == ["skipped"] * 3
    assert spied == {"opened": 2, "migration checks": 2, "stores": 1}  # skipped: no store


def ragged(text: str) -> str:
    """One row with two fields more than the header: extract refuses the file."""
    return text + "ws_bad" + ",x" * 16 + "\r\n"


def not_a_number(text: str) -> str:
    """A handle time that is no number: silver's cast check (on the warehouse) refuses it."""
    rows = list(csv.DictReader(io.StringIO(text)))
    rows[0]["work_session_handle_time_sec"] = "about an hour"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize(
    ("spoil", "stage"), [(ragged, "extract"), (not_a_number, "transform")], ids=["ragged", "cast"]
)
def test_a_failed_window_leaves_the_next_ones_working_on_the_same_connection(
    project: Project, spied: Counter[str], spoil: Callable[[str], str], stage: str
) -> None:
    """Bad data in the middle day: that window fails, the windows after it (``keep_going``)
    succeed, and nothing reconnected."""
    store = LocalObjectStore(project.home / "objects")
    good = REPO / "pipelines/demo/data/gladly/work_sessions/2026-11-03/work_sessions.csv"
    bad = spoil(good.read_text(encoding="utf-8")).encode()
    store.put_bytes("xoelt-landing", "gladly/work_sessions/2026-11-03/work_sessions.csv", bad)
    plans = plan_windows(PIPE, date(2026, 11, 3), date(2026, 11, 5), None)
    result = backfill(plans, keep_going=True)
    assert [o.status for o in result.outcomes] == ["done", "failed", "done"]
    assert result.outcomes[1].error.startswith(f"{stage} failed source=work_sessions")
    assert spied["opened"] == 1
    rows = ledger_rows(project)
    assert ("2026-11-02", "success", STAGE_ROWS, 1) in rows
    assert ("2026-11-04", "success", STAGE_ROWS, 1) in rows
    assert [r[1] for r in rows if r[0] == "2026-11-03"] == ["failed", "success"]


def test_a_session_is_rolled_back_after_a_failed_run_and_reopened_if_broken(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a window's Runtime does with a borrowed connection when the run failed."""
    monkeypatch.chdir(project.root)
    monkeypatch.setenv("XOELT_HOME", str(project.home))
    (plan,) = plan_windows(PIPE, date(2026, 11, 3), date(2026, 11, 3), None)
    with SharedConnections(plan) as session:
        wh = session.connection()
        wh.query('CREATE TABLE "DEMO_DB"."XOELT"."T" ("X" INTEGER)')
        wh.query("BEGIN TRANSACTION", native=True)
        wh.query('INSERT INTO "DEMO_DB"."XOELT"."T" VALUES (1)')
        with pytest.raises(WarehouseError):  # aborts DuckDB's transaction
            wh.query('SELECT * FROM "DEMO_DB"."XOELT"."NO_SUCH_TABLE"')
        session.release(wh, failed=True)
        assert session.connection() is wh and session.opened == 1
        assert wh.query('SELECT COUNT(*) FROM "DEMO_DB"."XOELT"."T"').rows == [(0,)]

        assert isinstance(wh, DuckDBWarehouse)
        wh.con.close()  # the session died under the run
        session.release(wh, failed=True)
        fresh = session.connection()
        assert fresh is not wh and session.opened == 2
        assert fresh.query("SELECT 1", native=True).rows == [(1,)]


def test_a_connection_handed_back_is_lent_again_from_any_thread(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger check borrows on the main thread, then a worker thread gets the same one."""
    monkeypatch.chdir(project.root)
    monkeypatch.setenv("XOELT_HOME", str(project.home))
    (plan,) = plan_windows(PIPE, date(2026, 11, 3), date(2026, 11, 3), None)
    with SharedConnections(plan) as shared:
        wh = shared.connection()
        shared.release(wh, failed=False)
        lent: list[object] = []
        worker = threading.Thread(target=lambda: lent.append(shared.connection()))
        worker.start()
        worker.join()
        assert lent == [wh] and shared.opened == 1
