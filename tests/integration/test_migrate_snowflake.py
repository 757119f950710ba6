"""``xoelt migrate`` on the Snowflake path (the real connector against fakesnow's server).

Snowflake's DDL is not transactional (``Capabilities.transactional_ddl`` is false), so a script
is not wrapped in a transaction there: a failing statement is named with what took effect.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tests.integration.snowflake_fixtures import create_database, fakesnow_kwargs, fakesnow_target
from xoelt.cli import cli

__all__ = ["fakesnow_kwargs"]

DATABASE = "MIG_DB"


def _migrate(root: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.chdir(root)
    for name in ("XOELT_PIPELINES", "XOELT_SQL", "XOELT_TARGET", "XOELT_TARGETS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XOELT_HOME", str(root / ".xoelt"))
    monkeypatch.setenv("XO_TEST_SNOWFLAKE_PASSWORD", "pw")
    monkeypatch.setenv("XO_TEST_SCHEMA", "REPORTING")
    return CliRunner().invoke(
        cli,
        ["migrate", "--target", "prod", "--database", DATABASE, "--format", "json", *args],
        catch_exceptions=False,
    )


def test_migrate_on_snowflake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fakesnow_kwargs: dict[str, Any]
) -> None:
    create_database(fakesnow_kwargs, DATABASE)
    target = {"prod": fakesnow_target(fakesnow_kwargs, f"{DATABASE}.BRONZE.XO_STAGE")}
    (tmp_path / "targets.yaml").write_text(yaml.safe_dump(target))
    folder = tmp_path / "sql" / "migrations"
    folder.mkdir(parents=True)
    (folder / "V1__tables.sql").write_text(
        f'CREATE SCHEMA IF NOT EXISTS "{DATABASE}"."${{XO_TEST_SCHEMA}}";\n'
        f'CREATE TABLE "{DATABASE}"."${{XO_TEST_SCHEMA}}"."T" ("A" INTEGER);\n'
    )
    (folder / "R__view.sql").write_text(
        f'CREATE OR REPLACE VIEW "{DATABASE}"."REPORTING"."V" AS SELECT 1 AS "X";\n'
    )
    first = _migrate(tmp_path, monkeypatch)
    assert first.exit_code == 0, first.output
    assert [s["action"] for s in json.loads(first.stdout)["scripts"]] == ["applied", "applied"]
    again = _migrate(tmp_path, monkeypatch)
    assert [s["action"] for s in json.loads(again.stdout)["scripts"]] == ["up to date"] * 2

    (folder / "V2__half.sql").write_text(
        f'CREATE TABLE "{DATABASE}"."REPORTING"."KEPT" ("A" INTEGER);\n'
        'SELECT * FROM "NO_SUCH_TABLE";\n'
    )
    failed = _migrate(tmp_path, monkeypatch)
    assert failed.exit_code == 1
    assert "V2__half.sql statement 2 of 2 failed: Snowflake:" in failed.output
    assert "statements 1-1 took effect (snowflake commits DDL as it runs)" in failed.output

    import snowflake.connector

    con = snowflake.connector.connect(**fakesnow_kwargs, database=DATABASE)
    try:
        with con.cursor() as cur:
            cur.execute(
                'SELECT "SCRIPT", "SCRIPT_TYPE", "STATUS" FROM "XOELT"."CHANGE_HISTORY" '
                'ORDER BY "INSTALLED_ON"'
            )
            assert cur.fetchall() == [
                ("V1__tables.sql", "V", "Success"),
                ("R__view.sql", "R", "Success"),
            ]
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'REPORTING'"
            )
            assert {"T", "KEPT"} <= {r[0] for r in cur.fetchall()}
    finally:
        con.close()
