-- q4 asked of finops.usage: top 20 features by cost per request, with tokens per request.
SELECT feature,
       COUNT(*) AS requests,
       SUM(cost) AS cost_usd,
       SUM(cost) / COUNT(*) AS cost_per_request,
       CAST(SUM(input_tokens + output_tokens) AS DOUBLE PRECISION) / COUNT(*) AS tokens_per_request
FROM finops.usage
GROUP BY feature
ORDER BY cost_per_request DESC, feature
LIMIT 20;
