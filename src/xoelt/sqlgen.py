"""SQL for silver, written once in Snowflake's dialect (DuckDB gets it through sqlglot).

Everything that comes from config or a source is an identifier validated upstream and quoted
here with :func:`quote`, or a literal escaped with :func:`literal`.
"""

from __future__ import annotations

from collections.abc import Sequence

from xoelt.config.models import SilverConfig
from xoelt.warehouse.base import TableRef, literal, quote

SILVER_META: tuple[tuple[str, str], ...] = (
    ("_XO_WINDOW_START", "TIMESTAMP_TZ"),
    ("_XO_WINDOW_END", "TIMESTAMP_TZ"),
    ("_XO_RUN_ID", "VARCHAR"),
    ("_XO_LOADED_AT", "TIMESTAMP_TZ"),
)
REST = "/* …every other bronze column, as VARCHAR, in bronze order… */"


def silver_columns(
    bronze_columns: Sequence[str] | None, silver: SilverConfig
) -> list[tuple[str, str]]:
    """(name, type) of silver's source columns: bronze order, typed where configured."""
    if bronze_columns is None:
        return list(silver.columns.items())
    return [(c, silver.columns.get(c, "VARCHAR")) for c in bronze_columns]


def _cast(name: str, type_: str) -> str:
    if type_ == "VARCHAR":
        return quote(name)
    return f"TRY_CAST({quote(name)} AS {type_}) AS {quote(name)}"


def silver_ddl(table: TableRef, columns: list[tuple[str, str]]) -> list[str]:
    cols = ", ".join(f"{quote(n)} {t}" for n, t in [*columns, *SILVER_META])
    return [
        f"CREATE SCHEMA IF NOT EXISTS {table.schema_sql}",
        f"CREATE TABLE IF NOT EXISTS {table.sql} ({cols})",
    ]


def silver_select(bronze: TableRef, columns: list[tuple[str, str]], *, partial: bool) -> str:
    exprs = [_cast(n, t) for n, t in columns] + ([REST] if partial else [])
    exprs += [quote(n) for n, _ in SILVER_META]
    return f"SELECT {', '.join(exprs)} FROM {bronze.sql}"


def full_refresh(
    bronze: TableRef,
    silver_table: TableRef,
    silver: SilverConfig,
    window_start: str,
    bronze_columns: Sequence[str] | None,
) -> list[str]:
    """Replace the window's snapshot partition: DELETE + INSERT inside one transaction."""
    columns = silver_columns(bronze_columns, silver)
    partial = bronze_columns is None
    names = ", ".join(
        [quote(n) for n, _ in columns]
        + ([REST] if partial else [])
        + [quote(n) for n, _ in SILVER_META]
    )
    return [
        *silver_ddl(silver_table, columns),
        "BEGIN",
        f"DELETE FROM {silver_table.sql} WHERE {quote('_XO_WINDOW_START')} = {literal(window_start)}::TIMESTAMP_TZ",
        f"INSERT INTO {silver_table.sql} ({names}) {silver_select(bronze, columns, partial=partial)}",
        "COMMIT",
    ]


def incremental(
    bronze: TableRef,
    silver_table: TableRef,
    silver: SilverConfig,
    bronze_columns: Sequence[str] | None,
) -> list[str]:
    """MERGE the window's full pull on the primary key; the latest window (then row) wins.

    The source is deduplicated with QUALIFY over a total order first, because Snowflake
    rejects duplicate source keys in MERGE (DuckDB would silently accept them).
    """
    columns = silver_columns(bronze_columns, silver)
    partial = bronze_columns is None
    key = [quote(k) for k in silver.primary_key]
    all_cols = (
        [quote(n) for n, _ in columns]
        + ([REST] if partial else [])
        + [quote(n) for n, _ in SILVER_META]
    )
    dedup = (
        f"{silver_select(bronze, columns, partial=partial).replace(' FROM ', ', ' + quote('_XO_FILE_ROW_NUMBER') + ' FROM ', 1)} "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join(key)} "
        f"ORDER BY {quote('_XO_FILE_ROW_NUMBER')} DESC) = 1"
    )
    on = " AND ".join(f"t.{k} = s.{k}" for k in key)
    updates = ", ".join(f"{c} = s.{c}" for c in all_cols if c not in key and c != REST)
    return [
        *silver_ddl(silver_table, columns),
        "BEGIN",
        f"MERGE INTO {silver_table.sql} AS t USING ({dedup}) AS s ON {on} "
        f"WHEN MATCHED AND s.{quote('_XO_WINDOW_END')} >= t.{quote('_XO_WINDOW_END')} THEN UPDATE SET {updates} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(all_cols)}) VALUES ({', '.join('s.' + c if c != REST else c for c in all_cols)})",
        "COMMIT",
    ]


def add_columns(
    table: TableRef, existing: Sequence[str], wanted: list[tuple[str, str]]
) -> list[str]:
    """ALTER TABLE … ADD COLUMN for each wanted column the table lacks (DDL: before BEGIN)."""
    have = set(existing)
    return [
        f"ALTER TABLE {table.sql} ADD COLUMN {quote(n)} {t}" for n, t in wanted if n not in have
    ]
