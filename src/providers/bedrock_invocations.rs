//! `BEDROCK_INVOCATIONS`: Amazon Bedrock model invocation logs (`ModelInvocationLog` 1.0), one
//! JSON record per line as delivered to S3 (often `.json.gz`) or CloudWatch.
//!
//! Owns Bedrock's token semantics (`inputTokenCount` excludes cache reads and writes, which are
//! added to make the canonical total); it must not call AWS or run SQL.

use serde_json::{Value, json};

use super::canonical::CanonicalRow;
use super::native::{Col, Kind, col};
use super::records::Layout;
use super::value::{at, int, int0, need_text, need_time, text};
use super::{FileContext, Format};

/// The `BEDROCK_INVOCATIONS` format.
pub struct BedrockInvocations;

const NAME: &str = "BEDROCK_INVOCATIONS";

static COLUMNS: [Col; 21] = [
    col("schema_type", "schemaType", Kind::Text),
    col("schema_version", "schemaVersion", Kind::Text),
    col("timestamp", "timestamp", Kind::Time),
    col("account_id", "accountId", Kind::Text),
    col("identity_arn", "identity/arn", Kind::Text),
    col("region", "region", Kind::Text),
    col("inference_region", "inferenceRegion", Kind::Text),
    col("request_id", "requestId", Kind::Text),
    col("operation", "operation", Kind::Text),
    col("model_id", "modelId", Kind::Text),
    col("input_content_type", "input/inputContentType", Kind::Text),
    col("input_token_count", "input/inputTokenCount", Kind::Int),
    col(
        "cache_read_input_token_count",
        "input/cacheReadInputTokenCount",
        Kind::Int,
    ),
    col(
        "cache_write_input_token_count",
        "input/cacheWriteInputTokenCount",
        Kind::Int,
    ),
    col("input_body_s3_path", "input/inputBodyS3Path", Kind::Text),
    col(
        "output_content_type",
        "output/outputContentType",
        Kind::Text,
    ),
    col("output_token_count", "output/outputTokenCount", Kind::Int),
    col(
        "latency_ms",
        "output/outputBodyJson/metrics/latencyMs",
        Kind::Int,
    ),
    col(
        "stop_reason",
        "output/outputBodyJson/stopReason",
        Kind::Text,
    ),
    col("request_metadata", "requestMetadata", Kind::Text),
    col("error_code", "errorCode", Kind::Text),
];

impl Format for BedrockInvocations {
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
        &["requestId", "modelId", "timestamp"]
    }

    fn canonical(&self, r: &Value, _ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        let uncached = int0(r, "input/inputTokenCount")?;
        let read = int0(r, "input/cacheReadInputTokenCount")?;
        let write = int0(r, "input/cacheWriteInputTokenCount")?;
        let error = text(r, "errorCode");
        // Caller-supplied request metadata is the attribution Bedrock offers; keep it as tags.
        let mut labels = match at(r, "requestMetadata") {
            Some(Value::Object(m)) => m.clone(),
            _ => serde_json::Map::new(),
        };
        let team = labels
            .get("team")
            .and_then(Value::as_str)
            .map(str::to_string);
        for (k, p) in [
            ("region", "region"),
            ("inference_region", "inferenceRegion"),
        ] {
            if let Some(v) = text(r, p) {
                labels.entry(k).or_insert(json!(v));
            }
        }
        if let Some(e) = &error {
            labels.entry("error_code").or_insert(json!(e));
        }
        Ok(Some(CanonicalRow {
            event_id: need_text(r, "requestId")?,
            ts: need_time(r, "timestamp")?,
            provider: "aws_bedrock".into(),
            // Base ids, `us.`/`global.` profile ids and profile ARNs stay as reported.
            model: need_text(r, "modelId")?,
            team,
            user_id: text(r, "identity/arn"),
            project: text(r, "accountId"),
            input_tokens: Some(uncached + read + write),
            cached_input_tokens: Some(read),
            cache_write_tokens: Some(write),
            output_tokens: Some(int0(r, "output/outputTokenCount")?),
            requests: Some(1),
            latency_ms: int(r, "output/outputBodyJson/metrics/latencyMs")?,
            status: Some(if error.is_some() { "error" } else { "ok" }.into()),
            tags: (!labels.is_empty()).then(|| Value::Object(labels).to_string()),
            source: NAME.into(),
            ..Default::default()
        }))
    }
}
