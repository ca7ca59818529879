-- q5 asked of finops.usage: simple requests on the 5 most expensive models and the savings on
-- the cheapest current model of the same provider (prices from finops.model_prices).
WITH cur AS (
  SELECT provider, model, input, output, cache_read, input + output AS blended
  FROM finops.model_prices
  WHERE valid_to IS NULL
), top5 AS (
  SELECT provider, model FROM cur ORDER BY blended DESC, provider, model LIMIT 5
), cheapest AS (
  SELECT provider, model AS cheap_model, input AS c_in, output AS c_out, cache_read AS c_cached
  FROM (SELECT provider, model, input, output, cache_read,
               ROW_NUMBER() OVER (PARTITION BY provider ORDER BY blended, model) AS rn
        FROM cur) ranked
  WHERE rn = 1
), simple AS (
  SELECT u.provider, u.model, c.cheap_model, u.cost,
         ((u.input_tokens - u.cached_input_tokens) * c.c_in
          + u.cached_input_tokens * c.c_cached
          + u.output_tokens * c.c_out) / 1000000 AS cheapest_cost
  FROM finops.usage u
  JOIN top5 t ON t.provider = u.provider AND t.model = u.model
  JOIN cheapest c ON c.provider = u.provider
  WHERE u.input_tokens < 500 AND u.output_tokens < 200
)
SELECT provider, model, cheap_model,
       COUNT(*) AS requests,
       SUM(cost) AS actual_cost_usd,
       SUM(cheapest_cost) AS cheapest_cost_usd,
       SUM(cost) - SUM(cheapest_cost) AS savings_usd
FROM simple
GROUP BY provider, model, cheap_model
ORDER BY savings_usd DESC, provider, model;
