"""Extraction progress: rows, bytes and pages as a source produces them.

Sources never report progress themselves. The two places every source goes through do:
:class:`~xoelt.sources.base.CsvSink` (rows written, and the bytes of CSV they made) and
:class:`~xoelt.sources.http.HttpClient` (one page per successful API answer). Both call
the extraction's :meth:`ExtractContext.progress <xoelt.sources.base.ExtractContext.progress>`:
the sink holds it directly; the HTTP client, which sources build for themselves, reaches it
through :func:`reporting` (a context variable the extract stage sets for the duration of
one source's extraction; :class:`~xoelt.sources.prefetch.Prefetch` carries it into its
thread).

What listens is the front end's business: the CLI draws a rich bar on a TTY
(:func:`xoelt.console.extract_progress`); nothing listens in JSON mode, in backfill or in
tests, and then reporting costs one lookup per page.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ExtractCounts:
    """One source's extraction so far; ``done`` once the extractor has returned (or failed)."""

    source: str
    rows: int = 0
    bytes: int = 0
    pages: int = 0
    done: bool = False


ProgressListener = Callable[[ExtractCounts], None]
"""Called with the running totals after each report (from any thread)."""

Reporter = Callable[..., None]
"""``report(rows=…, bytes=…, pages=…)``: increments, all keyword, all optional."""


class ExtractProgress:
    """Running totals of one source's extraction, handed to ``listener`` on every change.

    Thread-safe: the HTTP client reports from a prefetch thread while the sink reports from
    the writer. Increments must not be negative (a retried page is reported once, after it
    succeeded).
    """

    def __init__(self, source: str, listener: ProgressListener | None = None) -> None:
        self.listener = listener
        self._counts = ExtractCounts(source)
        self._lock = threading.Lock()

    @property
    def counts(self) -> ExtractCounts:
        return self._counts

    def add(self, *, rows: int = 0, bytes: int = 0, pages: int = 0) -> None:
        """Add to the totals and tell the listener."""
        if min(rows, bytes, pages) < 0:
            raise ValueError("progress increments cannot be negative")
        with self._lock:
            c = self._counts
            self._counts = replace(
                c, rows=c.rows + rows, bytes=c.bytes + bytes, pages=c.pages + pages
            )
            counts = self._counts
        if self.listener is not None:
            self.listener(counts)

    def finish(self) -> None:
        """Mark the extraction over (the bar completes); idempotent."""
        with self._lock:
            if self._counts.done:
                return
            self._counts = replace(self._counts, done=True)
            counts = self._counts
        if self.listener is not None:
            self.listener(counts)


_CURRENT: ContextVar[Reporter | None] = ContextVar("xoelt_extract_progress", default=None)


@contextmanager
def reporting(reporter: Reporter) -> Generator[None]:
    """Within this block, :func:`report` goes to ``reporter`` (this context and its copies)."""
    token = _CURRENT.set(reporter)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def report(*, rows: int = 0, bytes: int = 0, pages: int = 0) -> None:
    """Report to the extraction in progress, if any (a no-op outside one)."""
    reporter = _CURRENT.get()
    if reporter is not None:
        reporter(rows=rows, bytes=bytes, pages=pages)
