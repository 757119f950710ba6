"""``s3_upload``'s byte copy through the CLI on the embedded target: same data as row by row."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sources.conftest import SourceHarness
from tests.integration.sources.test_s3_upload import DAY, drop, source
from xoelt.sources import s3_upload

FILES = {
    f"up/{DAY}/a.csv": b"Id,Note,N\n1,x,4\n2,,\n3,\xc3\x87elik,5",  # LF, no last line end
    f"up/{DAY}/b.csv.gz": gzip.compress(b"\xef\xbb\xbfId,Note,N\r\n4,,6\r\n5,y,\r\n"),
}
INGEST = b"Id,Note,N\r\n1,x,4\r\n2,,\r\n3,\xc3\x87elik,5\r\n4,,6\r\n5,y,\r\n"


def _run(harness: SourceHarness, files: dict[str, bytes]) -> tuple[bytes, dict[str, Any], list]:
    """Run the window; its ingest CSV, manifest and (bronze, silver) rows."""
    import duckdb

    harness.pipeline("up", {**source(), "silver": {"table": "T", "columns": {"N": "FLOAT"}}})
    for key, body in files.items():
        drop(harness, key, body)
    result = harness.cli("run", "test/up", "--date", "2026-11-03")
    assert result.exit_code == 0, result.output
    [data] = [p for p in harness.ingest_files() if p.suffix == ".csv"]
    manifest = json.loads((data.parent / "_manifest.json").read_text())
    con = duckdb.connect(str(harness.home / "warehouse" / "TEST_DB.duckdb"), read_only=True)
    try:
        tables = [
            con.execute(f'SELECT "ID", "NOTE", "N" FROM {t} ORDER BY 1').fetchall()
            for t in ('"BRONZE"."T_SRC"', '"SILVER"."T"')
        ]
    finally:
        con.close()
    return data.read_bytes(), manifest, tables


@pytest.mark.parametrize("path", ["bytes", "parsed"])
def test_a_plain_window_is_byte_copied_with_the_data_of_the_row_by_row_path(
    harness: SourceHarness, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    if path == "parsed":  # force the row-by-row path: the same files, the same data
        monkeypatch.setattr(s3_upload, "byte_copy_blocker", lambda *_: "forced")
    data, manifest, (bronze, silver) = _run(harness, FILES)
    assert data == INGEST
    assert manifest["rows"] == 5
    listed = [
        (f["key"].rsplit("/", 1)[1], f["rows"], f["copy"]) for f in manifest["details"]["files"]
    ]
    assert listed == [("a.csv", 3, path), ("b.csv.gz", 2, path)]
    assert bronze == [
        ("1", "x", "4"),
        ("2", None, None),
        ("3", "Çelik", "5"),
        ("4", None, "6"),
        ("5", "y", None),
    ]
    assert silver == [
        ("1", "x", 4.0),
        ("2", None, None),
        ("3", "Çelik", 5.0),
        ("4", None, 6.0),
        ("5", "y", None),
    ]


def test_a_file_with_quotes_falls_back_and_keeps_empty_strings_apart(
    harness: SourceHarness,
) -> None:
    files = {**FILES, f"up/{DAY}/c.csv": b'Id,Note,N\n6,"",""\n7,"a\nb",\n'}
    data, manifest, (bronze, silver) = _run(harness, files)
    assert data == INGEST + b'6,"",""\r\n7,"a\nb",\r\n'
    assert [(f["copy"], f.get("fallback")) for f in manifest["details"]["files"]] == [
        ("bytes", None),
        ("bytes", None),
        ("parsed", "quoted fields"),
    ]
    assert bronze[5:] == [("6", "", ""), ("7", "a\nb", None)]
    assert silver[5:] == [("6", "", None), ("7", "a\nb", None)]


def test_a_ragged_row_fails_at_extract_naming_the_file_and_line(
    harness: SourceHarness, tmp_path: Path
) -> None:
    harness.pipeline("up", source())
    drop(harness, f"up/{DAY}/a.csv", b"Id,Name\n" + b"1,Ada\n" * 1000 + b"2,Bo,extra\n")
    result = harness.cli("extract", "test/up", "--date", "2026-11-03")
    assert result.exit_code == 1
    assert "a.csv line 1002: 3 fields, the header has 2" in result.output
    assert harness.ingest_files() == []
