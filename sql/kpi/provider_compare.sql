-- kpi.provider_compare: the last 30 days of priced usage re-priced on a comparable model of
-- every other provider (same model_tier(), one representative model per provider and tier,
-- listed below), by provider, model and alternative. Cache reads and writes keep their token
-- counts on the alternative (a count a row does not report is 0, as finops.usage prices it);
-- negative savings mean the alternative is dearer.
CREATE VIEW kpi.provider_compare AS
WITH peers AS (
    SELECT * FROM (VALUES
        ('openai', 'frontier', 'gpt-4.1-2025-04-14'),
        ('openai', 'mid', 'gpt-4.1-mini-2025-04-14'),
        ('openai', 'small', 'gpt-4.1-nano-2025-04-14'),
        ('anthropic', 'frontier', 'claude-sonnet-4-5-20250929'),
        ('anthropic', 'mid', 'claude-haiku-4-5-20251001'),
        ('aws_bedrock', 'frontier', 'us.anthropic.claude-sonnet-4-20250514-v1:0'),
        ('aws_bedrock', 'mid', 'amazon.nova-pro-v1:0'),
        ('aws_bedrock', 'small', 'amazon.nova-lite-v1:0'),
        ('google_gemini', 'frontier', 'gemini-2.5-pro'),
        ('google_gemini', 'mid', 'gemini-2.5-flash'),
        ('google_gemini', 'small', 'gemini-2.0-flash'),
        ('azure_openai', 'frontier', 'gpt-4o-2024-11-20'),
        ('azure_openai', 'mid', 'gpt-4.1-mini-2025-04-14'),
        ('azure_openai', 'small', 'gpt-4o-mini-2024-07-18')
    ) AS p (provider, tier, model)
),
used AS (
    SELECT provider,
           model,
           model_tier(provider, model) AS tier,
           requests,
           COALESCE(input_tokens, 0) AS input_tokens,
           COALESCE(output_tokens, 0) AS output_tokens,
           COALESCE(cached_input_tokens, 0) AS cached_input_tokens,
           COALESCE(cache_write_tokens, 0) AS cache_write_tokens,
           ts,
           service_tier,
           cost
    FROM finops.usage
    WHERE ts >= now() - INTERVAL '30 days'
      AND priced
),
compared AS (
    SELECT used.provider,
           used.model,
           used.tier,
           peers.provider AS alternative_provider,
           peers.model AS alternative_model,
           used.requests,
           used.cost,
           token_cost(peers.provider, peers.model, used.input_tokens, used.output_tokens,
                      used.cached_input_tokens, used.cache_write_tokens, used.ts,
                      used.service_tier) AS alternative_cost
    FROM used
    JOIN peers ON peers.tier = used.tier AND peers.provider <> used.provider
)
SELECT provider,
       model,
       tier,
       alternative_provider,
       alternative_model,
       SUM(requests) AS requests,
       SUM(cost) AS cost,
       SUM(alternative_cost) AS alternative_cost,
       SUM(cost) - SUM(alternative_cost) AS savings,
       100.0 * CAST(SUM(cost) - SUM(alternative_cost) AS DOUBLE PRECISION)
           / NULLIF(CAST(SUM(cost) AS DOUBLE PRECISION), 0) AS savings_pct
FROM compared
GROUP BY provider, model, tier, alternative_provider, alternative_model;
