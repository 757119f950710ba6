"""The warehouse contract: each behaviour written once, run on every engine in ``ENGINES``.

Bronze loads (atomic, reconciled, schema-evolving), transactions, silver through the real
transform stage, migrations and the run ledger are what any :class:`Warehouse` must do, so
they are tested here against each engine through the same shared code
(``load_bronze``, ``run_script``, ``transform.run``, ``ledger``), with no mocks:

- ``duckdb``: the embedded warehouse, one DuckDB file per database under ``tmp_path``; the
  staged file is a local file.
- ``snowflake``: the real connector against fakesnow's server, in emulator mode
  (``copy_transformations=False``: fakesnow cannot run COPY transformations), COPY reading
  the staged file from moto's S3 server (see ``snowflake_fixtures.py``). Its statement-level
  checks (production COPY shape, connector errors…) stay in ``test_snowflake_warehouse.py``.

The ``engine`` fixture hands a test an :class:`Engine`: the connection, its database, a way
to stage a file and get its :class:`BronzeLoad`, and what legitimately differs between
engines as data (never ``if engine is …`` in a test). Adding a warehouse is one entry in
``ENGINES`` and its builder in ``BUILDERS``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog

from tests.integration.snowflake_fixtures import (
    SCHEMA,
    STAGE,
    STAGE_BUCKET,
    fakesnow_kwargs,
    snowflake_database,
    snowflake_wh,
    stage_bucket,
)
from xoelt import ledger
from xoelt.config.models import SchemaPolicy, SilverConfig
from xoelt.errors import DataError, RunError, WarehouseError
from xoelt.findings import Finding, as_details, from_details
from xoelt.plan import SourcePlan
from xoelt.sources.base import CsvSink
from xoelt.stages import StageResult, transform
from xoelt.stages.stage import standardise
from xoelt.timewindow import TimeWindow
from xoelt.warehouse.base import (
    METADATA_NAMES,
    BronzeLoad,
    RunStamp,
    TableRef,
    Warehouse,
    count_rows,
    execute,
    load_bronze,
)
from xoelt.warehouse.duckdb import SHADOW_SUFFIX, DuckDBWarehouse
from xoelt.warehouse.snowflake import COPY_SUFFIX

__all__ = ["fakesnow_kwargs", "snowflake_database", "snowflake_wh", "stage_bucket"]

ENGINES = ["duckdb", "snowflake"]
# fakesnow starts a server and every statement is an HTTP round trip: ~10x DuckDB's time.
MARKS: Mapping[str, Sequence[pytest.MarkDecorator]] = {"snowflake": [pytest.mark.slow]}

WINDOW = ("2026-11-02T00:00:00-05:00", "2026-11-03T00:00:00-05:00")
KEY = "stage/test/p/things/full_refresh/2026-11-02/things.csv"
BRONZE = "GLADLY_THINGS"
UTC = dt.UTC


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    """A file as extract writes it: Python's csv module (``\\r\\n`` line ends, UTF-8)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


