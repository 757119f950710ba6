"""Benchmark: a paginated API extraction of 100k and 1M rows, memory and speed.

Runs the real ``xoelt extract`` (``sprout_social_api`` source, ``CsvSink``, publish to the
local ingest store) in a fresh subprocess per size, against the fake Sprout server
(``fake_sprout_server.py``) in its own process on 127.0.0.1. Prints, per size: wall time,
rows/s of CSV written, rows per CPU-second of the extract process, the fake server's own
CPU seconds (shown apart, never counted against the extractor), and the extract process's
peak RSS (each process's own ``os.wait4`` rusage, so neither the server nor pytest is
counted); then the 1M/100k RSS ratio and the marginal rows/s (the difference between the
two runs, which cancels interpreter start-up and imports) and the same per CPU-second of
the extract process (which other load on the machine does not skew).

Targets: 1M peak RSS within 1.2x of 100k; >= 100,000 rows/s. Printed, never asserted (only
the row counts are). Pages of 100 rows are the documented maximum; a second pass with the
server answering 1,000 rows per page, *beyond the documented max*, is labelled as such and
shows how much of the time is per request rather than per row.

    .venv/bin/pytest tests/benchmarks/test_extract_paginated.py -m bench -s
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.benchmarks.conftest import Figures
from tests.benchmarks.test_backfill_overhead import base_src

HERE = Path(__file__).resolve().parent
SERVER = HERE / "fake_sprout_server.py"
TOKEN, CUSTOMER = "bench-token", "1001"
FIELDS = [
    "guid",
    "created_time",
    "network",
    "post_type",
    "text",
    "perma_link",
    "from.name",
    "from",
    "internal.tags.id",
    "internal.sent_by.email",
    "case_id",
    "is_reply",
]
SIZES = (100_000, 1_000_000)


def _pipeline(root: Path, base_url: str, fmt: str | None) -> None:
    """The benchmark pipeline; ``fmt`` None leaves ``output:`` out (a commit before parts)."""
    doc = {
        "dag": {
            "domain": "bench",
            "pipeline_name": "sprout_bench",
            "schedule": "0 6 * * *",
            "time_window": {
                "refresh_type": "daily",
                "lag": {"days": 1},
                "timezone": "America/New_York",
            },
        },
        "globals": {"snowflake": {"database": "BENCH_DB"}},
        "sources": {
            "messages": {
                "source_type": "sprout_social_api",
                "load_strategy": "full_refresh",
                "extractor": {
                    "base_url": base_url,
                    "fields": FIELDS,
                    "limit": 100,
                    # Lifted for a local server only; never above the contract in production.
                    "rate_limit_per_minute": 10_000_000,
                    "retry": {"timeout_seconds": 30},
                },
                "snowflake": {"target_table": "SPROUT_MESSAGES"},
            }
        },
    }
    if fmt is not None:
        doc["sources"]["messages"]["output"] = {"format": fmt}
    path = root / "pipelines" / "bench" / "sprout_bench.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _server(rows: int, page_size: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--rows", str(rows), "--page-size", str(page_size),
         "--token", TOKEN, "--customer", CUSTOMER],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("READY "), line
    return proc, f"http://127.0.0.1:{line.split()[1]}"


def _extract(
    root: Path, rows: int, page_size: int, fmt: str | None, transport: str, src: Path | None = None
) -> dict[str, Any]:
    """One extraction in a fresh process: its wall time, peak RSS and manifest. ``src`` runs
    another commit's ``src/`` (on ``PYTHONPATH``) instead of this checkout's."""
    server, url = _server(rows, page_size)
    tag = f"{rows}-{page_size}-{fmt}-{transport}-{'base' if src else 'this'}"
    home, log = root / f"home-{tag}", root / f"extract-{tag}.log"
    shutil.rmtree(home, ignore_errors=True)
    try:
        _pipeline(root, url, fmt)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XOELT_", "SPROUT_"))}
        env.update(
            XOELT_HOME=str(home),
            XOELT_PIPELINES=str(root / "pipelines"),
            SPROUT_API_TOKEN=TOKEN,
            SPROUT_CUSTOMER_ID=CUSTOMER,
            XOELT_HTTP_TRANSPORT=transport,
        )
        if src is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
        argv = [sys.executable, "-m", "xoelt", "--log-format", "json"]
        argv += ["extract", "bench/sprout_bench", "--date", "2026-11-03"]
        with log.open("wb") as out:
            started = time.perf_counter()
            proc = subprocess.Popen(argv, cwd=root, env=env, stdout=out, stderr=out)
            # wait4: this child's own rusage (RUSAGE_CHILDREN would also count the server).
            _, status, usage = os.wait4(proc.pid, 0)
            elapsed = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        server.terminate()
        _, status, served = os.wait4(server.pid, 0)  # the server's own CPU, reported apart
        server.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, log.read_text()[-3000:]
    [manifest] = home.rglob("_manifest.json")
    body = json.loads(manifest.read_text())
    parts = body.get("parts") or [{"key": body["key"]}]  # one file, before parts
    return {
        "rows": body["rows"],
        "bytes": body["bytes"],
        "seconds": elapsed,
        "rss_mib": usage.ru_maxrss / 1024,  # Linux: KiB
        "cpu": usage.ru_utime + usage.ru_stime,
        "server_cpu": served.ru_utime + served.ru_stime,
        "parts": [manifest.parent / Path(p["key"]).name for p in parts],
    }


def _count_lines(paths: list[Path]) -> int:
    """Physical lines (no field here holds a newline) of every part: headers + rows."""
    total = 0
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return total


def _marginal(small: dict[str, Any], big: dict[str, Any], per: str = "seconds") -> float:
    """Rows per second (``per="cpu"``: per CPU-second) of the big run beyond the small one:
    the difference cancels interpreter start-up and imports."""
    return (big["rows"] - small["rows"]) / (big[per] - small[per])


def _report(label: str, runs: dict[int, dict[str, Any]], figures: Figures) -> None:
    print(f"\n== {label}")
    print(
        f"{'rows':>10} {'wall s':>7} {'cpu s':>6} {'rows/s':>8} {'rows/cpu-s':>10}"
        f" {'server cpu s':>12} {'MiB csv':>8} {'peak RSS MiB':>13}"
    )
    for rows, run in runs.items():
        rate, mib = run["rows"] / run["seconds"], run["bytes"] / 2**20
        print(
            f"{rows:>10,} {run['seconds']:>7.2f} {run['cpu']:>6.2f} {rate:>8,.0f}"
            f" {run['rows'] / run['cpu']:>10,.0f} {run['server_cpu']:>12.2f} {mib:>8.1f}"
            f" {run['rss_mib']:>13.1f}"
        )
    small, big = (runs[n] for n in SIZES)
    ratio = big["rss_mib"] / small["rss_mib"]
    marginal = _marginal(small, big)
    print(f"peak RSS ratio 1M/100k: {ratio:.3f}  (target <= 1.2)")
    per_cpu = _marginal(small, big, "cpu")
    print(f"marginal rows/s (1M run minus 100k run): {marginal:,.0f}  (target >= 100,000)")
    print(
        f"marginal rows per CPU-second of the extract process: {per_cpu:,.0f}  (load-independent)"
    )
    figures.add(f"paginated extract: {label}", "marginal rows/s", marginal, "rows/s", ">= 100,000")
    figures.add(f"paginated extract: {label}", "rows per client CPU-s", per_cpu, "rows/s")
    figures.add(f"paginated extract: {label}", "peak RSS 1M / 100k", ratio, "x", "<= 1.2")


@pytest.mark.bench
@pytest.mark.parametrize(
    ("page_size", "fmt", "transport", "label"),
    [
        (100, "csv", "httpx", "pages of 100, plain CSV, httpx transport (default)"),
        (100, "csv", "stdlib", "pages of 100, plain CSV, stdlib transport (opt-in)"),
        (100, "csv.gz", "httpx", "pages of 100, gzip parts (default output), httpx transport"),
        (1000, "csv", "httpx", "pages of 1,000 (BEYOND the documented max), plain CSV, httpx"),
    ],
)
def test_extract_paginated(
    tmp_path: Path, page_size: int, fmt: str, transport: str, label: str, figures: Figures
) -> None:
    runs = {rows: _extract(tmp_path, rows, page_size, fmt, transport) for rows in SIZES}
    _report(label, runs, figures)
    for rows, run in runs.items():
        assert run["rows"] == rows
        assert _count_lines(run["parts"]) == rows + len(run["parts"])


ISSUE_RATE, ISSUE_TARGET = 74_000, 100_000
"""What the issue measured on its machine ("74 k today") and asked for: a 1.35x speed-up."""


@pytest.mark.bench
def test_extract_paginated_against_the_base_commit(tmp_path: Path, figures: Figures) -> None:
    """Rows/s depend on the machine (the issue's 74 k was measured on another one), so with
    ``XOELT_BENCH_BASE=<commit>`` the base commit's extractor runs beside this checkout's on
    this machine, in alternating rounds (``XOELT_BENCH_ROUNDS``, default 2; medians), at
    pages of 100: the speed-up is what the issue's 74 k -> 100 k asks for (1.35x). Also
    printed: the fake server's own ceiling, rows per CPU-second of its process — one core
    can serve no more than that, whatever the extractor does."""
    base = os.environ.get("XOELT_BENCH_BASE")
    if not base:
        pytest.skip("XOELT_BENCH_BASE=<commit> compares this checkout with that commit")
    src = base_src(base, tmp_path / "base")
    cases: dict[str, tuple[str | None, Path | None]] = {
        f"base {base[:10]} (one plain CSV)": (None, src),
        "this checkout, plain CSV": ("csv", None),
        "this checkout, gzip parts (default)": ("csv.gz", None),
    }
    runs: dict[str, list[dict[int, dict[str, Any]]]] = {label: [] for label in cases}
    for _ in range(int(os.environ.get("XOELT_BENCH_ROUNDS", "2"))):
        for label, (fmt, code) in cases.items():
            run = {n: _extract(tmp_path, n, 100, fmt, "httpx", code) for n in SIZES}
            for n, one in run.items():
                assert one["rows"] == n and _count_lines(one["parts"]) == n + len(one["parts"])
            runs[label].append(run)
    rates = {
        label: statistics.median(_marginal(r[SIZES[0]], r[SIZES[1]]) for r in rs)
        for label, rs in runs.items()
    }
    per_cpu = {
        label: statistics.median(_marginal(r[SIZES[0]], r[SIZES[1]], "cpu") for r in rs)
        for label, rs in runs.items()
    }
    ceiling = min(
        r[SIZES[1]]["rows"] / r[SIZES[1]]["server_cpu"] for rs in runs.values() for r in rs
    )
    base_label = next(iter(cases))
    wanted = ISSUE_TARGET / ISSUE_RATE
    print("\n== pages of 100, base commit vs this checkout, same machine, median of rounds")
    print(f"{'':40} {'marginal rows/s':>16} {'rows/cpu-s':>11} {'vs base':>8}")
    for label in cases:
        ratio = rates[label] / rates[base_label]
        print(f"{label:40} {rates[label]:>16,.0f} {per_cpu[label]:>11,.0f} {ratio:>7.2f}x")
        if label != base_label:
            bench = f"paginated extract vs base: {label}"
            figures.add(bench, "speed-up, marginal rows/s", ratio, "x", f">= {wanted:.2f}")
            ratio_cpu = per_cpu[label] / per_cpu[base_label]
            figures.add(
                bench, "speed-up, rows per client CPU-s", ratio_cpu, "x", f">= {wanted:.2f}"
            )
    print(f"fake server's ceiling: {ceiling:,.0f} rows per CPU-second of its process")
    print(f"target: >= {wanted:.2f}x the base (the issue's {ISSUE_RATE:,} -> {ISSUE_TARGET:,})")
    figures.add(
        "paginated extract: the fake server itself", "rows per server CPU-s", ceiling, "rows/s"
    )
