"""SCD2 (the ``historical`` strategy) on every engine, through the real transform stage.

The reproductions of issue 7 (an empty pull, a column that appears, one instant in two
offsets, deletion semantics), validity dates, and upgrading tables the earlier strategy
wrote. Bronze is written with plain SQL, as a load leaves it (every column VARCHAR, NULL
where a pull lacks a column, bronze keeping every column it ever had): what is under test is
bronze → silver, not the CSV reader.
"""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog

from tests.integration import scd2_v1
from tests.integration.snowflake_fixtures import SCHEMA
from tests.integration.test_warehouse_contract import (
    STAGE_BUCKET,
    Engine,
    engine,
    fakesnow_kwargs,
    snowflake_database,
    snowflake_wh,
    stage_bucket,
)
from xoelt.config.models import SilverConfig
from xoelt.errors import DataError
from xoelt.plan import SourcePlan
from xoelt.stages import transform
from xoelt.timewindow import TimeWindow
from xoelt.warehouse.base import METADATA_COLUMNS, TableRef, Warehouse, execute, literal, quote
from xoelt.warehouse.duckdb import DuckDBWarehouse

__all__ = ["engine", "fakesnow_kwargs", "snowflake_database", "snowflake_wh", "stage_bucket"]

UTC = dt.UTC
Row = Sequence[str | None]


def window(day: int, tz: str) -> TimeWindow:
    """The daily window of 2026-11-<day> in ``tz``."""
    zone = ZoneInfo(tz)
    start = dt.datetime(2026, 11, day, tzinfo=zone)
    return TimeWindow("daily", start, start + dt.timedelta(days=1), tz)


@dataclass(frozen=True)
class Version:
    """One SCD2 row, by window day: ``to`` None is open."""

    id: str | int
    values: tuple[Any, ...]
    start: int
    to: int | None
    current: bool
    deleted: bool = False


