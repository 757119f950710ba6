"""What only the Snowflake warehouse does: rendered SQL checked statement by statement, and the
few Snowflake-specific loads run with the real connector against fakesnow's server, COPY
reading the staged CSV from moto's S3 server.

fakesnow cannot run COPY transformations, so the loads here use the emulator mode
(``copy_transformations=False``); the production statements are checked by parsing them.
What every warehouse must do (bronze loads, transactions, silver, the ledger) is written once
in ``test_warehouse_contract.py`` and runs on this path there.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from tests.integration.snowflake_fixtures import (
    SCHEMA,
    STAGE,
    STAGE_BUCKET,
    fakesnow_kwargs,
    snowflake_database,
    snowflake_wh,
    stage_bucket,
)
from xoelt.errors import DataError, RunError, WarehouseError
from xoelt.warehouse.base import (
    METADATA_NAMES,
    Answer,
    BronzeLoad,
    Count,
    RunStamp,
    TableRef,
    Yields,
    bronze_mismatch,
    check_count,
    execute,
    load_bronze,
    rejected,
)
from xoelt.warehouse.snowflake import (
    CHECK_SUFFIX,
    COPY_SUFFIX,
    SnowflakeWarehouse,
    bronze_script,
    copy_outcome,
    split_location,
    to_warehouse_error,
)

__all__ = ["fakesnow_kwargs", "snowflake_database", "snowflake_wh", "stage_bucket"]

WINDOW = ("2026-11-02T00:00:00-05:00", "2026-11-03T00:00:00-05:00")
KEY = "stage/test/p/things/full_refresh/2026-11-02/things.csv"


def spec(
    database: str, columns: list[str], key: str = KEY, name: str = "GLADLY_THINGS"
) -> BronzeLoad:
    """A bronze load of ``key`` through the test stage, as the load stage builds it."""
    location = f'@"{database}"."{SCHEMA}"."{STAGE}"/{key}'
    return BronzeLoad(
        TableRef(database, SCHEMA, name), columns, STAGE_BUCKET, key, location, *WINDOW
    )


RUN = RunStamp("run1", "2026-11-03T11:50:00+00:00")


def render(
    load: BronzeLoad, existing: list[str] | None = None, *, copy_transformations: bool = True
) -> list[str]:
    """The statements a bronze load of ``load`` runs (run id and load time filled in)."""
    return bronze_script(
        load, existing, RUN, copy_transformations=copy_transformations
    ).statements()


# -- rendered SQL (no server) -------------------------------------------------------------------


def copy_params(copy: exp.Copy) -> dict[str, exp.Expr]:
    """COPY's parameters (FILES, FILE_FORMAT, FORCE, ON_ERROR) by name."""
    return {p.this.name: p for p in copy.args["params"]}


def test_production_load_statements_parse_and_have_the_safe_shape() -> None:
    load = spec("WBP_DB", ["ID", "NOTE"])
    stmts = render(load)
    parsed = [sqlglot.parse_one(s, read="snowflake") for s in stmts]
    kinds = [type(p).__name__ for p in parsed]
    assert kinds == [
        *("Create", "Create", "Copy", "Create"),  # schema, the validation pass, bronze
        *("Transaction", "TruncateTable", "Copy", "Commit"),
        "Drop",
    ]
    assert stmts[0] == 'CREATE SCHEMA IF NOT EXISTS "WBP_DB"."BRONZE"'
    assert stmts[5] == 'TRUNCATE TABLE "WBP_DB"."BRONZE"."GLADLY_THINGS"'
    create = parsed[3]
    assert isinstance(create, exp.Create) and create.args.get("exists")
    assert [c.name for c in create.find_all(exp.ColumnDef)] == ["ID", "NOTE", *METADATA_NAMES]

    copy = parsed[6]
    assert isinstance(copy, exp.Copy)
    assert [c.name for c in copy.this.expressions] == ["ID", "NOTE", *METADATA_NAMES]
    select = copy.args["files"][0].this
    assert isinstance(select, exp.Select)
    fields = select.expressions
    assert [f.sql("snowflake") for f in fields[:2]] == ["$1", "$2"]
    assert fields[2] == exp.Literal.string("run1")
    assert [f.name for f in fields[3:5]] == ["METADATA$FILENAME", "METADATA$FILE_ROW_NUMBER"]
    assert all(isinstance(f, exp.Cast) and f.to.is_type("timestamptz") for f in fields[5:])
    assert [f.this.name for f in fields[5:]] == ["2026-11-03T11:50:00+00:00", *WINDOW]
    assert select.args["from_"].this.name == '@"WBP_DB"."BRONZE"."XO_STAGE"'

    params = copy_params(copy)
    assert params["FILES"].expression.this == exp.Literal.string(KEY)
    assert params["FORCE"].expression == exp.Boolean(this=True)
    assert params["ON_ERROR"].expression.name == "ABORT_STATEMENT"
    fmt = {p.name: p.args["value"] for p in params["FILE_FORMAT"].expressions}
    assert all(k == k.upper() for k in fmt)
    assert fmt["TYPE"] == exp.Literal.string("CSV")
    assert fmt["SKIP_HEADER"] == exp.Literal.number(1)
    assert fmt["FIELD_OPTIONALLY_ENCLOSED_BY"] == exp.Literal.string('"')
    assert fmt["FIELD_DELIMITER"] == exp.Literal.string(",")
    assert fmt["ESCAPE_UNENCLOSED_FIELD"].name == "NONE"
    assert fmt["EMPTY_FIELD_AS_NULL"] == exp.Boolean(this=True)
    assert fmt["NULL_IF"] == exp.Tuple()


