"""``s3_upload``: CSV files people or systems drop under a prefix, picked up for the window.

The prefix is a template filled from the window (``{date}`` = ``YYYY-MM-DD`` of the window
start, ``{yyyy}``, ``{mm}``, ``{dd}``, ``{hh}``); every ``.csv`` or ``.csv.gz`` object under
it is read in key order. Files with different headers are combined by column name (the
output header is the union in first-seen order; a file lacking a column gets empty values).
The ingest manifest lists every file taken, with its size, row count and how it was copied:
``copy: bytes`` when its body was copied through unparsed (a UTF-8, ``,``-delimited file
whose header is the output's and whose body has no quotes, blank or ragged lines; see
:mod:`xoelt.sources.csvcopy`), else ``copy: parsed`` and the ``fallback`` reason.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import io
from collections.abc import Generator
from contextlib import contextmanager
from functools import partial
from typing import IO, Any

from pydantic import Field, field_validator

from xoelt.config.types import Bucket, Encoding, StrictModel
from xoelt.errors import SourceError
from xoelt.sources.base import CsvSink, Source
from xoelt.sources.csv_files import READ_ERRORS, CsvFile, CsvFiles
from xoelt.sources.csvcopy import byte_copy_blocker
from xoelt.timewindow import TimeWindow


class S3UploadConfig(StrictModel):
    """The ``extractor:`` block of an ``s3_upload`` source."""

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
    """The prefix template filled from the window's start."""
    s = window.start
    return config.prefix.format(
        date=s.date().isoformat(),
        yyyy=f"{s.year:04d}",
        mm=f"{s.month:02d}",
        dd=f"{s.day:02d}",
        hh=f"{s.hour:02d}",
    )


class S3UploadSource(Source[S3UploadConfig], source_type="s3_upload"):
    """The CSV files under the window's prefix, combined by column name."""

    # Plain parts by default: the byte copy runs at ~1.5 M rows/s, gzip level 1 at about
    # half that (tests/benchmarks/test_parts.py); ``output.format: csv.gz`` opts in.
    output_format = "csv"

    @classmethod
    def describe(cls, config: S3UploadConfig, window: TimeWindow) -> dict[str, Any]:
        return {
            "bucket": config.bucket,
            "prefix": resolved_prefix(config, window),
            "patterns": config.patterns,
        }

    @contextmanager
    def _bytes(self, key: str) -> Generator[Any]:
        """The object's bytes, decompressed (a ``ByteStream``; typed Any for TextIOWrapper)."""
        raw: IO[bytes] = self.ctx.store.open(self.config.bucket, key)
        try:
            yield gzip.GzipFile(fileobj=raw) if key.endswith(".gz") else raw
        finally:
            raw.close()

    @contextmanager
    def _text(self, key: str) -> Generator[IO[str]]:
        with self._bytes(key) as stream:
            yield io.TextIOWrapper(stream, encoding=self.config.encoding, newline="")

    def _header(self, key: str) -> list[str]:
        try:
            with self._text(key) as text:
                return next(csv.reader(text, delimiter=self.config.delimiter), [])
        except READ_ERRORS as exc:
            raise SourceError(f"{key}: cannot read header: {exc}") from exc

    def extract(self, sink: CsvSink) -> None:
        """Every matching file under the prefix, in key order; the manifest lists them."""
        cfg, store = self.config, self.ctx.store
        prefix = resolved_prefix(cfg, self.ctx.window)
        found = [
            (o.key, o.size)
            for o in store.list(cfg.bucket, prefix)
            if any(fnmatch.fnmatch(o.key.rsplit("/", 1)[-1], p) for p in cfg.patterns)
        ]
        files = CsvFiles(
            delimiter=cfg.delimiter,
            allow_empty=cfg.allow_empty,
            columns=cfg.columns,
            log=self.ctx.log,
        )
        headers = {key: self._header(key) for key, _ in found}  # all read before any is checked
        blocker = byte_copy_blocker(cfg.encoding, cfg.delimiter)
        for key, size in found:
            opener = partial(self._text, key)
            listing = {"key": key, "bytes": size}
            raw = None if blocker else partial(self._bytes, key)
            files.add(CsvFile(key, headers[key], opener, listing, raw=raw, blocker=blocker))
        nothing = (
            f"no files matching {', '.join(cfg.patterns)} under {store.uri(cfg.bucket, prefix)}"
        )
        sink.details["files"] = files.write(sink, nothing=nothing, noun="files")
        sink.details["bucket"] = cfg.bucket

    def probe(self, timeout: float) -> str:
        """List the bucket under the prefix's fixed part (before its first placeholder)."""
        cfg = self.config
        fixed = cfg.prefix.split("{", 1)[0]
        listing = self.ctx.store.list(cfg.bucket, fixed)
        seen = sum(1 for _ in zip(range(1000), listing, strict=False))
        more = "+" if seen == 1000 else ""
        return f"listed {self.ctx.store.uri(cfg.bucket, fixed)}: {seen}{more} object(s)"
