"""The directory object store: atomic writes, hard-link copies, ranged reads, listing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from xoelt.errors import InputError, LockHeld
from xoelt.storage.local import LocalObjectStore


def test_put_copy_peek_list(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    src = tmp_path / "src.csv"
    src.write_bytes(b"a,b\n1,2\n")
    store.put_file("ingest", "x/2026-11-02/data.csv", src)
    store.put_bytes("ingest", "x/2026-11-02/_manifest.json", b"{}")
    store.copy("ingest", "x/2026-11-02/data.csv", "stage", "y/data.csv")
    a = tmp_path / "ingest/x/2026-11-02/data.csv"
    b = tmp_path / "stage/y/data.csv"
    assert os.stat(a).st_ino == os.stat(b).st_ino  # a hard link: no bytes copied
    assert store.read_range("stage", "y/data.csv", 0, 3) == b"a,b"
    assert store.read_range("stage", "y/data.csv", 6, 100) == b"2\n"
    assert [o.key for o in store.list("ingest", "x/")] == [
        "x/2026-11-02/_manifest.json",
        "x/2026-11-02/data.csv",
    ]
    assert list(store.list("missing-bucket", "")) == []


def test_rewrite_does_not_change_the_copy(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("b", "k", b"old")
    store.copy("b", "k", "c", "k")
    store.put_bytes("b", "k", b"new")
    with store.open("c", "k") as fh:
        assert fh.read() == b"old"


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", "a/./b", ""])
def test_bad_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(InputError):
        LocalObjectStore(tmp_path).put_bytes("b", key, b"x")


def test_temp_files_are_invisible(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    (tmp_path / "b" / "p").mkdir(parents=True)
    (tmp_path / "b" / "p" / ".xoelt-tmp-123").write_bytes(b"partial")
    assert list(store.list("b", "")) == []


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    with store.lock("stage", "locks/p/s/2026-11-02.lock", "run-1", 60):
        with pytest.raises(LockHeld, match="run-1"):
            store.lock("stage", "locks/p/s/2026-11-02.lock", "run-2", 60)
        with store.lock("stage", "locks/p/s/2026-11-03.lock", "run-2", 60):
            pass  # another window is free
    with store.lock("stage", "locks/p/s/2026-11-02.lock", "run-3", 60):
        pass
    assert list(store.list("stage", "")) == []  # locks do not show up as objects


def test_list_reads_the_prefix_folder_with_a_partial_name(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    for key in ("w/d/s.part-00000.csv", "w/d/s.part-00001.csv", "w/d/t.part-00000.csv", "w/e/x"):
        store.put_bytes("b", key, b"x")
    keys = [o.key for o in store.list("b", "w/d/s.part-")]
    assert keys == ["w/d/s.part-00000.csv", "w/d/s.part-00001.csv"]
    assert [o.key for o in store.list("b", "w/")] == [
        "w/d/s.part-00000.csv",
        "w/d/s.part-00001.csv",
        "w/d/t.part-00000.csv",
        "w/e/x",
    ]
    assert list(store.list("b", "w/nothing/here")) == []
    assert list(store.list("b", "../b/w/")) == []  # never outside the bucket
