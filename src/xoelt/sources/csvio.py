"""The CSV convention of every extract file: a missing value is not an empty string.

xoelt writes (``CsvSink``) and, for files it re-reads (``s3_upload``, ``gmail_attachments``),
reads (:class:`CsvReader`) CSV with one rule on top of RFC 4180 / ``csv.QUOTE_MINIMAL``:

- a missing value (Python ``None``, JSON ``null``, a column a file lacks) is an empty
  **unquoted** field: ``1,,x``;
- an empty string is a **quoted** empty field: ``1,"",x``;
- every other value is written as ``csv.writer`` writes it (quoted only when it holds a
  ``,``, a ``"`` (doubled) or a line break), ``\\r\\n`` line ends, UTF-8.

Both warehouses load it that way, so bronze keeps the distinction: Snowflake with
``FIELD_OPTIONALLY_ENCLOSED_BY = '"' EMPTY_FIELD_AS_NULL = TRUE NULL_IF = ()`` (``,,`` is
NULL, ``""`` an empty string), DuckDB with ``read_csv(…, allow_quoted_nulls = false)``.

Why this module exists: Python 3.11's ``csv`` writes ``None`` and ``''`` alike as an empty
field (``QUOTE_NOTNULL`` arrived in 3.12), and its reader reads ``""`` and an empty field
alike as ``''``. So a row holding an empty string is formatted here (:func:`format_row`;
rows without one still go through the C writer), and :class:`CsvReader` re-reads the raw
text of a record only when the record has an empty field, to see which were quoted.

One thing the convention cannot carry: a missing value in a one-column file (its line would
be blank). :class:`~xoelt.sources.base.CsvSink` refuses such a row rather than change it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

# Snowflake takes fields up to 16 MB; Python's csv refuses any over 128 KB by default.
MAX_FIELD_BYTES = 16 * 1024 * 1024
csv.field_size_limit(MAX_FIELD_BYTES)

_NEEDS_QUOTES = re.compile(r'[,"\r\n]').search
_TEXT_KINDS = frozenset({str, type(None)})


def format_row(values: Sequence[Any]) -> str:
    """One record as xoelt writes it: ``None`` empty, ``''`` as ``""``, the rest as
    ``csv.writer`` (excel dialect, ``QUOTE_MINIMAL``) writes it, ``\\r\\n`` at the end."""
    out: list[str] = []
    for value in values:
        if value is None:
            out.append("")
            continue
        text = value if isinstance(value, str) else str(value)
        if not text:
            out.append('""')
        elif _NEEDS_QUOTES(text):
            out.append('"' + text.replace('"', '""') + '"')
        else:
            out.append(text)
    return ",".join(out) + "\r\n"


def _cell_text(value: Any) -> Any:
    """A cell as ``format_row`` sees it: ``None`` and ``str`` as they are, the rest ``str()``."""
    return value if value is None or type(value) is str else str(value)


def format_columns(columns: Sequence[Sequence[Any]]) -> str:
    """Records given column by column, as :func:`format_row` writes each of them, joined.

    The same bytes as ``"".join(map(format_row, zip(*columns)))`` (and so as ``csv.writer``
    for records without an empty string), at a fraction of the cost for a page of API
    rows: each rule is checked once per column in C (``set(map(type, …))``, one regular
    expression search over the column's concatenated text, ``"" in``/``None in``) and only
    the columns that hold a value it concerns are walked in Python; the records are then
    assembled with ``zip`` and ``str.join``. Nothing is checked here about the width or a
    missing value in a one-column file: :meth:`~xoelt.sources.base.CsvSink.write_columns`
    does that.
    """
    if not columns or not columns[0]:
        return ""
    cells: list[Sequence[Any]] = []
    for column in columns:
        if not set(map(type, column)) <= _TEXT_KINDS:
            column = list(map(_cell_text, column))
        if _NEEDS_QUOTES("".join(filter(None, column))):
            column = [
                '"' + v.replace('"', '""') + '"' if v and _NEEDS_QUOTES(v) else v for v in column
            ]
        if "" in column:
            column = ['""' if value == "" else value for value in column]
        if None in column:
            column = ["" if value is None else value for value in column]
        cells.append(column)
    return "\r\n".join(map(",".join, zip(*cells, strict=True))) + "\r\n"


class CsvReader:
    """``csv.reader`` over ``text`` (opened with ``newline=""``), except that an empty field
    that was not quoted reads as ``None``; a quoted one (``""``) stays ``''``.

    Rows without an empty field cost one C-level ``'' in row`` check more than
    ``csv.reader``; for the others the record's raw text (kept line by line as the reader
    pulls it) tells which empty fields were quoted: at once if it holds no ``""``, else by
    splitting it on the delimiter (a field's piece is found by counting the delimiters in
    the values before it, which can only have come from inside quotes). ``line_num`` is the
    number of lines read so far, as on ``csv.reader``.
    """

    def __init__(self, text: Iterable[str], delimiter: str = ",") -> None:
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise csv.Error(f"unsupported CSV delimiter {delimiter!r}")
        self.delimiter = delimiter
        self._lines: list[str] = []
        self._reader = csv.reader(self._tap(text), delimiter=delimiter)
        self._rows = self._records()

    def _tap(self, text: Iterable[str]) -> Iterator[str]:
        lines = self._lines
        for line in text:
            lines.append(line)
            yield line

    def _records(self) -> Iterator[list[Any]]:
        lines, delimiter = self._lines, self.delimiter
        for row in self._reader:
            if "" in row:
                raw = (lines[0] if len(lines) == 1 else "".join(lines)).rstrip("\r\n")
                row = self._missing_as_none(row, raw, delimiter)
            lines.clear()
            yield row

    def _missing_as_none(self, row: list[Any], raw: str, delimiter: str) -> list[Any]:
        # A quoted empty field is `""` in the raw text: without one, every empty is missing.
        quoted = '""' in raw
        pieces: list[str] = []
        if quoted:
            # Every delimiter in a parsed value came from inside quotes (there is no escape
            # character): the raw text has exactly the delimiters of the values joined, and
            # field i is the piece after the delimiters of the values before it. That piece
            # is empty exactly when the field was an empty unquoted one.
            if raw.count(delimiter) != delimiter.join(row).count(delimiter):
                raise csv.Error(
                    f"line {self.line_num}: cannot tell its quoted empty fields from missing "
                    "ones (malformed quoting)"
                )
            pieces = raw.split(delimiter)
        empty, at = [], -1
        for _ in range(row.count("")):
            at = row.index("", at + 1)
            empty.append(at)
        if quoted:  # the values before each empty field, joined: its piece's index
            empty = [
                i
                for i in empty
                if not pieces[delimiter.join(row[:i]).count(delimiter) + 1 if i else 0]
            ]
        for i in empty:
            row[i] = None
        return row

    @property
    def line_num(self) -> int:
        return self._reader.line_num

    def __iter__(self) -> Iterator[list[Any]]:
        return self._rows

    def __next__(self) -> list[Any]:
        return next(self._rows)
