-- finops.usage: the one view everything reads. Every usage row in the canonical shape of
-- finops.usage_events (the native table and every registered provider table, see
-- finops.usage_all), priced as of its own ts with the price book as it is now, and attributed
-- with finops.attribution_rules.
--   list_cost      token_cost at list price; NULL when no price row covers the model at ts
--   cost           list_cost after finops.price_adjustments (negotiated discounts)
--   priced         whether list_cost could be computed (unpriced rows are never a silent 0)
--   price_version  the finops.model_prices row that priced it (provider/model/match@valid_from)
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
       adjusted_cost(list_cost, provider, model, ts) AS cost,
       list_cost,
       list_cost IS NOT NULL AS priced,
       CASE WHEN list_cost IS NOT NULL THEN price_version(provider, model, ts) END
           AS price_version,
       owner['rule_id'] AS attribution_rule
FROM (
    SELECT u.*,
           token_cost(provider, model,
                      COALESCE(input_tokens, 0), COALESCE(output_tokens, 0),
                      COALESCE(cached_input_tokens, 0), COALESCE(cache_write_tokens, 0),
                      ts, service_tier) AS list_cost,
           attribute_usage(provider, team, app, feature, project, api_key_id, user_id,
                           environment, model, source, tags) AS owner
    FROM finops.usage_all u
) priced_usage;
