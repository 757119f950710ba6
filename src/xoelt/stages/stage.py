"""Stage: server-side copy of the ingest parts into the stage bucket, plus an 8 KB header peek.

The files are never rewritten or streamed through this process, so stage time does not grow
with file size; a window's parts are copied a few at once. The header from the peek of each
part (inflated first for gzip) must be the same; it is standardised into the bronze column
list.
"""

from __future__ import annotations

import csv
import io
import zlib
from typing import Any

from xoelt.columns import standardise
from xoelt.errors import DataError
from xoelt.plan import SourcePlan
from xoelt.runtime import Runtime
from xoelt.sources.parts import gunzip_prefix
from xoelt.stages import StageResult, in_parallel, manifest
from xoelt.storage.base import PEEK_BYTES, ObjectInfo, ObjectMissing, ObjectStore
from xoelt.warehouse.base import FilePart


def read_header(head: bytes, where: str) -> list[str]:
    """The first CSV record of ``head`` (the first 8 KB of a file)."""
    text = head.decode("utf-8-sig", errors="strict") if head else ""
    if not text:
        raise DataError(f"{where} is empty (no header)")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise DataError(f"cannot read the header of {where}: {exc}") from exc
    consumed = reader.line_num
    complete = len(text.splitlines(keepends=True)) > consumed or text.endswith(("\n", "\r"))
    if len(head) >= PEEK_BYTES and not complete:
        raise DataError(f"the header of {where} is longer than {PEEK_BYTES} bytes")
    return header


def listed_parts(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The parts a manifest lists (key, rows; a stage manifest's also the object stage
    recorded); a manifest written before parts lists its one file, ``key``."""
    if body.get("parts"):
        return list(body["parts"])
    return [{"key": body.get("key", key), "rows": body["rows"], "object": body.get("object")}]


def peek_header(store: ObjectStore, bucket: str, key: str) -> list[str]:
    """The header of the part at ``bucket/key``, from its first 8 KB (decompressed first
    when the part is gzip: the prefix of a deflate stream inflates on its own)."""
    where = store.uri(bucket, key)
    try:
        head = gunzip_prefix(store.read_range(bucket, key, 0, PEEK_BYTES), PEEK_BYTES)
    except UnicodeDecodeError as exc:
        raise DataError(f"{where} is not UTF-8: {exc}") from exc
    except zlib.error as exc:
        raise DataError(f"{where} is not a readable gzip file: {exc}") from exc
    return read_header(head, where)


def verify_staged(store: ObjectStore, sp: SourcePlan, staged: dict[str, Any]) -> list[FilePart]:
    """Every staged part is still the one stage recorded: same size and version (S3 ETag;
    locally inode + mtime) and the same header. DataError (rerun stage) otherwise.

    Returns the parts (key and rows; ``file_uri`` still to be set by the target)."""
    expected = [c["source"] for c in staged["columns"]]

    def check(part: dict[str, Any]) -> FilePart:
        key = part["key"]
        where = store.uri(sp.stage_bucket, key)
        now = store.stat(sp.stage_bucket, key)
        if now is None:
            raise DataError(f"staged file {where} is missing; run `xoelt stage` for this window")
        recorded = part.get("object") or {}
        if (now.size, now.version) != (recorded.get("size"), recorded.get("version")):
            raise DataError(
                f"staged file {where} changed after stage (recorded {recorded.get('size')} "
                f"bytes, version {recorded.get('version')!r}; now {now.size} bytes, version "
                f"{now.version!r}); refusing to load it; run `xoelt stage` for this window again"
            )
        if peek_header(store, sp.stage_bucket, key) != expected:
            raise DataError(
                f"the header of staged file {where} is not the one stage recorded; refusing to "
                "load it; run `xoelt stage` for this window again"
            )
        return FilePart(key, "", int(part["rows"]))

    return in_parallel(check, listed_parts(staged, sp.stage_key))


def _first_difference(first: list[str], other: list[str]) -> str:
    for i, (a, b) in enumerate(zip(first, other, strict=False), start=1):
        if a != b:
            return f"column {i} is {b!r}, not {a!r}"
    return f"{len(other)} columns, not {len(first)}"


def run(rt: Runtime, sp: SourcePlan, log: Any) -> StageResult:
    """Copy every ingest part to the stage bucket (a few at once) and record the
    standardised header, which every part must share."""
    store = rt.store
    ingest = manifest.read(
        store, sp.ingest_bucket, sp.ingest_manifest_key, "run `xoelt extract` for this window first"
    )
    store.delete(sp.stage_bucket, sp.stage_manifest_key)
    parts = listed_parts(ingest, sp.ingest_key)

    def copy(part: dict[str, Any]) -> tuple[str, list[str], ObjectInfo]:
        key = sp.stage_part_key(part["key"])
        try:
            store.copy(sp.ingest_bucket, part["key"], sp.stage_bucket, key)
        except ObjectMissing as exc:
            raise DataError(
                f"ingest file {store.uri(sp.ingest_bucket, part['key'])} is missing"
            ) from exc
        header = peek_header(store, sp.stage_bucket, key)
        staged = store.stat(sp.stage_bucket, key)
        if staged is None:
            raise DataError(
                f"staged file {store.uri(sp.stage_bucket, key)} vanished right after the copy"
            )
        return key, header, staged

    copied = in_parallel(copy, parts)
    first_key, header, _ = copied[0]
    if header != ingest["columns"]:
        where = store.uri(sp.stage_bucket, first_key)
        raise DataError(f"header of {where} does not match the extract manifest's columns")
    for key, other, _ in copied[1:]:
        if other != header:
            raise DataError(
                f"part {store.uri(sp.stage_bucket, key)} has another header than the first "
                f"part's ({_first_difference(header, other)}); run `xoelt extract` again"
            )
    keys = {key for key, _, _ in copied}
    for stale in store.list(sp.stage_bucket, sp.stage_part_prefix):
        if stale.key not in keys:  # an earlier run's extra part: never loaded, not kept
            store.delete(sp.stage_bucket, stale.key)
    columns = standardise(header)
    listed = [
        {
            "key": key,
            "ingest_key": part["key"],
            "rows": int(part["rows"]),
            # What load checks the object against: the file it loads is the one staged here.
            "object": {"size": info.size, "version": info.version},
        }
        for part, (key, _, info) in zip(parts, copied, strict=True)
    ]
    body = {
        "source": sp.name,
        "run_id": rt.run_id,
        "key": first_key,
        "ingest_key": parts[0]["key"],
        "rows": ingest["rows"],
        "columns": [{"source": s, "name": n} for s, n in zip(header, columns, strict=True)],
        "object": listed[0]["object"],
        "parts": listed,
    }
    manifest.write(store, sp.stage_bucket, sp.stage_manifest_key, body)
    renamed = {s: n for s, n in zip(header, columns, strict=True) if s != n}
    log.info("staged", key=first_key, parts=len(listed), columns=len(columns), renamed=len(renamed))
    return StageResult(int(ingest["rows"]), len(columns))
