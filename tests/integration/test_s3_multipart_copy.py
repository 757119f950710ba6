"""The S3 store's multipart copy against a moto server, through a proxy that records what
boto3 sent (and when) and injects S3 errors into chosen UploadPartCopy requests."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.s3_proxy import Fault, S3Proxy
from xoelt import interrupts
from xoelt.errors import StorageError
from xoelt.storage.s3 import MIB, S3ObjectStore, S3StoreConfig

PART = 5 * MIB
SIZE = 23 * MIB + 12_345  # five parts: four of 5 MiB and a last one of 3 MiB and a bit
HOLD = 0.3  # seconds the proxy keeps each UploadPartCopy: parts sent at once overlap


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[S3Proxy]:
    port = int(moto_endpoint.rsplit(":", 1)[1])
    with S3Proxy(port, hold={"UploadPartCopy": HOLD}) as running:
        yield running


def store_via(proxy: S3Proxy, *, concurrency: int = 3, max_attempts: int = 1) -> S3ObjectStore:
    """A store talking to moto through ``proxy``; ``max_attempts=1`` turns botocore's own
    retries off, so a part the proxy fails is retried by the store's per-part retry."""
    config = S3StoreConfig(
        endpoint_url=proxy.endpoint,
        region="us-east-1",
        max_attempts=max_attempts,
        multipart_copy_threshold=PART,
        copy_part_size=PART,
        copy_concurrency=concurrency,
    )
    return S3ObjectStore(
        endpoint_url=config.endpoint_url,
        region=config.region,
        copy_part_size=config.copy_part_size,
        multipart_copy_threshold=config.multipart_copy_threshold,
        copy_concurrency=config.copy_concurrency,
        copy_part_attempts=config.copy_part_attempts,
        copy_retry_wait=0.05,
        client_config=config.client_config(),
    )


@pytest.fixture
def source(s3_client: Any) -> tuple[str, bytes]:
    """A bucket holding ``big.csv`` (SIZE random bytes, with a type, an encoding, metadata)."""
    bucket = f"mp-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    body = random.Random(7).randbytes(SIZE)
    s3_client.put_object(
        Bucket=bucket,
        Key="big.csv",
        Body=body,
        ContentType="text/csv",
        ContentEncoding="identity",
        Metadata={"rows": "42", "run": "r-1"},
    )
    return bucket, body


def multipart_etag(body: bytes, part: int) -> str:
    """S3's ETag of a multipart object: the MD5 of its parts' MD5s, then "-<parts>"."""
    digests = [hashlib.md5(body[i : i + part]).digest() for i in range(0, len(body), part)]
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


def test_big_copy_runs_its_parts_concurrently_and_is_identical(
    proxy: S3Proxy, s3_client: Any, source: tuple[str, bytes]
) -> None:
    bucket, body = source
    store_via(proxy, concurrency=3).copy(bucket, "big.csv", bucket, "stage/big.csv")

    copied = s3_client.get_object(Bucket=bucket, Key="stage/big.csv")
    assert copied["Body"].read() == body
    assert copied["ETag"] == multipart_etag(body, PART)
    assert copied["ETag"].endswith('-5"')
    assert copied["ContentType"] == "text/csv"
    assert copied["ContentEncoding"] == "identity"
    assert copied["Metadata"] == {"rows": "42", "run": "r-1"}

    parts = proxy.ops("UploadPartCopy")
    assert sorted(p.part or 0 for p in parts) == [1, 2, 3, 4, 5]
    assert proxy.peak("UploadPartCopy") == 3  # three in flight at once, never more
    first_wave = sorted(parts, key=lambda p: p.started)[:3]
    assert max(p.started for p in first_wave) < min(p.ended for p in first_wave)
    source_etag = s3_client.head_object(Bucket=bucket, Key="big.csv")["ETag"]
    assert {p.copy_if_match for p in parts} == {source_etag}  # all parts of one version
    assert [len(proxy.ops(op)) for op in ("CopyObject", "CompleteMultipartUpload")] == [0, 1]
    assert proxy.ops("AbortMultipartUpload") == []
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize(
    ("status", "code"),
    [(503, "SlowDown"), (500, "InternalError"), (200, "InternalError")],
    ids=["503-slowdown", "500", "200-with-error-body"],
)
def test_a_part_failing_transiently_is_retried_and_the_copy_succeeds(
    proxy: S3Proxy, s3_client: Any, source: tuple[str, bytes], status: int, code: str
) -> None:
    bucket, body = source
    proxy.faults.append(Fault("UploadPartCopy", status, code, part=2, times=2))
    store_via(proxy).copy(bucket, "big.csv", bucket, "stage/big.csv")

    assert s3_client.get_object(Bucket=bucket, Key="stage/big.csv")["Body"].read() == body
    tries = [p.status for p in proxy.ops("UploadPartCopy") if p.part == 2]
    assert tries == [status, status, 200]  # two failures, then the third attempt
    others = [p.part or 0 for p in proxy.ops("UploadPartCopy") if p.part != 2]
    assert sorted(others) == [1, 3, 4, 5]
    assert proxy.ops("AbortMultipartUpload") == []


