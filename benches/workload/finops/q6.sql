-- q6 asked of finops.usage: days where a team's spend leaves its trailing 7-day band by 3 sigma.
WITH daily AS (
  SELECT team, CAST(ts AS DATE) AS day, CAST(SUM(cost) AS DOUBLE PRECISION) AS spend
  FROM finops.usage
  GROUP BY team, CAST(ts AS DATE)
), w AS (
  SELECT team, day, spend,
         AVG(spend) OVER (PARTITION BY team ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) AS mean7,
         STDDEV_SAMP(spend) OVER (PARTITION BY team ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) AS sd7,
         COUNT(*) OVER (PARTITION BY team ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING) AS n7
  FROM daily
)
SELECT team, day, spend, mean7, sd7, (spend - mean7) / sd7 AS z_score
FROM w
WHERE n7 = 7 AND spend > mean7 + 3 * sd7
ORDER BY day, team;
