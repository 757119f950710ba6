"""SIGTERM (what Kubernetes sends) and SIGINT (Ctrl-C) during a run: the statement in flight
is interrupted and rolled back, the lock released, an ``interrupted`` ledger row written, the
exit code 128 + signal; a rerun then converges to a clean run's state.

A bulk contact_timestamps file (``ROWS`` rows) keeps the load busy long enough for the
signal, sent when the ``staged`` log line of that source appears, to land inside it.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from tests.e2e.conftest import XOELT, Project
from tests.reliability.report import record

PIPE = "demo/gladly_demo"
ROWS = 300_000
HEADER = [
    "Timestamp", "Event Type", "Contact ID", "Conversation ID", "Customer ID", "Channel",
    "Direction", "Inbox ID", "Inbox Name", "Agent ID", "Agent Name",
]  # fmt: skip


def bulk_file(project: Project, day: str) -> None:
    folder = project.home / "objects" / "xoelt-landing" / "gladly" / "contact_timestamps" / day
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "bulk.csv").open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        for i in range(ROWS):
            out.writerow(
                [f"{day}T12:{i % 60:02d}:00.000Z", "CONTACT_CREATED", f"ct_{i}", f"cv_{i}",
                 f"cu_{i % 977}", "SMS", "INBOUND", "ib_sales", "Sales", "ag_01", "Ann"]
            )  # fmt: skip


def state(project: Project) -> dict[str, int | None]:
    proc = project.xoelt("status", PIPE, "--format", "json", check=True)
    return {t["table"]: t["rows"] for t in json.loads(proc.stdout)["tables"]}


def ledger_rows(project: Project) -> list[tuple[str, str, str, str]]:
    path = project.home / "warehouse" / "DEMO_DB.duckdb"
    with duckdb.connect(str(path), read_only=True) as db:
        return db.execute(
            'SELECT "RUN_ID", "SOURCE", "STAGE", "STATUS" FROM "XOELT"."RUN_LEDGER" '
            'ORDER BY "FINISHED_AT"'
        ).fetchall()


def run_until(project: Project, date: str, sig: signal.Signals) -> tuple[int, str, float]:
    """Start ``xoelt run``; send ``sig`` when contact_timestamps is staged; (rc, stderr, s)."""
    env = {"XOELT_HOME": str(project.home), "PYTHONUNBUFFERED": "1"}
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("XOELT_")} | env
    proc = subprocess.Popen(
        [*XOELT, "--log-format", "json", "run", PIPE, "--date", date],
        cwd=project.root,
        env=full,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    lines = []
    sent_at = 0.0
    for line in proc.stderr:
        lines.append(line)
        if not sent_at and '"staged"' in line and '"contact_timestamps"' in line:
            proc.send_signal(sig)
            sent_at = time.monotonic()
    rc = proc.wait(timeout=120)
    assert sent_at, "".join(lines)
    return rc, "".join(lines), time.monotonic() - sent_at


@pytest.fixture(scope="module")
def clean_state(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int | None]:
    """The tables after an uninterrupted run of both dates (the state reruns converge to)."""
    import shutil

    from tests.e2e.conftest import REPO

    base = tmp_path_factory.mktemp("clean")
    root = base / "project"
    shutil.copytree(REPO / "pipelines" / "demo", root / "pipelines" / "demo",
                    ignore=shutil.ignore_patterns("data"))  # fmt: skip
    shutil.copytree(REPO / "sql", root / "sql")
    clean = Project(root, base / "home")
    clean.publish_demo_files()
    bulk_file(clean, "2026-11-03")
    for day in ("2026-11-03", "2026-11-04"):
        clean.xoelt("run", PIPE, "--date", day, check=True)
    return state(clean)


@pytest.mark.chaos
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_run_is_recorded_released_and_converges(
    project: Project, sig: signal.Signals, clean_state: dict[str, int | None]
) -> None:
    ok = False
    try:
        project.publish_demo_files()
        bulk_file(project, "2026-11-03")
        project.xoelt("run", PIPE, "--date", "2026-11-03", check=True)
        before = state(project)

        rc, stderr, seconds = run_until(project, "2026-11-04", sig)

        assert rc == 128 + sig.value, stderr
        last = stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: interrupted by {sig.name} during "), last
        assert "source=" in last and "window=" in last, last
        assert "Traceback" not in stderr
        assert seconds < 30  # well inside the chart's terminationGracePeriodSeconds (60)
        stopped = [r for r in ledger_rows(project) if r[3] == "interrupted"]
        assert len(stopped) == 1, stopped
        assert f"{stopped[0][2]} source={stopped[0][1]} " in last
        # Nothing half-written: each table holds 2026-11-03's rows or the new window's, whole.
        now = state(project)
        assert all(now[t] in (before[t], clean_state[t]) for t in now), (before, now, clean_state)
        locks = project.home / "objects" / "xoelt-stage" / "locks"
        assert not locks.exists() or not [p for p in locks.rglob("*") if p.is_file()]

        project.xoelt("run", PIPE, "--date", "2026-11-04", check=True)
        assert state(project) == clean_state
        ok = True
    finally:
        record("signal", f"{sig.name} when contact_timestamps is staged", ok)


def test_interrupts_module_maps_signals_to_exit_codes() -> None:
    from xoelt import interrupts

    stop = interrupts.Interrupted(signal.SIGTERM, "load source=a window=w")
    assert (stop.exit_code, str(stop)) == (
        143,
        "interrupted by SIGTERM during load source=a window=w",
    )
    assert interrupts.Interrupted(signal.SIGINT).exit_code == 130
    assert not isinstance(stop, Exception)  # never swallowed by an `except Exception`
    assert sys.platform != "win32"
