"""Schedules and zones as Kubernetes checks them (a CronJob's ``schedule`` and ``timeZone``).

Two parsers meet here. Kubernetes parses a CronJob's ``schedule`` with robfig/cron v3's
standard parser; croniter computes the fire times xoelt runs and backfills
(:mod:`xoelt.schedule`). croniter is the more lenient (7 as Sunday, ``MON-SUN``, ``L``, ``W``,
``#``): :func:`kubernetes_schedule_problem` accepts a schedule only if both parsers do, so a
schedule ``validate`` passes is one the API server takes and xoelt can compute.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
"""robfig/cron's descriptors that croniter also knows (``@every <duration>`` it does not)."""

MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class CronField:
    """One field of a standard 5-field schedule: its bounds and (month, day) its names."""

    name: str
    low: int
    high: int
    names: Mapping[str, int]


FIELDS = (
    CronField("minute", 0, 59, {}),
    CronField("hour", 0, 23, {}),
    CronField("day of month", 1, 31, {}),
    CronField("month", 1, 12, {n: i for i, n in enumerate(MONTH_NAMES, start=1)}),
    CronField("day of week", 0, 6, {n: i for i, n in enumerate(DAY_NAMES)}),
)

# Kubernetes' check of a timeZone path component (tz database naming rules, digits and '+'
# tolerated for legacy names), before it loads the zone.
_ZONE_PART = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}$")
_NUMBER = re.compile(r"^[0-9]+$")


class _Refused(ValueError):
    pass


def _value(text: str, field: CronField) -> int:
    named = field.names.get(text.lower())
    if named is not None:
        return named
    if not _NUMBER.match(text):
        names = ""
        if field.names:
            spelled = list(field.names)
            names = f" or a name {spelled[0].upper()}-{spelled[-1].upper()}"
        raise _Refused(f"{text!r} in the {field.name} field is not a number{names}")
    return int(text)


def _check_range(expr: str, field: CronField) -> None:
    """robfig/cron's ``getRange``: ``*|?|N|N-M`` with an optional ``/step``."""
    range_part, *steps = expr.split("/")
    if len(steps) > 1:
        raise _Refused(f"{expr!r}: more than one '/' in the {field.name} field")
    ends = range_part.split("-")
    if ends[0] in ("*", "?"):
        if len(ends) > 1:
            raise _Refused(f"{expr!r}: '{ends[0]}' cannot start a range")
        start, end = field.low, field.high
    else:
        if len(ends) > 2:
            raise _Refused(f"{expr!r}: more than one '-' in the {field.name} field")
        start = _value(ends[0], field)
        end = _value(ends[1], field) if len(ends) == 2 else start
        if steps and len(ends) == 1:
            end = field.high  # "N/step" means N to the end of the field, stepping
    if steps and (not _NUMBER.match(steps[0]) or int(steps[0]) == 0):
        raise _Refused(f"{expr!r}: the step must be a positive number")
    if start < field.low or end > field.high:
        raise _Refused(
            f"{expr!r}: the {field.name} field takes {field.low}-{field.high}"
            + (" (Sunday is 0; 7 is not accepted)" if field.name == "day of week" else "")
        )
    if start > end:
        hint = " (Sunday is 0: MON-SUN is written 1-6,0)" if field.name == "day of week" else ""
        raise _Refused(f"{expr!r}: a range cannot run backwards or wrap around{hint}")


