-- kpi.redundancy: repeated prompts, by team, app, feature and model. A request repeats when
-- the same prompt_hash went to the same model within the previous 24 hours. Savings if cached
-- assume a response cache would have answered every repeat for free; features are ranked by
-- it (rank 1 = the best cache candidate).
CREATE VIEW kpi.redundancy AS
WITH ordered AS (
    SELECT team,
           app,
           feature,
           provider,
           model,
           prompt_hash,
           requests,
           cost,
           ts,
           LAG(ts) OVER (PARTITION BY prompt_hash, model ORDER BY ts) AS previous_ts
    FROM finops.usage
    WHERE prompt_hash IS NOT NULL
),
flagged AS (
    SELECT ordered.*,
           previous_ts IS NOT NULL AND previous_ts >= ts - INTERVAL '24 hours' AS repeated
    FROM ordered
),
grouped AS (
    SELECT team,
           app,
           feature,
           provider,
           model,
           SUM(requests) AS requests,
           SUM(CASE WHEN repeated THEN requests ELSE 0 END) AS repeated_requests,
           COUNT(DISTINCT CASE WHEN repeated THEN prompt_hash END) AS repeated_prompts,
           SUM(cost) AS cost,
           SUM(CASE WHEN repeated THEN cost ELSE CAST(0 AS DECIMAL(38, 12)) END) AS wasted_cost,
           MAX(CASE WHEN repeated THEN ts END) AS last_repeat
    FROM flagged
    GROUP BY team, app, feature, provider, model
)
SELECT team,
       app,
       feature,
       provider,
       model,
       requests,
       repeated_requests,
       100.0 * CAST(repeated_requests AS DOUBLE PRECISION) / NULLIF(requests, 0)
           AS repeated_pct,
       repeated_prompts,
       cost,
       wasted_cost,
       wasted_cost AS savings_if_cached,
       last_repeat,
       RANK() OVER (ORDER BY wasted_cost DESC NULLS LAST) AS cache_candidate_rank
FROM grouped
WHERE repeated_requests > 0;