@dataclass
class Source:
    """A historical source on one warehouse: pulls go to bronze, then through transform.run."""

    wh: Warehouse
    database: str
    silver: SilverConfig
    tz: str = "America/New_York"
    name: str = "STATUSES"
    bronze_name: str = "GLADLY_STATUSES"
    pulled: list[int] = field(default_factory=list)

    @property
    def bronze(self) -> TableRef:
        return TableRef(self.database, SCHEMA, self.bronze_name)

    @property
    def table(self) -> TableRef:
        return self.suffixed("")

    def suffixed(self, suffix: str) -> TableRef:
        """The strategy's table beside silver's (``__SNAPSHOTS``, ``__WINDOWS``)."""
        return TableRef(self.database, "SILVER", self.name + suffix)

    def drop(self) -> None:
        """Drop bronze and every table of the strategy."""
        for table in (self.bronze, *(self.suffixed(s) for s in ("", "__SNAPSHOTS", "__WINDOWS"))):
            execute(self.wh, f"DROP TABLE IF EXISTS {table.sql}")

    def plan(self) -> SourcePlan:
        return SourcePlan(
            name="statuses",
            source_type="test",
            load_strategy="historical",
            ingest_bucket="xoelt-ingest",
            ingest_key="ingest/statuses.csv",
            stage_bucket=STAGE_BUCKET,
            stage_key="stage/statuses.csv",
            bronze_table=self.bronze,
            silver_table=self.table,
            silver=self.silver,
            request={},
            sql={},
        )

    def load(self, day: int, header: Sequence[str], rows: Sequence[Row]) -> None:
        """Replace bronze with one window's pull, as a load does."""
        wh, table, w = self.wh, self.bronze, window(day, self.tz)
        have = wh.table_columns(table)
        if have is None:
            execute(wh, f"CREATE SCHEMA IF NOT EXISTS {table.schema_sql}")
            defs = [f"{quote(c)} VARCHAR" for c in header]
            defs += [f"{quote(n)} {t}" for n, t in METADATA_COLUMNS]
            execute(wh, f"CREATE TABLE {table.sql} ({', '.join(defs)})")
        else:
            for c in header:
                if c not in have:
                    execute(wh, f"ALTER TABLE {table.sql} ADD COLUMN {quote(c)} VARCHAR")
        execute(wh, f"DELETE FROM {table.sql}")
        if not rows:
            return
        meta = [quote(n) for n, _ in METADATA_COLUMNS]
        values = []
        for number, row in enumerate(rows, 1):
            cells = ["NULL" if v is None else literal(v) for v in row]
            cells += [
                literal(f"run-{day}"),
                literal(f"{day}.csv"),
                str(number),
                f"{literal(f'2026-12-{day:02d}T00:00:00+00:00')}::TIMESTAMP_TZ",
                f"{literal(w.start.isoformat())}::TIMESTAMP_TZ",
                f"{literal(w.end.isoformat())}::TIMESTAMP_TZ",
            ]
            values.append(f"({', '.join(cells)})")
        cols = ", ".join([*(quote(c) for c in header), *meta])
        execute(wh, f"INSERT INTO {table.sql} ({cols}) VALUES {', '.join(values)}")

    def pull(self, day: int, header: Sequence[str], rows: Sequence[Row] = ()) -> None:
        """Load a window's pull and transform it."""
        self.load(day, header, rows)
        rt: Any = types.SimpleNamespace(
            warehouse=self.wh, plan=types.SimpleNamespace(window=window(day, self.tz))
        )
        transform.run(rt, self.plan(), structlog.get_logger())
        self.pulled.append(day)

    def history(self, *columns: str) -> list[Version]:
        """The SCD2 table as versions, checking each instant against its window and date."""
        picked = ", ".join(quote(c) for c in columns)
        # Only new_record has deletion records, and the column.
        deleted = '"IS_DELETED"' if self.silver.hard_deletes == "new_record" else "FALSE"
        got = execute(
            self.wh,
            f'SELECT "ID", {picked}, "VALID_FROM", "VALID_TO", "VALID_TO" IS NULL, '
            '"VALID_FROM_DATE", "VALID_TO_DATE", "VALID_TO_DATE" IS NULL, "IS_CURRENT", '
            f'{deleted} AS d FROM {self.table.sql} ORDER BY "ID", "VALID_FROM", d',
        )
        versions = []
        n = len(columns)
        for row in got:
            key, values = row[0], tuple(row[1 : 1 + n])
            start, to, to_null, start_date, to_date, to_date_null, current, deleted = row[1 + n :]
            assert to_null == to_date_null  # fakesnow reads a NULL timestamp as 1970-01-01
            assert start_date.day == start.astimezone(ZoneInfo(self.tz)).day
            assert start == window(start_date.day, self.tz).start
            if not to_null:
                assert to == window(to_date.day, self.tz).start
            versions.append(
                Version(
                    key,
                    values,
                    start_date.day,
                    None if to_null else to_date.day,
                    current,
                    deleted,
                )
            )
        return versions


def source(
    engine: Engine, tz: str = "America/New_York", name: str = "STATUSES", **silver: Any
) -> Source:
    return Source(engine.wh, engine.database, SilverConfig(primary_key=["ID"], **silver), tz, name)


Days = Mapping[int, tuple[Sequence[str], Sequence[Row]]]


def pulls(src: Source, days: Days, order: Sequence[int]) -> None:
    """Each day's pull, in ``order``."""
    for day in order:
        src.pull(day, *days[day])


# -- the reproductions -------------------------------------------------------------------------

EMPTY_DAY = {
    2: (["ID", "STATUS"], [["1", "open"], ["2", "open"]]),
    3: (["ID", "STATUS"], []),
    4: (["ID", "STATUS"], [["2", "open"]]),
}


