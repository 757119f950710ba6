"""A backfill as a Kubernetes Indexed Job (``xoelt backfill … --emit-k8s-job``).

The Job has ``completionMode: Indexed`` and one completion per slice; the pod with index
``i`` runs ``xoelt backfill PIPE --start D1 --end D2 --slice $(JOB_COMPLETION_INDEX)/N``
(the kubelet expands ``$(JOB_COMPLETION_INDEX)``, which the Job controller sets in every
pod), so each pod runs the windows of one :class:`~xoelt.backfill.Slice` and skips those the
ledger shows done: a failed index retried (``backoffLimitPerIndex``) or the whole Job created
again resumes where it stopped. A pipeline with a ``historical`` (SCD2) source is one slice.

The pod is the chart's: the same values (``helm/xoelt/values.yaml`` defaults, which
:data:`CHART_DEFAULTS` copies and a test keeps equal, merged with ``--values`` files as
Helm merges ``-f``) give the same image, Secret, targets file, service account, security
contexts, resources and volumes as the pipeline's CronJob. :func:`pod_spec` mirrors the
chart's ``xoelt.podSpec`` template and :func:`job_manifest` its ``backfill-job.yaml``; a
test renders the chart with Helm's library and checks the two agree.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from xoelt.backfill import ordered_sources, plan_windows
from xoelt.deploy import pipeline_label
from xoelt.errors import ConfigError, InputError
from xoelt.settings import Settings

APP_VERSION = "0.1.0"
"""The chart's appVersion: the image tag when the values give none."""

CHART_DEFAULTS: dict[str, Any] = {
    "nameOverride": "",
    "image": {"repository": "xoelt", "tag": "", "digest": "", "pullPolicy": "IfNotPresent"},
    "imagePullSecrets": [],
    "existingSecret": "xoelt-env",
    "target": "prod",
    "targetsFile": {
        "configMap": "xoelt-targets",
        "secret": "",
        "key": "targets.yaml",
        "mountPath": "/etc/xoelt",
    },
    "env": [],
    "envFrom": [],
    "resources": {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    },
    "backoffLimit": 1,
    "podFailurePolicy": {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "xoelt", "operator": "In", "values": [2]},
            },
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
        ]
    },
    "terminationGracePeriodSeconds": 60,
    "serviceAccountName": "",
    "automountServiceAccountToken": False,
    "podAnnotations": {},
    "podLabels": {},
    "nodeSelector": {},
    "tolerations": [],
    "affinity": {},
    "podSecurityContext": {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    },
    "scratch": {"sizeLimit": "10Gi", "medium": ""},
    "extraVolumes": [],
    "extraVolumeMounts": [],
    "pipelineOverrides": {"demo/gladly_demo": {"suspend": True}},
}
"""The chart's default values that shape a pod (a test checks them against values.yaml)."""

POD_OVERRIDABLE = ("target", "resources", "nodeSelector", "tolerations", "affinity", "env")
"""``pipelineOverrides`` keys a backfill pod takes from its pipeline (the rest are schedule's)."""


def merge_values(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged into ``base`` as Helm merges ``-f`` files: maps key by key, anything
    else replaced, a ``null`` removing the key."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_values(files: Sequence[Path]) -> dict[str, Any]:
    """The chart defaults with each values file merged in order; ConfigError names a bad file."""
    import yaml

    values = copy.deepcopy(CHART_DEFAULTS)
    for path in files:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"not YAML: {str(exc).splitlines()[0]}", file=str(path)) from None
        if loaded is None:
            continue
        if not isinstance(loaded, dict):
            raise ConfigError("a values file is a mapping of chart values", file=str(path))
        values = merge_values(values, loaded)
    return values


def image_ref(values: Mapping[str, Any]) -> str:
    """``repository@digest`` or ``repository:tag`` (the chart's ``xoelt.image``)."""
    image = values.get("image") or {}
    if image.get("digest"):
        return f"{image['repository']}@{image['digest']}"
    return f"{image['repository']}:{image.get('tag') or APP_VERSION}"


def pipeline_settings(values: Mapping[str, Any], pipeline: str) -> dict[str, Any]:
    """The pod settings of ``pipeline``: its ``pipelineOverrides`` entry, else its ``pipelines``
    entry, else the global value (``env`` adds to the global ``env`` instead)."""
    overrides = (values.get("pipelineOverrides") or {}).get(pipeline) or {}
    entries = [p for p in values.get("pipelines") or [] if str(p.get("name")) == pipeline]
    entry = entries[-1] if entries else {}
    out = {}
    for key in POD_OVERRIDABLE:
        default = None if key == "env" else values.get(key)
        out[key] = overrides[key] if key in overrides else entry.get(key, default)
    return out


def _targets_file(values: Mapping[str, Any]) -> Mapping[str, Any]:
    tf = values.get("targetsFile") or {}
    return tf if tf.get("configMap") or tf.get("secret") else {}