@dataclass
class Engine:
    """One warehouse under test, and what differs about it as data.

    ``put(key, body)`` writes a staged object; ``file_uri(key)`` is how a bronze load names
    it. The rest is what an engine legitimately does its own way: what ``_XO_SOURCE_FILE``
    holds, the suffix of the helper table a bronze load uses on the way (it must be gone
    afterwards), what a NULL timestamp reads back as, where ``ALTER … ADD COLUMN`` puts a new
    bronze column, what ``location`` says, which error refuses a bad file (by case of
    ``BAD_FILES``; default: the reader's WarehouseError) and known gaps (silver strategy →
    xfail reason).
    """

    wh: Warehouse
    database: str
    put: Callable[[str, bytes], None]
    file_uri: Callable[[str], str]
    source_file: Callable[[BronzeLoad], str]
    helper_suffix: str
    location: str
    null_timestamp: dt.datetime | None = None
    added_columns_after_metadata: bool = False
    bad_file_errors: Mapping[str, type[RunError]] = field(default_factory=dict)
    silver_gaps: Mapping[str, str] = field(default_factory=dict)
    integer_digits: int = 38  # Snowflake's INTEGER is NUMBER(38, 0)

    def table(self, name: str = BRONZE, schema: str = SCHEMA) -> TableRef:
        """A table of this engine's test database."""
        return TableRef(self.database, schema, name)

    def bronze_load(self, columns: list[str], key: str = KEY) -> BronzeLoad:
        """A bronze load of the staged object ``key``, as the load stage builds it."""
        return BronzeLoad(self.table(), columns, STAGE_BUCKET, key, self.file_uri(key), *WINDOW)

    def stage_csv(self, header: list[str], rows: list[list[str]], key: str = KEY) -> BronzeLoad:
        """Stage a CSV file at ``key``; its load, with the header's standardised columns."""
        self.put(key, csv_bytes(header, rows))
        return self.bronze_load(standardise(header), key)

    def helper_table(self, load: BronzeLoad) -> TableRef:
        """The shadow/helper table a bronze load of ``load`` goes through."""
        return load.table.with_name(load.table.name + self.helper_suffix)

    def bronze_rows(self, load: BronzeLoad, cols: str = '"ID", "NOTE"') -> list[tuple[Any, ...]]:
        """Bronze's rows in file order, with their file row numbers."""
        return execute(
            self.wh,
            f'SELECT {cols}, "_XO_FILE_ROW_NUMBER" FROM {load.table.sql} '
            'ORDER BY "_XO_FILE_ROW_NUMBER"',
        )