@pytest.mark.parametrize("order", [(2, 3, 4), (4, 2, 3)])
def test_an_empty_pull_is_a_window_that_closes_every_key(engine: Engine, order: tuple) -> None:
    src = source(engine)
    pulls(src, EMPTY_DAY, order)
    assert src.history("STATUS") == [
        Version("1", ("open",), 2, 3, False),
        Version("2", ("open",), 2, 3, False),
        Version("2", ("open",), 4, None, True),
    ]


COLUMN_APPEARS = {
    2: (["ID", "STATUS"], [["1", "open"], ["2", "open"]]),
    3: (["ID", "STATUS"], [["1", "open"], ["2", "open"]]),
    4: (["ID", "STATUS", "NOTE"], [["1", "open", None], ["2", "open", "vip"]]),
}


@pytest.mark.parametrize("order", [(2, 3, 4), (4, 2, 3), (3, 4, 2)])
def test_a_column_that_appears_makes_a_version_only_where_it_has_a_value(
    engine: Engine, order: tuple
) -> None:
    src = source(engine)
    pulls(src, COLUMN_APPEARS, order)
    assert src.history("STATUS", "NOTE") == [
        Version("1", ("open", None), 2, None, True),
        Version("2", ("open", None), 2, 4, False),
        Version("2", ("open", "vip"), 4, None, True),
    ]


def test_one_instant_in_two_offsets_is_one_version(engine: Engine) -> None:
    src = source(engine, columns={"SEEN_AT": "TIMESTAMP_TZ", "AMOUNT": "NUMBER(10,2)"})
    header = ["ID", "SEEN_AT", "AMOUNT"]
    src.pull(2, header, [["1", "2026-11-01T10:00:00+01:00", "1.5"]])
    src.pull(3, header, [["1", "2026-11-01T09:00:00Z", "1.50"]])
    src.pull(4, header, [["1", "2026-11-01T04:00:00-05:00", "01.500"]])
    src.pull(5, header, [["1", "2026-11-01T09:00:01Z", "1.5"]])  # a second later: a change
    seen = dt.datetime(2026, 11, 1, 9, tzinfo=UTC)
    history = src.history("AMOUNT")
    assert [(v.values, v.start, v.to) for v in history] == [
        ((1.5,), 2, 5),
        ((1.5,), 5, None),
    ]
    got = execute(engine.wh, f'SELECT "SEEN_AT" FROM {src.table.sql} ORDER BY "VALID_FROM"')
    assert [r[0] for r in got] == [seen, seen + dt.timedelta(seconds=1)]


DELETIONS = {
    2: (["ID", "STATUS"], [["1", "a"], ["2", "a"]]),
    3: (["ID", "STATUS"], [["2", "a"]]),
    4: (["ID", "STATUS"], []),
    5: (["ID", "STATUS"], [["1", "a"], ["2", "b"]]),
}
EXPECTED_DELETIONS = {
    "invalidate": [
        Version("1", ("a",), 2, 3, False),
        Version("1", ("a",), 5, None, True),
        Version("2", ("a",), 2, 4, False),
        Version("2", ("b",), 5, None, True),
    ],
    "ignore": [
        Version("1", ("a",), 2, None, True),
        Version("2", ("a",), 2, 5, False),
        Version("2", ("b",), 5, None, True),
    ],
    "new_record": [
        Version("1", ("a",), 2, 3, False),
        Version("1", ("a",), 3, 5, False, deleted=True),
        Version("1", ("a",), 5, None, True),
        Version("2", ("a",), 2, 4, False),
        Version("2", ("a",), 4, 5, False, deleted=True),
        Version("2", ("b",), 5, None, True),
    ],
}


@pytest.mark.parametrize("mode", EXPECTED_DELETIONS)
@pytest.mark.parametrize("order", [(2, 3, 4, 5), (5, 3, 2, 4)])
def test_hard_deletes_modes_as_dbt_snapshots(engine: Engine, mode: str, order: tuple) -> None:
    src = source(engine, hard_deletes=mode)
    pulls(src, DELETIONS, order)
    assert src.history("STATUS") == EXPECTED_DELETIONS[mode]


