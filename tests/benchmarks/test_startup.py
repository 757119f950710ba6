"""Benchmark: how long ``xoelt plan`` takes from a cold process, with and without bytecode writes.

These machines (and the image) set ``PYTHONDONTWRITEBYTECODE=1``: without bytecode compiled at
install, every start compiles every imported module again. ``make install`` and the Dockerfile
compile it; this measures ``plan``'s median wall time over 10 runs both ways (target: at most
0.3 s each; printed, never asserted) and says whether xoelt's own modules have compiled
bytecode at all.

    .venv/bin/pytest tests/benchmarks/test_startup.py -m bench -s
"""

from __future__ import annotations

import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

import xoelt
from tests.benchmarks.conftest import Figures

REPO = Path(__file__).resolve().parents[2]
RUNS = 10


def plan_seconds(env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + system) seconds of each run; CPU time is what a busy machine
    (other processes on its cores) disturbs least."""
    argv = [sys.executable, "-m", "xoelt", "plan", "demo/gladly_demo", "--date", "2026-11-03"]
    walls, cpus = [], []
    for _ in range(RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, env=env, check=True, capture_output=True, text=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        assert "GLADLY_CONTACT_TIMESTAMPS" in proc.stdout  # it planned, not just started
    return walls, cpus


def missing_bytecode() -> list[str]:
    """xoelt modules with no up-to-date .pyc next to them (not compiled at install)."""
    root = Path(xoelt.__file__).parent
    stale = []
    for source in root.rglob("*.py"):
        cached = Path(importlib.util.cache_from_source(str(source)))
        if not cached.is_file() or cached.stat().st_mtime < source.stat().st_mtime:
            stale.append(str(source.relative_to(root)))
    return stale


@pytest.mark.bench
def test_plan_start_up(tmp_path: Path, figures: Figures) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("XOELT_")}
    stale = missing_bytecode()
    print(f"\nxoelt modules without up-to-date bytecode: {len(stale)} {stale[:5]}")
    if stale:
        print("  (edited since `make install`, or installed without compiling: timings suffer)")
    results = {}
    # An empty PYTHONPYCACHEPREFIX hides every .pyc: the state of an install that compiled
    # nothing, measured under the same load as the others.
    nothing = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(tmp_path / "none")}
    cases: dict[str, dict[str, str]] = {
        "PYTHONDONTWRITEBYTECODE=1": {"PYTHONDONTWRITEBYTECODE": "1"},
        "bytecode writes allowed": {},
        "PYTHONDONTWRITEBYTECODE=1, no bytecode installed (as before)": nothing,
    }
    for label, extra in cases.items():
        env = {k: v for k, v in base.items() if k not in ("PYTHONDONTWRITEBYTECODE",)}
        env.pop("PYTHONPYCACHEPREFIX", None)
        env.update(extra)
        times, cpus = plan_seconds(env)
        results[label] = statistics.median(times)
        print(
            f"xoelt plan, {label}: median {results[label]:.3f} s wall "
            f"(min {min(times):.3f}, max {max(times):.3f}), median {statistics.median(cpus):.3f} s "
            f"CPU, {RUNS} runs; target <= 0.3 s"
        )
        figures.add("xoelt plan start-up", f"median wall, {label}", results[label], "s", "<= 0.3")
