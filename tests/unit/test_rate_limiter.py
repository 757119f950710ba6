"""The shared rate limiter, on a fake clock (no real sleeping)."""

from __future__ import annotations

import email.utils
import time

from xoelt.sources.http import RateLimiter, parse_retry_after


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def starts(limiter: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    out = []
    for _ in range(n):
        with limiter.slot():
            out.append(clock.now)
    return out


def test_per_minute_never_exceeded() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=10, clock=clock, sleep=clock.sleep)
    times = starts(limiter, clock, 25)
    for i in range(len(times) - 10):
        assert times[i + 10] - times[i] >= 60.0  # any 11 starts span at least a minute
    assert times[9] == 1000.0 and times[10] == 1060.0


def test_per_second_and_per_minute_together() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_minute=20, per_second=5, clock=clock, sleep=clock.sleep)
    times = starts(limiter, clock, 21)
    for i in range(len(times) - 5):
        assert times[i + 5] - times[i] >= 1.0
    assert times[20] - times[0] >= 60.0


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 31
