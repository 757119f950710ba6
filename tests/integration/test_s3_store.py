"""The S3 object store against a moto server on 127.0.0.1 (real boto3, real HTTP)."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from xoelt.errors import LockHeld
from xoelt.sources.base import CsvSink, ExtractContext
from xoelt.sources.s3_upload import S3UploadConfig, S3UploadSource
from xoelt.storage.base import ObjectMissing
from xoelt.storage.s3 import S3ObjectStore
from xoelt.timewindow import TimeWindow


@pytest.fixture
def store(s3_client: Any) -> S3ObjectStore:
    return S3ObjectStore(client=s3_client)


def bucket(s3_client: Any) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


def test_put_peek_copy_list_delete(store: S3ObjectStore, s3_client: Any, tmp_path: Path) -> None:
    src, dst = bucket(s3_client), bucket(s3_client)
    f = tmp_path / "a.csv"
    f.write_bytes(b"Contact ID,Note\n1,x\n")
    store.put_file(src, "ingest/a.csv", f)
    assert store.read_range(src, "ingest/a.csv", 0, 8192) == b"Contact ID,Note\n1,x\n"
    assert store.read_range(src, "ingest/a.csv", 0, 10) == b"Contact ID"
    store.copy(src, "ingest/a.csv", dst, "stage/a.csv")
    with store.open(dst, "stage/a.csv") as fh:
        assert fh.read() == f.read_bytes()
    assert store.exists(dst, "stage/a.csv") and not store.exists(dst, "stage/b.csv")
    store.delete(dst, "stage/a.csv")
    assert not store.exists(dst, "stage/a.csv")
    with pytest.raises(ObjectMissing):
        store.copy(src, "ingest/missing.csv", dst, "x")


def test_empty_object_peek(store: S3ObjectStore, s3_client: Any) -> None:
    b = bucket(s3_client)
    store.put_bytes(b, "empty", b"")
    assert store.read_range(b, "empty", 0, 8192) == b""


def test_listing_follows_continuation_tokens(store: S3ObjectStore, s3_client: Any) -> None:
    b = bucket(s3_client)
    for i in range(250):  # moto pages at 100 keys
        store.put_bytes(b, f"p/{i:04d}.csv", b"x")
    store.put_bytes(b, "other/x.csv", b"x")
    keys = [o.key for o in store.list(b, "p/")]
    assert len(keys) == 250 and keys == sorted(keys)


def test_multipart_copy_with_upload_part_copy(s3_client: Any) -> None:
    store = S3ObjectStore(
        client=s3_client, copy_part_size=5 * 1024**2, multipart_copy_threshold=5 * 1024**2
    )
    b = bucket(s3_client)
    body = bytes(range(256)) * (12 * 1024**2 // 256 + 7)  # ~12 MiB: three parts
    store.put_bytes(b, "big", body)
    store.copy(b, "big", b, "big-copy")
    with store.open(b, "big-copy") as fh:
        assert fh.read() == body
    assert s3_client.list_multipart_uploads(Bucket=b).get("Uploads", []) == []


def test_s3_upload_source_reads_csv_and_gzip_from_s3(
    store: S3ObjectStore, s3_client: Any, tmp_path: Path
) -> None:
    """``s3_upload`` works on any object store: here, real S3 protocol."""
    b = bucket(s3_client)
    store.put_bytes(b, "drop/2026-11-02/a.csv", b'Id,Name\r\n1,Ada\r\n2,"Brooks, B"\r\n')
    store.put_bytes(b, "drop/2026-11-02/b.csv.gz", gzip.compress(b'Name,Id,Extra\n"Chen\nC",3,e\n'))
    store.put_bytes(b, "drop/2026-11-02/readme.txt", b"ignored")
    store.put_bytes(b, "drop/2026-11-03/c.csv", b"Id,Name\n9,Not today\n")
    zone = ZoneInfo("America/New_York")
    window = TimeWindow(
        "daily",
        datetime(2026, 11, 2, tzinfo=zone),
        datetime(2026, 11, 3, tzinfo=zone),
        "America/New_York",
    )
    import structlog

    ctx = ExtractContext("s", window, "run", store, {}, structlog.get_logger(), tmp_path)
    sink = CsvSink(tmp_path / "out.csv")
    S3UploadSource(S3UploadConfig(bucket=b, prefix="drop/{date}/"), ctx).extract(sink)
    sink.close()
    assert sink.fieldnames == ["Id", "Name", "Extra"]
    assert (
        tmp_path / "out.csv"
    ).read_bytes().decode() == 'Id,Name,Extra\r\n1,Ada,\r\n2,"Brooks, B",\r\n3,"Chen\nC",e\r\n'
    assert sink.rows == 3
    assert [f["key"] for f in sink.details["files"]] == [
        "drop/2026-11-02/a.csv",
        "drop/2026-11-02/b.csv.gz",
    ]
    assert [f["rows"] for f in sink.details["files"]] == [2, 1]


def test_s3_upload_byte_copy_streams_from_s3(
    store: S3ObjectStore, s3_client: Any, tmp_path: Path
) -> None:
    """The byte copy reads an S3 body (and a gzip one) in chunks: same rows, header once."""
    from xoelt.sources import csvcopy

    b = bucket(s3_client)
    rows = b"".join(b"%d,name %d\n" % (i, i) for i in range(3000))
    store.put_bytes(b, "drop/2026-11-02/a.csv", b"Id,Name\n" + rows)
    store.put_bytes(b, "drop/2026-11-02/b.csv.gz", gzip.compress(b"Id,Name\r\n9,z\r\n"))
    utc = ZoneInfo("UTC")
    window = TimeWindow(
        "daily", datetime(2026, 11, 2, tzinfo=utc), datetime(2026, 11, 3, tzinfo=utc), "UTC"
    )
    import structlog

    ctx = ExtractContext("s", window, "run", store, {}, structlog.get_logger(), tmp_path)
    sink = CsvSink(tmp_path / "out.csv")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(csvcopy, "CHUNK_BYTES", 1000)
        S3UploadSource(S3UploadConfig(bucket=b, prefix="drop/{date}/"), ctx).extract(sink)
    sink.close()
    expected = b"Id,Name\r\n" + rows.replace(b"\n", b"\r\n") + b"9,z\r\n"
    assert (tmp_path / "out.csv").read_bytes() == expected
    assert [(f["rows"], f["copy"]) for f in sink.details["files"]] == [
        (3000, "bytes"),
        (1, "bytes"),
    ]


def test_lock_with_conditional_put(store: S3ObjectStore, s3_client: Any) -> None:
    b = bucket(s3_client)
    key = "locks/demo/p/src/2026-11-02.lock"
    with store.lock(b, key, "run-1 host=a", 3600), pytest.raises(LockHeld, match="run-1 host=a"):
        store.lock(b, key, "run-2 host=b", 3600)
    assert not store.exists(b, key)  # released
    with store.lock(b, key, "run-3", 3600):
        pass


def test_abandoned_lock_is_taken_over(store: S3ObjectStore, s3_client: Any) -> None:
    b = bucket(s3_client)
    key = "locks/x.lock"
    stale = {
        "owner": "dead-pod",
        "since": "2026-01-01T00:00:00+00:00",
        "expires_at": "2026-01-01T06:00:00+00:00",
    }
    store.put_bytes(b, key, json.dumps(stale).encode())
    with store.lock(b, key, "run-new", 3600), store.open(b, key) as fh:
        assert json.loads(fh.read())["owner"] == "run-new"


def test_stat_gives_a_version_that_changes_when_the_content_does(
    store: S3ObjectStore, s3_client: Any
) -> None:
    b = bucket(s3_client)
    assert store.stat(b, "v/a.csv") is None
    store.put_bytes(b, "v/a.csv", b"id,x\n1,a\n")
    first = store.stat(b, "v/a.csv")
    assert first is not None and first.size == 9 and first.version
    store.copy(b, "v/a.csv", b, "v/b.csv")
    copied = store.stat(b, "v/b.csv")
    assert copied is not None and copied.size == 9
    store.put_bytes(b, "v/b.csv", b"x,id\na,1\n")  # same size, other content
    changed = store.stat(b, "v/b.csv")
    assert changed is not None and changed.size == 9 and changed.version != copied.version


def test_multipart_copy_settings_from_the_target(
    s3_client: Any, moto_endpoint: str, tmp_path: Path
) -> None:
    """``s3.multipart_copy_threshold`` / ``copy_part_size`` / ``copy_concurrency`` of a target
    reach the copy: a 12 MiB object goes as three 5 MiB-or-less UploadPartCopy ranges."""
    from xoelt.storage.s3 import S3StoreConfig

    config = S3StoreConfig.model_validate(
        {
            "endpoint_url": moto_endpoint,
            "region": "us-east-1",
            "multipart_copy_threshold": 5 * 1024**2,
            "copy_part_size": 5 * 1024**2,
            "copy_concurrency": 3,
        }
    )
    store = config.open()
    assert store.copy_concurrency == 3
    b = bucket(s3_client)
    body = bytes(range(256)) * (12 * 1024**2 // 256 + 7)
    store.put_bytes(b, "big", body)
    store.copy(b, "big", b, "big-copy")
    head = s3_client.head_object(Bucket=b, Key="big-copy", PartNumber=1)
    assert head["PartsCount"] == 3
    assert s3_client.get_object(Bucket=b, Key="big-copy")["Body"].read() == body
    # below the threshold: one CopyObject, no parts
    store.put_bytes(b, "small", b"x" * 1024)
    store.copy(b, "small", b, "small-copy")
    assert "PartsCount" not in s3_client.head_object(Bucket=b, Key="small-copy", PartNumber=1)
