"""The byte copy of ``s3_upload`` files (``xoelt.sources.csvcopy``) against the row-by-row path.

Every case runs the same bytes through :class:`CsvFiles` twice, once with byte access (the
fast path, which may fall back) and once without (row by row): the output bytes, the row
count, or the error must be the same, and the listing says which path the first one took.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
from contextlib import nullcontext
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from xoelt.errors import SourceError
from xoelt.sources import csvcopy, csvio
from xoelt.sources.base import CsvSink
from xoelt.sources.csv_files import READ_ERRORS, CsvFile, CsvFiles
from xoelt.sources.csvcopy import byte_copy_blocker


def _header(body: bytes) -> list[str]:
    """What ``s3_upload`` reads as the header (utf-8-sig, ``csv.reader``)."""
    text = io.TextIOWrapper(io.BytesIO(body), encoding="utf-8-sig", newline="")
    return next(csv.reader(text), [])


def _run(tmp: Path, name: str, bodies: list[bytes], fast: bool) -> tuple[object, list[dict]]:
    """(output bytes and rows, or the error text; the listing) for ``bodies`` as files."""
    files = CsvFiles(delimiter=",", allow_empty=True, columns=[])
    try:
        for i, body in enumerate(bodies):

            def text(body: bytes = body) -> nullcontext[io.TextIOWrapper]:
                stream = io.BytesIO(body)
                return nullcontext(io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""))

            def raw(body: bytes = body) -> nullcontext[io.BytesIO]:
                return nullcontext(io.BytesIO(body))

            label = f"f{i}.csv"
            listing = {"key": label}
            files.add(CsvFile(label, _header(body), text, listing, raw=raw if fast else None))
        sink = CsvSink(tmp / name)
        listing = files.write(sink, nothing="none", noun="files")
        sink.close()
    except (SourceError, *READ_ERRORS) as exc:
        return f"error: {exc}", []
    return (sink.path.read_bytes(), sink.rows), listing


def _both(tmp: Path, bodies: list[bytes]) -> list[dict]:
    fast, listing = _run(tmp, "fast.csv", bodies, fast=True)
    slow, _ = _run(tmp, "slow.csv", bodies, fast=False)
    assert fast == slow
    return listing


BYTES = [
    ("plain LF", b"id,name\n1,Ada\n2,Bo\n"),
    ("plain CRLF", b"id,name\r\n1,Ada\r\n2,Bo\r\n"),
    ("no last line end", b"id,name\n1,Ada\n2,Bo"),
    ("no last line end CRLF", b"id,name\r\n1,Ada\r\n2,Bo"),
    ("BOM", codecs.BOM_UTF8 + b"id,name\n1,Ada\n"),
    ("missing values", b"a,b,c\n,,\n1,,3\n,2,\n"),
    ("UTF-8 text and a BOM char in a value", "a,b\nÇelik,\ufeffx\n".encode()),
    ("header only", b"id,name\n"),
    ("header only, no line end", b"id,name"),
    ("one column", b"id\n1\n2\n"),
]
FALLS_BACK = [
    ("quoted newline", b'id,name\n1,"a\nb"\n2,"x ""q"" y"\n'),
    ("quoted empty vs missing", b'a,b,c\n"",,x\n'),
    ("needless quotes", b'a,b\n"1","2"\n'),
    ("blank line", b"id,name\n1,Ada\n\n2,Bo\n"),
    ("blank line CRLF", b"id,name\r\n1,Ada\r\n\r\n2,Bo\r\n"),
    ("blank line, one column", b"id\n1\n\n2\n"),
    ("trailing blank lines", b"id,name\n1,Ada\n\n\n"),
    ("ragged", b"id,name\n1,Ada\n2,Bo,extra\n"),
    ("short row", b"id,name\n1,Ada\n2\n"),
    ("lone CR line ends", b"id,name\r1,Ada\r2,Bo\r"),
    ("CR inside a line", b"id,name\n1,A\rda\n"),
    ("mixed line ends", b"id,name\r\n1,Ada\n2,Bo\r\n"),
    ("LF header, CRLF body", b"id,name\n1,Ada\r\n"),
    ("CR at the end, no LF", b"id,name\r\n1,Ada\r"),
    ("quoted header", b'"id","name"\n1,Ada\n'),
    ("not UTF-8", "id,name\n1,Çelik\n".encode("latin-1")),
    ("NUL", b"id,name\n1,A\x00da\n"),
]


@pytest.mark.parametrize(("case", "body"), BYTES, ids=[c for c, _ in BYTES])
def test_plain_files_are_byte_copied_with_the_same_output(
    tmp_path: Path, case: str, body: bytes
) -> None:
    [listed] = _both(tmp_path, [body])
    assert listed["copy"] == "bytes", listed


@pytest.mark.parametrize(("case", "body"), FALLS_BACK, ids=[c for c, _ in FALLS_BACK])
def test_other_files_fall_back_and_give_the_same_output_or_error(
    tmp_path: Path, case: str, body: bytes
) -> None:
    listing = _both(tmp_path, [body])
    assert listing == [] or (listing[0]["copy"], bool(listing[0]["fallback"])) == ("parsed", True)


def test_a_ragged_row_still_fails_naming_the_file_and_line(tmp_path: Path) -> None:
    result, _ = _run(tmp_path, "out.csv", [b"id,name\n1,Ada\n2,Bo,extra\n"], fast=True)
    assert result == "error: f0.csv line 3: 3 fields, the header has 2"


def test_several_files_with_one_header_are_copied_header_once(tmp_path: Path) -> None:
    bodies = [b"id,name\n1,Ada\n", b"id,name\r\n2,Bo\r\n", b'id,name\n3,"C, c"\n']
    listing = _both(tmp_path, bodies)
    assert [f["copy"] for f in listing] == ["bytes", "bytes", "parsed"]
    assert [f["rows"] for f in listing] == [1, 1, 1]
    result, _ = _run(tmp_path, "out.csv", bodies, fast=True)
    assert result == (b'id,name\r\n1,Ada\r\n2,Bo\r\n3,"C, c"\r\n', 3)


def test_a_file_whose_header_is_not_the_output_s_is_parsed(tmp_path: Path) -> None:
    listing = _both(tmp_path, [b"id,name\n1,Ada\n", b"name,id\nBo,2\n"])
    assert [f["copy"] for f in listing] == ["bytes", "parsed"]
    assert listing[1]["fallback"] == "its header is not the output's"


def test_a_fallback_after_chunks_were_written_rewinds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvcopy, "CHUNK_BYTES", 16)
    body = b"id,name\n" + b"".join(b"%d,row\n" % i for i in range(50)) + b'50,"q"\n'
    listing = _both(tmp_path, [b"id,name\n0,first\n", body])
    assert listing[0]["copy"] == "bytes"
    assert listing[1] == {
        "key": "f1.csv",
        "rows": 51,
        "copy": "parsed",
        "fallback": "quoted fields",
    }


def test_a_cut_gzip_stream_falls_back_to_the_row_by_row_error(tmp_path: Path) -> None:
    cut = gzip.compress(b"id,name\n" + b"1,Ada\n" * 1000)[:-20]
    stream = gzip.GzipFile(fileobj=io.BytesIO(cut))
    sink = CsvSink(tmp_path / "out.csv")
    sink.open(["id", "name"])
    with pytest.raises(EOFError):
        csvcopy.copy_body(stream, 2, sink)


def test_only_utf8_and_comma_files_can_be_byte_copied() -> None:
    assert byte_copy_blocker("utf-8-sig", ",") is None
    assert byte_copy_blocker("UTF8", ",") is None
    assert byte_copy_blocker("latin-1", ",") == "encoding latin-1 is not UTF-8"
    assert byte_copy_blocker("utf-8", ";") == "delimiter ';' is not the output's ','"


# Pieces that make CSV hard, and plain text that the fast path copies.
PIECES = st.sampled_from(
    [
        *(b"a", b"bc", b"1", b"", b",", b",", b",", b"\n", b"\n", b"\r\n", b"\r\n", b"\r"),
        *(b'"', b'""', "é".encode(), codecs.BOM_UTF8, b"\xff", b" "),
    ]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.sampled_from([b"x\n", b"x,y\n", b"x,y,z\n", b"x,y\r\n", b"\xef\xbb\xbfx,y\n"]),
    body=st.lists(PIECES, max_size=40).map(b"".join),
    chunk=st.sampled_from([1, 3, 7, 64]),
)
@example(header=b"x,y\n", body=b'1,"a\r\nb"\r\n', chunk=3)
def test_any_file_gives_what_the_row_by_row_path_gives(
    tmp_path: Path, header: bytes, body: bytes, chunk: int
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(csvcopy, "CHUNK_BYTES", chunk)
        _both(tmp_path, [header + body])


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    width=st.integers(1, 4),
    rows=st.lists(st.lists(st.sampled_from(["", "a", "b c", "é"]), min_size=1, max_size=4)),
    crlf=st.booleans(),
    last_end=st.booleans(),
    chunk=st.sampled_from([1, 5, 64]),
)
def test_regular_plain_files_are_always_byte_copied(
    tmp_path: Path,
    width: int,
    rows: list[list[str]],
    crlf: bool,
    last_end: bool,
    chunk: int,
) -> None:
    end = "\r\n" if crlf else "\n"
    lines = [",".join(f"c{i}" for i in range(width))]
    lines += [",".join((r * width)[:width]) for r in rows]
    lines = [lines[0], *(line for line in lines[1:] if line)]  # a blank line falls back
    text = end.join(lines) + (end if last_end else "")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(csvcopy, "CHUNK_BYTES", chunk)
        [listed] = _both(tmp_path, [text.encode()])
    assert listed["copy"] == "bytes" and listed["rows"] == len(lines) - 1


def test_a_line_over_the_field_limit_falls_back_to_the_csv_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csvcopy, "MAX_FIELD_BYTES", 10)
    monkeypatch.setattr(csvcopy, "CHUNK_BYTES", 4)
    csv.field_size_limit(10)
    try:
        for body in (b"id\n12345678901\n", b"id\n12345678901234567890123"):
            assert _both(tmp_path, [body]) == []  # both fail with csv's error
    finally:
        csv.field_size_limit(csvio.MAX_FIELD_BYTES)
