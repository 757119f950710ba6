"""SCD2 statements: Snowflake text that parses for every ``hard_deletes`` mode, a typed row hash
that only values change, validity dates as literals, and the ``hard_deletes`` key."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import sqlglot

from tests.unit.test_config import base, problems, write
from xoelt.config.models import SilverConfig
from xoelt.pipelines import load_pipeline
from xoelt.scd2 import HARD_DELETES, canonical, row_hash
from xoelt.strategies import STRATEGIES, SilverColumns, SilverJob
from xoelt.warehouse.base import TableRef
from xoelt.warehouse.duckdb import MACROS, to_duckdb

BRONZE = TableRef("DB", "BRONZE", "GLADLY_AGENTS")
SILVER = TableRef("DB", "SILVER", "AGENTS")
BERLIN_START = "2026-11-02T00:00:00+01:00"  # 2026-11-01T23:00Z


def statements(mode: str, columns: list[str] | None = None) -> list[str]:
    cfg = SilverConfig.model_validate(
        {"primary_key": ["AGENT_ID"], "columns": {"SINCE": "TIMESTAMP_TZ"}, "hard_deletes": mode}
    )
    job = SilverJob(BRONZE, SILVER, cfg, BERLIN_START, "Europe/Berlin")
    script = STRATEGIES["historical"].script(job, SilverColumns.of(columns, cfg))
    return script.statements()


@pytest.mark.parametrize("mode", HARD_DELETES)
def test_every_mode_parses_as_snowflake_and_translates(mode: str) -> None:
    stmts = statements(mode, ["AGENT_ID", "NAME", "SINCE"])
    before = stmts[: stmts.index("BEGIN")]
    assert all(s.startswith(("CREATE", "ALTER")) for s in before)  # DDL before BEGIN
    assert not any(s.startswith(("CREATE", "ALTER", "DROP")) for s in stmts[len(before) :])
    for stmt in stmts:
        sqlglot.parse_one(stmt, read="snowflake")
        to_duckdb(stmt)
    rebuild = stmts[-2]
    assert rebuild.startswith('INSERT INTO "DB"."SILVER"."AGENTS" (')
    assert ("UNION ALL" in rebuild) == (mode == "new_record")  # deletion records
    create = [
        s for s in before if s.startswith('CREATE TABLE IF NOT EXISTS "DB"."SILVER"."AGENTS" ')
    ]
    assert ('"IS_DELETED" BOOLEAN' in create[0]) == (mode == "new_record")
    gap = 'LAG(o."_XO_WN")'  # a window without the key ends a version
    assert (gap in rebuild) == (mode != "ignore")


def test_the_plan_renders_placeholders_and_parses() -> None:
    for stmt in statements("invalidate"):
        if "/*" not in stmt:
            sqlglot.parse_one(stmt, read="snowflake")
    assert "MD5(/* every non-NULL non-key column" in statements("invalidate")[-2]


def test_windows_are_recorded_with_their_local_date_as_a_literal() -> None:
    stmts = statements("invalidate", ["AGENT_ID", "NAME", "SINCE"])
    record = [s for s in stmts if s.startswith('INSERT INTO "DB"."SILVER"."AGENTS__WINDOWS"')]
    assert record[0].endswith(f"SELECT '{BERLIN_START}'::TIMESTAMP_TZ, '2026-11-02'::DATE")
    # Windows an earlier version recorded only as snapshots: dated in the pipeline's zone.
    assert "CONVERT_TIMEZONE('Europe/Berlin', s.\"_XO_WINDOW_START\")::DATE" in record[1]
    assert "CURRENT_" not in " ".join(stmts)  # nothing from the session's clock or zone


def hashes(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    return [r[0] for r in con.execute(to_duckdb(sql)).fetchall()]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Kolkata'")  # nothing may depend on the session's zone
    for macro in MACROS:
        con.execute(macro)
    return con


def test_the_hash_sees_values_not_columns_order_or_offsets(con: duckdb.DuckDBPyConnection) -> None:
    con.execute('CREATE TABLE t ("A" VARCHAR, "T" TIMESTAMPTZ, "N" DECIMAL(10,2), "X" VARCHAR)')
    con.execute(
        "INSERT INTO t VALUES ('a', '2026-11-01T10:00:00+01:00', 1.5, NULL), "
        "('a', '2026-11-01T09:00:00Z', 1.50, NULL), ('a', '2026-11-01T09:00:00.000001Z', 1.5, NULL)"
    )
    typed = [("A", "VARCHAR"), ("T", "TIMESTAMP_TZ"), ("N", "NUMBER(10,2)")]
    first, same_instant, later = hashes(con, f"SELECT {row_hash(typed)} FROM t")
    assert first == same_instant != later
    # A column that is NULL (or absent), and the order columns come in, change nothing.
    with_x = hashes(con, f"SELECT {row_hash([*reversed(typed), ('X', 'VARCHAR')])} FROM t")
    assert with_x == [first, same_instant, later]


def test_the_hash_is_unambiguous(con: duckdb.DuckDBPyConnection) -> None:
    values: list[tuple[str | None, str | None]] = [
        (None, "x"),
        ("", "x"),
        ("a;b", "c"),
        ("a", "b;c"),
        ("ab", "c"),
        ("a", "bc"),
    ]
    values += [(None, None), ("", None), (None, ""), ("B:1:x;", None)]
    con.execute('CREATE TABLE t ("A" VARCHAR, "B" VARCHAR)')
    con.executemany("INSERT INTO t VALUES (?, ?)", values)
    got = hashes(con, f"SELECT {row_hash([('A', 'VARCHAR'), ('B', 'VARCHAR')])} FROM t")
    assert len(set(got)) == len(values)


CANONICAL = [
    (
        "TIMESTAMP_TZ",
        "'2026-11-01T04:00:00.25-05:00'::TIMESTAMP_TZ",
        "2026-11-01 09:00:00.250000000",
    ),
    ("TIMESTAMP_NTZ", "'2026-11-01 04:00:00'::TIMESTAMP_NTZ", "2026-11-01 04:00:00.000000000"),
    ("DATE", "'2026-11-02'::DATE", "20759"),
    ("DATE", "'1969-12-31'::DATE", "-1"),
    ("NUMBER(10,2)", "1.5::NUMBER(10,2)", "1.50"),
    ("NUMBER(38,0)", "'007'::NUMBER(38,0)", "7"),
    ("BOOLEAN", "TRUE", "true"),
    ("VARCHAR", "'x'", "x"),
]


@pytest.mark.parametrize(("type_", "value", "text"), CANONICAL)
def test_canonical_text_of_typed_values(
    con: duckdb.DuckDBPyConnection, type_: str, value: str, text: str
) -> None:
    """What each type hashes as: texts Snowflake writes the same way for these SQL texts
    (UTC, explicit format, fixed point), never a session's output format."""
    assert hashes(con, f"SELECT {canonical(value, type_)}") == [text]


