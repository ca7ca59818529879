-- kpi.weekly: spend per ISO week (Monday, UTC) and team, with the change against the team's
-- previous week. Percent changes are NULL when the previous week had no spend.
CREATE VIEW kpi.weekly AS
WITH weeks AS (
    SELECT date_trunc('week', day) AS week_start,
           team,
           SUM(requests) AS requests,
           SUM(errors) AS errors,
           SUM(input_tokens) AS input_tokens,
           SUM(output_tokens) AS output_tokens,
           SUM(cost) AS cost,
           SUM(list_cost) AS list_cost,
           SUM(redundant_cost) AS redundant_cost
    FROM kpi.daily
    GROUP BY date_trunc('week', day), team
),
trend AS (
    SELECT weeks.*,
           LAG(cost) OVER (PARTITION BY team ORDER BY week_start) AS previous_cost,
           LAG(requests) OVER (PARTITION BY team ORDER BY week_start) AS previous_requests
    FROM weeks
)
SELECT week_start,
       team,
       requests,
       errors,
       input_tokens,
       output_tokens,
       cost,
       list_cost,
       redundant_cost,
       previous_cost,
       cost - previous_cost AS cost_change,
       100.0 * CAST(cost - previous_cost AS DOUBLE PRECISION)
           / NULLIF(CAST(previous_cost AS DOUBLE PRECISION), 0) AS cost_change_pct,
       100.0 * CAST(requests - previous_requests AS DOUBLE PRECISION)
           / NULLIF(previous_requests, 0) AS requests_change_pct
FROM trend;
