//! `FOCUS`: FinOps FOCUS 1.2 cost-and-usage datasets as CSV (1.3 `ServiceProviderName` accepted),
//! AI rows with `ConsumedUnit = Tokens` and the `x_ModelId` / `x_TokenType` custom columns; a bill.
//!
//! Owns the FOCUS columns and how a token row becomes canonical: `ConsumedQuantity` tokens by
//! `x_TokenType`, `EffectiveCost` (amortized) as the reported cost, rolled up per model, charge
//! period and attribution. It must not run SQL.

use serde_json::{Map, Value, json};

use super::canonical::{CanonicalRow, UNKNOWN_MODEL};
use super::native::{Col, Kind, col};
use super::records::Layout;
use super::value::{money, need_time, parse_decimal, scaled_count, stable_id, text};
use super::{FileContext, Format};

/// The `FOCUS` format.
pub struct Focus;

const NAME: &str = "FOCUS";

static COLUMNS: [Col; 62] = [
    col("availability_zone", "availabilityzone", Kind::Text),
    col("billed_cost", "billedcost", Kind::Money),
    col("billing_account_id", "billingaccountid", Kind::Text),
    col("billing_account_name", "billingaccountname", Kind::Text),
    col("billing_account_type", "billingaccounttype", Kind::Text),
    col("billing_currency", "billingcurrency", Kind::Text),
    col("billing_period_end", "billingperiodend", Kind::Time),
    col("billing_period_start", "billingperiodstart", Kind::Time),
    col(
        "capacity_reservation_id",
        "capacityreservationid",
        Kind::Text,
    ),
    col(
        "capacity_reservation_status",
        "capacityreservationstatus",
        Kind::Text,
    ),
    col("charge_category", "chargecategory", Kind::Text),
    col("charge_class", "chargeclass", Kind::Text),
    col("charge_description", "chargedescription", Kind::Text),
    col("charge_frequency", "chargefrequency", Kind::Text),
    col("charge_period_end", "chargeperiodend", Kind::Time),
    col("charge_period_start", "chargeperiodstart", Kind::Time),
    col(
        "commitment_discount_category",
        "commitmentdiscountcategory",
        Kind::Text,
    ),
    col("commitment_discount_id", "commitmentdiscountid", Kind::Text),
    col(
        "commitment_discount_name",
        "commitmentdiscountname",
        Kind::Text,
    ),
    col(
        "commitment_discount_quantity",
        "commitmentdiscountquantity",
        Kind::Float,
    ),
    col(
        "commitment_discount_status",
        "commitmentdiscountstatus",
        Kind::Text,
    ),
    col(
        "commitment_discount_type",
        "commitmentdiscounttype",
        Kind::Text,
    ),
    col(
        "commitment_discount_unit",
        "commitmentdiscountunit",
        Kind::Text,
    ),
    col("consumed_quantity", "consumedquantity", Kind::Float),
    col("consumed_unit", "consumedunit", Kind::Text),
    col("contracted_cost", "contractedcost", Kind::Money),
    col("contracted_unit_price", "contractedunitprice", Kind::Money),
    col("effective_cost", "effectivecost", Kind::Money),
    col("invoice_id", "invoiceid", Kind::Text),
    col("invoice_issuer_name", "invoiceissuername", Kind::Text),
    col("list_cost", "listcost", Kind::Money),
    col("list_unit_price", "listunitprice", Kind::Money),
    col("pricing_category", "pricingcategory", Kind::Text),
    col("pricing_currency", "pricingcurrency", Kind::Text),
    col(
        "pricing_currency_contracted_unit_price",
        "pricingcurrencycontractedunitprice",
        Kind::Money,
    ),
    col(
        "pricing_currency_effective_cost",
        "pricingcurrencyeffectivecost",
        Kind::Money,
    ),
    col(
        "pricing_currency_list_unit_price",
        "pricingcurrencylistunitprice",
        Kind::Money,
    ),
    col("pricing_quantity", "pricingquantity", Kind::Float),
    col("pricing_unit", "pricingunit", Kind::Text),
    col("provider_name", "providername", Kind::Text),
    col("publisher_name", "publishername", Kind::Text),
    col("region_id", "regionid", Kind::Text),
    col("region_name", "regionname", Kind::Text),
    col("resource_id", "resourceid", Kind::Text),
    col("resource_name", "resourcename", Kind::Text),
    col("resource_type", "resourcetype", Kind::Text),
    col("service_category", "servicecategory", Kind::Text),
    col("service_name", "servicename", Kind::Text),
    col("service_subcategory", "servicesubcategory", Kind::Text),
    col("sku_id", "skuid", Kind::Text),
    col("sku_meter", "skumeter", Kind::Text),
    col("sku_price_details", "skupricedetails", Kind::Text),
    col("sku_price_id", "skupriceid", Kind::Text),
    col("sub_account_id", "subaccountid", Kind::Text),
    col("sub_account_name", "subaccountname", Kind::Text),
    col("sub_account_type", "subaccounttype", Kind::Text),
    col("tags", "tags", Kind::Text),
    col("x_model_id", "x_modelid", Kind::Text),
    col("x_token_type", "x_tokentype", Kind::Text),
    col("x_source_format", "x_sourceformat", Kind::Text),
    col("service_provider_name", "serviceprovidername", Kind::Text),
    col("host_provider_name", "hostprovidername", Kind::Text),
];

