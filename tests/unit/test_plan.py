"""``build_plan``: a pipeline file plus a run date become keys, tables, windows and SQL, purely.

Every pipeline here is written to ``tmp_path`` and loaded with ``load_pipeline(path, env={})``;
the target is the built-in ``local`` one (or a Snowflake target from a ``targets.yaml`` in
``tmp_path``), so nothing depends on the repository's pipelines or on the environment.
"""

from __future__ import annotations

import copy
import itertools
import json
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.conftest import clean_env
from xoelt.errors import InputError
from xoelt.pipelines import load_pipeline
from xoelt.plan import RunPlan, build_plan
from xoelt.schedule import fire_times
from xoelt.settings import Settings
from xoelt.targets import resolve_target
from xoelt.warehouse.base import TableRef

NY = ZoneInfo("America/New_York")

BASE: dict[str, Any] = {
    "dag": {
        "domain": "shop",
        "pipeline_name": "orders_daily",
        "schedule": "50 6 * * *",
        "time_window": {
            "refresh_type": "daily",
            "lag": {"days": 1},
            "timezone": "America/New_York",
        },
    },
    "globals": {
        "snowflake": {"database": "SHOP_DB", "schema": "BRONZE"},
        "storage": {"ingest_bucket": "shop-ingest", "stage_bucket": "shop-stage"},
    },
    "sources": {
        "orders": {
            "source_type": "s3_upload",
            "load_strategy": "full_refresh",
            "extractor": {"bucket": "shop-landing", "prefix": "orders/{date}/"},
            "snowflake": {"target_table": "RAW_ORDERS"},
        },
        "customers": {
            "source_type": "s3_upload",
            "load_strategy": "historical",
            "extractor": {"bucket": "shop-landing", "prefix": "customers/{date}/"},
            "snowflake": {
                "target_table": "raw_customers",
                "database": "landing_db",
                "schema": "raw",
            },
            "silver": {"table": "customer_versions", "primary_key": ["CUSTOMER_ID"]},
        },
        "tickets": {
            "source_type": "gladly_api",
            "load_strategy": "incremental",
            "extractor": {
                "metric_set": "ContactExportReportV3",  # takes times: intraday tests too
                "user": "${SHOP_GLADLY_USER}",
                "token": "${SHOP_GLADLY_TOKEN}",
            },
            "snowflake": {"target_table": "RAW_TICKETS", "schema": "GLADLY"},
            "silver": {"primary_key": ["ID"]},
        },
    },
}

INTRADAY = {
    "refresh_type": "intraday_relative",
    "lookback": {"hours": 2},
    "timezone": "America/New_York",
}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gold parse cache goes to ``tmp_path``, never to the user's ``~/.cache``."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def pipeline_data(**dag: Any) -> dict[str, Any]:
    """A deep copy of BASE with ``dag`` keys replaced."""
    data = copy.deepcopy(BASE)
    data["dag"].update(dag)
    return data


