"""Incremental silver on DuckDB: MERGE on the key, the newest window wins, in any order."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.integration.sources.conftest import SourceHarness
from xoelt.storage.local import LocalObjectStore

REPO = Path(__file__).resolve().parents[3]
PULLS = {  # window date → the full pull the source returned that day
    "2026-11-02": "Id,Status,Amount\n1,open,10\n2,open,20\n",
    "2026-11-03": "Id,Status,Amount\n2,closed,25\n3,open,30\n3,open,31\n",  # 3 twice: last wins
    "2026-11-04": "Id,Status,Amount\n1,closed,\n",
}


def state(h: SourceHarness) -> list[tuple]:
    con = duckdb.connect(str(h.home / "warehouse" / "TEST_DB.duckdb"), read_only=True)
    try:
        return con.execute(
            'SELECT "ID", "STATUS", "AMOUNT" FROM "SILVER"."TICKETS" ORDER BY 1'
        ).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("order", [("03", "04", "05"), ("05", "03", "04")])
def test_merge_keeps_the_newest_window(
    harness: SourceHarness, monkeypatch: pytest.MonkeyPatch, order: tuple[str, ...]
) -> None:
    monkeypatch.setenv("XOELT_SQL", str(REPO / "sql"))
    store = LocalObjectStore(harness.home / "objects")
    for day, body in PULLS.items():
        store.put_bytes("landing", f"t/{day}/pull.csv", body.encode())
    harness.pipeline(
        "tickets",
        {
            "source_type": "s3_upload",
            "load_strategy": "incremental",
            "extractor": {"bucket": "landing", "prefix": "t/{date}/"},
            "silver": {
                "table": "TICKETS",
                "primary_key": ["ID"],
                "columns": {"AMOUNT": "NUMBER(38,2)"},
            },
        },
    )
    for day in order:
        result = harness.cli("run", "test/tickets", "--date", f"2026-11-{day}")
        assert result.exit_code == 0, result.output
    assert state(harness) == [("1", "closed", None), ("2", "closed", 25), ("3", "open", 31)]
