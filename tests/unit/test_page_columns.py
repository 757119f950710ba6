"""A page of API messages written column by column gives the bytes row by row gave.

``RowMaker.columns`` + ``CsvSink.write_columns`` (``csvio.format_columns``) is the fast path
of the Sprout extraction; ``RowMaker.row`` per message + ``CsvSink.write_many_values``
(``csv.writer``, or ``format_row`` for rows with an empty string) is its definition. Both
write the same file here for generated pages: nulls, empty strings, quotes, commas, line
breaks, unicode, nested objects and lists, booleans, numbers, missing and extra keys, and
dotted paths answered nested, flat, through lists or through non-objects.
"""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xoelt.errors import SourceError
from xoelt.sources.base import CsvSink
from xoelt.sources.csvio import format_columns, format_row
from xoelt.sources.sprout_social import RowMaker, Tail, second_of
from xoelt.timewindow import TimeWindow

ZONE = ZoneInfo("America/New_York")
WINDOW = TimeWindow(
    "daily", datetime(2026, 11, 2, tzinfo=ZONE), datetime(2026, 11, 3, tzinfo=ZONE), ZONE.key
)
KEYS = ["a", "b", "c", "from", "tags", "a.b", "from.name"]
FIELDS = ["a", "b", "a.b", "from.name", "from", "tags.id", "c", "b.c.d"]

text = st.one_of(
    st.sampled_from(["", " ", '"', '""', ",", "\r\n", "\n", "\r", "a,b", 'say "hi"', "é", "日本"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),  # what orjson.loads gives as int
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from([*KEYS, "id"]), inner)
    ),
    max_leaves=8,
)
stamp = st.one_of(
    st.datetimes(datetime(2026, 11, 1, 20), datetime(2026, 11, 3, 12)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
    ),
    st.sampled_from(["2026-11-02T12:00:00+01:00", "not a time", "", "2026-11-02 12:00:00"]),
    st.none(),
    st.integers(),
)
message = st.fixed_dictionaries(
    {},
    optional={
        **{k: json_value for k in KEYS},
        "created_time": stamp,
        "id": st.dictionaries(st.sampled_from(["id"]), scalar),
    },
)


def _write(path: Path, rows: RowMaker, page: list[dict[str, Any]], *, columns: bool) -> bytes:
    sink = CsvSink(path)
    sink.open(rows.names)
    if columns:
        sink.write_columns(rows.columns(page))
    else:
        sink.write_many_values([rows.row(m) for m in page])
    sink.close()
    return path.read_bytes()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    page=st.lists(message, max_size=8),
    fields=st.lists(st.sampled_from(FIELDS), min_size=2, max_size=6, unique=True),
)
def test_columns_write_the_bytes_rows_write(
    tmp_path: Path, page: list[dict[str, Any]], fields: list[str]
) -> None:
    rows = RowMaker(fields, WINDOW)
    old = _write(tmp_path / "rows.csv", rows, page, columns=False)
    new = _write(tmp_path / "columns.csv", rows, page, columns=True)
    assert new == old
    assert len(list(csv.reader(io.StringIO(new.decode(), newline="")))) == len(page) + 1


def test_tricky_page_by_hand(tmp_path: Path) -> None:
    """The cases named in the module docstring, one page, with its expected text."""
    page = [
        {"a": None, "b": "", "from": {"name": 'x "y", z', "guid": 1}, "tags": [{"id": 1}, {}]},
        {"a": "line\r\nbreak", "b": "ünï", "from.name": "flat", "tags": "not a list", "x": 1},
        {"a": True, "b": 1.5, "from": None, "tags": [{"id": {"k": [1, None]}}]},
        {},
    ]
    rows = RowMaker(["a", "b", "from.name", "tags.id", "from"], WINDOW)
    new = _write(tmp_path / "c.csv", rows, page, columns=True)
    assert new == _write(tmp_path / "r.csv", rows, page, columns=False)
    assert new.decode() == (
        "a,b,from.name,tags.id,from\r\n"
        ',"","x ""y"", z","[1,null]","{""guid"":1,""name"":""x \\""y\\"", z""}"\r\n'
        '"line\r\nbreak",ünï,flat,,\r\n'
        'true,1.5,,"[{""k"":[1,null]}]",\r\n'
        ",,,,\r\n"
    )


def test_lists_of_objects_plucked_per_page(tmp_path: Path) -> None:
    page = [{"tags": [{"id": 1}, {"id": None}, {}]}, {"tags": []}, {"tags": [{"id": "a,b"}]}]
    rows = RowMaker(["tags.id", "tags"], WINDOW)
    new = _write(tmp_path / "c.csv", rows, page, columns=True)
    assert new == _write(tmp_path / "r.csv", rows, page, columns=False)
    assert new.decode().splitlines()[1:] == [
        '"[1,null,null]","[{""id"":1},{""id"":null},{}]"',
        "[],[]",
        '"[""a,b""]","[{""id"":""a,b""}]"',
    ]


