-- The run ledger: one row per (run, source, stage) with its outcome.
-- Migrations run in the session's database (the pipeline's): names are schema-qualified only.
CREATE TABLE IF NOT EXISTS "XOELT"."RUN_LEDGER" (
    "RUN_ID" VARCHAR,
    "PIPELINE" VARCHAR,
    "SOURCE" VARCHAR,
    "STAGE" VARCHAR,
    "WINDOW_START" TIMESTAMP_TZ,
    "WINDOW_END" TIMESTAMP_TZ,
    "STATUS" VARCHAR,
    "ROWS" NUMBER(38, 0),
    "MESSAGE" VARCHAR,
    "DETAILS" VARCHAR,
    "RUN_BY" VARCHAR,
    "STARTED_AT" TIMESTAMP_TZ,
    "FINISHED_AT" TIMESTAMP_TZ
);
