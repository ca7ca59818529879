-- kpi.prompt_efficiency: prompt size and reuse by team, app and feature over the last 28 days:
-- tokens per request, p50/p95 input tokens, output per input, cache-hit ratio, and whether
-- the feature's prompts grew week over week (last 7 days against the 7 before, > 10%).
CREATE VIEW kpi.prompt_efficiency AS
WITH recent AS (
    SELECT team,
           app,
           feature,
           requests,
           input_tokens,
           cached_input_tokens,
           output_tokens,
           ts >= now() - INTERVAL '7 days' AS this_week,
           ts < now() - INTERVAL '7 days' AND ts >= now() - INTERVAL '14 days' AS last_week
    FROM finops.usage
    WHERE ts >= now() - INTERVAL '28 days'
      AND status = 'ok'
),
stats AS (
    SELECT team,
           app,
           feature,
           SUM(requests) AS requests,
           CAST(SUM(input_tokens) AS DOUBLE PRECISION) / NULLIF(SUM(requests), 0)
               AS input_tokens_per_request,
           CAST(SUM(output_tokens) AS DOUBLE PRECISION) / NULLIF(SUM(requests), 0)
               AS output_tokens_per_request,
           CAST(SUM(input_tokens + output_tokens) AS DOUBLE PRECISION) / NULLIF(SUM(requests), 0)
               AS tokens_per_request,
           approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY input_tokens) AS p50_input_tokens,
           approx_percentile_cont(0.95) WITHIN GROUP (ORDER BY input_tokens) AS p95_input_tokens,
           CAST(SUM(output_tokens) AS DOUBLE PRECISION) / NULLIF(SUM(input_tokens), 0)
               AS output_input_ratio,
           CAST(SUM(cached_input_tokens) AS DOUBLE PRECISION) / NULLIF(SUM(input_tokens), 0)
               AS cache_hit_ratio,
           CAST(SUM(CASE WHEN this_week THEN input_tokens ELSE 0 END) AS DOUBLE PRECISION)
               / NULLIF(SUM(CASE WHEN this_week THEN requests ELSE 0 END), 0)
               AS input_tokens_per_request_this_week,
           CAST(SUM(CASE WHEN last_week THEN input_tokens ELSE 0 END) AS DOUBLE PRECISION)
               / NULLIF(SUM(CASE WHEN last_week THEN requests ELSE 0 END), 0)
               AS input_tokens_per_request_last_week
    FROM recent
    GROUP BY team, app, feature
)
SELECT stats.*,
       100.0 * (input_tokens_per_request_this_week - input_tokens_per_request_last_week)
           / NULLIF(input_tokens_per_request_last_week, 0) AS prompt_growth_pct,
       COALESCE(input_tokens_per_request_this_week > 1.1 * input_tokens_per_request_last_week,
                FALSE) AS prompt_grew
FROM stats;
