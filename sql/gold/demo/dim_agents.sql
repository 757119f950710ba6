-- Agents with their latest known record (from the SCD2 roster) and how often it changed.
SELECT
    "AGENT_ID",
    MAX_BY("NAME", "VALID_FROM") AS "NAME",
    MAX_BY("TEAM", "VALID_FROM") AS "TEAM",
    MAX_BY("EMAIL", "VALID_FROM") AS "EMAIL",
    BOOLOR_AGG("IS_CURRENT") AS "IS_ACTIVE",
    MIN("VALID_FROM") AS "FIRST_SEEN",
    MAX("VALID_TO") AS "LEFT_AT",
    COUNT(*) AS "VERSIONS"
FROM "SILVER"."AGENTS"
GROUP BY "AGENT_ID"