def test_new_columns_are_altered_in_before_begin_and_missing_ones_left_out() -> None:
    load = spec("WBP_DB", ["ID", "EXTRA"])
    existing = ["ID", "NOTE", *METADATA_NAMES]
    stmts = render(load, existing)
    for s in stmts:
        sqlglot.parse_one(s, read="snowflake")
    begin = stmts.index("BEGIN")
    alters = [s for s in stmts if s.startswith("ALTER")]
    assert alters == ['ALTER TABLE "WBP_DB"."BRONZE"."GLADLY_THINGS" ADD COLUMN "EXTRA" VARCHAR']
    assert stmts.index(alters[0]) < begin
    copy = sqlglot.parse_one(stmts[begin + 2], read="snowflake")
    assert [c.name for c in copy.this.expressions] == ["ID", "EXTRA", *METADATA_NAMES]


def test_production_load_first_validates_the_column_count_of_every_row() -> None:
    """Snowflake ignores ERROR_ON_COLUMN_COUNT_MISMATCH in a COPY with a transformation, so a
    plain COPY of the file into a temporary table of exactly the header's columns, in
    VALIDATION_MODE, checks every row before anything changes; its rejects fail the load."""
    load = spec("WBP_DB", ["ID", "NOTE", "WHEN"])
    script = bronze_script(load, ["ID", "NOTE", *METADATA_NAMES], RUN)
    check = TableRef("WBP_DB", SCHEMA, "GLADLY_THINGS" + CHECK_SUFFIX)
    table, copy = script.prepare[1:3]
    created = sqlglot.parse_one(table.sql, read="snowflake")
    assert isinstance(created, exp.Create) and table.ddl
    assert created.args["properties"].find(exp.TemporaryProperty) is not None
    assert created.this.this.sql("snowflake") == check.sql
    assert [c.name for c in created.find_all(exp.ColumnDef)] == ["ID", "NOTE", "WHEN"]
    validate = sqlglot.parse_one(copy.sql, read="snowflake")
    assert isinstance(validate, exp.Copy) and copy.yields is Yields.REJECTED
    assert validate.this.sql("snowflake") == check.sql
    assert not validate.this.expressions  # no column list: the file maps onto all columns
    assert validate.args["files"][0].name == '@"WBP_DB"."BRONZE"."XO_STAGE"'  # no SELECT
    params = copy_params(validate)
    assert params["FILES"].expression.this == exp.Literal.string(KEY)
    fmt = {p.name: p.args["value"] for p in params["FILE_FORMAT"].expressions}
    assert fmt["ERROR_ON_COLUMN_COUNT_MISMATCH"] == exp.Boolean(this=True)
    assert fmt["SKIP_HEADER"] == exp.Literal.number(1)
    assert params["VALIDATION_MODE"].expression.name == "RETURN_ERRORS"
    # before the ALTERs and the transaction; the temporary table is dropped whatever happens
    assert script.prepare[3].sql.startswith('CREATE TABLE IF NOT EXISTS "WBP_DB"')
    assert script.prepare[-1].sql.startswith("ALTER TABLE")
    assert [s.sql for s in script.cleanup] == [f"DROP TABLE IF EXISTS {check.sql}"]
    # The emulator's plain COPY into its helper table needs no separate pass.
    emulated = bronze_script(load, None, RUN, copy_transformations=False)
    assert not any(s.yields is Yields.REJECTED for s in emulated.prepare + emulated.body)


