"""Run metrics: what one run did, pushed to a Prometheus Pushgateway or an OTLP collector.

Off unless the target says where (``targets.yaml``)::

    prod:
      type: snowflake
      ...
      metrics: {type: pushgateway, url: "http://pushgateway:9091", timeout_seconds: 5}
      # or: {type: otlp, endpoint: "http://otel-collector:4318",
      #      headers: {Authorization: "Bearer ${OTLP_TOKEN}"}}

A CronJob lives for minutes, far shorter than a scrape interval, so it *pushes* once, when
its outcome is known (:func:`xoelt.core.execute`). The metrics, all gauges (each push is the
latest value, not a running total):

============================================  =====================================================
``xoelt_rows{pipeline,source,stage}``          rows out of each stage this run, 0 for the one that
                                               failed (``stage="gold"`` and ``source="gold"`` for
                                               the gold models together)
``xoelt_stage_duration_seconds{…same…}``       wall time of each stage, failed ones included
``xoelt_run_success{pipeline}``                1 if the run ended without an error, else 0
``xoelt_last_success_timestamp_seconds``       Unix time a source last finished its window
``{pipeline,source}``                          (every stage through ``transform``); only pushed then
``xoelt_data_test_findings{pipeline,severity}``  findings of kind ``data_test`` per severity
                                               (``info``, ``warn``, ``error``; 0 pushed as well)
============================================  =====================================================

Names follow Prometheus conventions (base unit in the name, ``_seconds``, ``_timestamp_seconds``,
no ``_total`` on gauges). Pushgateway: one group per source (grouping key ``pipeline`` and
``source``) and one for the pipeline (``pipeline``), job ``xoelt``, each pushed with POST
(``pushadd_to_gateway``): a push replaces only the metric names it carries, so a failed run,
which pushes no ``last_success``, leaves the previous success timestamp in place for alerting
(``time() - xoelt_last_success_timestamp_seconds > …``). A source the run never reached (after
an earlier one failed) keeps its earlier values: the gateway's own ``push_time_seconds`` per
group says when they were pushed. The grouping labels are not repeated on the samples; the
gateway adds them.

OTLP: the body is built here as OTLP/HTTP JSON (``POST {endpoint}/v1/metrics``,
``application/json``, proto3 JSON mapping: lowerCamelCase keys, 64-bit integers as strings)
rather than with ``opentelemetry-exporter-otlp-proto-http``: a handful of gauges pushed once
per process need no SDK (meter provider, periodic reader, protobuf and ``requests``, about a
dozen packages); the spec's JSON encoding is stable since OTLP 1.0 and every collector accepts
it. Each data point carries all labels as attributes; the resource has ``service.name=xoelt``.

A metrics endpoint that is down, slow or refusing is a warning in the log: it never changes the
run's exit code or hides its error. The whole push is bounded by ``timeout_seconds`` (it runs in
a daemon thread that is abandoned at the deadline), and stops at the first failing call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field

from xoelt.config.env import REFERENCE, environment, interpolate
from xoelt.config.types import BaseUrl, StrictModel
from xoelt.findings import SEVERITIES, Finding
from xoelt.redact import redact, register

JOB = "xoelt"
DATA_TEST = "data_test"
"""The finding kind of a data test's result (counted by ``xoelt_data_test_findings``)."""

HELP = {
    "xoelt_rows": "Rows out of a stage in the latest run.",
    "xoelt_stage_duration_seconds": "Wall time of a stage in the latest run.",
    "xoelt_run_success": "1 if the latest run ended without an error, else 0.",
    "xoelt_last_success_timestamp_seconds": "Unix time a source last completed its window.",
    "xoelt_data_test_findings": "Data-test findings of the latest run, by severity.",
}
UNIT = {  # UCUM units for OTLP (the Prometheus names already carry theirs)
    "xoelt_rows": "{row}",
    "xoelt_stage_duration_seconds": "s",
    "xoelt_run_success": "",  # not "1": a collector's Prometheus exporter would add _ratio
    "xoelt_last_success_timestamp_seconds": "s",
    "xoelt_data_test_findings": "{finding}",
}


