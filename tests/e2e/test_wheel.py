"""The built wheel stands alone: installed into a fresh venv outside the repo, it validates,
plans, runs and reports on the demo copied to a temporary project directory.

Nothing of the repository is visible to it (no ``PYTHONPATH``, another working directory):
pipelines and SQL come from the project directory, the ledger's migrations from the wheel.
Building and installing uses uv and its cache (PyPI is reachable from these machines).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO

pytestmark = pytest.mark.slow

PIPE = "demo/gladly_demo"


def _uv() -> str:
    found = shutil.which("uv") or next(
        (
            str(p)
            for p in (REPO / ".tools" / "bin" / "uv", Path("/work/main/.tools/bin/uv"))
            if p.is_file()
        ),
        None,
    )
    if found is None:
        pytest.skip("uv is not installed (make install bootstraps it into .tools/)")
    return found


def _clean_env(**extra: str) -> dict[str, str]:
    drop = ("XOELT_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


def _sh(
    *args: str, cwd: Path, env: dict[str, str], timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_wheel_runs_the_demo_outside_the_repo(tmp_path: Path) -> None:
    uv = _uv()
    env = _clean_env()
    dist = tmp_path / "dist"
    built = _sh(uv, "build", "--wheel", "--out-dir", str(dist), str(REPO), cwd=tmp_path, env=env)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("xoelt-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert "xoelt/migrations/V001__run_ledger.sql" in zf.namelist()
        for packaged_file in (
            "template.html",
            "assets/chart.umd.min.js",
            "assets/LICENSE.chart.js.md",
        ):
            assert f"xoelt/report/{packaged_file}" in zf.namelist()
    venv = tmp_path / "venv"
    made = _sh(uv, "venv", "--python", sys.executable, str(venv), cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _sh(
        uv, "pip", "install", "--python", str(python), str(wheel), cwd=tmp_path, env=env
    )
    assert installed.returncode == 0, installed.stderr

    project = tmp_path / "project"
    shutil.copytree(REPO / "pipelines" / "demo", project / "pipelines" / "demo")
    shutil.copytree(REPO / "sql", project / "sql")
    home = project / ".xoelt"
    data = project / "pipelines" / "demo" / "data"
    for path in sorted(data.rglob("*.csv")):  # the demo's landing files, as `make demo` drops them
        target = home / "objects" / "xoelt-landing" / path.relative_to(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    xoelt = str(venv / "bin" / "xoelt")
    run_env = _clean_env(XOELT_HOME=str(home))

    def cli(*args: str, home_dir: Path = home) -> subprocess.CompletedProcess[str]:
        return _sh(
            xoelt, *args, cwd=project, env={**run_env, "XOELT_HOME": str(home_dir)}, timeout=180
        )

    where = _sh(str(python), "-c", "import xoelt; print(xoelt.__file__)", cwd=project, env=run_env)
    assert str(venv) in where.stdout, "the test must run the installed package, not the repo"

    validate = cli("validate")
    assert validate.returncode == 0, validate.stderr
    assert "ok     pipelines/demo/gladly_demo.yaml" in validate.stdout
    plan = cli("plan", PIPE, "--date", "2026-11-03", "--format", "json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["window"]["start"] == "2026-11-02T00:00:00-05:00"
    run = cli("--log-format", "json", "run", PIPE, "--date", "2026-11-03", "--format", "json")
    assert run.returncode == 0, run.stderr
    assert "does not exist" not in run.stderr and "ledger write failed" not in run.stderr
    assert json.loads(run.stdout)["gold"]["fct_contacts"] == 45
    status = cli("status", PIPE, "--format", "json")
    assert status.returncode == 0, status.stderr
    runs = json.loads(status.stdout)["runs"]
    assert sorted((r["source"], r["stage"], r["status"]) for r in runs) == sorted(
        [
            *(
                (source, stage, "success")
                for source in ("contact_timestamps", "work_sessions", "agents")
                for stage in ("extract", "stage", "load", "transform")
            ),
            ("gold", "gold", "success"),
        ]
    )
    assert {r["rows"] for r in runs if r["source"] == "agents"} == {5}
    # the report's page and its inlined Chart.js come from the installed package
    report = cli("report", PIPE, "--until", "2026-11-03", "--days", "3", "--out", "r.html")
    assert report.returncode == 0, report.stderr
    page = (project / "r.html").read_text(encoding="utf-8")
    assert report.stdout.strip() == str(project / "r.html")
    assert "Chart.js v4" in page and '"2026-11-02"' in page

    # an installation without its ledger migration fails the run, naming it (never skipped)
    (packaged,) = venv.glob("lib/python*/site-packages/xoelt/migrations/V001__run_ledger.sql")
    packaged.unlink()
    broken = cli("run", PIPE, "--date", "2026-11-03", home_dir=tmp_path / "fresh-home")
    assert broken.returncode == 1
    assert "xoelt's ledger migration V001 is missing from" in broken.stderr
    assert "reinstall xoelt" in broken.stderr
