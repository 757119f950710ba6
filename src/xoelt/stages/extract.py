"""Extract: source API → CSV in the ingest bucket (original headers, streamed, atomic)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from xoelt.errors import SourceError, XoeltError
from xoelt.plan import RunPlan, SourcePlan
from xoelt.progress import reporting
from xoelt.runtime import Runtime
from xoelt.sources import get_source
from xoelt.sources.base import CsvSink, ExtractContext
from xoelt.sources.ratelimit import SharedLimits
from xoelt.stages import StageResult, in_parallel, manifest


def run(rt: Runtime, sp: SourcePlan, log: Any) -> StageResult:
    """Run the source's extractor into a private temp file, then publish file + manifest."""
    plan: RunPlan = rt.plan
    cls = get_source(sp.source_type)
    config = plan.pipeline.extractor_config(sp.name)
    workdir = Path(tempfile.mkdtemp(prefix=f"extract-{sp.name}-", dir=rt.scratch()))
    try:
        typed = frozenset(c for c, t in sp.silver.columns.items() if not t.startswith("VARCHAR"))
        ctx = ExtractContext(
            sp.name,
            plan.window,
            rt.run_id,
            rt.store,
            rt.env,
            log,
            workdir,
            typed_columns=typed,
            on_progress=rt.progress,
            # org-wide API limits live next to the run locks, shared by every process
            limits=SharedLimits(rt.store, sp.stage_bucket, minute=rt.settings.rate_limit_minute),
        )
        sink = CsvSink(
            workdir / f"{sp.name}.csv",
            progress=ctx.progress,
            fmt=sp.format,
            part_bytes=sp.output.part_size,
            gzip_level=sp.output.gzip_level,
        )
        try:  # an unmapped library error becomes this stage's failure in core.execute
            with reporting(ctx.progress):  # the HTTP client's pages
                cls(config, ctx).extract(sink)
        except XoeltError as exc:
            if ctx.findings and not exc.findings:  # what was noticed before failing is kept
                exc.findings = tuple(ctx.findings)
            raise
        finally:
            sink.close()
            ctx.tracker.finish()
        if sink.fieldnames is None:
            raise SourceError("the source produced no header (no columns)")
        rt.store.delete(sp.ingest_bucket, sp.ingest_manifest_key)
        parts: list[dict[str, Any]] = [
            {"key": sp.ingest_part_key(i), "rows": p.rows, "bytes": p.bytes}
            for i, p in enumerate(sink.parts)
        ]
        published = {part["key"] for part in parts}
        in_parallel(
            lambda i: rt.store.put_file(sp.ingest_bucket, parts[i]["key"], sink.parts[i].path),
            range(len(parts)),
        )
        # A rerun that wrote fewer parts leaves no stale one beside the manifest's.
        for stale in rt.store.list(sp.ingest_bucket, sp.ingest_part_prefix):
            if stale.key not in published:
                rt.store.delete(sp.ingest_bucket, stale.key)
        body = {
            "pipeline": plan.name,
            "source": sp.name,
            "source_type": sp.source_type,
            "run_id": rt.run_id,
            "window": plan.window.as_dict(),
            "key": sp.ingest_key,
            "rows": sink.rows,
            "columns": sink.fieldnames,
            "bytes": sum(part["bytes"] for part in parts),
            "format": sp.format,
            "parts": parts,
            "details": sink.details,
            "findings": [f.as_dict() for f in ctx.findings],
        }
        manifest.write(rt.store, sp.ingest_bucket, sp.ingest_manifest_key, body)
        log.info(
            "extracted",
            rows=sink.rows,
            key=sp.ingest_key,
            parts=len(parts),
            columns=len(sink.fieldnames),
        )
        return StageResult(sink.rows, len(sink.fieldnames), tuple(ctx.findings))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
