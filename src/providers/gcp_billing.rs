//! `GCP_BILLING`: Cloud Billing standard usage cost export (BigQuery rows as JSON lines), Vertex AI
//! and Gemini API lines; a bill.
//!
//! Owns the export's columns and the reading of token SKUs (`usage.unit = count`, one token per
//! unit), rolled up per model, period and project, with credits netted into the cost. It must not
//! query BigQuery or run SQL. Models come from SKU descriptions (`Gemini 2.5 Flash Text Input` →
//! `gemini-2.5-flash`).

use serde_json::{Map, Value, json};

use super::canonical::{CanonicalRow, UNKNOWN_MODEL};
use super::native::{Col, Kind, col};
use super::records::Layout;
use super::value::{at, float, money, need_time, parse_decimal, scaled_count, stable_id, text};
use super::{FileContext, Format};

/// The `GCP_BILLING` format.
pub struct GcpBilling;

const NAME: &str = "GCP_BILLING";

static COLUMNS: [Col; 32] = [
    col("billing_account_id", "billing_account_id", Kind::Text),
    col("service_id", "service/id", Kind::Text),
    col("service_description", "service/description", Kind::Text),
    col("sku_id", "sku/id", Kind::Text),
    col("sku_description", "sku/description", Kind::Text),
    col("usage_start_time", "usage_start_time", Kind::Time),
    col("usage_end_time", "usage_end_time", Kind::Time),
    col("project_id", "project/id", Kind::Text),
    col("project_number", "project/number", Kind::Text),
    col("project_name", "project/name", Kind::Text),
    col("project_labels", "project/labels", Kind::Text),
    col("labels", "labels", Kind::Text),
    col("system_labels", "system_labels", Kind::Text),
    col("location", "location/location", Kind::Text),
    col("location_region", "location/region", Kind::Text),
    col("tags", "tags", Kind::Text),
    col("export_time", "export_time", Kind::Time),
    col("cost", "cost", Kind::Money),
    col("currency", "currency", Kind::Text),
    col(
        "currency_conversion_rate",
        "currency_conversion_rate",
        Kind::Float,
    ),
    col("usage_amount", "usage/amount", Kind::Float),
    col("usage_unit", "usage/unit", Kind::Text),
    col(
        "usage_amount_in_pricing_units",
        "usage/amount_in_pricing_units",
        Kind::Float,
    ),
    col("usage_pricing_unit", "usage/pricing_unit", Kind::Text),
    col("credits", "credits", Kind::Text),
    col("invoice_month", "invoice/month", Kind::Text),
    col(
        "invoice_publisher_type",
        "invoice/publisher_type",
        Kind::Text,
    ),
    col("cost_type", "cost_type", Kind::Text),
    col("adjustment_info", "adjustment_info", Kind::Text),
    col("cost_at_list", "cost_at_list", Kind::Money),
    col("transaction_type", "transaction_type", Kind::Text),
    col("seller_name", "seller_name", Kind::Text),
];

/// Which canonical token column a SKU feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Input,
    Cached,
    Output,
}

/// Words that end the model part of a SKU description.
const STOP_WORDS: [&str; 12] = [
    "text",
    "cached",
    "input",
    "output",
    "image",
    "audio",
    "video",
    "thinking",
    "tokens",
    "character",
    "characters",
    "predictions",
];

