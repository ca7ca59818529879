-- finops.unowned_spend: spend with no team after attribution rules, by provider, project and
-- API key (what an attribution rule would match on), largest first.
CREATE VIEW finops.unowned_spend AS
SELECT provider,
       project,
       api_key_id,
       COUNT(DISTINCT app) AS apps,
       SUM(requests) AS requests,
       SUM(cost) AS cost,
       SUM(list_cost) AS list_cost,
       SUM(CASE WHEN priced IS NOT TRUE THEN requests ELSE 0 END) AS unpriced_requests,
       MIN(ts) AS first_seen,
       MAX(ts) AS last_seen
FROM finops.usage
WHERE team IS NULL OR team = ''
GROUP BY provider, project, api_key_id;
