-- kpi.anomalies: days where spend by team, app or model leaves its trailing band: more than 3
-- sample standard deviations above the mean of the 7 previous days with spend (the day itself
-- excluded; a full 7-day history is required). `jump` is the spend above the trailing mean.
CREATE VIEW kpi.anomalies AS
WITH spend AS (
    SELECT 'team' AS dimension, team AS key, day, CAST(SUM(cost) AS DOUBLE PRECISION) AS cost
    FROM kpi.daily
    WHERE team IS NOT NULL
    GROUP BY team, day
    UNION ALL
    SELECT 'app', app, day, CAST(SUM(cost) AS DOUBLE PRECISION)
    FROM kpi.daily
    WHERE app IS NOT NULL
    GROUP BY app, day
    UNION ALL
    SELECT 'model', model, day, CAST(SUM(cost) AS DOUBLE PRECISION)
    FROM kpi.daily
    GROUP BY model, day
),
banded AS (
    SELECT dimension,
           key,
           day,
           cost,
           AVG(cost) OVER w AS trailing_mean,
           STDDEV_SAMP(cost) OVER w AS trailing_stddev,
           COUNT(cost) OVER w AS trailing_days
    FROM spend
    WINDOW w AS (PARTITION BY dimension, key ORDER BY day ROWS BETWEEN 7 PRECEDING AND 1 PRECEDING)
)
SELECT dimension,
       key,
       day,
       cost,
       trailing_mean,
       trailing_stddev,
       trailing_mean + 3 * trailing_stddev AS upper_band,
       (cost - trailing_mean) / NULLIF(trailing_stddev, 0) AS z_score,
       cost - trailing_mean AS jump,
       100.0 * (cost - trailing_mean) / NULLIF(trailing_mean, 0) AS jump_pct
FROM banded
WHERE trailing_days = 7
  AND cost > trailing_mean + 3 * trailing_stddev;
