"""Time windows: DST-correct, half-open, tiling."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xoelt.config.models import TimeWindowConfig
from xoelt.errors import InputError
from xoelt.timewindow import parse_run_at, resolve_window


def daily(tz: str, lag: int = 1) -> TimeWindowConfig:
    return TimeWindowConfig(refresh_type="daily", lag={"days": lag}, timezone=tz)  # type: ignore[arg-type]


def test_daily_window_is_the_previous_local_day() -> None:
    w = resolve_window(daily("America/New_York"), date(2026, 11, 27))
    assert w.start.isoformat() == "2026-11-26T00:00:00-05:00"
    assert w.end.isoformat() == "2026-11-27T00:00:00-05:00"
    assert w.duration == timedelta(hours=24)
    assert w.tag == "2026-11-26"


@pytest.mark.parametrize(
    ("tz", "day", "hours", "start_offset", "end_offset"),
    [
        ("America/New_York", date(2026, 3, 8), 23, "-05:00", "-04:00"),  # spring forward
        ("America/New_York", date(2026, 11, 1), 25, "-04:00", "-05:00"),  # fall back
        ("Europe/London", date(2026, 3, 29), 23, "+00:00", "+01:00"),
        ("Europe/London", date(2026, 10, 25), 25, "+01:00", "+00:00"),
    ],
)
def test_dst_days_are_23_or_25_hours(
    tz: str, day: date, hours: int, start_offset: str, end_offset: str
) -> None:
    w = resolve_window(daily(tz), day + timedelta(days=1))
    assert w.duration == timedelta(hours=hours)
    assert w.start.isoformat() == f"{day.isoformat()}T00:00:00{start_offset}"
    assert w.end.isoformat() == f"{(day + timedelta(days=1)).isoformat()}T00:00:00{end_offset}"


def test_intraday_absolute_spanning_midnight() -> None:
    cfg = TimeWindowConfig(
        refresh_type="intraday_absolute",
        timezone="Europe/London",
        start_time=time(22, 0),
        end_time=time(2, 0),
    )
    w = resolve_window(cfg, date(2026, 10, 24))
    assert w.start.isoformat() == "2026-10-24T22:00:00+01:00"
    assert w.end.isoformat() == "2026-10-25T02:00:00+00:00"
    # the night the clocks go back: 22:00 BST to 02:00 GMT is five real hours
    assert w.duration == timedelta(hours=5)


def test_intraday_relative_aligns_to_the_schedule() -> None:
    cfg = TimeWindowConfig(
        refresh_type="intraday_relative",
        timezone="America/New_York",
        lookback={"hours": 3},  # type: ignore[arg-type]
        lag={"minutes": 15},  # type: ignore[arg-type]
    )
    run_at = datetime(2026, 11, 3, 14, 37, tzinfo=ZoneInfo("America/New_York"))
    w = resolve_window(cfg, run_at, schedule="0 */2 * * *")
    # latest fire time at or before 14:37 is 14:00
    assert w.start.isoformat() == "2026-11-03T11:00:00-05:00"
    assert w.end.isoformat() == "2026-11-03T13:45:00-05:00"


def test_intraday_relative_needs_an_instant() -> None:
    cfg = TimeWindowConfig(
        refresh_type="intraday_relative",
        lookback={"hours": 1},
        timezone="UTC",  # type: ignore[arg-type]
    )
    with pytest.raises(InputError, match="needs a time"):
        resolve_window(cfg, date(2026, 11, 3), schedule="0 * * * *")


def test_parse_run_at() -> None:
    zone = ZoneInfo("America/New_York")
    assert parse_run_at("2026-11-03", zone) == date(2026, 11, 3)
    assert parse_run_at("2026-11-03T06:00", zone) == datetime(2026, 11, 3, 6, tzinfo=zone)
    with pytest.raises(InputError, match="not a date"):
        parse_run_at("2026-13-45", zone)


@settings(max_examples=300, deadline=None)
@given(
    day=st.dates(min_value=date(1990, 1, 1), max_value=date(2060, 12, 31)),
    tz=st.sampled_from(
        ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
    ),
    lag=st.integers(min_value=0, max_value=3),
)
def test_consecutive_daily_windows_tile_time(day: date, tz: str, lag: int) -> None:
    cfg = daily(tz, lag)
    first = resolve_window(cfg, day)
    second = resolve_window(cfg, day + timedelta(days=1))
    assert first.end == second.start  # no gap, no overlap
    assert first.start < first.end
    assert first.end.astimezone(UTC) == second.start.astimezone(UTC)
    assert timedelta(hours=22) <= first.duration <= timedelta(hours=26)
