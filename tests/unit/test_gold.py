"""Gold models: dependencies read from each model's SQL, dependency order, and the parse cache.

Every test writes its models to ``tmp_path/sql/gold/<domain>/`` and points
``$XDG_CACHE_HOME`` at ``tmp_path``, so the cache of parsed references is private to it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from xoelt.errors import ConfigError
from xoelt.gold import GoldModel, load_models
from xoelt.warehouse.base import TableRef

DOMAIN = "shop"


@pytest.fixture
def cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "xoelt" / "gold-deps.json"


@pytest.fixture
def root(tmp_path: Path, cache_file: Path) -> Path:
    return tmp_path / "sql"


def write(root: Path, models: dict[str, str], domain: str = DOMAIN) -> None:
    folder = root / "gold" / domain
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in models.items():
        (folder / f"{name}.sql").write_text(sql)


def load(root: Path, only: list[str] | None = None) -> list[GoldModel]:
    return load_models(DOMAIN, "SHOP_DB", "GOLD", only, root)


def deps(models: list[GoldModel]) -> dict[str, tuple[str, ...]]:
    return {m.name: m.depends_on for m in models}


def order(models: list[GoldModel]) -> list[str]:
    return [m.name for m in models]


STAR = {
    "fct_orders": 'SELECT * FROM "SILVER"."ORDERS"',
    "dim_customers": 'SELECT * FROM "SILVER"."CUSTOMERS"',
    "agg_daily": (
        "SELECT o.day, COUNT(*) AS n\n"
        'FROM "GOLD"."FCT_ORDERS" AS o\n'
        'LEFT JOIN "GOLD"."DIM_CUSTOMERS" AS c ON c.id = o.customer_id\n'
        "GROUP BY o.day"
    ),
    "rpt_dashboard": 'SELECT * FROM "GOLD"."AGG_DAILY"',
}


# -- dependency order ---------------------------------------------------------------------------


def test_dependencies_come_from_from_and_join_and_order_the_models(root: Path) -> None:
    write(root, STAR)
    models = load(root)
    assert deps(models) == {
        "fct_orders": (),
        "dim_customers": (),
        "agg_daily": ("dim_customers", "fct_orders"),
        "rpt_dashboard": ("agg_daily",),
    }
    names = order(models)
    assert names.index("fct_orders") < names.index("agg_daily") < names.index("rpt_dashboard")
    assert names.index("dim_customers") < names.index("agg_daily")


def test_cte_names_are_not_dependencies_but_what_a_cte_reads_is(root: Path) -> None:
    write(
        root,
        {
            "fct_orders": 'SELECT 1 AS "ID"',
            "dim_customers": 'SELECT 2 AS "ID"',
            # a CTE named like a model shadows it: the model is not read
            "agg_shadow": 'WITH dim_customers AS (SELECT 3 AS "ID") SELECT * FROM dim_customers',
            "agg_reads": "WITH recent AS (SELECT * FROM gold.fct_orders) SELECT * FROM recent",
        },
    )
    assert deps(load(root)) == {
        "fct_orders": (),
        "dim_customers": (),
        "agg_shadow": (),
        "agg_reads": ("fct_orders",),
    }


def test_subqueries_and_set_operations_are_read(root: Path) -> None:
    write(
        root,
        {
            "fct_orders": 'SELECT 1 AS "ID"',
            "dim_customers": 'SELECT 1 AS "ID"',
            "dim_products": 'SELECT 1 AS "ID"',
            "rpt_all": (
                "SELECT id FROM (SELECT id FROM fct_orders) AS s\n"
                "WHERE id IN (SELECT id FROM dim_customers)\n"
                "UNION ALL SELECT id FROM dim_products"
            ),
        },
    )
    assert deps(load(root))["rpt_all"] == ("dim_customers", "dim_products", "fct_orders")


def test_names_match_whatever_the_case_or_qualification(root: Path) -> None:
    write(
        root,
        {
            "fct_orders": 'SELECT 1 AS "ID"',
            "dim_customers": 'SELECT 1 AS "ID"',
            "rpt_x": 'SELECT * FROM SHOP_DB.GOLD.FCT_ORDERS, "DIM_CUSTOMERS"',
        },
    )
    assert deps(load(root))["rpt_x"] == ("dim_customers", "fct_orders")


def test_another_databases_tables_are_reads_not_dependencies(root: Path) -> None:
    write(
        root,
        {
            "fct_orders": 'SELECT 1 AS "ID"',
            "dim_customers": 'SELECT 1 AS "ID"',
            # a model's name in another database, or in another schema, is not the model
            "rpt_x": (
                'SELECT * FROM "CORE_DB"."GOLD"."DIM_CUSTOMERS" AS c '
                "JOIN core_db.silver.roster AS r ON r.id = c.id "
                'JOIN "SILVER"."DIM_CUSTOMERS" AS s ON s.id = c.id '
                "JOIN shop_db.gold.fct_orders AS o ON o.id = c.id"
            ),
        },
    )
    models = {m.name: m for m in load(root)}
    assert models["rpt_x"].depends_on == ("fct_orders",)
    assert models["rpt_x"].reads == (
        TableRef("CORE_DB", "GOLD", "DIM_CUSTOMERS"),
        TableRef("CORE_DB", "SILVER", "ROSTER"),  # unquoted: upper case, as Snowflake reads it
    )
    assert models["fct_orders"].reads == ()


def test_reads_are_cached_with_the_names_older_versions_read(root: Path, cache_file: Path) -> None:
    sql = 'SELECT * FROM "CORE_DB"."GOLD"."DIM_AGENTS"'
    write(root, {"rpt_x": sql})
    assert load(root)[0].reads == (TableRef("CORE_DB", "GOLD", "DIM_AGENTS"),)
    entry = json.loads(cache_file.read_text())[sha(sql)]
    assert entry["refs"] == [["CORE_DB", "GOLD", "DIM_AGENTS"]]
    assert entry["tables"] == ["dim_agents"]  # one cache file serves every installed xoelt
    assert load(root)[0].reads == (TableRef("CORE_DB", "GOLD", "DIM_AGENTS"),)


def test_tables_that_are_not_models_and_the_model_itself_are_not_dependencies(
    root: Path,
) -> None:
    write(root, {"fct_orders": 'SELECT * FROM "SILVER"."ORDERS" UNION SELECT * FROM fct_orders'})
    assert deps(load(root)) == {"fct_orders": ()}


def test_each_model_is_a_create_or_replace_of_its_select_in_the_gold_schema(root: Path) -> None:
    write(root, {"FCT_Orders": '-- orders\nSELECT * FROM "SILVER"."ORDERS";\n\n'})
    (model,) = load(root)
    assert model.name == "fct_orders"
    assert model.table == TableRef("SHOP_DB", "GOLD", "FCT_ORDERS")
    assert model.path == str(root / "gold" / DOMAIN / "FCT_Orders.sql")
    assert model.select == '-- orders\nSELECT * FROM "SILVER"."ORDERS"'  # trailing ; dropped
    assert model.sql == (
        'CREATE OR REPLACE TABLE "SHOP_DB"."GOLD"."FCT_ORDERS" AS\n'
        '-- orders\nSELECT * FROM "SILVER"."ORDERS"'
    )


def test_a_domain_without_a_gold_folder_has_no_models(root: Path) -> None:
    write(root, {"fct_orders": "SELECT 1"}, domain="other")
    assert load(root) == []


# -- only= ------------------------------------------------------------------------------------


def test_only_pulls_in_every_model_it_depends_on_transitively(root: Path) -> None:
    write(root, STAR)
    assert order(load(root, ["rpt_dashboard"]))[-1] == "rpt_dashboard"
    assert set(order(load(root, ["rpt_dashboard"]))) == set(STAR)
    assert order(load(root, ["dim_customers"])) == ["dim_customers"]
    assert sorted(order(load(root, ["AGG_DAILY"]))) == ["agg_daily", "dim_customers", "fct_orders"]


def test_only_with_unknown_names_lists_them_and_the_models_there(root: Path) -> None:
    write(root, STAR)
    with pytest.raises(ConfigError) as err:
        load(root, ["fct_orders", "fct_refunds", "dim_stores"])
    assert str(err.value) == (
        f"gold model(s) fct_refunds, dim_stores not found in {root / 'gold' / DOMAIN}/ "
        "(have: agg_daily, dim_customers, fct_orders, rpt_dashboard)"
    )
    assert err.value.exit_code == 2


def test_only_in_a_domain_without_models_says_there_are_none(root: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(have: none\)"):
        load(root, ["fct_orders"])


# -- refused models -----------------------------------------------------------------------------


def test_a_cycle_is_a_config_error_naming_the_models_in_it(root: Path) -> None:
    write(
        root,
        {
            "fct_a": "SELECT * FROM dim_b",
            "dim_b": "SELECT * FROM agg_c",
            "agg_c": "SELECT * FROM fct_a",
            "rpt_outside": "SELECT * FROM fct_a",
        },
    )
    with pytest.raises(ConfigError) as err:
        load(root)
    message = str(err.value)
    assert message.startswith("gold models depend on each other in a cycle: ")
    cycle = message.rsplit(": ", 1)[1].split(" -> ")
    assert cycle[0] == cycle[-1]  # closed
    assert sorted(set(cycle)) == ["agg_c", "dim_b", "fct_a"]  # and only the models in it


@pytest.mark.parametrize(
    "sql",
    [
        'INSERT INTO "GOLD"."FCT_X" SELECT 1',
        'CREATE TABLE "GOLD"."FCT_X" AS SELECT 1',
        'DELETE FROM "GOLD"."FCT_X"',
        "SELECT 1; SELECT 2",
        "-- only a comment",
    ],
    ids=["insert", "ctas", "delete", "two-statements", "empty"],
)
def test_anything_but_one_select_is_refused_naming_the_file(root: Path, sql: str) -> None:
    write(root, {"fct_x": sql})
    path = root / "gold" / DOMAIN / "fct_x.sql"
    with pytest.raises(ConfigError) as err:
        load(root)
    assert str(err.value) == f"{path}: a gold model is exactly one SELECT statement"
    assert err.value.file == str(path)


def test_a_comment_after_the_final_semicolon_is_still_one_select(root: Path) -> None:
    write(root, {"fct_x": "SELECT 1 AS x;\n-- end of model\n"})
    assert order(load(root)) == ["fct_x"]


@pytest.mark.parametrize("name", ["orders", "stg_orders", "fact_orders", "fct orders"])
def test_a_model_name_without_a_gold_prefix_is_refused_naming_the_file(
    root: Path, name: str
) -> None:
    write(root, {"fct_ok": "SELECT 1", name: "SELECT 1"})
    with pytest.raises(ConfigError) as err:
        load(root)
    assert err.value.file == str(root / "gold" / DOMAIN / f"{name}.sql")
    assert err.value.detail == "gold model names start with fct_, dim_, agg_, rpt_"


def test_a_model_name_that_is_not_an_sql_identifier_is_refused_naming_the_file(
    root: Path,
) -> None:
    write(root, {"fct_a-b": "SELECT 1"})
    with pytest.raises(ConfigError) as err:
        load(root)
    assert err.value.file == str(root / "gold" / DOMAIN / "fct_a-b.sql")


def test_a_parse_error_names_the_file_and_the_line(root: Path) -> None:
    write(root, {"fct_x": 'SELECT "A",\n  "B"\nFROM "SILVER"."T" WHERE (((\n'})
    path = root / "gold" / DOMAIN / "fct_x.sql"
    with pytest.raises(ConfigError) as err:
        load(root)
    assert (err.value.file, err.value.line) == (str(path), 3)
    assert str(err.value).startswith(f"{path}:3: SQL does not parse: ")
    assert "\n" not in str(err.value)


# -- the parse cache ----------------------------------------------------------------------------


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_references_are_cached_by_the_sqls_hash_and_read_back(root: Path, cache_file: Path) -> None:
    write(root, STAR)
    first = load(root)
    cached = json.loads(cache_file.read_text())
    assert cached[sha(STAR["agg_daily"])]["tables"] == ["dim_customers", "fct_orders"]
    assert cached[sha(STAR["fct_orders"])]["tables"] == ["orders"]
    assert load(root) == first


def test_a_cached_entry_is_used_instead_of_parsing_again(root: Path, cache_file: Path) -> None:
    write(root, STAR)
    load(root)
    cached = json.loads(cache_file.read_text())
    # Doctor the entry for rpt_dashboard: if the cache is read, the change shows up.
    cached[sha(STAR["rpt_dashboard"])]["refs"] = [["", "GOLD", "FCT_ORDERS"]]
    cache_file.write_text(json.dumps(cached))
    assert deps(load(root))["rpt_dashboard"] == ("fct_orders",)
    # Edited SQL has another hash: parsed afresh, whatever the cache holds for the old text.
    write(root, {"rpt_dashboard": STAR["rpt_dashboard"] + "\nWHERE 1 = 1"})
    assert deps(load(root))["rpt_dashboard"] == ("agg_daily",)


def test_a_corrupt_cache_is_ignored_and_rewritten(root: Path, cache_file: Path) -> None:
    write(root, STAR)
    cache_file.parent.mkdir(parents=True)
    cache_file.write_text("{not json")
    assert deps(load(root))["agg_daily"] == ("dim_customers", "fct_orders")
    assert sha(STAR["agg_daily"]) in json.loads(cache_file.read_text())


def test_an_unwritable_cache_only_costs_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # …/xoelt/ cannot be created
    root = tmp_path / "sql"
    write(root, STAR)
    assert deps(load(root))["rpt_dashboard"] == ("agg_daily",)
    assert list(tmp_path.glob("*.tmp")) == [] and blocker.read_text() == ""
