"""The chart's values.schema.json agrees with xoelt's own checks, and its defaults with the README."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from xoelt.config.cron import kubernetes_schedule_problem, kubernetes_zone_problem, schedule_pattern
from xoelt.deploy import chart_pipelines

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "xoelt"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
README = (REPO / "README.md").read_text()
PATTERN = re.compile(SCHEMA["definitions"]["schedule"]["pattern"])

REFUSED = [
    "0 6 * * 7",
    "0 6 * * 5-7",
    "0 6 * * MON-SUN",
    "0 6 * * 6-0",
    "0 6 * DEC-JAN *",
    "0 6 L * *",
    "0 6 * * 1#2",
    "0 6 * * 5L",
    "0 6 1W * *",
    "H 6 * * *",
    "0 24 * * *",
    "60 6 * * *",
    "0 6 0 * *",
    "0 6 32 * *",
    "0 6 * 13 *",
    "? 6 * * *",
    "*/0 6 * * *",
    "0 6 * *",
    "0 6 * * * 2026",
    "TZ=UTC 0 6 * * *",
    "@every 1h",
    "@reboot",
    "1,,2 6 * * *",
]
ACCEPTED = [
    "50 6 * * *",
    "*/15 * * * *",
    "0 6 * * MON-FRI",
    "0 6 * * mon-fri",
    "0,30 6-18/2 1 JAN,JUL ?",
    "0 6 ? * SUN-SAT",
    "0 6 * * 1-6,0",
    "5/15 * * * *",
    "0 6 */2 * 1",
    "0 0 1 */3 *",
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
]


def test_schedule_pattern_is_the_one_xoelt_builds() -> None:
    assert SCHEMA["definitions"]["schedule"]["pattern"] == schedule_pattern()


@pytest.mark.parametrize("schedule", REFUSED)
def test_refused_by_the_schema_and_by_xoelt(schedule: str) -> None:
    assert not PATTERN.match(schedule)
    assert kubernetes_schedule_problem(schedule)


@pytest.mark.parametrize("schedule", ACCEPTED)
def test_accepted_by_the_schema_and_by_xoelt(schedule: str) -> None:
    assert PATTERN.match(schedule)
    assert kubernetes_schedule_problem(schedule) is None


def test_the_schema_is_never_stricter_than_xoelt_about_numeric_ranges() -> None:
    # range order in minute/hour/day-of-month is left to validate / helm-values
    assert PATTERN.match("30-10 6 * * *")
    assert "backwards" in str(kubernetes_schedule_problem("30-10 6 * * *"))


def test_every_listed_zone_is_one_kubernetes_loads() -> None:
    zones = SCHEMA["definitions"]["timeZone"]["enum"]
    assert zones == sorted(set(zones)) and len(zones) > 400
    assert [z for z in zones if kubernetes_zone_problem(z)] == []
    assert {"UTC", "America/New_York", "Europe/London", "Asia/Kolkata"} <= set(zones)
    assert "Mars/Olympus" not in zones and "Local" not in zones


def test_every_pipeline_validates_against_the_schema() -> None:
    zones = set(SCHEMA["definitions"]["timeZone"]["enum"])
    for entry in chart_pipelines(REPO / "pipelines"):
        assert PATTERN.match(entry["schedule"]) and entry["timeZone"] in zones


def test_default_target_is_the_one_the_readme_defines() -> None:
    block = re.search(r"`targets\.yaml`:\n\n```yaml\n(.*?)```", README, re.S)
    assert block, "README shows a targets.yaml example"
    assert VALUES["target"] in yaml.safe_load(block.group(1))


def test_readme_shows_the_secret_and_configmap_the_chart_expects() -> None:
    assert f"kubectl create secret generic {VALUES['existingSecret']} " in README
    assert f"kubectl create configmap {VALUES['targetsFile']['configMap']} " in README
    assert f"--from-file={VALUES['targetsFile']['key']}" in README
