-- Data test results: one row per (run, test) with its outcome (see xoelt.datatests).
-- Migrations run in the session's database (the pipeline's): names are schema-qualified only.
CREATE TABLE IF NOT EXISTS "XOELT"."TEST_RESULTS" (
    "RUN_ID" VARCHAR,
    "PIPELINE" VARCHAR,
    "SOURCE" VARCHAR,
    "WINDOW_START" TIMESTAMP_TZ,
    "WINDOW_END" TIMESTAMP_TZ,
    "TEST_NAME" VARCHAR,
    "TEST_KIND" VARCHAR,
    "TABLE_NAME" VARCHAR,
    "SEVERITY" VARCHAR,
    "STATUS" VARCHAR,
    "FAILING_ROWS" NUMBER(38, 0),
    "EXAMPLE_KEYS" VARCHAR,
    "MESSAGE" VARCHAR,
    "TESTED_AT" TIMESTAMP_TZ
);
