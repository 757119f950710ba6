"""Stage: server-side copy of the ingest file into the stage bucket, plus an 8 KB header peek.

The file is never rewritten or streamed through this process, so stage time does not grow
with file size. The header from the peek is standardised into the bronze column list.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from xoelt.columns import standardise
from xoelt.errors import DataError
from xoelt.plan import SourcePlan
from xoelt.runtime import Runtime
from xoelt.stages import StageResult, manifest
from xoelt.storage.base import PEEK_BYTES, ObjectMissing, ObjectStore


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


def verify_staged(store: ObjectStore, sp: SourcePlan, staged: dict[str, Any]) -> None:
    """The staged object is still the one stage recorded: same size and version (S3 ETag;
    locally inode + mtime) and the same header. DataError (rerun stage) otherwise."""
    where = store.uri(sp.stage_bucket, sp.stage_key)
    now = store.stat(sp.stage_bucket, sp.stage_key)
    if now is None:
        raise DataError(f"staged file {where} is missing; run `xoelt stage` for this window")
    recorded = staged.get("object") or {}
    if (now.size, now.version) != (recorded.get("size"), recorded.get("version")):
        raise DataError(
            f"staged file {where} changed after stage (recorded {recorded.get('size')} bytes, "
            f"version {recorded.get('version')!r}; now {now.size} bytes, version "
            f"{now.version!r}); refusing to load it; run `xoelt stage` for this window again"
        )
    header = read_header(store.read_range(sp.stage_bucket, sp.stage_key, 0, PEEK_BYTES), where)
    if header != [c["source"] for c in staged["columns"]]:
        raise DataError(
            f"the header of staged file {where} is not the one stage recorded; refusing to "
            "load it; run `xoelt stage` for this window again"
        )


def run(rt: Runtime, sp: SourcePlan, log: Any) -> StageResult:
    """Copy the ingest file to the stage bucket and record its standardised header."""
    store = rt.store
    ingest = manifest.read(
        store, sp.ingest_bucket, sp.ingest_manifest_key, "run `xoelt extract` for this window first"
    )
    store.delete(sp.stage_bucket, sp.stage_manifest_key)
    try:
        store.copy(sp.ingest_bucket, sp.ingest_key, sp.stage_bucket, sp.stage_key)
    except ObjectMissing as exc:
        raise DataError(
            f"ingest file {store.uri(sp.ingest_bucket, sp.ingest_key)} is missing"
        ) from exc
    where = store.uri(sp.stage_bucket, sp.stage_key)
    try:
        head = store.read_range(sp.stage_bucket, sp.stage_key, 0, PEEK_BYTES)
    except UnicodeDecodeError as exc:
        raise DataError(f"{where} is not UTF-8: {exc}") from exc
    header = read_header(head, where)
    if header != ingest["columns"]:
        raise DataError(f"header of {where} does not match the extract manifest's columns")
    columns = standardise(header)
    staged = store.stat(sp.stage_bucket, sp.stage_key)
    if staged is None:
        raise DataError(f"staged file {where} vanished right after the copy")
    body = {
        "source": sp.name,
        "run_id": rt.run_id,
        "key": sp.stage_key,
        "ingest_key": sp.ingest_key,
        "rows": ingest["rows"],
        "columns": [{"source": s, "name": n} for s, n in zip(header, columns, strict=True)],
        # What load checks the object against: the file it loads is the one staged here.
        "object": {"size": staged.size, "version": staged.version},
    }
    manifest.write(store, sp.stage_bucket, sp.stage_manifest_key, body)
    renamed = {s: n for s, n in zip(header, columns, strict=True) if s != n}
    log.info("staged", key=sp.stage_key, columns=len(columns), renamed=len(renamed))
    return StageResult(int(ingest["rows"]), len(columns))
