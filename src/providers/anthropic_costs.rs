//! `ANTHROPIC_COSTS`: pages of the Anthropic Admin API cost report
//! (`/v1/organizations/cost_report`), one row per bucket result; a bill whose `amount` is a
//! decimal string in **cents**.
//!
//! Owns the result fields and the cents-to-dollars conversion; it must not fetch pages or run SQL.

use serde_json::{Value, json};

use super::canonical::{CanonicalRow, UNKNOWN_MODEL, service_tier, tags};
use super::native::{Col, Kind, col};
use super::records::Layout;
use super::value::{money, need_time, stable_id, text};
use super::{FileContext, Format};

/// The `ANTHROPIC_COSTS` format.
pub struct AnthropicCosts;

const NAME: &str = "ANTHROPIC_COSTS";

static COLUMNS: [Col; 13] = [
    col("starting_at", "starting_at", Kind::Time),
    col("ending_at", "ending_at", Kind::Time),
    col("amount_cents", "amount", Kind::Money),
    col("amount", "amount", Kind::MoneyCents),
    col("currency", "currency", Kind::Text),
    col("cost_type", "cost_type", Kind::Text),
    col("description", "description", Kind::Text),
    col("model", "model", Kind::Text),
    col("service_tier", "service_tier", Kind::Text),
    col("token_type", "token_type", Kind::Text),
    col("context_window", "context_window", Kind::Text),
    col("inference_geo", "inference_geo", Kind::Text),
    col("workspace_id", "workspace_id", Kind::Text),
];

impl Format for AnthropicCosts {
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
        &["starting_at", "amount"]
    }

    fn canonical(&self, r: &Value, _ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        let key = |p: &str| text(r, p);
        Ok(Some(CanonicalRow {
            event_id: stable_id(
                NAME,
                &[
                    key("starting_at").as_deref(),
                    key("ending_at").as_deref(),
                    key("workspace_id").as_deref(),
                    key("description").as_deref(),
                    key("cost_type").as_deref(),
                    key("model").as_deref(),
                    key("service_tier").as_deref(),
                    key("token_type").as_deref(),
                    key("context_window").as_deref(),
                    key("inference_geo").as_deref(),
                ],
            ),
            ts: need_time(r, "starting_at")?,
            provider: "anthropic".into(),
            // Web search and code execution costs name no model.
            model: key("model").unwrap_or_else(|| UNKNOWN_MODEL.into()),
            project: key("workspace_id"),
            service_tier: service_tier(key("service_tier").as_deref()),
            // Cents → dollars, exactly.
            reported_cost: money(r, "amount", -2)?,
            tags: tags(&[
                ("cost_type", key("cost_type").map(|v| json!(v))),
                ("token_type", key("token_type").map(|v| json!(v))),
                ("context_window", key("context_window").map(|v| json!(v))),
                ("description", key("description").map(|v| json!(v))),
                (
                    "currency",
                    key("currency")
                        .filter(|c| !c.eq_ignore_ascii_case("usd"))
                        .map(|c| json!(c)),
                ),
            ]),
            source: NAME.into(),
            ..Default::default()
        }))
    }
}
