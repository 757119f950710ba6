"""The store-backed rate limiter in one process, over the real local store (file locks).

The cross-process proofs (several processes, a fake API counting what arrives, S3 on moto,
SIGKILL) are in ``tests/integration/sources/test_shared_rate_limits.py``; here: the budget's
blocks, what waiting says, the bound on it, and the YAML overrides.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from xoelt.errors import SourceError
from xoelt.sources._gladly import GladlyConfig
from xoelt.sources.gladly import Report
from xoelt.sources.http import NoSlotInBudget, RateLimiter
from xoelt.sources.ratelimit import RateLimits, SharedLimits, StoreLimiter, limiter_for
from xoelt.sources.sprout_social import SproutSocialConfig
from xoelt.storage.local import LocalObjectStore


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    warning = info


class CountingStore(LocalObjectStore):
    """The local store, counting its read-modify-writes (what a request costs)."""

    updates = 0

    def update(self, bucket: str, key: str, change: Any) -> Any:
        self.updates += 1
        return super().update(bucket, key, change)


def _limiter(shared: SharedLimits, limits: RateLimits, log: Any = None) -> StoreLimiter:
    """A limiter with its own in-process part: as if it were another process."""
    local = RateLimiter(per_minute=limits.per_minute, concurrent=limits.concurrent,
                        minute=shared.minute)  # fmt: skip
    return StoreLimiter(shared, "api/acct", limits, local, log)


def _state(shared: SharedLimits) -> dict[str, Any]:
    assert isinstance(shared.store, LocalObjectStore)
    root = shared.store.root
    return json.loads((root / shared.bucket / shared.key("api/acct")).read_text())


def test_local_update_is_atomic_across_threads(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)

    def bump(current: bytes | None) -> tuple[bytes, None]:
        return str(int(current or b"0") + 1).encode(), None

    def worker() -> None:
        for _ in range(50):
            store.update("b", "n.txt", bump)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.open("b", "n.txt").read() == b"200"
    assert store.update("b", "n.txt", lambda cur: (None, cur)) == b"200"  # None: no write


def test_concurrency_and_budget_hold_between_limiters(tmp_path: Path) -> None:
    """Three "processes" (limiters with their own in-process part), 2 at once, 5 a minute."""
    shared = SharedLimits(LocalObjectStore(tmp_path), "stage", minute=0.5)
    limits = RateLimits(concurrent=2, per_minute=5)
    lock, active, peak, starts = threading.Lock(), [0], [0], []

    def worker(limiter: StoreLimiter) -> None:
        for _ in range(4):
            with limiter.slot():
                with lock:
                    active[0] += 1
                    peak[0] = max(peak[0], active[0])
                    starts.append(time.monotonic())
                time.sleep(0.02)
                with lock:
                    active[0] -= 1

    threads = [threading.Thread(target=worker, args=(_limiter(shared, limits),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts.sort()
    assert len(starts) == 12 and peak[0] <= 2
    assert all(starts[i + 5] - starts[i] >= 0.5 for i in range(len(starts) - 5))
    assert _state(shared)["leases"] == {}


def test_a_high_budget_costs_one_store_update_per_block(tmp_path: Path) -> None:
    """10 million a minute: blocks of 100,000, so 1,000 requests touch the store once."""
    store = CountingStore(tmp_path)
    shared = SharedLimits(store, "stage")
    limiter = _limiter(shared, RateLimits(per_minute=10_000_000))
    for _ in range(1000):
        with limiter.slot():
            pass
    assert store.updates == 1
    (start,) = _state(shared)["starts"]
    assert start[1] == 100_000  # claimed; the unused rest is handed back with the next claim


def test_unused_starts_are_handed_back_with_the_next_claim(tmp_path: Path) -> None:
    now = [1000.0]
    shared = SharedLimits(LocalObjectStore(tmp_path), "stage", clock=lambda: now[0])
    limiter = _limiter(shared, RateLimits(per_minute=1000))  # blocks of 10, spent in 0.6 s
    for _ in range(3):
        with limiter.slot():
            pass
    now[0] += 1.0  # the block is stale: the next start claims anew
    with limiter.slot():
        pass
    assert [s[1] for s in _state(shared)["starts"]] == [3, 10]


def test_waiting_is_logged_and_bounded(tmp_path: Path) -> None:
    shared = SharedLimits(LocalObjectStore(tmp_path), "stage", minute=60.0)
    limits = RateLimits(per_minute=1, max_wait_seconds=0.3)
    log = Log()
    first, second = _limiter(shared, limits), _limiter(shared, limits, log)
    with first.slot():
        pass
    started = time.monotonic()
    with pytest.raises(SourceError) as caught, second.slot():
        pass
    assert time.monotonic() - started < 0.3  # the wait would pass the bound: fail at once
    assert "rate limit api/acct" in caught.value.message
    assert "1 of 1 starts in the last minute" in caught.value.message
    assert "ratelimits/api/acct.json" in caught.value.message
    # a retry's budget ends sooner than the minute
    with pytest.raises(NoSlotInBudget), second.slot(deadline=time.monotonic() + 1.0):
        pass


def test_a_full_set_of_leases_is_waited_for_and_says_who_holds_it(tmp_path: Path) -> None:
    shared = SharedLimits(LocalObjectStore(tmp_path), "stage", minute=60.0)
    limits = RateLimits(concurrent=1, max_wait_seconds=5)
    log = Log()
    holder, waiter = _limiter(shared, limits), _limiter(shared, limits, log)
    got = threading.Event()

    def wait() -> None:
        with waiter.slot():
            got.set()

    with holder.slot():
        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.3)
        assert not got.is_set()
    thread.join(5)
    assert got.is_set()
    waiting = [f for e, f in log.events if e == "waiting for the shared rate limit"]
    assert waiting and waiting[0]["holders"] == [holder.owner]


def test_without_shared_limits_or_shareable_limits_the_limiter_is_per_process(
    tmp_path: Path,
) -> None:
    shared = SharedLimits(LocalObjectStore(tmp_path), "stage")
    assert isinstance(limiter_for(None, "x/y", RateLimits(per_minute=5)), RateLimiter)
    assert isinstance(limiter_for(shared, "x/y", RateLimits(per_second=5)), RateLimiter)
    assert isinstance(limiter_for(shared, "x/y", RateLimits(per_minute=5)), StoreLimiter)
    assert shared.key("gladly-reports/org.gladly.com:443") == (
        "ratelimits/gladly-reports/org.gladly.com_443.json"
    )


def test_limits_are_adapter_data_overridden_by_yaml() -> None:
    base = {"metric_set": "ContactTimestampsReport"}
    config = GladlyConfig.model_validate(base)
    assert Report(config).limits() == RateLimits(concurrent=2, per_minute=10)
    config = GladlyConfig.model_validate({**base, "rate_limit": {"concurrent": 1}})
    assert Report(config).limits() == RateLimits(concurrent=1, per_minute=10)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        GladlyConfig.model_validate({**base, "rate_limit": {"per_minute": 0}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        GladlyConfig.model_validate({**base, "rate_limit": {"per_hour": 5}})

    sprout = {"fields": ["guid"]}
    assert SproutSocialConfig.model_validate(sprout).limits == RateLimits(per_minute=60)
    lifted = SproutSocialConfig.model_validate({**sprout, "rate_limit_per_minute": 90})
    assert lifted.limits.per_minute == 90
    with pytest.raises(ValidationError, match="not both"):
        SproutSocialConfig.model_validate(
            {**sprout, "rate_limit_per_minute": 90, "rate_limit": {"per_minute": 30}}
        )
