"""The chart's ``helm test`` hook: a Pod running ``xoelt doctor`` like the runs are configured.

Rendered by Helm's own Go library (helm-python-sdk) and validated against the Kubernetes
schemas, as the CronJobs are (tests/integration/test_helm_chart.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from xoelt.cli import cli

CHART = Path(__file__).resolve().parents[2] / "helm" / "xoelt"
HOOK = "xoelt/templates/tests/doctor.yaml"


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def hook(chart: helm.Chart, values: dict[str, Any] | None = None) -> dict[str, Any] | None:
    text = chart.render(values, name="xo", namespace="data").get(HOOK, "")
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert len(docs) <= 1
    return docs[0] if docs else None


def test_the_hook_runs_doctor_on_the_scheduled_pipelines(chart: helm.Chart) -> None:
    pod = hook(chart)
    assert pod is not None
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "xoelt-doctor"
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 300
    (container,) = spec["containers"]
    assert container["command"] == ["xoelt"]
    scheduled = [
        p["name"] for p in chart.values["pipelines"] if p["name"] != "demo/gladly_demo"
    ]  # the demo is deployed suspended
    assert container["args"] == ["doctor", "--timeout", "20", *scheduled]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["XOELT_TARGET"] == chart.values["target"]
    assert env["XOELT_TARGETS"] == "/etc/xoelt/targets.yaml"
    assert container["envFrom"] == [{"secretRef": {"name": "xoelt-env"}}]
    assert {m["name"] for m in container["volumeMounts"]} == {"scratch", "targets"}
    # the options the hook passes are ones `xoelt doctor` takes
    params = {p.name for p in cli.commands["doctor"].params}
    assert {"timeout", "pipelines"} <= params
    for version in ("1.29.0", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(pod, version, strict=True)


def test_the_hook_follows_overrides_and_can_be_turned_off(chart: helm.Chart) -> None:
    pipelines = [
        {"name": "a/one", "schedule": "0 6 * * *", "timeZone": "UTC"},
        {"name": "a/two", "schedule": "0 7 * * *", "timeZone": "UTC", "suspend": True},
        {"name": "a/three", "schedule": "0 8 * * *", "timeZone": "UTC"},
    ]
    values = {
        "pipelines": pipelines,
        "pipelineOverrides": {"a/three": {"suspend": True}},
        "target": "prod",
        "doctorTest": {"checkTimeoutSeconds": 5},
    }
    pod = hook(chart, values)
    assert pod is not None
    assert pod["spec"]["containers"][0]["args"] == ["doctor", "--timeout", "5", "a/one"]
    assert hook(chart, {**values, "doctorTest": {"enabled": False}}) is None
    assert hook(chart, {**values, "suspend": True}) is None  # nothing scheduled, nothing to test


def test_helm_lint_accepts_the_hook() -> None:
    report = helm.lint(CHART, None, strict=True, kube_version="v1.29.0")
    assert report["errors"] == []
