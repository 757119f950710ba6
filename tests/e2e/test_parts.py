"""A window in many gzip parts loads bronze and silver exactly as the same window in one file.

Two pipelines read the same uploads (``s3_upload``: a file with quoted fields, read row by
row, and a plain one, byte-copied) into two databases of the embedded target: ``parts``
writes ``csv.gz`` parts of 4 KiB (dozens of parts), ``single`` plain CSV in one part. Keys
repeat across the window, so the incremental silver's "latest row wins" must see the
parts in the order they were written.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json

import duckdb
import yaml

from tests.e2e.conftest import Project
from xoelt.storage.local import LocalObjectStore

DAY = "2026-11-02"  # the window of run date 2026-11-03
ROWS = 12000


def uploads() -> dict[str, bytes]:
    """Two files of one window: quoted fields, empty strings and missing values in the first."""
    quoted = io.StringIO(newline="")
    writer = csv.writer(quoted)
    writer.writerow(["Id", "Name", "Note"])
    for i in range(ROWS):
        noise = hashlib.md5(str(i).encode()).hexdigest()  # what compresses like real data
        note = "" if i % 7 == 0 else f"line {i}\nwith, comma" if i % 11 == 0 else noise
        writer.writerow([i % 1000, f"name {i}", note])  # keys repeat in this file
    quoted_text = quoted.getvalue().replace('""', "")  # csv writes '' as "": make some missing
    quoted_text = quoted_text.replace(',"",', ",,")
    plain = "Id,Name,Note\n" + "".join(
        f"{i % 1500},later {i},p{i * 7919 % 100003}\n" for i in range(ROWS)
    )
    return {"a.csv": quoted_text.encode(), "b.csv": plain.encode()}


def pipeline(name: str, database: str, output: dict[str, object]) -> dict[str, object]:
    def source(strategy: str, table: str) -> dict[str, object]:
        return {
            "source_type": "s3_upload",
            "load_strategy": strategy,
            "extractor": {"bucket": "landing", "prefix": "up/{date}/"},
            "output": output,
            "snowflake": {"target_table": table},
            "silver": {"primary_key": ["ID"]} if strategy == "incremental" else {},
        }

    return {
        "dag": {
            "domain": "parts",
            "pipeline_name": name,
            "schedule": "0 6 * * *",
            "time_window": {"refresh_type": "daily", "lag": {"days": 1}, "timezone": "UTC"},
        },
        "globals": {"snowflake": {"database": database}},
        "sources": {
            "snap": source("full_refresh", "UP_SNAP"),
            "keyed": source("incremental", "UP_KEYED"),
        },
    }


def setup(project: Project) -> None:
    store = LocalObjectStore(project.home / "objects")
    for name, body in uploads().items():
        store.put_bytes("landing", f"up/{DAY}/{name}", body)
    folder = project.root / "pipelines" / "parts"
    folder.mkdir(parents=True, exist_ok=True)
    docs = {
        "parts": pipeline("parts", "PARTS_DB", {"format": "csv.gz", "part_size": "4KiB"}),
        "single": pipeline("single", "ONE_DB", {"format": "csv"}),
    }
    for name, doc in docs.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def query(project: Project, database: str, sql: str) -> list[tuple]:
    path = project.home / "warehouse" / f"{database}.duckdb"
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def rows(project: Project, database: str, table: str, columns: str) -> list[tuple]:
    return query(project, database, f"SELECT {columns} FROM {table} ORDER BY ALL")


def manifest(project: Project, pipeline: str, source: str) -> dict:
    path = project.home / "objects" / "xoelt-ingest" / "ingest" / "parts" / pipeline / source
    return json.loads((path / DAY / "_manifest.json").read_text())


def test_many_gzip_parts_load_the_same_bronze_and_silver_as_one_plain_file(
    project: Project,
) -> None:
    setup(project)
    for name in ("parts", "single"):
        project.xoelt("run", f"parts/{name}", "--date", "2026-11-03", check=True)

    many, one = manifest(project, "parts", "keyed"), manifest(project, "single", "keyed")
    assert (many["format"], one["format"]) == ("csv.gz", "csv")
    assert len(many["parts"]) >= 3 and len(one["parts"]) == 1
    assert sum(p["rows"] for p in many["parts"]) == many["rows"] == one["rows"] == 2 * ROWS
    ingest = project.home / "objects" / "xoelt-ingest"
    headers = set()
    for part in many["parts"]:
        assert part["key"].endswith(".csv.gz")
        text = gzip.decompress((ingest / part["key"]).read_bytes()).decode()
        body = list(csv.reader(io.StringIO(text, newline="")))
        headers.add(tuple(body[0]))
        assert len(body) - 1 == part["rows"]
    assert headers == {("Id", "Name", "Note")}  # every part has the header
    [plain] = one["parts"]
    assert plain["key"].endswith(".part-00000.csv")
    assert (ingest / plain["key"]).read_bytes().startswith(b"Id,Name,Note\r\n")  # not gzip

    source_cols = '"ID", "NAME", "NOTE"'
    for table in ("BRONZE.UP_SNAP", "BRONZE.UP_KEYED", "SILVER.SNAP", "SILVER.KEYED"):
        assert rows(project, "PARTS_DB", table, source_cols) == rows(
            project, "ONE_DB", table, source_cols
        ), table
    # the incremental silver kept each key's last row of the window: from the last file
    keyed = dict((k, n) for k, n, _ in rows(project, "PARTS_DB", "SILVER.KEYED", source_cols))
    assert (
        len(keyed) == 1500
        and keyed["0"] == f"later {ROWS - 1500}"
        and keyed["1499"] == f"later {ROWS - 1}"
    )
    # bronze's file row numbers count within each part, whose key is the source file
    numbered = query(
        project,
        "PARTS_DB",
        'SELECT "_XO_SOURCE_FILE", COUNT(*), MIN("_XO_FILE_ROW_NUMBER"), '
        'MAX("_XO_FILE_ROW_NUMBER") FROM BRONZE.UP_KEYED GROUP BY ALL ORDER BY 1',
    )
    assert [n for _, n, _, _ in numbered] == [p["rows"] for p in many["parts"]]
    assert all((lo, hi) == (1, n) for _, n, lo, hi in numbered)
    assert all(
        f.endswith(p["key"].rsplit("/", 1)[1])
        for (f, *_), p in zip(numbered, many["parts"], strict=True)
    )


def test_plan_shows_the_parts_and_a_bad_part_size_is_a_config_error(project: Project) -> None:
    setup(project)
    shown = project.xoelt("plan", "parts/parts", "--date", "2026-11-03", check=True).stdout
    assert "keyed.part-00000.csv.gz" in shown and "csv.gz in parts of 4 KiB" in shown
    data = json.loads(
        project.xoelt(
            "plan", "parts/single", "--date", "2026-11-03", "--format", "json", check=True
        ).stdout
    )
    [snap, _] = data["sources"]
    assert snap["output"] == {"format": "csv", "part_size": 128 * 2**20}
    assert snap["stage_key"].endswith("/full_refresh/2026-11-02/snap.part-00000.csv")
    bad = project.root / "pipelines" / "parts" / "parts.yaml"
    bad.write_text(bad.read_text().replace("part_size: 4KiB", "part_size: huge"))
    failed = project.xoelt("plan", "parts/parts", "--date", "2026-11-03")
    assert failed.returncode == 2
    assert "parts.yaml" in failed.stderr and "part_size" in failed.stderr
    assert "'huge' is not a size" in failed.stderr and "Traceback" not in failed.stderr


def test_every_part_must_share_the_header_and_a_rerun_leaves_no_stale_part(
    project: Project,
) -> None:
    setup(project)
    run = ("--date", "2026-11-03", "--source", "snap")
    project.xoelt("extract", "parts/parts", *run, check=True)
    parts = manifest(project, "parts", "snap")["parts"]
    ingest = project.home / "objects" / "xoelt-ingest"
    second = ingest / parts[1]["key"]
    text = gzip.decompress(second.read_bytes()).decode()
    second.write_bytes(gzip.compress(text.replace("Id,Name,Note", "Id,Name,Other", 1).encode()))
    failed = project.xoelt("stage", "parts/parts", *run)
    assert failed.returncode == 1
    assert "/full_refresh/2026-11-02/snap.part-00001.csv.gz has another header" in failed.stderr
    assert "column 3 is 'Other', not 'Note'" in failed.stderr

    # fewer, bigger parts on a rerun: the earlier run's extra parts are removed
    doc = project.root / "pipelines" / "parts" / "parts.yaml"
    doc.write_text(doc.read_text().replace("part_size: 4KiB", "part_size: 1MiB"))
    project.xoelt("extract", "parts/parts", *run, check=True)
    project.xoelt("stage", "parts/parts", *run, check=True)
    for bucket in ("xoelt-ingest", "xoelt-stage"):
        files = sorted(p.name for p in (project.home / "objects" / bucket).rglob("snap.part-*"))
        assert files == ["snap.part-00000.csv.gz"], bucket


def test_on_duckdb_a_part_whose_count_disagrees_fails_the_load_naming_it(
    project: Project,
) -> None:
    setup(project)
    run = ("--date", "2026-11-03", "--source", "snap")
    project.xoelt("run", "parts/parts", *run, check=True)
    stage = project.home / "objects" / "xoelt-stage" / "stage" / "parts" / "parts" / "snap"
    path = stage / "full_refresh" / DAY / "_manifest.json"
    body = json.loads(path.read_text())
    body["parts"][1]["rows"] += 1
    body["rows"] += 1
    path.write_text(json.dumps(body))
    failed = project.xoelt("load", "parts/parts", *run)
    assert failed.returncode == 1
    key = body["parts"][1]["key"]
    n = body["parts"][1]["rows"]
    assert f"extracted {n}, loaded {n - 1} from part " in failed.stderr
    assert key.rsplit("/", 1)[1] in failed.stderr and "bronze left unchanged" in failed.stderr
    assert query(project, "PARTS_DB", "SELECT COUNT(*) FROM BRONZE.UP_SNAP") == [(2 * ROWS,)]
