-- q1 asked of finops.usage: daily cost by team for the last 30 days (costs from the price book).
SELECT team, CAST(ts AS DATE) AS day, COUNT(*) AS requests, SUM(cost) AS cost_usd
FROM finops.usage
WHERE ts >= TIMESTAMP '2025-05-16 00:00:00' AND ts < TIMESTAMP '2025-06-15 00:00:00'
GROUP BY team, CAST(ts AS DATE)
ORDER BY day, team;
