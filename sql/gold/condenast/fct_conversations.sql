-- One row per e-mail conversation, from the items of Gladly's conversation export: the inbox
-- the customer wrote to (the export carries no inbox id: the address of the first inbound
-- e-mail), when it started, when an agent first answered by e-mail (and who, with the shared
-- roster's record from CORE_DB), and when it was closed (its latest status change, if CLOSED).
WITH started AS (
    SELECT
        "CONVERSATIONID" AS "CONVERSATION_ID",
        "TIMESTAMP" AS "CREATED_AT",
        LOWER(TRIM("CONTENT_TO", '[]"')) AS "INBOX"
    FROM "SILVER"."CONVERSATIONS"
    WHERE "CONTENT_TYPE" = 'EMAIL' AND "INITIATOR_TYPE" = 'CUSTOMER'
    QUALIFY ROW_NUMBER() OVER (PARTITION BY "CONVERSATIONID" ORDER BY "TIMESTAMP", "ID") = 1
),
answered AS (
    SELECT
        i."CONVERSATIONID" AS "CONVERSATION_ID",
        i."TIMESTAMP" AS "FIRST_RESPONSE_AT",
        i."INITIATOR_ID" AS "AGENT_ID"
    FROM "SILVER"."CONVERSATIONS" AS i
    JOIN started AS s ON s."CONVERSATION_ID" = i."CONVERSATIONID" AND i."TIMESTAMP" > s."CREATED_AT"
    WHERE i."CONTENT_TYPE" = 'EMAIL' AND i."INITIATOR_TYPE" = 'AGENT'
    QUALIFY ROW_NUMBER() OVER (PARTITION BY i."CONVERSATIONID" ORDER BY i."TIMESTAMP", i."ID") = 1
),
status AS (
    SELECT
        "CONVERSATIONID" AS "CONVERSATION_ID",
        IFF("CONTENT_STATUS" = 'CLOSED', "TIMESTAMP", NULL) AS "CLOSED_AT"
    FROM "SILVER"."CONVERSATIONS"
    WHERE "CONTENT_TYPE" = 'CONVERSATION_STATUS_CHANGE'
    QUALIFY ROW_NUMBER() OVER (PARTITION BY "CONVERSATIONID" ORDER BY "TIMESTAMP" DESC, "ID" DESC) = 1
)
SELECT
    s."CONVERSATION_ID",
    s."INBOX",
    s."CREATED_AT",
    r."FIRST_RESPONSE_AT",
    c."CLOSED_AT",
    DATEDIFF('second', s."CREATED_AT", r."FIRST_RESPONSE_AT") AS "FIRST_RESPONSE_SECONDS",
    DATEDIFF('second', s."CREATED_AT", c."CLOSED_AT") AS "RESOLUTION_SECONDS",
    r."AGENT_ID" AS "FIRST_RESPONDER_ID",
    a."NAME" AS "FIRST_RESPONDER_NAME",
    a."TEAM" AS "FIRST_RESPONDER_TEAM"
FROM started AS s
LEFT JOIN answered AS r ON r."CONVERSATION_ID" = s."CONVERSATION_ID"
LEFT JOIN status AS c ON c."CONVERSATION_ID" = s."CONVERSATION_ID"
LEFT JOIN "CORE_DB"."GOLD"."DIM_AGENTS" AS a
    ON a."AGENT_ID" = r."AGENT_ID" AND a."CLIENT" = 'condenast'