def test_instants_hash_through_utc_in_snowflakes_sql() -> None:
    """Snowflake keeps a TIMESTAMP_TZ's offset: the text is of the UTC instant, formatted
    explicitly (not by TIMESTAMP_OUTPUT_FORMAT)."""
    sql = canonical('"T"', "TIMESTAMP_TZ")
    assert sql == "TO_VARCHAR(CONVERT_TIMEZONE('UTC', \"T\"), 'YYYY-MM-DD HH24:MI:SS.FF9')"
    sqlglot.parse_one(f"SELECT {sql}", read="snowflake")


def test_hard_deletes_is_accepted_and_a_bad_value_named(tmp_path: Path) -> None:
    text = base().replace(
        "    snowflake:\n      target_table: T_THINGS\n",
        "    snowflake:\n      target_table: T_THINGS\n    silver:\n"
        "      primary_key: [ID]\n      hard_deletes: {mode}\n",
    )
    text = text.replace("load_strategy: full_refresh", "load_strategy: historical")
    for mode in HARD_DELETES:
        pipeline = load_pipeline(write(tmp_path, text.replace("{mode}", mode)), env={})
        assert pipeline.sources["things"].silver.hard_deletes == mode
    default = load_pipeline(
        write(tmp_path, text.replace("      hard_deletes: {mode}\n", "")), env={}
    )
    assert default.sources["things"].silver.hard_deletes == "invalidate"
    (msg,) = problems(tmp_path, text.replace("{mode}", "soft"))
    assert ":23 sources.things.silver.hard_deletes:" in msg
    assert all(m in msg for m in HARD_DELETES) and "soft" in msg
