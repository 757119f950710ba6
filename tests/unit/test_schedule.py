"""Cron fire times in the pipeline's zone, across DST."""

from __future__ import annotations

from datetime import date

import pytest

from xoelt.errors import InputError
from xoelt.schedule import fire_times


def iso(schedule: str, tz: str, first: date, last: date) -> list[str]:
    return [f.isoformat() for f in fire_times(schedule, tz, first, last)]


def test_daily_fire_times_keep_local_time_across_fall_back() -> None:
    assert iso("50 6 * * *", "America/New_York", date(2026, 10, 31), date(2026, 11, 2)) == [
        "2026-10-31T06:50:00-04:00",
        "2026-11-01T06:50:00-05:00",
        "2026-11-02T06:50:00-05:00",
    ]


def test_quarter_hourly_on_a_25_hour_day() -> None:
    assert (
        len(fire_times("*/15 * * * *", "Europe/London", date(2026, 10, 25), date(2026, 10, 25)))
        == 100
    )


def test_range_order_and_size_checked() -> None:
    with pytest.raises(InputError, match="ends"):
        fire_times("0 * * * *", "UTC", date(2026, 11, 2), date(2026, 11, 1))
    with pytest.raises(InputError, match="split it"):
        fire_times("* * * * *", "UTC", date(2026, 1, 1), date(2026, 3, 1))
