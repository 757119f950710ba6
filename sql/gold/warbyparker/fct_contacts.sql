-- One row per contact: when it was created, picked up and ended, by whom (with the agent's
-- employee record from the shared roster, CORE_DB), and how long it took.
WITH contacts AS (
    SELECT
        "CONTACT_ID",
        MAX("CONVERSATION_ID") AS "CONVERSATION_ID",
        MAX("CUSTOMER_ID") AS "CUSTOMER_ID",
        MAX("CHANNEL") AS "CHANNEL",
        MAX("DIRECTION") AS "DIRECTION",
        MAX("INBOX_NAME") AS "INBOX_NAME",
        MAX(IFF("EVENT_TYPE" = 'CONTACT_ASSIGNED', "AGENT_ID", NULL)) AS "AGENT_ID",
        MAX(IFF("EVENT_TYPE" = 'CONTACT_ASSIGNED', "AGENT_NAME", NULL)) AS "AGENT_NAME",
        MIN(IFF("EVENT_TYPE" = 'CONTACT_CREATED', "TIMESTAMP", NULL)) AS "CREATED_AT",
        MIN(IFF("EVENT_TYPE" = 'CONTACT_ASSIGNED', "TIMESTAMP", NULL)) AS "ASSIGNED_AT",
        MAX(IFF("EVENT_TYPE" = 'CONTACT_ENDED', "TIMESTAMP", NULL)) AS "ENDED_AT",
        MIN("_XO_WINDOW_START") AS "WINDOW_START"
    FROM "SILVER"."CONTACT_TIMESTAMPS"
    GROUP BY "CONTACT_ID"
)
SELECT
    c."CONTACT_ID",
    c."CONVERSATION_ID",
    c."CUSTOMER_ID",
    c."CHANNEL",
    c."DIRECTION",
    c."INBOX_NAME",
    c."AGENT_ID",
    c."AGENT_NAME",
    a."EMPLOYEE_ID",
    a."TEAM",
    c."CREATED_AT",
    c."ASSIGNED_AT",
    c."ENDED_AT",
    DATEDIFF('second', c."CREATED_AT", c."ASSIGNED_AT") AS "WAIT_SECONDS",
    DATEDIFF('second', c."ASSIGNED_AT", c."ENDED_AT") AS "HANDLE_SECONDS",
    c."WINDOW_START"
FROM contacts AS c
LEFT JOIN "CORE_DB"."GOLD"."DIM_AGENTS" AS a
    ON a."AGENT_ID" = c."AGENT_ID" AND a."CLIENT" = 'warbyparker'
