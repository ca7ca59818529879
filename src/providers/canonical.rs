//! The canonical view of provider records: one [`CanonicalRow`] per request or bucket with token
//! semantics already made uniform, turned into a batch of `finops.usage_events` columns.
//!
//! Owns the row type, the batch builder (columns come from `schema::usage_events_schema`, never
//! from a list of its own) and the roll-up of billing lines. It must not parse provider fields.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Decimal128Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};

use crate::error::{Error, Result};
use crate::schema::{MONEY_PRECISION, MONEY_SCALE, usage_events_schema};

/// The model text used when a record names no model (ungrouped totals, taxes, credits).
pub const UNKNOWN_MODEL: &str = "unknown";

/// One row in the shape of `finops.usage_events` (SPEC 3.1).
///
/// Token counts follow the OpenAI convention: `input_tokens` holds every input token, cache reads
/// and cache writes included; `cached_input_tokens` and `cache_write_tokens` are subsets of it;
/// `reasoning_tokens` is a subset of `output_tokens`. `None` means the feed does not say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CanonicalRow {
    /// Provider request id, or a stable hash of the identifying fields.
    pub event_id: String,
    /// Request time or bucket start, microseconds since the epoch (UTC).
    pub ts: i64,
    /// Canonical provider name (`openai`, `anthropic`, `aws_bedrock`, ...).
    pub provider: String,
    /// Model id (or billing name) as reported.
    pub model: String,
    /// Owning team, when the record says.
    pub team: Option<String>,
    /// Application.
    pub app: Option<String>,
    /// Feature.
    pub feature: Option<String>,
    /// End user or calling principal.
    pub user_id: Option<String>,
    /// API key id (never a secret).
    pub api_key_id: Option<String>,
    /// Project, workspace, account or subscription.
    pub project: Option<String>,
    /// Environment (`prod`, `dev`, ...).
    pub environment: Option<String>,
    /// All input tokens.
    pub input_tokens: Option<i64>,
    /// Cache-read tokens (subset of input).
    pub cached_input_tokens: Option<i64>,
    /// Cache-write tokens (subset of input).
    pub cache_write_tokens: Option<i64>,
    /// All output tokens.
    pub output_tokens: Option<i64>,
    /// Reasoning tokens (subset of output).
    pub reasoning_tokens: Option<i64>,
    /// Requests this row stands for.
    pub requests: Option<i64>,
    /// `standard`, `batch`, `priority`, `flex`.
    pub service_tier: Option<String>,
    /// Latency in milliseconds.
    pub latency_ms: Option<i64>,
    /// `ok` or `error`.
    pub status: Option<String>,
    /// Prompt fingerprint from the gateway.
    pub prompt_hash: Option<String>,
    /// Reported cost scaled by `10^MONEY_SCALE`.
    pub reported_cost: Option<i128>,
    /// JSON object text of free-form labels.
    pub tags: Option<String>,
    /// The format name.
    pub source: String,
    /// For billing lines that roll up: the identity of the line, so a line delivered twice is
    /// counted once. Not a column.
    pub line_key: Option<String>,
}

/// Map a provider's tier word to the canonical `standard`/`batch`/`priority`/`flex`.
pub fn service_tier(raw: Option<&str>) -> Option<String> {
    let raw = raw?.trim().to_ascii_lowercase();
    Some(
        match raw.as_str() {
            "default" | "standard" | "on_demand" | "ondemand" => "standard",
            "scale" | "priority" | "priority_on_demand" => "priority",
            "flex" | "flex_discount" => "flex",
            "batch" => "batch",
            other => return Some(other.to_string()),
        }
        .to_string(),
    )
}

/// Build a JSON object text from optional pairs, `None` when nothing is set.
pub fn tags(pairs: &[(&str, Option<serde_json::Value>)]) -> Option<String> {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| ((*k).to_string(), v)))
        .collect();
    (!map.is_empty()).then(|| serde_json::Value::Object(map).to_string())
}

fn add(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
    }
}