@given(st.lists(st.lists(scalar, min_size=3, max_size=3), max_size=6))
def test_format_columns_is_format_row_of_each_record(records: list[list[Any]]) -> None:
    columns = [list(c) for c in zip(*records, strict=True)] if records else [[], [], []]
    assert format_columns(columns) == "".join(map(format_row, records))
    plain = [r for r in records if "" not in r]
    if plain:  # and csv.writer's bytes for records without an empty string
        out = io.StringIO()
        csv.writer(out).writerows(plain)
        assert format_columns([list(c) for c in zip(*plain, strict=True)]) == out.getvalue()


@given(st.lists(message, max_size=8))
def test_all_inside_agrees_with_placement(page: list[dict[str, Any]]) -> None:
    rows = RowMaker(["a"], WINDOW)

    def canonical(t: Any) -> bool:  # the shape placement() compares as text
        return (
            type(t) is str
            and len(t) == 20
            and t[19] == "Z"
            and t[10] == "T"
            and t[4] == t[7] == "-"
        )

    stamps = [m.get("created_time") for m in page]
    expected = bool(page) and all(canonical(t) and rows.placement(t) == 0 for t in stamps)
    assert rows.all_inside(page) == expected


def test_all_inside_on_a_window_edge() -> None:
    rows = RowMaker(["a"], WINDOW)
    start = WINDOW.start.astimezone(ZoneInfo("UTC"))
    text = [
        (start + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ") for s in (0, 86399, 86400)
    ]
    assert rows.all_inside([{"created_time": text[0]}, {"created_time": text[1]}])
    assert not rows.all_inside([{"created_time": text[0]}, {"created_time": text[2]}])
    assert not rows.all_inside([{"created_time": "2026-11-02X05:00:00Z"}])


def test_one_column_page_with_a_missing_value_is_refused_like_rows(tmp_path: Path) -> None:
    for columns in (True, False):
        sink = CsvSink(tmp_path / f"{columns}.csv")
        sink.open(["a"])
        with pytest.raises(SourceError, match="row 2: a one-column file cannot hold a missing"):
            if columns:
                sink.write_columns([["x", None]])
            else:
                sink.write_many_values([["x"], [None]])
        sink.close()


def test_a_page_of_the_wrong_width_is_refused(tmp_path: Path) -> None:
    sink = CsvSink(tmp_path / "w.csv")
    sink.open(["a", "b"])
    with pytest.raises(SourceError, match="a page has 1 columns, the header has 2"):
        sink.write_columns([["x"]])
    with pytest.raises(SourceError, match="columns differ in length"):
        sink.write_columns([["x"], []])
    sink.close()


class _ReferenceTail:
    """Tail.page as it was written per message (the definition the page-wise one keeps)."""

    def __init__(self) -> None:
        self.second: str | None = None
        self.guids: set[Any] = set()
        self.ordered = True

    def page(self, data: list[dict[str, Any]]) -> None:
        seconds = [second_of(m.get("created_time")) for m in data]
        dated = [t for t in seconds if t is not None]
        if not dated:
            return
        if dated != sorted(dated) or (self.second is not None and dated[0] < self.second):
            self.ordered = False
        if dated[-1] != self.second:
            self.second, self.guids = dated[-1], set()
        for msg, second in zip(reversed(data), reversed(seconds), strict=True):
            if second is None:
                continue
            if second != dated[-1]:
                break
            self.guids.add(msg.get("guid"))


guid_message = st.fixed_dictionaries(
    {"guid": st.integers(0, 50)},
    optional={"created_time": st.one_of(stamp, st.sampled_from(["2026-11-02T05:00:00Z"] * 3))},
)


@given(st.lists(st.lists(guid_message, max_size=6), max_size=4))
def test_tail_page_agrees_with_the_per_message_definition(pages: list[list[Any]]) -> None:
    tail, reference = Tail(), _ReferenceTail()
    for page in pages:
        tail.page(page)
        reference.page(page)
        assert (tail.second, tail.guids, tail.ordered) == (
            reference.second,
            reference.guids,
            reference.ordered,
        )


@pytest.mark.parametrize("fmt", ["csv", "csv.gz"])
def test_pages_by_columns_roll_parts_as_pages_by_rows(tmp_path: Path, fmt: str) -> None:
    rows = RowMaker(["a", "b"], WINDOW)
    # Hashes: gzip cannot shrink them much, so its parts fill too (and its buffers flush).
    noise = [hashlib.sha512(b"%d" % n).hexdigest() * 2 for n in range(1600)]
    pages = [[{"a": f"{p}-{i}", "b": noise[p * 200 + i]} for i in range(200)] for p in range(8)]
    parts = {}
    for columns in (True, False):
        sink = CsvSink(tmp_path / str(columns) / "m.csv", fmt=fmt, part_bytes=1024)
        (tmp_path / str(columns)).mkdir()
        sink.open(rows.names)
        for page in pages:
            if columns:
                sink.write_columns(rows.columns(page))
            else:
                sink.write_many_values([rows.row(m) for m in page])
        sink.close()
        parts[columns] = [(p.rows, p.path.read_bytes()) for p in sink.parts]
    assert len(parts[True]) > 1
    assert parts[True] == parts[False]
