"""A directory as an object store: ``<root>/<bucket>/<key>``.

Atomic writes are a temp file in the same directory plus ``os.replace``; a copy is a hard
link (constant time, like S3's server-side CopyObject), falling back to a byte copy across
filesystems.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal

from pydantic import Field

from xoelt.config.types import StrictModel
from xoelt.errors import InputError, LockHeld, StorageError
from xoelt.storage.base import Change, ObjectInfo, ObjectMissing, T

TMP_PREFIX = ".xoelt-tmp-"


class LocalStoreConfig(StrictModel):
    """A directory as the object store (the ``local`` target's)."""

    type: Literal["local"] = "local"
    root: str = Field(min_length=1)

    def open(self) -> LocalObjectStore:
        return LocalObjectStore(Path(self.root))

    def local_path(self, bucket: str, key: str) -> str:
        """Where the object's file is (how DuckDB reads a staged file)."""
        return str(Path(self.root) / bucket / key)


@contextlib.contextmanager
def _os_errors(what: str, where: Path) -> Generator[None]:
    """An OSError of the filesystem as a one-line StorageError naming the path."""
    try:
        yield
    except FileNotFoundError as exc:
        raise ObjectMissing(f"{what} {where}: no such object") from exc
    except OSError as exc:
        raise StorageError(f"{what} {where}: {exc.strerror or exc}") from exc


class LocalObjectStore:
    """Buckets are directories under ``root``; keys are relative paths inside them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, bucket: str, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise InputError(f"invalid object key {key!r}")
        return self.root / bucket / key

    def _atomic(self, target: Path) -> tuple[int, str]:
        target.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=TMP_PREFIX, dir=target.parent)

    def put_file(self, bucket: str, key: str, path: Path) -> None:
        target = self._path(bucket, key)
        with _os_errors("cannot write", target):
            fd, tmp = self._atomic(target)
            os.close(fd)
            try:
                shutil.copyfile(path, tmp)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        target = self._path(bucket, key)
        with _os_errors("cannot write", target):
            fd, tmp = self._atomic(target)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def open(self, bucket: str, key: str) -> BinaryIO:
        path = self._path(bucket, key)
        with _os_errors("cannot read", path):
            return path.open("rb")

    def read_range(self, bucket: str, key: str, start: int, length: int) -> bytes:
        path = self._path(bucket, key)
        with _os_errors("cannot read", path), path.open("rb") as fh:
            fh.seek(start)
            return fh.read(length)

    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None:
        src = self._path(src_bucket, src_key)
        target = self._path(dst_bucket, dst_key)
        if not src.is_file():
            raise ObjectMissing(f"{src} is missing")
        with _os_errors("cannot copy to", target):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent / f"{TMP_PREFIX}{os.getpid()}-{target.name}"
            tmp.unlink(missing_ok=True)
            try:
                try:
                    os.link(src, tmp)
                except OSError:
                    shutil.copyfile(src, tmp)
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    def list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root / bucket
        # walk only the prefix's folder: a part listing must not cost a walk of the bucket
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if any(p in ("", ".", "..") for p in folder.split("/")):
            folder = ""  # an odd prefix matches nothing it would not match from the top
        start = base / folder if folder else base
        if not start.is_dir():
            return
        found = []
        for dirpath, _dirs, files in os.walk(start, onerror=_raise):
            for name in files:
                if name.startswith(TMP_PREFIX):
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(base).as_posix()
                if key.startswith(prefix):
                    found.append(ObjectInfo(key, full.stat().st_size))
        yield from sorted(found, key=lambda o: o.key)

    def exists(self, bucket: str, key: str) -> bool:
        return self._path(bucket, key).is_file()

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        path = self._path(bucket, key)
        with _os_errors("cannot stat", path):
            try:
                st = path.stat()
            except FileNotFoundError:
                return None
        # Writes are rename-into-place (a new inode); an edit in place changes the mtime.
        return ObjectInfo(key, st.st_size, f"{st.st_ino}-{st.st_mtime_ns}")

    def delete(self, bucket: str, key: str) -> None:
        path = self._path(bucket, key)
        with _os_errors("cannot delete", path):
            path.unlink(missing_ok=True)

    def local_path(self, bucket: str, key: str) -> Path | None:
        return self._path(bucket, key)

    def lock(
        self, bucket: str, key: str, owner: str, ttl_seconds: int
    ) -> AbstractContextManager[None]:
        """An ``flock`` on ``<root>/.locks/<bucket>/<key>``: the OS releases it if we die."""
        path = self.root / ".locks" / bucket / key
        with _os_errors("cannot take the lock", path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise LockHeld(
                f"another run holds the lock {path} ({holder}); try again when it ends"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{owner} since {datetime.now(UTC).isoformat(timespec='seconds')}\n")
        fh.flush()

        @contextlib.contextmanager
        def held() -> Generator[None]:
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()

        return held()

    def update(self, bucket: str, key: str, change: Change[T]) -> T:
        """``change`` under an ``flock`` of ``<root>/.locks/<bucket>/<key>.update`` (waited for:
        holders keep it for one small read and write), the write atomic as any put."""
        path = self._path(bucket, key)
        guard = self.root / ".locks" / bucket / f"{key}.update"
        with _os_errors("cannot update", path):
            guard.parent.mkdir(parents=True, exist_ok=True)
            with guard.open("a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, or we die
                try:
                    current: bytes | None = path.read_bytes()
                except FileNotFoundError:
                    current = None
                new, result = change(current)
                if new is not None:
                    self.put_bytes(bucket, key, new)
                return result

    def uri(self, bucket: str, key: str) -> str:
        return f"{self.root / bucket}/{key}"


def _raise(exc: OSError) -> None:
    raise StorageError(f"cannot list {exc.filename}: {exc.strerror or exc}") from exc