def test_botocore_retries_first_then_the_part_retry(
    proxy: S3Proxy, s3_client: Any, source: tuple[str, bytes]
) -> None:
    """With botocore's ``standard`` retries on (two attempts a request), three 503s for one
    part are two botocore attempts, then one more part attempt of two requests."""
    bucket, body = source
    proxy.faults.append(Fault("UploadPartCopy", 503, "SlowDown", part=4, times=3))
    store_via(proxy, max_attempts=2).copy(bucket, "big.csv", bucket, "stage/big.csv")
    assert s3_client.get_object(Bucket=bucket, Key="stage/big.csv")["Body"].read() == body
    assert [p.status for p in proxy.ops("UploadPartCopy") if p.part == 4] == [503, 503, 503, 200]


def test_a_part_failing_terminally_aborts_the_upload(
    proxy: S3Proxy, s3_client: Any, source: tuple[str, bytes]
) -> None:
    bucket, _ = source
    proxy.faults.append(Fault("UploadPartCopy", 403, "AccessDenied", part=2))
    with pytest.raises(StorageError) as info:
        store_via(proxy, concurrency=2).copy(bucket, "big.csv", bucket, "stage/big.csv")

    message = str(info.value)
    assert not info.value.transient
    assert "part 2 of 5" in message and "AccessDenied" in message
    assert f"s3://{bucket}/big.csv" in message and f"s3://{bucket}/stage/big.csv" in message
    parts = proxy.ops("UploadPartCopy")
    assert [p.status for p in parts if p.part == 2] == [403]  # a terminal error: no retry
    assert len(parts) < 5  # the parts not yet started were never sent
    (abort,) = proxy.ops("AbortMultipartUpload")
    assert abort.started >= max(p.ended for p in parts)  # after the parts in flight ended
    assert proxy.ops("CompleteMultipartUpload") == []
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="stage/").get("Contents", [])
    assert listed == []  # nothing half-copied is visible


def test_an_object_at_or_below_the_threshold_is_one_copy_object(
    proxy: S3Proxy, s3_client: Any, source: tuple[str, bytes]
) -> None:
    bucket, _ = source
    body = random.Random(3).randbytes(PART)  # exactly the threshold: still one request
    s3_client.put_object(
        Bucket=bucket, Key="small.csv", Body=body, ContentType="text/csv", Metadata={"a": "1"}
    )
    store_via(proxy).copy(bucket, "small.csv", bucket, "stage/small.csv")

    copied = s3_client.get_object(Bucket=bucket, Key="stage/small.csv")
    assert copied["Body"].read() == body
    assert (copied["ContentType"], copied["Metadata"]) == ("text/csv", {"a": "1"})
    assert "-" not in copied["ETag"]
    assert len(proxy.ops("CopyObject")) == 1
    assert proxy.ops("CreateMultipartUpload") == proxy.ops("UploadPartCopy") == []


def sigterm_after(seconds: float) -> threading.Timer:
    """SIGTERM to this process ``seconds`` from now (while the first parts are held)."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    return timer


def assert_aborted_cleanly(proxy: S3Proxy, s3_client: Any, bucket: str) -> None:
    parts = proxy.ops("UploadPartCopy")
    assert len(parts) == 2  # the first wave only: no part starts after the signal
    (abort,) = proxy.ops("AbortMultipartUpload")
    assert abort.started >= max(p.ended for p in parts)
    assert proxy.ops("CompleteMultipartUpload") == []
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3_client.list_objects_v2(Bucket=bucket, Prefix="stage/").get("KeyCount") == 0


def test_sigterm_during_a_copy_aborts_the_upload(
    proxy: S3Proxy, s3_client: Any, source: tuple[str, bytes]
) -> None:
    """The signal raises Interrupted in the main thread, waiting on the parts."""
    bucket, _ = source
    store = store_via(proxy, concurrency=2)
    try:
        with interrupts.handling(), pytest.raises(interrupts.Interrupted):
            sigterm_after(HOLD / 2)
            store.copy(bucket, "big.csv", bucket, "stage/big.csv")
    finally:
        interrupts.reset()
    assert_aborted_cleanly(proxy, s3_client, bucket)


def test_sigterm_stops_a_copy_running_in_a_worker_thread(
    proxy: S3Proxy, s3_client: Any, source: tuple[str, bytes]
) -> None:
    """A backfill copies in worker threads: the parts see the signal's flag and the copy
    ends with Interrupted in that thread, its upload aborted."""
    bucket, _ = source
    store = store_via(proxy, concurrency=2)
    outcome: list[BaseException] = []
    ended = threading.Event()  # not Thread.join: an interrupted join can return early (3.11)

    def copy() -> None:
        try:
            store.copy(bucket, "big.csv", bucket, "stage/big.csv")
        except BaseException as exc:
            outcome.append(exc)
        finally:
            ended.set()

    try:
        with interrupts.handling(), pytest.raises(interrupts.Interrupted):
            threading.Thread(target=copy, daemon=True).start()
            sigterm_after(HOLD / 2)
            ended.wait(30)  # the main thread is interrupted here
        assert ended.wait(30)
    finally:
        interrupts.reset()
    assert [type(e) for e in outcome] == [interrupts.Interrupted]
    assert_aborted_cleanly(proxy, s3_client, bucket)
