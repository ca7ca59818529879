//! `OTEL_GENAI`: OpenTelemetry GenAI telemetry as OTLP/JSON, one request per line (collector file
//! exporter): `ExportTraceServiceRequest` lines give one row per span, and
//! `ExportMetricsServiceRequest` lines one row per `gen_ai.client.token.usage` data point (DELTA
//! temporality). Point a table at spans or at metrics of an application, not both: they describe
//! the same requests.
//!
//! Owns the `gen_ai.*` attribute names of every semconv version seen (v1.37+ `provider.name`,
//! legacy `system` and `prompt_tokens`/`completion_tokens`, `cache_creation` and `cache_write`);
//! it must not receive OTLP over the network or run SQL.

use serde_json::{Map, Value, json};

use super::canonical::{CanonicalRow, UNKNOWN_MODEL, service_tier};
use super::native::{Col, Kind, col};
use super::records::Layout;
use super::value::{at, int, stable_id, text, time_nanos};
use super::{FileContext, Format};

/// The `OTEL_GENAI` format.
pub struct OtelGenai;

const NAME: &str = "OTEL_GENAI";

const A: &str = "attributes/";

static COLUMNS: [Col; 35] = [
    col("trace_id", "traceId", Kind::Text),
    col("span_id", "spanId", Kind::Text),
    col("parent_span_id", "parentSpanId", Kind::Text),
    col("name", "name", Kind::Text),
    col("kind", "kind", Kind::Int),
    col("start_time", "startTimeUnixNano", Kind::TimeNanos),
    col("end_time", "endTimeUnixNano", Kind::TimeNanos),
    col("status_code", "status/code", Kind::Int),
    col("status_message", "status/message", Kind::Text),
    col("service_name", "resource/service.name", Kind::Text),
    col("scope_name", "scope/name", Kind::Text),
    col(
        "operation_name",
        "attributes/gen_ai.operation.name",
        Kind::Text,
    ),
    col(
        "provider_name",
        "attributes/gen_ai.provider.name",
        Kind::Text,
    ),
    col("system", "attributes/gen_ai.system", Kind::Text),
    col(
        "request_model",
        "attributes/gen_ai.request.model",
        Kind::Text,
    ),
    col(
        "response_model",
        "attributes/gen_ai.response.model",
        Kind::Text,
    ),
    col("response_id", "attributes/gen_ai.response.id", Kind::Text),
    col(
        "input_tokens",
        "attributes/gen_ai.usage.input_tokens",
        Kind::Int,
    ),
    col(
        "output_tokens",
        "attributes/gen_ai.usage.output_tokens",
        Kind::Int,
    ),
    col(
        "cache_read_input_tokens",
        "attributes/gen_ai.usage.cache_read.input_tokens",
        Kind::Int,
    ),
    col(
        "cache_creation_input_tokens",
        "attributes/gen_ai.usage.cache_creation.input_tokens",
        Kind::Int,
    ),
    col(
        "reasoning_output_tokens",
        "attributes/gen_ai.usage.reasoning.output_tokens",
        Kind::Int,
    ),
    col(
        "prompt_tokens",
        "attributes/gen_ai.usage.prompt_tokens",
        Kind::Int,
    ),
    col(
        "completion_tokens",
        "attributes/gen_ai.usage.completion_tokens",
        Kind::Int,
    ),
    col("server_address", "attributes/server.address", Kind::Text),
    col("server_port", "attributes/server.port", Kind::Int),
    col("error_type", "attributes/error.type", Kind::Text),
    col("resource_attributes", "resource", Kind::Text),
    col("attributes", "attributes", Kind::Text),
    col("metric_name", "metric", Kind::Text),
    col("token_type", "attributes/gen_ai.token.type", Kind::Text),
    col("aggregation_temporality", "temporality", Kind::Int),
    col("point_time", "timeUnixNano", Kind::TimeNanos),
    col("point_count", "count", Kind::Int),
    col("point_sum", "sum", Kind::Float),
];

/// The token usage histogram of the GenAI semantic conventions.
const TOKEN_USAGE: &str = "gen_ai.client.token.usage";

/// Operations that call a model; other spans (tool calls, orchestration) count only if they
/// carry usage.
const INFERENCE: [&str; 4] = ["chat", "text_completion", "generate_content", "embeddings"];