def write_pipeline(tmp_path: Path, data: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "pipelines" / "shop" / "orders_daily.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data or BASE, sort_keys=False))
    return path


def settings_for(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / "h",
        sql_root=tmp_path / "sql",
        targets_file=tmp_path / "targets.yaml",
        pipelines_root=tmp_path / "pipelines",
    )


def write_gold(tmp_path: Path, models: dict[str, str]) -> None:
    folder = tmp_path / "sql" / "gold" / "shop"
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in models.items():
        (folder / f"{name}.sql").write_text(sql)


def make(
    tmp_path: Path,
    data: dict[str, Any] | None = None,
    run_at: date | datetime = date(2026, 11, 3),
    target: str = "local",
    env: dict[str, str] | None = None,
) -> RunPlan:
    pipeline = load_pipeline(write_pipeline(tmp_path, data), env=env or {})
    settings = settings_for(tmp_path)
    name, bound = resolve_target(target, settings)
    return build_plan(pipeline, name, bound, run_at, settings.sql_root)


def by_name(plan: RunPlan) -> dict[str, Any]:
    return {sp.name: sp for sp in plan.sources}


# -- object keys --------------------------------------------------------------------------------


def test_object_keys_are_segmented_by_load_strategy_and_window_with_manifests_beside_them(
    tmp_path: Path,
) -> None:
    sources = by_name(make(tmp_path))
    orders, customers = sources["orders"], sources["customers"]
    assert (orders.ingest_bucket, orders.stage_bucket) == ("shop-ingest", "shop-stage")
    assert orders.ingest_key == "ingest/shop/orders_daily/orders/2026-11-02/orders.part-00000.csv"
    assert (
        orders.stage_key
        == "stage/shop/orders_daily/orders/full_refresh/2026-11-02/orders.part-00000.csv"
    )
    assert orders.ingest_manifest_key == "ingest/shop/orders_daily/orders/2026-11-02/_manifest.json"
    assert (
        orders.stage_manifest_key
        == "stage/shop/orders_daily/orders/full_refresh/2026-11-02/_manifest.json"
    )
    # another strategy is another stage folder: switching a source's strategy never reads
    # files staged for the old one
    assert customers.stage_key == (
        "stage/shop/orders_daily/customers/historical/2026-11-02/customers.part-00000.csv"
    )


def test_default_buckets_are_used_when_globals_storage_is_omitted(tmp_path: Path) -> None:
    data = pipeline_data()
    del data["globals"]["storage"]
    orders = by_name(make(tmp_path, data))["orders"]
    assert (orders.ingest_bucket, orders.stage_bucket) == ("xoelt-ingest", "xoelt-stage")


# -- tables -------------------------------------------------------------------------------------


def test_bronze_table_is_in_the_pipeline_database_unless_the_source_overrides_it(
    tmp_path: Path,
) -> None:
    sources = by_name(make(tmp_path))
    assert sources["orders"].bronze_table == TableRef("SHOP_DB", "BRONZE", "RAW_ORDERS")
    # both overrides, upper-cased like every identifier from config
    assert sources["customers"].bronze_table == TableRef("LANDING_DB", "RAW", "RAW_CUSTOMERS")
    # only the schema overridden: the pipeline's database
    assert sources["tickets"].bronze_table == TableRef("SHOP_DB", "GLADLY", "RAW_TICKETS")


def test_silver_table_is_silver_table_or_the_source_name_upper_cased_in_the_pipeline_database(
    tmp_path: Path,
) -> None:
    sources = by_name(make(tmp_path))
    assert sources["orders"].silver_table == TableRef("SHOP_DB", "SILVER", "ORDERS")
    # a bronze database override does not move silver
    assert sources["customers"].silver_table == TableRef("SHOP_DB", "SILVER", "CUSTOMER_VERSIONS")


def test_silver_schema_comes_from_globals(tmp_path: Path) -> None:
    data = pipeline_data()
    data["globals"]["snowflake"]["silver_schema"] = "CLEAN"
    assert by_name(make(tmp_path, data))["orders"].silver_table.schema == "CLEAN"


def test_historical_source_also_owns_its_snapshot_table(tmp_path: Path) -> None:
    sources = by_name(make(tmp_path))
    assert sources["customers"].silver_tables == [
        TableRef("SHOP_DB", "SILVER", "CUSTOMER_VERSIONS__SNAPSHOTS"),
        TableRef("SHOP_DB", "SILVER", "CUSTOMER_VERSIONS"),
    ]
    assert sources["orders"].silver_tables == [sources["orders"].silver_table]


def test_databases_lists_the_pipeline_database_and_every_bronze_database_once(
    tmp_path: Path,
) -> None:
    plan = make(tmp_path)
    assert plan.database == "SHOP_DB"
    assert plan.databases == ["LANDING_DB", "SHOP_DB"]


# -- windows ------------------------------------------------------------------------------------


def test_daily_window_is_the_local_day_before_the_run_date(tmp_path: Path) -> None:
    window = make(tmp_path, run_at=date(2026, 11, 4)).window
    assert window.start.isoformat() == "2026-11-03T00:00:00-05:00"
    assert window.end.isoformat() == "2026-11-04T00:00:00-05:00"
    assert window.tag == "2026-11-03"


@pytest.mark.parametrize(
    ("run_date", "day", "hours"),
    [(date(2026, 3, 9), "2026-03-08", 23), (date(2026, 11, 2), "2026-11-01", 25)],
    ids=["spring-forward", "fall-back"],
)
def test_daily_window_on_a_dst_day_is_23_or_25_hours_and_keyed_by_that_day(
    tmp_path: Path, run_date: date, day: str, hours: int
) -> None:
    plan = make(tmp_path, run_at=run_date)
    assert plan.window.duration == timedelta(hours=hours)
    assert plan.window.tag == day
    assert f"/orders/{day}/orders.part-00000.csv" in plan.sources[0].ingest_key


def test_intraday_window_aligns_to_the_schedule_and_keys_carry_its_start_time(
    tmp_path: Path,
) -> None:
    data = pipeline_data(schedule="0 */2 * * *", time_window=INTRADAY)
    plan = make(tmp_path, data, run_at=datetime(2026, 11, 3, 15, 37, tzinfo=NY))
    assert plan.window.start.isoformat() == "2026-11-03T12:00:00-05:00"
    assert plan.window.end.isoformat() == "2026-11-03T14:00:00-05:00"
    orders = plan.sources[0]
    assert (
        orders.ingest_key == "ingest/shop/orders_daily/orders/2026-11-03/1200/orders.part-00000.csv"
    )
    assert orders.stage_key == (
        "stage/shop/orders_daily/orders/full_refresh/2026-11-03/1200/orders.part-00000.csv"
    )
    assert orders.stage_manifest_key.endswith("/2026-11-03/1200/_manifest.json")


def test_intraday_window_across_fall_back_is_real_elapsed_time(tmp_path: Path) -> None:
    data = pipeline_data(schedule="0 */2 * * *", time_window=INTRADAY)
    # 02:00 EST on 2026-11-01; two real hours back is 01:00 EDT (the first 01:00)
    plan = make(tmp_path, data, run_at=datetime(2026, 11, 1, 7, 0, tzinfo=UTC))
    assert plan.window.start.isoformat() == "2026-11-01T01:00:00-04:00"
    assert plan.window.end.isoformat() == "2026-11-01T02:00:00-05:00"
    assert plan.window.duration == timedelta(hours=2)


HOURLY_LAGGED = {
    "refresh_type": "intraday_relative",
    "lookback": {"hours": 2},
    "lag": {"hours": 1},
    "timezone": "America/New_York",
}


def test_intraday_windows_starting_in_the_repeated_fall_back_hour_get_distinct_keys(
    tmp_path: Path,
) -> None:
    data = pipeline_data(schedule="0 * * * *", time_window=HOURLY_LAGGED)
    first = make(tmp_path, data, run_at=datetime(2026, 11, 1, 7, 0, tzinfo=UTC))  # 02:00 EST
    second = make(tmp_path, data, run_at=datetime(2026, 11, 1, 8, 0, tzinfo=UTC))  # 03:00 EST
    # (in UTC: aware datetimes in one zone compare by wall clock, ignoring fold)
    assert first.window.start.astimezone(UTC) != second.window.start.astimezone(UTC)
    assert first.sources[0].ingest_key != second.sources[0].ingest_key  # ...in two objects


def test_hourly_intraday_windows_tile_the_fall_back_day_without_a_gap(tmp_path: Path) -> None:
    data = pipeline_data(schedule="0 * * * *", time_window={**INTRADAY, "lookback": {"hours": 1}})
    fires = fire_times("0 * * * *", "America/New_York", date(2026, 11, 1), date(2026, 11, 1))
    assert len(fires) == 25  # the schedule does fire at both 01:00s
    windows = [make(tmp_path, data, run_at=fired).window for fired in fires]
    for before, after in itertools.pairwise(windows):
        # in UTC: aware datetimes in one zone compare by wall clock, ignoring fold
        assert before.end.astimezone(UTC) == after.start.astimezone(UTC), (
            f"{before.label} then {after.label}"
        )


# -- rendered SQL -------------------------------------------------------------------------------


def test_rendered_load_sql_has_run_placeholders_and_reads_the_staged_file_under_home(
    tmp_path: Path,
) -> None:
    orders = make(tmp_path).sources[0]
    load = "\n".join(orders.sql["load"])
    assert "{run_id}" in load and "{loaded_at}" in load
    staged = str(tmp_path / "h" / "objects" / "shop-stage" / orders.stage_key)
    assert f"read_csv('{staged}'" in load
    assert "'2026-11-02T00:00:00-05:00'::TIMESTAMPTZ" in load
    assert orders.sql["load"].index("BEGIN TRANSACTION") < orders.sql["load"].index("COMMIT")


def test_rendered_transform_sql_is_the_strategys_script_for_the_window(tmp_path: Path) -> None:
    sources = by_name(make(tmp_path))
    transform = sources["orders"].sql["transform"]
    assert transform[transform.index("BEGIN") + 1].startswith(
        'DELETE FROM "SHOP_DB"."SILVER"."ORDERS" WHERE "_XO_WINDOW_START" = '
        "'2026-11-02T00:00:00-05:00'::TIMESTAMP_TZ"
    )
    assert transform[-1] == "COMMIT"
    merge = "\n".join(sources["tickets"].sql["transform"])
    assert 'MERGE INTO "SHOP_DB"."SILVER"."TICKETS"' in merge
    assert 'FROM "SHOP_DB"."GLADLY"."RAW_TICKETS"' in merge


SNOWFLAKE_TARGETS = """\
prod:
  type: snowflake
  account: xy12345.us-east-1
  user: XOELT_LOADER
  password: ${SHOP_SF_PASSWORD}
  stage: SHOP_DB.PUBLIC.SHOP_STAGE
"""


def test_plan_shows_secret_references_and_never_their_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "SHOP_GLADLY_USER": "agent-smith@example.com",
        "SHOP_GLADLY_TOKEN": "tok-0123456789abcdef",
        "SHOP_SF_PASSWORD": "pw-correct-horse-battery",
    }
    for var, value in secrets.items():
        monkeypatch.setenv(var, value)
    (tmp_path / "targets.yaml").write_text(SNOWFLAKE_TARGETS)
    for target in ("local", "prod"):
        plan = make(tmp_path, target=target, env=secrets)  # the values are there to be leaked
        text = json.dumps(plan.as_dict())
        for value in secrets.values():
            assert value not in text, f"{target}: a secret value is in the plan"
        tickets = by_name(plan)["tickets"]
        assert tickets.request["auth"] == "basic ${SHOP_GLADLY_USER}:${SHOP_GLADLY_TOKEN}"


