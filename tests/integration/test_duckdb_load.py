"""Bronze loads on the embedded DuckDB warehouse: atomic, reconciled, schema-evolving."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from xoelt.errors import DataError, WarehouseError
from xoelt.warehouse.base import BronzeLoad, RunStamp, TableRef, load_bronze
from xoelt.warehouse.duckdb import DuckDBWarehouse, native_rows

TABLE = TableRef("TEST_DB", "BRONZE", "GLADLY_THINGS")


@pytest.fixture
def wh(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    w = DuckDBWarehouse(tmp_path / "wh", ["TEST_DB"], "TEST_DB")
    yield w
    w.close()


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def spec(path: Path, columns: list[str]) -> BronzeLoad:
    return BronzeLoad(
        TABLE,
        columns,
        "stage",
        "k",
        str(path),
        "2026-11-02T00:00:00-05:00",
        "2026-11-03T00:00:00-05:00",
    )


def rows(wh: DuckDBWarehouse, cols: str = '"ID", "NOTE", "_XO_FILE_ROW_NUMBER"') -> list[tuple]:
    return native_rows(wh, f'SELECT {cols} FROM {TABLE.sql} ORDER BY "_XO_FILE_ROW_NUMBER"')


def test_load_with_awkward_values_and_row_numbers(wh: DuckDBWarehouse, tmp_path: Path) -> None:
    data = [["1", 'say "hi", ok'], ["2", "multi\nline"], ["3", ""], ["4", "ünïcødé ✓"]]
    path = write_csv(tmp_path / "a.csv", ["Id", "Note"], data)
    loaded = load_bronze(
        wh, spec(path, ["ID", "NOTE"]), RunStamp("run1", "2026-11-03T11:50:00+00:00"), 4
    )
    assert loaded == 4
    assert rows(wh) == [
        ("1", 'say "hi", ok', 1),
        ("2", "multi\nline", 2),
        ("3", None, 3),
        ("4", "ünïcødé ✓", 4),
    ]
    meta = native_rows(
        wh, f'SELECT DISTINCT "_XO_RUN_ID", "_XO_SOURCE_FILE", "_XO_WINDOW_START" FROM {TABLE.sql}'
    )
    assert meta[0][0] == "run1" and meta[0][1] == str(path)
    assert meta[0][2].isoformat() == "2026-11-02T05:00:00+00:00"


def test_count_mismatch_fails_and_keeps_yesterdays_bronze(
    wh: DuckDBWarehouse, tmp_path: Path
) -> None:
    good = write_csv(tmp_path / "good.csv", ["Id", "Note"], [["1", "a"], ["2", "b"]])
    load_bronze(wh, spec(good, ["ID", "NOTE"]), RunStamp("run1", "2026-11-03T00:00:00+00:00"), 2)
    today = write_csv(tmp_path / "today.csv", ["Id", "Note"], [["9", "z"]])
    with pytest.raises(DataError, match="extracted 5, loaded 1; bronze left unchanged"):
        load_bronze(
            wh, spec(today, ["ID", "NOTE"]), RunStamp("run2", "2026-11-04T00:00:00+00:00"), 5
        )
    assert rows(wh) == [("1", "a", 1), ("2", "b", 2)]
    assert wh.table_columns(TABLE.with_name(TABLE.name + "__XO_LOAD")) is None


def test_ragged_file_fails_and_keeps_bronze(wh: DuckDBWarehouse, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "good.csv", ["Id", "Note"], [["1", "a"]])
    load_bronze(wh, spec(good, ["ID", "NOTE"]), RunStamp("run1", "2026-11-03T00:00:00+00:00"), 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("Id,Note\n1,a\n2,b,EXTRA\n")
    with pytest.raises(WarehouseError):
        load_bronze(wh, spec(bad, ["ID", "NOTE"]), RunStamp("run2", "2026-11-04T00:00:00+00:00"), 2)
    assert rows(wh) == [("1", "a", 1)]


def test_new_source_columns_are_added(wh: DuckDBWarehouse, tmp_path: Path) -> None:
    first = write_csv(tmp_path / "1.csv", ["Id", "Note"], [["1", "a"]])
    load_bronze(wh, spec(first, ["ID", "NOTE"]), RunStamp("r1", "2026-11-03T00:00:00+00:00"), 1)
    second = write_csv(tmp_path / "2.csv", ["Id", "Extra"], [["2", "x"]])
    load_bronze(wh, spec(second, ["ID", "EXTRA"]), RunStamp("r2", "2026-11-04T00:00:00+00:00"), 1)
    cols = wh.table_columns(TABLE)
    assert cols is not None and cols[:3] == ["ID", "NOTE", "EXTRA"]
    assert native_rows(wh, f'SELECT "ID", "NOTE", "EXTRA" FROM {TABLE.sql}') == [("2", None, "x")]


def test_empty_file_loads_zero_rows_only_when_zero_expected(
    wh: DuckDBWarehouse, tmp_path: Path
) -> None:
    empty = write_csv(tmp_path / "e.csv", ["Id", "Note"], [])
    assert (
        load_bronze(wh, spec(empty, ["ID", "NOTE"]), RunStamp("r", "2026-11-03T00:00:00+00:00"), 0)
        == 0
    )
    with pytest.raises(DataError, match="row count mismatch"):
        load_bronze(wh, spec(empty, ["ID", "NOTE"]), RunStamp("r", "2026-11-03T00:00:00+00:00"), 3)
