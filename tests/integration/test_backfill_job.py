"""The backfill Indexed Job: what ``--emit-k8s-job`` prints, and the chart's backfill-job.yaml.

The Job is validated against Kubernetes' OpenAPI schemas (kubernetes-validate, strict) for
1.29 (``backoffLimitPerIndex`` is beta there) and the newest bundled release; the chart is
rendered by Helm's own library (helm-python-sdk) and must give the same Job as the CLI.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from xoelt import k8sjob
from xoelt.backfill import plan_windows
from xoelt.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "xoelt"
KUBE_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
PIPE = "warbyparker/gladly_daily"  # full_refresh sources only
HISTORICAL = "demo/gladly_demo"  # its agents source is historical (SCD2)
SETTINGS = Settings(pipelines_root=REPO / "pipelines", sql_root=REPO / "sql")
LONG = "warbyparker/gladly_conversation_export_with_attachments_intraday_hourly"

OVERRIDES: dict[str, Any] = {
    "nameOverride": "wp",
    "image": {"repository": "ghcr.io/wp/xoelt", "digest": "sha256:" + "ab" * 32},
    "imagePullSecrets": [{"name": "registry"}],
    "existingSecret": "wp-prod-env",
    "envFrom": [{"configMapRef": {"name": "wp-settings"}}],
    "env": [{"name": "AWS_REGION", "value": "us-east-1"}],
    "serviceAccountName": "xoelt-s3",
    "targetsFile": {"configMap": "", "secret": "xoelt-targets-secret"},
    "scratch": {"sizeLimit": "2Gi", "medium": "Memory"},
    "extraVolumes": [{"name": "gcp", "secret": {"secretName": "gcp-sa"}}],
    "extraVolumeMounts": [{"name": "gcp", "mountPath": "/var/gcp", "readOnly": True}],
    "podLabels": {"team": "data"},
    "podAnnotations": {"cost-center": "42"},
    "podFailurePolicy": None,
    "terminationGracePeriodSeconds": None,
    "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
    "pipelineOverrides": {
        PIPE: {
            "target": "prod_eu",
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
            "nodeSelector": {"workload": "backfill"},
            "env": [{"name": "PAGE_SIZE", "value": "500"}],
        }
    },
}
BACKFILL: dict[str, Any] = {
    "pipeline": PIPE,
    "start": "2026-01-01",
    "end": "2026-01-31",
    "slices": 6,
    "parallelism": 3,
}


def emit(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``xoelt backfill ARGS --emit-k8s-job`` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "xoelt", "backfill", *args, "--emit-k8s-job"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def chart() -> Any:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def chart_job(chart: Any, values: dict[str, Any]) -> dict[str, Any]:
    out = chart.render(values, name="xo", namespace="data")
    (text,) = [t for path, t in out.items() if path.endswith("templates/backfill-job.yaml")]
    (job,) = [d for d in yaml.safe_load_all(text) if d]
    return job


@pytest.fixture(scope="module")
def emitted() -> dict[str, Any]:
    proc = emit(PIPE, "--start", "2026-01-01", "--end", "2026-01-31", "--parallelism", "3",
                "--slices", "6")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return yaml.safe_load(proc.stdout)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_emitted_job_validates_against_kubernetes(emitted: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(emitted, version, strict=True)


def test_emitted_job_is_indexed_with_one_slice_per_pod(emitted: dict[str, Any]) -> None:
    spec = emitted["spec"]
    assert (emitted["apiVersion"], emitted["kind"]) == ("batch/v1", "Job")
    assert spec["completionMode"] == "Indexed"
    assert (spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == (6, 3, 1)
    (c,) = spec["template"]["spec"]["containers"]
    assert c["command"] == ["xoelt"]
    assert c["args"] == ["backfill", PIPE, "--start", "2026-01-01", "--end", "2026-01-31",
                         "--slice", "$(JOB_COMPLETION_INDEX)/6"]  # fmt: skip
    assert emitted["metadata"]["annotations"] == {
        "xoelt/pipeline": PIPE,
        "xoelt/backfill": "2026-01-01..2026-01-31",
    }
    assert len(emitted["metadata"]["name"]) <= 52


def test_emitted_pod_is_the_cronjobs_pod(chart: Any, emitted: dict[str, Any]) -> None:
    """Same image, Secret, targets file, service account, security contexts, resources and
    volumes as the pipeline's CronJob: only the arguments differ."""
    docs = yaml.safe_load_all(chart.render(None, name="xo", namespace="data")
                              ["xoelt/templates/cronjobs.yaml"])  # fmt: skip
    (cron,) = [d for d in docs if d and d["metadata"]["annotations"]["xoelt/pipeline"] == PIPE]
    cron_pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    job_pod = copy.deepcopy(emitted["spec"]["template"]["spec"])
    assert job_pod["containers"][0].pop("args")[:2] == ["backfill", PIPE]
    assert cron_pod["containers"][0].pop("args") == ["run", PIPE]
    assert job_pod == cron_pod
    assert job_pod["securityContext"]["runAsNonRoot"] is True
    assert job_pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert job_pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert job_pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert (
        emitted["spec"]["podFailurePolicy"]
        == cron["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]
    )


def test_chart_defaults_copy_is_values_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert {key: values[key] for key in k8sjob.CHART_DEFAULTS} == k8sjob.CHART_DEFAULTS
    chart_yaml = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart_yaml["appVersion"] == k8sjob.APP_VERSION


@pytest.mark.parametrize(
    "extra",
    [
        {},
        OVERRIDES,
        {
            **OVERRIDES,
            "backfill": {
                "force": True,
                "keepGoing": True,
                "target": "staging",
                "maxFailedIndexes": 2,
                "backoffLimitPerIndex": 0,
                "activeDeadlineSeconds": 86400,
            },
        },
        {"backfill": {"pipeline": LONG, "slices": 2, "parallelism": 9}, "backoffLimit": 4},
        {
            "pipelines": [
                {
                    "name": PIPE,
                    "schedule": "0 6 * * *",
                    "timeZone": "UTC",
                    "resources": {"limits": {"memory": "3Gi"}},
                    "target": "dev",
                }
            ]
        },
    ],
    ids=["defaults", "overrides", "every-backfill-key", "long-name", "pipeline-entry"],
)
def test_chart_renders_the_job_the_cli_emits(chart: Any, extra: dict[str, Any]) -> None:
    values = k8sjob.merge_values(
        extra, {"backfill": k8sjob.merge_values(BACKFILL, extra.get("backfill", {}))}
    )
    rendered = chart_job(chart, values)
    ours = k8sjob.job_manifest(k8sjob.merge_values(k8sjob.CHART_DEFAULTS, values))
    assert rendered["metadata"]["name"] == ours["metadata"]["name"]
    assert rendered["metadata"]["labels"].items() >= ours["metadata"]["labels"].items()
    assert rendered["metadata"]["annotations"] == ours["metadata"]["annotations"]
    assert rendered["spec"] == ours["spec"]
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(rendered, version, strict=True)


def test_chart_with_a_backfill_lints_clean() -> None:
    values = {**OVERRIDES, "backfill": {**BACKFILL, "maxFailedIndexes": 2, "force": True}}
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE_VERSIONS[0]}")
    assert not report["errors"], report["errors"]


