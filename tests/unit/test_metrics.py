"""What a run's metrics say: groups, names, labels and values from a run report.

The end-to-end pushes (Pushgateway and OTLP on loopback) are in tests/e2e/test_metrics.py;
these cover what a short demo run cannot show: data-test findings, a partial run, gold,
and the OTLP headers' ``${VAR}`` handling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import ValidationError

from xoelt.findings import Finding
from xoelt.metrics import (
    OtlpMetrics,
    PushgatewayMetrics,
    Sample,
    collect,
    data_test_counts,
    otlp_body,
    publish,
)
from xoelt.redact import redact

STAGES = ("extract", "stage", "load", "transform")


@dataclass
class Src:
    name: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Run:
    sources: list[Src]
    pipeline: str = "shop/orders_daily"
    stages: tuple[str, ...] = STAGES
    gold: dict[str, int] = field(default_factory=dict)
    gold_seconds: float | None = None
    gold_findings: list[Finding] = field(default_factory=list)


def _test(severity: Any, kind: str = "data_test") -> Finding:
    return Finding(kind, "not_null on ORDERS.ID: 3 rows", severity=severity, count=3)


def _complete(name: str, rows: int) -> Src:
    return Src(name, dict.fromkeys(STAGES, rows), dict.fromkeys(STAGES, 0.5))


def test_data_test_findings_counted_by_severity_other_kinds_ignored() -> None:
    orders = _complete("orders", 10)
    orders.findings = [_test("warn"), _test("warn"), _test("error"), _test("warn", "new_column")]
    run = Run([orders], gold={"fct_orders": 10}, gold_seconds=1.0)
    run.gold_findings = [_test("info")]
    groups = collect(run, None, 1_700_000_000.0, "transform")
    pipeline = groups[-1]
    assert pipeline.key == {"pipeline": "shop/orders_daily"}
    assert list(pipeline.samples) == [
        Sample("xoelt_run_success", 1.0),
        Sample("xoelt_data_test_findings", 1, {"severity": "info"}),
        Sample("xoelt_data_test_findings", 2, {"severity": "warn"}),
        Sample("xoelt_data_test_findings", 1, {"severity": "error"}),
    ]
    assert data_test_counts([]) == {"info": 0, "warn": 0, "error": 0}


def test_a_failed_run_has_no_last_success_for_what_did_not_finish() -> None:
    done = _complete("customers", 4)
    failed = Src("orders", {"extract": 7, "stage": 7}, {"extract": 1.0, "stage": 0.1, "load": 2})
    failed.findings = [_test("error")]  # the data test that failed the run
    groups = collect(Run([done, failed]), RuntimeError("load failed"), 1e9, "transform")
    by_source = {g.key.get("source"): g for g in groups}
    assert set(by_source) == {"customers", "orders", None}  # no gold group: gold never ran
    assert Sample("xoelt_last_success_timestamp_seconds", 1e9) in by_source["customers"].samples
    names = {s.name for s in by_source["orders"].samples}
    assert names == {"xoelt_rows", "xoelt_stage_duration_seconds"}
    load = [s for s in by_source["orders"].samples if s.labels == {"stage": "load"}]
    assert load == [  # the failed stage: its time, and 0 rows delivered
        Sample("xoelt_rows", 0, {"stage": "load"}),
        Sample("xoelt_stage_duration_seconds", 2, {"stage": "load"}),
    ]
    assert Sample("xoelt_run_success", 0.0) in by_source[None].samples
    assert Sample("xoelt_data_test_findings", 1, {"severity": "error"}) in by_source[None].samples


def test_a_single_stage_run_is_never_a_last_success() -> None:
    only = Src("orders", {"extract": 7}, {"extract": 1.0})
    groups = collect(Run([only], stages=("extract",)), None, 1e9, "transform")
    assert all(s.name != "xoelt_last_success_timestamp_seconds" for g in groups for s in g.samples)


def test_otlp_body_is_the_json_mapping_of_an_export_request() -> None:
    run = Run([_complete("orders", 3)], gold={"a": 1, "b": 2}, gold_seconds=0.25)
    body = otlp_body(collect(run, None, 1e9, "transform"), now=1_700_000_000.5)
    [rm] = body["resourceMetrics"]
    [sm] = rm["scopeMetrics"]
    gold_rows = [
        p
        for m in sm["metrics"]
        if m["name"] == "xoelt_rows"
        for p in m["gauge"]["dataPoints"]
        if {"key": "source", "value": {"stringValue": "gold"}} in p["attributes"]
    ]
    assert gold_rows == [
        {
            "attributes": [
                {"key": "pipeline", "value": {"stringValue": "shop/orders_daily"}},
                {"key": "source", "value": {"stringValue": "gold"}},
                {"key": "stage", "value": {"stringValue": "gold"}},
            ],
            "timeUnixNano": "1700000000500000000",  # fixed64: a string in JSON
            "asDouble": 3.0,
        }
    ]


def test_otlp_headers_fill_references_on_use_and_mask_them() -> None:
    config = OtlpMetrics.model_validate(
        {"type": "otlp", "endpoint": "https://otel.example.com:4318", "headers": {
            "Authorization": "Bearer ${OTLP_TOKEN}", "X-Team": "data"}},
        context={"env": {"OTLP_TOKEN": "tok-123456789"}},
    )  # fmt: skip
    assert config.headers["Authorization"] == "Bearer ${OTLP_TOKEN}"  # still a reference
    assert config.url == "https://otel.example.com:4318/v1/metrics"
    headers = config.resolved_headers({"OTLP_TOKEN": "tok-123456789"})
    assert headers == {"Authorization": "Bearer tok-123456789", "X-Team": "data"}
    assert "tok-123456789" not in redact("sent Bearer tok-123456789")


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append(("warning", event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append(("info", event, kw))


def test_an_unset_header_variable_is_a_warning_naming_it() -> None:
    config = OtlpMetrics(type="otlp", endpoint="http://127.0.0.1:9", headers={"A": "${NOPE}"})
    log = _Log()
    assert not publish(config, Run([]), None, log, last_stage="transform", env={})
    [(level, event, kw)] = log.lines
    assert (level, event) == ("warning", "metrics push failed") and "NOPE" in kw["error"]


def test_config_is_checked() -> None:
    with pytest.raises(ValidationError, match="timeout_seconds"):
        PushgatewayMetrics.model_validate(
            {"type": "pushgateway", "url": "http://g", "timeout_seconds": 0}
        )
    with pytest.raises(ValidationError, match="not an http"):
        PushgatewayMetrics.model_validate({"type": "pushgateway", "url": "pushgateway:9091"})
