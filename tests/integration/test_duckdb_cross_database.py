"""The local warehouse attaches other pipelines' databases read-only, for cross-database gold.

DuckDB locks a database file per process: any number of processes may open it read-only,
but one holding it read-write excludes every other process, readers included.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xoelt.errors import WarehouseError
from xoelt.warehouse.base import TableRef
from xoelt.warehouse.duckdb import DuckDBWarehouse

DIM = TableRef("CORE_DB", "GOLD", "DIM_AGENTS")


def _core_db(directory: Path) -> None:
    """CORE_DB's file with its gold table, as the core pipeline leaves it."""
    wh = DuckDBWarehouse(directory, ["CORE_DB"], "CORE_DB")
    try:
        wh.query('CREATE SCHEMA IF NOT EXISTS "CORE_DB"."GOLD"')
        wh.query(f"CREATE TABLE {DIM.sql} AS SELECT 'ag_01' AS \"AGENT_ID\"")
    finally:
        wh.close()


def test_a_database_without_a_file_is_not_attached_nor_created(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path, ["WBP_DB"], "WBP_DB", read_only=["CORE_DB"])
    try:
        assert wh.table_columns(DIM) is None
        assert wh.read_only == set()
    finally:
        wh.close()
    assert not (tmp_path / "CORE_DB.duckdb").exists()


def test_another_database_is_read_but_never_written(tmp_path: Path) -> None:
    _core_db(tmp_path)
    wh = DuckDBWarehouse(tmp_path, ["WBP_DB"], "WBP_DB", read_only=["CORE_DB"])
    try:
        assert wh.read_only == {"CORE_DB"}
        wh.query('CREATE SCHEMA IF NOT EXISTS "WBP_DB"."GOLD"')
        wh.query(f'CREATE TABLE "WBP_DB"."GOLD"."FCT_X" AS SELECT * FROM {DIM.sql}')
        assert wh.query('SELECT "AGENT_ID" FROM "WBP_DB"."GOLD"."FCT_X"').rows == [("ag_01",)]
        with pytest.raises(WarehouseError, match="read-only"):
            wh.query(f"INSERT INTO {DIM.sql} VALUES ('ag_02')")
    finally:
        wh.close()


def test_a_database_being_written_by_another_process_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    _core_db(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(60)", str(tmp_path / "CORE_DB.duckdb")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(WarehouseError) as failed:
            DuckDBWarehouse(tmp_path, ["WBP_DB"], "WBP_DB", read_only=["CORE_DB"])
    finally:
        holder.kill()
        holder.wait()
    message = str(failed.value)
    assert "CORE_DB.duckdb read-only (to read database CORE_DB)" in message
    assert "is a pipeline of CORE_DB running now?" in message
    # once the writer is gone, the reader attaches
    DuckDBWarehouse(tmp_path, ["WBP_DB"], "WBP_DB", read_only=["CORE_DB"]).close()