def test_snowflake_target_plans_a_copy_from_its_stage_with_run_placeholders(
    tmp_path: Path,
) -> None:
    (tmp_path / "targets.yaml").write_text(SNOWFLAKE_TARGETS)
    plan = make(tmp_path, target="prod")
    assert (plan.target_name, plan.target.type) == ("prod", "snowflake")
    orders = plan.sources[0]
    copy_stmt = next(
        s for s in orders.sql["load"] if s.startswith(f"COPY INTO {orders.bronze_table.sql} ")
    )
    assert '@"SHOP_DB"."PUBLIC"."SHOP_STAGE"' in copy_stmt
    assert f"FILES = ('{orders.stage_key}')" in copy_stmt
    assert "{run_id}" in copy_stmt and "{loaded_at}" in copy_stmt


# -- selecting sources --------------------------------------------------------------------------


def test_select_gives_every_source_in_file_order_or_only_the_one_named(tmp_path: Path) -> None:
    plan = make(tmp_path)
    assert [sp.name for sp in plan.select(None)] == ["orders", "customers", "tickets"]
    assert [sp.name for sp in plan.select("customers")] == ["customers"]


def test_select_of_an_unknown_source_is_an_input_error_listing_the_valid_ones(
    tmp_path: Path,
) -> None:
    with pytest.raises(InputError) as err:
        make(tmp_path).select("order")
    assert err.value.exit_code == 2
    assert str(err.value) == (
        "pipeline shop/orders_daily has no source 'order'; valid: orders, customers, tickets"
    )


