"""The CLI as a user runs it: validate, plan, each stage alone, run, and bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb
import pytest

from tests.e2e.conftest import Project

PIPE = "demo/gladly_demo"


def test_validate_and_plan(project: Project) -> None:
    proc = project.xoelt("validate", check=True)
    assert "ok     pipelines/demo/gladly_demo.yaml" in proc.stdout
    plan = json.loads(
        project.xoelt("plan", PIPE, "--date", "2026-11-03", "--format", "json", check=True).stdout
    )
    assert plan["pipeline"] == PIPE
    assert plan["window"]["start"] == "2026-11-02T00:00:00-05:00"
    assert plan["window"]["end"] == "2026-11-03T00:00:00-05:00"
    src = {s["name"]: s for s in plan["sources"]}
    ct = src["contact_timestamps"]
    assert ct["source_type"] == "s3_upload" and ct["load_strategy"] == "full_refresh"
    assert ct["ingest_key"].endswith(
        "ingest/demo/gladly_demo/contact_timestamps/2026-11-02/contact_timestamps.part-00000.csv"
    )
    assert "/full_refresh/2026-11-02/" in ct["stage_key"]
    assert ct["bronze_table"] == "DEMO_DB.BRONZE.GLADLY_CONTACT_TIMESTAMPS"
    assert any("read_csv" in s for s in ct["sql"]["load"])
    assert any(s.startswith("DELETE FROM") for s in ct["sql"]["transform"])
    gold = [g["name"] for g in plan["gold"]]
    assert sorted(gold) == ["agg_agent_daily", "dim_agents", "fct_contacts", "rpt_agent_dashboard"]
    assert (
        gold.index("fct_contacts")
        < gold.index("agg_agent_daily")
        < gold.index("rpt_agent_dashboard")
    )
    text = project.xoelt("plan", "gladly_demo", "--date", "2026-11-03", check=True).stdout
    assert "2026-11-02T00:00:00-05:00" in text and "GLADLY_WORK_SESSIONS" in text
    assert not project.home.exists(), "plan must not write anything"


def test_plan_imports_no_heavy_modules(project: Project) -> None:
    code = (
        "import sys\n"
        "from xoelt.cli import cli\n"
        "try:\n"
        f"    cli(['plan', '{PIPE}', '--date', '2026-11-03', '--format', 'json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('duckdb', 'boto3', 'snowflake', 'httpx', 'google.auth', 'structlog', 'prometheus_client') if m in sys.modules)\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=project.root, capture_output=True, text=True
    )
    assert "HEAVY []" in proc.stderr, proc.stderr


def test_each_stage_alone_then_resume(project: Project) -> None:
    project.publish_demo_files()
    args = ["--date", "2026-11-03", "--format", "json"]
    ex = json.loads(project.xoelt("extract", PIPE, *args, check=True).stdout)
    assert {s["name"]: s["rows"]["extract"] for s in ex["sources"]} == {
        "contact_timestamps": 135,
        "work_sessions": 45,
        "agents": 5,
    }
    # load before stage: a clear error naming stage, source and window, exit 1
    early = project.xoelt("load", PIPE, "--date", "2026-11-03", "--source", "work_sessions")
    assert early.returncode == 1
    assert (
        early.stderr.strip()
        .splitlines()[-1]
        .startswith("error: load failed source=work_sessions window=[2026-11-02")
    )
    assert "Traceback" not in early.stderr
    project.xoelt("stage", PIPE, *args, check=True)
    loaded = json.loads(project.xoelt("load", PIPE, *args, check=True).stdout)
    assert {s["name"]: s["rows"]["load"] for s in loaded["sources"]} == {
        "contact_timestamps": 135,
        "work_sessions": 45,
        "agents": 5,
    }
    tr = json.loads(project.xoelt("transform", PIPE, *args, check=True).stdout)
    assert tr["gold"] == {
        "fct_contacts": 45,
        "dim_agents": 5,
        "agg_agent_daily": 5,
        "rpt_agent_dashboard": 5,
    }
    status = json.loads(project.xoelt("status", PIPE, "--format", "json", check=True).stdout)
    assert {t["table"]: t["rows"] for t in status["tables"]}[
        "DEMO_DB.SILVER.CONTACT_TIMESTAMPS"
    ] == 135


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every bronze/silver/gold table, minus run metadata, in a stable order."""
    con = duckdb.connect(str(db), read_only=True)
    out = {}
    tables = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema IN ('BRONZE', 'SILVER', 'GOLD') ORDER BY 1, 2"
    ).fetchall()
    for schema, table in tables:
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                "ORDER BY ordinal_position",
                [schema, table],
            ).fetchall()
            if r[0] not in ("_XO_RUN_ID", "_XO_LOADED_AT")
        ]
        select = ", ".join(f'"{c}"' for c in cols)
        query = f'SELECT {select} FROM "{schema}"."{table}" ORDER BY ALL'
        out[f"{schema}.{table}"] = [tuple(cols), *con.execute(query).fetchall()]
    con.close()
    return out


