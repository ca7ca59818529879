//! `ANTHROPIC_USAGE`: pages of the Anthropic Admin API usage report
//! (`/v1/organizations/usage_report/messages`), one row per bucket result.
//!
//! Owns the result fields and Anthropic's disjoint token buckets (total input = uncached +
//! cache read + 5m and 1h cache writes); it must not fetch pages or run SQL.

use serde_json::{Value, json};

use super::canonical::{CanonicalRow, UNKNOWN_MODEL, service_tier, tags};
use super::native::{Col, Kind, col};
use super::records::Layout;
use super::value::{int, int0, need_time, stable_id, text};
use super::{FileContext, Format};

/// The `ANTHROPIC_USAGE` format.
pub struct AnthropicUsage;

const NAME: &str = "ANTHROPIC_USAGE";

static COLUMNS: [Col; 14] = [
    col("starting_at", "starting_at", Kind::Time),
    col("ending_at", "ending_at", Kind::Time),
    col("api_key_id", "api_key_id", Kind::Text),
    col("workspace_id", "workspace_id", Kind::Text),
    col("model", "model", Kind::Text),
    col("service_tier", "service_tier", Kind::Text),
    col("context_window", "context_window", Kind::Text),
    col("inference_geo", "inference_geo", Kind::Text),
    col("uncached_input_tokens", "uncached_input_tokens", Kind::Int),
    col(
        "cache_creation_ephemeral_5m_input_tokens",
        "cache_creation/ephemeral_5m_input_tokens",
        Kind::Int,
    ),
    col(
        "cache_creation_ephemeral_1h_input_tokens",
        "cache_creation/ephemeral_1h_input_tokens",
        Kind::Int,
    ),
    col(
        "cache_read_input_tokens",
        "cache_read_input_tokens",
        Kind::Int,
    ),
    col("output_tokens", "output_tokens", Kind::Int),
    col(
        "server_tool_use_web_search_requests",
        "server_tool_use/web_search_requests",
        Kind::Int,
    ),
];

impl Format for AnthropicUsage {
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
        &["starting_at", "uncached_input_tokens"]
    }

    fn canonical(&self, r: &Value, _ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        let uncached = int0(r, "uncached_input_tokens")?;
        let write_5m = int0(r, "cache_creation/ephemeral_5m_input_tokens")?;
        let write_1h = int0(r, "cache_creation/ephemeral_1h_input_tokens")?;
        let read = int0(r, "cache_read_input_tokens")?;
        let key = |p: &str| text(r, p);
        Ok(Some(CanonicalRow {
            event_id: stable_id(
                NAME,
                &[
                    key("starting_at").as_deref(),
                    key("ending_at").as_deref(),
                    key("api_key_id").as_deref(),
                    key("workspace_id").as_deref(),
                    key("model").as_deref(),
                    key("service_tier").as_deref(),
                    key("context_window").as_deref(),
                    key("inference_geo").as_deref(),
                ],
            ),
            ts: need_time(r, "starting_at")?,
            provider: "anthropic".into(),
            model: key("model").unwrap_or_else(|| UNKNOWN_MODEL.into()),
            api_key_id: key("api_key_id"),
            // A null workspace is the default workspace; it stays null rather than invented.
            project: key("workspace_id"),
            input_tokens: Some(uncached + read + write_5m + write_1h),
            cached_input_tokens: Some(read),
            cache_write_tokens: Some(write_5m + write_1h),
            output_tokens: Some(int0(r, "output_tokens")?),
            // The legacy report has no request counts.
            requests: None,
            service_tier: service_tier(key("service_tier").as_deref()),
            tags: tags(&[
                ("context_window", key("context_window").map(|v| json!(v))),
                // 1h cache writes cost more than 5m ones; keep the split for pricing.
                (
                    "cache_write_1h_tokens",
                    (write_1h > 0).then(|| json!(write_1h)),
                ),
                (
                    "web_search_requests",
                    int(r, "server_tool_use/web_search_requests")?
                        .filter(|n| *n > 0)
                        .map(|n| json!(n)),
                ),
            ]),
            source: NAME.into(),
            ..Default::default()
        }))
    }
}
