"""``xoelt plan --format json`` for every pipeline under ``pipelines/`` is fixed by golden files.

The goldens in ``tests/golden/plans`` were written before the seams were reshaped; a change
to what ``plan`` prints (window, keys, tables, SQL) must be deliberate: regenerate with
``XOELT_UPDATE_GOLDEN=1 pytest tests/unit/test_golden_plans.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from xoelt.cli import cli

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
PIPELINES = sorted(
    p.relative_to(REPO / "pipelines").with_suffix("").as_posix()
    for p in (REPO / "pipelines").rglob("*.yaml")
    if "data" not in p.parts
)


@pytest.mark.parametrize("target", ["local", "prod"])
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_plan_json_is_byte_identical(
    pipeline: str, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    for var in ("XOELT_PIPELINES", "XOELT_SQL", "XOELT_TARGET", "XOELT_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XOELT_TARGETS", str(GOLDEN / "targets.yaml"))
    monkeypatch.delenv("SNOWFLAKE_PASSWORD", raising=False)
    result = CliRunner().invoke(
        cli,
        ["plan", pipeline, "--date", "2026-11-03", "--target", target, "--format", "json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    golden = GOLDEN / "plans" / f"{pipeline.replace('/', '__')}.{target}.json"
    if os.environ.get("XOELT_UPDATE_GOLDEN") == "1":
        golden.write_text(result.stdout)
    assert result.stdout == golden.read_text(), f"plan output differs from {golden}"


def test_every_pipeline_has_goldens() -> None:
    names = {p.name for p in (GOLDEN / "plans").glob("*.json")}
    wanted = {f"{p.replace('/', '__')}.{t}.json" for p in PIPELINES for t in ("local", "prod")}
    assert names == wanted