def test_rerun_is_identical(project: Project) -> None:
    project.publish_demo_files()
    db = project.home / "warehouse" / "DEMO_DB.duckdb"
    for day in ("2026-11-03", "2026-11-04", "2026-11-05"):
        project.xoelt("run", PIPE, "--date", day, check=True)
    first = snapshot(db)
    assert len(first["SILVER.CONTACT_TIMESTAMPS"]) - 1 == 135 + 138 + 111
    project.xoelt("run", PIPE, "--date", "2026-11-04", check=True)
    project.xoelt("run", PIPE, "--date", "2026-11-05", check=True)
    assert snapshot(db) == first
    out = project.xoelt("run", PIPE, "--date", "2026-11-05", check=True).stdout
    assert "DEMO_DB.duckdb" in out and "rpt_agent_dashboard" in out


def test_failed_extract_exits_1_and_writes_nothing(project: Project) -> None:
    proc = project.xoelt("run", PIPE, "--date", "2026-11-03")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "error: extract failed source=contact_timestamps window=[2026-11-02T00:00:00-05:00"
    )
    assert "no files matching" in last
    ingest = project.home / "objects" / "xoelt-ingest"
    assert not ingest.exists() or not any(p.is_file() for p in ingest.rglob("*"))


BAD_INPUTS = {
    "missing file": (None, "file not found"),
    "yaml syntax": ("  domain: demo\n", "  domain: [demo\n", "YAML syntax error"),
    "unknown key": (
        "    load_strategy: full_refresh\n",
        "    load_stratgy: full_refresh\n",
        "did you mean 'load_strategy'",
    ),
    "unknown source_type": (
        "source_type: s3_upload",
        "source_type: s4_upload",
        "unknown source_type 's4_upload'",
    ),
    "invalid cron": (
        'schedule: "50 6 * * *"',
        'schedule: "50 25 * * *"',
        "'25': the hour field takes 0-23",
    ),
    # croniter takes these; Kubernetes (robfig/cron: day of week 0-6, no wrapping) does not
    "cron sunday as 7": (
        'schedule: "50 6 * * *"',
        'schedule: "0 6 * * 7"',
        "'7': the day of week field takes 0-6 (Sunday is 0; 7 is not accepted)",
    ),
    "cron range to 7": (
        'schedule: "50 6 * * *"',
        'schedule: "0 6 * * 5-7"',
        "'5-7': the day of week field takes 0-6",
    ),
    "cron wrapping range": (
        'schedule: "50 6 * * *"',
        'schedule: "0 6 * * MON-SUN"',
        "'MON-SUN': a range cannot run backwards or wrap around",
    ),
    "unknown timezone": (
        'timezone: "America/New_York"',
        'timezone: "Mars/Olympus"',
        "unknown time zone 'Mars/Olympus'",
    ),
    "sql injection": (
        "target_table: GLADLY_WORK_SESSIONS",
        'target_table: "X; DROP TABLE Y"',
        "not a valid identifier",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_and_writes_nothing(project: Project, case: str) -> None:
    spec = BAD_INPUTS[case]
    path = project.root / "pipelines" / "demo" / "gladly_demo.yaml"
    if spec[0] is None:
        target = "pipelines/demo/nope.yaml"
    else:
        old, new, _ = spec  # type: ignore[misc]
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new, 1))
        target = str(path.relative_to(project.root))
    proc = project.xoelt("run", target, "--date", "2026-11-03")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert spec[-1] in lines[0]
    if spec[0] is not None:
        assert "gladly_demo.yaml:" in lines[0]  # names the file and line
    assert not project.home.exists()


def test_bad_date_exits_2(project: Project) -> None:
    proc = project.xoelt("run", PIPE, "--date", "2026-02-30")
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "error: --date '2026-02-30' is not a date (YYYY-MM-DD) or a datetime (YYYY-MM-DDTHH:MM)"
    )
    assert not project.home.exists()


def test_unknown_source_and_pipeline(project: Project) -> None:
    proc = project.xoelt("run", PIPE, "--date", "2026-11-03", "--source", "nope")
    assert proc.returncode == 2 and "valid: contact_timestamps, work_sessions" in proc.stderr
    proc = project.xoelt("plan", "gladly_dem", "--date", "2026-11-03")
    assert proc.returncode == 2 and "did you mean" in proc.stderr


def test_validate_reports_every_problem(project: Project, tmp_path: Path) -> None:
    bad = project.root / "pipelines" / "demo" / "broken.yaml"
    text = (project.root / "pipelines" / "demo" / "gladly_demo.yaml").read_text()
    bad.write_text(
        text.replace("load_strategy: full_refresh", "load_strategy: sometimes").replace(
            "schema: BRONZE", "schemaa: BRONZE"
        )
    )
    proc = project.xoelt("validate")
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 3  # two bad strategies and one unknown key; gladly_demo.yaml is fine
    assert "ok     pipelines/demo/gladly_demo.yaml" in proc.stdout


