"""Load: replace bronze with the staged parts (one COPY), atomically, reconciling row counts
in total and part by part.

Before anything is loaded, the staged header is compared with bronze's columns and the
source's schema policy applied (:mod:`xoelt.drift`): a refused drift fails with bronze
untouched; what the policy lets through is recorded as findings. Under ``on_missing_column:
auto`` the columns the sources derived from this one read (their ``where``, keys, typed
columns) are as needed as the source's own silver's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from xoelt.config.datatests import predicate_columns
from xoelt.drift import Drift, check_drift
from xoelt.plan import SourcePlan
from xoelt.retry import retry_transient
from xoelt.runtime import Runtime
from xoelt.stages import StageResult, manifest
from xoelt.stages.stage import verify_staged
from xoelt.warehouse.base import RunStamp, load_bronze


def derived_needs(sources: Sequence[SourcePlan], parent: SourcePlan) -> dict[str, str]:
    """The columns the sources derived from ``parent`` need of its bronze, each with why: a
    pull without one would load it as NULL and empty (or close every key of) their silver."""
    needed: dict[str, str] = {}
    for d in sources:
        if d.parent != parent.name:
            continue
        for column in sorted(predicate_columns(d.where)) if d.where else []:
            needed.setdefault(column, f"derived source {d.name}'s where reads it")
        for column in d.silver.primary_key:
            needed.setdefault(column, f"derived source {d.name} keys on it")
        for column in d.silver.columns:
            needed.setdefault(column, f"derived source {d.name} types it")
    return needed


def run(rt: Runtime, sp: SourcePlan, log: Any) -> StageResult:
    """TRUNCATE + COPY (or the engine's equivalent) in one transaction, reconciled."""
    store = rt.store
    staged = manifest.read(
        store, sp.stage_bucket, sp.stage_manifest_key, "run `xoelt stage` for this window first"
    )
    located = rt.plan.target.file_location
    parts = tuple(
        dataclasses.replace(p, file_uri=located(sp.stage_bucket, p.key))
        for p in verify_staged(store, sp, staged)
    )
    columns = [c["name"] for c in staged["columns"]]
    drift = Drift.between(rt.warehouse.table_columns(sp.bronze_table), columns)
    findings = check_drift(
        drift, sp.schema_policy, sp.silver, sp.bronze_table, derived_needs(rt.plan.sources, sp)
    )
    spec = sp.bronze_load(columns, parts[0].file_uri, rt.plan.window, parts)
    stamp = RunStamp(rt.run_id, rt.started_at.isoformat())
    # An atomic load that failed transiently (network, a retryable Snowflake answer) rolled
    # back and can simply run again.
    loaded = retry_transient(
        lambda: load_bronze(rt.warehouse, spec, stamp, int(staged["rows"])),
        what=f"load {sp.bronze_table}",
        log=log,
    )
    log.info(
        "loaded",
        table=str(sp.bronze_table),
        rows=loaded,
        parts=len(parts),
        new_columns=list(drift.new),
        missing_columns=list(drift.missing),
    )
    return StageResult(loaded, len(columns), findings)
