"""Deployment data: the Helm chart's ``pipelines:`` list, generated from ``pipelines/``.

The chart (``helm/xoelt``) makes one CronJob per entry of ``pipelines:`` in its values. That
list is *derived* from the pipeline files, never written by hand, so schedule and timezone
cannot drift between a pipeline and its CronJob::

    xoelt helm-values                       # print the block
    xoelt helm-values --write helm/xoelt/values.yaml   # replace it in place

The CronJob name rule lives here too (:func:`cronjob_name`), mirrored by the chart's
``xoelt.cronJobName`` template; a test renders the chart and checks both agree.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xoelt.config.cron import kubernetes_schedule_problem, kubernetes_zone_problem
from xoelt.config.yamlpos import line_for, load_yaml_with_lines
from xoelt.errors import ConfigError

MAX_CRONJOB_NAME = 52
"""CronJob names: the controller appends ``-<minutes since epoch>`` (11 chars) to make Job names."""

MAX_LABEL_VALUE = 63
HASH_CHARS = 8
BEGIN_MARKER = "# BEGIN xoelt helm-values"
END_MARKER = "# END xoelt helm-values"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_CHARS]


def cronjob_name(pipeline: str, prefix: str = "xoelt") -> str:
    """The CronJob name of ``domain/name``: DNS-1123, at most 52 characters, stable.

    ``xoelt-<domain>-<name>`` lower-cased with ``/`` and ``_`` turned into ``-``; when that is
    longer than 52 characters it is cut to 43 and ends with ``-`` plus the first 8 hex digits
    of the SHA-256 of the full pipeline name. Same rule as the chart's ``xoelt.cronJobName``.
    """
    base = f"{prefix}-{pipeline}".lower().replace("/", "-").replace("_", "-")
    base = re.sub(r"[^a-z0-9-]", "-", base).rstrip("-")
    if len(base) <= MAX_CRONJOB_NAME:
        return base
    keep = MAX_CRONJOB_NAME - HASH_CHARS - 1
    return f"{base[:keep].rstrip('-')}-{_short_hash(pipeline)}"


def pipeline_label(pipeline: str) -> str:
    """``domain/name`` as a label value (``domain.name``; at most 63 chars, alphanumeric ends).

    Same rule as the chart's ``xoelt.pipelineLabel``; the exact name is also an annotation.
    """
    value = re.sub(r"[^A-Za-z0-9_.-]", ".", pipeline.replace("/", "."))
    value = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)
    if len(value) <= MAX_LABEL_VALUE:
        return value
    keep = MAX_LABEL_VALUE - HASH_CHARS - 1
    return re.sub(r"[^A-Za-z0-9]+$", "", value[:keep]) + "-" + _short_hash(pipeline)


def _line(path: Path, loc: tuple[str, ...]) -> int | None:
    _, lines = load_yaml_with_lines(path)
    return line_for(lines, loc)


def chart_pipelines(root: Path | None = None) -> list[dict[str, str]]:
    """The chart's ``pipelines:`` entries for every pipeline file under ``root``.

    Each entry is ``{"name": "domain/pipeline_name", "schedule": ..., "timeZone": ...}``,
    sorted by name. Pipelines are validated with an empty environment (they must validate
    without credentials). Raises :class:`~xoelt.errors.ConfigError`, naming the file, for an
    invalid pipeline, a schedule Kubernetes cannot run, a file that ``xoelt run domain/name``
    would not find, or two pipelines with the same name or the same CronJob name.
    """
    from xoelt.pipelines import discover, load_pipeline
    from xoelt.settings import Settings

    base = root or Settings.from_env().pipelines_root
    entries: dict[str, dict[str, str]] = {}
    files: dict[str, Path] = {}
    jobs: dict[str, str] = {}
    for path in discover(base):
        pipeline = load_pipeline(path, env={})
        name = pipeline.name
        schedule = pipeline.dag.schedule
        zone = pipeline.dag.time_window.timezone
        # load_pipeline checked both already; checked again here because this is the last
        # stop before a CronJob, whatever validation the pipeline models do.
        for key, problem in (
            ("dag.schedule", kubernetes_schedule_problem(schedule)),
            ("dag.time_window.timezone", kubernetes_zone_problem(zone)),
        ):
            if problem:
                raise ConfigError(
                    f"a Kubernetes CronJob cannot run this: {problem}",
                    file=str(path),
                    line=_line(path, tuple(key.split("."))),
                    key=key,
                )
        expected = [base / f"{name}{suffix}" for suffix in (".yaml", ".yml")]
        if not any(p.is_file() and p.samefile(path) for p in expected):
            raise ConfigError(
                f"names itself {name!r} but `xoelt run {name}` looks for {expected[0]}; "
                "move the file or fix dag.domain / dag.pipeline_name",
                file=str(path),
                line=_line(path, ("dag", "pipeline_name")),
                key="dag.pipeline_name",
            )
        if name in files:
            raise ConfigError(f"pipeline {name!r} is also defined in {files[name]}", file=str(path))
        job = cronjob_name(name)
        if job in jobs:
            raise ConfigError(
                f"pipeline {name!r} and {jobs[job]!r} would both be CronJob {job!r}; rename one",
                file=str(path),
            )
        files[name], jobs[job] = path, name
        entries[name] = {
            "name": name,
            "schedule": schedule,
            "timeZone": zone,
        }
    return [entries[name] for name in sorted(entries)]


def split_image(image: str) -> dict[str, str]:
    """``repo[:tag][@digest]`` as the chart's ``image:`` values (``repository``, ``tag``, ``digest``).

    A ``:`` before the last ``/`` is a registry port, not a tag.
    """
    rest, _, digest = image.partition("@")
    repository, tag = rest, ""
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        repository, tag = rest[:colon], rest[colon + 1 :]
    if not repository or (digest and not digest.startswith("sha256:")):
        raise ConfigError(f"{image!r} is not an image reference (repository[:tag][@sha256:…])")
    out = {"repository": repository}
    if tag:
        out["tag"] = tag
    if digest:
        out["digest"] = digest
    return out


def helm_values(root: Path | None = None, image: str | None = None) -> dict[str, Any]:
    """The values block ``xoelt helm-values`` prints: ``pipelines`` (and ``image`` if given)."""
    values: dict[str, Any] = {}
    if image:
        values["image"] = split_image(image)
    values["pipelines"] = chart_pipelines(root)
    return values


def pipelines_yaml(entries: Sequence[Mapping[str, str]]) -> str:
    """``pipelines:`` as YAML, one flow mapping per line (what values.yaml holds)."""
    if not entries:
        return "pipelines: []\n"
    lines = ["pipelines:"]
    for entry in entries:
        fields = ", ".join(f"{key}: {json.dumps(value)}" for key, value in entry.items())
        lines.append(f"  - {{{fields}}}")
    return "\n".join(lines) + "\n"


def values_yaml(values: Mapping[str, Any]) -> str:
    """A values block (from :func:`helm_values`) as YAML, ``pipelines`` one entry per line."""
    import yaml

    head = {k: v for k, v in values.items() if k != "pipelines"}
    text = yaml.safe_dump(head, sort_keys=False, default_flow_style=False) if head else ""
    return text + pipelines_yaml(values.get("pipelines", []))


def replace_generated(
    text: str, entries: Sequence[Mapping[str, str]], file: str | None = None
) -> str:
    """``text`` (a values.yaml) with the block between the helm-values markers regenerated.

    Raises ConfigError (naming ``file``) if the markers are missing, so a file without them
    is never clobbered.
    """
    begin, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    if begin < 0 or end < begin:
        raise ConfigError(f"markers {BEGIN_MARKER!r} … {END_MARKER!r} not found", file=file)
    start = text.index("\n", begin) + 1
    return text[:start] + pipelines_yaml(entries) + text[end:]


def write_values_file(path: Path, root: Path | None = None, *, dry_run: bool = False) -> bool:
    """Regenerate the ``pipelines:`` block of the chart's values file in place.

    Returns True if the file changed (with ``dry_run``: would change; nothing is written).
    Raises ConfigError as :func:`chart_pipelines` does, or naming ``path`` if it is unreadable
    or has no markers.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None
    new = replace_generated(text, chart_pipelines(root), file=str(path))
    if new == text:
        return False
    if not dry_run:
        path.write_text(new, encoding="utf-8")
    return True
