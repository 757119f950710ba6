"""S3 as an object store, through boto3.

- Writes are plain PUTs (``upload_file`` goes multipart past 8 MB): S3 makes an object
  visible only once its upload completes, so a killed extract never leaves a partial object.
- ``copy`` is server-side: CopyObject up to the threshold (256 MiB by default, at most 5 GB),
  past it a multipart copy (:meth:`S3ObjectStore.copy`): UploadPartCopy ranges several at
  once, each part retried on a transient error, CompleteMultipartUpload with the parts in
  order, and AbortMultipartUpload on any failure, so a half-copied object is never visible.
  botocore checks the "200 OK with an <Error> body" that CopyObject/UploadPartCopy can return
  (it becomes a 500, so it counts as transient).
- ``read_range`` is a ranged GET (the 8 KB header peek); ``list`` follows continuation tokens.
- Retries: botocore's ``standard`` mode (throttling such as 503 SlowDown, 5xx, resets), with
  connect/read timeouts and a total attempt count from :class:`S3StoreConfig`.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import Field

from xoelt import interrupts
from xoelt.config.types import StrictModel
from xoelt.errors import LockHeld, StorageError
from xoelt.logging import get_logger
from xoelt.retry import retry_transient
from xoelt.storage.base import Change, ObjectInfo, ObjectMissing, T

FIVE_GB = 5 * 1024**3
MIN_PART = 5 * 1024**2
"""S3's smallest part (every part of a multipart upload but the last)."""
MAX_PARTS = 10_000
"""S3's most parts in one multipart upload."""
MIB = 1024**2
COPY_PART_SIZE = 512 * MIB
"""The default largest part of a multipart copy. Server-side, a part's bytes never reach the
client, so a bigger part costs it nothing while each part is one more signed request (about
1 KB and a few ms of botocore CPU): 512 MiB keeps a 1 GiB stage to two parallel parts and
still runs a 5 GiB object in ten. rclone copies in chunks of its 4.6 GiB copy cutoff, for the
same reason; boto3's managed copy uses its 8 MiB upload chunks, hundreds of requests a GB."""
COPIED_HEADERS = ("CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage")
"""What CopyObject keeps of the source (besides type and metadata) that a multipart upload
must be given explicitly. Unlike CopyObject, a multipart copy does not carry the object's tags
over; storage class and encryption follow the destination bucket's defaults in both."""
LOCK_CONFLICTS = ("PreconditionFailed", "ConditionalRequestConflict")
UPDATE_ATTEMPTS = 40
"""Lost races an :meth:`S3ObjectStore.update` retries before it gives up (transient)."""


class S3StoreConfig(StrictModel):
    """Where the buckets are (AWS by default; ``endpoint_url`` for MinIO, moto, PrivateLink),
    how long a call may take, and how big objects are copied.

    Every request is bounded: ``connect_timeout`` and ``read_timeout`` per attempt, at most
    ``max_attempts`` attempts in all (botocore's ``standard`` retries: throttling, 5xx,
    resets; its backoff is at most 20 s). A call that never answers fails after about
    ``max_attempts * (connect_timeout + read_timeout)`` plus the backoff.

    Objects larger than ``multipart_copy_threshold`` are copied as ``copy_part_size`` ranges
    (UploadPartCopy), ``copy_concurrency`` at a time, each part tried ``copy_part_attempts``
    times in all when it fails for a transient reason (on top of botocore's own retries of
    each request). The part size grows when an object would otherwise need more than S3's
    10,000 parts; an object above the threshold that one part would hold is copied as two
    halves.
    """

    type: Literal["s3"] = "s3"
    endpoint_url: str | None = None
    region: str | None = None
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=20)
    multipart_copy_threshold: int = Field(256 * MIB, ge=MIN_PART, le=FIVE_GB)
    copy_part_size: int = Field(COPY_PART_SIZE, ge=MIN_PART, le=FIVE_GB)
    copy_concurrency: int = Field(8, ge=1, le=64)
    copy_part_attempts: int = Field(3, ge=1, le=10)

    def open(self) -> S3ObjectStore:
        return S3ObjectStore(
            endpoint_url=self.endpoint_url,
            region=self.region,
            copy_part_size=self.copy_part_size,
            multipart_copy_threshold=self.multipart_copy_threshold,
            copy_concurrency=self.copy_concurrency,
            copy_part_attempts=self.copy_part_attempts,
            client_config=self.client_config(),
        )

    def client_config(self) -> dict[str, Any]:
        """botocore ``Config`` arguments: the timeouts, retries and connection pool."""
        return {
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "retries": {"mode": "standard", "total_max_attempts": self.max_attempts},
            # one connection per concurrent part copy, plus the caller's own requests
            "max_pool_connections": max(10, self.copy_concurrency + 2),
        }


