"""Silver SQL: Snowflake text that parses, and a row hash that tells NULL from ''."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot

from xoelt.config.models import SilverConfig
from xoelt.scd2 import row_hash
from xoelt.strategies import STRATEGIES, SilverColumns, SilverJob
from xoelt.warehouse.base import TableRef, quote
from xoelt.warehouse.duckdb import to_duckdb

BRONZE = TableRef("DB", "BRONZE", "GLADLY_AGENTS")
SILVER = TableRef("DB", "SILVER", "AGENTS")
CFG = SilverConfig(primary_key=["AGENT_ID"], columns={"SINCE": "DATE"})  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["full_refresh", "incremental", "historical"])
def test_every_statement_parses_as_snowflake(strategy: str) -> None:
    cols = ["AGENT_ID", "NAME", "SINCE"]
    job = SilverJob(BRONZE, SILVER, CFG, "2026-11-02T00:00:00-05:00")
    stmts = STRATEGIES[strategy].script(job, SilverColumns.of(cols, CFG)).statements()
    assert stmts.index("BEGIN") < stmts.index("COMMIT")
    before = stmts[: stmts.index("BEGIN")]
    assert all(s.startswith(("CREATE", "ALTER")) for s in before)  # DDL before BEGIN
    for stmt in stmts:
        sqlglot.parse_one(stmt, read="snowflake")
        to_duckdb(stmt)


def test_row_hash_is_unambiguous() -> None:
    con = duckdb.connect()
    values = [(None, "x"), ("", "x"), ("a|b", "c"), ("a", "b|c"), ("ab", "c"), ("a", "bc")]
    con.execute('CREATE TABLE t ("A" VARCHAR, "B" VARCHAR)')
    con.executemany("INSERT INTO t VALUES (?, ?)", values)
    expr = to_duckdb(f"SELECT {row_hash([('A', 'VARCHAR'), ('B', 'VARCHAR')])} FROM t")
    hashes = [r[0] for r in con.execute(expr).fetchall()]
    assert len(set(hashes)) == len(values)


def test_identifiers_are_quoted_and_checked() -> None:
    assert quote("AGENT_ID") == '"AGENT_ID"'
    with pytest.raises(ValueError):
        quote('X"; DROP TABLE Y; --')
