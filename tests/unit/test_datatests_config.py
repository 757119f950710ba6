"""Data tests in YAML: every kind parses; bad ones are named by file, line and key.

Silver tests sit under ``sources.<name>.silver.tests``; a gold model's tests in its sidecar
``sql/gold/<domain>/<model>.yml``. The SQL each kind builds is checked on real engines in
tests/integration/test_datatests.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from xoelt.config.datatests import (
    AcceptedValues,
    Expression,
    Freshness,
    NotNull,
    Relationships,
    RowCount,
    Unique,
    Volume,
)
from xoelt.datatests.sql import Subject, expression_sql, row_check
from xoelt.gold import load_models
from xoelt.pipelines import PipelineInvalid, load_pipeline
from xoelt.warehouse.base import TableRef

PIPELINE = """\
dag:
  domain: demo
  pipeline_name: p
  schedule: "0 6 * * *"
  time_window: {{ refresh_type: daily, lag: {{ days: 1 }} }}
globals:
  snowflake: {{ database: DB }}
sources:
  things:
    source_type: s3_upload
    load_strategy: full_refresh
    extractor: {{ bucket: landing, prefix: "x/{{date}}/" }}
    snowflake: {{ target_table: T_THINGS }}
    silver:
      primary_key: [id]
      tests:
{tests}
"""


def write(tmp_path: Path, tests: str) -> Path:
    path = tmp_path / "p.yaml"
    body = textwrap.indent(textwrap.dedent(tests).strip("\n"), " " * 8)
    path.write_text(PIPELINE.format(tests=body))
    return path


def problems(tmp_path: Path, tests: str) -> list[str]:
    with pytest.raises(PipelineInvalid) as caught:
        load_pipeline(write(tmp_path, tests), env={})
    assert caught.value.exit_code == 2
    return [str(p) for p in caught.value.problems]


def test_every_kind_parses_with_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        - { kind: not_null, column: id }
        - { kind: unique, columns: [id, day], severity: warn }
        - { kind: unique, columns: id, name: id_is_unique }
        - { kind: accepted_values, column: status, values: [open, 1, true] }
        - { kind: relationships, column: parent_id, to: silver.parents, field: id }
        - { kind: row_count, min: 1 }
        - { kind: volume, windows: 14 }
        - { kind: freshness, column: updated_at, max_age: { hours: 36 } }
        - kind: expression
          expression: |
            amount >= 0
            AND status <> 'x'
        """,
    )
    tests = load_pipeline(path, env={}).sources["things"].silver.tests
    kinds = [NotNull, Unique, Unique, AcceptedValues, Relationships, RowCount, Volume]
    assert [type(t) for t in tests] == [*kinds, Freshness, Expression]
    assert [t.severity for t in tests[:3]] == ["error", "warn", "error"]
    unique, single = tests[1], tests[2]
    assert isinstance(unique, Unique) and unique.columns == ["ID", "DAY"]
    assert isinstance(single, Unique) and (single.columns, single.name) == (["ID"], "id_is_unique")
    rel = tests[4]
    assert isinstance(rel, Relationships) and (rel.to, rel.field) == ("SILVER.PARENTS", "ID")
    volume = tests[6]
    assert isinstance(volume, Volume)
    assert (volume.windows, volume.min_percent, volume.max_percent) == (14, 50, 200)
    fresh = tests[7]
    assert isinstance(fresh, Freshness) and fresh.max_age.seconds == 36 * 3600
    assert isinstance(tests[8], Expression)
    assert tests[8].expression == "amount >= 0\nAND status <> 'x'"


