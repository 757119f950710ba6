"""Time windows: what slice of time a run covers, as aware, half-open ``[start, end)``.

``daily``: the whole local day ``run_date - lag`` (23 or 25 hours on DST days).
``intraday_relative``: ``[instant - lookback, instant - lag)`` where ``instant`` is the run
instant floored to the schedule's latest fire time.
``intraday_absolute``: fixed local ``start_time``/``end_time`` on ``run_date - lag``; an
``end_time`` at or before ``start_time`` ends on the next day (a window across midnight).

Local wall-clock times are converted through UTC so that DST gaps and folds resolve the
way ``zoneinfo`` does (a gap time moves forward, a fold takes its first occurrence).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from xoelt.config.models import TimeWindowConfig
from xoelt.errors import InputError


@dataclass(frozen=True)
class TimeWindow:
    """A resolved window. ``start``/``end`` are aware datetimes in the pipeline's zone."""

    refresh_type: str
    start: datetime
    end: datetime
    timezone: str

    @property
    def duration(self) -> timedelta:
        """Real elapsed time (through UTC: a 23 h or 25 h day says so)."""
        return self.end.astimezone(UTC) - self.start.astimezone(UTC)

    @property
    def date(self) -> dt.date:
        """The local date the window starts on (the partition a daily window fills)."""
        return self.start.date()

    @property
    def tag(self) -> str:
        """Path segment(s) for object keys: ``2026-11-26`` daily, ``2026-11-26/1400`` intraday
        (``2026-11-01/0100-0500`` for the second 01:00 of a fall-back day)."""
        if self.refresh_type == "daily":
            return self.start.date().isoformat()
        tag = f"{self.start.date().isoformat()}/{self.start.strftime('%H%M')}"
        # The repeated hour of a fall-back day: its second occurrence names its offset too,
        # or two windows would share one key (and one lock).
        return f"{tag}{self.start.strftime('%z')}" if self.start.fold else tag

    @property
    def label(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"

    def as_dict(self) -> dict[str, str]:
        return {
            "refresh_type": self.refresh_type,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "timezone": self.timezone,
            "duration": str(self.duration),
        }


def local(d: date, t: time, zone: ZoneInfo) -> datetime:
    """The instant of wall-clock ``d t`` in ``zone``, normalised through UTC."""
    naive = datetime.combine(d, t)
    return naive.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)


# Run dates a window can be computed for on every engine (lags and lookbacks of weeks stay
# far inside datetime's range, and no SaaS API has data from before 1900).
EARLIEST_RUN_DATE = date(1900, 1, 1)
LATEST_RUN_DATE = date(9998, 12, 31)


def _in_range(value: date, text: str, option: str) -> None:
    if not EARLIEST_RUN_DATE <= value <= LATEST_RUN_DATE:
        raise InputError(
            f"{option} {text!r} is outside {EARLIEST_RUN_DATE.isoformat()}.."
            f"{LATEST_RUN_DATE.isoformat()}"
        )


def parse_run_at(text: str, zone: ZoneInfo) -> datetime | date:
    """``--date``: a date (``2026-11-26``) or a local/offset datetime (``2026-11-26T14:30``)."""
    try:
        if not text.strip():
            raise ValueError("empty")
        if "T" in text or " " in text.strip():
            moment = datetime.fromisoformat(text.strip())
            _in_range(moment.date(), text, "--date")
            return moment if moment.tzinfo else moment.replace(tzinfo=zone)
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"--date {text!r} is not a date (YYYY-MM-DD) or a datetime (YYYY-MM-DDTHH:MM)"
        ) from None
    _in_range(day, text, "--date")
    return day


def parse_date(text: str, option: str = "--date") -> date:
    """A plain ``YYYY-MM-DD`` option value; InputError (exit 2) naming the option otherwise."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None
    _in_range(day, text, option)
    return day


def resolve_window(
    config: TimeWindowConfig, run_at: datetime | date, schedule: str | None = None
) -> TimeWindow:
    """Resolve a window from the pipeline's ``time_window`` and a run date or instant."""
    zone = config.zone
    kind = config.refresh_type
    if kind == "daily":
        run_date = run_at.astimezone(zone).date() if isinstance(run_at, datetime) else run_at
        day = run_date - timedelta(days=config.lag.days)
        start = local(day, time(0), zone)
        end = local(day + timedelta(days=1), time(0), zone)
        return TimeWindow(kind, start, end, config.timezone)
    if kind == "intraday_absolute":
        assert config.start_time is not None and config.end_time is not None
        run_date = run_at.astimezone(zone).date() if isinstance(run_at, datetime) else run_at
        day = run_date - timedelta(days=config.lag.days)
        start = local(day, config.start_time, zone)
        end_day = day if config.end_time > config.start_time else day + timedelta(days=1)
        end = local(end_day, config.end_time, zone)
        return TimeWindow(kind, start, end, config.timezone)
    if not isinstance(run_at, datetime):
        raise InputError(
            f"intraday_relative needs a time: --date {run_at.isoformat()}T06:00 (run instant)"
        )
    instant = align_to_schedule(run_at.astimezone(zone), schedule) if schedule else run_at
    assert config.lookback is not None
    end = (instant.astimezone(UTC) - config.lag.delta).astimezone(zone)
    start = (instant.astimezone(UTC) - config.lookback.delta).astimezone(zone)
    return TimeWindow(kind, start, end, config.timezone)


def align_to_schedule(instant: datetime, schedule: str) -> datetime:
    """The latest fire time of ``schedule`` at or before ``instant`` (in instant's zone)."""
    from croniter import croniter

    probe = instant + timedelta(microseconds=1)
    fired: datetime = croniter(schedule, probe).get_prev(datetime)
    # In the repeated hour of a fall-back day get_prev lands on the first occurrence; walking
    # forward (which fires at both) finds the real latest fire time, compared in UTC.
    forward = croniter(schedule, fired)
    while True:
        following: datetime = forward.get_next(datetime)
        if following.astimezone(UTC) > instant.astimezone(UTC):
            return fired.astimezone(instant.tzinfo)
        fired = following
