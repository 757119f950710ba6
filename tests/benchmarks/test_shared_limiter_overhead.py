"""Benchmark: what the cross-process rate limiter adds to each request of a paginated pull.

Times ``slot()`` alone, 20,000 times, for the in-process limiter and for the store-backed one
on the local store, both at a lifted 10 million a minute (as the paginated benchmark sets
it): the store-backed one claims blocks of 100,000 starts, so it touches the store about once
per 0.6 s, and the rest is its bookkeeping. Printed, never asserted (only the store count).

    .venv/bin/pytest tests/benchmarks/test_shared_limiter_overhead.py -m bench -s
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks.conftest import Figures
from xoelt.sources.ratelimit import RateLimits, SharedLimits, limiter_for
from xoelt.storage.local import LocalObjectStore

SLOTS = 20_000


class CountingStore(LocalObjectStore):
    updates = 0

    def update(self, bucket: str, key: str, change: Any) -> Any:
        self.updates += 1
        return super().update(bucket, key, change)


@pytest.mark.bench
def test_slot_overhead(tmp_path: Path, figures: Figures) -> None:
    store = CountingStore(tmp_path)
    shared = SharedLimits(store, "stage")
    limits = RateLimits(per_minute=10_000_000)
    for label, limiter in (
        ("in-process", limiter_for(None, "bench/in-process", limits)),
        ("store-backed (local)", limiter_for(shared, "bench/shared", limits)),
    ):
        started = time.perf_counter()
        for _ in range(SLOTS):
            with limiter.slot():
                pass
        per_slot = (time.perf_counter() - started) / SLOTS * 1e6
        print(f"{label:>22}: {per_slot:5.1f} us per request")
        figures.add("rate-limit slot, 10 M/min budget", label, per_slot, "µs per request")
    print(f"{'store updates':>22}: {store.updates} for {SLOTS} requests")
    assert 1 <= store.updates <= SLOTS // 1000
