//! `AWS_CUR`: AWS Data Exports CUR 2.0 (`COST_AND_USAGE_REPORT`) as CSV, Bedrock lines; a bill.
//!
//! Owns the CUR columns and the reading of Bedrock usage types
//! (`{REGION}-{BillingModel}-{token type}[-tier][-cross-region-global]`, amounts in 1K tokens),
//! rolled up per model, period and attribution. It must not call AWS or run SQL. Model names stay
//! billing names (`Claude3.5Sonnet`): the export carries no model id to map them to.

use serde_json::{Map, Value, json};

use super::canonical::{CanonicalRow, UNKNOWN_MODEL};
use super::native::{Col, Kind, field};
use super::records::Layout;
use super::value::{money, need_time, parse_decimal, scaled_count, stable_id, text};
use super::{FileContext, Format};

/// The `AWS_CUR` format.
pub struct AwsCur;

const NAME: &str = "AWS_CUR";

static COLUMNS: [Col; 44] = [
    field("identity_line_item_id", Kind::Text),
    field("identity_time_interval", Kind::Text),
    field("bill_bill_type", Kind::Text),
    field("bill_billing_entity", Kind::Text),
    field("bill_billing_period_start_date", Kind::Time),
    field("bill_billing_period_end_date", Kind::Time),
    field("bill_invoice_id", Kind::Text),
    field("bill_invoicing_entity", Kind::Text),
    field("bill_payer_account_id", Kind::Text),
    field("bill_payer_account_name", Kind::Text),
    field("line_item_usage_account_id", Kind::Text),
    field("line_item_usage_account_name", Kind::Text),
    field("line_item_line_item_type", Kind::Text),
    field("line_item_usage_start_date", Kind::Time),
    field("line_item_usage_end_date", Kind::Time),
    field("line_item_product_code", Kind::Text),
    field("line_item_usage_type", Kind::Text),
    field("line_item_operation", Kind::Text),
    field("line_item_availability_zone", Kind::Text),
    field("line_item_resource_id", Kind::Text),
    field("line_item_usage_amount", Kind::Float),
    field("line_item_currency_code", Kind::Text),
    field("line_item_unblended_rate", Kind::Money),
    field("line_item_unblended_cost", Kind::Money),
    field("line_item_blended_rate", Kind::Money),
    field("line_item_blended_cost", Kind::Money),
    field("line_item_net_unblended_cost", Kind::Money),
    field("line_item_line_item_description", Kind::Text),
    field("line_item_legal_entity", Kind::Text),
    field("line_item_tax_type", Kind::Text),
    field("line_item_iam_principal", Kind::Text),
    field("pricing_currency", Kind::Text),
    field("pricing_public_on_demand_cost", Kind::Money),
    field("pricing_public_on_demand_rate", Kind::Money),
    field("pricing_term", Kind::Text),
    field("pricing_unit", Kind::Text),
    field("product", Kind::Text),
    field("product_product_family", Kind::Text),
    field("product_region_code", Kind::Text),
    field("product_servicecode", Kind::Text),
    field("product_sku", Kind::Text),
    field("resource_tags", Kind::Text),
    field("cost_category", Kind::Text),
    field("discount", Kind::Text),
];

/// Which canonical token column a usage type feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Input,
    CacheRead,
    CacheWrite,
    Output,
}

/// A Bedrock usage type taken apart.
#[derive(Debug, PartialEq, Eq)]
struct UsageType {
    region: Option<String>,
    model: String,
    token: Option<Token>,
    tier: Option<&'static str>,
    cross_region: bool,
}

fn parse_usage_type(raw: &str) -> UsageType {
    let mut rest = raw;
    let mut region = None;
    if let Some((r, tail)) = rest.split_once('-')
        && (3..=5).contains(&r.len())
        && r.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        region = Some(r.to_string());
        rest = tail;
    }
    const MARKERS: [(&str, Token); 6] = [
        ("-cache-read-input-token-count", Token::CacheRead),
        ("-cache-write-input-token-count", Token::CacheWrite),
        ("-mantle-input-tokens", Token::Input),
        ("-input-tokens", Token::Input),
        ("-mantle-output-tokens", Token::Output),
        ("-output-tokens", Token::Output),
    ];
    let found = MARKERS
        .iter()
        .find_map(|(m, t)| rest.find(m).map(|i| (i, m.len(), *t)));
    let (model, token, suffix) = match found {
        Some((i, len, t)) => (&rest[..i], Some(t), &rest[i + len..]),
        None => (rest, None, ""),
    };
    let tier = ["batch", "flex", "priority", "standard"]
        .into_iter()
        .find(|t| suffix.split('-').any(|w| w == *t));
    UsageType {
        region,
        model: model.to_string(),
        token,
        tier,
        cross_region: suffix.contains("cross-region"),
    }
}

