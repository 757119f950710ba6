"""The statements the earlier ``historical`` strategy ran (xoelt at 34f83cb), to build its
tables in upgrade tests: snapshots with a stored ``ROW_HASH`` (its own encoding), no windows
table, an SCD2 table without the date and deletion columns.

Rendered from that commit's ``Historical.script`` for source columns ``ID``, ``STATUS`` (key
``ID``, both VARCHAR), with the tables and the window as placeholders.
"""

from __future__ import annotations

from xoelt.warehouse.base import TableRef, literal

PREPARE = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    'CREATE TABLE IF NOT EXISTS {snapshots} ("ID" VARCHAR, "STATUS" VARCHAR, "ROW_HASH" VARCHAR, '
    '"_XO_WINDOW_START" TIMESTAMP_TZ, "_XO_WINDOW_END" TIMESTAMP_TZ, "_XO_RUN_ID" VARCHAR, '
    '"_XO_LOADED_AT" TIMESTAMP_TZ)',
    'CREATE TABLE IF NOT EXISTS {silver} ("ID" VARCHAR, "STATUS" VARCHAR, "ROW_HASH" VARCHAR, '
    '"VALID_FROM" TIMESTAMP_TZ, "VALID_TO" TIMESTAMP_TZ, "IS_CURRENT" BOOLEAN, "_XO_RUN_ID" '
    'VARCHAR, "_XO_LOADED_AT" TIMESTAMP_TZ)',
)
BODY = (
    'DELETE FROM {snapshots} WHERE "_XO_WINDOW_START" = {window}::TIMESTAMP_TZ',
    'INSERT INTO {snapshots} ("ID", "STATUS", "ROW_HASH", "_XO_WINDOW_START", "_XO_WINDOW_END", '
    '"_XO_RUN_ID", "_XO_LOADED_AT") SELECT "ID", "STATUS", MD5(IFF("STATUS" IS NULL, \'N\', '
    '\'V\' || LENGTH("STATUS") || \':\' || "STATUS")) AS "ROW_HASH", "_XO_WINDOW_START", '
    '"_XO_WINDOW_END", "_XO_RUN_ID", "_XO_LOADED_AT" FROM {bronze} QUALIFY ROW_NUMBER() OVER '
    '(PARTITION BY "ID" ORDER BY "_XO_FILE_ROW_NUMBER" DESC) = 1',
    "DELETE FROM {silver}",
    'INSERT INTO {silver} ("ID", "STATUS", "ROW_HASH", "VALID_FROM", "VALID_TO", "IS_CURRENT", '
    '"_XO_RUN_ID", "_XO_LOADED_AT") WITH windows AS (SELECT ws, LEAD(ws) OVER (ORDER BY ws) AS '
    'next_ws, LAG(ws) OVER (ORDER BY ws) AS prev_ws FROM (SELECT DISTINCT "_XO_WINDOW_START" '
    'AS ws FROM {snapshots}) AS d), marked AS (SELECT s.*, w.next_ws, IFF(LAG(s."ROW_HASH") '
    'OVER (PARTITION BY s."ID" ORDER BY s."_XO_WINDOW_START") = s."ROW_HASH" AND '
    'LAG(s."_XO_WINDOW_START") OVER (PARTITION BY s."ID" ORDER BY s."_XO_WINDOW_START") = '
    "w.prev_ws, 0, 1) AS is_start FROM {snapshots} AS s JOIN windows AS w ON w.ws = "
    's."_XO_WINDOW_START"), versions AS (SELECT m.*, SUM(m.is_start) OVER (PARTITION BY m."ID" '
    'ORDER BY m."_XO_WINDOW_START" ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS version '
    'FROM marked AS m) SELECT v."ID", v."STATUS", v."ROW_HASH", MIN(v."_XO_WINDOW_START") OVER '
    '(PARTITION BY v."ID", v.version) AS "VALID_FROM", v.next_ws AS "VALID_TO", v.next_ws IS '
    'NULL AS "IS_CURRENT", v."_XO_RUN_ID", v."_XO_LOADED_AT" FROM versions AS v QUALIFY '
    'ROW_NUMBER() OVER (PARTITION BY v."ID", v.version ORDER BY v."_XO_WINDOW_START" DESC) = 1',
)


def statements(
    bronze: TableRef, silver: TableRef, window_start: str
) -> tuple[list[str], list[str]]:
    """(prepare, body) of the earlier strategy for one window, as it ran them."""
    names = {
        "schema": silver.schema_sql,
        "snapshots": silver.with_name(silver.name + "__SNAPSHOTS").sql,
        "silver": silver.sql,
        "bronze": bronze.sql,
        "window": literal(window_start),
    }
    return [s.format(**names) for s in PREPARE], [s.format(**names) for s in BODY]
