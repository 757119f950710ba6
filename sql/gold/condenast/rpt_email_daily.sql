-- E-mail conversations per local (New York) day and inbox: how many were created and how many
-- closed that day; the median first-response time of those created that day and the median
-- resolution time (creation to close) of those closed that day, in seconds.
WITH created AS (
    SELECT
        CAST(CONVERT_TIMEZONE('America/New_York', "CREATED_AT") AS DATE) AS "DAY",
        "INBOX",
        COUNT(*) AS "CREATED",
        MEDIAN("FIRST_RESPONSE_SECONDS") AS "MEDIAN_FIRST_RESPONSE_SECONDS"
    FROM "GOLD"."FCT_CONVERSATIONS"
    GROUP BY CAST(CONVERT_TIMEZONE('America/New_York', "CREATED_AT") AS DATE), "INBOX"
),
closed AS (
    SELECT
        CAST(CONVERT_TIMEZONE('America/New_York', "CLOSED_AT") AS DATE) AS "DAY",
        "INBOX",
        COUNT(*) AS "CLOSED",
        MEDIAN("RESOLUTION_SECONDS") AS "MEDIAN_RESOLUTION_SECONDS"
    FROM "GOLD"."FCT_CONVERSATIONS"
    WHERE "CLOSED_AT" IS NOT NULL
    GROUP BY CAST(CONVERT_TIMEZONE('America/New_York', "CLOSED_AT") AS DATE), "INBOX"
)
SELECT
    COALESCE(c."DAY", x."DAY") AS "DAY",
    COALESCE(c."INBOX", x."INBOX") AS "INBOX",
    COALESCE(c."CREATED", 0) AS "CREATED",
    COALESCE(x."CLOSED", 0) AS "CLOSED",
    c."MEDIAN_FIRST_RESPONSE_SECONDS",
    x."MEDIAN_RESOLUTION_SECONDS"
FROM created AS c
FULL OUTER JOIN closed AS x ON x."DAY" = c."DAY" AND x."INBOX" = c."INBOX"