def duckdb_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The embedded warehouse; staged objects are files under ``tmp_path/stage``."""
    database = "XO_TEST"
    stage = tmp_path / "stage"

    def put(key: str, body: bytes) -> None:
        path = stage / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)

    wh = DuckDBWarehouse(tmp_path / "wh", [database], database)
    try:
        yield Engine(
            wh=wh,
            database=database,
            put=put,
            file_uri=lambda key: str(stage / key),
            source_file=lambda load: load.file_uri,  # read_csv's file path
            helper_suffix=SHADOW_SUFFIX,
            location=str((tmp_path / "wh" / f"{database}.duckdb").resolve()),
        )
    finally:
        wh.close()


def snowflake_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """The Snowflake adapter on fakesnow (emulator mode), staged objects on moto."""
    wh = request.getfixturevalue("snowflake_wh")
    database: str = request.getfixturevalue("snowflake_database")
    s3 = request.getfixturevalue("stage_bucket")

    def put(key: str, body: bytes) -> None:
        s3.put_object(Bucket=STAGE_BUCKET, Key=key, Body=body)

    yield Engine(
        wh=wh,
        database=database,
        put=put,
        file_uri=lambda key: f'@"{database}"."{SCHEMA}"."{STAGE}"/{key}',
        source_file=lambda load: load.key,  # METADATA$FILENAME: the path within the stage
        helper_suffix=COPY_SUFFIX,
        location=f"snowflake://fakesnow/{database}",
        # fakesnow's server answers a NULL timestamp as 1970-01-01 (its Arrow timestamp
        # struct has no null mask); Snowflake itself answers NULL.
        null_timestamp=dt.datetime(1970, 1, 1),
        added_columns_after_metadata=True,  # ALTER TABLE … ADD COLUMN appends
        # fakesnow's CSV reader silently drops rows of a file with an extra field (COPY
        # answers LOADED, 1 row of 2): the row-count reconciliation refuses the load.
        bad_file_errors={"extra-field": DataError},
        integer_digits=18,  # fakesnow's INTEGER is DuckDB's BIGINT
        silver_gaps={
            "incremental": "fakesnow 0.11.18 cannot MERGE inside BEGIN…COMMIT: its MERGE "
            "emulation writes to DuckDB's _fs_global database, and a DuckDB transaction may "
            "write to one attached database only (HTTP 500)",
        },
    )


BUILDERS: Mapping[str, Callable[[pytest.FixtureRequest, Path], Iterator[Engine]]] = {
    "duckdb": duckdb_engine,
    "snowflake": snowflake_engine,
}


@pytest.fixture(params=[pytest.param(name, marks=MARKS.get(name, ())) for name in ENGINES])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """Each engine in ``ENGINES`` in turn, fresh per test."""
    yield from BUILDERS[request.param](request, tmp_path)


def stamp(run_id: str, day: int) -> RunStamp:
    """A run id and its load time on ``2026-11-<day>``."""
    return RunStamp(run_id, f"2026-11-{day:02d}T00:00:00+00:00")


# -- bronze -------------------------------------------------------------------------------------


def test_load_with_awkward_values_and_all_metadata(engine: Engine) -> None:
    data = [
        ["1", 'say "hi", ok'],
        ["2", "multi\nline"],
        ["3", ""],
        ["4", "ünïcødé ✓"],
        ["5", "back\\slash \\N"],
        ["00123", "2026-11-02T10:00:00Z"],
    ]
    load = engine.stage_csv(["Id", "Note"], data)
    assert load.columns == ["ID", "NOTE"]
    assert load_bronze(engine.wh, load, RunStamp("run1", "2026-11-03T11:50:00+00:00"), 6) == 6
    assert engine.bronze_rows(load) == [
        ("1", 'say "hi", ok', 1),
        ("2", "multi\nline", 2),
        ("3", None, 3),
        ("4", "ünïcødé ✓", 4),
        ("5", "back\\slash \\N", 5),
        ("00123", "2026-11-02T10:00:00Z", 6),
    ]
    meta = execute(
        engine.wh,
        'SELECT DISTINCT "_XO_RUN_ID", "_XO_SOURCE_FILE", "_XO_LOADED_AT", "_XO_WINDOW_START", '
        f'"_XO_WINDOW_END" FROM {load.table.sql}',
    )
    assert len(meta) == 1
    run_id, source_file, loaded_at, start, end = meta[0]
    assert (run_id, source_file) == ("run1", engine.source_file(load))
    assert loaded_at == dt.datetime(2026, 11, 3, 11, 50, tzinfo=UTC)
    assert (start, end) == (
        dt.datetime(2026, 11, 2, 5, tzinfo=UTC),
        dt.datetime(2026, 11, 3, 5, tzinfo=UTC),
    )
    assert start.isoformat() == "2026-11-02T05:00:00+00:00"  # the session answers in UTC
    cols = engine.wh.table_columns(load.table)
    assert cols == ["ID", "NOTE", *METADATA_NAMES]
    assert engine.wh.table_columns(engine.helper_table(load)) is None


def test_count_mismatch_fails_and_keeps_yesterdays_bronze(engine: Engine) -> None:
    load = engine.stage_csv(["Id", "Note"], [["1", "a"], ["2", "b"]])
    load_bronze(engine.wh, load, stamp("run1", 3), 2)
    engine.stage_csv(["Id", "Note"], [["9", "z"]])
    with pytest.raises(DataError, match="extracted 5, loaded 1; bronze left unchanged"):
        load_bronze(engine.wh, load, stamp("run2", 4), 5)
    assert engine.bronze_rows(load) == [("1", "a", 1), ("2", "b", 2)]
    assert engine.wh.table_columns(engine.helper_table(load)) is None


BAD_FILES = {
    "extra-field": b"Id,Note\r\n1,a\r\n2,b,EXTRA\r\n",
    "missing-field": b"Id,Note\r\n1,a\r\n2\r\n",
    "not-utf8": b"Id,Note\r\n1,\xff\xfe\r\n2,b\r\n",
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_fails_and_keeps_bronze(engine: Engine, case: str) -> None:
    load = engine.stage_csv(["Id", "Note"], [["1", "a"]])
    load_bronze(engine.wh, load, stamp("run1", 3), 1)
    engine.put(KEY, BAD_FILES[case])
    with pytest.raises(
        engine.bad_file_errors.get(case, WarehouseError), match="bronze left unchanged"
    ):
        load_bronze(engine.wh, load, stamp("run2", 4), 2)
    assert engine.bronze_rows(load) == [("1", "a", 1)]
    assert engine.wh.table_columns(engine.helper_table(load)) is None


def test_new_source_columns_are_added_and_missing_ones_load_null(engine: Engine) -> None:
    first = engine.stage_csv(["Id", "Note"], [["1", "a"]])
    load_bronze(engine.wh, first, stamp("r1", 3), 1)
    second = engine.stage_csv(["Id", "Extra"], [["2", "x"]])
    load_bronze(engine.wh, second, stamp("r2", 4), 1)
    cols = engine.wh.table_columns(first.table)
    assert cols is not None
    assert [c for c in cols if c not in METADATA_NAMES] == ["ID", "NOTE", "EXTRA"]
    metadata = list(METADATA_NAMES)
    assert cols == (
        ["ID", "NOTE", *metadata, "EXTRA"]
        if engine.added_columns_after_metadata
        else ["ID", "NOTE", "EXTRA", *metadata]
    )
    assert engine.bronze_rows(second, '"ID", "NOTE", "EXTRA"') == [("2", None, "x", 1)]


def test_empty_file_loads_zero_rows_only_when_zero_expected(engine: Engine) -> None:
    load = engine.stage_csv(["Id", "Note"], [])  # the first load ever creates bronze
    assert load_bronze(engine.wh, load, stamp("r", 1), 0) == 0
    assert engine.wh.table_columns(load.table) == ["ID", "NOTE", *METADATA_NAMES]
    engine.stage_csv(["Id", "Note"], [["1", "a"]])
    load_bronze(engine.wh, load, stamp("r0", 2), 1)
    engine.stage_csv(["Id", "Note"], [])
    assert load_bronze(engine.wh, load, stamp("r", 3), 0) == 0
    assert count_rows(engine.wh, load.table) == 0
    engine.stage_csv(["Id", "Note"], [["1", "a"]])
    load_bronze(engine.wh, load, stamp("r1", 3), 1)
    engine.stage_csv(["Id", "Note"], [])
    mismatch = rf"row count mismatch for {load.table}: extracted 3, loaded 0; bronze left unchanged"
    with pytest.raises(DataError, match=mismatch):
        load_bronze(engine.wh, load, stamp("r2", 4), 3)
    assert engine.bronze_rows(load) == [("1", "a", 1)]


def test_missing_staged_file_fails_and_keeps_bronze(engine: Engine) -> None:
    load = engine.stage_csv(["Id", "Note"], [["1", "a"]])
    load_bronze(engine.wh, load, stamp("run1", 3), 1)
    gone = engine.bronze_load(["ID", "NOTE"], key=KEY.replace("2026-11-02", "2026-11-03"))
    # DuckDB's read_csv and fakesnow (which reads a FILES entry directly) fail on the missing
    # file; Snowflake may instead answer "Copy executed with 0 files processed." (see
    # test_snowflake_warehouse.py): each must leave bronze alone.
    with pytest.raises(RunError, match="bronze left unchanged"):
        load_bronze(engine.wh, gone, stamp("run2", 4), 3)
    assert engine.bronze_rows(load) == [("1", "a", 1)]
    assert engine.wh.table_columns(engine.helper_table(load)) is None


def test_empty_string_and_missing_value_stay_apart_from_file_to_silver(
    engine: Engine, tmp_path: Path
) -> None:
    """The extract writer's ``""`` is an empty string and its ``,,`` NULL, in bronze and
    in silver (an empty string typed as a number is no number: NULL)."""
    sink = CsvSink(tmp_path / "things.csv")
    sink.open(["Id", "Note", "Amount"])
    sink.write_many_values([["1", "", ""], ["2", None, None], ["3", "x", "5"]])
    sink.close()
    engine.put(KEY, sink.path.read_bytes())
    load = engine.bronze_load(["ID", "NOTE", "AMOUNT"])
    load_bronze(engine.wh, load, stamp("run1", 3), 3)
    assert engine.bronze_rows(load, '"ID", "NOTE", "AMOUNT"') == [
        ("1", "", "", 1),
        ("2", None, None, 2),
        ("3", "x", "5", 3),
    ]
    sp = _source_plan(engine, load, "full_refresh", SilverConfig(columns={"AMOUNT": "FLOAT"}))
    result = transform.run(_runtime(engine), sp, structlog.get_logger())
    assert result.rows == 3
    # The empty string is no number (NULL in silver) but is not counted as a value that
    # failed to convert: only non-empty values are.
    (cast,) = [f for f in result.findings if f.kind == "cast_counts"]
    assert cast.data["columns"]["AMOUNT"] == {"type": "FLOAT", "non_empty": 1, "failed": 0}
    got = execute(
        engine.wh,
        f'SELECT "ID", "NOTE", "NOTE" IS NULL, "AMOUNT" FROM {sp.silver_table.sql} ORDER BY "ID"',
    )
    assert got == [("1", "", False, None), ("2", None, True, None), ("3", "x", False, 5.0)]


def test_an_integer_column_holds_what_snowflake_holds(engine: Engine, tmp_path: Path) -> None:
    """Snowflake's INTEGER is NUMBER(38, 0): 3,000,000,000 and 10**30 are integers, on
    DuckDB too (not a 32-bit INT that would turn them into cast failures)."""
    values = [3_000_000_000, -7, *([10**30] if engine.integer_digits > 30 else [])]
    sink = CsvSink(tmp_path / "big.csv")
    sink.open(["Id", "Big"])
    sink.write_many_values([[str(i), str(v)] for i, v in enumerate(values)])
    sink.close()
    engine.put(KEY, sink.path.read_bytes())
    load = engine.bronze_load(["ID", "BIG"])
    load_bronze(engine.wh, load, stamp("run1", 3), len(values))
    sp = _source_plan(engine, load, "full_refresh", SilverConfig(columns={"BIG": "INTEGER"}))
    result = transform.run(_runtime(engine), sp, structlog.get_logger())
    (cast,) = [f for f in result.findings if f.kind == "cast_counts"]
    assert cast.data["columns"]["BIG"]["failed"] == 0
    got = execute(engine.wh, f'SELECT "BIG" FROM {sp.silver_table.sql} ORDER BY "ID"')
    assert [int(v) for (v,) in got] == values


# -- transactions and errors ---------------------------------------------------------------------


def test_transaction_rolls_back_and_errors_are_one_line_warehouse_errors(engine: Engine) -> None:
    table = engine.table("T")
    assert engine.wh.table_columns(table) is None
    execute(engine.wh, f"CREATE SCHEMA IF NOT EXISTS {table.schema_sql}")
    execute(engine.wh, f'CREATE TABLE {table.sql} ("A" VARCHAR)')
    assert engine.wh.table_columns(table) == ["A"]
    with pytest.raises(WarehouseError) as info, engine.wh.transaction():
        execute(engine.wh, f"INSERT INTO {table.sql} VALUES ('x')")
        execute(engine.wh, f'SELECT "NOPE" FROM {table.sql}')
    assert "\n" not in info.value.message and info.value.transient is False
    assert count_rows(engine.wh, table) == 0
    # The connection is usable after the rollback: a new transaction commits.
    with engine.wh.transaction():
        execute(engine.wh, f"INSERT INTO {table.sql} VALUES ('y')")
    assert execute(engine.wh, f'SELECT "A" FROM {table.sql}') == [("y",)]
    assert engine.wh.location(engine.database) == engine.location


# -- silver through the transform stage ----------------------------------------------------------


@pytest.mark.parametrize("strategy", ["full_refresh", "historical", "incremental"])
def test_transform_stage_builds_silver_by_strategy_and_reruns_idempotently(
    engine: Engine, strategy: str, request: pytest.FixtureRequest
) -> None:
    """The transform stage's own silver step (reconciliation included) on this warehouse."""
    if reason := engine.silver_gaps.get(strategy):
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    tz = ZoneInfo("America/New_York")
    start, end = dt.datetime(2026, 11, 2, tzinfo=tz), dt.datetime(2026, 11, 3, tzinfo=tz)
    window = TimeWindow("daily", start, end, "America/New_York")
    keyed = strategy != "full_refresh"
    # No unparseable timestamp text: fakesnow rewrites TRY_CAST(x AS TIMESTAMP_NTZ) to a
    # strict conversion that raises instead of giving NULL (Snowflake gives NULL).
    rows = [["1", "10.5", "2026-11-02 10:00:00", "a"], ["2", "oops", "", "b"]]
    if keyed:  # a later row of key 1 in the same pull: it wins
        rows.append(["1", "11", "2026-11-02 11:00:00", "c"])
    load = engine.stage_csv(["Id", "Amount", "Created At", "Note"], rows)
    load_bronze(engine.wh, load, stamp("run1", 3), len(rows))
    silver = SilverConfig(
        primary_key=["ID"] if keyed else [],
        columns={"ID": "NUMBER(38,0)", "AMOUNT": "FLOAT", "CREATED_AT": "TIMESTAMP_NTZ"},
    )
    # 'oops' is counted, and allowed
    sp = _source_plan(engine, load, strategy, silver, SchemaPolicy(max_cast_failures=1))
    rt = _runtime(engine, window)
    for _ in range(2):  # a rerun replaces the window's rows instead of adding to them
        result = transform.run(rt, sp, structlog.get_logger())
        assert result.rows == 2
        assert [(f.kind, f.severity, f.count) for f in result.findings] == [
            ("cast_failures", "warn", 1),
            ("cast_counts", "info", 1),
        ]
        assert result.findings[1].data["columns"] == {
            "ID": {"type": "NUMBER(38,0)", "non_empty": len(rows), "failed": 0},
            "AMOUNT": {"type": "FLOAT", "non_empty": len(rows), "failed": 1},
            "CREATED_AT": {"type": "TIMESTAMP_NTZ", "non_empty": len(rows) - 1, "failed": 0},
        }
    got = execute(
        engine.wh,
        'SELECT "ID", "AMOUNT", "CREATED_AT", "CREATED_AT" IS NULL, "NOTE", "_XO_RUN_ID" '
        f'FROM {sp.silver_table.sql} ORDER BY "ID"',
    )
    # "CREATED_AT" IS NULL as well as the value: see Engine.null_timestamp.
    no_time = engine.null_timestamp
    assert got == (
        [
            (1, 11.0, dt.datetime(2026, 11, 2, 11), False, "c", "run1"),
            (2, None, no_time, True, "b", "run1"),
        ]
        if keyed
        else [
            (1, 10.5, dt.datetime(2026, 11, 2, 10), False, "a", "run1"),
            (2, None, no_time, True, "b", "run1"),
        ]
    )


