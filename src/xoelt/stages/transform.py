"""Transform: bronze → silver by load strategy, then the gold models in dependency order."""

from __future__ import annotations

from typing import Any

from xoelt import sqlgen
from xoelt.errors import TransformError, XoeltError
from xoelt.plan import SourcePlan
from xoelt.runtime import Runtime
from xoelt.warehouse.base import METADATA_NAMES


def silver(rt: Runtime, sp: SourcePlan, log: Any) -> dict[str, Any]:
    wh = rt.warehouse
    if sp.load_strategy == "historical":
        raise TransformError("historical (SCD type 2) silver is not implemented yet")
    bronze_cols = wh.table_columns(sp.bronze_table)
    if bronze_cols is None:
        raise TransformError(
            f"bronze table {sp.bronze_table} does not exist; run `xoelt load` first"
        )
    source_cols = [c for c in bronze_cols if c not in METADATA_NAMES]
    missing = [c for c in sp.silver.columns if c not in source_cols]
    if missing:
        raise TransformError(
            f"silver.columns names columns bronze {sp.bronze_table} lacks: {', '.join(missing)}"
        )
    statements = sp.silver_sql(rt.plan.window, source_cols)
    begin = statements.index("BEGIN")
    try:
        for stmt in statements[:begin]:
            wh.execute(stmt)
        existing = wh.table_columns(sp.silver_table) or []
        for stmt in sqlgen.add_columns(
            sp.silver_table, existing, sqlgen.silver_columns(source_cols, sp.silver)
        ):
            wh.execute(stmt)
        bronze_rows = wh.count(sp.bronze_table)
        with wh.transaction():
            affected = 0
            for stmt in statements[begin + 1 : -1]:
                rows = wh.execute(stmt)
                if stmt.startswith(("INSERT", "MERGE")) and rows:
                    affected = int(sum(v for v in rows[0] if isinstance(v, int)))
            if sp.load_strategy == "full_refresh" and affected != bronze_rows:
                raise TransformError(
                    f"silver {sp.silver_table} got {affected} rows from bronze's {bronze_rows}; rolled back"
                )
    except XoeltError as exc:
        raise TransformError(exc.message) from exc
    log.info("silver", table=str(sp.silver_table), rows=affected, strategy=sp.load_strategy)
    return {"rows": affected}


def gold(rt: Runtime, log: Any) -> dict[str, int]:
    """Materialise every gold model in order; return rows per model."""
    wh = rt.warehouse
    counts: dict[str, int] = {}
    for model in rt.plan.gold:
        try:
            wh.execute(f"CREATE SCHEMA IF NOT EXISTS {model.table.schema_sql}")
            wh.execute(model.sql)
        except XoeltError as exc:
            raise TransformError(f"gold model {model.name} ({model.path}): {exc.message}") from exc
        counts[model.name] = wh.count(model.table)
        log.info("gold", model=model.name, table=str(model.table), rows=counts[model.name])
    return counts
