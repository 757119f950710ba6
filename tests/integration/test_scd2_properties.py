"""SCD2 properties, by hypothesis, through the real transform stage on DuckDB.

Random daily pulls (inserts, updates, deletions, reappearances, empty days, a column that
appears part-way, duplicate keys in a pull, one instant written in several UTC offsets)
are transformed in window order and again in a random order with reruns. For each
``hard_deletes`` mode the two histories must be identical, row for row, and equal to a
small Python model of dbt snapshots' semantics; every key has at most one row per instant
(no overlaps), versions are contiguous where the mode says so, and the current rows are
exactly the ones the mode says.

The default tier runs a few examples per mode; ``pytest -m soak`` runs many more.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_scd2 import Source
from xoelt.config.models import SilverConfig
from xoelt.scd2 import HARD_DELETES
from xoelt.warehouse.base import execute, quote
from xoelt.warehouse.duckdb import DuckDBWarehouse

DATABASE = "XO_PROPS"
TZ = "America/New_York"
KEYS = ["1", "2", "3", "4"]
INSTANTS = [
    dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.UTC),
]
OFFSETS = [dt.timedelta(0), dt.timedelta(hours=1), dt.timedelta(hours=-5)]
FIRST_DAY = 2

Values = tuple[str, str | None, dt.datetime]  # STATUS, NOTE, SEEN_AT (an instant)


@dataclass(frozen=True)
class Pull:
    """One day's pull: rows in file order (a key may repeat; its last row wins)."""

    day: int
    header: tuple[str, ...]
    rows: tuple[tuple[str | None, ...], ...]

    def latest(self) -> dict[str, Values]:
        """What the pull says per key."""
        out: dict[str, Values] = {}
        for row in self.rows:
            cells = dict(zip(self.header, row, strict=True))
            seen = dt.datetime.fromisoformat(str(cells["SEEN_AT"])).astimezone(dt.UTC)
            out[str(cells["ID"])] = (str(cells["STATUS"]), cells.get("NOTE"), seen)
        return out


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Pull], list[int]]:
    """Pulls for consecutive days, and an order to load them in (with reruns)."""
    days = draw(st.integers(2, 6))
    note_from = draw(st.integers(0, days))  # the day index NOTE appears at (days: never)
    pulls = []
    for i in range(days):
        header = ("ID", "STATUS", "SEEN_AT", *(("NOTE",) if i >= note_from else ()))
        rows = []
        if not draw(st.booleans()) or i == 0:  # about half the days after the first: not empty
            for key in draw(st.lists(st.sampled_from(KEYS), max_size=6)):
                instant = draw(st.sampled_from(INSTANTS))
                offset = draw(st.sampled_from(OFFSETS))
                seen = instant.astimezone(dt.timezone(offset)).isoformat()
                row: tuple[str | None, ...] = (key, draw(st.sampled_from("ab")), seen)
                if "NOTE" in header:
                    row += (draw(st.sampled_from([None, "x"])),)
                rows.append(row)
        pulls.append(Pull(FIRST_DAY + i, header, tuple(rows)))
    order = draw(st.permutations([p.day for p in pulls]))
    reruns = draw(st.lists(st.sampled_from(order), max_size=2))
    return pulls, [*order, *reruns]


def order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Rows by key, then start, versions before a deletion record of the same day."""
    return (row[0], row[4], row[7])


@dataclass
class Version:
    key: str
    values: Values
    start: int
    to: int | None = None
    deleted: bool = False


def model(pulls: list[Pull], mode: str) -> list[tuple[Any, ...]]:
    """dbt snapshots' history of these pulls, taken in day order (see xoelt.scd2)."""
    out: list[Version] = []
    for key in KEYS:
        open_: Version | None = None
        for pull in pulls:
            now = pull.latest().get(key)

            def close(v: Version, day: int = pull.day) -> None:
                v.to = day
                out.append(v)

            if now is not None:
                if open_ is not None and not open_.deleted and open_.values == now:
                    continue
                if open_ is not None:
                    close(open_)
                open_ = Version(key, now, pull.day)
            elif open_ is not None and not open_.deleted and mode != "ignore":
                close(open_)
                open_ = Version(key, open_.values, pull.day, deleted=True)
                if mode == "invalidate":
                    open_ = None
        if open_ is not None:
            out.append(open_)
    return sorted(
        ((v.key, *v.values, v.start, v.to, v.to is None, v.deleted) for v in out), key=order
    )


