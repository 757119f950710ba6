"""The chart's pipeline list is generated from pipelines/: order, errors, names, values file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from xoelt.deploy import (
    BEGIN_MARKER,
    END_MARKER,
    chart_pipelines,
    cronjob_name,
    helm_values,
    pipeline_label,
    pipelines_yaml,
    replace_generated,
    split_image,
    values_yaml,
    write_values_file,
)
from xoelt.errors import ConfigError
from xoelt.pipelines import discover, load_pipeline

REPO = Path(__file__).resolve().parents[2]
VALUES = REPO / "helm" / "xoelt" / "values.yaml"
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

PIPELINE = """\
dag:
  domain: {domain}
  pipeline_name: {name}
  schedule: "{schedule}"
  time_window:
    refresh_type: daily
    lag: {{ days: 1 }}
    timezone: "{tz}"
globals:
  snowflake:
    database: {database}
sources:
  things:
    source_type: s3_upload
    load_strategy: full_refresh
    extractor:
      bucket: landing
      prefix: "x/{{date}}/"
    snowflake:
      target_table: T_THINGS
"""


def add(
    root: Path,
    domain: str,
    name: str,
    *,
    schedule: str = "0 6 * * *",
    tz: str = "UTC",
    database: str = "DB",
    at: str | None = None,
) -> Path:
    """Write a valid pipeline file at ``root/<domain>/<name>.yaml`` (or ``root/<at>``)."""
    path = root / (at or f"{domain}/{name}.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = PIPELINE.format(domain=domain, name=name, schedule=schedule, tz=tz, database=database)
    path.write_text(text)
    return path


# --- the generator --------------------------------------------------------------------------


def test_repo_pipelines_all_listed_with_their_schedule_and_zone() -> None:
    entries = chart_pipelines(REPO / "pipelines")
    files = discover(REPO / "pipelines")
    assert len(entries) == len(files) > 0
    for path in files:
        p = load_pipeline(path, env={})
        assert {
            "name": p.name,
            "schedule": p.dag.schedule,
            "timeZone": p.dag.time_window.timezone,
        } in entries


def test_values_file_pipelines_match_pipelines_dir() -> None:
    """helm/xoelt/values.yaml lists exactly what is in pipelines/, in the generated form."""
    text = VALUES.read_text()
    hint = "regenerate: xoelt helm-values --write helm/xoelt/values.yaml"
    entries = chart_pipelines(REPO / "pipelines")
    assert yaml.safe_load(text)["pipelines"] == entries, hint
    assert replace_generated(text, entries) == text, hint


def test_sorted_by_name_whatever_the_file_layout(tmp_path: Path) -> None:
    add(tmp_path, "zeta", "a_daily", tz="Europe/Paris", schedule="15 2 * * 1-5")
    add(tmp_path, "alpha", "z_daily")
    add(tmp_path, "alpha", "b_daily", at="alpha/b_daily.yml")
    add(tmp_path, "mid", "x")
    first = chart_pipelines(tmp_path)
    assert [e["name"] for e in first] == ["alpha/b_daily", "alpha/z_daily", "mid/x", "zeta/a_daily"]
    assert first[-1] == {
        "name": "zeta/a_daily",
        "schedule": "15 2 * * 1-5",
        "timeZone": "Europe/Paris",
    }
    assert chart_pipelines(tmp_path) == first
    assert list(first[0]) == ["name", "schedule", "timeZone"]


def test_empty_root_gives_empty_list(tmp_path: Path) -> None:
    assert chart_pipelines(tmp_path) == []
    assert yaml.safe_load(pipelines_yaml([])) == {"pipelines": []}


def test_invalid_pipeline_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    add(tmp_path, "d", "good")
    bad = add(tmp_path, "d", "bad", tz="Mars/Olympus")
    with pytest.raises(ConfigError) as info:
        chart_pipelines(tmp_path)
    assert info.value.file == str(bad)
    assert str(bad) in str(info.value)
    assert "Mars/Olympus" in str(info.value)


def test_validated_without_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pipelines are loaded with env {}: a ${VAR} outside secrets fails even if VAR is set."""
    monkeypatch.setenv("XO_DB", "PROD")
    path = add(tmp_path, "d", "p", database="${XO_DB}")
    with pytest.raises(ConfigError, match="XO_DB is not set") as info:
        chart_pipelines(tmp_path)
    assert info.value.file == str(path)


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("0 6 L * *", "'L' in the day of month field is not a number"),
        ("0 6 * * 7", "'7': the day of week field takes 0-6"),
        ("0 6 * * 5-7", "'5-7': the day of week field takes 0-6"),
        ("0 6 * * MON-SUN", "'MON-SUN': a range cannot run backwards or wrap around"),
        ("0 6 * * 1#2", "'1#2' in the day of week field is not a number or a name SUN-SAT"),
        ("@every 1h", "is not one of @yearly"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_schedule_kubernetes_cannot_run_is_refused(
    tmp_path: Path, schedule: str, reason: str
) -> None:
    path = add(tmp_path, "d", "month_end", schedule=schedule)
    with pytest.raises(ConfigError, match=re.escape(reason)) as info:
        chart_pipelines(tmp_path)
    assert info.value.file == str(path)
    assert info.value.line == 4
    assert info.value.key == "dag.schedule"


def test_zone_kubernetes_cannot_load_is_refused(tmp_path: Path) -> None:
    path = add(tmp_path, "d", "p", tz="localtime")  # a file on this machine, not a zone
    with pytest.raises(ConfigError, match="'localtime' is not a zone") as info:
        chart_pipelines(tmp_path)
    assert info.value.file == str(path)
    assert info.value.key == "dag.time_window.timezone"


@pytest.mark.parametrize(
    "schedule",
    [
        "*/15 * * * *",
        "0 6 * * MON-FRI",
        "0,30 6-18/2 1 JAN,JUL ?",
        "5 4 * * sun",
        "0 6 * * 1-6,0",
        "@daily",
        "@hourly",
        "5/15 * * * *",
    ],
)
def test_schedules_kubernetes_accepts(tmp_path: Path, schedule: str) -> None:
    add(tmp_path, "d", "p", schedule=schedule)
    assert chart_pipelines(tmp_path)[0]["schedule"] == schedule


def test_file_that_run_would_not_find_is_refused(tmp_path: Path) -> None:
    path = add(tmp_path, "d", "real_name", at="d/other_file.yaml")
    with pytest.raises(ConfigError, match="xoelt run d/real_name") as info:
        chart_pipelines(tmp_path)
    assert info.value.file == str(path)
    assert info.value.key == "dag.pipeline_name"


def test_pipelines_sharing_a_cronjob_name_are_refused(tmp_path: Path) -> None:
    add(tmp_path, "d", "orders_daily")
    add(tmp_path, "d", "orders-daily")
    with pytest.raises(ConfigError, match="xoelt-d-orders-daily"):
        chart_pipelines(tmp_path)


# --- names ------------------------------------------------------------------------------------


def test_cronjob_name_short() -> None:
    assert cronjob_name("warbyparker/gladly_daily") == "xoelt-warbyparker-gladly-daily"
    assert cronjob_name("Shop/Orders_") == "xoelt-shop-orders"


def test_cronjob_name_long_is_cut_with_a_stable_hash() -> None:
    long_a = "warbyparker/" + "gladly_conversation_export_" * 3 + "a"
    long_b = "warbyparker/" + "gladly_conversation_export_" * 3 + "b"
    a, b = cronjob_name(long_a), cronjob_name(long_b)
    assert a != b
    assert a == cronjob_name(long_a)
    for name in (a, b):
        assert len(name) <= 52
        assert DNS1123.match(name), name
        assert name.startswith("xoelt-warbyparker-gladly-conversation")
        assert re.search(r"-[0-9a-f]{8}$", name)


def test_pipeline_label_value() -> None:
    assert pipeline_label("warbyparker/gladly_daily") == "warbyparker.gladly_daily"
    assert pipeline_label("_d/_x_") == "d._x"
    long = pipeline_label("d" * 40 + "/" + "p" * 40)
    assert len(long) <= 63
    assert LABEL_VALUE.match(long)


# --- values output ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("xoelt", {"repository": "xoelt"}),
        ("ghcr.io/wp/xoelt:1.2.3", {"repository": "ghcr.io/wp/xoelt", "tag": "1.2.3"}),
        ("registry:5000/xoelt", {"repository": "registry:5000/xoelt"}),
        (
            "registry:5000/xoelt:v1@sha256:abc",
            {"repository": "registry:5000/xoelt", "tag": "v1", "digest": "sha256:abc"},
        ),
    ],
)
def test_split_image(image: str, expected: dict[str, str]) -> None:
    assert split_image(image) == expected


