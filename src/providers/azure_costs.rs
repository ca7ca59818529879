//! `AZURE_COSTS`: Microsoft Cost Management cost-and-usage details exports (EA PascalCase or MCA
//! camelCase CSV; headers are matched case-insensitively), Azure OpenAI lines; a bill.
//!
//! Owns the export columns and the reading of Azure OpenAI meters (`gpt-4o 0806 Inp glbl Tokens`,
//! `UnitOfMeasure` `1K`/`1M` → ×1000/×1e6 tokens), rolled up per model, day and attribution. It
//! must not call Azure or run SQL. Models stay meter text (`gpt-4o 0806`); the export names no
//! deployment.

use serde_json::{Map, Value, json};

use super::canonical::{CanonicalRow, UNKNOWN_MODEL};
use super::native::{Col, Kind, col};
use super::records::Layout;
use super::value::{money, need_time, parse_decimal, scaled_count, stable_id, text};
use super::{FileContext, Format};

/// The `AZURE_COSTS` format.
pub struct AzureCosts;

const NAME: &str = "AZURE_COSTS";

static COLUMNS: [Col; 55] = [
    col("invoice_section_name", "invoicesectionname", Kind::Text),
    col("account_name", "accountname", Kind::Text),
    col("account_owner_id", "accountownerid", Kind::Text),
    col("subscription_id", "subscriptionid", Kind::Text),
    col("subscription_name", "subscriptionname", Kind::Text),
    col("resource_group", "resourcegroup", Kind::Text),
    col("resource_location", "resourcelocation", Kind::Text),
    col("date", "date", Kind::Time),
    col("product_name", "productname", Kind::Text),
    col("meter_category", "metercategory", Kind::Text),
    col("meter_sub_category", "metersubcategory", Kind::Text),
    col("meter_id", "meterid", Kind::Text),
    col("meter_name", "metername", Kind::Text),
    col("meter_region", "meterregion", Kind::Text),
    col("unit_of_measure", "unitofmeasure", Kind::Text),
    col("quantity", "quantity", Kind::Float),
    col("effective_price", "effectiveprice", Kind::Money),
    col(
        "cost_in_billing_currency",
        "costinbillingcurrency",
        Kind::Money,
    ),
    col("cost_center", "costcenter", Kind::Text),
    col("consumed_service", "consumedservice", Kind::Text),
    col("resource_id", "resourceid", Kind::Text),
    col("tags", "tags", Kind::Text),
    col("offer_id", "offerid", Kind::Text),
    col("additional_info", "additionalinfo", Kind::Text),
    col("service_info1", "serviceinfo1", Kind::Text),
    col("service_info2", "serviceinfo2", Kind::Text),
    col("resource_name", "resourcename", Kind::Text),
    col("reservation_id", "reservationid", Kind::Text),
    col("reservation_name", "reservationname", Kind::Text),
    col("unit_price", "unitprice", Kind::Money),
    col("product_order_id", "productorderid", Kind::Text),
    col("product_order_name", "productordername", Kind::Text),
    col("term", "term", Kind::Text),
    col("publisher_type", "publishertype", Kind::Text),
    col("publisher_name", "publishername", Kind::Text),
    col("charge_type", "chargetype", Kind::Text),
    col("frequency", "frequency", Kind::Text),
    col("pricing_model", "pricingmodel", Kind::Text),
    col("availability_zone", "availabilityzone", Kind::Text),
    col("billing_account_id", "billingaccountid", Kind::Text),
    col("billing_account_name", "billingaccountname", Kind::Text),
    col("billing_currency_code", "billingcurrencycode", Kind::Text),
    col(
        "billing_period_start_date",
        "billingperiodstartdate",
        Kind::Time,
    ),
    col(
        "billing_period_end_date",
        "billingperiodenddate",
        Kind::Time,
    ),
    col("billing_profile_id", "billingprofileid", Kind::Text),
    col("billing_profile_name", "billingprofilename", Kind::Text),
    col("invoice_section_id", "invoicesectionid", Kind::Text),
    col(
        "is_azure_credit_eligible",
        "isazurecrediteligible",
        Kind::Bool,
    ),
    col("part_number", "partnumber", Kind::Text),
    col("payg_price", "paygprice", Kind::Money),
    col("plan_name", "planname", Kind::Text),
    col("service_family", "servicefamily", Kind::Text),
    col(
        "cost_allocation_rule_name",
        "costallocationrulename",
        Kind::Text,
    ),
    col("benefit_id", "benefitid", Kind::Text),
    col("benefit_name", "benefitname", Kind::Text),
];

/// Which canonical token column a meter feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Input,
    Cached,
    Output,
}

/// A token meter taken apart: model text, direction, batch, deployment scope.
#[derive(Debug, PartialEq, Eq)]
struct Meter {
    model: String,
    token: Option<Token>,
    batch: bool,
    scope: Option<&'static str>,
}