def test_chart_renders_no_job_without_a_pipeline(chart: Any) -> None:
    out = chart.render({"backfill": {"start": "2026-01-01"}}, name="xo", namespace="data")
    assert not [
        d
        for path, text in out.items()
        if path.endswith("backfill-job.yaml")
        for d in yaml.safe_load_all(text)
        if d
    ]


def test_chart_refuses_a_bad_backfill_value(chart: Any) -> None:
    with pytest.raises(helm.HelmError, match="slices"):
        chart.render({"backfill": {**BACKFILL, "slices": 0}}, name="xo", namespace="data")


def test_backoff_limit_per_index_needs_a_recent_kubernetes(emitted: dict[str, Any]) -> None:
    """Not vacuous: a schema from before backoffLimitPerIndex refuses the field (1.27's
    podFailurePolicy schema has its own gap, so that is left out here)."""
    job = copy.deepcopy(emitted)
    del job["spec"]["podFailurePolicy"]
    with pytest.raises(kubernetes_validate.ValidationError, match="backoffLimitPerIndex"):
        kubernetes_validate.validate(job, "1.27.0", strict=True)
    del job["spec"]["backoffLimitPerIndex"]
    kubernetes_validate.validate(job, "1.27.0", strict=True)


def test_historical_pipeline_is_one_slice_and_says_why() -> None:
    proc = emit(HISTORICAL, "--start", "2026-11-03", "--end", "2026-11-09", "--slices", "4")
    assert proc.returncode == 0, proc.stderr
    job = yaml.safe_load(proc.stdout)
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (1, 1)
    assert "--slice" in (args := job["spec"]["template"]["spec"]["containers"][0]["args"])
    assert args[args.index("--slice") + 1] == "$(JOB_COMPLETION_INDEX)/1"
    assert proc.stderr.startswith(
        "note: one slice: demo/gladly_demo has historical source(s) agents"
    )
    kubernetes_validate.validate(job, KUBE_VERSIONS[0], strict=True)


