"""The object-store interface every stage talks to.

Stores raise :class:`~xoelt.errors.StorageError` (``ObjectMissing`` for an absent object)
for any failure of their backend, mapped once inside the store with the cause kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

from xoelt.errors import StorageError

PEEK_BYTES = 8 * 1024
T = TypeVar("T")

Change = Callable[[bytes | None], tuple[bytes | None, T]]
"""What :meth:`ObjectStore.update` applies: the current content (None: no object) in, the
new content (None: leave it as it is) and a result out."""


@dataclass(frozen=True)
class ObjectInfo:
    """An object's key and size, and (from :meth:`ObjectStore.stat`) its ``version``: what
    changes whenever its content is replaced (S3's ETag; a local file's inode and mtime)."""

    key: str
    size: int
    version: str = ""


class ObjectMissing(StorageError):
    """The object asked for does not exist."""


class ObjectStore(Protocol):
    """Buckets of keys. Writes are atomic: an object is visible only once complete."""

    def put_file(self, bucket: str, key: str, path: Path) -> None:
        """Upload a local file as ``bucket/key`` atomically."""
        ...

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        """Write a small object atomically."""
        ...

    def open(self, bucket: str, key: str) -> BinaryIO:
        """A streaming reader of the whole object."""
        ...

    def read_range(self, bucket: str, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``start`` (a ranged GET); fewer at the end."""
        ...

    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None:
        """Server-side copy; never streams the body through this process (ObjectMissing if
        the source does not exist)."""
        ...

    def list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, by key order."""
        ...

    def exists(self, bucket: str, key: str) -> bool: ...

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        """The object's size and version, or None if it does not exist."""
        ...

    def delete(self, bucket: str, key: str) -> None: ...

    def local_path(self, bucket: str, key: str) -> Path | None:
        """A filesystem path for the object when the store is local (else None)."""
        ...

    def uri(self, bucket: str, key: str) -> str:
        """Where the object is, for messages and COPY statements."""
        ...

    def lock(
        self, bucket: str, key: str, owner: str, ttl_seconds: int
    ) -> AbstractContextManager[None]:
        """Hold an exclusive lock named ``bucket/key`` while the context runs.

        Raises :class:`~xoelt.errors.LockHeld` if another run has it.

        Called before entering; a lock older than ``ttl_seconds`` was abandoned and is taken over.
        """
        ...

    def update(self, bucket: str, key: str, change: Change[T]) -> T:
        """Read-modify-write a small object atomically against every other writer.

        ``change`` gets the current bytes (None if absent) and returns the new bytes (None:
        write nothing) and a result, which ``update`` returns. It may run more than once (a
        lost race runs it again on the newer content), so it must be free of side effects.
        Content must differ from every earlier version (carry a counter): S3 versions are
        content hashes.
        """
        ...
