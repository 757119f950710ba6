"""Table locks wait (bounded) for the window holding a table; run locks still fail at once.

On the directory store's real ``flock`` locks, across threads as a backfill's workers are.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from xoelt.core import HOLDS_BRONZE
from xoelt.errors import LockHeld
from xoelt.runtime import wait_for_lock
from xoelt.storage.local import LocalObjectStore

KEY = "locks/tables/DB/BRONZE/T.lock"


def test_a_table_lock_waits_for_its_holder_then_takes_it(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    held = store.lock("stage", KEY, "window A", 60)
    held.__enter__()
    threading.Timer(0.4, held.__exit__, (None, None, None)).start()
    t0 = time.monotonic()
    with wait_for_lock(lambda: store.lock("stage", KEY, "window B", 60), what="bronze T", wait=10):
        waited = time.monotonic() - t0
        with pytest.raises(LockHeld):  # now B holds it
            store.lock("stage", KEY, "window C", 60)
    assert 0.35 < waited < 5
    with store.lock("stage", KEY, "window C", 60):  # and released it
        pass


def test_waiting_backs_off_and_gives_up_at_the_bound_naming_table_and_holder(
    tmp_path: Path,
) -> None:
    store = LocalObjectStore(tmp_path)
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with store.lock("stage", KEY, "run-a window=2026-11-02", 60):
        waiting = wait_for_lock(
            lambda: store.lock("stage", KEY, "run-b", 60),
            what="bronze DB.BRONZE.T",
            wait=30,
            sleep=sleep,
            clock=lambda: now[0],
        )
        with pytest.raises(LockHeld) as err, waiting:
            pytest.fail("the lock was taken while held")
    message = err.value.message
    assert message.startswith("gave up waiting 30s for bronze DB.BRONZE.T: another run holds")
    assert "run-a window=2026-11-02" in message
    assert err.value.exit_code == 1
    assert sum(slept) == pytest.approx(30)
    assert slept[0] <= 0.05 and max(slept) <= 5  # exponential backoff, capped
    assert slept[3] > slept[0] * 4  # the delay doubles (with jitter of at most half)
    assert len(slept) < 30  # polled with backoff, not in a tight loop


def test_a_window_holds_bronze_from_load_through_silver_only() -> None:
    assert {"load", "transform"} == HOLDS_BRONZE
