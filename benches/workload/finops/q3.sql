-- q3 asked of finops.usage: repeated prompts the same UTC day per team, and their cost. The first
-- occurrence is an aggregate (MIN(ts)) joined back, not a ROW_NUMBER over every row; it is the
-- join's left side, so the hash table is built from it rather than from every usage row.
WITH first_seen AS (
  SELECT date_trunc('day', ts) AS day, prompt_hash, MIN(ts) AS first_ts
  FROM finops.usage_events
  GROUP BY date_trunc('day', ts), prompt_hash
)
SELECT u.team,
       COUNT(*) AS requests,
       SUM(CASE WHEN u.ts > f.first_ts THEN 1 ELSE 0 END) AS repeated_requests,
       CAST(SUM(CASE WHEN u.ts > f.first_ts THEN 1 ELSE 0 END) AS DOUBLE PRECISION) / COUNT(*)
           AS repeat_share,
       SUM(CASE WHEN u.ts > f.first_ts THEN u.cost ELSE 0 END) AS wasted_cost_usd
FROM first_seen f
RIGHT JOIN finops.usage u ON f.day = date_trunc('day', u.ts) AND f.prompt_hash = u.prompt_hash
GROUP BY u.team
ORDER BY wasted_cost_usd DESC, u.team;
