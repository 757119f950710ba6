"""dbt as the transform engine on the production target: real dbt-snowflake, through the
profile xoelt writes for the target, against fakesnow's server (S3 on moto), via the CLI.

fakesnow answers what dbt-snowflake's build of the fixture project sends (CREATE OR REPLACE
TRANSIENT TABLE … AS, the tests' SELECTs, SHOW … metadata), so the whole path runs; what it
cannot show is Snowflake's own behaviour (permissions, warehouses, query history).
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest

from tests.e2e.conftest import REPO, Project
from tests.e2e.test_snowflake_target import run, sf_project
from tests.integration.snowflake_fixtures import fakesnow_kwargs

pytest.importorskip("dbt.adapters.snowflake", reason="xoelt[dbt-snowflake] is not installed")

__all__ = ["fakesnow_kwargs", "sf_project"]

PIPE = "demo/gladly_dbt"
PASSWORD = "Zq9-secret-pw"  # what tests.e2e.test_snowflake_target.run sets


def test_dbt_build_runs_on_the_snowflake_target(sf_project: Project) -> None:
    shutil.copytree(
        REPO / "tests" / "fixtures" / "dbt_demo", sf_project.root / "sql" / "dbt" / "demo"
    )
    demo = (sf_project.root / "pipelines" / "demo" / "gladly_demo.yaml").read_text()
    text = demo.replace("pipeline_name: gladly_demo", "pipeline_name: gladly_dbt")
    (sf_project.root / "pipelines" / "demo" / "gladly_dbt.yaml").write_text(
        text + "\ntransform:\n  engine: dbt\n  project_dir: dbt/demo\n"
    )
    done = run(sf_project, "run", PIPE, "--date", "2026-11-03", "--format", "json", check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["gold"] == {"fct_window_sessions": 45, "agg_channel_window": 4}

    status = json.loads(run(sf_project, "status", PIPE, "--format", "json").stdout)
    gold: dict[str, Any] = next(r for r in status["runs"] if r["source"] == "gold")
    assert (gold["status"], gold["rows"]) == ("success", 49)
    (summary,) = gold["findings"]
    assert summary["data"]["counts"]["passed"] == 7

    # the password reached dbt through env_var(), never a file or a log line
    work = sf_project.home / "dbt" / "demo" / "gladly_dbt"
    written = [p for p in work.rglob("*") if p.is_file() and p.suffix != ".msgpack"]
    assert written and not any(PASSWORD in p.read_text(errors="replace") for p in written)
    assert PASSWORD not in done.stdout + done.stderr
