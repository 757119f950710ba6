"""Load: replace bronze with the staged file, atomically, reconciling row counts."""

from __future__ import annotations

from typing import Any

from xoelt.errors import LoadError
from xoelt.plan import SourcePlan
from xoelt.retry import retry_transient
from xoelt.runtime import Runtime
from xoelt.stages import manifest


def load(rt: Runtime, sp: SourcePlan, log: Any) -> dict[str, Any]:
    store = rt.store
    staged = manifest.read(
        store,
        sp.stage_bucket,
        sp.stage_manifest_key,
        LoadError,
        "run `xoelt stage` for this window first",
    )
    if not store.exists(sp.stage_bucket, sp.stage_key):
        raise LoadError(f"staged file {store.uri(sp.stage_bucket, sp.stage_key)} is missing")
    columns = [c["name"] for c in staged["columns"]]
    location = rt.plan.target.file_location(sp.stage_bucket, sp.stage_key)
    spec = sp.bronze_load(columns, location, rt.plan.window)
    # An atomic load that failed transiently (network, a retryable Snowflake answer) rolled
    # back and can simply run again.
    loaded = retry_transient(
        lambda: rt.warehouse.load_bronze(
            spec, rt.run_id, rt.started_at.isoformat(), int(staged["rows"])
        ),
        what=f"load {sp.bronze_table}",
        log=log,
    )
    log.info("loaded", table=str(sp.bronze_table), rows=loaded)
    return {"rows": loaded}