def kubernetes_schedule_problem(schedule: str) -> str | None:
    """Why a Kubernetes CronJob (or croniter) would refuse ``schedule``; None if both take it.

    Kubernetes: robfig/cron v3 ``ParseStandard`` — five fields (minute 0-59, hour 0-23, day of
    month 1-31, month 1-12 or JAN-DEC, day of week 0-6 or SUN-SAT, names in any case), each a
    list of ``*``, ``?``, ``N`` or ``N-M`` with an optional ``/step``, or a descriptor such as
    ``@daily``; no ``TZ=`` (the zone goes in ``timeZone``). croniter must also parse it and
    it must fire at all (``0 0 30 2 *`` never does).
    """
    text = schedule
    if "TZ" in text:
        return "put the zone in time_window.timezone, not TZ= in the schedule"
    if text.startswith("@"):
        if text not in DESCRIPTORS:
            return f"{text!r} is not one of {', '.join(DESCRIPTORS)}"
    else:
        fields = text.split()
        if len(fields) != len(FIELDS):
            return (
                f"a schedule has 5 fields (minute hour day-of-month month day-of-week), "
                f"not {len(fields)}"
            )
        try:
            for value, field in zip(fields, FIELDS, strict=True):
                items = value.split(",")
                if "" in items:
                    raise _Refused(f"{value!r}: an empty item in the {field.name} list")
                for item in items:
                    _check_range(item, field)
        except _Refused as exc:
            return str(exc)
    return _croniter_problem(text)


def _croniter_problem(schedule: str) -> str | None:
    from croniter import CroniterBadDateError, croniter

    if not croniter.is_valid(schedule):
        return f"{schedule!r} is not a schedule croniter can compute"
    try:
        croniter(schedule, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return f"{schedule!r} never fires (no such date)"
    return None


def kubernetes_zone_problem(zone: str) -> str | None:
    """Why Kubernetes would refuse ``zone`` as a CronJob's ``timeZone``; None if it takes it.

    The API server checks each ``/``-separated part against the tz database naming rules,
    refuses ``Local``, and loads the zone from the tz database.
    """
    if not zone:
        return "the zone is empty"
    for part in zone.split("/"):
        if part in (".", "..") or part.startswith("-") or not _ZONE_PART.match(part):
            return f"unknown time zone {zone!r} (use a tz database name such as America/New_York)"
    if zone.lower() in ("local", "localtime", "posixrules"):
        return (
            f"{zone!r} is not a zone but a machine's setting: name the zone (e.g. America/New_York)"
        )
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {zone!r} (use a tz database name such as America/New_York)"
    return None


# -- the same rules as a regular expression, for the Helm chart's values.schema.json --------

_NUMBERS = {
    "minute": "[0-5]?[0-9]",
    "hour": "[01]?[0-9]|2[0-3]",
    "day of month": "0?[1-9]|[12][0-9]|3[01]",
    "month": "0?[1-9]|1[0-2]",
    "day of week": "0?[0-6]",
}


def _ordered_ranges(field: CronField) -> str:
    """``a-b`` with a <= b, numbers or names, spelled out (small fields only)."""

    def one(value: int) -> str:
        names = [n for n, v in field.names.items() if v == value]
        return "|".join([f"0?{value}" if value < 10 else str(value), *names])

    groups = []
    for start in range(field.low, field.high + 1):
        ends = "|".join(one(end) for end in range(start, field.high + 1))
        groups.append(f"(?:{one(start)})-(?:{ends})")
    return "(?i:" + "|".join(groups) + ")"


def schedule_pattern() -> str:
    """A regular expression (RE2 and Python ``re``) for the schedules Kubernetes accepts.

    Bounds, names, steps, lists and descriptors as :func:`kubernetes_schedule_problem`; range
    order is spelled out for month and day of week (``MON-SUN`` fails), not for the numeric
    fields (``30-10`` passes the pattern; ``validate`` and ``helm-values`` still refuse it).
    """
    fields = []
    for field in FIELDS:
        value = _NUMBERS[field.name]
        if field.names:
            value += "|(?i:" + "|".join(field.names) + ")"
            span = _ordered_ranges(field)
        else:
            span = f"(?:{value})-(?:{value})"
        star = r"\*|\?" if field.name in ("day of month", "day of week") else r"\*"
        item = f"(?:{star}|{span}|(?:{value}))(?:/0*[1-9][0-9]*)?"
        fields.append(f"(?:{item})(?:,(?:{item}))*")
    descriptors = "|".join(DESCRIPTORS)
    return rf"^(?:{descriptors}|{' +'.join(fields)})$"
