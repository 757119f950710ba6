"""One COPY over a window's parts, reconciled part by part and in total.

The production statements (COPY transformations, which fakesnow cannot run) are checked by
parsing them; the emulator-mode load runs with the real connector against fakesnow, COPY
reading gzip parts from moto's S3 server. The runner's per-part reconciliation is the same
code on every engine (``run_script``), exercised here on the Snowflake path and end to end
on DuckDB in ``tests/e2e/test_parts.py``.
"""

from __future__ import annotations

import csv
import gzip
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
from xoelt.errors import DataError
from xoelt.warehouse.base import (
    BronzeLoad,
    Count,
    FilePart,
    RunStamp,
    TableRef,
    Yields,
    bronze_mismatch,
    check_parts,
    execute,
    load_bronze,
)
from xoelt.warehouse.snowflake import SnowflakeWarehouse, bronze_script, copy_outcome

__all__ = ["fakesnow_kwargs", "snowflake_database", "snowflake_wh", "stage_bucket"]

WINDOW = ("2026-11-02T00:00:00-05:00", "2026-11-03T00:00:00-05:00")
PREFIX = "stage/test/p/things/full_refresh/2026-11-02/things.part-"
RUN = RunStamp("run1", "2026-11-03T11:50:00+00:00")


def parts_load(database: str, rows: list[int], fmt: str = "csv.gz") -> BronzeLoad:
    """A bronze load of len(rows) parts (part i holding rows[i] rows) through the stage."""
    stage = f'@"{database}"."{SCHEMA}"."{STAGE}"'
    parts = tuple(
        FilePart(f"{PREFIX}{i:05d}.{fmt}", f"{stage}/{PREFIX}{i:05d}.{fmt}", n)
        for i, n in enumerate(rows)
    )
    return BronzeLoad(
        TableRef(database, SCHEMA, "GLADLY_THINGS"),
        ["ID", "NOTE"],
        STAGE_BUCKET,
        parts[0].key,
        parts[0].file_uri,
        *WINDOW,
        parts=parts,
    )


def params(copy: exp.Expr) -> dict[str, exp.Expr]:
    return {p.this.name: p for p in copy.args["params"]}


def files_of(copy: exp.Expr) -> list[str]:
    return [lit.this for lit in params(copy)["FILES"].find_all(exp.Literal)]


def file_format(copy: exp.Expr) -> dict[str, exp.Expr]:
    return {p.name: p.args["value"] for p in params(copy)["FILE_FORMAT"].expressions}


# -- statements ---------------------------------------------------------------------------------


def test_production_load_is_one_copy_over_every_part_with_gzip_compression() -> None:
    load = parts_load("WBP_DB", [3, 2, 4])
    script = bronze_script(load, None, RUN)
    keys = [p.key for p in load.parts]
    copies = [s for s in (*script.prepare, *script.body) if s.sql.startswith("COPY INTO")]
    assert [s.yields for s in copies] == [Yields.REJECTED, Yields.COPIED]  # validation, load
    for step in copies:
        copy = sqlglot.parse_one(step.sql, read="snowflake")
        assert isinstance(copy, exp.Copy)
        assert files_of(copy) == keys  # exactly the parts, in order: no pattern, no stale part
        assert file_format(copy)["COMPRESSION"].name == "GZIP"
    validate = sqlglot.parse_one(copies[0].sql, read="snowflake")
    assert params(validate)["VALIDATION_MODE"].expression.name == "RETURN_ERRORS"
    assert file_format(validate)["ERROR_ON_COLUMN_COUNT_MISMATCH"] == exp.Boolean(this=True)
    assert "the 3 parts of" in copies[0].rejects
    # one COPY in the transaction, reconciled (offset 0: SKIP_HEADER = 1 on every part)
    assert [s.reconcile for s in script.body if s.yields is Yields.COPIED] == [0]
    assert script.holds == load.table and script.holds_by == "_XO_SOURCE_FILE"


def test_more_parts_than_one_copy_takes_is_refused_with_the_fix() -> None:
    with pytest.raises(DataError, match=r"1001 staged parts: .* at most 1,000 files; raise"):
        bronze_script(parts_load("WBP_DB", [1] * 1001), None, RUN)


def test_plain_parts_are_copied_with_no_compression() -> None:
    script = bronze_script(parts_load("WBP_DB", [1, 1], fmt="csv"), None, RUN)
    copy = next(s for s in script.body if s.yields is Yields.COPIED)
    assert file_format(sqlglot.parse_one(copy.sql, read="snowflake"))["COMPRESSION"].name == (
        "NONE"
    )


