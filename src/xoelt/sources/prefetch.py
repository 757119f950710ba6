"""Fetch the next page while this one is written: a page iterator run in a helper thread."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

PageT = TypeVar("PageT")


class Prefetch(Generic[PageT]):
    """Runs a page iterator in a helper thread, at most ``depth`` pages ahead of the writer.

    The request for page N+1 is in flight (the server working, the socket waiting) while
    page N is written, which is most of the time a day's extraction takes; memory stays
    bounded by ``depth`` pages. An error in the thread is re-raised in the reader; when the
    reader stops early, :meth:`stop` lets the thread end without waiting for it.
    """

    _END = object()

    def __init__(self, pages: Iterator[PageT], depth: int = 2, *, name: str = "prefetch") -> None:
        self._pages = pages
        self._queue: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(depth)
        self._stopped = threading.Event()
        # The thread runs in a copy of this context: progress reports (xoelt.progress) reach
        # the extraction that started it.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name=name, daemon=True
        )
        self._thread.start()

    def _put(self, item: Any, error: BaseException | None = None) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put((item, error), timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            pages = iter(self._pages)
            # Checked before each next page too: once the reader stops, no request starts.
            while not self._stopped.is_set():
                page = next(pages, self._END)
                if self._stopped.is_set():
                    return
                self._put(page)
                if page is self._END:
                    return
        except BaseException as exc:  # handed to the reader, which raises it
            self._put(None, exc)

    def __iter__(self) -> Iterator[PageT]:
        while True:
            page, error = self._queue.get()
            if error is not None:
                raise error
            if page is self._END:
                return
            yield page

    def stop(self, wait: float = 0.0) -> None:
        """Tell the thread to finish; wait up to ``wait`` seconds for it."""
        self._stopped.set()
        if wait:
            self._thread.join(wait)
