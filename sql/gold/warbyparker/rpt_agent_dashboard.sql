-- The dashboard: every Warby Parker agent of the shared roster (CORE_DB) over every loaded
-- day: contacts and work hours (Gladly), social messages sent (Sprout, matched on the
-- roster's work e-mail), ranked by contacts handled. Agents with no contacts show zeros.
WITH daily AS (
    SELECT
        "AGENT_ID",
        COUNT(*) AS "DAYS_ACTIVE",
        MIN("DAY") AS "FIRST_DAY",
        MAX("DAY") AS "LAST_DAY",
        SUM("CONTACTS") AS "CONTACTS",
        ROUND(SUM("CONTACTS" * "AVG_HANDLE_SECONDS") / NULLIF(SUM("CONTACTS"), 0), 1) AS "AVG_HANDLE_SECONDS",
        ROUND(SUM("WORK_SECONDS") / 3600.0, 2) AS "WORK_HOURS"
    FROM "GOLD"."AGG_AGENT_DAILY"
    GROUP BY "AGENT_ID"
),
social AS (
    SELECT LOWER("INTERNAL_SENT_BY_EMAIL") AS "EMAIL", COUNT(*) AS "SOCIAL_MESSAGES"
    FROM "SILVER"."MESSAGES"
    WHERE "INTERNAL_SENT_BY_EMAIL" IS NOT NULL
    GROUP BY LOWER("INTERNAL_SENT_BY_EMAIL")
)
SELECT
    a."AGENT_ID",
    a."NAME" AS "AGENT_NAME",
    a."TEAM",
    a."EMPLOYEE_ID",
    a."HIRE_DATE",
    a."IS_ACTIVE",
    COALESCE(d."DAYS_ACTIVE", 0) AS "DAYS_ACTIVE",
    d."FIRST_DAY",
    d."LAST_DAY",
    COALESCE(d."CONTACTS", 0) AS "CONTACTS",
    d."AVG_HANDLE_SECONDS",
    COALESCE(d."WORK_HOURS", 0) AS "WORK_HOURS",
    COALESCE(s."SOCIAL_MESSAGES", 0) AS "SOCIAL_MESSAGES",
    RANK() OVER (ORDER BY COALESCE(d."CONTACTS", 0) DESC, a."AGENT_ID") AS "CONTACTS_RANK"
FROM "CORE_DB"."GOLD"."DIM_AGENTS" AS a
LEFT JOIN daily AS d ON d."AGENT_ID" = a."AGENT_ID"
LEFT JOIN social AS s ON s."EMAIL" = a."EMAIL"
WHERE a."CLIENT" = 'warbyparker'
