"""The dbt transform engine's config, plan and generated profiles (no dbt build runs here:
tests/e2e/test_dbt_engine.py runs real ones on DuckDB).

The Snowflake profile is checked here by its contents and by dbt-snowflake's own
credentials contract; tests/e2e/test_dbt_snowflake.py runs a build with it on fakesnow.
"""

from __future__ import annotations

import copy
import shutil
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from xoelt.dbt_profiles import holds_files, profile_for
from xoelt.dbt_project import WINDOW_VARS, DbtPlan, dbt_plan
from xoelt.errors import ConfigError, RunError
from xoelt.pipelines import PipelineInvalid, load_pipeline
from xoelt.plan import RunPlan, build_plan
from xoelt.runtime import Runtime
from xoelt.settings import Settings
from xoelt.targets import resolve_target

REPO = Path(__file__).resolve().parents[2]
PIPELINE: dict[str, Any] = {
    "dag": {
        "domain": "shop",
        "pipeline_name": "orders_daily",
        "schedule": "50 6 * * *",
        "time_window": {"refresh_type": "daily", "lag": {"days": 1}, "timezone": "UTC"},
    },
    "globals": {"snowflake": {"database": "SHOP_DB", "schema": "BRONZE"}},
    "sources": {
        "orders": {
            "source_type": "s3_upload",
            "load_strategy": "full_refresh",
            "extractor": {"bucket": "shop-landing", "prefix": "orders/{date}/"},
            # bronze in another database: the DuckDB profile must attach it
            "snowflake": {"target_table": "RAW_ORDERS", "database": "LANDING_DB"},
        }
    },
    "transform": {"engine": "dbt", "project_dir": "dbt/shop", "select": "tag:daily"},
}
TARGETS = """
prod:
  type: snowflake
  account: xy12345.us-east-1
  user: XOELT_LOADER
  password: ${SNOWFLAKE_PASSWORD}
  role: XOELT_ROLE
  warehouse: LOAD_WH
  stage: XOELT_DB.PUBLIC.XOELT_STAGE
"""


def write(tmp_path: Path, transform: dict[str, Any] | None = None) -> Path:
    data = copy.deepcopy(PIPELINE)
    if transform is not None:
        data["transform"] = transform
    path = tmp_path / "pipelines" / "shop" / "orders_daily.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def with_project(tmp_path: Path) -> Path:
    project = tmp_path / "sql" / "dbt" / "shop"
    shutil.copytree(REPO / "tests" / "fixtures" / "dbt_demo", project)
    return project


def plan_for(tmp_path: Path, target: str = "local") -> RunPlan:
    (tmp_path / "targets.yaml").write_text(TARGETS)
    settings = Settings(
        home=tmp_path / "h", sql_root=tmp_path / "sql", targets_file=tmp_path / "targets.yaml"
    )
    name, bound = resolve_target(target, settings)
    pipeline = load_pipeline(write(tmp_path), env={})
    return build_plan(pipeline, name, bound, date(2026, 11, 3), settings.sql_root)


def problems(path: Path) -> list[str]:
    with pytest.raises(PipelineInvalid) as caught:
        load_pipeline(path, env={})
    return [str(p) for p in caught.value.problems]


def test_an_unknown_engine_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path, {"engine": "dbtt", "project_dir": "dbt/shop"})
    (message,) = problems(path)
    assert "transform.engine: 'dbtt': Input should be 'xoelt' or 'dbt'" in message


def test_engine_dbt_needs_a_project_dir_and_xoelt_refuses_dbt_keys(tmp_path: Path) -> None:
    (message,) = problems(write(tmp_path, {"engine": "dbt"}))
    assert "engine dbt needs project_dir" in message
    (message,) = problems(write(tmp_path, {"select": "my_model"}))
    assert "select: only with engine: dbt" in message
    (message,) = problems(write(tmp_path, {"engine": "dbt", "project_dir": "x", "gold": 1}))
    assert "unknown key 'gold'" in message


