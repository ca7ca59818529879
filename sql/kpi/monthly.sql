-- kpi.monthly: spend per calendar month (UTC) and team, with the change against the team's
-- previous calendar month (not the previous month that had spend). With no spend in the previous
-- month, previous_cost and the percent changes are NULL and cost_change is the whole cost.
CREATE VIEW kpi.monthly AS
WITH months AS (
    SELECT date_trunc('month', day) AS month_start,
           team,
           SUM(requests) AS requests,
           SUM(errors) AS errors,
           SUM(input_tokens) AS input_tokens,
           SUM(output_tokens) AS output_tokens,
           SUM(cost) AS cost,
           SUM(list_cost) AS list_cost,
           SUM(redundant_cost) AS redundant_cost
    FROM kpi.daily
    GROUP BY date_trunc('month', day), team
),
previous AS (
    SELECT cur.*,
           prev.cost AS previous_cost,
           prev.requests AS previous_requests
    FROM months cur
    LEFT JOIN months prev
           ON (prev.team IS NOT DISTINCT FROM cur.team)
          AND prev.month_start = cur.month_start - INTERVAL '1 month'
)
SELECT month_start,
       team,
       requests,
       errors,
       input_tokens,
       output_tokens,
       cost,
       list_cost,
       redundant_cost,
       previous_cost,
       cost - COALESCE(previous_cost, CAST(0 AS DECIMAL(38, 12))) AS cost_change,
       100.0 * CAST(cost - previous_cost AS DOUBLE PRECISION)
           / NULLIF(CAST(previous_cost AS DOUBLE PRECISION), 0) AS cost_change_pct,
       100.0 * CAST(requests - previous_requests AS DOUBLE PRECISION)
           / NULLIF(previous_requests, 0) AS requests_change_pct
FROM previous;
