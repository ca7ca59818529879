-- finops.usage: the one view everything reads. Every usage row in the canonical shape of
-- finops.usage_events (the native table, every registered usage provider table and the bills
-- marked OPTIONS ('source_of_truth' 'true'), see finops.usage_all), priced as of its own ts with
-- the price book as it is now, and attributed with finops.attribution_rules.
--   list_cost      token_cost at list price; NULL when no price row covers the model at ts.
--                  For a bill line (cost_source = 'bill') the billed reported_cost
--   cost           list_cost after finops.price_adjustments (negotiated discounts); for a bill
--                  line the billed reported_cost (a bill is already net of discounts)
--   cost_source    'bill' when cost is the reported cost of a bill that is the source of truth
--                  (its source is a bill format and it reports a cost), else 'price_book'
--                  The long-context tier goes by the input of one request: for a provider's
--                  usage bucket, the context window it reports or its average request
--   priced         whether list_cost could be computed (unpriced rows are never a silent 0;
--                  a row with neither input nor output tokens says nothing of its usage and is
--                  unpriced; one of them missing counts as 0, as on a bill line of one kind)
--   price_version  the finops.model_prices row that priced it (provider/model/match@valid_from),
--                  or 'bill:<FORMAT>' for a bill line
--   team/app/feature  the row's own values, else those of the first matching attribution rule
--   attribution_rule  the rule that filled them, if any
CREATE VIEW finops.usage AS
SELECT event_id,
       ts,
       provider,
       model,
       owner['team'] AS team,
       owner['app'] AS app,
       owner['feature'] AS feature,
       user_id,
       api_key_id,
       project,
       environment,
       input_tokens,
       cached_input_tokens,
       cache_write_tokens,
       output_tokens,
       reasoning_tokens,
       requests,
       service_tier,
       latency_ms,
       status,
       prompt_hash,
       reported_cost,
       tags,
       source,
       CASE WHEN billed THEN reported_cost
            ELSE adjusted_cost(list_cost, provider, model, ts) END AS cost,
       list_cost,
       list_cost IS NOT NULL AS priced,
       CASE WHEN billed THEN 'bill:' || source
            WHEN list_cost IS NOT NULL THEN price_version(provider, model, ts) END
           AS price_version,
       owner['rule_id'] AS attribution_rule,
       CASE WHEN billed THEN 'bill' ELSE 'price_book' END AS cost_source
FROM (
    SELECT u.*,
           CASE WHEN billed THEN reported_cost
                ELSE token_cost(provider, model,
                      COALESCE(input_tokens, output_tokens * 0),
                      COALESCE(output_tokens, input_tokens * 0),
                      COALESCE(cached_input_tokens, 0),
                      COALESCE(cache_write_tokens, 0) - cache_write_1h,
                      ts, service_tier, cache_write_1h, context_tokens) END AS list_cost,
           attribute_usage(provider, team, app, feature, project, api_key_id, user_id,
                           environment, model, source, tags) AS owner
    FROM (
        SELECT *,
               -- 1-hour cache writes (Anthropic), part of cache_write_tokens: the loaders keep
               -- their count in tags, and they are priced at cache_write_1h.
               CASE WHEN cache_write_tokens > 0 AND tags LIKE '%"cache_write_1h_tokens"%'
                    THEN COALESCE(CAST(tag_value(tags, 'cache_write_1h_tokens') AS BIGINT), 0)
                    ELSE 0 END AS cache_write_1h,
               -- The input of one request, which picks the long-context tier: a row that
               -- sums many requests (a provider's usage bucket) is not one long request.
               -- Anthropic's buckets say which context window their requests had; a bucket
               -- of Anthropic's usage report that does not (the report counts no requests)
               -- is standard context; else the average request of a row that counts its
               -- requests; a single request is its own input (NULL).
               -- (tags IS NOT NULL first: most rows have none, and it costs nothing.)
               CASE WHEN tags IS NOT NULL
                         AND lower(tag_value(tags, 'context_window')) = '0-200k' THEN 0
                    WHEN tags IS NOT NULL
                         AND lower(tag_value(tags, 'context_window')) = '200k-1m'
                        THEN 9223372036854775807
                    WHEN source = 'ANTHROPIC_USAGE' THEN 0
                    WHEN requests > 1 THEN input_tokens / requests
               END AS context_tokens,
               reported_cost IS NOT NULL
                   AND source IN ('OPENAI_COSTS', 'ANTHROPIC_COSTS', 'AWS_CUR', 'GCP_BILLING',
                                  'AZURE_COSTS', 'FOCUS') AS billed
        FROM finops.usage_all
    ) u
) priced_usage;
