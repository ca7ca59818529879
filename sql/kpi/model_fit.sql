-- kpi.model_fit: simple tasks on expensive models. A request is simple when it succeeded with
-- at most 1,000 input and 100 output tokens; expensive when model_tier() says frontier. Each
-- group shows what the same tokens would have cost on cheaper_alternative(), the cheapest
-- model one tier down from the same provider, and the savings. Cache token counts a row does not
-- report are 0, as finops.usage prices them.
CREATE VIEW kpi.model_fit AS
WITH simple AS (
    SELECT team,
           app,
           feature,
           provider,
           model,
           cheaper_alternative(provider, model) AS alternative,
           requests,
           input_tokens,
           output_tokens,
           COALESCE(cached_input_tokens, 0) AS cached_input_tokens,
           COALESCE(cache_write_tokens, 0) AS cache_write_tokens,
           ts,
           service_tier,
           cost
    FROM finops.usage
    WHERE status = 'ok'
      AND input_tokens <= 1000
      AND output_tokens <= 100
      AND model_tier(provider, model) = 'frontier'
),
costed AS (
    SELECT simple.*,
           token_cost(provider, alternative, input_tokens, output_tokens, cached_input_tokens,
                      cache_write_tokens, ts, service_tier) AS alternative_cost
    FROM simple
)
SELECT team,
       app,
       feature,
       provider,
       model,
       alternative,
       SUM(requests) AS requests,
       AVG(CAST(input_tokens AS DOUBLE PRECISION)) AS avg_input_tokens,
       AVG(CAST(output_tokens AS DOUBLE PRECISION)) AS avg_output_tokens,
       SUM(cost) AS cost,
       SUM(alternative_cost) AS alternative_cost,
       SUM(cost) - SUM(alternative_cost) AS savings,
       MIN(ts) AS first_seen,
       MAX(ts) AS last_seen
FROM costed
GROUP BY team, app, feature, provider, model, alternative;
