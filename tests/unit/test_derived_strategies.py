"""Every load strategy reads bronze through one seam, :class:`BronzeRows`: with a derived
source's ``where`` each strategy's script, run on DuckDB, writes only the rows it keeps."""

from __future__ import annotations

import duckdb
import pytest

from xoelt.config.models import SilverConfig
from xoelt.strategies import STRATEGIES, SilverColumns, SilverJob
from xoelt.warehouse.base import METADATA_COLUMNS, BronzeRows, TableRef, quote
from xoelt.warehouse.duckdb import to_duckdb

BRONZE = TableRef("DB", "BRONZE", "PEOPLE")
SILVER = TableRef("DB", "SILVER", "TEAM_A")
CFG = SilverConfig(primary_key=["ID"], columns={"ID": "NUMBER(38,0)"})  # type: ignore[arg-type]
START = "2026-11-02T00:00:00-05:00"
ROWS = [("1", "a", "Ann"), ("2", "a", "Bob"), ("3", "b", "Cy"), ("4", "c", None)]


def bronze(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("ATTACH ':memory:' AS \"DB\"")
    con.execute('CREATE SCHEMA "DB"."BRONZE"')
    meta = ", ".join(f"{quote(n)} {t}" for n, t in METADATA_COLUMNS)
    con.execute(
        to_duckdb(
            f'CREATE TABLE {BRONZE.sql} ("ID" VARCHAR, "TEAM" VARCHAR, "NAME" VARCHAR, {meta})'
        )
    )
    for number, row in enumerate(ROWS, 1):
        con.execute(
            f"INSERT INTO {BRONZE.sql} VALUES (?, ?, ?, 'run', 'f.csv', ?, now(), "
            f"'{START}'::TIMESTAMPTZ, '{START}'::TIMESTAMPTZ + INTERVAL 1 DAY)",
            [*row, number],
        )


@pytest.mark.parametrize("strategy", ["full_refresh", "incremental", "historical"])
def test_each_strategy_writes_only_the_rows_the_where_keeps(strategy: str) -> None:
    con = duckdb.connect()
    bronze(con)
    rows = BronzeRows(BRONZE, "TEAM = 'a' OR NAME IS NULL")
    job = SilverJob(rows, SILVER, CFG, START, "America/New_York")
    columns = SilverColumns.of(["ID", "TEAM", "NAME"], CFG)
    for statement in STRATEGIES[strategy].script(job, columns).statements():
        con.execute(to_duckdb(statement))
    got = con.execute(f'SELECT "ID", "TEAM", "NAME" FROM {SILVER.sql} ORDER BY 1').fetchall()
    assert got == [(1, "a", "Ann"), (2, "a", "Bob"), (4, "c", None)]


def test_rows_without_a_where_are_the_table_and_count_as_it() -> None:
    assert BronzeRows(BRONZE).sql == BRONZE.sql
    assert str(BronzeRows(BRONZE)) == "DB.BRONZE.PEOPLE"
    filtered = BronzeRows(BRONZE, "TEAM = 'a'")
    assert (
        filtered.sql
        == '(SELECT * FROM "DB"."BRONZE"."PEOPLE" WHERE (TEAM = \'a\')) AS "_XO_BRONZE"'
    )
    con = duckdb.connect()
    bronze(con)
    count = con.execute(to_duckdb(f"SELECT COUNT(*) FROM {filtered.sql}")).fetchone()
    assert count == (2,)
