//! `GEMINI_USAGE`: JSON lines of Gemini API / Vertex AI `generateContent` responses with their
//! `usageMetadata` (+ `modelVersion`, `responseId`, `createTime`).
//!
//! Owns Gemini's token semantics: the prompt count already includes cached content, tool-use
//! prompt tokens are input, thoughts are output (and reasoning). It must not call the API.

use serde_json::{Value, json};

use super::canonical::{CanonicalRow, UNKNOWN_MODEL, tags};
use super::native::{Col, Kind, col};
use super::records::Layout;
use super::value::{int0, stable_id, text, time};
use super::{FileContext, Format};

/// The `GEMINI_USAGE` format.
pub struct GeminiUsage;

const NAME: &str = "GEMINI_USAGE";

static COLUMNS: [Col; 16] = [
    col("endpoint", "endpoint", Kind::Text),
    col("model_version", "modelVersion", Kind::Text),
    col("response_id", "responseId", Kind::Text),
    col("create_time", "createTime", Kind::Time),
    col(
        "prompt_token_count",
        "usageMetadata/promptTokenCount",
        Kind::Int,
    ),
    col(
        "cached_content_token_count",
        "usageMetadata/cachedContentTokenCount",
        Kind::Int,
    ),
    col(
        "candidates_token_count",
        "usageMetadata/candidatesTokenCount",
        Kind::Int,
    ),
    col(
        "thoughts_token_count",
        "usageMetadata/thoughtsTokenCount",
        Kind::Int,
    ),
    col(
        "tool_use_prompt_token_count",
        "usageMetadata/toolUsePromptTokenCount",
        Kind::Int,
    ),
    col(
        "total_token_count",
        "usageMetadata/totalTokenCount",
        Kind::Int,
    ),
    col(
        "prompt_tokens_details",
        "usageMetadata/promptTokensDetails",
        Kind::Text,
    ),
    col(
        "cache_tokens_details",
        "usageMetadata/cacheTokensDetails",
        Kind::Text,
    ),
    col(
        "candidates_tokens_details",
        "usageMetadata/candidatesTokensDetails",
        Kind::Text,
    ),
    col(
        "tool_use_prompt_tokens_details",
        "usageMetadata/toolUsePromptTokensDetails",
        Kind::Text,
    ),
    col("traffic_type", "usageMetadata/trafficType", Kind::Text),
    col("block_reason", "promptFeedback/blockReason", Kind::Text),
];

impl Format for GeminiUsage {
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
        &["usageMetadata"]
    }

    fn canonical(&self, r: &Value, ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        let m = |f: &str| int0(r, &format!("usageMetadata/{f}"));
        // Optional counts are omitted when zero, so absent reads as 0.
        let (prompt, cached, candidates) = (
            m("promptTokenCount")?,
            m("cachedContentTokenCount")?,
            m("candidatesTokenCount")?,
        );
        let (thoughts, tool_prompt) = (m("thoughtsTokenCount")?, m("toolUsePromptTokenCount")?);
        let endpoint = text(r, "endpoint");
        // Vertex AI is served from aiplatform.googleapis.com and reports `trafficType`.
        let vertex = endpoint
            .as_deref()
            .map_or(text(r, "usageMetadata/trafficType").is_some(), |e| {
                e.contains("aiplatform")
            });
        let (ts, ts_from_file) = match time(r, "createTime")? {
            Some(t) => (t, false),
            None => (
                ctx.modified
                    .ok_or("no `createTime` and no file time to stand in for it")?,
                true,
            ),
        };
        let block = text(r, "promptFeedback/blockReason");
        let model = text(r, "modelVersion");
        let event_id = match text(r, "responseId") {
            Some(id) => id,
            None => stable_id(
                NAME,
                &[
                    text(r, "createTime").as_deref(),
                    model.as_deref(),
                    text(r, "usageMetadata").as_deref(),
                ],
            ),
        };
        Ok(Some(CanonicalRow {
            event_id,
            ts,
            provider: if vertex {
                "gcp_vertex"
            } else {
                "google_gemini"
            }
            .into(),
            model: model.unwrap_or_else(|| UNKNOWN_MODEL.into()),
            input_tokens: Some(prompt + tool_prompt),
            cached_input_tokens: Some(cached),
            cache_write_tokens: Some(0),
            output_tokens: Some(candidates + thoughts),
            reasoning_tokens: Some(thoughts),
            requests: Some(1),
            status: Some(if block.is_some() { "error" } else { "ok" }.into()),
            tags: tags(&[
                (
                    "traffic_type",
                    text(r, "usageMetadata/trafficType").map(|v| json!(v)),
                ),
                ("block_reason", block.map(|v| json!(v))),
                ("ts_from_file", ts_from_file.then_some(Value::Bool(true))),
            ]),
            source: NAME.into(),
            ..Default::default()
        }))
    }
}
