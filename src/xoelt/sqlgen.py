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


SCD2_META: tuple[tuple[str, str], ...] = (
    ("ROW_HASH", "VARCHAR"),
    ("VALID_FROM", "TIMESTAMP_TZ"),
    ("VALID_TO", "TIMESTAMP_TZ"),
    ("IS_CURRENT", "BOOLEAN"),
    ("_XO_RUN_ID", "VARCHAR"),
    ("_XO_LOADED_AT", "TIMESTAMP_TZ"),
)
SNAPSHOT_SUFFIX = "__SNAPSHOTS"


def row_hash(columns: Sequence[str], alias: str = "") -> str:
    """MD5 of the columns, each encoded as ``N`` (NULL) or ``V<length>:<value>``.

    Engines' ``HASH()`` differ, and a plain delimiter join cannot tell NULL from '' or
    ``a|b`` + ``c`` from ``a`` + ``b|c``; a length prefix makes the encoding unambiguous.
    """
    if not columns:
        return "MD5('')"
    parts = []
    for c in columns:
        ref = f"{alias}{quote(c)}"
        parts.append(f"IFF({ref} IS NULL, 'N', 'V' || LENGTH({ref}) || ':' || {ref})")
    return "MD5(" + " || ".join(parts) + ")"


def historical(
    bronze: TableRef,
    silver_table: TableRef,
    silver: SilverConfig,
    window_start: str,
    bronze_columns: Sequence[str] | None,
) -> list[str]:
    """SCD type 2 that is the same whatever order windows arrive in.

    Each window's pull is kept as a snapshot (``<TABLE>__SNAPSHOTS``, the window's partition
    replaced, one row per key, with its row hash). The SCD2 table is then rebuilt from all
    snapshots in window order: a version starts where a key's hash changes or the key
    reappears after missing from the previous snapshot; it ends (``VALID_TO``) at the next
    snapshot window after its last row: a change or a deletion. ``IS_CURRENT`` rows are those
    in the latest snapshot. Effective dates are window starts, never the load time.
    """
    columns = silver_columns(bronze_columns, silver)
    partial = bronze_columns is None
    snapshots = silver_table.with_name(silver_table.name + SNAPSHOT_SUFFIX)
    key = [quote(k) for k in silver.primary_key]
    names = [n for n, _ in columns]
    rest = [REST] if partial else []
    hashed = [n for n in names if n not in silver.primary_key]
    ws, fr = quote("_XO_WINDOW_START"), quote("_XO_FILE_ROW_NUMBER")
    snap_cols = (
        [quote(n) for n in names] + rest + [quote("ROW_HASH")] + [quote(n) for n, _ in SILVER_META]
    )
    snap_select = (
        f"SELECT {', '.join([_cast(n, t) for n, t in columns] + rest)}, "
        f"{row_hash(hashed) if not partial else 'MD5(/* every non-key column */)'} AS {quote('ROW_HASH')}, "
        f"{', '.join(quote(n) for n, _ in SILVER_META)} FROM {bronze.sql} "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join(key)} ORDER BY {fr} DESC) = 1"
    )
    pk = ", ".join(f"s.{k}" for k in key)
    out_cols = [quote(n) for n in names] + rest
    rebuild = (
        f"INSERT INTO {silver_table.sql} ({', '.join(out_cols + [quote(n) for n, _ in SCD2_META])}) "
        f"WITH windows AS (SELECT ws, LEAD(ws) OVER (ORDER BY ws) AS next_ws, "
        f"LAG(ws) OVER (ORDER BY ws) AS prev_ws FROM (SELECT DISTINCT {ws} AS ws FROM {snapshots.sql}) AS d), "
        f"marked AS (SELECT s.*, w.next_ws, IFF("
        f"LAG(s.{quote('ROW_HASH')}) OVER (PARTITION BY {pk} ORDER BY s.{ws}) = s.{quote('ROW_HASH')} "
        f"AND LAG(s.{ws}) OVER (PARTITION BY {pk} ORDER BY s.{ws}) = w.prev_ws, 0, 1) AS is_start "
        f"FROM {snapshots.sql} AS s JOIN windows AS w ON w.ws = s.{ws}), "
        f"versions AS (SELECT m.*, SUM(m.is_start) OVER (PARTITION BY {pk.replace('s.', 'm.')} "
        f"ORDER BY m.{ws} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS version FROM marked AS m) "
        f"SELECT {', '.join(f'v.{c}' if c != REST else c for c in out_cols)}, v.{quote('ROW_HASH')}, "
        f"MIN(v.{ws}) OVER (PARTITION BY {pk.replace('s.', 'v.')}, v.version) AS {quote('VALID_FROM')}, "
        f"v.next_ws AS {quote('VALID_TO')}, v.next_ws IS NULL AS {quote('IS_CURRENT')}, "
        f"v.{quote('_XO_RUN_ID')}, v.{quote('_XO_LOADED_AT')} FROM versions AS v "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {pk.replace('s.', 'v.')}, v.version ORDER BY v.{ws} DESC) = 1"
    )
    snap_ddl_cols = [*columns, ("ROW_HASH", "VARCHAR"), *SILVER_META]
    scd_ddl_cols = [*columns, *SCD2_META]
    return [
        f"CREATE SCHEMA IF NOT EXISTS {silver_table.schema_sql}",
        f"CREATE TABLE IF NOT EXISTS {snapshots.sql} ({', '.join(f'{quote(n)} {t}' for n, t in snap_ddl_cols)})",
        f"CREATE TABLE IF NOT EXISTS {silver_table.sql} ({', '.join(f'{quote(n)} {t}' for n, t in scd_ddl_cols)})",
        "BEGIN",
        f"DELETE FROM {snapshots.sql} WHERE {ws} = {literal(window_start)}::TIMESTAMP_TZ",
        f"INSERT INTO {snapshots.sql} ({', '.join(snap_cols)}) {snap_select}",
        f"DELETE FROM {silver_table.sql}",
        rebuild,
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