def test_a_deletion_record_stays_current_while_the_key_is_gone(engine: Engine) -> None:
    src = source(engine, hard_deletes="new_record")
    pulls(src, DELETIONS, (2, 3))
    assert src.history("STATUS") == [
        Version("1", ("a",), 2, 3, False),
        Version("1", ("a",), 3, None, True, deleted=True),
        Version("2", ("a",), 2, None, True),
    ]


# -- validity dates ------------------------------------------------------------------------------


def test_validity_dates_are_the_windows_local_dates(engine: Engine) -> None:
    """Berlin's midnight is 23:00 UTC the day before: the date column says the local day."""
    src = source(engine, tz="Europe/Berlin")
    src.pull(2, ["ID", "STATUS"], [["1", "a"]])
    src.pull(3, ["ID", "STATUS"], [["1", "b"]])
    got = execute(
        engine.wh,
        f'SELECT "VALID_FROM", "VALID_FROM_DATE", "VALID_TO_DATE" FROM {src.table.sql} '
        'ORDER BY "VALID_FROM"',
    )
    assert got[0][:2] == (dt.datetime(2026, 11, 1, 23, tzinfo=UTC), dt.date(2026, 11, 2))
    assert got[0][2] == dt.date(2026, 11, 3)
    assert got[1][1] == dt.date(2026, 11, 3)
    windows = execute(
        engine.wh,
        f'SELECT "_XO_WINDOW_START", "_XO_WINDOW_DATE" FROM {src.suffixed("__WINDOWS").sql} '
        "ORDER BY 1",
    )
    assert [d for _, d in windows] == [dt.date(2026, 11, 2), dt.date(2026, 11, 3)]


# -- upgrading the earlier strategy's tables -----------------------------------------------------


def legacy_pull(src: Source, day: int, rows: Sequence[Row]) -> None:
    """Load and transform one window as xoelt did before (see scd2_v1.py)."""
    src.load(day, ["ID", "STATUS"], rows)
    prepare, body = scd2_v1.statements(src.bronze, src.table, window(day, src.tz).start.isoformat())
    for sql in prepare:
        execute(src.wh, sql)
    with src.wh.transaction():
        for sql in body:
            execute(src.wh, sql)


UPGRADE = {
    2: [["1", "a"], ["2", "a"]],
    3: [["2", "b"]],
    4: [["1", "a"], ["2", "b"], ["3", None]],
    5: [["1", "a"], ["2", "c"], ["3", ""]],
}


def test_tables_of_the_earlier_strategy_upgrade_in_place(engine: Engine) -> None:
    """Days 2 and 4 as xoelt ran them before, then day 3 and 5 now: the same history, hash
    and windows as a table built by today's strategy from the start."""
    old = source(engine, tz="Europe/Berlin")
    legacy_pull(old, 2, UPGRADE[2])
    legacy_pull(old, 4, UPGRADE[4])
    snapshot_cols = engine.wh.table_columns(old.suffixed("__SNAPSHOTS"))
    assert snapshot_cols is not None and "ROW_HASH" in snapshot_cols
    assert engine.wh.table_columns(old.suffixed("__WINDOWS")) is None
    old.pull(3, ["ID", "STATUS"], UPGRADE[3])
    old.pull(5, ["ID", "STATUS"], UPGRADE[5])

    new = source(engine, tz="Europe/Berlin", name="FRESH")
    for day in (2, 3, 4, 5):
        new.pull(day, ["ID", "STATUS"], UPGRADE[day])
    assert old.history("STATUS") == new.history("STATUS")
    assert old.history("STATUS") == [
        Version("1", ("a",), 2, 3, False),
        Version("1", ("a",), 4, None, True),
        Version("2", ("a",), 2, 3, False),
        Version("2", ("b",), 3, 5, False),
        Version("2", ("c",), 5, None, True),
        Version("3", (None,), 4, 5, False),
        Version("3", ("",), 5, None, True),  # '' is a value, NULL is none
    ]

    def everything(src: Source, suffix: str, cols: str) -> list[tuple[Any, ...]]:
        table = src.suffixed(suffix).sql
        return execute(engine.wh, f"SELECT {cols} FROM {table} ORDER BY {cols}")

    scd2 = '"ID", "STATUS", "ROW_HASH", "VALID_FROM", "VALID_TO_DATE", "_XO_RUN_ID"'
    assert everything(old, "", scd2) == everything(new, "", scd2)
    win = '"_XO_WINDOW_START", "_XO_WINDOW_DATE"'
    assert everything(old, "__WINDOWS", win) == everything(new, "__WINDOWS", win)
    assert [d for _, d in everything(old, "__WINDOWS", win)] == [
        dt.date(2026, 11, day) for day in (2, 3, 4, 5)
    ]


