"""``run_script`` on a real DuckDB warehouse (files in ``tmp_path``): order, atomicity, checks.

Scripts here are written in DuckDB's own SQL (``native=True``) unless a test is about
translation. What a test observes is what the warehouse holds afterwards; the one
:class:`Recording` wrapper only notes the statements the runner sends, on their way to DuckDB.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from xoelt.errors import DataError, WarehouseError
from xoelt.warehouse.base import (
    Answer,
    BronzeLoad,
    Count,
    RunStamp,
    Script,
    Step,
    TableRef,
    Yields,
    bronze_mismatch,
    check_count,
    ddl,
    load_bronze,
    run_script,
)
from xoelt.warehouse.duckdb import DuckDBWarehouse

T = TableRef("DB", "main", "T")
AUDIT = TableRef("DB", "main", "AUDIT")
HELPER = TableRef("DB", "main", "HELPER")


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    warehouse = DuckDBWarehouse(tmp_path / "wh", ["DB"], "DB")
    yield warehouse
    warehouse.close()


def message(expected: int, got: Count) -> str:
    return f"expected {expected}, got {got.rows}{got.note}; rolled back"


def run(wh: Any, script: Script, expected: int | None = None) -> list[int]:
    return [c.rows for c in run_script(wh, script, expected=expected, mismatch=message).counts]


def rows(wh: DuckDBWarehouse, table: TableRef) -> list[tuple[Any, ...]]:
    return native(wh, f"SELECT * FROM {table.sql} ORDER BY ALL")


def exists(wh: DuckDBWarehouse, table: TableRef) -> bool:
    return wh.table_columns(table) is not None


def step(sql: str, **kw: Any) -> Step:
    return Step(sql, **kw)


def insert(table: TableRef, *values: int, reconcile: int | None = None) -> Step:
    tuples = ", ".join(f"({v})" for v in values)
    return Step(f"INSERT INTO {table.sql} VALUES {tuples}", Yields.AFFECTED, reconcile=reconcile)


CREATE_T = ddl(f"CREATE TABLE IF NOT EXISTS {T.sql} (v INTEGER)")
SEED_T = Step(f"INSERT INTO {T.sql} VALUES (0)")  # committed in prepare (autocommit)


def script(*body: Step, **kw: Any) -> Script:
    return Script(prepare=kw.pop("prepare", (CREATE_T, SEED_T)), body=body, native=True, **kw)


class Recording:
    """A DuckDB warehouse whose statements (and BEGIN/COMMIT/ROLLBACK) are noted as they pass."""

    def __init__(self, inner: DuckDBWarehouse) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.log: list[str] = []

    def query(self, sql: str, *, native: bool = False) -> Answer:
        self.log.append(sql)
        return self.inner.query(sql, native=native)

    def count_of(self, yields: Yields, answer: Answer) -> Count:
        return self.inner.count_of(yields, answer)

    @contextlib.contextmanager
    def transaction(self) -> Generator[None]:
        with self.inner.transaction():
            self.log.append("BEGIN")
            try:
                yield
            except BaseException:
                self.log.append("ROLLBACK")
                raise
            self.log.append("COMMIT")

    def table_columns(self, table: TableRef) -> list[str] | None:
        return self.inner.table_columns(table)


class NonTransactionalDDL(Recording):
    """Stand-in for an engine we cannot run here (Snowflake: DDL commits an open transaction):
    a real DuckDB warehouse that reports ``transactional_ddl=False``."""

    def __init__(self, inner: DuckDBWarehouse) -> None:
        super().__init__(inner)
        self.capabilities = dataclasses.replace(
            inner.capabilities, dialect="snowflake", transactional_ddl=False
        )


# -- order --------------------------------------------------------------------------------------


def test_prepare_then_begin_body_commit_then_cleanup_in_that_order(wh: DuckDBWarehouse) -> None:
    s = script(
        insert(T, 1),
        insert(T, 2),
        prepare=(CREATE_T, SEED_T, ddl(f"CREATE TABLE {HELPER.sql} (v INTEGER)")),
        cleanup=(ddl(f"DROP TABLE {HELPER.sql}"),),
        on_failure=(step("SELECT 'never'"),),
    )
    rec = Recording(wh)
    run(rec, s)
    assert rec.log == s.statements()  # what plan prints is what runs
    assert rec.log == [
        CREATE_T.sql,
        SEED_T.sql,
        f"CREATE TABLE {HELPER.sql} (v INTEGER)",
        "BEGIN",
        insert(T, 1).sql,
        insert(T, 2).sql,
        "COMMIT",
        f"DROP TABLE {HELPER.sql}",
    ]
    assert rows(wh, T) == [(0,), (1,), (2,)]
    assert not exists(wh, HELPER)


def test_statements_renders_the_engines_begin_and_cleanup_last() -> None:
    s = Script(
        prepare=(ddl("CREATE A"),),
        body=(step("INSERT B"), step("INSERT C")),
        cleanup=(ddl("DROP D"),),
        on_failure=(ddl("DROP E"),),
        begin="BEGIN TRANSACTION",
    )
    assert s.statements() == [
        "CREATE A",
        "BEGIN TRANSACTION",
        "INSERT B",
        "INSERT C",
        "COMMIT",
        "DROP D",
    ]
    assert Script(prepare=(), body=()).statements() == ["BEGIN", "COMMIT"]


# -- reconciliation -----------------------------------------------------------------------------


def test_a_reconciled_step_that_miscounts_is_a_data_error_and_the_body_is_rolled_back(
    wh: DuckDBWarehouse,
) -> None:
    s = script(insert(T, 1, 2, reconcile=0), step(f"DELETE FROM {T.sql} WHERE v = 0"))
    rec = Recording(wh)
    with pytest.raises(DataError) as err:
        run(rec, s, expected=3)
    assert str(err.value) == "expected 3, got 2; rolled back"
    assert rec.log[-1] == "ROLLBACK"
    assert rows(wh, T) == [(0,)]  # prepare's row kept; nothing of the body (insert or delete)


def test_reconcile_offset_is_taken_off_the_steps_count(wh: DuckDBWarehouse) -> None:
    # e.g. a COPY that also loads the header line: one more than the expected rows
    assert run(wh, script(insert(T, 1, 2, 3, reconcile=1)), expected=2) == [3]
    with pytest.raises(DataError, match="expected 3, got 2"):
        run(wh, script(insert(T, 1, 2, 3, reconcile=1)), expected=3)


def test_counts_are_reported_for_every_yielding_step_and_the_first_is_the_headline(
    wh: DuckDBWarehouse,
) -> None:
    s = script(insert(T, 1, 2), step(f"UPDATE {T.sql} SET v = v + 10", yields=Yields.AFFECTED))
    result = run_script(wh, s, expected=None, mismatch=message)
    assert [c.rows for c in result.counts] == [2, 3]
    assert result.rows == 2


def test_without_an_expectation_nothing_is_reconciled(wh: DuckDBWarehouse) -> None:
    s = script(insert(T, 1, 2, reconcile=0), holds=T)
    assert run(wh, s, expected=None) == [2]
    assert rows(wh, T) == [(0,), (1,), (2,)]


def test_holds_checks_the_tables_row_count_before_commit(wh: DuckDBWarehouse) -> None:
    with pytest.raises(DataError, match="expected 2, got 3; rolled back"):
        run(wh, script(insert(T, 1, 2, reconcile=0), holds=T), expected=2)
    assert rows(wh, T) == [(0,)]  # the reconciled step counted 2, but T held 3: rolled back
    run(wh, script(insert(T, 1, 2), prepare=(CREATE_T,), holds=T), expected=3)
    assert rows(wh, T) == [(0,), (1,), (2,)]


# -- failure paths ------------------------------------------------------------------------------


def test_a_validation_step_that_rejects_rows_fails_before_the_transaction(
    wh: DuckDBWarehouse,
) -> None:
    """A :attr:`Yields.REJECTED` step's answer rows are bad records: any fails the script
    at once, quoting the first (line and error, never the record), and nothing is kept."""
    rec = Recording(wh)
    check = Step(
        "SELECT * FROM (VALUES (3, 'Number of columns in file (3) does not match', '1,a,X'),"
        " (5, 'too few', '2')) AS t(line, error, rejected_record)",
        Yields.REJECTED,
        rejects="row(s) of f.csv with more or fewer fields than its header (2)",
    )
    s = script(insert(T, 1, reconcile=0), prepare=(CREATE_T, SEED_T, check))
    with pytest.raises(DataError) as err:
        run(rec, s, expected=1)
    assert err.value.message == (
        "2 row(s) of f.csv with more or fewer fields than its header (2), first at line 3: "
        "Number of columns in file (3) does not match; nothing was loaded"
    )
    assert [(f.kind, f.count) for f in err.value.findings] == [("rejected_rows", 2)]
    assert "BEGIN" not in rec.log and rows(wh, T) == [(0,)]
    # A pass that rejects nothing counts for nothing: the script runs, its headline intact.
    clean = dataclasses.replace(check, sql="SELECT 1 AS line, 'x' AS error WHERE false")
    s = script(insert(T, 1, reconcile=0), prepare=(CREATE_T, SEED_T, clean))
    assert run(rec, s, expected=1) == [1]
    assert rows(wh, T) == [(0,), (0,), (1,)]  # SEED_T ran again in prepare


def test_on_failure_steps_run_only_after_a_failure(wh: DuckDBWarehouse) -> None:
    note = step(f"INSERT INTO {AUDIT.sql} VALUES ('failed')")
    prepare = (CREATE_T, ddl(f"CREATE TABLE IF NOT EXISTS {AUDIT.sql} (what VARCHAR)"))
    run(wh, script(insert(T, 1), prepare=prepare, on_failure=(note,)))
    assert rows(wh, AUDIT) == []
    with pytest.raises(DataError):
        run(wh, script(insert(T, 1, reconcile=0), prepare=prepare, on_failure=(note,)), expected=5)
    assert rows(wh, AUDIT) == [("failed",)]  # after the rollback, so it is kept


def test_cleanup_runs_after_success_and_after_failure(wh: DuckDBWarehouse) -> None:
    prepare = (CREATE_T, ddl(f"CREATE TABLE {HELPER.sql} (v INTEGER)"))
    cleanup = (ddl(f"DROP TABLE IF EXISTS {HELPER.sql}"),)
    run(wh, script(insert(T, 1), prepare=prepare, cleanup=cleanup))
    assert not exists(wh, HELPER)
    with pytest.raises(WarehouseError):
        run(wh, script(step("SELECT * FROM nowhere"), prepare=prepare, cleanup=cleanup))
    assert not exists(wh, HELPER)


def test_a_failing_body_statement_rolls_back_and_its_warehouse_error_is_raised(
    wh: DuckDBWarehouse,
) -> None:
    s = script(insert(T, 1), step(f"INSERT INTO {T.sql} VALUES ('not a number')"))
    with pytest.raises(WarehouseError, match=r"^DuckDB: Conversion Error"):
        run(wh, s)
    assert rows(wh, T) == [(0,)]
    # the transaction is over: the connection takes new work
    run(wh, script(insert(T, 7)))
    assert rows(wh, T) == [(0,), (0,), (7,)]


def test_a_failure_in_prepare_skips_the_body_but_not_on_failure_or_cleanup(
    wh: DuckDBWarehouse,
) -> None:
    s = script(
        insert(T, 1),
        prepare=(CREATE_T, step("SELECT * FROM nowhere")),
        on_failure=(step(f"INSERT INTO {T.sql} VALUES (-1)"),),
        cleanup=(step(f"INSERT INTO {T.sql} VALUES (-2)"),),
    )
    rec = Recording(wh)
    with pytest.raises(WarehouseError, match="nowhere"):
        run(rec, s)
    assert "BEGIN" not in rec.log
    assert rows(wh, T) == [(-2,), (-1,)]


def test_failing_on_failure_and_cleanup_steps_do_not_hide_the_outcome(
    wh: DuckDBWarehouse,
) -> None:
    broken = (step("DROP TABLE no_such_table"),)
    assert run(wh, script(insert(T, 1), cleanup=broken)) == [1]  # success stays a success
    with pytest.raises(DataError, match="expected 9"):  # the failure stays this failure
        run(wh, script(insert(T, 1, reconcile=0), on_failure=broken, cleanup=broken), expected=9)


def test_body_ddl_is_atomic_on_duckdb(wh: DuckDBWarehouse) -> None:
    """The bronze swap relies on it: DROP + RENAME inside the transaction roll back together."""
    new = TableRef("DB", "main", "T__NEW")
    run(wh, script(insert(T, 1)))
    s = script(
        ddl(f"DROP TABLE {T.sql}"),
        ddl(f'ALTER TABLE {new.sql} RENAME TO "T"'),
        prepare=(ddl(f"CREATE TABLE {new.sql} (v INTEGER)"), insert(new, 5, 6, 7)),
        on_failure=(ddl(f"DROP TABLE IF EXISTS {new.sql}"),),
        holds=T,
    )
    with pytest.raises(DataError, match="expected 2, got 3"):
        run(wh, s, expected=2)
    assert rows(wh, T) == [(0,), (1,)]  # yesterday's table, whole
    assert not exists(wh, new)


# -- capabilities -------------------------------------------------------------------------------


def test_ddl_in_the_body_is_refused_where_ddl_would_commit_the_transaction(
    wh: DuckDBWarehouse,
) -> None:
    engine = NonTransactionalDDL(wh)
    s = script(insert(T, 1), ddl(f"ALTER TABLE {T.sql} ADD COLUMN w INTEGER"))
    with pytest.raises(WarehouseError) as err:
        run(engine, s)
    assert str(err.value) == (
        "snowflake commits an open transaction on DDL: this script would not be atomic"
    )
    assert engine.log == []  # refused before anything ran
    assert not exists(wh, T)


def test_ddl_in_prepare_is_fine_where_ddl_would_commit_the_transaction(
    wh: DuckDBWarehouse,
) -> None:
    engine = NonTransactionalDDL(wh)
    assert run(engine, script(insert(T, 1, reconcile=0)), expected=1) == [1]
    assert engine.log[:3] == [CREATE_T.sql, SEED_T.sql, "BEGIN"]


def test_a_script_in_snowflakes_dialect_is_translated_for_duckdb(wh: DuckDBWarehouse) -> None:
    s = Script(
        prepare=(ddl(f"CREATE TABLE IF NOT EXISTS {T.sql} (v INTEGER, ts TIMESTAMP_TZ)"),),
        body=(
            Step(
                f"INSERT INTO {T.sql} SELECT IFF(1 > 0, 1, 0), "
                "'2026-11-02T00:00:00-05:00'::TIMESTAMP_TZ",
                Yields.AFFECTED,
                reconcile=0,
            ),
        ),
    )
    assert run(wh, s, expected=1) == [1]
    assert native(wh, f"SELECT v, ts::VARCHAR FROM {T.sql}") == [(1, "2026-11-02 05:00:00+00")]


# -- check_count --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "got", "fails"),
    [
        (3, Count(3), False),
        (3, Count(2), True),
        (0, Count(1), True),
        (0, Count(0, " (COPY found no staged file)"), False),  # nothing expected, nothing found
        (3, Count(3, " (COPY found no staged file)"), True),  # a note fails any real expectation
    ],
)
def test_check_count_fails_on_a_mismatch_and_on_a_note_only_when_rows_were_expected(
    expected: int, got: Count, fails: bool
) -> None:
    if fails:
        with pytest.raises(DataError, match=f"expected {expected}, got {got.rows}"):
            check_count(expected, got, message)
    else:
        check_count(expected, got, message)


# -- load_bronze --------------------------------------------------------------------------------


def bronze_load(tmp_path: Path, columns: Sequence[str], name: str) -> BronzeLoad:
    table = TableRef("DB", "BRONZE", "ORDERS")
    path = tmp_path / name
    return BronzeLoad(
        table,
        list(columns),
        "stage",
        name,
        str(path),
        "2026-11-02T00:00:00-05:00",
        "2026-11-03T00:00:00-05:00",
    )


STAMP = RunStamp("run-1", "2026-11-03T11:50:00+00:00")


def test_load_bronze_failure_is_prefixed_with_the_table_and_leaves_bronze(
    wh: DuckDBWarehouse, tmp_path: Path
) -> None:
    (tmp_path / "day1.csv").write_text("ID,NOTE\n1,a\n2,b\n")
    good = bronze_load(tmp_path, ["ID", "NOTE"], "day1.csv")
    assert load_bronze(wh, good, STAMP, 2) == 2
    missing = bronze_load(tmp_path, ["ID", "NOTE"], "day2.csv")
    with pytest.raises(WarehouseError) as err:
        load_bronze(wh, missing, STAMP, 2)
    assert str(err.value).startswith("loading DB.BRONZE.ORDERS failed: DuckDB: IO Error: ")
    assert str(err.value).endswith("; bronze left unchanged")
    assert isinstance(err.value.__cause__, WarehouseError)
    assert native(wh, 'SELECT "ID" FROM "DB"."BRONZE"."ORDERS" ORDER BY 1') == [("1",), ("2",)]
    assert not exists(wh, TableRef("DB", "BRONZE", "ORDERS__XO_LOAD"))  # on_failure dropped it


def test_load_bronze_mismatch_is_the_bronze_message_not_prefixed(
    wh: DuckDBWarehouse, tmp_path: Path
) -> None:
    (tmp_path / "day1.csv").write_text("ID\n1\n2\n")
    load = bronze_load(tmp_path, ["ID"], "day1.csv")
    with pytest.raises(DataError) as err:
        load_bronze(wh, load, STAMP, 5)
    assert str(err.value) == bronze_mismatch(load.table)(5, Count(2))
    assert str(err.value) == (
        "row count mismatch for DB.BRONZE.ORDERS: extracted 5, loaded 2; bronze left unchanged"
    )
    assert not exists(wh, load.table)


def native(wh: DuckDBWarehouse, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a statement in DuckDB's own dialect."""
    return wh.query(sql, native=True).rows
