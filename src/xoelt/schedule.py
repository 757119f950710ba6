"""Schedules: the cron fire times of a pipeline, in its own timezone (what backfill runs).

Which schedules are allowed at all (what Kubernetes accepts) is :mod:`xoelt.config.cron`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from xoelt.errors import InputError
from xoelt.timewindow import local

MAX_FIRES = 20_000


def fire_times(schedule: str, timezone: str, first: date, last: date) -> list[datetime]:
    """Every fire time of ``schedule`` on local dates ``first``..``last`` (inclusive), in order.

    croniter iterates in the zone of its start time: a time inside the spring-forward gap
    fires at the first valid instant after it, and one inside the repeated fall-back hour
    fires twice. Both resolve to the same daily window, which backfill runs once.
    """
    if last < first:
        raise InputError(f"backfill range ends ({last}) before it starts ({first})")
    zone = ZoneInfo(timezone)
    return list(
        _iter(schedule, local(first, time(0), zone), local(last + timedelta(days=1), time(0), zone))
    )


def _iter(schedule: str, start: datetime, end: datetime) -> Iterator[datetime]:
    from croniter import croniter

    it = croniter(schedule, start - timedelta(microseconds=1))
    for count in range(MAX_FIRES + 1):
        fired: datetime = it.get_next(datetime)
        if fired >= end:
            return
        if count == MAX_FIRES:
            raise InputError(f"backfill range has more than {MAX_FIRES} runs; split it")
        yield fired
