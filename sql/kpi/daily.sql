-- kpi.daily: the daily rollup every other KPI reads. One row per UTC day, provider, model,
-- team, app and feature. A request is redundant when the same prompt_hash was sent to the same
-- model earlier the same UTC day; the first occurrence is an aggregate (MIN(ts)) joined back,
-- so each day can be recomputed on its own when new rows arrive. The aggregate is the join's
-- left side, so its hash table is built from first occurrences rather than from every row.
CREATE MATERIALIZED VIEW kpi.daily WITH (refresh = 'auto') AS
WITH first_seen AS (
    SELECT date_trunc('day', ts) AS day,
           prompt_hash,
           model,
           MIN(ts) AS first_ts
    FROM finops.usage
    WHERE prompt_hash IS NOT NULL
    GROUP BY date_trunc('day', ts), prompt_hash, model
)
SELECT date_trunc('day', u.ts) AS day,
       u.provider,
       u.model,
       u.team,
       u.app,
       u.feature,
       SUM(u.requests) AS requests,
       SUM(CASE WHEN u.status = 'error' THEN u.requests ELSE 0 END) AS errors,
       SUM(u.input_tokens) AS input_tokens,
       SUM(u.cached_input_tokens) AS cached_input_tokens,
       SUM(u.cache_write_tokens) AS cache_write_tokens,
       SUM(u.output_tokens) AS output_tokens,
       SUM(u.reasoning_tokens) AS reasoning_tokens,
       SUM(u.cost) AS cost,
       SUM(u.list_cost) AS list_cost,
       SUM(CASE WHEN u.ts > f.first_ts THEN u.requests ELSE 0 END) AS redundant_requests,
       SUM(CASE WHEN u.ts > f.first_ts THEN u.cost ELSE CAST(0 AS DECIMAL(38, 12)) END)
           AS redundant_cost,
       SUM(CASE WHEN u.priced THEN 0 ELSE u.requests END) AS unpriced_requests
FROM first_seen f
RIGHT JOIN finops.usage u
       ON f.day = date_trunc('day', u.ts)
      AND f.prompt_hash = u.prompt_hash
      AND f.model = u.model
GROUP BY date_trunc('day', u.ts), u.provider, u.model, u.team, u.app, u.feature;