def _env(values: Mapping[str, Any], c: Mapping[str, Any]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "XOELT_HOME", "value": "/tmp/xoelt"},
        {"name": "HOME", "value": "/tmp"},
    ]
    if c.get("target"):
        env.append({"name": "XOELT_TARGET", "value": str(c["target"])})
    if tf := _targets_file(values):
        env.append({"name": "XOELT_TARGETS", "value": f"{tf['mountPath'].rstrip('/')}/{tf['key']}"})
    return env + list(values.get("env") or []) + list(c.get("env") or [])


def _volumes(values: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumeMounts, volumes): the /tmp scratch emptyDir, the targets file, the extra ones."""
    scratch = values.get("scratch") or {}
    empty_dir = {k: scratch[k] for k in ("medium", "sizeLimit") if scratch.get(k)}
    mounts: list[dict[str, Any]] = [{"name": "scratch", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "scratch", "emptyDir": empty_dir}]
    if tf := _targets_file(values):
        mounts.append({"name": "targets", "mountPath": tf["mountPath"], "readOnly": True})
        items = [{"key": tf["key"], "path": tf["key"]}]
        if tf.get("secret"):
            volumes.append(
                {"name": "targets", "secret": {"secretName": tf["secret"], "items": items}}
            )
        else:
            volumes.append(
                {"name": "targets", "configMap": {"name": tf["configMap"], "items": items}}
            )
    mounts += list(values.get("extraVolumeMounts") or [])
    volumes += list(values.get("extraVolumes") or [])
    return mounts, volumes


def pod_spec(values: Mapping[str, Any], pipeline: str, args: Sequence[str]) -> dict[str, Any]:
    """The pod spec of a run of ``pipeline`` with ``xoelt ARGS``: the chart's ``xoelt.podSpec``."""
    c = pipeline_settings(values, pipeline)
    container: dict[str, Any] = {
        "name": "xoelt",
        "image": image_ref(values),
        "imagePullPolicy": (values.get("image") or {}).get("pullPolicy"),
        "command": ["xoelt"],
        "args": list(args),
        "env": _env(values, c),
    }
    env_from = (
        [{"secretRef": {"name": values["existingSecret"]}}] if values.get("existingSecret") else []
    )
    env_from += list(values.get("envFrom") or [])
    if env_from:
        container["envFrom"] = env_from
    if c.get("resources"):
        container["resources"] = c["resources"]
    if values.get("securityContext"):
        container["securityContext"] = values["securityContext"]
    container["volumeMounts"], volumes = _volumes(values)
    spec: dict[str, Any] = {"restartPolicy": "Never"}
    if values.get("serviceAccountName"):
        spec["serviceAccountName"] = values["serviceAccountName"]
    spec["automountServiceAccountToken"] = values.get("automountServiceAccountToken")
    if values.get("terminationGracePeriodSeconds") is not None:
        spec["terminationGracePeriodSeconds"] = int(values["terminationGracePeriodSeconds"])
    for key, name in (
        ("imagePullSecrets", "imagePullSecrets"),
        ("podSecurityContext", "securityContext"),
    ):
        if values.get(key):
            spec[name] = values[key]
    spec["containers"] = [container]
    spec["volumes"] = volumes
    for key in ("nodeSelector", "tolerations", "affinity"):
        if c.get(key):
            spec[key] = c[key]
    return copy.deepcopy(spec)


MAX_INDEXES = 100_000
"""Kubernetes refuses more completions than this in a Job with ``backoffLimitPerIndex``."""

DEFAULT_PARALLELISM = 4


def _prefix(values: Mapping[str, Any]) -> str:
    """The chart's ``xoelt.name``: nameOverride or the chart name, lower case, 20 chars."""
    return (values.get("nameOverride") or "xoelt").lower()[:20].removesuffix("-")


def job_name(values: Mapping[str, Any], pipeline: str, start: str, end: str) -> str:
    """``<prefix>-backfill-<domain>-<name>`` (cut to 43 characters) ``-`` 8 hex digits of the
    SHA-256 of ``"<pipeline> <start> <end>"``: at most 52 characters (room for the pod's index
    and suffix), one name per range, so two ranges are two Jobs. The chart's
    ``xoelt.backfillJobName``."""
    base = f"{_prefix(values)}-backfill-{pipeline}".lower().replace("/", "-").replace("_", "-")
    base = re.sub(r"[^a-z0-9-]", "-", base)[:43].rstrip("-")
    digest = hashlib.sha256(f"{pipeline} {start} {end}".encode()).hexdigest()[:8]
    return f"{base}-{digest}"


def backfill_args(spec: Mapping[str, Any]) -> list[str]:
    """What each pod runs: its slice of the range, ``--force`` / ``--keep-going`` passed on."""
    args = ["backfill", str(spec["pipeline"]), "--start", str(spec["start"])]
    args += ["--end", str(spec["end"]), "--slice", f"$(JOB_COMPLETION_INDEX)/{int(spec['slices'])}"]
    if spec.get("target"):
        args += ["--target", str(spec["target"])]
    return (
        args
        + ["--force"] * bool(spec.get("force"))
        + ["--keep-going"] * bool(spec.get("keepGoing"))
    )