def test_rejected_rows_of_the_validation_pass_fail_the_load_naming_line_and_error() -> None:
    """What RETURN_ERRORS answers for a ragged file, read the way the runner reads it."""
    columns = ["ERROR", "FILE", "LINE", "CHARACTER", "BYTE_OFFSET", "CATEGORY", "CODE"]
    error = (
        "Number of columns in file (3) does not match that of the corresponding table (2), "
        "use file format option error_on_column_count_mismatch=false to ignore this error"
    )
    answer = Answer(
        [*columns, "REJECTED_RECORD"],
        [
            (error, KEY, 3, 1, 17, "parsing", 100080, "2,b,EXTRA"),
            (error.replace("(3)", "(1)"), KEY, 5, 1, 30, "parsing", 100080, "4"),
        ],
    )
    wh = object.__new__(SnowflakeWarehouse)  # count_of reads the answer only
    assert wh.count_of(Yields.REJECTED, Answer(columns, [])) == Count(0)
    count = wh.count_of(Yields.REJECTED, answer)
    assert count == Count(2, f"line 3: {error}")
    step = bronze_script(spec("WBP_DB", ["ID", "NOTE"]), None, RUN).prepare[2]
    err = rejected(step, count)
    assert err.message == (
        f"2 row(s) of {KEY} with more or fewer fields than its header (2), first at "
        f"line 3: {error}; nothing was loaded"
    )
    assert "2,b,EXTRA" not in err.message  # the record's data is not quoted
    assert [(f.kind, f.count, f.severity) for f in err.findings] == [("rejected_rows", 2, "error")]


def test_emulator_statements_parse_and_fill_metadata_without_copy_transformations() -> None:
    stmts = render(spec("WBP_DB", ["ID", "NOTE"]), copy_transformations=False)
    parsed = [sqlglot.parse_one(s, read="snowflake") for s in stmts]
    kinds = [type(p).__name__ for p in parsed]
    assert kinds == [
        "Create",
        "Create",
        "Create",
        "Transaction",
        "TruncateTable",
        "Copy",
        "Insert",
        "Commit",
        "Drop",
    ]
    assert "$1" not in stmts[5] and "METADATA$" not in stmts[5] and "SKIP_HEADER" not in stmts[5]
    assert parsed[5].this.this.name == "GLADLY_THINGS" + COPY_SUFFIX
    insert = parsed[6]
    assert [c.name for c in insert.this.expressions] == ["ID", "NOTE", *METADATA_NAMES]


def test_identifiers_and_locations_are_validated_or_quoted() -> None:
    with pytest.raises(ValueError):
        render(spec("WBP_DB", ['ID"; DROP TABLE X; --']))
    for bad in ['@"DB"."S"."ST" x/k.csv', "@DB.S.ST/k.csv", '@"DB"."S"."ST"/', '@"DB"."S"/k.csv']:
        with pytest.raises(ValueError):
            split_location(bad)
    odd = spec("WBP_DB", ["ID"], key="stage/it's/a.csv")
    stmts = render(odd)
    copies = [sqlglot.parse_one(stmts[i], "snowflake") for i in (2, 6)]  # validation, load
    for copy in copies:
        assert isinstance(copy, exp.Copy)
        assert copy_params(copy)["FILES"].expression.this == exp.Literal.string("stage/it's/a.csv")


def test_copy_answers_are_reconciled() -> None:
    table = TableRef("DB", "S", "T")
    assert copy_outcome(["status"], [("Copy executed with 0 files processed.",)]).files == 0
    cols = ["file", "status", "rows_parsed", "rows_loaded", "error_limit", "errors_seen"]
    ok = copy_outcome(cols, [("s3://b/k.csv", "LOADED", 3, 3, 1, 0)])
    assert (ok.files, ok.rows_loaded) == (1, 3)
    with pytest.raises(WarehouseError, match="PARTIALLY_LOADED"):
        copy_outcome(cols, [("s3://b/k.csv", "PARTIALLY_LOADED", 3, 2, 3, 1)])
    nothing = copy_outcome(["status"], [("Copy executed with 0 files processed.",)]).count
    check_count(0, nothing, bronze_mismatch(table))
    with pytest.raises(DataError, match=r"extracted 3, loaded 0 \(COPY found no staged file\)"):
        check_count(3, nothing, bronze_mismatch(table))
    with pytest.raises(DataError, match="extracted 3, loaded 2; bronze left unchanged"):
        check_count(3, Count(2), bronze_mismatch(table))


