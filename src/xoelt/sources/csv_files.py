"""Several CSV files combined into one output by column name (``s3_upload``, ``gmail_attachments``).

A source finds its files and reads each header its own way (an object store, a mail
attachment), then hands them to :class:`CsvFiles`, which owns what the sources share:

- the output header is the union of the files' headers in first-seen order, then the
  ``reserved`` columns xoelt appends itself (provenance), which no file may have;
- a file lacking a column gets a missing value (NULL in bronze) in it; a file with a
  duplicate column is an error;
- each file is re-read with :class:`~xoelt.sources.csvio.CsvReader`, so a quoted empty
  field (``""``) stays an empty string and an empty unquoted one a missing value; a file
  that gives its bytes (``raw``) and whose header is the output's is byte-copied instead
  where :mod:`~xoelt.sources.csvcopy` proves that writes the same rows, and re-read when
  not (the listing says which: ``copy`` is ``bytes`` or ``parsed``, ``fallback`` why);
- finding no file, or an empty (0-byte or blank) one, is an error unless ``allow_empty``;
  with no file at all ``columns:`` is then the header;
- every file taken is listed with its row count for the ingest manifest.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from xoelt.errors import SourceError
from xoelt.sources.base import CsvSink, copy_csv_rows
from xoelt.sources.csvcopy import ByteStream, Fallback, copy_body
from xoelt.sources.csvio import CsvReader

# What reading a file can raise: a bad encoding, a malformed CSV, a broken or cut gzip stream.
READ_ERRORS = (UnicodeDecodeError, csv.Error, OSError, EOFError)


@dataclass
class CsvFile:
    """One file to combine.

    ``label`` names it in errors, ``open`` gives its text (header included), ``listing`` is
    what the manifest says about it (``rows`` is added), ``extra`` the values of the reserved
    columns, ``order`` its place in the output, and ``local`` a temporary copy to delete once
    its rows are written. ``raw`` gives its bytes (decompressed, header included) for a byte
    copy; ``blocker`` says why it can never have one (e.g. a non-UTF-8 encoding).
    """

    label: str
    header: list[str]
    open: Callable[[], AbstractContextManager[IO[str]]]
    listing: dict[str, Any]
    extra: tuple[str, ...] = ()
    order: tuple[Any, ...] = ()
    local: Path | None = None
    raw: Callable[[], AbstractContextManager[ByteStream]] | None = None
    blocker: str | None = None


class CsvFiles:
    """Collects :class:`CsvFile` s (:meth:`add`) and writes them to one sink (:meth:`write`)."""

    def __init__(
        self,
        *,
        delimiter: str,
        allow_empty: bool,
        columns: Sequence[str],
        reserved: Sequence[str] = (),
        log: Any = None,
    ) -> None:
        self.delimiter = delimiter
        self.allow_empty = allow_empty
        self.columns = list(columns)
        self.reserved = tuple(reserved)
        self.log = log
        self.files: list[CsvFile] = []

    def __len__(self) -> int:
        return len(self.files)

    def add(self, file: CsvFile) -> None:
        """Take ``file``; a duplicate or a reserved column name in its header is an error."""
        header = file.header
        if not header and not self.allow_empty:  # a 0-byte or blank upload: likely cut short
            raise SourceError(
                f"{file.label}: empty file (no header); re-upload or remove it "
                "(set allow_empty: true if empty files are normal)"
            )
        if len(set(header)) != len(header):
            raise SourceError(f"{file.label}: duplicate column names in header")
        clash = set(header) & set(self.reserved)
        if clash:
            raise SourceError(
                f"{file.label}: has a column named {sorted(clash)[0]}, which xoelt adds itself"
            )
        self.files.append(file)

    def write(self, sink: CsvSink, *, nothing: str, noun: str) -> list[dict[str, Any]]:
        """Write every file's rows in ``order``; return the listing for the manifest.

        ``nothing`` says what was looked for when no file was found (the error unless
        ``allow_empty``); ``noun`` names the files in the error when ``columns:`` is missing.
        """
        files = sorted(self.files, key=lambda f: f.order)
        columns: list[str] = []
        for file in files:
            columns += [c for c in file.header if c not in columns]
        if not files:
            if not self.allow_empty:
                raise SourceError(f"{nothing} (set allow_empty: true if that is normal)")
            if not self.columns:
                raise SourceError(
                    f"allow_empty found no {noun} and no `columns:` are configured for the header"
                )
            columns = [c for c in self.columns if c not in self.reserved]
        sink.open([*columns, *self.reserved])
        listing = []
        for file in files:
            before = sink.rows
            how: dict[str, Any] = {}
            if file.header:
                how = self._fast_copy(file, columns, sink)
                if how.get("copy") != "bytes":
                    self._copy(file, columns, sink)
            listing.append({**file.listing, "rows": sink.rows - before, **how})
            if self.log is not None and file.header:
                self.log.debug("csv file read", file=file.label, rows=sink.rows - before)
            if file.local is not None:
                file.local.unlink()
        return listing

    def _fast_copy(self, file: CsvFile, columns: list[str], sink: CsvSink) -> dict[str, Any]:
        """Byte-copy ``file`` if it can be; else what the listing says about why not."""
        if file.raw is None:  # a source without byte access lists nothing about it
            return {"copy": "parsed", "fallback": file.blocker} if file.blocker else {}
        if file.header != columns or file.extra or self.reserved:
            return {"copy": "parsed", "fallback": "its header is not the output's"}
        if self.delimiter != ",":  # the source's blocker says so first; never copy one
            return {"copy": "parsed", "fallback": f"delimiter {self.delimiter!r}"}
        mark = sink.mark()
        try:
            with file.raw() as raw:
                copy_body(raw, len(columns), sink)
        except Fallback as why:
            reason = str(why)
        except READ_ERRORS as exc:  # the row-by-row read raises it with the file's name
            reason = f"cannot read: {exc}"
        else:
            return {"copy": "bytes"}
        sink.rewind(mark)
        if self.log is not None:
            self.log.debug("csv byte copy fell back", file=file.label, reason=reason)
        return {"copy": "parsed", "fallback": reason}

    def _copy(self, file: CsvFile, columns: list[str], sink: CsvSink) -> None:
        try:
            with file.open() as text:
                rows = CsvReader(text, self.delimiter)
                next(rows)
                copy_csv_rows(
                    rows, file.header, sink, file.label, columns=columns, extra=file.extra
                )
        except READ_ERRORS as exc:
            raise SourceError(f"{file.label}: {exc}") from exc