# -- gold ---------------------------------------------------------------------------------------

GOLD = {
    "rpt_orders": 'SELECT COUNT(*) AS "N" FROM "GOLD"."FCT_ORDERS"',
    "fct_orders": 'SELECT * FROM "SILVER"."ORDERS" JOIN "GOLD"."DIM_CUSTOMERS" USING ("ID")',
    "dim_customers": 'SELECT * FROM "SILVER"."CUSTOMER_VERSIONS"',
    "agg_unrelated": 'SELECT 1 AS "X"',
}


def test_gold_models_are_planned_in_dependency_order_in_the_gold_schema(tmp_path: Path) -> None:
    write_gold(tmp_path, GOLD)
    gold = make(tmp_path).gold
    order = [g.name for g in gold]
    assert sorted(order) == sorted(GOLD)
    assert order.index("dim_customers") < order.index("fct_orders") < order.index("rpt_orders")
    fct = next(g for g in gold if g.name == "fct_orders")
    assert fct.table == TableRef("SHOP_DB", "GOLD", "FCT_ORDERS")
    assert fct.sql.startswith('CREATE OR REPLACE TABLE "SHOP_DB"."GOLD"."FCT_ORDERS" AS\n')


def test_transform_gold_models_plans_those_and_what_they_depend_on(tmp_path: Path) -> None:
    write_gold(tmp_path, GOLD)
    data = pipeline_data()
    data["transform"] = {"gold_models": ["fct_orders"]}
    assert [g.name for g in make(tmp_path, data).gold] == ["dim_customers", "fct_orders"]