fn parse_meter(name: &str) -> Meter {
    let words: Vec<&str> = name.split_whitespace().collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let has = |w: &[&str]| lower.iter().any(|l| w.contains(&l.as_str()));
    let is_tokens = has(&["tokens", "token"]);
    let token = if !is_tokens {
        None
    } else if has(&["cached", "cchd"]) {
        Some(Token::Cached)
    } else if has(&["outp", "output", "out", "opt"]) {
        Some(Token::Output)
    } else {
        // Embedding meters (`text-embedding-3-small Tokens`) are input only.
        Some(Token::Input)
    };
    const NOT_MODEL: [&str; 18] = [
        "inp", "inpt", "input", "in", "outp", "output", "out", "opt", "cached", "cchd", "batch",
        "glbl", "gl", "regnl", "dzone", "dz", "tokens", "1m",
    ];
    let name: Vec<&str> = words
        .iter()
        .zip(&lower)
        .take_while(|(_, l)| !NOT_MODEL.contains(&l.as_str()))
        .map(|(w, _)| *w)
        .collect();
    // Meters spell one model both `gpt-4o 0806` and `gpt 4o 0806`: hyphenate the name, keep
    // the 4-digit version apart.
    let model = match name.split_last() {
        Some((ver, head))
            if !head.is_empty() && ver.len() == 4 && ver.chars().all(|c| c.is_ascii_digit()) =>
        {
            format!("{} {ver}", head.join("-"))
        }
        _ => name.join("-"),
    };
    let scope = if has(&["glbl", "gl"]) {
        Some("global")
    } else if has(&["regnl"]) {
        Some("regional")
    } else if has(&["dzone", "dz"]) {
        Some("data_zone")
    } else {
        None
    };
    Meter {
        model,
        token,
        batch: has(&["batch"]),
        scope,
    }
}

/// `Tags` as an object; older EA exports drop the outer braces.
fn parse_tags(raw: Option<String>) -> Result<Map<String, Value>, String> {
    let Some(raw) = raw.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()) else {
        return Ok(Map::new());
    };
    let text = if raw.starts_with('{') {
        raw
    } else {
        format!("{{{raw}}}")
    };
    serde_json::from_str(&text).map_err(|e| format!("`Tags` is not a JSON object: {e}"))
}

impl Format for AzureCosts {
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
        &["date", "metername", "quantity", "costinbillingcurrency"]
    }

    fn rolls_up(&self) -> bool {
        true
    }

    fn canonical(&self, r: &Value, _ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        let key = |p: &str| text(r, p);
        let meter = parse_meter(&key("metername").unwrap_or_default());
        let charge = key("chargetype").unwrap_or_else(|| "Usage".into());
        let factor = match key("unitofmeasure")
            .map(|u| u.to_ascii_lowercase())
            .as_deref()
        {
            Some("1k") | Some("1k tokens") => 1_000,
            Some("1m") | Some("1m tokens") => 1_000_000,
            Some("1") | Some("tokens") => 1,
            _ => 0,
        };
        // Refunds and reservation charges move money, not tokens.
        let tokens = match (meter.token, charge == "Usage" && factor > 0) {
            (Some(t), true) => {
                let q = key("quantity").unwrap_or_else(|| "0".into());
                let exact =
                    parse_decimal(&q, 0).ok_or_else(|| format!("`Quantity`: bad number {q:?}"))?;
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
        let tag_map = parse_tags(key("tags"))?;
        let tag = |k: &str| tag_map.get(k).and_then(Value::as_str).map(str::to_string);
        let model = if meter.token.is_some() && !meter.model.is_empty() {
            meter.model.clone()
        } else {
            key("metername").unwrap_or_else(|| UNKNOWN_MODEL.into())
        };
        let tier = meter
            .token
            .map(|_| if meter.batch { "batch" } else { "standard" });
        let mut labels = tag_map.clone();
        for (k, v) in [
            ("charge_type", (charge != "Usage").then(|| charge.clone())),
            (
                "pricing_model",
                key("pricingmodel").filter(|p| p != "OnDemand"),
            ),
            ("deployment_scope", meter.scope.map(str::to_string)),
            ("account", key("resourcename")),
            ("cost_center", key("costcenter")),
        ] {
            if let Some(v) = v {
                labels.entry(k).or_insert(json!(v));
            }
        }
        let tags_text = Value::Object(tag_map.clone()).to_string();
        Ok(Some(CanonicalRow {
            event_id: stable_id(
                NAME,
                &[
                    Some(charge.as_str()),
                    key("date").as_deref(),
                    key("subscriptionid").as_deref(),
                    key("resourceid").as_deref(),
                    Some(model.as_str()),
                    tier,
                    meter.scope,
                    key("pricingmodel").as_deref(),
                    key("costcenter").as_deref(),
                    Some(tags_text.as_str()),
                ],
            ),
            ts: need_time(r, "date")?,
            provider: "azure_openai".into(),
            model,
            team: tag("team"),
            environment: tag("env"),
            project: key("subscriptionid"),
            input_tokens: count(&[Token::Input, Token::Cached]),
            cached_input_tokens: count(&[Token::Cached]),
            cache_write_tokens: tokens.map(|_| 0),
            output_tokens: count(&[Token::Output]),
            service_tier: tier.map(str::to_string),
            reported_cost: money(r, "costinbillingcurrency", 0)?,
            tags: (!labels.is_empty()).then(|| Value::Object(labels).to_string()),
            source: NAME.into(),
            // Cost details have no line id; an identical line is a re-delivery.
            line_key: Some(r.to_string()),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meters_come_apart() {
        let m = parse_meter("gpt 4o 0806 cached Inp glbl Tokens");
        assert_eq!(
            (m.model.as_str(), m.token),
            ("gpt-4o 0806", Some(Token::Cached))
        );
        let m = parse_meter("gpt-4o 0806 Batch Inp glbl Tokens");
        assert_eq!((m.model.as_str(), m.batch), ("gpt-4o 0806", true));
        let m = parse_meter("gpt-4o-mini 0718 Outp regnl Tokens");
        assert_eq!((m.token, m.scope), (Some(Token::Output), Some("regional")));
        let m = parse_meter("text-embedding-3-small Tokens");
        assert_eq!(
            (m.model.as_str(), m.token),
            ("text-embedding-3-small", Some(Token::Input))
        );
        assert_eq!(parse_meter("Provisioned Managed Global Unit").token, None);
    }

    #[test]
    fn tags_without_braces_are_accepted() {
        let t = parse_tags(Some("\"team\":\"search\"".into())).expect("tags");
        assert_eq!(t["team"], "search");
    }
}