/// Model and token kind from a SKU description such as `Gemini 2.5 Flash Cached Text Input -
/// Predictions`, `Claude Sonnet 4 Input Tokens (...)` or `Generate content input token count
/// gemini 2.0 flash`.
fn parse_sku(description: &str) -> (Option<String>, Option<Token>) {
    let lower = description.to_ascii_lowercase();
    let token = if lower.contains("cached") || lower.contains("cache read") {
        Some(Token::Cached)
    } else if lower.contains("output") {
        Some(Token::Output)
    } else if lower.contains("input") {
        Some(Token::Input)
    } else {
        None
    };
    let phrase = match lower.split_once("token count ") {
        // Gemini API SKUs put the model last.
        Some((_, model)) => model.to_string(),
        None => {
            let head = lower.split(" - ").next().unwrap_or("");
            let head = head.split(" (").next().unwrap_or("");
            head.split_whitespace()
                .take_while(|w| !STOP_WORDS.contains(w))
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let model = phrase.split_whitespace().collect::<Vec<_>>().join("-");
    (
        (!model.is_empty() && token.is_some()).then_some(model),
        token,
    )
}

fn labels(r: &Value, path: &str) -> Map<String, Value> {
    at(r, path)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|kv| {
            Some((
                kv.get("key")?.as_str()?.to_string(),
                kv.get("value")?.clone(),
            ))
        })
        .collect()
}

impl Format for GcpBilling {
    fn name(&self) -> &'static str {
        NAME
    }

    fn layout(&self) -> Layout {
        Layout::JsonLines
    }

    fn columns(&self) -> &'static [Col] {
        &COLUMNS
    }

    fn required(&self) -> &'static [&'static str] {
        &["billing_account_id", "sku", "usage_start_time", "cost"]
    }

    fn rolls_up(&self) -> bool {
        true
    }

    fn canonical(&self, r: &Value, _ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        let key = |p: &str| text(r, p);
        let (model, token) = parse_sku(&key("sku/description").unwrap_or_default());
        let cost_type = key("cost_type").unwrap_or_else(|| "regular".into());
        let tokens = match (token, key("usage/unit").as_deref(), cost_type.as_str()) {
            (Some(t), Some("count"), "regular") => {
                let amount = float(r, "usage/amount")?.unwrap_or(0.0);
                let exact = parse_decimal(&amount.to_string(), 0).ok_or("bad `usage.amount`")?;
                Some((
                    t,
                    scaled_count(exact, 1).ok_or("usage amount out of range")?,
                ))
            }
            _ => None,
        };
        let count = |want: &[Token]| match tokens {
            Some((t, n)) if want.contains(&t) => Some(n),
            Some(_) => Some(0),
            None => None,
        };
        // `cost` is before credits; the credits (negative) are what makes it the billed amount.
        let mut cost = money(r, "cost", 0)?;
        for (i, _) in at(r, "credits")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let credit = money(r, &format!("credits/{i}/amount"), 0)?.unwrap_or(0);
            cost = Some(cost.unwrap_or(0) + credit);
        }
        let gemini_api = key("service/description").as_deref() == Some("Gemini API");
        let model = model.unwrap_or_else(|| UNKNOWN_MODEL.into());
        let project_labels = labels(r, "project/labels");
        let mut tags = project_labels.clone();
        tags.extend(labels(r, "labels"));
        if cost_type != "regular" {
            tags.insert("cost_type".into(), json!(cost_type));
        }
        Ok(Some(CanonicalRow {
            event_id: stable_id(
                NAME,
                &[
                    key("billing_account_id").as_deref(),
                    key("service/id").as_deref(),
                    Some(model.as_str()),
                    Some(cost_type.as_str()),
                    key("usage_start_time").as_deref(),
                    key("usage_end_time").as_deref(),
                    key("project/id").as_deref(),
                    key("location/location").as_deref(),
                    key("labels").as_deref(),
                ],
            ),
            ts: need_time(r, "usage_start_time")?,
            provider: if gemini_api {
                "google_gemini"
            } else {
                "gcp_vertex"
            }
            .into(),
            model,
            team: project_labels
                .get("team")
                .and_then(Value::as_str)
                .map(str::to_string),
            environment: project_labels
                .get("env")
                .and_then(Value::as_str)
                .map(str::to_string),
            project: key("project/id"),
            input_tokens: count(&[Token::Input, Token::Cached]),
            cached_input_tokens: count(&[Token::Cached]),
            cache_write_tokens: tokens.map(|_| 0),
            output_tokens: count(&[Token::Output]),
            reported_cost: cost,
            tags: (!tags.is_empty()).then(|| Value::Object(tags).to_string()),
            source: NAME.into(),
            // The export has no line id; an identical line is a re-delivery.
            line_key: Some(r.to_string()),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_descriptions_name_model_and_token() {
        let cases = [
            (
                "Gemini 2.5 Flash Text Input - Predictions",
                "gemini-2.5-flash",
                Token::Input,
            ),
            (
                "Gemini 2.5 Flash Cached Text Input - Predictions",
                "gemini-2.5-flash",
                Token::Cached,
            ),
            (
                "Gemini 2.5 Pro Text and Thinking Output - Predictions",
                "gemini-2.5-pro",
                Token::Output,
            ),
            (
                "Claude Sonnet 4 Input Tokens (Anthropic, Vertex AI Model Garden)",
                "claude-sonnet-4",
                Token::Input,
            ),
            (
                "Generate content output token count gemini 2.0 flash",
                "gemini-2.0-flash",
                Token::Output,
            ),
        ];
        for (sku, model, token) in cases {
            assert_eq!(
                parse_sku(sku),
                (Some(model.to_string()), Some(token)),
                "{sku}"
            );
        }
        assert_eq!(parse_sku("Tax"), (None, None));
    }
}
