"""Extract output in parts: the byte layer under :class:`~xoelt.sources.base.CsvSink`.

A window's CSV is written as one or more part files, each a complete CSV with the same
header, gzip-compressed (``csv.gz``) or plain (``csv``). :class:`PartStream` is the raw
stream under the sink's text layer: bytes go to the current part (through one zlib
compressor for gzip), and the bytes that reached the part's file — compressed bytes for
gzip — are counted, so the sink can roll to the next part (``full``), at a record boundary,
once a part has reached its size. zlib hands out compressed output a block at a time (tens
of KB), so a gzip part closes at the first block past the size. Snowflake loads the parts of one COPY in parallel (one
load thread per file; 100–250 MB compressed per file is its advice).

The gzip member is written by hand (header, raw deflate, CRC-32 and length trailer) rather
than with :mod:`gzip`, for one reason: the sink's :meth:`mark`/:meth:`rewind` (a byte copy
that falls back drops what it wrote). A mark flushes the compressor with ``Z_FULL_FLUSH``:
the deflate stream is then byte-aligned and no later block refers to earlier data, so the
file can be cut at that offset and continued by a fresh compressor, with the CRC and length
taken back to their values at the mark. The result is one ordinary gzip member.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# magic, deflate, no flags, mtime 0 (the same data gives the same bytes), no extra flags, OS unknown
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
GZIP_MAGIC = GZIP_HEADER[:2]
FORMATS = ("csv.gz", "csv")


def part_name(name: str, index: int, fmt: str) -> str:
    """The file name of part ``index`` of source ``name``: ``<name>.part-00000.csv.gz``.

    Zero-padded, so parts sort in the order they were written (silver orders a window's
    rows by file, then row, to find the latest of a key).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; valid: {', '.join(FORMATS)}")
    return f"{name}.part-{index:05d}.{fmt}"


@dataclass
class Part:
    """One part file: where it is, the data rows in it (its header not counted) and its
    size in bytes as written (compressed, for gzip)."""

    path: Path
    rows: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class PartMark:
    """Where a :class:`PartStream` was: which part, the offset in it, and the gzip state."""

    index: int
    offset: int
    crc: int
    size: int
    position: int


class PartStream(io.RawIOBase):
    """A write-only raw stream over numbered part files (see the module docstring).

    ``path_of(i)`` names part ``i``; ``part_bytes`` (None: never) sets ``full`` once the
    current part holds that many bytes; the owner calls :meth:`next_part` at a record
    boundary. ``level`` None writes plain files, else gzip at that level.
    """

    def __init__(
        self, path_of: Callable[[int], Path], *, level: int | None, part_bytes: int | None
    ) -> None:
        super().__init__()
        self.path_of = path_of
        self.level = level
        self.part_bytes = part_bytes
        self.parts: list[Part] = []
        self.full = False
        self._fh: Any = None  # a FileIO (plain) or a BufferedRandom/Writer (gzip)
        self._z: Any = None
        self._crc = 0
        self._size = 0  # uncompressed bytes of the current part (the gzip trailer's ISIZE)
        self._written = 0  # bytes in the current part's file
        self._position = 0  # uncompressed bytes over all parts (what tell() says)
        self._open(self.path_of(0), "wb")

    def _open(self, path: Path, mode: str) -> None:
        self._fh = path.open(mode, buffering=0 if self.level is None else 1 << 20)
        if mode == "wb":
            self.parts.append(Part(path))
            self._crc = self._size = self._written = 0
            if self.level is not None:
                self._raw(GZIP_HEADER)
        if self.level is not None:
            self._z = zlib.compressobj(self.level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.full = False

    def _raw(self, data: Any) -> None:
        assert self._fh is not None
        view = memoryview(data).cast("B")
        size = len(view)
        while view:  # an unbuffered file may take part of a write
            view = view[self._fh.write(view) :]
        self._written += size
        if self.part_bytes is not None and self._written >= self.part_bytes:
            self.full = True

    # -- io.RawIOBase ------------------------------------------------------------------------

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True  # for tell() only: the text layer asks its buffer where it is

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        if (offset, whence) in ((0, 1), (self._position, 0)):
            return self._position
        raise io.UnsupportedOperation("a part stream only moves by mark/rewind")

    def write(self, b: Any) -> int:
        n = len(b) if isinstance(b, bytes) else memoryview(b).nbytes
        if self._z is not None:
            self._crc = zlib.crc32(b, self._crc)
            self._size += n
            out = self._z.compress(b)
            if out:
                self._raw(out)
        else:
            self._raw(b)
        self._position += n
        return n

    # -- parts -------------------------------------------------------------------------------

    def _finish(self) -> None:
        if self._fh is None:
            return
        if self._z is not None:
            self._raw(self._z.flush(zlib.Z_FINISH))
            self._raw(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
            self._z = None
        self.parts[-1].bytes = self._written
        self._fh.close()
        self._fh = None

    def next_part(self) -> None:
        """Finish the current part and start the next (call at a record boundary only)."""
        self._finish()
        self._open(self.path_of(len(self.parts)), "wb")

    def mark(self) -> PartMark:
        """A point :meth:`rewind` can come back to (everything before it is on its way)."""
        if self._z is not None:
            self._raw(self._z.flush(zlib.Z_FULL_FLUSH))
        return PartMark(len(self.parts) - 1, self._written, self._crc, self._size, self._position)

    def rewind(self, mark: PartMark) -> None:
        """Drop everything written since ``mark`` (parts started since are deleted)."""
        assert self._fh is not None
        if len(self.parts) - 1 > mark.index:
            self._fh.close()
            for part in self.parts[mark.index + 1 :]:
                part.path.unlink(missing_ok=True)
            del self.parts[mark.index + 1 :]
            self._open(self.parts[-1].path, "r+b")
        assert self._fh is not None
        self._fh.flush()
        self._fh.seek(mark.offset)
        self._fh.truncate()
        self._written, self._crc, self._size = mark.offset, mark.crc, mark.size
        self._position = mark.position
        if self.level is not None:  # the old compressor's state is past the mark
            self._z = zlib.compressobj(self.level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.full = self.part_bytes is not None and self._written >= self.part_bytes

    def close(self) -> None:
        if not self.closed:
            self._finish()
        super().close()


def gunzip_prefix(data: bytes, limit: int) -> bytes:
    """Up to ``limit`` bytes of what the gzip prefix ``data`` (a part's first bytes)
    decompresses to; ``data`` unchanged if it is not gzip."""
    if not data.startswith(GZIP_MAGIC):
        return data
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    return inflater.decompress(data, limit)
