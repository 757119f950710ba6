"""Benchmark: stage + load of a 1 GB / 10 M-row CSV on the embedded target vs raw DuckDB.

Run with ``make bench`` (never in CI). Prints rows/s for xoelt's stage + load and for
DuckDB's own ``CREATE TABLE AS SELECT * FROM read_csv(…, all_varchar = true)`` on the same
file, and their ratio (target: xoelt within 1.3x). ``XOELT_BENCH_ROWS`` changes the size.
"""

from __future__ import annotations

import json
import os
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from tests.benchmarks.conftest import Figures
from xoelt.core import execute
from xoelt.pipelines import load_pipeline
from xoelt.plan import build_plan
from xoelt.settings import Settings
from xoelt.storage.local import LocalObjectStore
from xoelt.targets import resolve_target

ROWS = int(os.environ.get("XOELT_BENCH_ROWS", "10000000"))
HEADER = ["Contact ID", "Agent Name", "Timestamp", "Payload A", "Payload B", "Count", "Note"]

PIPELINE = """\
dag:
  domain: bench
  pipeline_name: big
  schedule: "0 6 * * *"
  time_window: {refresh_type: daily, lag: {days: 1}, timezone: UTC}
globals:
  snowflake: {database: BENCH_DB}
sources:
  big:
    source_type: s3_upload
    load_strategy: full_refresh
    extractor: {bucket: landing, prefix: "big/"}
    snowflake: {target_table: BENCH_BIG}
"""


def make_csv(path: Path, rows: int) -> None:
    """~130 bytes a row: 10 M rows is about 1.3 GB. Quoted commas included."""
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT i AS "Contact ID", 'agent_' || (i % 50) AS "Agent Name",
            TIMESTAMP '2026-01-01' + INTERVAL (i) SECOND AS "Timestamp",
            md5(i::VARCHAR) AS "Payload A", md5((i * 7)::VARCHAR) AS "Payload B",
            (i % 997)::VARCHAR AS "Count", 'some text, with comma' AS "Note"
            FROM range({rows}) t(i)) TO '{path}' (HEADER, DELIMITER ',')"""
    )
    con.close()


@pytest.mark.bench
def test_stage_and_load_vs_raw_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figures: Figures
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("XOELT_HOME", str(home))
    monkeypatch.setenv("XOELT_SQL", str(Path(__file__).resolve().parents[2] / "sql"))
    pipe_path = tmp_path / "big.yaml"
    pipe_path.write_text(PIPELINE)
    settings = Settings(home=home, sql_root=Path(__file__).resolve().parents[2] / "sql")
    _, local = resolve_target("local", settings)
    plan = build_plan(
        load_pipeline(pipe_path, env={}), "local", local, date(2026, 11, 3), settings.sql_root
    )
    sp = plan.sources[0]

    # Put the file where extract would have: the ingest key plus its manifest.
    store = LocalObjectStore(home / "objects")
    target = home / "objects" / sp.ingest_bucket / sp.ingest_key
    target.parent.mkdir(parents=True)
    t0 = time.perf_counter()
    make_csv(target, ROWS)
    size = target.stat().st_size
    print(f"\ngenerated {ROWS:,} rows, {size / 1e9:.2f} GB in {time.perf_counter() - t0:.1f}s")
    manifest = {"rows": ROWS, "columns": HEADER, "key": sp.ingest_key}
    store.put_bytes(sp.ingest_bucket, sp.ingest_manifest_key, json.dumps(manifest).encode())

    # Raw DuckDB on the same file, in its own database file.
    raw = duckdb.connect(str(tmp_path / "raw.duckdb"))
    t0 = time.perf_counter()
    raw.execute(f"CREATE TABLE raw AS SELECT * FROM read_csv('{target}', all_varchar = true)")
    raw.execute("CHECKPOINT")
    raw_seconds = time.perf_counter() - t0
    assert raw.execute("SELECT COUNT(*) FROM raw").fetchone() == (ROWS,)
    raw.close()

    t0 = time.perf_counter()
    report = execute(plan, stages=("stage", "load"), settings=settings)
    xo_seconds = time.perf_counter() - t0
    item = report.sources[0]
    assert item.rows["load"] == ROWS

    print(f"raw DuckDB CTAS : {raw_seconds:6.2f}s  {ROWS / raw_seconds:12,.0f} rows/s")
    print(
        f"xoelt stage+load: {xo_seconds:6.2f}s  {ROWS / xo_seconds:12,.0f} rows/s  "
        f"(stage {item.seconds['stage']:.3f}s, load {item.seconds['load']:.2f}s)"
    )
    print(f"ratio xoelt/raw : {xo_seconds / raw_seconds:.2f}x  (target <= 1.3x)")
    figures.add(
        f"stage+load {ROWS / 1e6:g} M rows (DuckDB)",
        "xoelt / raw CTAS",
        xo_seconds / raw_seconds,
        "x",
        "<= 1.3",
    )
    figures.add(
        f"stage+load {ROWS / 1e6:g} M rows (DuckDB)", "xoelt rows/s", ROWS / xo_seconds, "rows/s"
    )
