"""``xoelt list``: every pipeline, its schedule, sources, and the next runs with their windows.

Fire times come from :func:`xoelt.schedule.fire_times` (croniter in the pipeline's zone) and
each run's window from :func:`xoelt.timewindow.resolve_window`, exactly as ``run`` resolves
them, so what ``list`` shows is what the CronJob will load. A run is marked when DST changes
its day: the window spans an offset change (a 23 or 25 hour day) or the fire time falls on a
day whose offset changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from xoelt.config.models import Pipeline
from xoelt.errors import InputError
from xoelt.pipelines import PipelineInvalid, discover, load_pipeline
from xoelt.schedule import fire_times
from xoelt.settings import Settings
from xoelt.timewindow import TimeWindow, local, resolve_window

# Days ahead to look for the next fire times, widened until enough are found (a yearly
# schedule needs the last; an every-minute one is done with the first).
_SPANS = (2, 9, 40, 370, 1470)


@dataclass(frozen=True)
class NextRun:
    """One future fire time, the window it loads, and a DST note ("" on ordinary days)."""

    at: datetime
    window: TimeWindow
    dst: str

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "window": self.window.as_dict(), "dst": self.dst}


@dataclass
class PipelineListing:
    name: str
    domain: str
    path: str
    schedule: str
    timezone: str
    refresh_type: str
    sources: list[dict[str, str]]
    next_runs: list[NextRun]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "domain": self.domain,
            "path": self.path,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "refresh_type": self.refresh_type,
            "sources": self.sources,
            "next_runs": [r.as_dict() for r in self.next_runs],
        }


@dataclass
class ListReport:
    """The pipelines that loaded, one line per one that did not, and where they were looked for."""

    pipelines: list[PipelineListing] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    looked_in: str = ""

    @property
    def exit_code(self) -> int:
        return 2 if self.problems else 0

    def as_dict(self) -> dict[str, Any]:
        return {"pipelines": [p.as_dict() for p in self.pipelines], "problems": self.problems}


def dst_note(at: datetime, window: TimeWindow) -> str:
    """Why DST matters for this run, or "" (offsets compared at the window's ends and at the
    fire day's two midnights)."""
    zone = ZoneInfo(window.timezone)
    notes = []
    start, end = window.start.utcoffset(), window.end.utcoffset()
    if start != end:
        notes.append(f"window is {window.duration} long (UTC offset {_off(start)} → {_off(end)})")
    day = at.astimezone(zone).date()
    before = local(day, time(0), zone).utcoffset()
    after = local(day + timedelta(days=1), time(0), zone).utcoffset()
    if before != after:
        notes.append(f"fires on a DST-change day ({_off(before)} → {_off(after)})")
    return "; ".join(notes)


def _off(delta: timedelta | None) -> str:
    minutes = int((delta or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def next_runs(pipeline: Pipeline, now: datetime, count: int = 3) -> list[NextRun]:
    """The next ``count`` fire times strictly after ``now`` and the windows they load."""
    dag = pipeline.dag
    zone = dag.time_window.zone
    today: date = now.astimezone(zone).date()
    fires: list[datetime] = []
    for span in _SPANS:
        found = fire_times(dag.schedule, dag.time_window.timezone, today, today + timedelta(span))
        fires = [f for f in found if f.astimezone(UTC) > now.astimezone(UTC)][:count]
        if len(fires) == count:
            break
    out = []
    for at in fires:
        window = resolve_window(dag.time_window, at, dag.schedule)
        out.append(NextRun(at, window, dst_note(at, window)))
    return out


def list_pipelines(
    settings: Settings | None = None, now: datetime | None = None, count: int = 3
) -> ListReport:
    """Every pipeline under the pipelines root, with its next ``count`` runs after ``now``."""
    settings = settings or Settings.from_env()
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise InputError("--now needs a UTC offset (e.g. 2026-11-01T12:00-04:00)")
    report = ListReport(looked_in=settings.where("pipelines"))
    for path in discover(settings.pipelines_root):
        try:
            pipeline = load_pipeline(path)
        except PipelineInvalid as exc:
            report.problems.extend(str(p) for p in exc.problems)
            continue
        except InputError as exc:
            report.problems.append(str(exc))
            continue
        dag = pipeline.dag
        report.pipelines.append(
            PipelineListing(
                name=pipeline.name,
                domain=dag.domain,
                path=str(path),
                schedule=dag.schedule,
                timezone=dag.time_window.timezone,
                refresh_type=dag.time_window.refresh_type,
                sources=[
                    {
                        "name": n,
                        "source_type": s.source_type or f"derived from {s.from_source}",
                        "load_strategy": s.load_strategy,
                    }
                    for n, s in pipeline.sources.items()
                ],
                next_runs=next_runs(pipeline, moment, count),
            )
        )
    if not report.pipelines and not report.problems:
        raise InputError(f"no pipeline files found under {report.looked_in}")
    return report
