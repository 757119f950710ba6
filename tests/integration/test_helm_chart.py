"""The Helm chart, rendered and linted by Helm's own Go library (helm-python-sdk, no binary).

Every rendered manifest is validated against Kubernetes' OpenAPI schemas (kubernetes-validate,
strict: unknown fields are errors) for 1.29 (the first release that rejects ``TZ=`` in a
schedule) and the newest bundled release.
"""

from __future__ import annotations

import copy
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from xoelt.deploy import cronjob_name, pipeline_label

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "xoelt"
KUBE_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LONG = "warbyparker/gladly_conversation_export_with_attachments_intraday_hourly"

OVERRIDES: dict[str, Any] = {
    "image": {"repository": "ghcr.io/wp/xoelt", "tag": "1.4.2", "pullPolicy": "Always"},
    "existingSecret": "wp-prod-env",
    "target": "prod",
    "env": [{"name": "AWS_REGION", "value": "us-east-1"}],
    "backoffLimit": 3,
    "activeDeadlineSeconds": 7200,
    "startingDeadlineSeconds": 600,
    "successfulJobsHistoryLimit": 5,
    "failedJobsHistoryLimit": 7,
    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "nodeSelector": {"workload": "batch"},
    "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
    "targetsFile": {"configMap": "", "secret": "xoelt-targets-secret"},
    "pipelineOverrides": {"sales/orders_daily": {"suspend": True, "backoffLimit": 0}},
    "pipelines": [
        {"name": LONG, "schedule": "5 * * * *", "timeZone": "Europe/London"},
        {"name": LONG + "2", "schedule": "35 * * * *", "timeZone": "Europe/London"},
        {
            "name": "sales/orders_daily",
            "schedule": "0 2 * * *",
            "timeZone": "UTC",
            "backoffLimit": 5,
            "resources": {"limits": {"memory": "4Gi"}},
            "env": [{"name": "ORDERS_PAGE_SIZE", "value": "500"}],
        },
    ],
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every manifest the chart renders (NOTES.txt and the test hooks excluded), parsed."""
    out = chart.render(values, name="xo", namespace="data")
    docs: list[dict[str, Any]] = []
    for path, text in sorted(out.items()):
        if not path.endswith("NOTES.txt") and "/templates/tests/" not in path:
            docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def by_pipeline(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["annotations"]["xoelt/pipeline"]: d for d in docs}


def pod(cronjob: dict[str, Any]) -> dict[str, Any]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def container(cronjob: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod(cronjob)["containers"]
    return only


def env_of(cronjob: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(cronjob)["env"]}


@pytest.fixture(scope="module")
def defaults(chart: helm.Chart) -> list[dict[str, Any]]:
    return render(chart)


@pytest.fixture(scope="module")
def overridden(chart: helm.Chart) -> list[dict[str, Any]]:
    return render(chart, OVERRIDES)


def test_one_cronjob_per_pipeline_with_its_schedule_and_zone(
    chart: helm.Chart, defaults: list[dict[str, Any]]
) -> None:
    values = chart.values
    assert [d["kind"] for d in defaults] == ["CronJob"] * len(values["pipelines"])
    jobs = by_pipeline(defaults)
    assert sorted(jobs) == sorted(p["name"] for p in values["pipelines"])
    for entry in values["pipelines"]:
        job = jobs[entry["name"]]
        assert job["apiVersion"] == "batch/v1"
        assert job["spec"]["schedule"] == entry["schedule"]
        assert "TZ=" not in job["spec"]["schedule"]
        assert job["spec"]["timeZone"] == entry["timeZone"]
        assert job["metadata"]["name"] == cronjob_name(entry["name"])
        assert job["metadata"]["namespace"] == "data"


def test_defaults_job_settings(chart: helm.Chart, defaults: list[dict[str, Any]]) -> None:
    values = chart.values
    for job in defaults:
        name = job["metadata"]["annotations"]["xoelt/pipeline"]
        spec, jobspec = job["spec"], job["spec"]["jobTemplate"]["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["startingDeadlineSeconds"] == values["startingDeadlineSeconds"] > 0
        assert spec["successfulJobsHistoryLimit"] == values["successfulJobsHistoryLimit"]
        assert spec["failedJobsHistoryLimit"] == values["failedJobsHistoryLimit"]
        assert jobspec["backoffLimit"] == values["backoffLimit"]
        assert jobspec["activeDeadlineSeconds"] == values["activeDeadlineSeconds"]
        assert jobspec["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2]
        assert pod(job)["restartPolicy"] == "Never"
        c = container(job)
        assert c["command"] == ["xoelt"]
        assert c["args"] == ["run", name]
        assert "--date" not in c["args"]
        assert c["image"] == f"xoelt:{chart.metadata['appVersion']}"
        assert c["resources"] == values["resources"]
        assert c["envFrom"] == [{"secretRef": {"name": values["existingSecret"]}}]
        assert env_of(job)["XOELT_TARGET"] == values["target"]
        assert env_of(job)["XOELT_TARGETS"] == "/etc/xoelt/targets.yaml"
        # Nothing secret in the manifest itself: only references to a Secret.
        assert not [e for e in c["env"] if re.search("TOKEN|PASSWORD|SECRET", e["name"])]


def test_defaults_suspend_only_the_demo(defaults: list[dict[str, Any]]) -> None:
    suspended = {n for n, j in by_pipeline(defaults).items() if j["spec"]["suspend"]}
    assert suspended <= {"demo/gladly_demo"}


def test_pod_is_non_root_read_only_with_scratch_for_xoelt_home(
    defaults: list[dict[str, Any]],
) -> None:
    for job in defaults:
        spec, c = pod(job), container(job)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]
        assert env_of(job)["XOELT_HOME"].startswith("/tmp/")
        assert volumes["targets"]["configMap"]["name"] == "xoelt-targets"


def test_labels(chart: helm.Chart, defaults: list[dict[str, Any]]) -> None:
    for job in defaults:
        name = job["metadata"]["annotations"]["xoelt/pipeline"]
        for meta in (
            job["metadata"],
            job["spec"]["jobTemplate"]["metadata"],
            job["spec"]["jobTemplate"]["spec"]["template"]["metadata"],
        ):
            labels = meta["labels"]
            assert labels["helm.sh/chart"] == f"xoelt-{chart.metadata['version']}"
            assert labels["app.kubernetes.io/name"] == "xoelt"
            assert labels["app.kubernetes.io/instance"] == "xo"
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            assert labels["xoelt/pipeline"] == pipeline_label(name)
            assert all(LABEL_VALUE.match(str(v)) and len(str(v)) <= 63 for v in labels.values())


def test_overrides(overridden: list[dict[str, Any]]) -> None:
    jobs = by_pipeline(overridden)
    assert len(jobs) == 3
    for job in jobs.values():
        c = container(job)
        assert c["image"] == "ghcr.io/wp/xoelt:1.4.2"
        assert c["imagePullPolicy"] == "Always"
        assert c["envFrom"] == [{"secretRef": {"name": "wp-prod-env"}}]
        assert env_of(job)["XOELT_TARGET"] == "prod"
        assert env_of(job)["AWS_REGION"] == "us-east-1"
        assert job["spec"]["startingDeadlineSeconds"] == 600
        assert job["spec"]["successfulJobsHistoryLimit"] == 5
        assert job["spec"]["failedJobsHistoryLimit"] == 7
        assert job["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 7200
        assert pod(job)["nodeSelector"] == {"workload": "batch"}
        assert pod(job)["tolerations"] == OVERRIDES["tolerations"]
        volumes = {v["name"]: v for v in pod(job)["volumes"]}
        assert volumes["targets"]["secret"]["secretName"] == "xoelt-targets-secret"
    long = jobs[LONG]
    assert long["spec"]["suspend"] is False
    assert long["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 3
    # Helm merges maps with the defaults: the default CPU limit stays unless set to null.
    assert container(long)["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }
    # Entry overrides beat defaults; pipelineOverrides beat entries; entry env is added.
    orders = jobs["sales/orders_daily"]
    assert orders["spec"]["suspend"] is True
    assert orders["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0
    assert container(orders)["resources"] == {"limits": {"memory": "4Gi"}}
    assert env_of(orders)["ORDERS_PAGE_SIZE"] == "500"
    assert env_of(orders)["AWS_REGION"] == "us-east-1"


def test_long_pipeline_names_give_short_distinct_dns_names(
    overridden: list[dict[str, Any]],
) -> None:
    jobs = by_pipeline(overridden)
    names = {n: j["metadata"]["name"] for n, j in jobs.items()}
    assert len(set(names.values())) == len(names)
    for pipeline, name in names.items():
        assert len(name) <= 52, name
        assert DNS1123_LABEL.match(name), name
        assert name == cronjob_name(pipeline)  # chart and Python agree
        assert jobs[pipeline]["metadata"]["labels"]["xoelt/pipeline"] == pipeline_label(pipeline)
    assert len(names[LONG]) > 45
    assert re.search(r"-[0-9a-f]{8}$", names[LONG])


def test_optional_parts_can_be_switched_off(chart: helm.Chart) -> None:
    values = {
        "existingSecret": "",
        "targetsFile": {"configMap": "", "secret": ""},
        "target": "",
        "podFailurePolicy": None,
        "startingDeadlineSeconds": None,
    }
    for job in render(chart, values):
        assert "startingDeadlineSeconds" not in job["spec"]
        assert "podFailurePolicy" not in job["spec"]["jobTemplate"]["spec"]
        c = container(job)
        assert "envFrom" not in c
        assert {"XOELT_TARGET", "XOELT_TARGETS"}.isdisjoint(env_of(job))
        assert [v["name"] for v in pod(job)["volumes"]] == ["scratch"]


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_manifests_validate_against_kubernetes_schemas(
    defaults: list[dict[str, Any]], overridden: list[dict[str, Any]], version: str
) -> None:
    for doc in defaults + overridden:
        kubernetes_validate.validate(doc, version, strict=True)


def test_schema_validation_is_not_vacuous(defaults: list[dict[str, Any]]) -> None:
    doc = copy.deepcopy(defaults[0])
    pod(doc)["containers"][0]["envFromm"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBE_VERSIONS[0], strict=True)


BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    # what croniter takes and Kubernetes refuses: day of week 0-6, ranges that do not wrap
    "sunday as 7": (
        {"pipelines": [{"name": "d/p", "schedule": "0 6 * * 7", "timeZone": "UTC"}]},
        "'/pipelines/0/schedule': '0 6 * * 7' does not match pattern",
    ),
    "range to 7": (
        {"pipelines": [{"name": "d/p", "schedule": "0 6 * * 5-7", "timeZone": "UTC"}]},
        "'0 6 * * 5-7' does not match pattern",
    ),
    "wrapping range": (
        {"pipelines": [{"name": "d/p", "schedule": "0 6 * * MON-SUN", "timeZone": "UTC"}]},
        "'0 6 * * MON-SUN' does not match pattern",
    ),
    "quartz L": (
        {"pipelines": [{"name": "d/p", "schedule": "0 6 L * *", "timeZone": "UTC"}]},
        "'0 6 L * *' does not match pattern",
    ),
    "TZ= in schedule": (
        {"pipelines": [{"name": "d/p", "schedule": "TZ=UTC 0 6 * * *", "timeZone": "UTC"}]},
        "does not match pattern",
    ),
    "zone not in the tz database": (
        {"pipelines": [{"name": "d/p", "schedule": "0 6 * * *", "timeZone": "Mars/Olympus"}]},
        "'/pipelines/0/timeZone': value must be one of",
    ),
    "no zone": (
        {"pipelines": [{"name": "d/p", "schedule": "0 6 * * *"}]},
        "missing property 'timeZone'",
    ),
    "unknown pipeline key": (
        {"pipelines": [{"name": "d/p", "schedule": "0 6 * * *", "timeZone": "UTC", "suspnd": 1}]},
        "additional properties 'suspnd' not allowed",
    ),
    "unknown value": ({"targt": "prod"}, "additional properties 'targt' not allowed"),
    "bad target name": ({"target": "prod env"}, "'/target': 'prod env' does not match"),
    "bad quantity": ({"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory"),
    "negative backoff": ({"backoffLimit": -1}, "'/backoffLimit'"),
    "unknown override key": (
        {"pipelineOverrides": {"d/p": {"schedule": "0 7 * * *"}}},
        "additional properties 'schedule' not allowed",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_values_schema_refuses_bad_values(chart: helm.Chart, case: str) -> None:
    values, message = BAD_VALUES[case]
    with pytest.raises(helm.HelmValuesError, match=re.escape(message)):
        chart.render(values)  # what `helm install` / `helm template` do
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSIONS[0]}")
    assert any(message in e for e in report["errors"]), report["errors"]


def test_values_schema_takes_what_kubernetes_takes(chart: helm.Chart) -> None:
    schedules = ["@daily", "*/15 6-18 * JAN-MAR SUN,SAT", "0 6 ? * MON-FRI", "0 6 * * 1-6,0"]
    pipelines = [
        {"name": f"d/p{i}", "schedule": s, "timeZone": "America/New_York"}
        for i, s in enumerate(schedules)
    ]
    docs = render(chart, {"pipelines": pipelines})
    assert sorted(d["spec"]["schedule"] for d in docs) == sorted(schedules)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "d/p", "schedule": "TZ=UTC 0 6 * * *", "timeZone": "UTC"}, "not TZ="),
        ({"name": "d/p", "schedule": "0 6 * * *", "timeZone": "UTC", "suspnd": True}, "suspnd"),
    ],
)
def test_bad_entries_fail_to_render_without_the_schema(
    entry: dict[str, Any], message: str, tmp_path: Path
) -> None:
    # the templates keep their own checks for `helm template --skip-schema-validation`
    unchecked = tmp_path / "xoelt"
    shutil.copytree(CHART, unchecked)
    (unchecked / "values.schema.json").unlink()
    with helm.Chart.load(unchecked) as loaded, pytest.raises(helm.HelmRenderError, match=message):
        loaded.render({"pipelines": [entry]})


def test_colliding_cronjob_names_fail_to_render(chart: helm.Chart) -> None:
    pipelines = [
        {"name": "d/orders_daily", "schedule": "0 6 * * *", "timeZone": "UTC"},
        {"name": "d/orders-daily", "schedule": "0 7 * * *", "timeZone": "UTC"},
    ]
    with pytest.raises(helm.HelmRenderError, match="would both be CronJob"):
        chart.render({"pipelines": pipelines})


@pytest.mark.parametrize("values", [None, OVERRIDES], ids=["defaults", "overrides"])
def test_helm_lint_strict(values: dict[str, Any] | None) -> None:
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSIONS[0]}")
    assert report["errors"] == []
    # Severity 1 is informational ("icon is recommended"); 2 warning, 3 error.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_requires_kubernetes_with_cronjob_timezone(chart: helm.Chart) -> None:
    # spec.timeZone is GA in 1.27; helm install refuses older clusters (helm lint does not check).
    assert chart.metadata["kubeVersion"] == ">=1.27.0-0"


def test_notes_list_cronjobs_and_warn_about_stray_overrides(chart: helm.Chart) -> None:
    pipelines = [{"name": LONG, "schedule": "5 * * * *", "timeZone": "UTC"}]
    notes = chart.render({"pipelines": pipelines}, name="xo", namespace="data")
    text = notes["xoelt/templates/NOTES.txt"]
    assert f'{cronjob_name(LONG)}  "5 * * * *" UTC  ({LONG})' in text
    assert "pipelineOverrides[demo/gladly_demo] names no pipeline" in text


def test_helm_reads_the_schedule_pattern_as_python_does(chart: helm.Chart) -> None:
    """Helm matches patterns with Go's RE2, the unit tests with Python's re: same verdicts."""
    from tests.unit.test_chart_schema import ACCEPTED, REFUSED

    def takes(schedule: str) -> bool:
        entry = {"name": "d/p", "schedule": schedule, "timeZone": "UTC"}
        try:
            chart.validate_schema({"pipelines": [entry]})
        except helm.HelmValuesError:
            return False
        return True

    assert [s for s in ACCEPTED if not takes(s)] == []
    assert [s for s in REFUSED if takes(s)] == []


WATCHDOG = {"watchdog": {"enabled": True, "schedule": "15,45 * * * *", "deadline": "90m"}}


def test_watchdog_is_off_by_default(defaults: list[dict[str, Any]]) -> None:
    assert all(d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "pipeline"
               for d in defaults)  # fmt: skip


def test_watchdog_cronjob_watches_the_scheduled_pipelines(chart: helm.Chart) -> None:
    docs = render(chart, {**OVERRIDES, **WATCHDOG})
    (watchdog,) = [d for d in docs if d["metadata"]["name"] == "xoelt-watchdog"]
    assert watchdog["kind"] == "CronJob"
    assert watchdog["metadata"]["labels"]["app.kubernetes.io/component"] == "watchdog"
    spec = watchdog["spec"]
    assert (spec["schedule"], spec["timeZone"]) == ("15,45 * * * *", "UTC")
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["jobTemplate"]["spec"]["backoffLimit"] == 0  # a retry would repeat the alert
    c = container(watchdog)
    # sales/orders_daily is suspended by pipelineOverrides: not watched
    assert c["args"] == ["watchdog", "--deadline", "90m", LONG, LONG + "2"]
    assert c["image"] == "ghcr.io/wp/xoelt:1.4.2"
    env = env_of(watchdog)
    assert env["XOELT_TARGET"] == "prod" and env["XOELT_TARGETS"] == "/etc/xoelt/targets.yaml"
    assert c["envFrom"] == [{"secretRef": {"name": "wp-prod-env"}}]
    assert c["resources"] == chart.values["watchdog"]["resources"]
    assert pod(watchdog)["securityContext"]["runAsNonRoot"] is True
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(watchdog, version, strict=True)
    report = helm.lint(CHART, {**OVERRIDES, **WATCHDOG}, strict=True,
                       kube_version=f"v{KUBE_VERSIONS[0]}")  # fmt: skip
    assert not report["errors"], report["errors"]


def test_watchdog_with_nothing_scheduled_renders_nothing(chart: helm.Chart) -> None:
    values = {**WATCHDOG, "suspend": True}
    assert not [d for d in render(chart, values) if d["metadata"]["name"].endswith("-watchdog")]


@pytest.mark.parametrize(
    ("watchdog", "message"),
    [
        ({"deadline": "2 hours"}, "'/watchdog/deadline': '2 hours' does not match"),
        ({"deadline": "30m2h"}, "'/watchdog/deadline': '30m2h' does not match"),
        ({"schedule": "0 6 * * 7"}, "'/watchdog/schedule': '0 6 * * 7' does not match"),
        ({"enabeld": True}, "additional properties 'enabeld' not allowed"),
    ],
)
def test_watchdog_values_are_checked(
    chart: helm.Chart, watchdog: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(message)):
        chart.render({"watchdog": {"enabled": True, **watchdog}})