def test_values_files_and_flags_reach_the_job(tmp_path: Path) -> None:
    prod = tmp_path / "prod.yaml"
    prod.write_text(yaml.safe_dump({"image": {"repository": "ghcr.io/wp/xoelt", "tag": "1.4.2"},
                                    "serviceAccountName": "xoelt-s3",
                                    "resources": {"limits": {"cpu": None}}}))  # fmt: skip
    proc = emit(PIPE, "--start", "2026-01-01", "--end", "2026-01-03", "--values", str(prod),
                "--force", "--keep-going", "--max-failed-slices", "9")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    job = yaml.safe_load(proc.stdout)
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "ghcr.io/wp/xoelt:1.4.2"
    assert pod["serviceAccountName"] == "xoelt-s3"
    assert c["resources"]["limits"] == {"memory": "1Gi"}  # cpu: null removed it, as in Helm
    assert c["args"][-3:] == ["$(JOB_COMPLETION_INDEX)/3", "--force", "--keep-going"]
    # default slices: --parallelism's default 4, capped at the 3 windows
    assert (job["spec"]["completions"], job["spec"]["maxFailedIndexes"]) == (3, 3)
    assert proc.stderr == ""
    asked = emit(PIPE, "--start", "2026-01-01", "--end", "2026-01-03", "--slices", "5")
    assert yaml.safe_load(asked.stdout)["spec"]["completions"] == 3
    assert asked.stderr == "note: 5 slices asked for, 3 window(s): one slice per window\n"


def test_windows_and_slices_agree() -> None:
    plans = plan_windows(PIPE, date(2026, 1, 1), date(2026, 1, 31), None, SETTINGS)
    job = k8sjob.emit_job(PIPE, date(2026, 1, 1), date(2026, 1, 31), slices=31, settings=SETTINGS)
    assert job.windows == len(plans) == job.slices == 31


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slices", "0"], "--slices must be at least 1, not 0"),
        (["--parallelism", "-1"], "--parallelism must be at least 1"),
        (["--slice", "0/2"], "no --slice or --dry-run with it"),
        (["--values", "/nonexistent/values.yaml"], "/nonexistent/values.yaml: cannot read"),
    ],
)
def test_bad_job_options_exit_2(args: list[str], message: str) -> None:
    proc = emit(PIPE, "--start", "2026-01-01", "--end", "2026-01-03", *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and proc.stdout == ""
