"""Benchmark: per-window overhead of a 90-day demo backfill on the embedded target (DuckDB).

The demo pipeline (``demo/gladly_demo``) over ``DAYS`` run dates: the demo's three days of
landing files (``pipelines/demo/data``, made by ``scripts/demo_data.py``, which publishes
only those three days) are published again under every window's date, in turn. Each
window's wall time is the wall time of the backfill divided by its windows (everything the
backfill does, planning and ledger checks included); the stages' own time is what each
window's RunReport says its stages took (``seconds`` per source and stage, plus
``gold_seconds``); the overhead is the difference: opening and migrating the warehouse,
locks, ledger rows, alerts and metrics, the Runtime — what is not moving data.

The measurement runs in a fresh process (run as a module it prints one JSON line of
figures: ``python -m tests.benchmarks.test_backfill_overhead 90``). With
``XOELT_BENCH_BASE=<commit>`` it also runs over that commit's ``src/`` (``git archive`` into
a temporary directory, on ``PYTHONPATH``), printed beside this checkout's. Never asserted on
time (``make bench`` only)::

    XOELT_BENCH_BASE=$(git rev-parse HEAD~) make bench

``XOELT_BENCH_DAYS`` changes the number of windows (default 90).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks.conftest import Figures

REPO = Path(__file__).resolve().parents[2]
PIPE = "demo/gladly_demo"
SOURCES = ("contact_timestamps", "work_sessions", "agents")
FIRST_RUN = date(2026, 11, 3)  # run date of the first window (window 2026-11-02)
DAYS = int(os.environ.get("XOELT_BENCH_DAYS", "90"))


def publish(home: Path, days: int) -> None:
    """The demo's landing files for ``days`` windows from 2026-11-02, cycling its 3 days."""
    from xoelt.storage.local import LocalObjectStore

    store = LocalObjectStore(home / "objects")
    data = REPO / "pipelines" / "demo" / "data" / "gladly"
    demo_days = sorted(p.name for p in (data / "agents").iterdir())
    for i in range(days):
        window = FIRST_RUN - timedelta(days=1) + timedelta(days=i)
        for source in SOURCES:
            for path in sorted((data / source / demo_days[i % len(demo_days)]).glob("*.csv")):
                store.put_file("xoelt-landing", f"gladly/{source}/{window}/{path.name}", path)


def measure(days: int) -> dict[str, Any]:
    """Backfill ``days`` windows in a fresh project directory; the figures as a dict."""
    import xoelt.backfill as bf

    work = Path(tempfile.mkdtemp(prefix="xoelt-bench-backfill-"))
    cwd = Path.cwd()
    try:
        shutil.copytree(REPO / "pipelines" / "demo", work / "pipelines" / "demo")
        shutil.copytree(REPO / "sql", work / "sql")
        os.environ["XOELT_HOME"] = str(work / "home")
        for name in ("XOELT_TARGET", "XOELT_TARGETS", "XOELT_PIPELINES", "XOELT_SQL"):
            os.environ.pop(name, None)
        os.chdir(work)
        publish(work / "home", days)
        windows: list[tuple[float, Any]] = []
        real = bf.execute

        def timed(plan: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            report = real(plan, *args, **kwargs)
            windows.append((time.perf_counter() - t0, report))
            return report

        bf.execute = timed  # ty: ignore[invalid-assignment]
        try:
            t0 = time.perf_counter()
            plans = bf.plan_windows(PIPE, FIRST_RUN, FIRST_RUN + timedelta(days=days - 1), None)
            result = bf.backfill(plans)
            total = time.perf_counter() - t0
        finally:
            bf.execute = real
        statuses = sorted({o.status for o in result.outcomes})
        stages = [
            sum(sum(s.seconds.values()) for s in r.sources) + (r.gold_seconds or 0.0)
            for _, r in windows
        ]
        per_window = total / len(plans)
        return {
            "windows": len(plans),
            "statuses": statuses,
            "total_wall": round(total, 3),
            "wall_per_window": round(per_window, 4),
            "execute_wall_median": round(statistics.median(w for w, _ in windows), 4),
            "stages_per_window": round(statistics.fmean(stages), 4),
            "overhead_per_window": round(per_window - statistics.fmean(stages), 4),
        }
    finally:
        os.chdir(cwd)
        shutil.rmtree(work, ignore_errors=True)


def render(label: str, m: dict[str, Any]) -> str:
    """One line of the side-by-side table, milliseconds per window."""
    return (
        f"{label:<22} {m['windows']:>4} windows  total {m['total_wall']:7.2f}s  "
        f"wall/window {m['wall_per_window'] * 1000:6.0f} ms  "
        f"stages/window {m['stages_per_window'] * 1000:6.0f} ms  "
        f"overhead/window {m['overhead_per_window'] * 1000:6.0f} ms  "
        f"(execute median {m['execute_wall_median'] * 1000:.0f} ms; {','.join(m['statuses'])})"
    )


def run_measure(src: Path | None) -> dict[str, Any]:
    """The measurement in a fresh process (over ``src`` if given, else this checkout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XOELT_")}
    env["PYTHONPATH"] = os.pathsep.join([*([str(src)] if src else []), str(REPO)])
    proc = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.test_backfill_overhead", str(DAYS)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def base_src(commit: str, into: Path) -> Path:
    """``src/`` of ``commit``, unpacked under ``into`` and compiled (as ``make install`` does)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "base.tar"
    subprocess.run(
        ["git", "archive", "--format=tar", "-o", str(archive), commit, "src"], cwd=REPO, check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(into / "src")], check=True)
    return into / "src"


@pytest.mark.bench
def test_backfill_overhead_per_window(tmp_path: Path, figures: Figures) -> None:
    rows = []
    base = os.environ.get("XOELT_BENCH_BASE")
    if base:
        rows.append((f"base {base[:10]}", run_measure(base_src(base, tmp_path))))
    after = run_measure(None)
    rows.append(("this checkout", after))
    print(f"\nbackfill of demo/gladly_demo over {DAYS} windows, embedded target (DuckDB)")
    for label, m in rows:
        print(render(label, m))
        figures.add(
            f"backfill, {DAYS} windows ({label})",
            "overhead per window",
            float(m["overhead_per_window"]) * 1000,
            "ms",
        )
    assert after["statuses"] == ["done"]


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else DAYS)))
