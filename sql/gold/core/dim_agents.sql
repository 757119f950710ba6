-- One row per Gladly agent of every client: the BambooHR employee behind the agent id (the
-- custom field customGladlyAgentId), from the latest version in each client's SCD2 roster,
-- and how often that record changed. Read by WBP_DB's and CND_DB's gold (three-part names).
WITH roster AS (
    SELECT
        'warbyparker' AS "CLIENT", "ID", "CUSTOMGLADLYAGENTID", "FIRSTNAME", "LASTNAME",
        "WORKEMAIL", "DEPARTMENT", "JOBTITLE", "HIREDATE", "TERMINATIONDATE", "STATUS",
        "VALID_FROM", "IS_CURRENT"
    FROM "SILVER"."ROSTER_WARBYPARKER"
    UNION ALL
    SELECT
        'condenast' AS "CLIENT", "ID", "CUSTOMGLADLYAGENTID", "FIRSTNAME", "LASTNAME",
        "WORKEMAIL", "DEPARTMENT", "JOBTITLE", "HIREDATE", "TERMINATIONDATE", "STATUS",
        "VALID_FROM", "IS_CURRENT"
    FROM "SILVER"."ROSTER_CONDENAST"
),
latest AS (
    SELECT
        *,
        COUNT(*) OVER (PARTITION BY "CLIENT", "ID") AS "VERSIONS",
        MIN("VALID_FROM") OVER (PARTITION BY "CLIENT", "ID") AS "FIRST_SEEN"
    FROM roster
    QUALIFY ROW_NUMBER() OVER (PARTITION BY "CLIENT", "ID" ORDER BY "VALID_FROM" DESC) = 1
)
SELECT
    "CUSTOMGLADLYAGENTID" AS "AGENT_ID",
    "CLIENT",
    "ID" AS "EMPLOYEE_ID",
    "FIRSTNAME" || ' ' || "LASTNAME" AS "NAME",
    LOWER("WORKEMAIL") AS "EMAIL",
    "DEPARTMENT" AS "TEAM",
    "JOBTITLE" AS "JOB_TITLE",
    "HIREDATE" AS "HIRE_DATE",
    "TERMINATIONDATE" AS "TERMINATION_DATE",
    "IS_CURRENT" AND "STATUS" = 'Active' AS "IS_ACTIVE",
    "FIRST_SEEN",
    "VERSIONS"
FROM latest
WHERE "CUSTOMGLADLYAGENTID" IS NOT NULL
