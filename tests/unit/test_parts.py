"""The extract sink's parts: gzip or plain, rolled at a size, each a complete CSV."""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path

import pytest

from xoelt.config.models import OutputConfig
from xoelt.sources.base import CsvSink
from xoelt.sources.parts import gunzip_prefix, part_name


def read_part(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode()
    return list(csv.reader(io.StringIO(text, newline="")))


def noise(i: int) -> str:
    return f"{i * 2654435761 % 2**32:08x}{i * 40503 % 65521:05d}"


def test_a_small_window_is_one_gzip_part_with_the_header(tmp_path: Path) -> None:
    sink = CsvSink(tmp_path / "src.csv", fmt="csv.gz", part_bytes=1 << 20)
    sink.open(["a", "b"])
    sink.write_many_values([["1", None], ["2", ""]])
    sink.close()
    [part] = sink.parts
    assert part.path.name == "src.part-00000.csv.gz" == part_name("src", 0, "csv.gz")
    assert (part.rows, part.bytes) == (2, part.path.stat().st_size)
    assert gzip.decompress(part.path.read_bytes()) == b'a,b\r\n1,\r\n2,""\r\n'


@pytest.mark.parametrize("fmt", ["csv.gz", "csv"])
def test_parts_roll_at_the_size_written_and_each_is_a_whole_csv(tmp_path: Path, fmt: str) -> None:
    sink = CsvSink(tmp_path / "src.csv", fmt=fmt, part_bytes=8192)
    sink.open(["id", "note"])
    for i in range(20000):
        sink.write_values([str(i), noise(i)])
    sink.close()
    assert len(sink.parts) >= 3
    seen: list[str] = []
    for i, part in enumerate(sink.parts):
        assert part.path.name == f"src.part-{i:05d}.{fmt}"
        assert part.bytes == part.path.stat().st_size
        body = read_part(part.path)
        assert body[0] == ["id", "note"] and len(body) - 1 == part.rows > 0
        seen += [r[0] for r in body[1:]]
    assert seen == [str(i) for i in range(20000)]  # in order, none lost or repeated
    # a part closes once it holds the size: no part but the last is under it, none far over
    assert all(p.bytes >= 8192 for p in sink.parts[:-1])
    assert max(p.bytes for p in sink.parts) < 8192 + 128 * 1024


@pytest.mark.parametrize("fmt", ["csv.gz", "csv"])
def test_rewind_drops_what_was_written_since_the_mark_across_parts(
    tmp_path: Path, fmt: str
) -> None:
    """A byte copy that falls back rewinds; the parts stay valid files (gzip: one member)."""
    sink = CsvSink(tmp_path / "src.csv", fmt=fmt, part_bytes=4096)
    sink.open(["id", "note"])
    sink.write_many_values([[str(i), noise(i)] for i in range(500)])
    mark = sink.mark()
    before = len(sink.parts)
    for _ in range(40):  # enough to fill several more parts
        sink.write_raw(b"".join(f"x,{noise(i)}\r\n".encode() for i in range(500)), 500)
    assert len(sink.parts) > before
    sink.rewind(mark)
    assert len(sink.parts) == before and sink.rows == 500
    sink.write_many_values([[str(i), "after"] for i in range(500, 600)])
    sink.close()
    ids = [r[0] for p in sink.parts for r in read_part(p.path)[1:]]
    assert ids == [str(i) for i in range(600)]
    assert sum(p.rows for p in sink.parts) == 600
    assert sorted(tmp_path.iterdir()) == sorted(p.path for p in sink.parts)  # none left over


def test_a_plain_sink_without_a_format_is_one_file_at_its_path(tmp_path: Path) -> None:
    sink = CsvSink(tmp_path / "out.csv")
    sink.open(["a"])
    sink.write_values(["x"])
    sink.close()
    assert (tmp_path / "out.csv").read_bytes() == b"a\r\nx\r\n"
    assert [(p.path, p.rows) for p in sink.parts] == [(tmp_path / "out.csv", 1)]


def test_the_header_peek_inflates_a_gzip_prefix() -> None:
    text = b"Id,Name\r\n" + b"".join(f"{i},{noise(i)}\r\n".encode() for i in range(5000))
    packed = gzip.compress(text, 1)
    assert gunzip_prefix(packed[:8192], 8192) == text[:8192]
    assert gunzip_prefix(b"Id,Name\r\n1,a\r\n", 8192) == b"Id,Name\r\n1,a\r\n"
    with pytest.raises(zlib.error):
        gunzip_prefix(b"\x1f\x8bnot gzip", 8192)


def test_output_config_defaults_and_sizes() -> None:
    default = OutputConfig()
    assert (default.format, default.part_size, default.gzip_level) == (None, 128 * 2**20, 1)
    assert OutputConfig.model_validate({"part_size": "100 MB"}).part_size == 100_000_000
    assert OutputConfig.model_validate({"part_size": "4KiB"}).part_size == 4096
    assert OutputConfig(part_size=2048).part_size == 2048
    for bad, message in [
        ("huge", "'huge' is not a size"),
        ("12 parsecs", "is not a size"),
        (10, "a part is between 1024 bytes"),
        ("6GiB", "5GiB"),
        (True, "is not a size"),
    ]:
        with pytest.raises(ValueError, match=message):
            OutputConfig.model_validate({"part_size": bad})
    with pytest.raises(ValueError, match=r"csv\.gz"):
        OutputConfig.model_validate({"format": "parquet"})
    with pytest.raises(ValueError, match="less than or equal to 9"):
        OutputConfig(gzip_level=10)