LONG = "A" * 100
CAST_ROWS = [  # Id, Amount (FLOAT), Day (DATE), Flag (BOOLEAN), Note (VARCHAR)
    ["1", "10.5", "2026-11-02", "true", "a"],
    ["2", "oops", "2026-13-45", "yes\nno", "b"],  # a value on two lines
    ["3", "", "", "", "c"],  # empty: nothing to convert, never a failure
    ["4", "n/a", "2026-11-03", "false", ""],
    ["5", "oops", "2026-11-04", "1", "d"],
    ["6", LONG, "2026-11-05", "0", "e"],
]
CAST_COLUMNS = {"ID": "NUMBER(38,0)", "AMOUNT": "FLOAT", "DAY": "DATE", "FLAG": "BOOLEAN"}


def test_cast_failures_are_counted_exactly_as_silver_nulls_them(engine: Engine) -> None:
    """Values that do not convert: counted per typed column, refused above the limit with
    examples (nothing written to silver), recorded at or below it; the count is what silver
    turns into NULL on this engine."""
    tz = ZoneInfo("America/New_York")
    window = TimeWindow(
        "daily",
        dt.datetime(2026, 11, 2, tzinfo=tz),
        dt.datetime(2026, 11, 3, tzinfo=tz),
        "America/New_York",
    )
    load = engine.stage_csv(["Id", "Amount", "Day", "Flag", "Note"], CAST_ROWS)
    load_bronze(engine.wh, load, stamp("run1", 3), len(CAST_ROWS))
    silver_table = engine.table("CASTS", "SILVER")

    def transform_with(limit: int | float | None) -> StageResult:
        sp = SourcePlan(
            name="casts",
            source_type="test",
            load_strategy="full_refresh",
            ingest_bucket="xoelt-ingest",
            ingest_key="ingest/casts.csv",
            stage_bucket=STAGE_BUCKET,
            stage_key=KEY,
            bronze_table=load.table,
            silver_table=silver_table,
            silver=SilverConfig(columns=CAST_COLUMNS),
            request={},
            schema_policy=SchemaPolicy(max_cast_failures=limit),
        )
        rt: Any = types.SimpleNamespace(
            warehouse=engine.wh, plan=types.SimpleNamespace(window=window)
        )
        return transform.run(rt, sp, structlog.get_logger())

    amount = "AMOUNT (FLOAT): 4 of 5 non-empty values did not convert, e.g. 'oops', 'n/a', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA…'"
    day = "DAY (DATE): 1 of 5 non-empty values did not convert, e.g. '2026-13-45'"
    flag = "FLAG (BOOLEAN): 1 of 5 non-empty values did not convert, e.g. 'yes\\nno'"
    with pytest.raises(DataError) as info:
        transform_with(None)  # default: no value may fail to convert
    assert str(info.value) == (
        f"{amount}; {day}; {flag}; above max_cast_failures 0, nothing written to silver"
    )
    assert "\n" not in str(info.value)  # one line, whatever the data holds
    assert [(f.kind, f.severity, f.count) for f in info.value.findings] == [
        ("cast_failures", "error", 4),
        ("cast_failures", "error", 1),
        ("cast_failures", "error", 1),
        ("cast_counts", "info", 6),
    ]
    assert engine.wh.table_columns(silver_table) is None

    with pytest.raises(DataError) as info:
        transform_with(0.5)  # 4 of 5 is above half; 1 of 5 is not
    assert str(info.value) == f"{amount}; above max_cast_failures 50%, nothing written to silver"
    assert [f.severity for f in info.value.findings] == ["error", "warn", "warn", "info"]
    assert engine.wh.table_columns(silver_table) is None

    result = transform_with(4)
    assert result.rows == len(CAST_ROWS)
    assert [(f.kind, f.severity, f.count) for f in result.findings] == [
        ("cast_failures", "warn", 4),
        ("cast_failures", "warn", 1),
        ("cast_failures", "warn", 1),
        ("cast_counts", "info", 6),
    ]
    assert result.findings[0].message == f"{amount}; they load as NULL (max_cast_failures 4)"
    assert dict(result.findings[0].data) == {
        "column": "AMOUNT",
        "type": "FLOAT",
        "non_empty": 5,
        "failed": 4,
        "allowed": 4,
        "examples": ["oops", "n/a", LONG[:40] + "…"],
    }
    counted = result.findings[-1].data["columns"]
    assert counted["ID"] == {"type": "NUMBER(38,0)", "non_empty": 6, "failed": 0}
    for column in CAST_COLUMNS:  # silver's new NULLs are exactly the counted failures
        in_silver = execute(
            engine.wh, f'SELECT COUNT(*) FROM {silver_table.sql} WHERE "{column}" IS NULL'
        )[0][0]
        empty = execute(
            engine.wh,
            f'SELECT COUNT(*) FROM {load.table.sql} WHERE "{column}" IS NULL OR "{column}" = \'\'',
        )[0][0]
        assert int(in_silver) - int(empty) == counted[column]["failed"], column


