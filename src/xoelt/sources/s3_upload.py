"""``s3_upload``: CSV files people or systems drop under a prefix, picked up for the window.

The prefix is a template filled from the window (``{date}`` = ``YYYY-MM-DD`` of the window
start, ``{yyyy}``, ``{mm}``, ``{dd}``, ``{hh}``); every ``.csv`` or ``.csv.gz`` object under
it is read in key order. Files with different headers are combined by column name (the
output header is the union in first-seen order; a file lacking a column gets empty values).
The ingest manifest lists every file taken, with its size and row count.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import io
from collections.abc import Generator
from contextlib import contextmanager
from typing import IO, Any

from pydantic import Field, field_validator

from xoelt.config.types import Bucket, Encoding, StrictModel
from xoelt.errors import SourceError
from xoelt.sources import register
from xoelt.sources.base import CsvSink, Source, copy_csv_rows
from xoelt.timewindow import TimeWindow


class S3UploadConfig(StrictModel):
    bucket: Bucket
    prefix: str
    patterns: list[str] = Field(default_factory=lambda: ["*.csv", "*.csv.gz"])
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: Encoding = "utf-8-sig"
    allow_empty: bool = False
    columns: list[str] = Field(
        default_factory=list
    )  # the header to write when allow_empty finds no files

    @field_validator("prefix")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            value.format(date="", yyyy="", mm="", dd="", hh="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"prefix template {value!r}: unknown placeholder {exc}") from None
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("prefix must be relative and must not contain '..'")
        return value


def resolved_prefix(config: S3UploadConfig, window: TimeWindow) -> str:
    s = window.start
    return config.prefix.format(
        date=s.date().isoformat(),
        yyyy=f"{s.year:04d}",
        mm=f"{s.month:02d}",
        dd=f"{s.day:02d}",
        hh=f"{s.hour:02d}",
    )


@register
class S3UploadSource(Source):
    source_type = "s3_upload"
    Config = S3UploadConfig
    config: S3UploadConfig

    @classmethod
    def describe(cls, config: Any, window: TimeWindow) -> dict[str, Any]:
        return {
            "bucket": config.bucket,
            "prefix": resolved_prefix(config, window),
            "patterns": config.patterns,
        }

    def _files(self) -> list[tuple[str, int]]:
        prefix = resolved_prefix(self.config, self.ctx.window)
        found = [
            (o.key, o.size)
            for o in self.ctx.store.list(self.config.bucket, prefix)
            if any(fnmatch.fnmatch(o.key.rsplit("/", 1)[-1], p) for p in self.config.patterns)
        ]
        if not found and not self.config.allow_empty:
            raise SourceError(
                f"no files matching {', '.join(self.config.patterns)} under "
                f"{self.ctx.store.uri(self.config.bucket, prefix)} (set allow_empty: true if that is normal)"
            )
        return found

    @contextmanager
    def _reader(self, key: str) -> Generator[Any]:
        raw: IO[bytes] = self.ctx.store.open(self.config.bucket, key)
        try:
            stream: Any = gzip.GzipFile(fileobj=raw) if key.endswith(".gz") else raw
            text = io.TextIOWrapper(stream, encoding=self.config.encoding, newline="")
            yield csv.reader(text, delimiter=self.config.delimiter)
        finally:
            raw.close()

    def _header(self, key: str) -> list[str]:
        try:
            with self._reader(key) as rows:
                return next(rows, [])
        except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
            raise SourceError(f"{key}: cannot read header: {exc}") from None

    def extract(self, sink: CsvSink) -> None:
        files = self._files()
        headers = {key: self._header(key) for key, _ in files}
        columns: list[str] = []
        for key, header in headers.items():
            if len(set(header)) != len(header):
                raise SourceError(f"{key}: duplicate column names in header")
            columns += [c for c in header if c not in columns]
        if not files:
            if not self.config.columns:
                raise SourceError(
                    "allow_empty found no files and no `columns:` are configured for the header"
                )
            columns = list(self.config.columns)
        sink.open(columns)
        taken = []
        for key, size in files:
            header = headers[key]
            if not header:
                taken.append({"key": key, "bytes": size, "rows": 0})
                continue
            before = sink.rows
            try:
                with self._reader(key) as rows:
                    next(rows)
                    copy_csv_rows(rows, header, sink, key, columns=columns)
            except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
                raise SourceError(f"{key}: {exc}") from None
            taken.append({"key": key, "bytes": size, "rows": sink.rows - before})
            self.ctx.log.debug("upload file read", key=key, rows=sink.rows - before)
        sink.details["files"] = taken
        sink.details["bucket"] = self.config.bucket