def test_copy_answer_is_reconciled_part_by_part_naming_the_part() -> None:
    load = parts_load("WBP_DB", [3, 2, 4])
    mismatch = bronze_mismatch(load.table)
    cols = ["file", "status", "rows_parsed", "rows_loaded", "error_limit", "errors_seen"]

    def answer(loaded: list[int]) -> Count:
        rows = [
            (f"s3://{STAGE_BUCKET}/{p.key}", "LOADED", n, n, 1, 0)
            for p, n in zip(load.parts, loaded, strict=True)
        ]
        return copy_outcome(cols, rows).count

    good = answer([3, 2, 4])
    assert good.rows == 9 and len(good.files) == 3
    check_parts(load.parts, good.files, 0, mismatch)
    with pytest.raises(DataError) as failed:
        check_parts(load.parts, answer([3, 1, 4]).files, 0, mismatch)
    assert failed.value.message == (
        f"row count mismatch for WBP_DB.BRONZE.GLADLY_THINGS: extracted 2, loaded 1 from "
        f"part {load.parts[1].key}; bronze left unchanged"
    )
    # a part COPY never mentioned loaded nothing; a file that is not a part is refused
    with pytest.raises(DataError, match=f"extracted 4, loaded 0 from part {PREFIX}00002"):
        check_parts(load.parts, answer([3, 2, 4]).files[:2], 0, mismatch)
    with pytest.raises(DataError, match="not one of this window's parts"):
        check_parts(load.parts, [*good.files, ("s3://b/other.csv.gz", 1)], 0, mismatch)


# -- against fakesnow + moto ----------------------------------------------------------------------


def put_parts(s3: Any, load: BronzeLoad, rows: list[list[list[str]]]) -> None:
    """Each part as extract writes it: the header, then its rows, gzip-compressed."""
    for part, body in zip(load.parts, rows, strict=True):
        buf = io.StringIO(newline="")
        writer = csv.writer(buf)
        writer.writerow(["Id", "Note"])
        writer.writerows(body)
        data = buf.getvalue().encode()
        s3.put_object(Bucket=STAGE_BUCKET, Key=part.key, Body=gzip.compress(data, 1))


DATA = [
    [["1", "a"], ["2", "b"], ["3", "c"]],
    [["4", "d"], ["5", "e"]],
    [["6", "f"], ["7", "g"], ["8", "h"], ["9", "i"]],
]


def test_emulator_loads_every_gzip_part_with_its_file_and_row_number(
    snowflake_wh: SnowflakeWarehouse, snowflake_database: str, stage_bucket: Any
) -> None:
    load = parts_load(snowflake_database, [len(p) for p in DATA])
    put_parts(stage_bucket, load, DATA)
    assert load_bronze(snowflake_wh, load, RUN, 9) == 9
    got = execute(
        snowflake_wh,
        f'SELECT "ID", "NOTE", "_XO_SOURCE_FILE", "_XO_FILE_ROW_NUMBER" FROM {load.table.sql} '
        'ORDER BY "ID"',
    )
    want = [
        (row[0], row[1], part.key, n)
        for part, body in zip(load.parts, DATA, strict=True)
        for n, row in enumerate(body, start=1)
    ]
    assert got == want


def test_a_part_whose_count_disagrees_fails_the_load_naming_it_and_bronze_is_kept(
    snowflake_wh: SnowflakeWarehouse, snowflake_database: str, stage_bucket: Any
) -> None:
    load = parts_load(snowflake_database, [len(p) for p in DATA])
    put_parts(stage_bucket, load, DATA)
    load_bronze(snowflake_wh, load, RUN, 9)
    # the manifest says part 1 has 3 rows (and 10 in all); the file holds 2
    wrong = parts_load(snowflake_database, [3, 3, 4])
    with pytest.raises(DataError) as failed:
        load_bronze(snowflake_wh, wrong, RunStamp("run2", "2026-11-04T00:00:00+00:00"), 10)
    assert f"extracted 3, loaded 2 from part {wrong.parts[1].key}" in failed.value.message
    assert "bronze left unchanged" in failed.value.message
    assert execute(snowflake_wh, f'SELECT DISTINCT "_XO_RUN_ID" FROM {load.table.sql}') == [
        ("run1",)
    ]
    assert execute(snowflake_wh, f"SELECT COUNT(*) FROM {load.table.sql}") == [(9,)]
