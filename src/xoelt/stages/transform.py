"""Transform: bronze → silver by load strategy, then the gold models in dependency order.

Before a source's silver script runs, bronze's values of its typed columns that would not
convert are counted (:mod:`xoelt.casts`): above ``max_cast_failures`` nothing is written to
silver; the counts are the transform's findings either way. After silver is written, the
source's data tests run on it (:mod:`xoelt.datatests`): a failed ``error`` test fails the
stage (silver stays written: the ledger row says failed, and gold does not run).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from xoelt.casts import check_casts
from xoelt.config.datatests import predicate_columns
from xoelt.errors import DataError, WarehouseError, XoeltError
from xoelt.findings import Finding
from xoelt.plan import SourcePlan
from xoelt.runtime import Runtime
from xoelt.stages import StageResult
from xoelt.strategies import KeyCounts, SilverColumns, add_columns
from xoelt.timewindow import TimeWindow
from xoelt.warehouse.base import (
    METADATA_NAMES,
    Warehouse,
    count_rows,
    execute,
    quote,
    run_script,
)


def run(rt: Runtime, sp: SourcePlan, log: Any) -> StageResult:
    """Silver for one source: its strategy's script over what bronze holds (a derived
    source: the rows of its parent's bronze its ``where`` keeps), reconciled. A bronze-only
    source (silver disabled) writes nothing: its row says so in a finding."""
    if not sp.has_silver:
        log.info("silver disabled", bronze=str(sp.bronze_table))
        note = Finding(
            "silver_disabled",
            f"silver.enabled is false: bronze {sp.bronze_table} only, no silver written",
        )
        return StageResult(0, findings=(note,))
    wh = rt.warehouse
    bronze_cols = wh.table_columns(sp.bronze_table)
    if bronze_cols is None:
        raise DataError(f"bronze table {sp.bronze_table} does not exist; run `xoelt load` first")
    source_cols = [c for c in bronze_cols if c not in METADATA_NAMES]
    missing = [c for c in sp.silver.columns if c not in source_cols]
    if missing:
        raise DataError(
            f"silver.columns names columns bronze {sp.bronze_table} lacks: {', '.join(missing)}"
        )
    _check_where(sp, bronze_cols)
    _check_bronze_window(wh, sp, rt.plan.window)
    findings = check_casts(wh, sp.bronze_rows, sp.silver, sp.schema_policy.max_cast_failures)
    columns = SilverColumns.of(source_cols, sp.silver)
    script = sp.strategy.script(sp.silver_job(rt.plan.window), columns)
    # New bronze columns reach silver's existing tables (DDL: before the transaction).
    evolve = tuple(
        step
        for table in sp.silver_tables
        if (have := wh.table_columns(table)) is not None
        for step in add_columns(table, have, columns.typed)
    )
    script = dataclasses.replace(script, prepare=(*script.prepare, *evolve))
    counts = _key_counts(wh, sp)
    strategy = sp.strategy
    result = run_script(
        wh,
        script,
        expected=strategy.expected_rows(counts),
        mismatch=strategy.mismatch(sp.silver_job(rt.plan.window)),
    )
    log.info(
        "silver",
        table=str(sp.silver_table),
        **({"from_source": sp.parent, "bronze_rows": counts.rows} if sp.derived else {}),
        rows=result.rows,
        strategy=sp.load_strategy,
        duplicate_keys_dropped=counts.rows - counts.distinct_keys,
        cast_failures=sum(f.count or 0 for f in findings if f.kind == "cast_failures"),
    )
    found = tuple(findings)
    if sp.silver.tests:
        from xoelt.datatests.runner import run_suites, silver_suite  # not needed by `plan`

        tests = run_suites(rt, [silver_suite(sp, rt.plan.window, result.rows)], log)
        tests.raise_for_errors(found)
        found = (*found, *tests.findings)
    return StageResult(result.rows, findings=found)


def _check_where(sp: SourcePlan, bronze_cols: list[str]) -> None:
    """A derived source's ``where`` names only columns its parent's bronze has (else the
    warehouse's own error would say less): unquoted names compare upper-cased, as Snowflake
    resolves them."""
    if sp.where is None:
        return
    missing = sorted(predicate_columns(sp.where) - set(bronze_cols))
    if missing:
        raise DataError(
            f"where {sp.where!r} names {', '.join(missing)}, which bronze {sp.bronze_table} "
            f"(source {sp.parent}) lacks; its columns: "
            f"{', '.join(c for c in bronze_cols if c not in METADATA_NAMES)}"
        )


def _check_bronze_window(wh: Warehouse, sp: SourcePlan, window: TimeWindow) -> None:
    """Bronze holds one window; transforming it as another would file rows under the wrong one."""
    found = execute(
        wh, f"SELECT DISTINCT {quote('_XO_WINDOW_START')} FROM {sp.bronze_table.sql} LIMIT 2"
    )
    starts = {row[0] for row in found}
    if starts and starts != {window.start}:
        held = ", ".join(sorted(str(s.astimezone(window.start.tzinfo).isoformat()) for s in starts))
        raise DataError(
            f"bronze {sp.bronze_table} holds window {held}, not {window.start.isoformat()}; "
            "run `xoelt load` for this window first"
        )


def _key_counts(wh: Warehouse, sp: SourcePlan) -> KeyCounts:
    """The rows silver reads from bronze (a derived source's: filtered) and their distinct
    primary keys; a NULL in a key part is a DataError."""
    rows_from = sp.bronze_rows
    rows = count_rows(wh, rows_from)
    key_names = sp.silver.primary_key
    if not key_names:
        return KeyCounts(rows, rows)
    key = ", ".join(quote(k) for k in key_names)
    nulls = " OR ".join(f"{quote(k)} IS NULL" for k in key_names)
    distinct = execute(
        wh, f"SELECT COUNT(*) FROM (SELECT DISTINCT {key} FROM {rows_from.sql}) AS k"
    )
    null_rows = int(execute(wh, f"SELECT COUNT(*) FROM {rows_from.sql} WHERE {nulls}")[0][0])
    if null_rows:
        raise DataError(
            f"{null_rows} bronze row(s) of {rows_from} have a NULL in primary key "
            f"{', '.join(key_names)}"
        )
    return KeyCounts(rows, int(distinct[0][0]))


def gold(rt: Runtime, log: Any) -> dict[str, int]:
    """Materialise every gold model in order; return rows per model.

    The tables other databases' pipelines build (:attr:`GoldModel.reads`) must exist first:
    one missing fails the stage before any model is replaced, naming table and database."""
    wh = rt.warehouse
    counts: dict[str, int] = {}
    _check_reads(wh, rt.plan.gold)
    for model in rt.plan.gold:
        try:
            execute(wh, f"CREATE SCHEMA IF NOT EXISTS {model.table.schema_sql}")
            execute(wh, model.sql)
        except XoeltError as exc:
            raise exc.prefixed(f"gold model {model.name} ({model.path}): ") from exc
        counts[model.name] = count_rows(wh, model.table)
        log.info("gold", model=model.name, table=str(model.table), rows=counts[model.name])
    return counts


def _check_reads(wh: Warehouse, models: list[Any]) -> None:
    """Every other database's table a model reads exists (its pipeline ran before this one)."""
    for model in models:
        for table in model.reads:
            try:
                found, why = wh.table_columns(table) is not None, "does not exist"
            except WarehouseError as exc:  # Snowflake: no such database (or no access)
                found, why = False, f"cannot be read ({exc})"
            if not found:
                raise DataError(
                    f"gold model {model.name} ({model.path}) reads {table}, which {why}: "
                    f"run the pipelines of database {table.database} that build "
                    f"{table.schema}.{table.name} first"
                )