def test_a_missing_dbt_project_is_a_config_error_naming_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path)
    pipeline = load_pipeline(path, env={})
    with pytest.raises(ConfigError) as caught:
        dbt_plan(pipeline, tmp_path / "sql")
    line = 1 + path.read_text().splitlines().index("  project_dir: dbt/shop")
    assert str(caught.value).startswith(f"{path}:{line} transform.project_dir: no dbt_project.yml")
    assert caught.value.exit_code == 2


def test_the_project_dir_is_resolved_under_the_sql_root_and_select_is_a_list(
    tmp_path: Path,
) -> None:
    project = with_project(tmp_path)
    plan = dbt_plan(load_pipeline(write(tmp_path), env={}), tmp_path / "sql")
    assert plan == DbtPlan(project, ("tag:daily",), (), None, None, {})
    absolute = write(tmp_path, {"engine": "dbt", "project_dir": str(project), "select": ["a", "b"]})
    plan = dbt_plan(load_pipeline(absolute, env={}), tmp_path / "elsewhere")
    assert plan is not None and (plan.project_dir, plan.select) == (project, ("a", "b"))
    own = write(tmp_path, {"engine": "dbt", "project_dir": "dbt/shop", "profiles_dir": "nope"})
    with pytest.raises(ConfigError, match=r"transform.profiles_dir: no profiles.yml in"):
        dbt_plan(load_pipeline(own, env={}), tmp_path / "sql")


def test_window_vars_are_the_windows_instants_over_the_pipelines_vars(tmp_path: Path) -> None:
    with_project(tmp_path)
    plan = plan_for(tmp_path)
    assert plan.dbt is not None and plan.gold == []
    dbt = DbtPlan(plan.dbt.project_dir, vars={"team": "ops", "xoelt_run_id": "mine"})
    got = dbt.vars_for(plan.window, plan.run_at, "r1")
    assert got == {
        "team": "ops",
        "xoelt_window_start": "2026-11-02T00:00:00+00:00",
        "xoelt_window_end": "2026-11-03T00:00:00+00:00",
        "xoelt_window_timezone": "UTC",
        "xoelt_run_date": "2026-11-03",
        "xoelt_run_id": "r1",
    }
    assert set(WINDOW_VARS) <= set(got)


def test_duckdb_profile_opens_the_pipelines_file_and_attaches_the_others(tmp_path: Path) -> None:
    with_project(tmp_path)
    plan = plan_for(tmp_path)
    profile = profile_for(Runtime(plan, Settings(home=tmp_path / "h"), env={}), "tag")
    assert holds_files("duckdb")  # xoelt's own session must let go of the files
    (doc,) = yaml.safe_load(profile.yaml()).values()
    assert doc["target"] == "duckdb"
    warehouse = (tmp_path / "h" / "warehouse").resolve()
    assert doc["outputs"]["duckdb"] == {
        "type": "duckdb",
        "path": str(warehouse / "SHOP_DB.duckdb"),
        "schema": "GOLD",
        "threads": 1,
        "settings": {"TimeZone": "UTC"},
        "attach": [{"path": str(warehouse / "LANDING_DB.duckdb"), "alias": "LANDING_DB"}],
    }


