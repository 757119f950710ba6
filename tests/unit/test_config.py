"""Pipeline YAML: the contract file loads; bad input names file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from xoelt.config.types import SecretRef
from xoelt.errors import ConfigError, InputError
from xoelt.pipelines import PipelineInvalid, load_pipeline, resolve

REPO = Path(__file__).resolve().parents[2]

BASE = """\
dag:
  domain: demo
  pipeline_name: p
  schedule: "0 6 * * *"
  time_window:
    refresh_type: daily
    lag: {{ days: 1 }}
    timezone: "{tz}"
globals:
  snowflake:
    database: DB
sources:
  things:
    source_type: {source_type}
    load_strategy: full_refresh
    extractor:
      bucket: landing
      prefix: "x/{{date}}/"
    snowflake:
      target_table: {table}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def base(**kw: str) -> str:
    values = {"tz": "UTC", "source_type": "s3_upload", "table": "T_THINGS", **kw}
    return BASE.format(**values)


def test_contract_pipeline_loads_unchanged() -> None:
    pipeline = load_pipeline(REPO / "pipelines/warbyparker/gladly_daily.yaml", env={})
    assert pipeline.name == "warbyparker/gladly_daily"
    src = pipeline.sources["contact_timestamps"]
    assert src.source_type == "gladly_api"
    assert src.target.target_table == "GLADLY_CONTACT_TIMESTAMPS"
    assert pipeline.globals.snowflake.schema_ == "BRONZE"


def test_valid_minimal(tmp_path: Path) -> None:
    p = load_pipeline(write(tmp_path, base()), env={})
    assert p.sources["things"].silver.table is None
    assert p.extractor_config("things").model_dump()["bucket"] == "landing"


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PipelineInvalid) as info:
        load_pipeline(write(tmp_path, text), env={})
    return [str(p) for p in info.value.problems]


def test_unknown_key_names_line_and_suggests(tmp_path: Path) -> None:
    text = base().replace("load_strategy:", "load_stratgy:")
    (msg,) = [m for m in problems(tmp_path, text) if "unknown key" in m]
    assert msg.startswith(f"{tmp_path / 'p.yaml'}:15 sources.things.load_stratgy: unknown key")
    assert "did you mean 'load_strategy'?" in msg


def test_unknown_key_inside_extractor(tmp_path: Path) -> None:
    text = base().replace("prefix:", "prefx:")
    msgs = problems(tmp_path, text)
    assert any(
        ":18 sources.things.extractor.prefx: unknown key" in m and "'prefix'" in m for m in msgs
    )


def test_unknown_source_type_lists_valid(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, base(source_type="salesforce"))
    assert ":14 sources.things.source_type:" in msg
    assert "unknown source_type 'salesforce'; valid:" in msg and "s3_upload" in msg


def test_invalid_cron(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, base().replace('"0 6 * * *"', '"61 6 * * *"'))
    assert ":4 dag.schedule:" in msg and "cron" in msg


def test_unknown_timezone(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, base(tz="Mars/Olympus"))
    assert ":8 dag.time_window.timezone:" in msg and "Mars/Olympus" in msg


def test_sql_injection_in_table_name(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, base(table='"X; DROP TABLE Y"'))
    assert ":20 sources.things.snowflake.target_table:" in msg
    assert "not a valid identifier" in msg


def test_bad_load_strategy_lists_choices(tmp_path: Path) -> None:
    (msg,) = problems(tmp_path, base().replace("full_refresh", "sometimes"))
    assert "'sometimes'" in msg and "full_refresh" in msg and "historical" in msg


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_pipeline(write(tmp_path, base().replace("  domain: demo", "  domain: [demo")), env={})
    assert "YAML syntax error" in str(info.value)
    assert f"{tmp_path / 'p.yaml'}:" in str(info.value)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_pipeline(Path("/nonexistent/p.yaml"))


def test_env_interpolation_and_missing_variable(tmp_path: Path) -> None:
    text = base().replace("database: DB", "database: ${DB_NAME}")
    p = load_pipeline(write(tmp_path, text), env={"DB_NAME": "wbp_prod"})
    assert p.globals.snowflake.database == "WBP_PROD"
    msgs = problems(tmp_path, text)
    assert any("environment variable DB_NAME is not set" in m for m in msgs)


def test_secret_reference_is_never_resolved_early() -> None:
    ref = SecretRef.parse("${GLADLY_API_TOKEN}", key="token")
    assert "GLADLY_API_TOKEN" in repr(ref)
    assert ref.resolve({"GLADLY_API_TOKEN": "s3cr3t"}).get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(ref.resolve({"GLADLY_API_TOKEN": "s3cr3t"}))
    with pytest.raises(ConfigError, match="GLADLY_API_TOKEN is not set"):
        ref.resolve({})
    with pytest.raises(ValueError, match="references"):
        SecretRef.parse("literal-token")


def test_resolve_by_name(tmp_path: Path) -> None:
    root = tmp_path / "pipelines"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "one.yaml").write_text("x: 1")
    (root / "b" / "one.yaml").write_text("x: 1")
    (root / "b" / "two.yaml").write_text("x: 1")
    assert resolve("b/two", root) == root / "b" / "two.yaml"
    assert resolve("two", root) == root / "b" / "two.yaml"
    with pytest.raises(InputError, match="ambiguous"):
        resolve("one", root)
    with pytest.raises(InputError, match="did you mean 'two'"):
        resolve("tw", root)


def test_two_sources_writing_one_table_are_refused(tmp_path: Path) -> None:
    second = (
        "  other:\n"
        "    source_type: s3_upload\n"
        "    load_strategy: full_refresh\n"
        "    extractor:\n"
        "      bucket: landing\n"
        "      prefix: other/\n"
        "    snowflake:\n"
        "      target_table: T_THINGS\n"
        "    silver:\n"
        "      table: THINGS\n"
    )
    msgs = problems(tmp_path, base() + second)
    assert any(
        "sources.other.snowflake.target_table: bronze table DB.BRONZE.T_THINGS is also "
        "source things's" in m
        for m in msgs
    ), msgs
    assert any("sources.other.silver.table: silver table DB.SILVER.THINGS" in m for m in msgs)