def history(src: Source) -> list[tuple[Any, ...]]:
    """The SCD2 table as the model writes it (validity by window day)."""
    cols = src.wh.table_columns(src.table) or []
    note = '"NOTE"' if "NOTE" in cols else "NULL"
    deleted = '"IS_DELETED"' if "IS_DELETED" in cols else "FALSE"
    got = execute(
        src.wh,
        f'SELECT "ID", "STATUS", {note}, "SEEN_AT", "VALID_FROM_DATE", "VALID_TO_DATE", '
        f'"IS_CURRENT", {deleted} FROM {src.table.sql}',
    )
    return sorted(
        (
            (k, s, n, seen, start.day, None if to is None else to.day, cur, deleted)
            for k, s, n, seen, start, to, cur, deleted in got
        ),
        key=order,
    )


def everything(src: Source) -> list[tuple[Any, ...]]:
    """Every column of the SCD2 table but NOTE (absent when it never appeared), sorted."""
    cols = [c for c in src.wh.table_columns(src.table) or [] if c != "NOTE"]
    got = execute(src.wh, f"SELECT {', '.join(quote(c) for c in cols)} FROM {src.table.sql}")
    return sorted(got, key=repr)


def check_invariants(rows: list[tuple[Any, ...]], pulls: list[Pull], mode: str) -> None:
    """No overlaps; contiguity and the current rows as the mode defines them."""
    by_key: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        by_key.setdefault(row[0], []).append(row)
    seen = {k for p in pulls for k in p.latest()}
    assert set(by_key) == seen
    for key, versions in by_key.items():
        versions.sort(key=lambda r: r[4])
        current = [v for v in versions if v[6]]
        assert len(current) <= 1 and all(v[5] is None for v in current)
        for earlier, later in itertools.pairwise(versions):
            assert earlier[5] is not None and earlier[5] <= later[4]  # no overlap
            if mode != "invalidate":
                assert earlier[5] == later[4]  # contiguous: no gaps
        if mode != "invalidate":
            assert len(current) == 1, key
    if mode == "invalidate":
        latest = pulls[-1].latest()
        assert {k for k, vs in by_key.items() if any(v[6] for v in vs)} == set(latest)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBWarehouse]:
    wh = DuckDBWarehouse(Path(tmp_path_factory.mktemp("scd2-props")), [DATABASE], DATABASE)
    yield wh
    wh.close()


def run_property(wh: DuckDBWarehouse, mode: str, case: tuple[list[Pull], list[int]]) -> None:
    pulls, order = case
    silver = SilverConfig.model_validate(
        {"primary_key": ["ID"], "columns": {"SEEN_AT": "TIMESTAMP_TZ"}, "hard_deletes": mode}
    )
    in_order = Source(wh, DATABASE, silver, TZ, "IN_ORDER", "B_IN_ORDER")
    shuffled = Source(wh, DATABASE, silver, TZ, "SHUFFLED", "B_SHUFFLED")
    by_day = {p.day: p for p in pulls}
    for src, days in ((in_order, [p.day for p in pulls]), (shuffled, order)):
        src.drop()
        for day in days:
            src.pull(day, by_day[day].header, by_day[day].rows)
    expected = model(pulls, mode)
    assert history(in_order) == expected
    assert everything(shuffled) == everything(in_order)
    check_invariants(expected, pulls, mode)


FAST = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("mode", HARD_DELETES)
@FAST
@given(case=histories())
def test_history_is_the_same_in_any_load_order(
    warehouse: DuckDBWarehouse, mode: str, case: tuple[list[Pull], list[int]]
) -> None:
    run_property(warehouse, mode, case)


@pytest.mark.soak
@pytest.mark.parametrize("mode", HARD_DELETES)
@settings(FAST, max_examples=300)
@given(case=histories())
def test_history_is_the_same_in_any_load_order_soak(
    warehouse: DuckDBWarehouse, mode: str, case: tuple[list[Pull], list[int]]
) -> None:
    run_property(warehouse, mode, case)