def job_manifest(values: Mapping[str, Any]) -> dict[str, Any]:
    """The Indexed Job of ``values["backfill"]`` (pipeline, start, end, slices, parallelism,
    backoffLimitPerIndex, maxFailedIndexes, activeDeadlineSeconds, force, keepGoing, target),
    its pod the chart's; the same object the chart's ``backfill-job.yaml`` renders."""
    spec = values["backfill"]
    pipeline, start, end = str(spec["pipeline"]), str(spec["start"]), str(spec["end"])
    slices = int(spec["slices"])
    labels = {
        "app.kubernetes.io/name": _prefix(values),
        "app.kubernetes.io/component": "backfill",
        "xoelt/pipeline": pipeline_label(pipeline),
    }
    annotations = {"xoelt/pipeline": pipeline, "xoelt/backfill": f"{start}..{end}"}
    job: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": slices,
        "parallelism": min(int(spec.get("parallelism") or slices), slices),
        "backoffLimitPerIndex": int(
            spec["backoffLimitPerIndex"]
            if spec.get("backoffLimitPerIndex") is not None
            else values.get("backoffLimit", 0)
        ),
    }
    if spec.get("maxFailedIndexes") is not None:
        job["maxFailedIndexes"] = int(spec["maxFailedIndexes"])
    if spec.get("activeDeadlineSeconds") is not None:
        job["activeDeadlineSeconds"] = int(spec["activeDeadlineSeconds"])
    if (values.get("podFailurePolicy") or {}).get("rules"):
        job["podFailurePolicy"] = copy.deepcopy(values["podFailurePolicy"])
    job["template"] = {
        "metadata": {
            "labels": labels | dict(values.get("podLabels") or {}),
            "annotations": annotations | dict(values.get("podAnnotations") or {}),
        },
        "spec": pod_spec(values, pipeline, backfill_args(spec)),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(values, pipeline, start, end),
            "labels": dict(labels),
            "annotations": dict(annotations),
        },
        "spec": job,
    }


@dataclass
class BackfillJob:
    """The Job ``--emit-k8s-job`` prints, how many windows it covers, and why it is shaped so."""

    manifest: dict[str, Any]
    windows: int
    notes: list[str] = field(default_factory=list)

    @property
    def slices(self) -> int:
        return int(self.manifest["spec"]["completions"])

    def as_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.manifest, sort_keys=False, default_flow_style=False)


def emit_job(
    ref: str,
    first: date,
    last: date,
    target: str | None = None,
    *,
    slices: int | None = None,
    parallelism: int | None = None,
    max_failed: int | None = None,
    force: bool = False,
    keep_going: bool = False,
    values_files: Sequence[Path] = (),
    settings: Settings | None = None,
) -> BackfillJob:
    """The Indexed Job that runs the backfill of ``ref`` over ``first``..``last`` in slices.

    ``slices`` defaults to ``parallelism`` (default 4) and is capped at the number of windows;
    a pipeline with an ordered (``historical``) source gets one slice, with a note saying why.
    Nothing runs and no credentials are needed: only the windows are planned.
    """
    plans = plan_windows(ref, first, last, target, settings)
    if not plans:
        raise InputError(f"no scheduled window of {ref} has a run date in {first}..{last}")
    for flag, value in (
        ("--slices", slices),
        ("--parallelism", parallelism),
        ("--max-failed-slices", max_failed),
    ):
        if value is not None and value < 1:
            raise InputError(f"{flag} must be at least 1, not {value}")
    notes: list[str] = []
    wanted = slices or min(parallelism or DEFAULT_PARALLELISM, len(plans))
    if ordered := ordered_sources(plans):
        if wanted > 1:
            notes.append(
                f"one slice: {plans[0].name} has historical source(s) {', '.join(ordered)} "
                "whose windows must load in order (SCD2 history), so one pod runs them all"
            )
        wanted = 1
    elif wanted > len(plans):
        notes.append(f"{wanted} slices asked for, {len(plans)} window(s): one slice per window")
        wanted = len(plans)
    if wanted > MAX_INDEXES:
        raise InputError(
            f"--slices {wanted}: a Job with backoffLimitPerIndex takes at most {MAX_INDEXES}"
        )
    values = load_values(values_files)
    values["backfill"] = merge_values(
        values.get("backfill") or {},
        {
            "pipeline": plans[0].name,
            "start": first.isoformat(),
            "end": last.isoformat(),
            "slices": wanted,
            "parallelism": min(parallelism or wanted, wanted),
            "force": force,
            "keepGoing": keep_going,
            "target": target or "",
        },
    )
    if max_failed:
        values["backfill"]["maxFailedIndexes"] = min(max_failed, wanted)
    return BackfillJob(job_manifest(values), len(plans), notes)
