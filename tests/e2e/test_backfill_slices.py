"""``xoelt backfill --slice I/N`` as an Indexed Job's pod runs it, on the embedded target."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.e2e.conftest import REPO, Project

PIPE = "slices/gladly_snapshots"


def snapshot_pipeline(project: Project) -> None:
    """The demo without its historical source: windows that may run in any order."""
    doc = yaml.safe_load((REPO / "pipelines" / "demo" / "gladly_demo.yaml").read_text())
    doc["dag"]["domain"], doc["dag"]["pipeline_name"] = "slices", "gladly_snapshots"
    del doc["sources"]["agents"]
    path: Path = project.root / "pipelines" / "slices" / "gladly_snapshots.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def run(project: Project, *args: str, rows: dict[str, int] | None = None) -> list[tuple[str, str]]:
    """(window date, status) of each window the backfill took; rows loaded noted in ``rows``."""
    proc = project.xoelt("backfill", PIPE, "--start", "2026-11-03", "--end", "2026-11-05",
                         "--format", "json", *args, check=True)  # fmt: skip
    windows = json.loads(proc.stdout)
    for w in windows:
        if rows is not None and w["status"] == "done":
            rows[w["window_start"][:10]] = w["rows_loaded"]
    return [(w["window_start"][:10], w["status"]) for w in windows]


def test_each_slice_runs_its_windows_and_a_rerun_skips_them(project: Project) -> None:
    project.publish_demo_files()
    snapshot_pipeline(project)
    loaded: dict[str, int] = {}
    # three windows (11-02, 11-03, 11-04): slice 0/2 has the first and third, 1/2 the second
    assert run(project, "--slice", "0/2", rows=loaded) == [
        ("2026-11-02", "done"),
        ("2026-11-04", "done"),
    ]
    assert run(project, "--slice", "0/2") == [("2026-11-02", "skipped"), ("2026-11-04", "skipped")]
    assert run(project, "--slice", "1/2", rows=loaded) == [("2026-11-03", "done")]
    # the slices share the ledger with a plain backfill: everything is done
    assert [s for _, s in run(project)] == ["skipped"] * 3
    assert run(project, "--slice", "1/2", "--force") == [("2026-11-03", "done")]
    # every window's rows in silver once (full_refresh: one partition per window, replaced)
    status = json.loads(project.xoelt("status", PIPE, "--format", "json", check=True).stdout)
    silver = sum(t["rows"] for t in status["tables"] if t["layer"] == "silver")
    assert sorted(loaded) == ["2026-11-02", "2026-11-03", "2026-11-04"]
    assert all(n > 0 for n in loaded.values()) and silver == sum(loaded.values())


def test_historical_pipeline_runs_only_as_one_slice(project: Project) -> None:
    project.publish_demo_files()
    args = ["backfill", "demo/gladly_demo", "--start", "2026-11-03", "--end", "2026-11-03"]
    proc = project.xoelt(*args, "--slice", "0/2")
    assert proc.returncode == 2
    assert "historical source(s) agents whose windows must load in order" in proc.stderr
    done = project.xoelt(*args, "--slice", "0/1", "--format", "json", check=True)
    assert [w["status"] for w in json.loads(done.stdout)] == ["done"]


def test_bad_slice_values_exit_2(project: Project) -> None:
    snapshot_pipeline(project)
    base = ["backfill", PIPE, "--start", "2026-11-03", "--end", "2026-11-05"]
    for bad in ("2/2", "x", "0/0", "1-2"):
        proc = project.xoelt(*base, "--slice", bad)
        assert proc.returncode == 2, (bad, proc.stderr)
        assert proc.stderr.strip() == (
            f"error: --slice {bad!r} is not INDEX/COUNT with 0 <= INDEX < COUNT (e.g. 0/4)"
        )
    proc = project.xoelt(*base, "--slices", "3")
    assert proc.returncode == 2 and "--slices only go with --emit-k8s-job" in proc.stderr
