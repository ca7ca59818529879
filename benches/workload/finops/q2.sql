-- q2 asked of finops.usage: month-to-date spend per team vs budgets with a linear projection.
WITH mtd AS (
  SELECT team, SUM(cost) AS spend
  FROM finops.usage
  WHERE ts >= TIMESTAMP '2025-06-01 00:00:00' AND ts < TIMESTAMP '2025-06-15 00:00:00'
  GROUP BY team
)
SELECT b.team,
       b.monthly_limit_usd,
       COALESCE(CAST(m.spend AS DOUBLE PRECISION), 0) AS mtd_spend_usd,
       100.0 * COALESCE(CAST(m.spend AS DOUBLE PRECISION), 0) / b.monthly_limit_usd AS pct_used,
       COALESCE(CAST(m.spend AS DOUBLE PRECISION), 0) * 30.0 / 14.0 AS projected_month_usd,
       100.0 * COALESCE(CAST(m.spend AS DOUBLE PRECISION), 0) * 30.0 / 14.0 / b.monthly_limit_usd
           AS projected_pct
FROM bench_budgets b
LEFT JOIN mtd m ON m.team = b.team
ORDER BY projected_pct DESC, b.team;
