"""The watchdog's pure parts: deadlines (as the chart's schema takes them) and completion."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xoelt.errors import InputError
from xoelt.watchdog import completed_at, parse_deadline

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "helm" / "xoelt" / "values.schema.json").read_text()
)
PATTERN = re.compile(SCHEMA["properties"]["watchdog"]["properties"]["deadline"]["pattern"])
T0 = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("2h", timedelta(hours=2)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_deadlines_xoelt_and_the_chart_both_take(text: str, delta: timedelta) -> None:
    assert parse_deadline(text) == delta
    assert PATTERN.fullmatch(text)


@pytest.mark.parametrize("text", ["", "2", "2 hours", "30m2h", "0m", "h"])
def test_deadlines_refused(text: str) -> None:
    with pytest.raises(InputError, match="--deadline"):
        parse_deadline(text)
    if text != "0m":  # zero is the one the pattern cannot see
        assert not PATTERN.fullmatch(text)


def test_a_window_is_complete_when_one_run_succeeded_at_every_required_stage() -> None:
    need = {("a", "load"), ("gold", "gold")}
    resumed = [
        ("r1", "a", "load", "failed", T0),
        ("r2", "a", "load", "success", T0 + timedelta(minutes=5)),  # a stage alone: not all
        ("r3", "a", "load", "success", T0 + timedelta(minutes=9)),
        ("r3", "gold", "gold", "success", T0 + timedelta(minutes=10)),
        ("r4", "a", "load", "success", T0 + timedelta(minutes=20)),
        ("r4", "gold", "gold", "success", T0 + timedelta(minutes=21)),
    ]
    assert completed_at(resumed, need) == T0 + timedelta(minutes=10)  # the first that did
    assert completed_at(resumed[:3], need) is None
    assert completed_at([], need) is None
