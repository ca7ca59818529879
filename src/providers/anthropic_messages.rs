//! `ANTHROPIC_MESSAGES`: JSON lines of Anthropic Messages API responses (`id`, `model`,
//! `stop_reason`, `usage`), one row per message.
//!
//! Owns the per-message usage semantics (`input_tokens` is uncached only; cache writes and reads
//! are added to make the canonical total); it must not call the API or run SQL.

use serde_json::{Value, json};

use super::canonical::{CanonicalRow, UNKNOWN_MODEL, service_tier, tags};
use super::native::{Col, Kind, col};
use super::records::Layout;
use super::value::{int, int0, need_text, text, time};
use super::{FileContext, Format};

/// The `ANTHROPIC_MESSAGES` format.
pub struct AnthropicMessages;

const NAME: &str = "ANTHROPIC_MESSAGES";

static COLUMNS: [Col; 16] = [
    col("id", "id", Kind::Text),
    col("type", "type", Kind::Text),
    col("role", "role", Kind::Text),
    col("model", "model", Kind::Text),
    col("stop_reason", "stop_reason", Kind::Text),
    col("created_at", "created_at", Kind::Time),
    col("input_tokens", "usage/input_tokens", Kind::Int),
    col(
        "cache_creation_input_tokens",
        "usage/cache_creation_input_tokens",
        Kind::Int,
    ),
    col(
        "cache_read_input_tokens",
        "usage/cache_read_input_tokens",
        Kind::Int,
    ),
    col(
        "cache_creation_ephemeral_5m_input_tokens",
        "usage/cache_creation/ephemeral_5m_input_tokens",
        Kind::Int,
    ),
    col(
        "cache_creation_ephemeral_1h_input_tokens",
        "usage/cache_creation/ephemeral_1h_input_tokens",
        Kind::Int,
    ),
    col("output_tokens", "usage/output_tokens", Kind::Int),
    col("service_tier", "usage/service_tier", Kind::Text),
    col("inference_geo", "usage/inference_geo", Kind::Text),
    col(
        "web_search_requests",
        "usage/server_tool_use/web_search_requests",
        Kind::Int,
    ),
    col(
        "web_fetch_requests",
        "usage/server_tool_use/web_fetch_requests",
        Kind::Int,
    ),
];

impl Format for AnthropicMessages {
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
        &["id", "usage"]
    }

    fn canonical(&self, r: &Value, ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        let write_5m = int0(r, "usage/cache_creation/ephemeral_5m_input_tokens")?;
        let write_1h = int0(r, "usage/cache_creation/ephemeral_1h_input_tokens")?;
        // `cache_creation_input_tokens` is the 5m + 1h total; legacy objects have it null.
        let cache_write =
            int(r, "usage/cache_creation_input_tokens")?.unwrap_or(write_5m + write_1h);
        let cache_read = int0(r, "usage/cache_read_input_tokens")?;
        let uncached = int0(r, "usage/input_tokens")?;
        // A Messages response has no timestamp; the export file's time stands in for it.
        let (ts, ts_from_file) = match time(r, "created_at")? {
            Some(t) => (t, false),
            None => (
                ctx.modified
                    .ok_or("no `created_at` and no file time to stand in for it")?,
                true,
            ),
        };
        let stop = text(r, "stop_reason");
        Ok(Some(CanonicalRow {
            event_id: need_text(r, "id")?,
            ts,
            provider: "anthropic".into(),
            model: text(r, "model").unwrap_or_else(|| UNKNOWN_MODEL.into()),
            input_tokens: Some(uncached + cache_write + cache_read),
            cached_input_tokens: Some(cache_read),
            cache_write_tokens: Some(cache_write),
            output_tokens: Some(int0(r, "usage/output_tokens")?),
            requests: Some(1),
            service_tier: service_tier(text(r, "usage/service_tier").as_deref()),
            status: Some("ok".into()),
            tags: tags(&[
                ("stop_reason", stop.map(|s| json!(s))),
                (
                    "cache_write_1h_tokens",
                    (write_1h > 0).then(|| json!(write_1h)),
                ),
                (
                    "web_search_requests",
                    int(r, "usage/server_tool_use/web_search_requests")?
                        .filter(|n| *n > 0)
                        .map(|n| json!(n)),
                ),
                ("ts_from_file", ts_from_file.then_some(Value::Bool(true))),
            ]),
            source: NAME.into(),
            ..Default::default()
        }))
    }
}
