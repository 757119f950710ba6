"""Transform: bronze → silver by load strategy, then the gold models in dependency order."""

from __future__ import annotations

from typing import Any

from xoelt import sqlgen
from xoelt.errors import TransformError, XoeltError
from xoelt.plan import SourcePlan
from xoelt.runtime import Runtime
from xoelt.timewindow import TimeWindow
from xoelt.warehouse.base import METADATA_NAMES, quote


def silver(rt: Runtime, sp: SourcePlan, log: Any) -> dict[str, Any]:
    wh = rt.warehouse
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
    _check_bronze_window(wh, sp, rt.plan.window)
    statements = sp.silver_sql(rt.plan.window, source_cols)
    begin = statements.index("BEGIN")
    try:
        for stmt in statements[:begin]:
            wh.execute(stmt)
        wanted = sqlgen.silver_columns(source_cols, sp.silver)
        for table in sp.silver_tables:
            for stmt in sqlgen.add_columns(table, wh.table_columns(table) or [], wanted):
                wh.execute(stmt)
        bronze_rows = wh.count(sp.bronze_table)
        expected, dropped = bronze_rows, 0
        if sp.silver.primary_key:
            expected, null_keys = _key_counts(wh, sp)
            if null_keys:
                raise TransformError(
                    f"{null_keys} bronze row(s) of {sp.bronze_table} have a NULL in primary key "
                    f"{', '.join(sp.silver.primary_key)}"
                )
            dropped = bronze_rows - expected
        with wh.transaction():
            inserted: list[int] = []
            for stmt in statements[begin + 1 : -1]:
                rows = wh.execute(stmt)
                if stmt.startswith(("INSERT", "MERGE")):
                    inserted.append(
                        int(sum(v for v in rows[0] if isinstance(v, int))) if rows else 0
                    )
            affected = inserted[0] if inserted else 0
            if sp.load_strategy in ("full_refresh", "historical") and affected != expected:
                raise TransformError(
                    f"silver {sp.silver_table} got {affected} rows from bronze's {expected}; "
                    "rolled back"
                )
    except XoeltError as exc:
        raise TransformError(exc.message) from exc
    log.info(
        "silver",
        table=str(sp.silver_table),
        rows=affected,
        strategy=sp.load_strategy,
        duplicate_keys_dropped=dropped,
    )
    return {"rows": affected}


def _check_bronze_window(wh: Any, sp: SourcePlan, window: TimeWindow) -> None:
    """Bronze holds one window; transforming it as another would file rows under the wrong one."""
    found = wh.execute(
        f"SELECT DISTINCT {quote('_XO_WINDOW_START')} FROM {sp.bronze_table.sql} LIMIT 2"
    )
    starts = {row[0] for row in found}
    if starts and starts != {window.start}:
        held = ", ".join(sorted(str(s.astimezone(window.start.tzinfo).isoformat()) for s in starts))
        raise TransformError(
            f"bronze {sp.bronze_table} holds window {held}, not {window.start.isoformat()}; "
            "run `xoelt load` for this window first"
        )


def _key_counts(wh: Any, sp: SourcePlan) -> tuple[int, int]:
    """(distinct primary keys, rows with a NULL key part) in bronze."""
    key = ", ".join(quote(k) for k in sp.silver.primary_key)
    nulls = " OR ".join(f"{quote(k)} IS NULL" for k in sp.silver.primary_key)
    distinct = wh.execute(
        f"SELECT COUNT(*) FROM (SELECT DISTINCT {key} FROM {sp.bronze_table.sql}) AS k"
    )
    null_rows = wh.execute(f"SELECT COUNT(*) FROM {sp.bronze_table.sql} WHERE {nulls}")
    return int(distinct[0][0]), int(null_rows[0][0])


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