/// Roll rows up: drop lines whose `line_key` was already seen (overlapping deliveries), then sum
/// rows sharing an `event_id` (the roll-up key), keeping the first row's attributes. Bucketed
/// reports use it too: two results of one bucket with the same grouping keys are one group.
pub fn roll_up(rows: Vec<CanonicalRow>) -> Vec<CanonicalRow> {
    let mut seen_lines = HashSet::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<CanonicalRow> = Vec::new();
    for row in rows {
        if let Some(key) = &row.line_key
            && !seen_lines.insert(key.clone())
        {
            continue;
        }
        match index.get(&row.event_id) {
            Some(&i) => {
                let acc = &mut out[i];
                acc.input_tokens = add(acc.input_tokens, row.input_tokens);
                acc.cached_input_tokens = add(acc.cached_input_tokens, row.cached_input_tokens);
                acc.cache_write_tokens = add(acc.cache_write_tokens, row.cache_write_tokens);
                acc.output_tokens = add(acc.output_tokens, row.output_tokens);
                acc.reasoning_tokens = add(acc.reasoning_tokens, row.reasoning_tokens);
                acc.requests = add(acc.requests, row.requests);
                acc.reported_cost = match (acc.reported_cost, row.reported_cost) {
                    (None, None) => None,
                    (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
                };
            }
            None => {
                index.insert(row.event_id.clone(), out.len());
                out.push(row);
            }
        }
    }
    for row in &mut out {
        row.line_key = None;
    }
    out
}

/// Turn canonical rows into a batch with exactly the columns of `finops.usage_events`.
pub fn to_batch(rows: &[CanonicalRow]) -> Result<RecordBatch> {
    let schema = usage_events_schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let text = |get: &dyn Fn(&CanonicalRow) -> Option<&str>| -> ArrayRef {
            let bytes = rows.iter().map(|r| get(r).map_or(0, str::len)).sum();
            let mut b = StringBuilder::with_capacity(rows.len(), bytes);
            for r in rows {
                b.append_option(get(r));
            }
            Arc::new(b.finish())
        };
        let count = |get: &dyn Fn(&CanonicalRow) -> Option<i64>| -> ArrayRef {
            let mut b = Int64Builder::with_capacity(rows.len());
            for r in rows {
                b.append_option(get(r));
            }
            Arc::new(b.finish())
        };
        let mut array: ArrayRef = match field.name().as_str() {
            "event_id" => text(&|r| Some(r.event_id.as_str())),
            "ts" => {
                let mut b = TimestampMicrosecondBuilder::new();
                for r in rows {
                    b.append_value(r.ts);
                }
                Arc::new(b.finish().with_timezone("UTC"))
            }
            "provider" => text(&|r| Some(r.provider.as_str())),
            "model" => text(&|r| Some(r.model.as_str())),
            "team" => text(&|r| r.team.as_deref()),
            "app" => text(&|r| r.app.as_deref()),
            "feature" => text(&|r| r.feature.as_deref()),
            "user_id" => text(&|r| r.user_id.as_deref()),
            "api_key_id" => text(&|r| r.api_key_id.as_deref()),
            "project" => text(&|r| r.project.as_deref()),
            "environment" => text(&|r| r.environment.as_deref()),
            "input_tokens" => count(&|r| r.input_tokens),
            "cached_input_tokens" => count(&|r| r.cached_input_tokens),
            "cache_write_tokens" => count(&|r| r.cache_write_tokens),
            "output_tokens" => count(&|r| r.output_tokens),
            "reasoning_tokens" => count(&|r| r.reasoning_tokens),
            "requests" => count(&|r| r.requests),
            "service_tier" => text(&|r| r.service_tier.as_deref()),
            "latency_ms" => count(&|r| r.latency_ms),
            "status" => text(&|r| r.status.as_deref()),
            "prompt_hash" => text(&|r| r.prompt_hash.as_deref()),
            "reported_cost" => {
                let mut b = Decimal128Builder::new();
                for r in rows {
                    b.append_option(r.reported_cost);
                }
                Arc::new(
                    b.finish()
                        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
                        .map_err(|e| Error::Internal(e.to_string()))?,
                )
            }
            "tags" => text(&|r| r.tags.as_deref()),
            "source" => text(&|r| Some(r.source.as_str())),
            other => {
                return Err(Error::Internal(format!(
                    "canonical provider rows have no value for usage_events column `{other}`"
                )));
            }
        };
        // Parsed files stay in the cache: hold no more than the rows need.
        array.shrink_to_fit();
        columns.push(array);
    }
    RecordBatch::try_new(schema, columns).map_err(|e| Error::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, line: &str, input: i64, cost: i128) -> CanonicalRow {
        CanonicalRow {
            event_id: id.into(),
            line_key: Some(line.into()),
            input_tokens: Some(input),
            reported_cost: Some(cost),
            ..Default::default()
        }
    }

    #[test]
    fn roll_up_sums_by_key_and_drops_redelivered_lines() {
        let rows = vec![
            row("a", "l1", 10, 1),
            row("a", "l2", 5, 2),
            row("a", "l2", 5, 2),
            row("b", "l3", 1, 1),
        ];
        let out = roll_up(rows);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].input_tokens, Some(15));
        assert_eq!(out[0].reported_cost, Some(3));
    }

    #[test]
    fn batch_has_usage_events_columns() {
        let batch = to_batch(&[row("a", "l", 1, 1)]).expect("batch");
        assert_eq!(batch.schema(), usage_events_schema());
    }
}
