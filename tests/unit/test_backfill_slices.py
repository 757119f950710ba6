"""Backfill slices: ``--slice I/N`` parsing, and round-robin assignment of the windows."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from xoelt.backfill import Slice, ordered_sources, plan_windows, slice_windows
from xoelt.errors import InputError
from xoelt.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SETTINGS = Settings(pipelines_root=REPO / "pipelines", sql_root=REPO / "sql")
FIRST, LAST = date(2026, 1, 1), date(2026, 3, 31)  # 90 run dates, the March DST change among them


@pytest.fixture(scope="module")
def windows() -> list:
    return plan_windows("warbyparker/gladly_daily", FIRST, LAST, None, SETTINGS)


@pytest.mark.parametrize(
    ("text", "expected"), [("0/1", (0, 1)), ("3/4", (3, 4)), ("0/90", (0, 90))]
)
def test_parse(text: str, expected: tuple[int, int]) -> None:
    part = Slice.parse(text)
    assert (part.index, part.count) == expected


@pytest.mark.parametrize("text", ["", "1", "2/2", "-1/3", "a/b", "0/0", "1/2/3", "/4", "0/-1"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(
        InputError, match=r"--slice .* is not INDEX/COUNT with 0 <= INDEX < COUNT"
    ) as err:
        Slice.parse(text)
    assert err.value.exit_code == 2


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 13, 89, 90, 91, 200])
def test_slices_cover_every_window_exactly_once(windows: list, count: int) -> None:
    assert len(windows) == 90
    starts = [p.window.start for p in windows]
    parts = [
        [p.window.start for p in slice_windows(windows, Slice(i, count))] for i in range(count)
    ]
    flat = [s for part in parts for s in part]
    assert sorted(flat) == starts and len(set(flat)) == len(flat)  # all, once each
    assert all(part == sorted(part) for part in parts)  # each slice in window order
    sizes = [len(part) for part in parts]
    assert max(sizes) - min(sizes) <= 1  # balanced
    # round-robin: window k in slice k % count, old and recent windows in every slice
    assert all(parts[k % count][k // count] == start for k, start in enumerate(starts))


def test_assignment_is_deterministic(windows: list) -> None:
    again = plan_windows("warbyparker/gladly_daily", FIRST, LAST, None, SETTINGS)
    for i in range(4):
        assert [p.window for p in slice_windows(windows, Slice(i, 4))] == [
            p.window for p in slice_windows(again, Slice(i, 4))
        ]


def test_historical_pipeline_is_one_slice_only() -> None:
    plans = plan_windows("demo/gladly_demo", date(2026, 11, 3), date(2026, 11, 6), None, SETTINGS)
    assert ordered_sources(plans) == ["agents"]
    assert slice_windows(plans, Slice(0, 1)) == plans
    with pytest.raises(InputError, match=r"historical source.*agents.*one slice"):
        slice_windows(plans, Slice(1, 2))