def _source_plan(
    engine: Engine,
    load: BronzeLoad,
    strategy: str,
    silver: SilverConfig,
    policy: SchemaPolicy | None = None,
) -> SourcePlan:
    """The plan of source ``things`` whose bronze is ``load``'s table."""
    return SourcePlan(
        name="things",
        source_type="test",
        load_strategy=strategy,
        ingest_bucket="xoelt-ingest",
        ingest_key="ingest/things.csv",
        stage_bucket=STAGE_BUCKET,
        stage_key=KEY,
        bronze_table=load.table,
        silver_table=engine.table("THINGS", "SILVER"),
        silver=silver,
        request={},
        sql={},
        schema_policy=policy or SchemaPolicy(),
    )


def _runtime(engine: Engine, window: TimeWindow | None = None) -> Any:
    """Only the two attributes the transform stage reads; the warehouse under it is real."""
    if window is None:
        tz = ZoneInfo("America/New_York")
        start, end = (dt.datetime.fromisoformat(w).astimezone(tz) for w in WINDOW)
        window = TimeWindow("daily", start, end, "America/New_York")
    return types.SimpleNamespace(warehouse=engine.wh, plan=types.SimpleNamespace(window=window))


# -- migrations and the run ledger ---------------------------------------------------------------


def test_migrations_apply_once_and_the_run_ledger_records_runs(engine: Engine) -> None:
    """What the runtime does on first use of a warehouse, then what each stage records."""
    wh, db = engine.wh, engine.database
    assert "V001" in ledger.apply_migrations(wh, db)
    assert ledger.apply_migrations(wh, db) == []
    key = ("test/p", "things", "load", WINDOW[0])
    assert not ledger.last_success(wh, db, *key)
    assert ledger.latest_run(wh, db, "test/p") == []

    def record(
        run_id: str, stage: str, status: str, rows: int | None, message: str, **details: Any
    ) -> None:
        ledger.record(
            wh,
            db,
            run_id=run_id,
            pipeline="test/p",
            source="things",
            stage=stage,
            window_start=WINDOW[0],
            window_end=WINDOW[1],
            status=status,
            started_at=dt.datetime(2026, 11, 3, 11, 50, tzinfo=UTC),
            rows=rows,
            message=message,
            details=details,
        )

    record("run1", "extract", "success", 2, "")
    noticed = Finding("new_column", "column NOTE appeared", "warn", data={"columns": ["NOTE"]})
    record("run1", "load", "success", 2, "it's fine", **as_details([noticed]))
    assert ledger.last_success(wh, db, *key)
    window_start = dt.datetime(2026, 11, 2, 5, tzinfo=UTC)
    latest = ledger.latest_run(wh, db, "test/p")
    assert [{k: r[k] for k in ledger.LEDGER_COLUMNS[:6]} for r in latest] == [
        {
            "run_id": "run1",
            "source": "things",
            "stage": stage,
            "window_start": window_start,
            "status": "success",
            "rows": 2,
        }
        for stage in ("extract", "load")
    ]
    assert latest[0]["finished_at"] <= latest[1]["finished_at"]
    assert [(r["message"], from_details(r["details"])) for r in latest] == [
        ("", []),
        ("it's fine", [noticed]),
    ]

    record("run2", "load", "failed", None, "loading failed: 'x'\\y; bronze left unchanged")
    assert not ledger.last_success(wh, db, *key)
    assert [
        (r["run_id"], r["stage"], r["status"]) for r in ledger.latest_run(wh, db, "test/p")
    ] == [("run2", "load", "failed")]
    assert ledger.latest_run(wh, db, "other/p") == []