def test_connector_errors_become_one_line_load_errors() -> None:
    from snowflake.connector import errors

    network = errors.OperationalError(msg="Could not connect\nafter 3 attempts", errno=250001)
    sql = errors.ProgrammingError(msg="SQL compilation error:\nbad", errno=1003, sqlstate="42000")
    assert to_warehouse_error(network).transient is True
    err = to_warehouse_error(sql)
    assert err.transient is False
    assert err.message == "Snowflake: 001003 (42000): SQL compilation error: bad"
    assert to_warehouse_error(errors.ServiceUnavailableError()).transient is True


# -- against fakesnow + moto ----------------------------------------------------------------------


def put_csv(s3: Any, header: list[str], rows: list[list[str]], key: str = KEY) -> None:
    """Write the file as extract does: Python's csv module (``\\r\\n`` line ends, UTF-8)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    s3.put_object(Bucket=STAGE_BUCKET, Key=key, Body=buf.getvalue().encode("utf-8"))


def bronze_rows(wh: SnowflakeWarehouse, load: BronzeLoad, cols: str = '"ID", "NOTE"') -> list:
    """Bronze's rows in file order, with their file row numbers."""
    return execute(
        wh,
        f'SELECT {cols}, "_XO_FILE_ROW_NUMBER" FROM {load.table.sql} ORDER BY "_XO_FILE_ROW_NUMBER"',
    )


def test_zero_files_processed_answer_is_a_mismatch_when_rows_were_expected(
    snowflake_wh: SnowflakeWarehouse, snowflake_database: str, stage_bucket: Any
) -> None:
    load = spec(snowflake_database, ["ID", "NOTE"])
    put_csv(stage_bucket, ["Id", "Note"], [["1", "a"]])
    load_bronze(snowflake_wh, load, RunStamp("run1", "2026-11-03T00:00:00+00:00"), 1)
    stage_bucket.delete_object(Bucket=STAGE_BUCKET, Key=KEY)
    stage = split_location(load.file_uri)[0]
    helper = load.table.with_name(load.table.name + COPY_SUFFIX)
    execute(snowflake_wh, f'CREATE OR REPLACE TABLE {helper.sql} ("ID" VARCHAR, "NOTE" VARCHAR)')
    mismatch = r"extracted 1, loaded 0 \(COPY found no staged file\)"
    with pytest.raises(DataError, match=mismatch), snowflake_wh.transaction():
        execute(snowflake_wh, f"TRUNCATE TABLE {load.table.sql}")
        # The whole (now empty) stage: what Snowflake answers for a location with no file.
        answer = snowflake_wh.query(
            f'COPY INTO {helper.sql} ("ID", "NOTE") FROM {stage} '
            "FILE_FORMAT = (TYPE = 'CSV') FORCE = TRUE ON_ERROR = ABORT_STATEMENT"
        )
        outcome = copy_outcome(answer.columns, answer.rows)
        assert (outcome.files, outcome.rows_loaded) == (0, 0)
        check_count(1, outcome.count, bronze_mismatch(load.table))
    assert bronze_rows(snowflake_wh, load) == [("1", "a", 1)]


def test_production_statements_fail_on_the_emulator_and_roll_back(
    fakesnow_kwargs: dict[str, Any],
    snowflake_wh: SnowflakeWarehouse,
    snowflake_database: str,
    stage_bucket: Any,
) -> None:
    """fakesnow cannot run the transformation COPY; the failure still leaves bronze intact."""
    load = spec(snowflake_database, ["ID", "NOTE"])
    put_csv(stage_bucket, ["Id", "Note"], [["1", "a"]])
    load_bronze(snowflake_wh, load, RunStamp("run1", "2026-11-03T00:00:00+00:00"), 1)
    production = SnowflakeWarehouse(fakesnow_kwargs, snowflake_database)
    try:
        with pytest.raises(RunError, match="bronze left unchanged"):
            load_bronze(production, load, RunStamp("run2", "2026-11-04T00:00:00+00:00"), 1)
    finally:
        production.close()
    assert bronze_rows(snowflake_wh, load) == [("1", "a", 1)]