impl Format for OtelGenai {
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
        &[]
    }

    fn expand(&self, record: Value) -> Result<Vec<Value>, String> {
        if record.get("resourceMetrics").is_some() {
            return metric_points(&record);
        }
        if record.get("resourceSpans").is_none() {
            return Err(
                "not an OTEL_GENAI record: neither resourceSpans nor resourceMetrics".into(),
            );
        }
        let mut out = Vec::new();
        for rs in array(&record, "resourceSpans")? {
            let resource = attributes(rs.get("resource").unwrap_or(&Value::Null))?;
            for ss in array(rs, "scopeSpans")? {
                let scope = ss.get("scope").cloned().unwrap_or(Value::Null);
                for span in array(ss, "spans")? {
                    let Value::Object(fields) = span else {
                        return Err("a span is not an object".into());
                    };
                    let mut flat: Map<String, Value> = fields.clone();
                    flat.insert("attributes".into(), attributes(span)?);
                    flat.insert("resource".into(), resource.clone());
                    flat.insert("scope".into(), scope.clone());
                    out.push(Value::Object(flat));
                }
            }
        }
        Ok(out)
    }

    fn canonical(&self, s: &Value, _ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        if s.get("metric").is_some() {
            return metric_row(s);
        }
        let attr = |k: &str| text(s, &format!("{A}{k}"));
        let num = |k: &str| int(s, &format!("{A}{k}"));
        // Deprecated names are read when the current one is absent.
        let input = first(
            num("gen_ai.usage.input_tokens")?,
            num("gen_ai.usage.prompt_tokens")?,
        );
        let output = first(
            num("gen_ai.usage.output_tokens")?,
            num("gen_ai.usage.completion_tokens")?,
        );
        let op = attr("gen_ai.operation.name");
        let inference = op.as_deref().is_some_and(|o| INFERENCE.contains(&o));
        if !inference && input.is_none() && output.is_none() {
            return Ok(None);
        }
        let start = time_nanos(s, "startTimeUnixNano")?.ok_or("missing `startTimeUnixNano`")?;
        let end = time_nanos(s, "endTimeUnixNano")?;
        let provider = attr("gen_ai.provider.name").or_else(|| attr("gen_ai.system"));
        let error = attr("error.type").is_some() || int(s, "status/code")? == Some(2);
        let event_id = match attr("gen_ai.response.id") {
            Some(id) => id,
            None => stable_id(
                NAME,
                &[text(s, "traceId").as_deref(), text(s, "spanId").as_deref()],
            ),
        };
        let tier = attr("openai.response.service_tier")
            .or_else(|| attr("gen_ai.openai.response.service_tier"));
        Ok(Some(CanonicalRow {
            event_id,
            ts: start,
            provider: canonical_provider(provider.as_deref()),
            model: attr("gen_ai.response.model")
                .or_else(|| attr("gen_ai.request.model"))
                .unwrap_or_else(|| UNKNOWN_MODEL.into()),
            team: text(s, "resource/team"),
            app: text(s, "resource/service.name"),
            environment: text(s, "resource/deployment.environment.name")
                .or_else(|| text(s, "resource/deployment.environment")),
            // Semconv input includes cache reads and writes (both are subsets).
            input_tokens: Some(input.unwrap_or(0)),
            cached_input_tokens: Some(num("gen_ai.usage.cache_read.input_tokens")?.unwrap_or(0)),
            cache_write_tokens: Some(
                first(
                    num("gen_ai.usage.cache_creation.input_tokens")?,
                    num("gen_ai.usage.cache_write.input_tokens")?,
                )
                .unwrap_or(0),
            ),
            output_tokens: Some(output.unwrap_or(0)),
            reasoning_tokens: num("gen_ai.usage.reasoning.output_tokens")?,
            requests: Some(1),
            service_tier: service_tier(tier.as_deref()),
            latency_ms: end.map(|e| (e - start) / 1000),
            status: Some(if error { "error" } else { "ok" }.into()),
            tags: at(s, "resource").map(Value::to_string),
            source: NAME.into(),
            ..Default::default()
        }))
    }
}

fn first(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    a.or(b)
}

fn array<'a>(v: &'a Value, key: &str) -> Result<&'a Vec<Value>, String> {
    v.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("missing `{key}` array"))
}

/// OTLP `[{key, value: {stringValue|intValue|...}}]` → a JSON object of plain values
/// (int64 stays a decimal string, as OTLP/JSON writes it).
fn attributes(owner: &Value) -> Result<Value, String> {
    let mut map = Map::new();
    if let Some(list) = owner.get("attributes").and_then(Value::as_array) {
        for kv in list {
            let key = kv
                .get("key")
                .and_then(Value::as_str)
                .ok_or("attribute without a key")?;
            map.insert(
                key.to_string(),
                any_value(kv.get("value").unwrap_or(&Value::Null)),
            );
        }
    }
    Ok(Value::Object(map))
}

