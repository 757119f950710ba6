"""Derived sources and bronze-only sources in the pipeline YAML: what validates, and each
mistake as one problem naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from xoelt.config.models import Pipeline
from xoelt.pipelines import PipelineInvalid, load_pipeline
from xoelt.plan import run_order

HEAD = """\
dag:
  domain: demo
  pipeline_name: p
  schedule: "0 6 * * *"
  time_window: { refresh_type: daily, lag: { days: 1 } }
globals:
  snowflake: { database: DB }
sources:
  people:
    source_type: s3_upload
    load_strategy: full_refresh
    extractor: { bucket: landing, prefix: "people/{date}/" }
    snowflake: { target_table: LANDING_PEOPLE }
    silver:
      enabled: false
"""
DERIVED = """\
  team_a:
    from_source: people
    where: "TEAM = 'a'"
    load_strategy: historical
    silver: { table: TEAM_A, primary_key: [ID] }
"""


def load(tmp_path: Path, sources: str, head: str = HEAD) -> Pipeline:
    path = tmp_path / "p.yaml"
    path.write_text(head + sources)
    return load_pipeline(path, env={})


def problems(tmp_path: Path, sources: str, head: str = HEAD) -> list[str]:
    with pytest.raises(PipelineInvalid) as info:
        load(tmp_path, sources, head)
    return [str(p) for p in info.value.problems]


def test_a_parent_and_derived_sources_load_in_run_order(tmp_path: Path) -> None:
    other = DERIVED.replace("team_a", "team_b").replace("'a'", "'b'").replace("TEAM_A", "TEAM_B")
    pipeline = load(tmp_path, other.replace("historical", "full_refresh") + DERIVED)
    assert run_order(pipeline) == ["people", "team_b", "team_a"]
    team_a = pipeline.sources["team_a"]
    assert (team_a.derived, team_a.from_source, team_a.where) == (True, "people", "TEAM = 'a'")
    assert pipeline.extracting.keys() == {"people"}
    assert not pipeline.sources["people"].silver.enabled


def test_a_derived_source_listed_before_its_parent_still_runs_after_it(tmp_path: Path) -> None:
    head, people = HEAD.split("  people:\n")
    pipeline = load(tmp_path, DERIVED + "  people:\n" + people, head)
    assert run_order(pipeline) == ["people", "team_a"]


def test_unknown_parent_is_named_with_its_line_and_a_hint(tmp_path: Path) -> None:
    found = problems(tmp_path, DERIVED.replace("from_source: people", "from_source: peple"))
    assert len(found) == 1, found
    assert found[0].endswith(
        ":17 sources.team_a.from_source: no source 'peple' in this pipeline; did you mean 'people'?"
    ), found


NESTED = """\
  team_aa:
    from_source: team_a
    where: "NAME LIKE 'A%'"
    load_strategy: full_refresh
    silver: { table: TEAM_AA }
  me:
    from_source: me
    load_strategy: full_refresh
"""


def test_derived_of_derived_and_self_are_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, DERIVED + NESTED)
    assert len(found) == 2, found
    assert (
        "sources.team_aa.from_source: source 'team_a' is itself derived (from people)" in found[0]
    )
    assert "sources.me.from_source: a source cannot derive from itself" in found[1]


@pytest.mark.parametrize(
    ("where", "why"),
    [
        ("TEAM = ", "does not parse as SQL"),
        ("TEAM", "is not a predicate"),
        ("UPPER(TEAM)", "is not a predicate"),
        ("SELECT 1", "not a statement"),
        ("TEAM = 'a'; DROP TABLE X", "must be one SQL expression"),
        ("TEAM = 'a' -- only a", "no SQL comments"),
    ],
)
def test_a_where_that_is_no_predicate_is_a_config_error(
    tmp_path: Path, where: str, why: str
) -> None:
    found = problems(tmp_path, DERIVED.replace("\"TEAM = 'a'\"", '"' + where + '"'))
    assert len(found) == 1 and ":18 sources.team_a.where:" in found[0], found
    assert why in found[0]


def test_predicates_of_every_usual_shape_validate(tmp_path: Path) -> None:
    for where in (
        "TEAM IN ('a', 'b') AND NOT NAME IS NULL",
        "(AGE > '30' OR NAME LIKE 'A%')",
        "TEAM <> 'c'",
        "TRUE",
    ):
        load(tmp_path, DERIVED.replace("\"TEAM = 'a'\"", '"' + where + '"'))


def test_silver_keys_on_a_disabled_silver_are_refused(tmp_path: Path) -> None:
    head = HEAD.replace("      enabled: false\n", "      enabled: false\n      table: PEOPLE\n")
    head += "      tests:\n        - { kind: not_null, column: ID }\n"
    found = problems(tmp_path, "", head)
    assert len(found) == 1, found
    assert "sources.people.silver: table, tests: not with enabled: false" in found[0]


def test_a_bronze_only_source_needs_no_primary_key_for_a_keyed_strategy(tmp_path: Path) -> None:
    load(tmp_path, "", HEAD.replace("load_strategy: full_refresh", "load_strategy: historical"))


def test_a_derived_source_extracts_nothing_and_has_a_silver(tmp_path: Path) -> None:
    extra = DERIVED.replace(
        "    load_strategy: historical\n",
        "    load_strategy: historical\n    source_type: s3_upload\n"
        "    snowflake: { target_table: T }\n",
    )
    found = problems(tmp_path, extra)
    assert (
        len(found) == 1 and "sources.team_a: source_type, snowflake: a derived source" in found[0]
    )
    disabled = DERIVED.replace(
        "silver: { table: TEAM_A, primary_key: [ID] }", "silver: { enabled: false }"
    )
    assert "silver.enabled cannot be false" in problems(tmp_path, disabled)[0]


def test_where_without_from_source_and_a_real_source_without_type(tmp_path: Path) -> None:
    head = HEAD.replace("    source_type: s3_upload\n", "    where: \"TEAM = 'a'\"\n")
    found = problems(tmp_path, "", head)
    assert len(found) == 1 and "where: only for a derived source" in found[0], found
    head = HEAD.replace("    source_type: s3_upload\n", "")
    found = problems(tmp_path, "", head)
    assert "source_type required (or from_source" in found[0], found


def test_two_derived_sources_writing_one_silver_table_are_refused(tmp_path: Path) -> None:
    twin = DERIVED.replace("team_a:", "team_a2:").replace("'a'", "'A'")
    found = problems(tmp_path, DERIVED + twin)
    assert len(found) == 1 and "silver table DB.SILVER.TEAM_A is also source team_a's" in found[0]
