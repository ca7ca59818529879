//! `OPENAI_USAGE`: pages of the OpenAI Admin Usage API (`/v1/organization/usage/{completions,
//! embeddings,images,...}`), one row per bucket result.
//!
//! Owns the field list and token semantics of these results (input includes cached and cache
//! writes, as in the canonical shape); it must not fetch pages or run SQL.

use serde_json::{Value, json};

use super::canonical::{CanonicalRow, UNKNOWN_MODEL, service_tier, tags};
use super::native::{Col, Kind, col};
use super::records::Layout;
use super::value::{boolean, int, int0, need_text, need_time, stable_id, text};
use super::{FileContext, Format};

/// The `OPENAI_USAGE` format.
pub struct OpenAiUsage;

const NAME: &str = "OPENAI_USAGE";

static COLUMNS: [Col; 27] = [
    col("object", "object", Kind::Text),
    col("start_time", "start_time", Kind::Time),
    col("end_time", "end_time", Kind::Time),
    col("project_id", "project_id", Kind::Text),
    col("user_id", "user_id", Kind::Text),
    col("api_key_id", "api_key_id", Kind::Text),
    col("model", "model", Kind::Text),
    col("batch", "batch", Kind::Bool),
    col("service_tier", "service_tier", Kind::Text),
    col("input_tokens", "input_tokens", Kind::Int),
    col("output_tokens", "output_tokens", Kind::Int),
    col("input_cached_tokens", "input_cached_tokens", Kind::Int),
    col(
        "input_cache_write_tokens",
        "input_cache_write_tokens",
        Kind::Int,
    ),
    col("input_uncached_tokens", "input_uncached_tokens", Kind::Int),
    col("input_text_tokens", "input_text_tokens", Kind::Int),
    col(
        "input_cached_text_tokens",
        "input_cached_text_tokens",
        Kind::Int,
    ),
    col("input_audio_tokens", "input_audio_tokens", Kind::Int),
    col(
        "input_cached_audio_tokens",
        "input_cached_audio_tokens",
        Kind::Int,
    ),
    col("input_image_tokens", "input_image_tokens", Kind::Int),
    col(
        "input_cached_image_tokens",
        "input_cached_image_tokens",
        Kind::Int,
    ),
    col("output_text_tokens", "output_text_tokens", Kind::Int),
    col("output_audio_tokens", "output_audio_tokens", Kind::Int),
    col("output_image_tokens", "output_image_tokens", Kind::Int),
    col("num_model_requests", "num_model_requests", Kind::Int),
    col("images", "images", Kind::Int),
    col("size", "size", Kind::Text),
    col("source", "source", Kind::Text),
];

impl Format for OpenAiUsage {
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
        &["object", "start_time"]
    }

    fn canonical(&self, r: &Value, _ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        let object = need_text(r, "object")?;
        if !object.starts_with("organization.usage.") {
            return Err(format!("not a usage result: object {object:?}"));
        }
        let endpoint = object
            .trim_start_matches("organization.usage.")
            .trim_end_matches(".result")
            .to_string();
        let batch = boolean(r, "batch")?;
        let model = text(r, "model");
        let key = |p: &str| text(r, p);
        let event_id = stable_id(
            NAME,
            &[
                Some(object.as_str()),
                key("start_time").as_deref(),
                key("end_time").as_deref(),
                key("project_id").as_deref(),
                key("user_id").as_deref(),
                key("api_key_id").as_deref(),
                model.as_deref(),
                key("batch").as_deref(),
                key("service_tier").as_deref(),
                key("size").as_deref(),
                key("source").as_deref(),
            ],
        );
        // Ungrouped `batch` is null; only an explicit `true` says the Batch API was used.
        let tier = if batch == Some(true) {
            Some("batch".to_string())
        } else {
            service_tier(key("service_tier").as_deref())
        };
        Ok(Some(CanonicalRow {
            event_id,
            ts: need_time(r, "start_time")?,
            provider: "openai".into(),
            model: model.unwrap_or_else(|| UNKNOWN_MODEL.into()),
            user_id: key("user_id"),
            api_key_id: key("api_key_id"),
            project: key("project_id"),
            // OpenAI's `input_tokens` already includes cached reads and cache writes.
            input_tokens: Some(int0(r, "input_tokens")?),
            cached_input_tokens: Some(int0(r, "input_cached_tokens")?),
            cache_write_tokens: Some(int0(r, "input_cache_write_tokens")?),
            output_tokens: Some(int0(r, "output_tokens")?),
            // The Usage API does not break reasoning out of output.
            reasoning_tokens: None,
            requests: int(r, "num_model_requests")?,
            service_tier: tier,
            tags: tags(&[
                ("endpoint", Some(json!(endpoint))),
                ("images", int(r, "images")?.map(|n| json!(n))),
                ("size", key("size").map(|s| json!(s))),
                ("image_source", key("source").map(|s| json!(s))),
            ]),
            source: NAME.into(),
            ..Default::default()
        }))
    }
}
