"""The test fixture's in-place rewrite of fakesnow's statements changes nothing.

``snowflake_fixtures._transform_in_place`` runs fakesnow's chain of sqlglot rewrites on one
copy of each statement instead of one copy per step (a speed-up of the Snowflake tests).
Here, with the audit on, fakesnow's own chain runs beside it on statements of every kind
the warehouse adapter sends, and any difference in the rewritten tree fails. (The whole
suite can run so: ``XOELT_TEST_FAKESNOW_AUDIT=1 make pytest``.)
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.snowflake_fixtures import AUDIT, fakesnow_kwargs

__all__ = ["fakesnow_kwargs"]

DB = "AUDIT_DB"
STATEMENTS = [
    f'CREATE DATABASE IF NOT EXISTS "{DB}"',
    f'CREATE SCHEMA IF NOT EXISTS "{DB}"."BRONZE"',
    f'CREATE SCHEMA IF NOT EXISTS "{DB}"."SILVER"',
    f'CREATE STAGE IF NOT EXISTS "{DB}"."BRONZE"."XO_STAGE" URL = \'s3://xoelt-stage/\'',
    f'CREATE TABLE IF NOT EXISTS "{DB}"."BRONZE"."T" ("ID" VARCHAR, "AMOUNT" VARCHAR, '
    '"_XO_LOADED_AT" TIMESTAMP_TZ, "_XO_ROW_NUMBER" NUMBER(38, 0))',
    f'CREATE TABLE IF NOT EXISTS "{DB}"."SILVER"."T" ("ID" VARCHAR, "AMOUNT" NUMBER(38, 4))',
    "BEGIN",
    f'TRUNCATE TABLE "{DB}"."BRONZE"."T"',
    f'INSERT INTO "{DB}"."BRONZE"."T" ("ID", "AMOUNT", "_XO_LOADED_AT", "_XO_ROW_NUMBER") '
    "SELECT column1, column2, CURRENT_TIMESTAMP(), 1 FROM VALUES ('a', '1.5'), ('b', 'x')",
    "COMMIT",  # (fakesnow cannot MERGE inside a transaction: its MERGE writes _fs_global)
    f'MERGE INTO "{DB}"."SILVER"."T" AS t USING (SELECT "ID", TRY_CAST("AMOUNT" AS NUMBER(38, 4)) '
    f'AS "AMOUNT" FROM "{DB}"."BRONZE"."T" QUALIFY ROW_NUMBER() OVER (PARTITION BY "ID" '
    'ORDER BY "_XO_ROW_NUMBER" DESC) = 1) AS s ON t."ID" = s."ID" '
    'WHEN MATCHED THEN UPDATE SET t."AMOUNT" = s."AMOUNT" '
    'WHEN NOT MATCHED THEN INSERT ("ID", "AMOUNT") VALUES (s."ID", s."AMOUNT")',
    f'ALTER TABLE "{DB}"."SILVER"."T" ADD COLUMN "NOTE" VARCHAR',
    f'UPDATE "{DB}"."SILVER"."T" SET "NOTE" = IFF("AMOUNT" IS NULL, \'bad\', NULL)',
    f'DELETE FROM "{DB}"."SILVER"."T" WHERE "ID" = %s',
    f'CREATE OR REPLACE TABLE "{DB}"."SILVER"."G" AS SELECT "ID", COUNT(*) AS "N" '
    f'FROM "{DB}"."SILVER"."T" GROUP BY "ID"',
    "SELECT column_name, data_type FROM information_schema.columns "
    f"WHERE table_catalog = '{DB}' AND table_schema = 'SILVER' AND table_name = 'T' "
    "ORDER BY ordinal_position",
    f'SELECT COUNT(*) FROM "{DB}"."SILVER"."T"',
]


@pytest.mark.slow
def test_in_place_rewrite_equals_fakesnows_own(
    fakesnow_kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import snowflake.connector

    monkeypatch.setattr(AUDIT, "on", True)
    monkeypatch.setattr(AUDIT, "differences", [])
    con = snowflake.connector.connect(**fakesnow_kwargs)
    failed: list[str] = []
    rows: list[Any] = []
    try:
        with con.cursor() as cur:
            for sql in STATEMENTS:
                try:
                    cur.execute(sql, ("a",) if "%s" in sql else None)
                except snowflake.connector.errors.Error as exc:
                    failed.append(f"{sql[:60]}: {exc}")
                    break
            if not failed:
                cur.execute(f'SELECT "ID", "AMOUNT", "NOTE" FROM "{DB}"."SILVER"."T"')
                rows = cur.fetchall()
    finally:
        con.close()
    assert AUDIT.differences == []
    assert failed == []
    assert rows == [("b", None, "bad")]  # 'a' deleted; 'x' is not a number