class PushgatewayMetrics(StrictModel):
    """``metrics: {type: pushgateway, url: http://pushgateway:9091}``."""

    type: Literal["pushgateway"]
    url: BaseUrl
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    job: str = JOB


class OtlpMetrics(StrictModel):
    """``metrics: {type: otlp, endpoint: http://collector:4318, headers: {...}}``.

    ``endpoint`` is the collector's OTLP/HTTP root (``/v1/metrics`` is appended unless given).
    Header values may hold ``${VAR}`` references (``Bearer ${OTLP_TOKEN}``): they are filled
    only when pushing, and the values are masked in every log line.
    """

    type: Literal["otlp"]
    endpoint: BaseUrl
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(5.0, gt=0, le=60)

    @property
    def url(self) -> str:
        return (
            self.endpoint
            if self.endpoint.endswith("/v1/metrics")
            else f"{self.endpoint}/v1/metrics"
        )

    def resolved_headers(self, env: Mapping[str, str]) -> dict[str, str]:
        """Headers with ``${VAR}`` filled; each referenced value is registered for redaction."""
        out: dict[str, str] = {}
        for key, value in self.headers.items():
            for match in REFERENCE.finditer(value):
                if env.get(match.group(1)):
                    register(env[match.group(1)])
            out[key] = interpolate(value, env)
        return out


MetricsConfig = Annotated[PushgatewayMetrics | OtlpMetrics, Field(discriminator="type")]


class SourceFacts(Protocol):
    """One source's part of a run (:class:`xoelt.core.SourceReport`)."""

    @property
    def name(self) -> str: ...
    @property
    def rows(self) -> Mapping[str, int]: ...
    @property
    def seconds(self) -> Mapping[str, float]: ...
    @property
    def findings(self) -> Sequence[Finding]: ...


class RunFacts(Protocol):
    """What the metrics read of a run (:class:`xoelt.core.RunReport`)."""

    @property
    def pipeline(self) -> str: ...
    @property
    def stages(self) -> Sequence[str]: ...
    @property
    def sources(self) -> Sequence[SourceFacts]: ...
    @property
    def gold(self) -> Mapping[str, int]: ...
    @property
    def gold_seconds(self) -> float | None: ...
    @property
    def gold_findings(self) -> Sequence[Finding]: ...


@dataclass(frozen=True)
class Sample:
    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Group:
    """Samples pushed together; ``key`` is the Pushgateway grouping key (labels of all)."""

    key: Mapping[str, str]
    samples: tuple[Sample, ...]


def collect(
    report: RunFacts, error: BaseException | None, finished_at: float, last_stage: str
) -> list[Group]:
    """The run's metrics as groups: one per source (and gold), then the pipeline's own."""
    pipeline = report.pipeline
    groups: list[Group] = []
    for src in report.sources:
        # A stage that failed delivered nothing: 0, so no earlier run's count stays behind
        # in the gateway's group (a push replaces a metric's every series, or none).
        samples = [Sample("xoelt_rows", src.rows.get(st, 0), {"stage": st}) for st in src.seconds]
        samples += [
            Sample("xoelt_stage_duration_seconds", sec, {"stage": st})
            for st, sec in src.seconds.items()
        ]
        done = last_stage in report.stages and all(st in src.rows for st in report.stages)
        if done:
            samples.append(Sample("xoelt_last_success_timestamp_seconds", finished_at))
        groups.append(Group({"pipeline": pipeline, "source": src.name}, tuple(samples)))
    if report.gold_seconds is not None:
        gold = [
            Sample("xoelt_stage_duration_seconds", report.gold_seconds, {"stage": "gold"}),
            Sample(
                "xoelt_rows", sum(report.gold.values()) if error is None else 0, {"stage": "gold"}
            ),
        ]
        if error is None:
            gold.append(Sample("xoelt_last_success_timestamp_seconds", finished_at))
        groups.append(Group({"pipeline": pipeline, "source": "gold"}, tuple(gold)))
    findings = [f for s in report.sources for f in s.findings] + list(report.gold_findings)
    counts = data_test_counts(findings)
    run = [Sample("xoelt_run_success", 0.0 if error is not None else 1.0)]
    run += [Sample("xoelt_data_test_findings", n, {"severity": sev}) for sev, n in counts.items()]
    groups.append(Group({"pipeline": pipeline}, tuple(run)))
    return groups