impl Format for AwsCur {
    fn name(&self) -> &'static str {
        NAME
    }

    fn layout(&self) -> Layout {
        Layout::Csv
    }

    fn columns(&self) -> &'static [Col] {
        &COLUMNS
    }

    fn required(&self) -> &'static [&'static str] {
        &[
            "identity_line_item_id",
            "line_item_line_item_type",
            "line_item_usage_start_date",
            "line_item_unblended_cost",
        ]
    }

    fn rolls_up(&self) -> bool {
        true
    }

    fn canonical(&self, r: &Value, _ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        let key = |p: &str| text(r, p);
        let line_type = key("line_item_line_item_type").unwrap_or_default();
        let usage_type = key("line_item_usage_type").map(|u| parse_usage_type(&u));
        let is_usage = matches!(
            line_type.as_str(),
            "Usage" | "DiscountedUsage" | "SavingsPlanCoveredUsage"
        );
        // Usage amounts are in the pricing unit, `1K tokens` for Bedrock token usage types.
        let factor = match key("pricing_unit")
            .map(|u| u.to_ascii_lowercase())
            .as_deref()
        {
            Some("1k tokens") => 1_000,
            Some("1m tokens") => 1_000_000,
            Some("tokens") => 1,
            _ => 0,
        };
        let tokens = match (&usage_type, is_usage && factor > 0) {
            (Some(UsageType { token: Some(t), .. }), true) => {
                let amount = key("line_item_usage_amount").unwrap_or_else(|| "0".into());
                let exact = parse_decimal(&amount, 0)
                    .ok_or_else(|| format!("`line_item_usage_amount`: bad number {amount:?}"))?;
                let n = scaled_count(exact, factor).ok_or("usage amount out of range")?;
                Some((*t, n))
            }
            _ => None,
        };
        let count = |want: &[Token]| match tokens {
            Some((t, n)) if want.contains(&t) => Some(n),
            Some(_) => Some(0),
            None => None,
        };
        let resource_tags = key("resource_tags").unwrap_or_else(|| "{}".into());
        let tag_map: Map<String, Value> = serde_json::from_str(&resource_tags)
            .map_err(|e| format!("`resource_tags` is not a JSON object: {e}"))?;
        let tag = |k: &str| tag_map.get(k).and_then(Value::as_str).map(str::to_string);
        let model = usage_type
            .as_ref()
            .map(|u| u.model.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| UNKNOWN_MODEL.into());
        let tier = usage_type
            .as_ref()
            .and_then(|u| u.token.map(|_| u.tier.unwrap_or("standard")));
        let cross_region = usage_type.as_ref().is_some_and(|u| u.cross_region);
        let region = usage_type.as_ref().and_then(|u| u.region.clone());
        let mut labels = tag_map.clone();
        if line_type != "Usage" {
            labels.insert("line_item_type".into(), json!(line_type));
        }
        if cross_region {
            labels.insert("cross_region".into(), json!("global"));
        }
        Ok(Some(CanonicalRow {
            // The roll-up key: one row per model, period, tier and attribution.
            event_id: stable_id(
                NAME,
                &[
                    Some(line_type.as_str()),
                    key("line_item_usage_account_id").as_deref(),
                    key("line_item_usage_start_date").as_deref(),
                    key("line_item_usage_end_date").as_deref(),
                    Some(model.as_str()),
                    tier,
                    region.as_deref(),
                    Some(if cross_region { "x" } else { "" }),
                    key("line_item_iam_principal").as_deref(),
                    Some(resource_tags.as_str()),
                ],
            ),
            ts: need_time(r, "line_item_usage_start_date")?,
            provider: "aws_bedrock".into(),
            model,
            team: tag("user_team"),
            user_id: key("line_item_iam_principal"),
            project: key("line_item_usage_account_id"),
            environment: tag("user_env"),
            input_tokens: count(&[Token::Input, Token::CacheRead, Token::CacheWrite]),
            cached_input_tokens: count(&[Token::CacheRead]),
            cache_write_tokens: count(&[Token::CacheWrite]),
            output_tokens: count(&[Token::Output]),
            service_tier: tier.map(str::to_string),
            reported_cost: money(r, "line_item_unblended_cost", 0)?,
            tags: (!labels.is_empty()).then(|| Value::Object(labels).to_string()),
            source: NAME.into(),
            line_key: Some(format!(
                "{}|{}",
                key("identity_line_item_id").unwrap_or_default(),
                key("identity_time_interval").unwrap_or_default()
            )),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_types_come_apart() {
        let u =
            parse_usage_type("USE1-Claude4Sonnet-cache-read-input-token-count-cross-region-global");
        assert_eq!(u.region.as_deref(), Some("USE1"));
        assert_eq!(u.model, "Claude4Sonnet");
        assert_eq!(u.token, Some(Token::CacheRead));
        assert!(u.cross_region);
        let u = parse_usage_type("USE1-Llama3.1-70B-output-tokens-batch");
        assert_eq!((u.model.as_str(), u.tier), ("Llama3.1-70B", Some("batch")));
        let u = parse_usage_type("USW2-TitanEmbeddingsV2-Text-input-tokens");
        assert_eq!(u.model, "TitanEmbeddingsV2-Text");
        let u = parse_usage_type("USE1-openai.gpt-oss-120b-mantle-input-tokens-standard");
        assert_eq!(
            (u.model.as_str(), u.tier),
            ("openai.gpt-oss-120b", Some("standard"))
        );
    }
}
