"""xoelt's CSV convention: a missing value (``,,``) is never an empty string (``""``).

The writer (``CsvSink``/``format_row``) and the reader of re-parsed user files (``CsvReader``,
``copy_csv_rows``, ``CsvFiles``) are checked against Python's own ``csv`` module as the
oracle: same text wherever the convention does not differ, same values on read, plus the one
bit ``csv`` loses.
"""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xoelt.errors import SourceError
from xoelt.sources.base import CsvSink, copy_csv_rows
from xoelt.sources.csv_files import CsvFile, CsvFiles
from xoelt.sources.csvio import CsvReader, format_row

TEXT = st.text(alphabet=st.sampled_from('ab ,"\r\n;é\\'), max_size=8)
VALUE = st.one_of(st.none(), TEXT, st.integers(), st.floats(allow_nan=False), st.booleans())
ROWS = st.lists(st.lists(VALUE, min_size=2, max_size=5), max_size=6)


def _csv_text(rows: list[list[object]]) -> str:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def _expected(value: object) -> str | None:
    return None if value is None else value if isinstance(value, str) else str(value)


@settings(max_examples=300, deadline=None)
@given(ROWS)
def test_rows_round_trip_with_missing_and_empty_apart(rows: list[list[object]]) -> None:
    text = "".join(format_row(r) for r in rows)
    back = list(CsvReader(io.StringIO(text, newline="")))
    assert back == [[_expected(v) for v in r] for r in rows]
    # csv reads the same values, except that it cannot tell None from ''
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["" if v is None else v for v in r] for r in back
    ]
    # Rows without an empty string are exactly what csv.writer writes.
    plain = [r for r in rows if "" not in r]
    assert "".join(format_row(r) for r in plain) == _csv_text(plain)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from('a,"\r\n '), max_size=24))
def test_reader_agrees_with_csv_on_any_text(text: str) -> None:
    """Arbitrary (also malformed) input: csv's values, with None only for bare empty fields."""
    try:
        oracle = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error:
        with pytest.raises(csv.Error):
            list(CsvReader(io.StringIO(text, newline="")))
        return
    try:
        got = list(CsvReader(io.StringIO(text, newline="")))
    except csv.Error as exc:  # only where the record's quoting is malformed
        assert "malformed quoting" in str(exc)
        return
    assert [["" if v is None else v for v in r] for r in got] == oracle


def test_reader_examples() -> None:
    text = 'a,b,c\r\n1,,x\r\n2,"",""\r\n,"q,""r"\n""\r\n,,\r\n\r\n"multi\nline",,""\r\n'
    reader = CsvReader(io.StringIO(text, newline=""))
    assert list(reader) == [
        ["a", "b", "c"],
        ["1", None, "x"],
        ["2", "", ""],
        [None, 'q,"r'],
        [""],  # one quoted empty field
        [None, None, None],
        [],
        ["multi\nline", None, ""],
    ]
    assert reader.line_num == 9
    semi = CsvReader(io.StringIO('x;"";;"a;b"\n', newline=""), ";")
    assert list(semi) == [["x", "", None, "a;b"]]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('1,,"x, y"\r\n', ["1", None, "x, y"]),  # no "" at all: every empty is missing
        ('1,"",x,\r\n', ["1", "", "x", None]),  # as many delimiters as fields
        ('"a, ""b""",,""\r\n', ['a, "b"', None, ""]),  # a quoted field holds a delimiter
        # csv's non-strict reading of a quote after the closing one: the exact pattern
        ('"a"b"c,d","x,y",,""\r\n', ['ab"c', 'd"', "x,y", None, ""]),
    ],
)
def test_each_way_of_telling_quoted_from_bare_agrees_with_csv(
    line: str, expected: list[str | None]
) -> None:
    assert next(CsvReader(io.StringIO(line, newline=""))) == expected
    assert next(csv.reader(io.StringIO(line, newline=""))) == [v or "" for v in expected]


def _sink(tmp_path: Path) -> CsvSink:
    return CsvSink(tmp_path / "out.csv")


def _written(sink: CsvSink) -> str:
    sink.close()
    return sink.path.read_bytes().decode("utf-8")


def test_sink_writes_missing_bare_and_empty_quoted(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.open(["id", "note", "n"])
    sink.write_values(["1", None, 5])
    sink.write_values(["2", "", 0.5])
    sink.write_many_values([["3", 'a "q"', None], ["4", "", ""], ["5", "x,y", True]])
    sink.write_many_values([["6", "plain", 7]])
    assert _written(sink) == (
        'id,note,n\r\n1,,5\r\n2,"",0.5\r\n3,"a ""q""",\r\n4,"",""\r\n5,"x,y",True\r\n6,plain,7\r\n'
    )
    assert sink.rows == 6


def test_one_column_sink_refuses_a_missing_value(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.open(["only"])
    sink.write_values([""])
    sink.write_many_values([["x"], [""]])
    with pytest.raises(SourceError, match="row 4: a one-column file cannot hold a missing value"):
        sink.write_many_values([[None]])
    with pytest.raises(SourceError, match="row 4: a one-column file"):
        sink.write_values([None])
    assert _written(sink) == 'only\r\n""\r\nx\r\n""\r\n'


def test_copy_csv_rows_keeps_quotes_with_csv_reader_only(tmp_path: Path) -> None:
    text = 'a,b\r\n1,\r\n2,""\r\n'
    reader = CsvReader(io.StringIO(text, newline=""))
    header = next(reader)
    sink = _sink(tmp_path)
    sink.open(["a", "b"])
    copy_csv_rows(reader, header, sink, "f.csv")
    # A plain csv.reader cannot tell them apart: both are taken as missing, as before.
    plain = csv.reader(io.StringIO(text, newline=""))
    copy_csv_rows(plain, next(plain), sink, "f.csv")
    assert _written(sink) == 'a,b\r\n1,\r\n2,""\r\n1,\r\n2,\r\n'


def test_csv_files_keep_empty_strings_and_missing_columns_missing(tmp_path: Path) -> None:
    bodies = {
        "one.csv": 'id,note\r\n1,""\r\n2,\r\n3,"x"\r\n',
        "two.csv": 'id,extra\r\n4,""\r\n',
    }

    def opener(name: str):
        return lambda: contextlib.closing(io.StringIO(bodies[name], newline=""))

    files = CsvFiles(delimiter=",", allow_empty=False, columns=[], reserved=("_file",))
    for order, name in enumerate(bodies):
        header = next(csv.reader(io.StringIO(bodies[name])))
        files.add(CsvFile(name, header, opener(name), {}, extra=(name,), order=(order,)))
    sink = _sink(tmp_path)
    files.write(sink, nothing="-", noun="files")
    assert _written(sink) == (
        'id,note,extra,_file\r\n1,"",,one.csv\r\n2,,,one.csv\r\n3,x,,one.csv\r\n4,,"",two.csv\r\n'
    )
