"""The extractor interface and the CSV sink every extractor streams rows into."""

from __future__ import annotations

import csv
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from xoelt.config.types import StrictModel
from xoelt.errors import SourceError

if TYPE_CHECKING:
    from xoelt.storage.base import ObjectStore
    from xoelt.timewindow import TimeWindow


@dataclass
class ExtractContext:
    """What an extractor may use: its window, the object store, the environment, a logger."""

    source: str
    window: TimeWindow
    run_id: str
    store: ObjectStore
    env: Mapping[str, str]
    log: Any
    workdir: Path


class CsvSink:
    """Streams rows to a local CSV file with :class:`csv.DictWriter` (constant memory).

    The file is a private temp file; the extract stage publishes it to the ingest store only
    after the extractor returns, so a failed extraction never leaves a partial object behind.
    ``details`` ends up in the ingest manifest (e.g. which upload files were taken).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self.fieldnames: list[str] | None = None
        self.details: dict[str, Any] = {}
        self._file: TextIO | None = None
        self._writer: csv.DictWriter[str] | None = None
        self._plain: Any = None

    def open(self, fieldnames: Sequence[str]) -> None:
        """Write the header; must be called once, before any row."""
        if self.fieldnames is not None:
            if list(fieldnames) != self.fieldnames:
                raise SourceError(
                    f"columns changed mid-extract: {self.fieldnames} then {list(fieldnames)}"
                )
            return
        if len(set(fieldnames)) != len(fieldnames):
            raise SourceError(f"duplicate column names in source header: {list(fieldnames)}")
        self.fieldnames = list(fieldnames)
        # A large buffer: a row is a few hundred bytes, and 8 KB flushes cost a syscall each.
        self._file = self.path.open("w", newline="", encoding="utf-8", buffering=1 << 20)
        self._writer = csv.DictWriter(self._file, fieldnames=self.fieldnames, extrasaction="raise")
        self._writer.writeheader()
        self._plain = csv.writer(self._file)

    def write(self, row: Mapping[str, Any]) -> None:
        """One row by column name; a key not in the header is an error (no silent loss)."""
        if self._writer is None:
            raise SourceError("CsvSink.open(fieldnames) must be called before writing rows")
        try:
            self._writer.writerow(row)
        except ValueError as exc:
            raise SourceError(f"row {self.rows + 1} does not fit the header: {exc}") from None
        self.rows += 1

    def write_rows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def write_values(self, values: Sequence[Any]) -> None:
        """One row already in header order (faster path for sources that read CSV)."""
        if self._plain is None or self.fieldnames is None:
            raise SourceError("CsvSink.open(fieldnames) must be called before writing rows")
        if len(values) != len(self.fieldnames):
            raise SourceError(
                f"row {self.rows + 1} has {len(values)} fields, the header has {len(self.fieldnames)}"
            )
        self._plain.writerow(values)
        self.rows += 1

    def write_many_values(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows already in header order, written in one call (a page of API results)."""
        if self._plain is None or self.fieldnames is None:
            raise SourceError("CsvSink.open(fieldnames) must be called before writing rows")
        width = len(self.fieldnames)
        for i, values in enumerate(rows):
            if len(values) != width:
                raise SourceError(
                    f"row {self.rows + i + 1} has {len(values)} fields, the header has {width}"
                )
        self._plain.writerows(rows)
        self.rows += len(rows)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def copy_csv_rows(
    reader: Any,
    header: Sequence[str],
    sink: CsvSink,
    where: str,
    *,
    columns: Sequence[str] | None = None,
    extra: Sequence[str] = (),
) -> None:
    """Copy the rows left in a ``csv.reader`` (its header already read) into ``sink``.

    Values are mapped by name onto ``columns`` (default: the header itself; a column the
    file lacks is ``''``) and ``extra`` values are appended. Blank lines are skipped; a row
    whose width differs from the header is an error naming ``where`` and the line.
    """
    columns = list(header) if columns is None else columns
    order = [header.index(c) if c in header else -1 for c in columns]
    same = order == list(range(len(header))) and not extra
    tail = list(extra)
    width = len(header)
    for row in reader:
        if not row:
            continue
        if len(row) != width:
            raise SourceError(
                f"{where} line {reader.line_num}: {len(row)} fields, the header has {width}"
            )
        sink.write_values(row if same else [row[i] if i >= 0 else "" for i in order] + tail)


class Source(ABC):
    """An extractor: validated config in, rows out through a :class:`CsvSink`."""

    source_type: ClassVar[str]
    Config: ClassVar[type[StrictModel]]

    def __init__(self, config: Any, ctx: ExtractContext) -> None:
        self.config = config
        self.ctx = ctx

    @abstractmethod
    def extract(self, sink: CsvSink) -> None:
        """Stream the window's rows into ``sink``; raise SourceError on failure."""

    @classmethod
    def describe(cls, config: Any, window: TimeWindow) -> dict[str, Any]:
        """What ``plan`` shows about the requests this source will make (no secrets)."""
        return {}


@dataclass
class ExtractResult:
    rows: int
    columns: list[str]
    details: dict[str, Any] = field(default_factory=dict)
