-- An example of your own schema change: `xoelt migrate` applies it once and records it in
-- DEMO_DB.XOELT.CHANGE_HISTORY (schemachange conventions: V<version>__, R__, A__ files).
CREATE SCHEMA IF NOT EXISTS "DEMO_DB"."REPORTING";