/// Which canonical token column a row feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Input,
    Cached,
    CacheWrite,
    Output,
}

fn token_type(raw: &str) -> Option<Token> {
    let t = raw.to_ascii_lowercase().replace([' ', '-'], "_");
    Some(match t.as_str() {
        "input" | "input_tokens" | "uncached_input" => Token::Input,
        "cached_input" | "cache_read" | "cached_input_tokens" => Token::Cached,
        "cache_write" | "cache_creation" => Token::CacheWrite,
        "output" | "output_tokens" | "reasoning" => Token::Output,
        _ => return None,
    })
}

/// `ServiceProviderName` (1.3) or `ProviderName` (1.2) → canonical provider names.
fn canonical_provider(provider: &str, service: &str) -> String {
    let p = provider.to_ascii_lowercase();
    let s = service.to_ascii_lowercase();
    if p.contains("openai") {
        "openai".into()
    } else if p.contains("anthropic") {
        "anthropic".into()
    } else if p.contains("aws") || p.contains("amazon") {
        "aws_bedrock".into()
    } else if p.contains("microsoft") || p.contains("azure") {
        "azure_openai".into()
    } else if p.contains("google") {
        if s.contains("gemini api") {
            "google_gemini"
        } else {
            "gcp_vertex"
        }
        .into()
    } else {
        p.replace(' ', "_")
    }
}

impl Format for Focus {
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
            "billedcost",
            "effectivecost",
            "chargecategory",
            "chargeperiodstart",
        ]
    }

    fn rolls_up(&self) -> bool {
        true
    }

    fn canonical(&self, r: &Value, _ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        let key = |p: &str| text(r, p);
        let category = key("chargecategory").unwrap_or_default();
        let class = key("chargeclass");
        let unit = key("consumedunit").unwrap_or_default().to_ascii_lowercase();
        let factor = match unit.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["tokens"] | ["token"] => 1,
            [n, "tokens"] => n.parse::<i128>().unwrap_or(0),
            _ => 0,
        };
        // Corrections restate an earlier period's money; their (negative) quantities are not
        // usage of this one.
        let usage = category == "Usage" && class.is_none() && factor > 0;
        let token = key("x_tokentype").and_then(|t| token_type(&t));
        let tokens = match (token, usage) {
            (Some(t), true) => {
                let q = key("consumedquantity").unwrap_or_else(|| "0".into());
                let exact = parse_decimal(&q, 0)
                    .ok_or_else(|| format!("`ConsumedQuantity`: bad number {q:?}"))?;
                Some((
                    t,
                    scaled_count(exact, factor).ok_or("quantity out of range")?,
                ))
            }
            _ => None,
        };
        let count = |want: &[Token]| match tokens {
            Some((t, n)) if want.contains(&t) => Some(n),
            Some(_) => Some(0),
            None => None,
        };
        let tag_text = key("tags");
        let tag_map: Map<String, Value> = match &tag_text {
            Some(t) => serde_json::from_str(t).map_err(|e| format!("`Tags` is not JSON: {e}"))?,
            None => Map::new(),
        };
        let tag = |k: &str| tag_map.get(k).and_then(Value::as_str).map(str::to_string);
        let provider_name = key("serviceprovidername")
            .or_else(|| key("providername"))
            .ok_or("missing `ProviderName` / `ServiceProviderName`")?;
        let model = key("x_modelid").unwrap_or_else(|| UNKNOWN_MODEL.into());
        let mut labels = tag_map.clone();
        for (k, v) in [
            (
                "charge_category",
                (category != "Usage").then(|| category.clone()),
            ),
            ("charge_class", class.clone()),
            (
                "pricing_category",
                key("pricingcategory").filter(|p| p != "Standard"),
            ),
            ("billed_cost", key("billedcost")),
            ("source_format", key("x_sourceformat")),
        ] {
            if let Some(v) = v {
                labels.entry(k).or_insert(json!(v));
            }
        }
        Ok(Some(CanonicalRow {
            event_id: stable_id(
                NAME,
                &[
                    Some(provider_name.as_str()),
                    key("billingaccountid").as_deref(),
                    key("subaccountid").as_deref(),
                    Some(category.as_str()),
                    class.as_deref(),
                    key("chargeperiodstart").as_deref(),
                    key("chargeperiodend").as_deref(),
                    Some(model.as_str()),
                    key("pricingcategory").as_deref(),
                    key("commitmentdiscountid").as_deref(),
                    key("resourceid").as_deref(),
                    key("regionid").as_deref(),
                    tag_text.as_deref(),
                ],
            ),
            ts: need_time(r, "chargeperiodstart")?,
            provider: canonical_provider(&provider_name, &key("servicename").unwrap_or_default()),
            model,
            team: tag("team"),
            environment: tag("env"),
            project: key("subaccountid"),
            input_tokens: count(&[Token::Input, Token::Cached, Token::CacheWrite]),
            cached_input_tokens: count(&[Token::Cached]),
            cache_write_tokens: count(&[Token::CacheWrite]),
            output_tokens: count(&[Token::Output]),
            // Amortized: commitment-covered usage carries its share, the purchase row none.
            reported_cost: money(r, "effectivecost", 0)?,
            tags: (!labels.is_empty()).then(|| Value::Object(labels).to_string()),
            source: NAME.into(),
            // FOCUS rows have no id; an identical row is a re-delivery.
            line_key: Some(r.to_string()),
            ..Default::default()
        }))
    }
}
