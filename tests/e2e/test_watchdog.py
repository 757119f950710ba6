"""``xoelt watchdog`` through the CLI, against ledger rows written by the real ledger code on
DuckDB: an on-time window, a late one, a pending one, one that never ran and one whose run
failed; ``watchdog_miss`` alerts reach a webhook for the misses only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import yaml

from tests.e2e.conftest import Project
from tests.fakes.alerts import AlertSink
from tests.fakes.server import serve
from xoelt import ledger
from xoelt.backfill import required_stages
from xoelt.core import make_plan
from xoelt.runtime import Runtime
from xoelt.settings import Settings

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
# pipeline name → (minutes between its last fire time and NOW, what the ledger holds)
CASES = {
    "on_time": (30, "success"),
    "late": (180, "success"),
    "pending": (30, None),
    "never_ran": (180, None),
    "failed": (180, "failed"),
}


def _pipelines(project: Project) -> Settings:
    demo = yaml.safe_load((project.root / "pipelines" / "demo" / "gladly_demo.yaml").read_text())
    for name, (ago, _) in CASES.items():
        fired = NOW - timedelta(minutes=ago)
        data = json.loads(json.dumps(demo))
        data["dag"]["pipeline_name"] = name
        data["dag"]["schedule"] = f"{fired.minute} {fired.hour} * * *"
        data["dag"]["time_window"]["timezone"] = "UTC"
        (project.root / "pipelines" / "demo" / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return Settings(
        home=project.home,
        targets_file=project.root / "targets.yaml",
        pipelines_root=project.root / "pipelines",
        sql_root=project.root / "sql",
    )


def _ledger(settings: Settings) -> None:
    """Each case's run of its latest scheduled window, as ``execute`` records it."""
    for name, (_, outcome) in CASES.items():
        if outcome is None:
            continue
        plan = make_plan(f"demo/{name}", None, settings=settings, now=NOW)
        rows = sorted(required_stages(plan))
        with Runtime(plan, settings) as rt:
            for i, (source, stage) in enumerate(rows):
                status = "failed" if outcome == "failed" and i == len(rows) - 1 else "success"
                ledger.record(
                    rt.warehouse,
                    plan.database,
                    run_id=f"run-{name}",
                    pipeline=plan.name,
                    source=source,
                    stage=stage,
                    window_start=plan.window.start.isoformat(),
                    window_end=plan.window.end.isoformat(),
                    status=status,
                    started_at=NOW,
                    rows=None if status == "failed" else 10,
                    message="load failed: boom" if status == "failed" else "",
                )


def test_watchdog_tells_on_time_late_pending_and_missed_windows(project: Project) -> None:
    settings = _pipelines(project)
    _ledger(settings)
    watched = [f"demo/{name}" for name in CASES]
    now = (NOW + timedelta(minutes=1)).isoformat()
    with serve(AlertSink()) as sink:
        targets = {"local": {"type": "local", "alerts": {"channels": [
            {"type": "webhook", "url": "${HOOK_URL}"},
            {"type": "slack", "url": "${HOOK_URL}", "events": ["run_failed"]},  # not for misses
        ]}}}  # fmt: skip
        (project.root / "targets.yaml").write_text(yaml.safe_dump(targets))
        env = {"HOOK_URL": f"{sink.url}/hook/t0ken"}
        done = project.xoelt("watchdog", *watched, "--now", now, "--format", "json", env=env)
        alerts = sink.bodies("hook")
        table = project.xoelt("watchdog", *watched, "--now", now, "--deadline", "4h", env=env)
        calm = project.xoelt("watchdog", "demo/on_time", "demo/pending", "--now", now, env=env)

    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    status = {w["pipeline"]: w["status"] for w in report["windows"]}
    assert status == {
        "demo/on_time": "ok",
        "demo/late": "late",
        "demo/pending": "pending",
        "demo/never_ran": "missed",
        "demo/failed": "missed",
    }
    assert sorted(report["missed"]) == ["demo/failed", "demo/never_ran"]
    detail = {w["pipeline"]: w["detail"] for w in report["windows"]}
    assert detail["demo/never_ran"] == "no run of this window in the ledger"
    assert detail["demo/failed"].startswith("latest run run-failed failed at ")
    scheduled = {w["pipeline"]: w["scheduled_at"] for w in report["windows"]}
    assert scheduled["demo/late"] == (NOW - timedelta(minutes=180)).isoformat()
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and all("missed" in e for e in errors)

    assert sorted(a["pipeline"] for a in alerts) == ["demo/failed", "demo/never_ran"]
    for a in alerts:
        assert a["event"] == "watchdog_miss" and a["status"] == "missed"
        assert a["scheduled_at"] == scheduled[a["pipeline"]]
        assert a["command"] == f"xoelt run {a['pipeline']} --date {a['scheduled_at'][:10]}"
        assert "no complete run within 2:00:00" in a["error"]

    # with a 4 h deadline the three-hour-old windows are still pending or on time
    assert table.returncode == 0, table.stderr
    rows = {line.split()[1]: line for line in table.stdout.splitlines() if "demo/" in line}
    assert "ok" in rows["demo/late"] and "pending" in rows["demo/never_ran"]
    assert "2 ok, 0 late, 3 pending, 0 missed" in table.stdout
    assert calm.returncode == 0 and "1 ok, 0 late, 1 pending, 0 missed" in calm.stdout


def test_watchdog_refuses_bad_arguments(project: Project) -> None:
    bad = project.xoelt("watchdog", "--deadline", "soon")
    assert bad.returncode == 2 and "--deadline 'soon' is not a duration" in bad.stderr
    naive = project.xoelt("watchdog", "--now", "2026-11-04T09:00")
    assert naive.returncode == 2 and "--now needs a UTC offset" in naive.stderr