def test_scd2_history_is_the_same_in_any_load_order(project: Project, tmp_path: Path) -> None:
    project.publish_demo_files()
    project.xoelt("backfill", PIPE, "--start", "2026-11-03", "--end", "2026-11-05", check=True)
    in_order = snapshot(project.home / "warehouse" / "DEMO_DB.duckdb")
    other = Project(project.root, tmp_path / "home-shuffled")
    other.publish_demo_files()
    for day in ("2026-11-05", "2026-11-03", "2026-11-04", "2026-11-03"):
        other.xoelt("run", PIPE, "--date", day, check=True)
    shuffled = snapshot(other.home / "warehouse" / "DEMO_DB.duckdb")
    assert shuffled["SILVER.AGENTS"] == in_order["SILVER.AGENTS"]
    assert shuffled["GOLD.DIM_AGENTS"] == in_order["GOLD.DIM_AGENTS"]
    history = {(r[0], r[3]) for r in in_order["SILVER.AGENTS"][1:]}  # (agent, team)
    assert ("ag_02", "Sales") in history and ("ag_02", "Support") in history
    header = in_order["SILVER.AGENTS"][0]
    rows = [dict(zip(header, r, strict=True)) for r in in_order["SILVER.AGENTS"][1:]]
    gone = [r for r in rows if r["AGENT_ID"] == "ag_04"]
    assert len(gone) == 1 and gone[0]["IS_CURRENT"] is False
    assert gone[0]["VALID_TO"].isoformat() == "2026-11-04T05:00:00+00:00"  # deleted at window 3
    assert sum(r["IS_CURRENT"] for r in rows) == 5


def test_an_unmapped_storage_error_is_one_line_and_exit_1(project: Project) -> None:
    project.publish_demo_files()
    ingest = project.home / "objects" / "xoelt-ingest"
    ingest.write_text("a file where the ingest bucket's directory should be")
    proc = project.xoelt("extract", PIPE, "--date", "2026-11-03")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(
        "error: extract failed source=contact_timestamps window=[2026-11-02"
    )
    assert "Traceback" not in proc.stderr
    debug = project.xoelt("--debug", "extract", PIPE, "--date", "2026-11-03")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_objects_directory_being_a_file_is_one_line_not_a_traceback(project: Project) -> None:
    """Reproduction from the seams issue: the lock and the store are inside the mapped zone."""
    project.home.mkdir(parents=True)
    (project.home / "objects").write_text("a file where the store's root should be")
    proc = project.xoelt("extract", PIPE, "--date", "2026-11-04")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "NotADirectoryError" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith("error: extract failed source=contact_timestamps window=[2026-11-03")
    debug = project.xoelt("--debug", "extract", PIPE, "--date", "2026-11-04")
    assert "Traceback" in debug.stderr and "NotADirectoryError" in debug.stderr  # the cause


def test_without_date_the_latest_scheduled_window_runs(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from xoelt.core import make_plan

    monkeypatch.chdir(project.root)
    ny = ZoneInfo("America/New_York")
    # scheduled 06:50; the pod starts late, after local midnight: still yesterday's run
    late = make_plan(PIPE, None, now=datetime(2026, 11, 4, 0, 20, tzinfo=ny))
    assert late.window.start.isoformat() == "2026-11-02T00:00:00-05:00"
    on_time = make_plan(PIPE, None, now=datetime(2026, 11, 3, 6, 55, tzinfo=ny))
    assert on_time.window.start.isoformat() == "2026-11-02T00:00:00-05:00"
    early = make_plan(PIPE, None, now=datetime(2026, 11, 3, 6, 49, tzinfo=ny))
    assert early.window.start.isoformat() == "2026-11-01T00:00:00-04:00"


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("0 6 * * 7", "'7': the day of week field takes 0-6 (Sunday is 0; 7 is not accepted)"),
        ("0 6 * * 5-7", "'5-7': the day of week field takes 0-6"),
        ("0 6 * * MON-SUN", "'MON-SUN': a range cannot run backwards or wrap around"),
    ],
)
def test_validate_and_helm_values_refuse_what_kubernetes_refuses(
    project: Project, schedule: str, reason: str
) -> None:
    path = project.root / "pipelines" / "demo" / "gladly_demo.yaml"
    path.write_text(path.read_text().replace('schedule: "50 6 * * *"', f'schedule: "{schedule}"'))
    for command in ("validate", "helm-values"):
        proc = project.xoelt(command)
        assert proc.returncode == 2, (command, proc.stderr)
        (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("error")]
        assert "pipelines/demo/gladly_demo.yaml:7 dag.schedule: " in line, (command, line)
        assert reason in line, (command, line)
        assert "pipelines:" not in proc.stdout


def test_help_of_every_command_exits_0(project: Project) -> None:
    """click's own exits (``--help``, ``--version``) are not errors of ours."""
    from xoelt.cli import cli

    commands = sorted(cli.commands)
    assert "run" in commands
    for args in (["--help"], ["--version"], *([c, "--help"] for c in commands)):
        proc = project.xoelt(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "error" not in proc.stderr, (args, proc.stderr)
        assert proc.stdout.strip(), args
