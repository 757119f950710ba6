"""Byte copy of an uploaded CSV file whose rows need no re-parse (``s3_upload``'s fast path).

:class:`~xoelt.sources.csv_files.CsvFiles` re-reads each file row by row
(:class:`~xoelt.sources.csvio.CsvReader`, ~200 k rows/s). When a file's header is the output
header itself (same names, same order, nothing appended), its body can instead be copied as
bytes, and :func:`copy_body` does so over large chunks with C-level bytes operations only
(``count``, ``split``, ``replace``, ``decode``): no Python loop per row.

The copy is taken only where it provably writes the very bytes the row-by-row path writes
(``csv.writer`` output of the parsed rows, ``\\r\\n`` line ends), and counts the same rows.
That holds for a body that, in every chunk:

- is UTF-8 (``decode`` checks it; a BOM only ever precedes the header, which is not copied);
- holds no ``"`` at all: unquoted, a record is one line and a field the bytes between two
  ``,`` s, so the parsed values are the raw text, and ``csv.writer`` writes each back as it
  was (it quotes only a value holding ``,``, ``"``, ``\\r`` or ``\\n``; a missing value is an
  empty field on both paths);
- holds no NUL byte;
- ends its lines as the header does, all ``\\n`` or all ``\\r\\n``, with no other ``\\r``
  (``csv`` also ends a record at a lone ``\\r``); ``\\n`` line ends are written as
  ``\\r\\n``, and a last record without a line end gets one;
- has no blank line (the row-by-row path skips them) and exactly ``width - 1`` delimiters
  on every line (the row-by-row path fails on a ragged row, naming the file and the line);
- has no line longer than ``csv``'s field size limit (the row-by-row path refuses a field
  over it; a line within it cannot hold one).

Anything else raises :class:`Fallback` with the reason, before or after some bytes were
written: the caller rewinds the output to where the file began and re-reads the file row by
row, which then writes the same rows, or fails with the error naming the file and line.
So files with quoted fields (and quoted newlines) always take the row-by-row path; the count
of a byte copy is its number of lines, which is then exact.
"""

from __future__ import annotations

import codecs
from typing import Protocol

from xoelt.sources.base import CsvSink
from xoelt.sources.csvio import MAX_FIELD_BYTES

CHUNK_BYTES = 8 << 20  # large enough that per-chunk Python work is noise, flat memory
_BOM = codecs.BOM_UTF8
_NOT_SKELETON = bytes(sorted(set(range(256)) - set(b",\n")))  # all but delimiter, line end


class ByteStream(Protocol):
    """What a byte copy reads: a file's bytes (a store object, a gzip stream)."""

    def read(self, size: int = -1, /) -> bytes: ...


class Fallback(Exception):  # not an error: the reason to re-read row by row
    """The file is outside what a byte copy proves exact; ``str()`` says why."""


def byte_copy_blocker(encoding: str, delimiter: str) -> str | None:
    """Why files read with ``encoding`` and ``delimiter`` can never be byte-copied, or None."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return f"unknown encoding {encoding!r}"
    if name not in ("utf-8", "utf-8-sig"):
        return f"encoding {encoding} is not UTF-8"
    if delimiter != ",":
        return f"delimiter {delimiter!r} is not the output's ','"
    return None


def copy_body(raw: ByteStream, width: int, sink: CsvSink, chunk_bytes: int | None = None) -> int:
    """Copy the body of the CSV in ``raw`` (its header line skipped) into ``sink`` as bytes.

    ``width`` is the number of columns of the header. Returns the rows written (also added to
    ``sink.rows``); raises :class:`Fallback` when the file is outside what the copy proves
    exact (see the module docstring), possibly after writing some rows.
    """
    # chunks no bigger than a part: the sink rolls to the next part between two writes
    chunk_bytes = chunk_bytes or min(CHUNK_BYTES, max(sink.part_bytes or CHUNK_BYTES, 4096))
    scan = _Scanner(width)
    carry = _skip_header(raw, scan, chunk_bytes)
    while True:
        chunk = raw.read(chunk_bytes)
        if not chunk:
            break
        data = carry + chunk if carry else chunk
        end = data.rfind(b"\n") + 1
        if not end:  # no line end yet: one long record, keep reading
            if len(data) > MAX_FIELD_BYTES:
                raise Fallback("a line longer than the largest field")
            carry = data
            continue
        carry = data[end:]
        body = data[:end]
        sink.write_raw(scan.lines(body), scan.last_rows)
    if carry:  # what the header read or the last chunk left; its last record may lack a line end
        tail = carry if carry.endswith(b"\n") else carry + scan.newline
        sink.write_raw(scan.lines(tail), scan.last_rows)
    return scan.rows


def _skip_header(raw: ByteStream, scan: _Scanner, chunk_bytes: int) -> bytes:
    """Read up to the end of the header line; set the line-end style; return what follows."""
    data = b""
    while True:
        chunk = raw.read(chunk_bytes)
        data += chunk
        end = data.find(b"\n")
        if end >= 0 or not chunk:
            break
    if not data:
        return b""
    line = data if end < 0 else data[:end]
    if line.startswith(_BOM):
        line = line[len(_BOM) :]
    if b'"' in line:
        raise Fallback("the header has quotes")
    crlf = line.endswith(b"\r")
    if line.count(b"\r") != int(crlf) or (end < 0 and crlf):
        raise Fallback("a carriage return that is not part of a CRLF line end")
    scan.newline = b"\r\n" if crlf else b"\n"
    _check_text(line)
    return b"" if end < 0 else data[end + 1 :]


def _check_text(data: bytes) -> None:
    if b"\x00" in data:
        raise Fallback("a NUL byte")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Fallback(f"not UTF-8 at byte {exc.start} of a chunk") from None


class _Scanner:
    """Checks and counts complete lines chunk by chunk (the rows so far in ``rows``)."""

    def __init__(self, width: int) -> None:
        self.delimiters = width - 1
        self.skeleton = b"," * (width - 1) + b"\n"
        self.newline = b"\r\n"
        self.rows = 0
        self.last_rows = 0

    def lines(self, body: bytes) -> bytes:
        """``body`` (complete lines, each ending with ``newline``) checked, with ``\\r\\n``
        line ends; its number of lines is in ``last_rows``."""
        if b'"' in body:
            raise Fallback("quoted fields")
        _check_text(body)
        crs = body.count(b"\r")
        if self.newline == b"\r\n":
            if crs != body.count(b"\r\n") or crs != body.count(b"\n"):
                raise Fallback("a line end that is not CRLF, like the header's")
        elif crs:
            raise Fallback("a carriage return in a file with LF line ends")
        # Every line holds `width - 1` delimiters exactly when, with all but the delimiters
        # and line ends deleted, the body is that many delimiters and a line end per line.
        rows = body.count(b"\n")
        if body.translate(None, _NOT_SKELETON) != self.skeleton * rows:
            raise Fallback("a blank or ragged line")
        if not self.delimiters and (body.startswith(self.newline) or b"\n" + self.newline in body):
            raise Fallback("a blank line")  # one column: a blank line is a 0-delimiter line too
        # csv refuses a field over MAX_FIELD_BYTES characters; a line no longer has none.
        if len(body) > MAX_FIELD_BYTES and max(map(len, body.split(b"\n"))) > MAX_FIELD_BYTES:
            raise Fallback("a line longer than the largest field")
        self.last_rows = rows
        self.rows += rows
        return body if self.newline == b"\r\n" else body.replace(b"\n", b"\r\n")