def test_validity_dates_do_not_depend_on_the_session_time_zone(tmp_path: Path) -> None:
    """A session in UTC+14 (where Berlin's midnight is already the next afternoon) gets the
    windows' own dates, for windows recorded now and for those an upgrade backfills."""
    wh = DuckDBWarehouse(tmp_path / "wh", ["XO_TZ"], "XO_TZ")
    try:
        wh.query("SET TimeZone = 'Pacific/Kiritimati'", native=True)
        src = Source(wh, "XO_TZ", SilverConfig(primary_key=["ID"]), "Europe/Berlin")
        legacy_pull(src, 2, [["1", "a"]])
        src.pull(3, ["ID", "STATUS"], [["1", "b"]])
        src.pull(4, ["ID", "STATUS"], [["1", "b"]])
        windows = execute(
            wh, f'SELECT "_XO_WINDOW_DATE" FROM {src.suffixed("__WINDOWS").sql} ORDER BY 1'
        )
        assert [d for (d,) in windows] == [dt.date(2026, 11, day) for day in (2, 3, 4)]
        assert src.history("STATUS") == [
            Version("1", ("a",), 2, 3, False),
            Version("1", ("b",), 3, None, True),
        ]
    finally:
        wh.close()


def test_keys_equal_once_typed_fail_the_window_and_keep_the_history(engine: Engine) -> None:
    """'1' and '01' are one NUMBER key: which row is the key's is not the data's to say."""
    src = source(engine, columns={"ID": "NUMBER(38,0)"})
    src.pull(2, ["ID", "STATUS"], [["1", "a"]])
    with pytest.raises(DataError, match=r"got 1 keys from bronze's 2 distinct keys: keys that"):
        src.pull(3, ["ID", "STATUS"], [["1", "b"], ["01", "c"]])
    assert src.history("STATUS") == [Version(1, ("a",), 2, None, True)]


def test_a_source_column_named_like_an_scd2_column(engine: Engine) -> None:
    """A source's own IS_DELETED is a source column unless new_record needs the name."""
    src = source(engine)
    src.pull(2, ["ID", "IS_DELETED"], [["1", "false"]])
    src.pull(3, ["ID", "IS_DELETED"], [["1", "true"]])
    assert src.history("IS_DELETED") == [
        Version("1", ("false",), 2, 3, False),
        Version("1", ("true",), 3, None, True),
    ]
    clash = source(engine, name="CLASH", hard_deletes="new_record")
    with pytest.raises(DataError, match=r"source columns IS_DELETED have the names of"):
        clash.pull(2, ["ID", "IS_DELETED"], [["1", "false"]])
    assert engine.wh.table_columns(clash.table) is None  # nothing half-made


def test_switching_to_new_record_adds_the_column_and_rebuilds(engine: Engine) -> None:
    src = source(engine)
    pulls(src, DELETIONS, (2, 3))
    assert "IS_DELETED" not in (engine.wh.table_columns(src.table) or [])
    src.silver = SilverConfig(primary_key=["ID"], hard_deletes="new_record")
    pulls(src, DELETIONS, (4, 5))
    assert src.history("STATUS") == EXPECTED_DELETIONS["new_record"]
