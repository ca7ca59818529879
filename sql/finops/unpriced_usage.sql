-- finops.unpriced_usage: usage no price row covers (cost is NULL, never a silent 0), by
-- provider, model and source, so the price book can be fixed: add a row to finops.model_prices
-- and the usage is priced on the next read.
CREATE VIEW finops.unpriced_usage AS
SELECT provider,
       model,
       source,
       COUNT(*) AS events,
       SUM(requests) AS requests,
       SUM(input_tokens) AS input_tokens,
       SUM(output_tokens) AS output_tokens,
       COUNT(DISTINCT team) AS teams,
       MIN(ts) AS first_seen,
       MAX(ts) AS last_seen
FROM finops.usage
WHERE priced IS NOT TRUE
GROUP BY provider, model, source;
