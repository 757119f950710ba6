"""Alerts: one message per run (or watchdog miss) to each channel that wants one of its events.

:func:`xoelt.core.execute` calls :func:`after_run` once, when a run has succeeded or failed
(not when it was interrupted: a signal must end the process within seconds). The events of
a run are:

- ``run_failed``: the run raised (a stage failed);
- ``test_warned`` / ``test_failed``: a data test did not pass, as a finding of kind
  ``data_test`` with severity ``warn`` / ``error`` on a stage's result or on the error;
- ``recovered``: the run succeeded and the pipeline's previous run in the ledger had failed.

``watchdog_miss`` comes from :mod:`xoelt.watchdog`. Delivery never raises: a channel that
is down, slow or refusing is a warning in the log, and the run's exit code and error are
exactly what they would be without alerts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from xoelt.alerts.message import Alert
from xoelt.config.alerts import AlertsConfig, Event, effective_alerts
from xoelt.findings import Finding
from xoelt.redact import redact

if TYPE_CHECKING:
    from xoelt.errors import StageFailed
    from xoelt.plan import RunPlan


class RunReport(Protocol):
    """What :func:`after_run` reads of :class:`xoelt.core.RunReport` (core sits above)."""

    run_id: str
    plan: RunPlan
    sources: list[Any]  # SourceReport: name, rows per stage, findings
    gold: dict[str, int]
    gold_findings: list[Finding]


DATA_TEST = "data_test"
SEVERITY_EVENT: dict[str, Event] = {"error": "test_failed", "warn": "test_warned"}
LAYERS = (("bronze", "load"), ("silver", "transform"))  # layer, the stage whose rows it holds


def alerts_for(plan: RunPlan) -> AlertsConfig:
    """The pipeline's ``globals.alerts`` if set, else the target's ``alerts``."""
    return effective_alerts(plan.pipeline.globals.alerts, plan.target.alerts)


def data_test_events(findings: Iterable[Finding]) -> list[Event]:
    """``test_failed`` for an error-severity data test finding, ``test_warned`` for a warn."""
    events: list[Event] = []
    for f in findings:
        if f.kind != DATA_TEST:
            continue
        event = SEVERITY_EVENT.get(f.severity)
        if event and event not in events:
            events.append(event)
    return events


def run_events(
    findings: Sequence[Finding], failed: bool, previous_failed: bool | None
) -> list[Event]:
    """Every event a run's outcome raises (see the module docstring)."""
    events: list[Event] = ["run_failed"] if failed else []
    events += data_test_events(findings)
    if not failed and previous_failed:
        events.append("recovered")
    return events


def reproduce(plan: RunPlan) -> str:
    """``xoelt run <pipeline> --date <D> [--target T]``: the command that reruns this window."""
    run_at = plan.run_at
    zone = plan.pipeline.dag.time_window.zone
    if isinstance(run_at, datetime):
        local = run_at.astimezone(zone)
        if plan.pipeline.dag.time_window.refresh_type == "daily":
            when = local.date().isoformat()
        else:
            when = local.strftime("%Y-%m-%dT%H:%M")
    elif isinstance(run_at, date):
        when = run_at.isoformat()
    else:
        when = plan.window.start.astimezone(zone).date().isoformat()
    target = "" if plan.target_name == "local" else f" --target {plan.target_name}"
    return f"xoelt run {plan.name} --date {when}{target}"


def _findings(report: RunReport, error: StageFailed | None) -> list[Finding]:
    found = [f for s in report.sources for f in s.findings]
    found += list(report.gold_findings)
    if error is not None:
        found += [f for f in error.findings if f not in found]
    return found


def build_run_alert(
    report: RunReport, error: StageFailed | None, previous_failed: bool | None
) -> Alert | None:
    """The run's alert, or None when its outcome raises no event."""
    plan = report.plan
    findings = _findings(report, error)
    events = run_events(findings, error is not None, previous_failed)
    if not events:
        return None
    rows: dict[str, int] = {}
    for layer, stage in LAYERS:
        counts = [s.rows[stage] for s in report.sources if stage in s.rows]
        if counts:
            rows[layer] = sum(counts)
    if report.gold:
        rows["gold"] = sum(report.gold.values())
    tests = tuple(
        f"{f.severity}: {f.message}"
        for f in findings
        if f.kind == DATA_TEST and f.severity != "info"
    )
    return Alert(
        events=tuple(events),
        pipeline=plan.name,
        window=plan.window.label,
        target=plan.target_name,
        command=reproduce(plan),
        status="failed" if error is not None else "succeeded",
        run_id=report.run_id,
        stage=error.stage if error is not None else None,
        source=error.source if error is not None else None,
        error=redact(error.detail if error is not None else ""),
        rows=rows,
        tests=tests,
    )


def after_run(report: RunReport, error: StageFailed | None, previous_failed: Any, log: Any) -> None:
    """Announce a finished run. ``previous_failed()`` reads the ledger (only called when a
    channel wants ``recovered`` and the run succeeded)."""
    config = alerts_for(report.plan)
    if not config.channels:
        return
    wants_recovered = any("recovered" in c.events for c in config.channels)
    before: bool | None = None
    if error is None and wants_recovered:
        try:
            before = previous_failed()
        except Exception as exc:  # a ledger that cannot be read costs the event, not the run
            log.warning("alerts: previous run unknown", error=redact(str(exc))[:300])
    alert = build_run_alert(report, error, before)
    if alert is not None:
        deliver(config, alert, log)


def deliver(config: AlertsConfig, alert: Alert, log: Any) -> int:
    """Send ``alert`` to every channel that subscribes to one of its events; the number
    delivered. Never raises: each failure is one warning naming the channel."""
    from xoelt.alerts.channels import send

    sent = 0
    for channel in config.channels:
        chosen = alert.for_channel(list(channel.events))
        if chosen is None:
            continue
        try:
            send(channel, chosen)
        except Exception as exc:
            log.warning(
                "alert not delivered",
                channel=channel.label,
                alert_event=chosen.event,
                error=redact(str(exc) or type(exc).__name__)[:300],
            )
            continue
        sent += 1
        log.info("alert sent", channel=channel.label, alert_event=chosen.event)
    return sent
