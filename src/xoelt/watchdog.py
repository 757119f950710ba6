"""``xoelt watchdog``: did each pipeline's latest scheduled window succeed in time?

A failed run says so itself (exit 1, a ``run_failed`` alert). What no run can say is that
it never started: a CronJob suspended, skipped under ``concurrencyPolicy: Forbid``, or
stopped by the controller after 100 missed schedules. The watchdog looks from outside: for
each pipeline, the latest cron fire time at or before *now* (in the pipeline's zone, as
``run`` without ``--date`` resolves it), the window that fire time loads, and the ledger
rows of that window. A run *completes* the window when it succeeded at every stage of
every source and at gold (as :func:`xoelt.ledger.window_complete` counts it). Statuses:

- ``ok``: a run completed the window within ``deadline`` of the scheduled time;
- ``late``: one completed it, but after the deadline (the data is there: no alert);
- ``pending``: not complete yet, and the deadline has not passed;
- ``missed``: not complete, and the deadline has passed: exit 1, ``watchdog_miss`` alerts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from xoelt import ledger
from xoelt.backfill import required_stages
from xoelt.config.alerts import effective_alerts
from xoelt.errors import InputError
from xoelt.logging import get_logger
from xoelt.pipelines import discover, load_pipeline, resolve
from xoelt.plan import RunPlan, build_plan
from xoelt.runtime import Runtime
from xoelt.settings import Settings
from xoelt.targets import resolve_target
from xoelt.timewindow import align_to_schedule

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_deadline(text: str) -> timedelta:
    """``2h``, ``90m``, ``1h30m``, ``1d``, ``45s``: InputError (exit 2) for anything else."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or not match or not any(match.groups()):
        raise InputError(f"--deadline {text!r} is not a duration (2h, 90m, 1h30m, 1d)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    delta = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if delta <= timedelta(0):
        raise InputError(f"--deadline {text!r} must be longer than zero")
    return delta


@dataclass
class WatchedWindow:
    """One pipeline's latest scheduled window and what the ledger says of it."""

    pipeline: str
    scheduled_at: datetime
    deadline_at: datetime
    plan: RunPlan
    status: str  # ok | late | pending | missed
    completed_at: datetime | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "scheduled_at": self.scheduled_at.isoformat(),
            "deadline_at": self.deadline_at.isoformat(),
            "window": self.plan.window.as_dict(),
            "status": self.status,
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "detail": self.detail,
        }


@dataclass
class WatchdogReport:
    """Every watched window; exit 1 if any was missed."""

    now: datetime
    deadline: timedelta
    windows: list[WatchedWindow] = field(default_factory=list)
    alerts_sent: int = 0

    @property
    def missed(self) -> list[WatchedWindow]:
        return [w for w in self.windows if w.status == "missed"]

    @property
    def exit_code(self) -> int:
        return 1 if self.missed else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "deadline_seconds": int(self.deadline.total_seconds()),
            "windows": [w.as_dict() for w in self.windows],
            "missed": [w.pipeline for w in self.missed],
        }


def completed_at(
    rows: Sequence[tuple[str, str, str, str, datetime]], required: set[tuple[str, str]]
) -> datetime | None:
    """When the first run that completed the window finished (its last row), or None."""
    runs: dict[str, list[tuple[str, str, str, datetime]]] = {}
    for run_id, source, stage, status, finished in rows:
        runs.setdefault(run_id, []).append((source, stage, status, finished))
    done = []
    for items in runs.values():
        succeeded = {(s, st) for s, st, status, _ in items if status == "success"}
        if all(status == "success" for _, _, status, _ in items) and required <= succeeded:
            done.append(max(f for *_, f in items))
    return min(done) if done else None


def _why_not(rows: Sequence[tuple[str, str, str, str, datetime]]) -> str:
    if not rows:
        return "no run of this window in the ledger"
    run_id, source, stage, status, _ = rows[-1]
    if status != "success":
        return f"latest run {run_id} {status} at {stage} (source {source})"
    return f"latest run {run_id} did not complete every stage"


def watch(
    plan: RunPlan, scheduled: datetime, deadline: timedelta, now: datetime, settings: Settings
) -> WatchedWindow:
    """The status of ``plan``'s window, scheduled at ``scheduled``, as of ``now``."""
    start = plan.window.start.isoformat()
    with Runtime(plan, settings) as rt:
        rows = ledger.window_runs(rt.warehouse, plan.database, plan.name, start)
    finished = completed_at(rows, required_stages(plan))
    due = scheduled + deadline
    item = WatchedWindow(plan.name, scheduled, due, plan, "ok", finished)
    if finished is not None:
        item.status = "ok" if finished <= due else "late"
        item.detail = (
            f"completed {finished.astimezone(scheduled.tzinfo).isoformat(timespec='seconds')}"
        )
    elif now < due:
        item.status, item.detail = "pending", _why_not(rows)
    else:
        item.status, item.detail = "missed", _why_not(rows)
    return item


def watchdog(
    refs: Sequence[str],
    deadline: timedelta,
    target: str | None = None,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> WatchdogReport:
    """Watch the named pipelines (default: all) and send ``watchdog_miss`` for each miss."""
    settings = settings or Settings.from_env()
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise InputError("--now needs a UTC offset (e.g. 2026-11-04T09:00-05:00)")
    paths = [resolve(r, settings.pipelines_root) for r in refs] or discover(settings.pipelines_root)
    if not paths:
        raise InputError(f"no pipeline files found under {settings.where('pipelines')}")
    target_name, bound = resolve_target(target, settings)
    report = WatchdogReport(moment, deadline)
    for path in paths:
        pipeline = load_pipeline(path)
        dag = pipeline.dag
        scheduled = align_to_schedule(moment.astimezone(dag.time_window.zone), dag.schedule)
        plan = build_plan(pipeline, target_name, bound, scheduled, settings.sql_root)
        item = watch(plan, scheduled, deadline, moment, settings)
        report.windows.append(item)
        if item.status == "missed":
            report.alerts_sent += _alert(item, deadline)
    return report


def _alert(item: WatchedWindow, deadline: timedelta) -> int:
    """``watchdog_miss`` to the pipeline's channels; how many took it."""
    plan = item.plan
    config = effective_alerts(plan.pipeline.globals.alerts, plan.target.alerts)
    if not config.channels:
        return 0
    from xoelt.alerts import deliver, reproduce
    from xoelt.alerts.message import Alert

    alert = Alert(
        events=("watchdog_miss",),
        pipeline=plan.name,
        window=plan.window.label,
        target=plan.target_name,
        command=reproduce(plan),
        status="missed",
        error=f"no complete run within {deadline} of {item.scheduled_at.isoformat()}: {item.detail}",
        scheduled_at=item.scheduled_at.isoformat(),
    )
    return deliver(config, alert, get_logger(pipeline=plan.name, window=plan.window.label))