def _storage_error(what: str, bucket: str, key: str, exc: Exception) -> StorageError:
    """A botocore error as a one-line StorageError; 5xx, 429 and transport faults transient."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        detail = f"{error.get('Code')} {error.get('Message', '')}".rstrip()
        return StorageError(
            f"S3 {what} s3://{bucket}/{key}: {detail}", transient=status >= 500 or status == 429
        )
    return StorageError(f"S3 {what} s3://{bucket}/{key}: {exc}", transient=True)


def _mapped(what: str) -> Any:
    """Decorator: botocore errors a method did not handle become one-line StorageErrors."""

    def wrap(method: Any) -> Any:
        @wraps(method)
        def inner(self: Any, bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                return method(self, bucket, key, *args, **kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise _storage_error(what, bucket, key, exc) from exc

        return inner

    return wrap


def copy_ranges(size: int, part_size: int) -> list[tuple[int, int]]:
    """The inclusive byte ranges of a multipart copy of ``size`` bytes: ``part_size`` each
    (the last one shorter), the part size grown to whole MiB when ``size`` would need more
    than 10,000 parts. An object that ``part_size`` would leave in one part is split in two
    (when both halves can be 5 MiB): a one-part multipart copy would only add requests to
    what a CopyObject does, without copying anything in parallel. StorageError if even 5 GB
    parts cannot hold it (S3's limit is 5 TB)."""
    part = max(part_size, MIN_PART, -(-size // MAX_PARTS))
    if part > part_size:
        part = -(-part // MIB) * MIB
    if part > FIVE_GB:
        raise StorageError(f"S3 cannot copy an object of {size} bytes (more than 10,000 x 5 GB)")
    if part >= size >= 2 * MIN_PART:
        part = -(-size // 2)
    return [(first, min(first + part, size) - 1) for first in range(0, size, part)]


def _expired(info: dict[str, Any], now: datetime) -> bool:
    try:
        return datetime.fromisoformat(str(info["expires_at"])) < now
    except (KeyError, ValueError):
        return False


class S3ObjectStore:
    """Buckets and keys on S3 (or anything that speaks its API: MinIO, moto)."""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        copy_part_size: int = COPY_PART_SIZE,
        multipart_copy_threshold: int = 256 * MIB,
        copy_concurrency: int = 8,
        copy_part_attempts: int = 3,
        copy_retry_wait: float = 20.0,
        client_config: dict[str, Any] | None = None,
        client: Any = None,
    ) -> None:
        """``copy_retry_wait`` caps the (jittered, exponential) wait before a part's retry."""
        if client is None:
            import boto3
            from botocore.config import Config

            settings = client_config or S3StoreConfig().client_config()
            client = boto3.client(
                "s3", endpoint_url=endpoint_url, region_name=region, config=Config(**settings)
            )
        self.client = client
        self.copy_part_size = copy_part_size
        self.multipart_copy_threshold = multipart_copy_threshold
        self.copy_concurrency = copy_concurrency
        self.copy_part_attempts = copy_part_attempts
        self.copy_retry_wait = copy_retry_wait

    @_mapped("upload")
    def put_file(self, bucket: str, key: str, path: Path) -> None:
        self.client.upload_file(str(path), bucket, key)

    @_mapped("put")
    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    @_mapped("get")
    def open(self, bucket: str, key: str) -> BinaryIO:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"]

    @_mapped("ranged get")
    def read_range(self, bucket: str, key: str, start: int, length: int) -> bytes:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(
                Bucket=bucket, Key=key, Range=f"bytes={start}-{start + length - 1}"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return b""  # an empty object, or start past its end
            raise
        return body["Body"].read()

    @_mapped("head")
    def size(self, bucket: str, key: str) -> int:
        return int(self.client.head_object(Bucket=bucket, Key=key)["ContentLength"])

    @_mapped("copy from")
    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None:
        """Server-side copy: one CopyObject up to ``multipart_copy_threshold``, else
        :meth:`_multipart_copy`. Content type, metadata and the other headers are kept."""
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=src_bucket, Key=src_key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise ObjectMissing(f"s3://{src_bucket}/{src_key} is missing") from exc
            raise
        source = {"Bucket": src_bucket, "Key": src_key}
        if int(head["ContentLength"]) <= self.multipart_copy_threshold:
            self.client.copy_object(Bucket=dst_bucket, Key=dst_key, CopySource=source)
            return
        self._multipart_copy(source, head, dst_bucket, dst_key)

    def _multipart_copy(
        self, source: dict[str, str], head: dict[str, Any], dst_bucket: str, dst_key: str
    ) -> None:
        """UploadPartCopy ranges, ``copy_concurrency`` at a time, then CompleteMultipartUpload.

        Every part names the source's ETag (``CopySourceIfMatch``): if the source is replaced
        mid-copy, S3 refuses the later parts instead of mixing two versions. On the first part
        that fails for good or on an interrupt (SIGTERM: raised in the main thread, seen by
        the parts through :func:`xoelt.interrupts.check`), parts not started are cancelled,
        the ones in flight are waited for, and the upload is aborted: the destination is left
        untouched.
        """
        ranges = copy_ranges(int(head["ContentLength"]), self.copy_part_size)
        origin = self.uri(source["Bucket"], source["Key"])
        kept = {name: head[name] for name in COPIED_HEADERS if head.get(name)}
        upload = self.client.create_multipart_upload(
            Bucket=dst_bucket,
            Key=dst_key,
            ContentType=head.get("ContentType") or "binary/octet-stream",
            Metadata=head.get("Metadata") or {},
            **kept,
        )["UploadId"]
        log = get_logger(upload=f"s3://{dst_bucket}/{dst_key}")
        stop = threading.Event()

        def part(number: int, first: int, last: int) -> dict[str, Any]:
            from botocore.exceptions import BotoCoreError, ClientError

            what = f"copy (part {number} of {len(ranges)}) of {origin} to"

            def attempt() -> dict[str, Any]:
                interrupts.check()  # a signal stops a copy in a backfill's worker thread too
                if stop.is_set():  # another part failed: do not start (or retry) this one
                    raise StorageError(f"S3 {what} {self.uri(dst_bucket, dst_key)}: cancelled")
                try:
                    answer = self.client.upload_part_copy(
                        Bucket=dst_bucket,
                        Key=dst_key,
                        UploadId=upload,
                        PartNumber=number,
                        CopySource=source,
                        CopySourceIfMatch=head["ETag"],
                        CopySourceRange=f"bytes={first}-{last}",
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise _storage_error(what, dst_bucket, dst_key, exc) from exc
                return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

            return retry_transient(
                attempt,
                what=f"S3 {what} {self.uri(dst_bucket, dst_key)}",
                log=log,
                attempts=self.copy_part_attempts,
                max_wait=self.copy_retry_wait,
                sleep=pause,
            )

        def pause(seconds: float) -> None:
            stop.wait(seconds)  # a retry's wait ends early when the copy is being given up

        # S3 copies each range server-side; several at once is what makes a big copy fast:
        # ``copy_concurrency`` threads take the next range until none is left. The calling
        # thread only waits, so a signal raised in it never abandons a request in flight.
        numbered = iter(enumerate(ranges, start=1))
        taking = threading.Lock()
        copied: dict[int, dict[str, Any]] = {}
        failed: dict[int, BaseException] = {}

        def copy_parts() -> None:
            while not stop.is_set():
                with taking:
                    number, (first, last) = next(numbered, (0, (0, 0)))
                if not number:
                    return
                try:
                    copied[number] = part(number, first, last)
                except StorageError as exc:
                    failed[number] = exc
                    stop.set()  # the other threads start no further part
                    return
                except BaseException:  # an interrupt, or a bug: raised as it is
                    stop.set()
                    raise

        helpers = min(self.copy_concurrency, len(ranges))
        pool = ThreadPoolExecutor(helpers, "xoelt-s3-copy")
        try:
            futures = [pool.submit(copy_parts) for _ in range(helpers)]
            for future in futures:
                future.result()  # a helper's unexpected error (not a StorageError) is raised
            if failed:
                raise failed[min(failed)]  # the lowest-numbered part that failed
            parts = [copied[number] for number in range(1, len(ranges) + 1)]
            self.client.complete_multipart_upload(
                Bucket=dst_bucket, Key=dst_key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            stop.set()
            # parts still in flight may land after an abort; wait for them to end first
            pool.shutdown(wait=True)
            self._abort(dst_bucket, dst_key, upload, log)
            raise
        finally:
            pool.shutdown(wait=False)

    def _abort(self, bucket: str, key: str, upload: str, log: Any) -> None:
        """AbortMultipartUpload (retried); if even that fails, say so and leave it to the
        bucket's ``AbortIncompleteMultipartUpload`` lifecycle rule."""
        from botocore.exceptions import BotoCoreError, ClientError

        def attempt() -> None:
            try:
                self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                    return  # already gone (aborted, or completed after all)
                raise _storage_error("abort upload", bucket, key, exc) from exc
            except BotoCoreError as exc:
                raise _storage_error("abort upload", bucket, key, exc) from exc

        try:
            retry_transient(attempt, what=f"abort upload to {self.uri(bucket, key)}", log=log)
        except StorageError as exc:
            log.warning("multipart upload not aborted", upload_id=upload, error=str(exc))

    def list(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        try:  # a generator: the requests happen while iterating
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"], int(item["Size"]))
        except (ClientError, BotoCoreError) as exc:
            raise _storage_error("list", bucket, prefix, exc) from exc

    @_mapped("head")
    def exists(self, bucket: str, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    @_mapped("head")
    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(key, int(head["ContentLength"]), str(head.get("ETag", "")))

    @_mapped("delete")
    def delete(self, bucket: str, key: str) -> None:
        self.client.delete_object(Bucket=bucket, Key=key)

    def local_path(self, bucket: str, key: str) -> Path | None:
        return None

    @_mapped("lock")
    def lock(
        self, bucket: str, key: str, owner: str, ttl_seconds: int
    ) -> AbstractContextManager[None]:
        """A conditional PUT (``If-None-Match: *``): exactly one run creates the lock object.

        A lock whose ``expires_at`` has passed was abandoned (a killed pod); it is deleted with
        ``If-Match`` on its ETag, so two runs cannot both take it over, and the PUT retried once.
        Release deletes the object only if it is still ours (``If-Match`` on our ETag).
        """
        from botocore.exceptions import ClientError

        now = datetime.now(UTC)
        expires = now + timedelta(seconds=ttl_seconds)
        body = json.dumps(
            {"owner": owner, "since": now.isoformat(), "expires_at": expires.isoformat()}
        ).encode()
        where = self.uri(bucket, key)
        for attempt in (1, 2):
            try:
                put = self.client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
                return self._held(bucket, key, put["ETag"])
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in LOCK_CONFLICTS:
                    raise
            holder = self._read_lock(bucket, key)
            if holder is None:
                continue  # released between our PUT and GET
            info, etag = holder
            if attempt == 2 or not _expired(info, now):
                raise LockHeld(
                    f"another run holds the lock {where} ({info.get('owner')} since "
                    f"{info.get('since')}); try again when it ends"
                )
            with contextlib.suppress(ClientError):  # someone else may take it over first
                self.client.delete_object(Bucket=bucket, Key=key, IfMatch=etag)
        raise LockHeld(f"another run holds the lock {where}")

    def _read_lock(self, bucket: str, key: str) -> tuple[dict[str, Any], str] | None:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=bucket, Key=key)
        except ClientError:
            return None
        try:
            info = json.loads(answer["Body"].read())
        except ValueError:
            info = {"owner": "an unreadable lock"}
        return (info if isinstance(info, dict) else {}), answer["ETag"]

    @contextlib.contextmanager
    def _held(self, bucket: str, key: str, etag: str) -> Generator[None]:
        from botocore.exceptions import ClientError

        try:
            yield
        finally:
            with contextlib.suppress(ClientError):
                self.client.delete_object(Bucket=bucket, Key=key, IfMatch=etag)

    @_mapped("update")
    def update(self, bucket: str, key: str, change: Change[T]) -> T:
        """GET, ``change``, then a conditional PUT: ``If-Match`` on the ETag read, or
        ``If-None-Match: *`` to create. Another writer in between makes the PUT fail
        (412, or 409 for a concurrent conditional write): read again and retry, with jitter.
        """
        from botocore.exceptions import ClientError

        for attempt in range(UPDATE_ATTEMPTS):
            try:
                answer = self.client.get_object(Bucket=bucket, Key=key)
                current: bytes | None = answer["Body"].read()
                etag: str | None = answer["ETag"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise
                current, etag = None, None
            new, result = change(current)
            if new is None:
                return result
            condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:
                self.client.put_object(Bucket=bucket, Key=key, Body=new, **condition)
                return result
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code not in (*LOCK_CONFLICTS, "NoSuchKey"):  # NoSuchKey: deleted meanwhile
                    raise
            time.sleep(random.uniform(0.005, 0.02 * min(attempt + 1, 10)))
        raise StorageError(
            f"S3 update s3://{bucket}/{key}: lost the race to other writers "
            f"{UPDATE_ATTEMPTS} times",
            transient=True,
        )

    def uri(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"