def data_test_counts(findings: Sequence[Finding]) -> dict[str, int]:
    """How many ``data_test`` findings there are of each severity (every severity listed)."""
    counts: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
    for f in findings:
        if f.kind == DATA_TEST:
            counts[f.severity] = counts.get(f.severity, 0) + 1
    return counts


def push_pushgateway(config: PushgatewayMetrics, groups: Sequence[Group]) -> None:
    """One POST per group, each with its own registry (no process-global state)."""
    from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

    for group in groups:
        registry = CollectorRegistry()
        gauges: dict[str, Any] = {}
        for s in group.samples:
            if s.name not in gauges:
                names = sorted(s.labels)
                gauges[s.name] = Gauge(s.name, HELP[s.name], names, registry=registry)
            gauge = gauges[s.name]
            (gauge.labels(**s.labels) if s.labels else gauge).set(s.value)
        pushadd_to_gateway(
            config.url,
            job=config.job,
            registry=registry,
            grouping_key=dict(group.key),
            timeout=config.timeout_seconds,
        )


def otlp_body(groups: Sequence[Group], now: float) -> dict[str, Any]:
    """An OTLP ``ExportMetricsServiceRequest`` in its JSON encoding: one gauge per name."""
    stamp = str(int(now * 1e9))
    by_name: dict[str, list[dict[str, Any]]] = {}
    for group in groups:
        for s in group.samples:
            labels = {**group.key, **s.labels}
            by_name.setdefault(s.name, []).append(
                {
                    "attributes": [
                        {"key": k, "value": {"stringValue": v}} for k, v in sorted(labels.items())
                    ],
                    "timeUnixNano": stamp,
                    "asDouble": float(s.value),
                }
            )
    metrics = [
        {"name": n, "description": HELP[n], "unit": UNIT[n], "gauge": {"dataPoints": points}}
        for n, points in by_name.items()
    ]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": JOB}}]}
    scope = {"name": "xoelt"}
    return {
        "resourceMetrics": [
            {"resource": resource, "scopeMetrics": [{"scope": scope, "metrics": metrics}]}
        ]
    }


def push_otlp(config: OtlpMetrics, groups: Sequence[Group], env: Mapping[str, str]) -> None:
    """One POST of every metric to the collector; a non-2xx answer is an error."""
    import httpx

    headers = {**config.resolved_headers(env), "Content-Type": "application/json"}
    body = otlp_body(groups, time.time())
    response = httpx.post(config.url, json=body, headers=headers, timeout=config.timeout_seconds)
    response.raise_for_status()


def publish(
    config: PushgatewayMetrics | OtlpMetrics | None,
    report: RunFacts,
    error: BaseException | None,
    log: Any,
    *,
    last_stage: str,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Push the run's metrics if the target asks for it; True when they arrived.

    Never raises: any failure (refused, an HTTP error, the deadline) is one warning.
    """
    if config is None:
        return False
    groups = collect(report, error, time.time(), last_stage)
    failure: list[BaseException] = []

    def push() -> None:
        try:
            if isinstance(config, PushgatewayMetrics):
                push_pushgateway(config, groups)
            else:
                push_otlp(config, groups, environment() if env is None else env)
        except Exception as exc:  # a metrics endpoint must never decide the run's outcome
            failure.append(exc)

    worker = threading.Thread(target=push, name="xoelt-metrics", daemon=True)
    worker.start()
    # Each call has this timeout already; the join bounds a trickling or hung server too.
    worker.join(config.timeout_seconds + 0.5)
    where = config.url
    if worker.is_alive():
        log.warning("metrics push timed out", endpoint=where, seconds=config.timeout_seconds)
        return False
    if failure:
        reason = redact(f"{type(failure[0]).__name__}: {failure[0]}")
        log.warning("metrics push failed", endpoint=where, error=reason)
        return False
    log.info("metrics pushed", endpoint=where, type=config.type)
    return True