def test_snowflake_profile_refers_to_the_password_and_never_holds_it(tmp_path: Path) -> None:
    with_project(tmp_path)
    plan = plan_for(tmp_path, "prod")
    secret = "s3cr3t-Value!"
    rt = Runtime(plan, Settings(home=tmp_path / "h"), env={"SNOWFLAKE_PASSWORD": secret})
    profile = profile_for(rt, '{"app":"xoelt"}')
    text = profile.yaml()
    assert secret not in text
    assert profile.env == {"SNOWFLAKE_PASSWORD": secret}  # lent to env_var() in-process only
    assert not holds_files("snowflake")
    output = yaml.safe_load(text)["xoelt"]["outputs"]["snowflake"]
    assert output == {
        "type": "snowflake",
        "account": "xy12345.us-east-1",
        "user": "XOELT_LOADER",
        "database": "SHOP_DB",
        "schema": "GOLD",
        "threads": 4,
        "connect_timeout": 60,
        "query_tag": '{"app":"xoelt"}',
        "client_session_keep_alive": False,
        "password": "{{ env_var('SNOWFLAKE_PASSWORD') }}",
        "role": "XOELT_ROLE",
        "warehouse": "LOAD_WH",
    }
    # every key is one dbt-snowflake's credentials accept
    credentials = pytest.importorskip("dbt.adapters.snowflake.connections").SnowflakeCredentials
    fields = {k: v for k, v in output.items() if k not in ("type", "threads")}
    creds = credentials.from_dict({**fields, "password": secret})
    assert (creds.database, creds.schema, creds.role) == ("SHOP_DB", "GOLD", "XOELT_ROLE")

    with pytest.raises(ConfigError, match="environment variable SNOWFLAKE_PASSWORD is not set"):
        profile_for(Runtime(plan, Settings(home=tmp_path / "h"), env={}), "tag")


def test_without_dbt_installed_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xoelt.dbt_engine import _runner

    with_project(tmp_path)
    rt = Runtime(plan_for(tmp_path), Settings(home=tmp_path / "h"), env={})
    monkeypatch.setitem(sys.modules, "dbt.cli.main", None)  # what `import` sees when absent
    with pytest.raises(ConfigError, match=r"transform.engine: engine dbt needs dbt-core: "):
        _runner(rt, "duckdb")
    with pytest.raises(ConfigError, match=r"pip install 'xoelt\[dbt\]'"):
        _runner(rt, "duckdb")
    monkeypatch.delitem(sys.modules, "dbt.cli.main")
    monkeypatch.setitem(sys.modules, "dbt.adapters.snowflake", None)
    with pytest.raises(
        ConfigError, match=r"needs dbt-snowflake: pip install 'xoelt\[dbt-snowflake\]'"
    ):
        _runner(rt, "snowflake")


def test_duckdb_profile_attaches_the_databases_read_read_only(tmp_path: Path) -> None:
    with_project(tmp_path)
    transform = {**PIPELINE["transform"], "reads": ["CORE_DB"]}
    write(tmp_path, transform)
    (tmp_path / "targets.yaml").write_text(TARGETS)
    settings = Settings(
        home=tmp_path / "h", sql_root=tmp_path / "sql", targets_file=tmp_path / "targets.yaml"
    )
    name, bound = resolve_target("local", settings)
    pipeline = load_pipeline(tmp_path / "pipelines" / "shop" / "orders_daily.yaml", env={})
    plan = build_plan(pipeline, name, bound, date(2026, 11, 3), settings.sql_root)
    assert plan.dbt is not None and plan.dbt.as_dict()["reads"] == ["CORE_DB"]
    rt = Runtime(plan, settings, env={})
    with pytest.raises(RunError, match=r"reads database CORE_DB .* run the pipelines of database"):
        profile_for(rt, "tag")
    warehouse = tmp_path / "h" / "warehouse"
    warehouse.mkdir(parents=True, exist_ok=True)
    import duckdb

    duckdb.connect(str(warehouse / "CORE_DB.duckdb")).close()
    (doc,) = yaml.safe_load(profile_for(rt, "tag").yaml()).values()
    core = str((warehouse / "CORE_DB.duckdb").resolve())
    assert {"path": core, "alias": "CORE_DB", "read_only": True} in [
        {**a, "path": str(Path(a["path"]).resolve())} for a in doc["outputs"]["duckdb"]["attach"]
    ]


def test_reads_is_a_dbt_key(tmp_path: Path) -> None:
    path = write(tmp_path, {"engine": "xoelt", "reads": ["CORE_DB"]})
    (message,) = problems(path)
    assert "reads: only with engine: dbt" in message