def test_split_image_rejects_garbage() -> None:
    with pytest.raises(ConfigError):
        split_image(":tag")


def test_values_yaml_round_trips(tmp_path: Path) -> None:
    add(tmp_path, "d", "p", schedule="*/5 * * * *", tz="America/New_York")
    values = helm_values(tmp_path, image="ghcr.io/wp/xoelt:0.1.0")
    text = values_yaml(values)
    assert yaml.safe_load(text) == values
    assert '  - {name: "d/p", schedule: "*/5 * * * *", timeZone: "America/New_York"}' in text


def test_write_values_file_replaces_only_the_marked_block(tmp_path: Path) -> None:
    pipelines = tmp_path / "pipelines"
    add(pipelines, "d", "p")
    values = tmp_path / "values.yaml"
    values.write_text(f"image: {{tag: x}}\n{BEGIN_MARKER}\npipelines: []\n{END_MARKER}\nend: 1\n")
    before = values.read_text()
    assert write_values_file(values, pipelines, dry_run=True) is True
    assert values.read_text() == before
    assert write_values_file(values, pipelines) is True
    data = yaml.safe_load(values.read_text())
    assert data == {
        "image": {"tag": "x"},
        "pipelines": [{"name": "d/p", "schedule": "0 6 * * *", "timeZone": "UTC"}],
        "end": 1,
    }
    assert write_values_file(values, pipelines) is False


def test_write_values_file_without_markers_is_refused(tmp_path: Path) -> None:
    pipelines = tmp_path / "pipelines"
    add(pipelines, "d", "p")
    values = tmp_path / "values.yaml"
    values.write_text("pipelines: []\n")
    with pytest.raises(ConfigError, match="markers") as info:
        write_values_file(values, pipelines)
    assert info.value.file == str(values)
    assert values.read_text() == "pipelines: []\n"
    with pytest.raises(ConfigError, match="cannot read") as info:
        write_values_file(tmp_path / "missing.yaml", pipelines)