@pytest.mark.parametrize(
    ("tests", "expected"),
    [
        (
            "- { kind: not_nul, column: id }",
            "p.yaml:17 sources.things.silver.tests.0.kind: 'not_nul' is not a data test kind; "
            "did you mean 'not_null'?",
        ),
        (
            "- { column: id }",
            "p.yaml:17 sources.things.silver.tests.0.kind: a data test needs kind: one of "
            "not_null, unique, accepted_values, relationships, row_count, volume, freshness, "
            "expression",
        ),
        (
            "- { kind: not_null, colum: id }",
            "p.yaml:17 sources.things.silver.tests.0.colum: unknown key 'colum'; "
            "did you mean 'column'?",
        ),
        (
            "- { kind: accepted_values, column: id }",
            "p.yaml:17 sources.things.silver.tests.0.values: required key is missing",
        ),
        (
            "- { kind: not_null, column: id, severity: fatal }",
            "p.yaml:17 sources.things.silver.tests.0.severity: 'fatal': Input should be 'warn' "
            "or 'error'",
        ),
        (
            "- { kind: row_count }",
            "p.yaml:17 sources.things.silver.tests.0: row_count needs min, max or both",
        ),
        (
            "- { kind: row_count, min: 5, max: 2 }",
            "p.yaml:17 sources.things.silver.tests.0: row_count min 5 is above max 2",
        ),
        (
            "- { kind: relationships, column: a, to: x.y.z.w, field: id }",
            "p.yaml:17 sources.things.silver.tests.0.to: 'x.y.z.w' is not TABLE, SCHEMA.TABLE "
            "or DATABASE.SCHEMA.TABLE",
        ),
        (
            "- { kind: freshness, column: ts, max_age: {} }",
            "p.yaml:17 sources.things.silver.tests.0.max_age: max_age must be longer than zero "
            "({hours: 36})",
        ),
        (
            '- { kind: expression, expression: "amount >= (" }',
            "p.yaml:17 sources.things.silver.tests.0.expression: 'amount >= (' does not parse "
            "as SQL: ",
        ),
        (
            '- { kind: expression, expression: "DELETE FROM t" }',
            "p.yaml:17 sources.things.silver.tests.0.expression: 'DELETE FROM t' must be a "
            "boolean expression over a row, not a statement",
        ),
        (
            '- { kind: not_null, column: "id; drop" }',
            "p.yaml:17 sources.things.silver.tests.0.column: ",
        ),
    ],
)
def test_bad_tests_are_named_by_file_line_and_key(
    tmp_path: Path, tests: str, expected: str
) -> None:
    (problem,) = problems(tmp_path, tests)
    assert problem.startswith(str(tmp_path / expected.split(" ", 1)[0]))
    assert problem.split(" ", 1)[1].startswith(expected.split(" ", 1)[1]), problem


def test_every_bad_test_is_reported_on_its_own_line(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        - { kind: not_null, column: id }
        - { kind: uniq, columns: [id] }
        - { kind: row_count }
        """,
    )
    assert [p.split(" ", 2)[1] for p in found] == [
        "sources.things.silver.tests.1.kind:",
        "sources.things.silver.tests.2:",
    ]
    assert [p.split(" ", 1)[0].rsplit(":", 1)[1] for p in found] == ["18", "19"]


def gold_root(tmp_path: Path, sidecar: str) -> Path:
    folder = tmp_path / "gold" / "shop"
    folder.mkdir(parents=True)
    (folder / "fct_orders.sql").write_text('SELECT 1 AS "ID"\n')
    (folder / "fct_orders.yml").write_text(textwrap.dedent(sidecar))
    return tmp_path


def test_gold_sidecar_gives_the_model_its_key_and_tests(tmp_path: Path) -> None:
    root = gold_root(
        tmp_path,
        """
        key: [id]
        tests:
          - { kind: unique, columns: [id] }
          - { kind: row_count, min: 1, max: 1000 }
        """,
    )
    (model,) = load_models("shop", "DB", "GOLD", None, root)
    assert model.key == ("ID",)
    assert [t.kind for t in model.tests] == ["unique", "row_count"]


@pytest.mark.parametrize(
    ("sidecar", "expected"),
    [
        (
            "tests:\n  - { kind: volume }\n",
            ":1 tests: tests[0]: volume is for silver tables",
        ),
        ("tests:\n  - { kind: unique }\n", ":2 tests.0.columns: required key is missing"),
        ("keys: [id]\n", ":1 keys: unknown key 'keys'; did you mean 'key'?"),
    ],
)
def test_gold_sidecar_errors_name_the_sidecar(tmp_path: Path, sidecar: str, expected: str) -> None:
    root = gold_root(tmp_path, sidecar)
    with pytest.raises(PipelineInvalid) as caught:
        load_models("shop", "DB", "GOLD", None, root)
    message = str(caught.value)
    where = str(root / "gold" / "shop" / "fct_orders.yml")
    assert message.startswith(where + expected.split(" ")[0]), message
    assert expected.split(" ", 1)[1] in message


def test_sql_quotes_names_and_values_and_keeps_expressions_whole() -> None:
    table = TableRef("DB", "SILVER", "THINGS")
    subject = Subject("things", table, "\"_XO_WINDOW_START\" = 'x'::TIMESTAMP_TZ", ("ID",))
    values = AcceptedValues(kind="accepted_values", column="STATUS", values=["it's", 2])
    check = row_check(values, subject)
    assert check is not None
    assert check.count == (
        'SELECT COUNT(*) FROM "DB"."SILVER"."THINGS" WHERE ("_XO_WINDOW_START" = '
        "'x'::TIMESTAMP_TZ) AND \"STATUS\" IS NOT NULL AND \"STATUS\" NOT IN ('it''s', 2)"
    )
    assert check.examples is not None and check.examples.endswith('ORDER BY "ID" LIMIT 5')
    # OR inside the user's expression stays inside its parentheses
    assert expression_sql("a = 1 or b = 2") == "a = 1 OR b = 2"
    expr = row_check(Expression(kind="expression", expression="a = 1 or b = 2"), subject)
    assert expr is not None and "NOT COALESCE((a = 1 OR b = 2), FALSE)" in expr.count