fn any_value(v: &Value) -> Value {
    let Some(obj) = v.as_object() else {
        return Value::Null;
    };
    if let Some(values) = obj
        .get("arrayValue")
        .and_then(|a| a.get("values"))
        .and_then(Value::as_array)
    {
        return Value::Array(values.iter().map(any_value).collect());
    }
    for k in ["stringValue", "intValue", "doubleValue", "boolValue"] {
        if let Some(x) = obj.get(k) {
            return x.clone();
        }
    }
    json!(null)
}

/// `gen_ai.provider.name` / legacy `gen_ai.system` → canonical provider names.
fn canonical_provider(raw: Option<&str>) -> String {
    match raw.unwrap_or("unknown") {
        "aws.bedrock" => "aws_bedrock",
        "azure.ai.openai" | "az.ai.openai" | "azure_openai" => "azure_openai",
        "azure.ai.inference" | "az.ai.inference" => "azure_ai_inference",
        "gcp.vertex_ai" | "vertex_ai" | "gcp.gen_ai" => "gcp_vertex",
        "gcp.gemini" | "gemini" => "google_gemini",
        other => return other.replace('.', "_"),
    }
    .into()
}

/// One flat record per data point of the token usage histogram.
fn metric_points(record: &Value) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for rm in array(record, "resourceMetrics")? {
        let resource = attributes(rm.get("resource").unwrap_or(&Value::Null))?;
        for sm in array(rm, "scopeMetrics")? {
            let scope = sm.get("scope").cloned().unwrap_or(Value::Null);
            for metric in array(sm, "metrics")? {
                let name = metric
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let Some(hist) = metric.get("histogram").filter(|_| name == TOKEN_USAGE) else {
                    continue;
                };
                let temporality = hist.get("aggregationTemporality").cloned();
                for point in array(hist, "dataPoints")? {
                    let Value::Object(fields) = point else {
                        return Err("a data point is not an object".into());
                    };
                    let mut flat: Map<String, Value> = fields.clone();
                    flat.insert("attributes".into(), attributes(point)?);
                    flat.insert("resource".into(), resource.clone());
                    flat.insert("scope".into(), scope.clone());
                    flat.insert("metric".into(), json!(name));
                    flat.insert(
                        "temporality".into(),
                        temporality.clone().unwrap_or(Value::Null),
                    );
                    out.push(Value::Object(flat));
                }
            }
        }
    }
    Ok(out)
}

/// A token usage point: its sum is input or output tokens of the requests it counts.
fn metric_row(p: &Value) -> Result<Option<CanonicalRow>, String> {
    // OTLP enum: 1 = DELTA, 2 = CUMULATIVE. Summing cumulative points would count usage again
    // at every export.
    if int(p, "temporality")? != Some(1) {
        return Err("only DELTA token usage histograms can be summed".into());
    }
    let attr = |k: &str| text(p, &format!("{A}{k}"));
    let start = time_nanos(p, "startTimeUnixNano")?.ok_or("missing `startTimeUnixNano`")?;
    let sum = super::value::float(p, "sum")?.unwrap_or(0.0);
    // Token sums are integral; the JSON writes them as doubles.
    let tokens = sum.round() as i64;
    let input = attr("gen_ai.token.type").as_deref() == Some("input");
    let event_id = stable_id(
        NAME,
        &[
            text(p, "resource").as_deref(),
            text(p, "metric").as_deref(),
            text(p, "attributes").as_deref(),
            text(p, "startTimeUnixNano").as_deref(),
            text(p, "timeUnixNano").as_deref(),
        ],
    );
    Ok(Some(CanonicalRow {
        event_id,
        ts: start,
        provider: canonical_provider(attr("gen_ai.provider.name").as_deref()),
        model: attr("gen_ai.response.model")
            .or_else(|| attr("gen_ai.request.model"))
            .unwrap_or_else(|| UNKNOWN_MODEL.into()),
        team: text(p, "resource/team"),
        app: text(p, "resource/service.name"),
        environment: text(p, "resource/deployment.environment.name"),
        input_tokens: Some(if input { tokens } else { 0 }),
        cached_input_tokens: Some(0),
        cache_write_tokens: Some(0),
        output_tokens: Some(if input { 0 } else { tokens }),
        // Every request records one input measurement; counting those counts requests.
        requests: Some(if input {
            int(p, "count")?.unwrap_or(0)
        } else {
            0
        }),
        tags: at(p, "resource").map(Value::to_string),
        source: NAME.into(),
        ..Default::default()
    }))
}
