"""Cursor pagination as one object, shared by every API that pages with an opaque cursor.

Sprout Social (``paging.next_cursor`` → ``page_cursor``) and Gmail (``nextPageToken`` →
``pageToken``) page the same way: send no cursor for the first page, then the one the last
answer gave, until an answer gives none. What differs is where the cursor sits in the answer
and in the request, which stays in the source; what is the same (counting pages, stopping,
and refusing a cursor the API already gave, which would loop forever) lives here::

    pages = CursorPaginator(repeated="the API returned the same cursor again")
    for cursor in pages:                       # None, then each new cursor
        answer = fetch(cursor)
        ...                                    # use the page (pages.page is its number)
        pages.update(answer.get("next"), where=f"POST {path} (page {pages.page})")
"""

from __future__ import annotations

from collections.abc import Iterator

from xoelt.errors import SourceError


class CursorPaginator:
    """Yields the cursor to send for each page; :meth:`update` says whether there is another.

    Iteration stops after a page whose :meth:`update` got no cursor (or was not called). A
    cursor already sent is refused with ``SourceError("<where>: <repeated>")``: a forward-only
    cursor that comes back means the API is looping.
    """

    def __init__(self, *, repeated: str = "the API returned the same cursor again") -> None:
        self.repeated = repeated
        self.page = 0
        self._seen: set[str] = set()
        self._next: str | None = None

    def __iter__(self) -> Iterator[str | None]:
        cursor: str | None = None
        while True:
            self.page += 1
            self._next = None
            yield cursor
            if self._next is None:
                return
            cursor = self._next

    def update(self, following: str | None, *, where: str) -> None:
        """Record the cursor the current page's answer gave (empty or None: the last page)."""
        if not following:
            return
        if following in self._seen:
            raise SourceError(f"{where}: {self.repeated}")
        self._seen.add(following)
        self._next = following
