-- finops.focus_export: finops.usage in FOCUS 1.2 columns, to load next to the rest of a
-- company's cloud bill. One row per finops.usage row, not one per token kind: the cost of a row
-- comes from one price lookup over all its token kinds (tiers, cache and batch prices apply to
-- the request as a whole), so splitting it would invent per-kind costs; the kinds are kept in
-- the x_ columns instead.
--   BilledCost, EffectiveCost  cost (after adjustments, or the billed cost for a bill line)
--   ListCost, ContractedCost   list_cost / cost
--   ChargePeriodStart/End      the UTC hour holding ts (FOCUS wants a period, rows carry a time)
--   BillingPeriodStart/End     the UTC month holding ts
--   ConsumedQuantity           input + output tokens (cache reads and writes are part of input)
--   SkuId                      canonical_model(provider, model), the reported id if unknown
--   SkuPriceId                 price_version
--   Tags                       the row's tags (JSON object text)
--   BillingCurrency            'USD': the price book and the bills are in US dollars
CREATE VIEW finops.focus_export AS
SELECT cost AS "BilledCost",
       cost AS "EffectiveCost",
       list_cost AS "ListCost",
       cost AS "ContractedCost",
       'USD' AS "BillingCurrency",
       date_trunc('hour', ts) AS "ChargePeriodStart",
       date_trunc('hour', ts) + INTERVAL '1 hour' AS "ChargePeriodEnd",
       date_trunc('month', ts) AS "BillingPeriodStart",
       date_trunc('month', ts) + INTERVAL '1 month' AS "BillingPeriodEnd",
       'Usage' AS "ChargeCategory",
       'Usage-Based' AS "ChargeFrequency",
       model || ' tokens' AS "ChargeDescription",
       CASE provider
           WHEN 'openai' THEN 'OpenAI'
           WHEN 'anthropic' THEN 'Anthropic'
           WHEN 'aws_bedrock' THEN 'AWS'
           WHEN 'azure_openai' THEN 'Microsoft'
           WHEN 'gcp_vertex' THEN 'Google Cloud'
           WHEN 'google_gemini' THEN 'Google'
           ELSE provider END AS "ProviderName",
       CASE
           WHEN model LIKE '%claude%' THEN 'Anthropic'
           WHEN model LIKE '%gemini%' OR model LIKE '%gemma%' THEN 'Google'
           WHEN model LIKE '%llama%' THEN 'Meta'
           WHEN model LIKE '%mistral%' OR model LIKE '%mixtral%' THEN 'Mistral AI'
           WHEN model LIKE '%titan%' OR model LIKE '%nova%' THEN 'Amazon'
           WHEN model LIKE 'gpt%' OR model LIKE '%.gpt%' OR model LIKE 'o1%' OR model LIKE 'o3%'
                OR model LIKE 'o4%' OR model LIKE 'text-embedding%' OR model LIKE 'dall-e%'
               THEN 'OpenAI'
           ELSE NULL END AS "PublisherName",
       CASE provider
           WHEN 'openai' THEN 'OpenAI API'
           WHEN 'anthropic' THEN 'Claude API'
           WHEN 'aws_bedrock' THEN 'Amazon Bedrock'
           WHEN 'azure_openai' THEN 'Azure OpenAI'
           WHEN 'gcp_vertex' THEN 'Vertex AI'
           WHEN 'google_gemini' THEN 'Gemini API'
           ELSE provider END AS "ServiceName",
       'AI and Machine Learning' AS "ServiceCategory",
       'Generative AI' AS "ServiceSubcategory",
       COALESCE(canonical_model(provider, model), model) AS "SkuId",
       price_version AS "SkuPriceId",
       CASE WHEN service_tier = 'batch' THEN 'Other' ELSE 'Standard' END AS "PricingCategory",
       COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0) AS "ConsumedQuantity",
       'Tokens' AS "ConsumedUnit",
       project AS "SubAccountId",
       api_key_id AS "ResourceId",
       tags AS "Tags",
       event_id AS "x_EventId",
       provider AS "x_Provider",
       model AS "x_Model",
       input_tokens AS "x_InputTokens",
       cached_input_tokens AS "x_CachedInputTokens",
       cache_write_tokens AS "x_CacheWriteTokens",
       output_tokens AS "x_OutputTokens",
       reasoning_tokens AS "x_ReasoningTokens",
       requests AS "x_Requests",
       service_tier AS "x_ServiceTier",
       team AS "x_Team",
       app AS "x_App",
       feature AS "x_Feature",
       price_version AS "x_PriceVersion",
       cost_source AS "x_CostSource",
       priced AS "x_Priced",
       source AS "x_Source"
FROM finops.usage;
