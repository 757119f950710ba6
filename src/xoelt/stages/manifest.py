"""Manifests: the small JSON written beside each ingest/stage file, *after* the file.

A manifest is the completion marker: the next stage reads only data whose manifest exists,
and a stage deletes the old manifest before rewriting its data, so a crash in between never
pairs new data with a stale count.
"""

from __future__ import annotations

import json
from typing import Any

from xoelt.errors import RunError
from xoelt.storage.base import ObjectStore


class OutputMissing(RunError):
    """The previous stage has no completed output for this window."""


def write(store: ObjectStore, bucket: str, key: str, body: dict[str, Any]) -> None:
    store.put_bytes(bucket, key, json.dumps(body, indent=2, sort_keys=True).encode())


def read(store: ObjectStore, bucket: str, key: str, hint: str) -> dict[str, Any]:
    """The manifest at ``bucket/key``; OutputMissing (with ``hint``) if there is none."""
    if not store.exists(bucket, key):
        raise OutputMissing(f"no completed output at {store.uri(bucket, key)}; {hint}")
    with store.open(bucket, key) as fh:
        return json.loads(fh.read())
