//! `OPENAI_REQUESTS`: JSON lines of per-request OpenAI responses with their `usage` object, both
//! Chat Completions (`prompt_tokens`, ...) and Responses API (`input_tokens`, ...) shapes.
//!
//! Owns both usage shapes (input includes cached, output includes reasoning); it must not call
//! the API or run SQL.

use serde_json::{Value, json};

use super::canonical::{CanonicalRow, UNKNOWN_MODEL, service_tier, tags};
use super::native::{Col, Kind, col};
use super::records::Layout;
use super::value::{at, int, need_text, text, time};
use super::{FileContext, Format};

/// The `OPENAI_REQUESTS` format.
pub struct OpenAiRequests;

const NAME: &str = "OPENAI_REQUESTS";

static COLUMNS: [Col; 23] = [
    col("id", "id", Kind::Text),
    col("object", "object", Kind::Text),
    col("created", "created", Kind::Time),
    col("created_at", "created_at", Kind::Time),
    col("model", "model", Kind::Text),
    col("service_tier", "service_tier", Kind::Text),
    col("prompt_tokens", "usage/prompt_tokens", Kind::Int),
    col("completion_tokens", "usage/completion_tokens", Kind::Int),
    col("input_tokens", "usage/input_tokens", Kind::Int),
    col("output_tokens", "usage/output_tokens", Kind::Int),
    col("total_tokens", "usage/total_tokens", Kind::Int),
    col(
        "prompt_cached_tokens",
        "usage/prompt_tokens_details/cached_tokens",
        Kind::Int,
    ),
    col(
        "prompt_audio_tokens",
        "usage/prompt_tokens_details/audio_tokens",
        Kind::Int,
    ),
    col(
        "prompt_text_tokens",
        "usage/prompt_tokens_details/text_tokens",
        Kind::Int,
    ),
    col(
        "prompt_image_tokens",
        "usage/prompt_tokens_details/image_tokens",
        Kind::Int,
    ),
    col(
        "prompt_cache_write_tokens",
        "usage/prompt_tokens_details/cache_write_tokens",
        Kind::Int,
    ),
    col(
        "completion_reasoning_tokens",
        "usage/completion_tokens_details/reasoning_tokens",
        Kind::Int,
    ),
    col(
        "completion_audio_tokens",
        "usage/completion_tokens_details/audio_tokens",
        Kind::Int,
    ),
    col(
        "accepted_prediction_tokens",
        "usage/completion_tokens_details/accepted_prediction_tokens",
        Kind::Int,
    ),
    col(
        "rejected_prediction_tokens",
        "usage/completion_tokens_details/rejected_prediction_tokens",
        Kind::Int,
    ),
    col(
        "input_cached_tokens",
        "usage/input_tokens_details/cached_tokens",
        Kind::Int,
    ),
    col(
        "input_cache_write_tokens",
        "usage/input_tokens_details/cache_write_tokens",
        Kind::Int,
    ),
    col(
        "output_reasoning_tokens",
        "usage/output_tokens_details/reasoning_tokens",
        Kind::Int,
    ),
];

impl Format for OpenAiRequests {
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
        &["id", "model", "usage"]
    }

    fn canonical(&self, r: &Value, _ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        // Chat Completions names usage prompt/completion, the Responses API input/output.
        let (input, output, details_in, details_out) = if at(r, "usage/prompt_tokens").is_some() {
            (
                "usage/prompt_tokens",
                "usage/completion_tokens",
                "usage/prompt_tokens_details",
                "usage/completion_tokens_details",
            )
        } else {
            (
                "usage/input_tokens",
                "usage/output_tokens",
                "usage/input_tokens_details",
                "usage/output_tokens_details",
            )
        };
        let sub = |base: &str, field: &str| int(r, &format!("{base}/{field}"));
        let ts = match time(r, "created")? {
            Some(t) => t,
            None => time(r, "created_at")?.ok_or("missing `created` / `created_at`")?,
        };
        // A row without details says nothing about reasoning; with details, absent means 0.
        let reasoning = match at(r, details_out) {
            Some(_) => Some(sub(details_out, "reasoning_tokens")?.unwrap_or(0)),
            None => None,
        };
        Ok(Some(CanonicalRow {
            event_id: need_text(r, "id")?,
            ts,
            provider: "openai".into(),
            model: text(r, "model").unwrap_or_else(|| UNKNOWN_MODEL.into()),
            input_tokens: Some(int(r, input)?.unwrap_or(0)),
            cached_input_tokens: Some(sub(details_in, "cached_tokens")?.unwrap_or(0)),
            cache_write_tokens: Some(sub(details_in, "cache_write_tokens")?.unwrap_or(0)),
            output_tokens: Some(int(r, output)?.unwrap_or(0)),
            reasoning_tokens: reasoning,
            requests: Some(1),
            service_tier: service_tier(text(r, "service_tier").as_deref()),
            status: Some("ok".into()),
            tags: tags(&[("object", text(r, "object").map(|o| json!(o)))]),
            source: NAME.into(),
            ..Default::default()
        }))
    }
}