def test_other_databases_gold_reads_are_planned_and_opened_read_only(tmp_path: Path) -> None:
    write_gold(
        tmp_path,
        {
            "fct_orders": 'SELECT * FROM "CORE_DB"."GOLD"."DIM_AGENTS"',
            "agg_x": 'SELECT * FROM "GOLD"."FCT_ORDERS"',
        },
    )
    (tmp_path / "sql" / "gold" / "shop" / "agg_x.yml").write_text(
        "tests:\n  - {kind: relationships, column: A, to: HR_DB.GOLD.PEOPLE, field: A}\n"
    )
    plan = make(tmp_path)
    assert [(g.name, g.depends_on) for g in plan.gold] == [
        ("fct_orders", ()),
        ("agg_x", ("fct_orders",)),
    ]
    assert plan.as_dict()["gold"][0]["reads"] == ["CORE_DB.GOLD.DIM_AGENTS"]
    # what a run attaches read-only besides the databases it writes
    assert plan.read_databases == ["CORE_DB", "HR_DB"]
    assert "CORE_DB" not in plan.databases


def test_a_domain_without_gold_sql_plans_no_gold(tmp_path: Path) -> None:
    assert make(tmp_path).gold == []


# -- purity -------------------------------------------------------------------------------------


def test_build_plan_touches_no_store_and_writes_nothing_but_the_parse_cache(
    tmp_path: Path,
) -> None:
    write_gold(tmp_path, GOLD)
    path = write_pipeline(tmp_path)
    pipeline = load_pipeline(path, env={})
    settings = settings_for(tmp_path)
    name, bound = resolve_target("local", settings)
    cache = tmp_path / "cache"

    def files() -> set[Path]:
        return {p for p in tmp_path.rglob("*") if p != cache and cache not in p.parents}

    before = files()
    build_plan(pipeline, name, bound, date(2026, 11, 3), settings.sql_root)
    assert files() == before
    assert not (tmp_path / "h").exists()  # no objects/ or warehouse/ under the home


HEAVY = (
    "duckdb",
    "boto3",
    "botocore",
    "s3transfer",
    "snowflake",
    "httpx",
    "google",
    "prometheus_client",
)


def test_planning_imports_no_engine_cloud_or_http_library(tmp_path: Path) -> None:
    write_gold(tmp_path, GOLD)
    write_pipeline(tmp_path)
    (tmp_path / "targets.yaml").write_text(SNOWFLAKE_TARGETS)
    code = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from xoelt.core import make_plan
        from xoelt.settings import Settings
        root = Path({str(tmp_path)!r})
        settings = Settings(
            home=root / "h", sql_root=root / "sql", targets_file=root / "targets.yaml",
            pipelines_root=root / "pipelines",
        )
        for target in ("local", "prod"):
            plan = make_plan("shop/orders_daily", "2026-11-03", target, settings=settings)
            json.dumps(plan.as_dict())
        print(sorted(m for m in sys.modules if m.split(".")[0] in {set(HEAVY)!r}))
        """
    )
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("SHOP_SF_PASSWORD", None)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
