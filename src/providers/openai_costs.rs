//! `OPENAI_COSTS`: pages of the OpenAI Costs API (`/v1/organization/costs`), one row per bucket
//! result; a bill, so each row carries `reported_cost`.
//!
//! Owns the result fields and the reading of `line_item` (`"<model>, input"`); it must not fetch
//! pages or run SQL.

use serde_json::{Value, json};

use super::canonical::{CanonicalRow, UNKNOWN_MODEL, tags};
use super::native::{Col, Kind, col};
use super::records::Layout;
use super::value::{float, money, need_time, parse_decimal, scaled_count, stable_id, text};
use super::{FileContext, Format};

/// The `OPENAI_COSTS` format.
pub struct OpenAiCosts;

const NAME: &str = "OPENAI_COSTS";

static COLUMNS: [Col; 10] = [
    col("object", "object", Kind::Text),
    col("start_time", "start_time", Kind::Time),
    col("end_time", "end_time", Kind::Time),
    col("amount_value", "amount/value", Kind::Money),
    col("amount_currency", "amount/currency", Kind::Text),
    col("line_item", "line_item", Kind::Text),
    col("project_id", "project_id", Kind::Text),
    col("api_key_id", "api_key_id", Kind::Text),
    col("quantity", "quantity", Kind::Float),
    col("quantity_unit", "quantity_unit", Kind::Text),
];

impl Format for OpenAiCosts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn layout(&self) -> Layout {
        Layout::Pages
    }

    fn columns(&self) -> &'static [Col] {
        &COLUMNS
    }

    fn rolls_up(&self) -> bool {
        // Results sharing a bucket and grouping keys are parts of one group.
        true
    }

    fn required(&self) -> &'static [&'static str] {
        &["amount", "start_time"]
    }

    fn canonical(&self, r: &Value, _ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        let line_item = text(r, "line_item");
        // The vocabulary is undocumented; the observed shape is "<model>, <token kind>".
        let (model, kind) = match line_item.as_deref().and_then(|l| l.rsplit_once(", ")) {
            Some((m, k)) => (m.trim().to_string(), Some(k.trim().to_ascii_lowercase())),
            None => (
                line_item.clone().unwrap_or_else(|| UNKNOWN_MODEL.into()),
                None,
            ),
        };
        let tokens = token_quantity(r)?;
        let (mut input, mut cached, mut cache_write, mut output) = (None, None, None, None);
        if let (Some(q), Some(kind)) = (tokens, kind.as_deref()) {
            match kind {
                "input" | "uncached input" => input = Some(q),
                "cached input" => (input, cached) = (Some(q), Some(q)),
                "cache write" | "cache write input" => (input, cache_write) = (Some(q), Some(q)),
                k if k.contains("output") => output = Some(q),
                _ => {}
            }
        }
        let key = |p: &str| text(r, p);
        Ok(Some(CanonicalRow {
            event_id: stable_id(
                NAME,
                &[
                    key("start_time").as_deref(),
                    key("end_time").as_deref(),
                    line_item.as_deref(),
                    key("project_id").as_deref(),
                    key("api_key_id").as_deref(),
                    key("organization_id").as_deref(),
                ],
            ),
            ts: need_time(r, "start_time")?,
            provider: "openai".into(),
            model,
            api_key_id: key("api_key_id"),
            project: key("project_id"),
            input_tokens: input,
            cached_input_tokens: cached,
            cache_write_tokens: cache_write,
            output_tokens: output,
            reported_cost: money(r, "amount/value", 0)?,
            tags: tags(&[
                ("line_item", line_item.map(|l| json!(l))),
                (
                    "currency",
                    key("amount/currency")
                        .filter(|c| !c.eq_ignore_ascii_case("usd"))
                        .map(|c| json!(c)),
                ),
            ]),
            source: NAME.into(),
            ..Default::default()
        }))
    }
}

/// Tokens from `quantity` when its unit is tokens (added to the API in 2026).
fn token_quantity(r: &Value) -> Result<Option<i64>, String> {
    let factor = match text(r, "quantity_unit").as_deref() {
        Some("tokens") => 1,
        Some("1000_tokens") => 1000,
        _ => return Ok(None),
    };
    let Some(q) = float(r, "quantity")? else {
        return Ok(None);
    };
    let exact = parse_decimal(&q.to_string(), 0).ok_or("bad `quantity`")?;
    Ok(scaled_count(exact, factor))
}
