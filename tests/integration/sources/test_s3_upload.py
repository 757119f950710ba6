"""``s3_upload`` through the CLI on the local store: files, gzip, union headers, faults."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest

from tests.integration.sources.conftest import SourceHarness
from xoelt.storage.local import LocalObjectStore

DAY = "2026-11-02"  # the window of run date 2026-11-03


def drop(h: SourceHarness, key: str, body: bytes) -> None:
    LocalObjectStore(h.home / "objects").put_bytes("landing", key, body)


def source(**extra: object) -> dict[str, object]:
    return {
        "source_type": "s3_upload",
        "extractor": {"bucket": "landing", "prefix": "up/{date}/", **extra},
    }


def read(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def test_files_of_the_window_are_combined_with_a_manifest(harness: SourceHarness) -> None:
    harness.pipeline("up", source())
    drop(harness, f"up/{DAY}/a.csv", b'Id,Name\r\n1,Ada\r\n2,"Brooks, B"\r\n')
    drop(harness, f"up/{DAY}/b.csv.gz", gzip.compress("Name,Id,Team\nÇelik,3,Sales\n".encode()))
    drop(harness, f"up/{DAY}/notes.txt", b"ignored")
    drop(harness, "up/2026-11-03/c.csv", b"Id,Name\n9,tomorrow\n")
    result = harness.cli("extract", "test/up", "--date", "2026-11-03")
    assert result.exit_code == 0, result.output
    [data] = [p for p in harness.ingest_files() if p.suffix == ".csv"]
    assert read(data) == [
        ["Id", "Name", "Team"],
        ["1", "Ada", ""],
        ["2", "Brooks, B", ""],
        ["3", "Çelik", "Sales"],
    ]
    manifest = json.loads((data.parent / "_manifest.json").read_text())
    assert manifest["rows"] == 3
    assert [(f["key"], f["rows"]) for f in manifest["details"]["files"]] == [
        (f"up/{DAY}/a.csv", 2),
        (f"up/{DAY}/b.csv.gz", 1),
    ]


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        (
            "ragged.csv",
            b"Id,Name\n1,Ada\n2,Bo,extra\n",
            "ragged.csv line 3: 3 fields, the header has 2",
        ),
        ("bad.csv.gz", b"not gzip at all", "bad.csv.gz"),
        ("latin.csv", "Id,Name\n1,Çelik\n".encode("latin-1"), "latin.csv"),
        ("dup.csv", b"Id,Id\n1,2\n", "duplicate column names"),
    ],
)
def test_a_bad_file_fails_and_writes_nothing(
    harness: SourceHarness, name: str, body: bytes, message: str
) -> None:
    harness.pipeline("up", source())
    drop(harness, f"up/{DAY}/{name}", body)
    result = harness.cli("extract", "test/up", "--date", "2026-11-03")
    assert result.exit_code == 1
    assert "extract failed source=src" in result.output and message in result.output
    assert harness.ingest_files() == []


def test_no_files_is_an_error_unless_allowed(harness: SourceHarness) -> None:
    harness.pipeline("up", source())
    result = harness.cli("extract", "test/up", "--date", "2026-11-03")
    assert result.exit_code == 1 and "no files matching" in result.output
    harness.pipeline("up", source(allow_empty=True, columns=["Id", "Name"]))
    result = harness.cli("extract", "test/up", "--date", "2026-11-03")
    assert result.exit_code == 0
    [data] = [p for p in harness.ingest_files() if p.suffix == ".csv"]
    assert read(data) == [["Id", "Name"]]


def test_bad_prefix_template_is_a_config_error(harness: SourceHarness) -> None:
    harness.pipeline("up", source(prefix="up/{day}/"))
    result = harness.cli("plan", "test/up", "--date", "2026-11-03")
    assert result.exit_code == 2 and "unknown placeholder" in result.output
    harness.pipeline("up", source(prefix="../up/{date}/"))
    result = harness.cli("plan", "test/up", "--date", "2026-11-03")
    assert result.exit_code == 2 and "must not contain '..'" in result.output


def test_empty_strings_and_missing_values_stay_apart_through_silver(
    harness: SourceHarness,
) -> None:
    """A user's ``""`` is an empty string and ``,,`` (or a column the file lacks) NULL, from
    the file through the ingest CSV and bronze to silver, on the embedded warehouse."""
    import duckdb

    harness.pipeline("up", {**source(), "silver": {"table": "T", "columns": {"N": "FLOAT"}}})
    drop(harness, f"up/{DAY}/a.csv", b'Id,Note,N\r\n1,"",""\r\n2,,\r\n3,x,"4"\r\n')
    drop(harness, f"up/{DAY}/b.csv", b"Id,N\r\n4,5\r\n")
    result = harness.cli("run", "test/up", "--date", "2026-11-03")
    assert result.exit_code == 0, result.output
    [data] = [p for p in harness.ingest_files() if p.suffix == ".csv"]
    assert data.read_bytes() == b'Id,Note,N\r\n1,"",""\r\n2,,\r\n3,x,4\r\n4,,5\r\n'
    con = duckdb.connect(str(harness.home / "warehouse" / "TEST_DB.duckdb"), read_only=True)
    try:
        bronze = con.execute('SELECT "ID", "NOTE", "N" FROM "BRONZE"."T_SRC" ORDER BY 1').fetchall()
        silver = con.execute('SELECT "ID", "NOTE", "N" FROM "SILVER"."T" ORDER BY 1').fetchall()
    finally:
        con.close()
    assert bronze == [("1", "", ""), ("2", None, None), ("3", "x", "4"), ("4", None, "5")]
    assert silver == [("1", "", None), ("2", None, None), ("3", "x", 4.0), ("4", None, 5.0)]
