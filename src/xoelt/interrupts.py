"""Stopping on a signal: SIGTERM (what Kubernetes sends) and SIGINT (Ctrl-C).

The first signal sets a process-wide flag and raises :class:`Interrupted` in the main
thread. What is running then unwinds like any failure, which the stages already handle:
the warehouse statement in flight is interrupted (DuckDB checks for signals; the Snowflake
connector's socket wait is) and its transaction rolled back, context managers release the
run's lock, and :func:`xoelt.core.execute` writes an ``interrupted`` ledger row for the
stage. Threads (a backfill's workers) see the flag at their next stage boundary through
:func:`check`. A second signal is ignored, so that cleanup is not itself cut short; the
pod's ``terminationGracePeriodSeconds`` bounds the whole. The CLI exits 128 + the signal
number: 143 for SIGTERM, 130 for SIGINT.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any


class Interrupted(BaseException):
    """A signal asked the process to stop; ``where`` names what it stopped (set on the way
    out by the code that knows: stage, source and window)."""

    def __init__(self, signum: int, where: str = "") -> None:
        self.signum = signum
        self.where = where
        super().__init__(self.message)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def message(self) -> str:
        return f"interrupted by {self.name}" + (f" during {self.where}" if self.where else "")

    def __str__(self) -> str:
        return self.message


_requested = threading.Event()
_signum = 0


def requested() -> int | None:
    """The signal that asked to stop, if one did."""
    return _signum if _requested.is_set() else None


def check() -> None:
    """Raise :class:`Interrupted` if a signal asked to stop (for threads, at safe points)."""
    if _requested.is_set():
        raise Interrupted(_signum)


def _handler(signum: int, _frame: Any) -> None:
    global _signum
    if _requested.is_set():
        return  # the first signal is being handled: let the cleanup finish
    _signum = signum
    _requested.set()
    raise Interrupted(signum)


@contextmanager
def handling() -> Generator[None]:
    """Turn SIGTERM/SIGINT into :class:`Interrupted` while inside (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def reset() -> None:
    """Forget a handled signal (tests that interrupt in-process)."""
    global _signum
    _requested.clear()
    _signum = 0
