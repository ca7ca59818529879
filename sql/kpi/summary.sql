-- kpi.summary: the headline KPIs, one row each, so every one is a simple SELECT away:
--   SELECT value FROM kpi.summary WHERE kpi = 'cost_per_request';
-- `dimension` is `app/feature` for cost_per_feature (feature names repeat across apps; NULL for
-- spend with neither) and NULL for the other KPIs. Ratios cover the last 30 days; spend covers
-- this and the previous calendar week and month (UTC, to date). `value` is numeric for ratios
-- and spend alike: money is summed exactly, and every value is given to 12 decimal places;
-- `unit` says what it counts.
-- The scalar KPIs come from one row of totals unpivoted against the list of names, so a filter
-- on `kpi` selects names and never empties the aggregate's input.
CREATE VIEW kpi.summary AS
WITH totals AS (
    SELECT SUM(CASE WHEN day >= date_trunc('day', now()) - INTERVAL '30 days'
                    THEN requests ELSE 0 END) AS requests_30d,
           SUM(CASE WHEN day >= date_trunc('day', now()) - INTERVAL '30 days'
                    THEN errors ELSE 0 END) AS errors_30d,
           SUM(CASE WHEN day >= date_trunc('day', now()) - INTERVAL '30 days'
                    THEN input_tokens + output_tokens ELSE 0 END) AS tokens_30d,
           SUM(CASE WHEN day >= date_trunc('day', now()) - INTERVAL '30 days'
                    THEN redundant_requests ELSE 0 END) AS redundant_requests_30d,
           SUM(CASE WHEN day >= date_trunc('day', now()) - INTERVAL '30 days'
                    THEN cost END) AS cost_30d,
           SUM(CASE WHEN day >= date_trunc('day', now()) - INTERVAL '30 days'
                    THEN redundant_cost END) AS redundant_cost_30d,
           SUM(CASE WHEN day >= date_trunc('week', now())
                    THEN cost END) AS cost_this_week,
           SUM(CASE WHEN day >= date_trunc('week', now()) - INTERVAL '7 days'
                     AND day < date_trunc('week', now())
                    THEN cost END) AS cost_previous_week,
           SUM(CASE WHEN day >= date_trunc('month', now())
                    THEN cost END) AS cost_this_month,
           SUM(CASE WHEN day >= date_trunc('month', date_trunc('month', now()) - INTERVAL '1 day')
                     AND day < date_trunc('month', now())
                    THEN cost END) AS cost_previous_month
    FROM kpi.daily
),
users AS (
    SELECT SUM(cost) AS user_cost_30d,
           COUNT(DISTINCT user_id) AS users_30d
    FROM finops.usage
    WHERE ts >= date_trunc('day', now()) - INTERVAL '30 days'
      AND user_id IS NOT NULL
),
names AS (
    SELECT * FROM (VALUES
        ('cost_per_request', 'last_30_days', 'USD'),
        ('tokens_per_request', 'last_30_days', 'tokens'),
        ('cost_per_user', 'last_30_days', 'USD'),
        ('redundant_requests_pct', 'last_30_days', '%'),
        ('redundant_cost', 'last_30_days', 'USD'),
        ('error_rate_pct', 'last_30_days', '%'),
        ('weekly_spend', 'this_week', 'USD'),
        ('weekly_spend', 'previous_week', 'USD'),
        ('monthly_spend', 'this_month', 'USD'),
        ('monthly_spend', 'previous_month', 'USD')
    ) AS n (kpi, period, unit)
)
SELECT n.kpi,
       CAST(NULL AS VARCHAR) AS dimension,
       n.period,
       CAST(CASE n.kpi || '/' || n.period
           WHEN 'cost_per_request/last_30_days' THEN t.cost_30d / NULLIF(t.requests_30d, 0)
           WHEN 'tokens_per_request/last_30_days'
               THEN CAST(t.tokens_30d AS DECIMAL(38, 12)) / NULLIF(t.requests_30d, 0)
           WHEN 'cost_per_user/last_30_days' THEN u.user_cost_30d / NULLIF(u.users_30d, 0)
           WHEN 'redundant_requests_pct/last_30_days'
               THEN 100 * CAST(t.redundant_requests_30d AS DECIMAL(38, 12))
                    / NULLIF(t.requests_30d, 0)
           WHEN 'redundant_cost/last_30_days' THEN t.redundant_cost_30d
           WHEN 'error_rate_pct/last_30_days'
               THEN 100 * CAST(t.errors_30d AS DECIMAL(38, 12)) / NULLIF(t.requests_30d, 0)
           WHEN 'weekly_spend/this_week' THEN COALESCE(t.cost_this_week, 0)
           WHEN 'weekly_spend/previous_week' THEN COALESCE(t.cost_previous_week, 0)
           WHEN 'monthly_spend/this_month' THEN COALESCE(t.cost_this_month, 0)
           WHEN 'monthly_spend/previous_month' THEN COALESCE(t.cost_previous_month, 0)
       END AS DECIMAL(38, 12)) AS value,
       n.unit
FROM names n
CROSS JOIN totals t
CROSS JOIN users u
UNION ALL
SELECT 'cost_per_feature',
       NULLIF(concat_ws('/', app, feature), ''),
       'last_30_days',
       SUM(cost),
       'USD'
FROM kpi.daily
WHERE day >= date_trunc('day', now()) - INTERVAL '30 days'
GROUP BY app, feature;
