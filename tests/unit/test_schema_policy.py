"""Schema policy: the YAML keys (globals default, source override key by key), the drift
rules the load stage applies, and the cast-failure limit arithmetic. Pure: no warehouse."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_plan import BASE, settings_for, write_pipeline
from xoelt.casts import allowed, count_sql, describe_limit, examples_sql, typed_columns
from xoelt.config.models import SchemaPolicy, SilverConfig
from xoelt.drift import Drift, check_drift
from xoelt.errors import DataError
from xoelt.findings import Finding
from xoelt.pipelines import PipelineInvalid, load_pipeline
from xoelt.plan import build_plan
from xoelt.targets import resolve_target
from xoelt.warehouse.base import METADATA_NAMES, TableRef

BRONZE = TableRef("DB", "BRONZE", "T")
SILVER = SilverConfig(primary_key=["ID"], columns={"AMOUNT": "FLOAT", "LABEL": "VARCHAR"})


def plan_policies(tmp_path: Path, globals_policy: Any, source_policy: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    if globals_policy is not None:
        data["globals"]["schema_policy"] = globals_policy
    first = next(iter(data["sources"].values()))
    if source_policy is not None:
        first["schema_policy"] = source_policy
    pipeline = load_pipeline(write_pipeline(tmp_path, data), env={})
    settings = settings_for(tmp_path)
    name, bound = resolve_target("local", settings)
    plan = build_plan(pipeline, name, bound, date(2026, 11, 3), settings.sql_root)
    return {sp.name: sp.schema_policy for sp in plan.sources}


def test_source_policy_overrides_globals_key_by_key(tmp_path: Path) -> None:
    policies = plan_policies(
        tmp_path,
        {"on_missing_column": "fail", "max_cast_failures": "1%"},
        {"on_new_column": "fail", "max_cast_failures": 0},
    )
    first, *others = list(policies.values())
    assert first == SchemaPolicy(
        on_new_column="fail", on_missing_column="fail", max_cast_failures=0
    )
    # a source without its own block takes globals' keys; the rest stay unset (defaults)
    assert others and all(
        p == SchemaPolicy(on_missing_column="fail", max_cast_failures=0.01) for p in others
    )


def test_unquoted_yaml_null_is_the_null_policy_and_auto_restores_the_default(
    tmp_path: Path,
) -> None:
    policies = plan_policies(tmp_path, {"on_missing_column": None}, {"on_missing_column": "auto"})
    first, *others = list(policies.values())
    assert first.on_missing_column == "auto"
    assert all(p.on_missing_column == "null" for p in others)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("sometimes", "'sometimes': Input should be 'auto', 'fail', 'warn' or 'null'"),
        (5.0, "a fraction is between 0 and 1"),
        ("lots", "is not a count (5), a fraction (0.01) or a percentage (1%)"),
        (-1, "cannot be negative"),
    ],
)
def test_bad_policy_values_name_file_line_and_key(tmp_path: Path, value: Any, needle: str) -> None:
    key = "on_missing_column" if value == "sometimes" else "max_cast_failures"
    data = copy.deepcopy(BASE)
    next(iter(data["sources"].values()))["schema_policy"] = {key: value}
    path = write_pipeline(tmp_path, data)
    with pytest.raises(PipelineInvalid) as info:
        load_pipeline(path, env={})
    (problem,) = [str(p) for p in info.value.problems]
    source = next(iter(data["sources"]))
    assert problem.startswith(f"{path}:")
    assert f" sources.{source}.schema_policy.{key}: " in problem
    assert needle in problem


def test_unknown_policy_key_suggests_the_right_one(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["globals"]["schema_policy"] = {"on_new_columns": "fail"}
    with pytest.raises(PipelineInvalid) as info:
        load_pipeline(write_pipeline(tmp_path, data), env={})
    assert "did you mean 'on_new_column'?" in str(info.value.problems[0])


# -- drift --------------------------------------------------------------------------------------


def test_drift_is_against_bronze_source_columns_and_none_on_first_load() -> None:
    bronze = ["ID", "AMOUNT", "NOTE", *METADATA_NAMES]
    assert Drift.between(None, ["ID", "X"]) == Drift((), ())
    assert Drift.between(bronze, ["ID", "AMOUNT", "NOTE"]) == Drift((), ())
    drift = Drift.between(bronze, ["ID", "EXTRA", "AMOUNT"])
    assert drift == Drift(("EXTRA",), ("NOTE",))
    assert drift.renamed == ("NOTE", "EXTRA")
    assert Drift(("A", "B"), ("C",)).renamed is None


def kinds(findings: tuple[Finding, ...]) -> list[tuple[str, str, Any]]:
    return [(f.kind, f.severity, dict(f.data)) for f in findings]


def test_default_policy_adds_new_columns_and_warns_on_untyped_missing() -> None:
    found = check_drift(Drift(("EXTRA",), ("NOTE",)), SchemaPolicy(), SILVER, BRONZE)
    assert kinds(found) == [
        ("missing_column", "warn", {"columns": ["NOTE"], "policy": "auto"}),
        ("new_column", "info", {"columns": ["EXTRA"], "policy": "add"}),
        ("renamed_column", "warn", {"from": "NOTE", "to": "EXTRA"}),
    ]
    assert found[0].message == (
        "column NOTE missing from this pull: it loads as NULL "
        "(bronze DB.BRONZE.T keeps it; on_missing_column: auto)"
    )
    assert (
        found[2].message == "NOTE looks renamed to EXTRA (NOTE left and EXTRA arrived in this pull)"
    )


@pytest.mark.parametrize(
    ("missing", "why"),
    [("AMOUNT", "silver types it"), ("LABEL", "silver types it"), ("ID", "silver keys on it")],
)
def test_default_policy_fails_for_a_typed_or_key_column(missing: str, why: str) -> None:
    with pytest.raises(DataError) as info:
        check_drift(Drift(("AMOUNT_USD",), (missing,)), SchemaPolicy(), SILVER, BRONZE)
    assert str(info.value) == (
        f"schema drift against bronze DB.BRONZE.T: column {missing} missing from this pull "
        f"({why}); {missing} looks renamed to AMOUNT_USD; nothing loaded (see schema_policy)"
    )
    assert [(f.kind, f.severity) for f in info.value.findings] == [
        ("missing_column", "error"),
        ("new_column", "info"),
        ("renamed_column", "warn"),
    ]
    assert info.value.findings[0].data["columns"] == [missing]
    # nothing was loaded, so what the policy let through is what would have happened
    assert info.value.findings[1].message == (
        "new column AMOUNT_USD in this pull: would be added to bronze DB.BRONZE.T as VARCHAR"
    )


def test_explicit_policies() -> None:
    drift = Drift(("EXTRA",), ("AMOUNT", "NOTE"))
    for mode, severity in (("warn", "warn"), ("null", "info")):
        found = check_drift(drift, SchemaPolicy(on_missing_column=mode), SILVER, BRONZE)
        assert kinds(found)[0] == (
            "missing_column",
            severity,
            {"columns": ["AMOUNT", "NOTE"], "policy": mode},
        )
        assert "columns AMOUNT, NOTE missing from this pull: they load as NULL" in found[0].message
    with pytest.raises(
        DataError, match=r"columns AMOUNT, NOTE missing from this pull \(on_missing_column: fail\)"
    ):
        check_drift(drift, SchemaPolicy(on_missing_column="fail"), SILVER, BRONZE)
    with pytest.raises(DataError) as info:
        check_drift(Drift(("EXTRA",), ()), SchemaPolicy(on_new_column="fail"), SILVER, BRONZE)
    assert "new column EXTRA in this pull (on_new_column: fail)" in str(info.value)
    assert kinds(info.value.findings) == [
        ("new_column", "error", {"columns": ["EXTRA"], "policy": "fail"})
    ]
    assert check_drift(Drift((), ()), SchemaPolicy(on_new_column="fail"), SILVER, BRONZE) == ()


# -- cast accounting ----------------------------------------------------------------------------


def test_cast_limit_arithmetic_is_exact() -> None:
    assert allowed(0, 1000) == 0
    assert allowed(5, 3) == 5
    assert allowed(0.01, 250) == 2  # rounded down
    assert allowed(0.29, 100) == 29  # 0.29 * 100 is 28.999… in binary floating point
    assert allowed(1.0, 7) == 7
    assert [describe_limit(v) for v in (0, 5, 0.01, 0.005, 1.0)] == ["0", "5", "1%", "0.5%", "100%"]


def test_cast_sql_counts_typed_columns_only_quoted() -> None:
    silver = SilverConfig(
        columns={"A": "NUMBER(38,0)", "B": "VARCHAR", "C": "VARIANT", "D": "DATE"}
    )
    assert typed_columns(silver) == [("A", "NUMBER(38,0)"), ("D", "DATE")]
    assert count_sql(BRONZE, typed_columns(silver)) == (
        """SELECT COUNT_IF("A" <> ''), COUNT_IF("A" <> '' AND TRY_CAST("A" AS NUMBER(38,0)) IS NULL), """
        """COUNT_IF("D" <> ''), COUNT_IF("D" <> '' AND TRY_CAST("D" AS DATE) IS NULL) """
        'FROM "DB"."BRONZE"."T"'
    )
    assert examples_sql(BRONZE, "A", "FLOAT") == (
        """SELECT "A" FROM "DB"."BRONZE"."T" WHERE "A" <> '' AND TRY_CAST("A" AS FLOAT) IS NULL """
        'GROUP BY "A" ORDER BY MIN("_XO_FILE_ROW_NUMBER") LIMIT 3'
    )
