"""Backfill never loses a failure, whatever its type, with any number of workers."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from xoelt.backfill import WindowOutcome, run_windows


def outcomes(n: int) -> list[WindowOutcome]:
    plan: Any = None  # run_windows hands outcomes to run_one and never reads their plans
    return [WindowOutcome(plan) for _ in range(n)]


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_an_exception_escaping_a_window_is_raised_not_dropped(workers: int) -> None:
    """Reproduction: with --workers N the futures' exceptions were never retrieved."""
    items = outcomes(5)
    done: list[int] = []
    lock = threading.Lock()

    position = {id(o): i for i, o in enumerate(items)}

    def run_one(outcome: WindowOutcome) -> None:
        index = position[id(outcome)]
        if index == 2:
            raise KeyError("not a RunError")
        with lock:
            done.append(index)
        outcome.status = "done"

    with pytest.raises(KeyError, match="not a RunError"):
        run_windows(items, run_one, workers)
    if workers > 1:  # the other windows still ran to their end
        assert sorted(done) == [0, 1, 3, 4]


def test_every_window_runs_once() -> None:
    items = outcomes(7)
    seen: list[int] = []

    def run_one(outcome: WindowOutcome) -> None:
        seen.append(id(outcome))

    run_windows(items, run_one, 3)
    assert sorted(seen) == sorted(id(o) for o in items)
