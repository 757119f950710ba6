"""Alert events from a run's outcome (data-test findings included), per-channel headlines,
the command to reproduce, and redaction of every outgoing text."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.fakes.alerts import AlertSink
from tests.fakes.server import serve
from xoelt import redact
from xoelt.alerts import build_run_alert, data_test_events, deliver, reproduce, run_events
from xoelt.alerts.message import email_message, slack_body, teams_body, webhook_body
from xoelt.config.alerts import AlertsConfig
from xoelt.core import RunReport, SourceReport, make_plan
from xoelt.errors import DataError, StageFailed
from xoelt.findings import Finding
from xoelt.logging import get_logger
from xoelt.plan import RunPlan
from xoelt.settings import Settings

REPO = Path(__file__).resolve().parents[2]
WARN = Finding("data_test", "not_null AGENTS.EMAIL: 3 rows", "warn", 3)
ERROR = Finding("data_test", "unique FCT_CONTACTS.CONTACT_ID: 2 rows", "error", 2)
DRIFT = Finding("new_column", "column NOTE appeared", "warn")


def _plan(tmp_path: Path, when: str = "2026-11-03") -> RunPlan:
    settings = Settings(
        home=tmp_path / "home",
        targets_file=tmp_path / "targets.yaml",
        pipelines_root=REPO / "pipelines",
        sql_root=REPO / "sql",
    )
    return make_plan("demo/gladly_demo", when, settings=settings)


def test_data_test_severity_maps_to_events_and_other_findings_do_not() -> None:
    assert data_test_events([DRIFT, WARN]) == ["test_warned"]
    assert data_test_events([ERROR, WARN, ERROR]) == ["test_failed", "test_warned"]
    assert data_test_events([DRIFT, Finding("data_test", "ok", "info")]) == []
    assert run_events([WARN], failed=True, previous_failed=True) == ["run_failed", "test_warned"]
    assert run_events([], failed=False, previous_failed=True) == ["recovered"]
    assert run_events([], failed=False, previous_failed=None) == []


def test_run_alert_gathers_findings_of_stages_gold_and_the_error(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    report = RunReport("run-1", plan)
    report.sources.append(SourceReport("agents", rows={"load": 5, "transform": 5}, findings=[WARN]))
    report.sources.append(SourceReport("work_sessions", rows={"load": 45}))
    cause = DataError("2 duplicate keys", findings=[ERROR])
    error = StageFailed("transform", cause, source="work_sessions", window=plan.window.label)

    alert = build_run_alert(report, error, previous_failed=None)
    assert alert is not None
    assert alert.events == ("run_failed", "test_warned", "test_failed")
    assert alert.rows == {"bronze": 50, "silver": 5}
    assert (alert.stage, alert.source, alert.status) == ("transform", "work_sessions", "failed")
    assert alert.tests == (f"warn: {WARN.message}", f"error: {ERROR.message}")
    assert alert.command == "xoelt run demo/gladly_demo --date 2026-11-03"

    quiet = RunReport("run-2", plan, gold={"fct_contacts": 10}, gold_findings=[WARN])
    warned = build_run_alert(quiet, None, previous_failed=False)
    assert warned is not None and warned.events == ("test_warned",)
    assert warned.rows == {"gold": 10}
    assert build_run_alert(RunReport("run-3", plan), None, previous_failed=False) is None


def test_each_channel_gets_one_message_led_by_its_most_urgent_event(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    report = RunReport("run-1", plan, gold_findings=[WARN, ERROR])
    alert = build_run_alert(report, None, previous_failed=True)
    assert alert is not None and alert.events == ("test_warned", "test_failed", "recovered")
    with serve(AlertSink()) as sink:
        config = AlertsConfig.model_validate(
            {
                "channels": [
                    {"type": "webhook", "url": "${A}", "events": ["test_warned", "recovered"]},
                    {"type": "webhook", "url": "${B}"},  # default events
                    {"type": "webhook", "url": "${C}", "events": ["run_failed"]},
                ]
            }
        )
        env = {"A": f"{sink.url}/hook/a", "B": f"{sink.url}/hook/b", "C": f"{sink.url}/hook/c"}
        with pytest.MonkeyPatch.context() as mp:
            for k, v in env.items():
                mp.setenv(k, v)
            assert deliver(config, alert, get_logger()) == 2
        got = {r.path.rsplit("/", 1)[1]: r.json() for r in sink.requests("hook")}
    assert got["a"]["event"] == "test_warned" and got["b"]["event"] == "test_failed"
    assert "c" not in got
    assert got["b"]["title"].startswith("xoelt data test failed: demo/gladly_demo")


def test_reproduce_names_target_and_intraday_instant(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    assert reproduce(dataclasses.replace(plan, target_name="prod")) == (
        "xoelt run demo/gladly_demo --date 2026-11-03 --target prod"
    )
    late = _plan(tmp_path, "2026-11-03T07:10")  # a daily run keeps the run date
    assert reproduce(late).endswith("--date 2026-11-03")


def test_every_rendering_is_redacted(tmp_path: Path) -> None:
    secret = "s3cr3t-value-in-error-9876"
    redact.register(secret)
    try:
        plan = _plan(tmp_path)
        # an error built before the secret was known would still hold it: render redacts again
        error = StageFailed("extract", RuntimeError("x"), source="agents", window="w")
        error.detail = f"token {secret} echoed"
        alert = build_run_alert(RunReport("r", plan), error, None)
        assert alert is not None
        alert = dataclasses.replace(alert, tests=(f"warn: {secret}",), event="run_failed")
        rendered = [
            str(slack_body(alert)),
            str(teams_body(alert)),
            str(webhook_body(alert)),
            email_message(alert, "a@example.com", ["b@example.com"], "[x]").as_string(),
        ]
        for text in rendered:
            assert secret not in text and "***" in text
    finally:
        redact.forget_all()


def test_429_is_retried_after_retry_after_and_4xx_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.api import Fault

    plan = _plan(tmp_path)
    alert = build_run_alert(RunReport("r", plan), None, previous_failed=True)
    assert alert is not None
    config = AlertsConfig.model_validate({"channels": [{"type": "slack", "url": "${S}"}]})
    with serve(AlertSink()) as sink:
        monkeypatch.setenv("S", f"{sink.url}/slack/x")
        sink.fault("slack", Fault(status=429, headers={"Retry-After": "0"}))
        assert deliver(config, alert, get_logger()) == 1
        assert len(sink.requests("slack")) == 2
        sink.reset()
        sink.fault("slack", Fault(status=404, body="no_service"))
        assert deliver(config, alert, get_logger()) == 0
        assert len(sink.requests("slack")) == 1  # a 404 is not worth a second try
    monkeypatch.setenv("S", "hooks.slack.example/services/x")  # no scheme: refused at once
    assert deliver(config, alert, get_logger()) == 0
