//! `LITELLM_SPEND`: the LiteLLM proxy's `LiteLLM_SpendLogs` table exported as CSV, one row per
//! request through the gateway.
//!
//! Owns the gateway's columns and where it keeps what the columns lack (cached tokens and team
//! in the `metadata` JSON); it must not talk to the proxy or run SQL.

use serde_json::{Value, json};

use super::canonical::{CanonicalRow, UNKNOWN_MODEL};
use super::native::{Col, Kind, col};
use super::records::Layout;
use super::value::{at, int, int0, money, need_text, need_time, text};
use super::{FileContext, Format};

/// The `LITELLM_SPEND` format.
pub struct LitellmSpend;

const NAME: &str = "LITELLM_SPEND";

static COLUMNS: [Col; 32] = [
    col("request_id", "request_id", Kind::Text),
    col("call_type", "call_type", Kind::Text),
    col("api_key", "api_key", Kind::Text),
    col("spend", "spend", Kind::Money),
    col("total_tokens", "total_tokens", Kind::Int),
    col("prompt_tokens", "prompt_tokens", Kind::Int),
    col("completion_tokens", "completion_tokens", Kind::Int),
    col("start_time", "starttime", Kind::Time),
    col("end_time", "endtime", Kind::Time),
    col("request_duration_ms", "request_duration_ms", Kind::Int),
    col("completion_start_time", "completionstarttime", Kind::Time),
    col("model", "model", Kind::Text),
    col("model_id", "model_id", Kind::Text),
    col("model_group", "model_group", Kind::Text),
    col("custom_llm_provider", "custom_llm_provider", Kind::Text),
    col("api_base", "api_base", Kind::Text),
    col("user", "user", Kind::Text),
    col("metadata", "metadata", Kind::Text),
    col("cache_hit", "cache_hit", Kind::Text),
    col("cache_key", "cache_key", Kind::Text),
    col("request_tags", "request_tags", Kind::Text),
    col("team_id", "team_id", Kind::Text),
    col("organization_id", "organization_id", Kind::Text),
    col("end_user", "end_user", Kind::Text),
    col("requester_ip_address", "requester_ip_address", Kind::Text),
    col("messages", "messages", Kind::Text),
    col("response", "response", Kind::Text),
    col("session_id", "session_id", Kind::Text),
    col("status", "status", Kind::Text),
    col(
        "mcp_namespaced_tool_name",
        "mcp_namespaced_tool_name",
        Kind::Text,
    ),
    col("agent_id", "agent_id", Kind::Text),
    col("proxy_server_request", "proxy_server_request", Kind::Text),
];

impl Format for LitellmSpend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn layout(&self) -> Layout {
        Layout::Csv
    }

    fn columns(&self) -> &'static [Col] {
        &COLUMNS
    }

    fn required(&self) -> &'static [&'static str] {
        &["request_id", "spend", "prompt_tokens", "starttime"]
    }

    fn canonical(&self, r: &Value, _ctx: &FileContext<'_>) -> Result<Option<CanonicalRow>, String> {
        let spend = money(r, "spend", 0)?;
        let call_type = text(r, "call_type").unwrap_or_default();
        // MCP tool calls are not model usage; keep them out unless they cost something.
        if call_type == "call_mcp_tool" && spend.unwrap_or(0) == 0 {
            return Ok(None);
        }
        let meta = json_cell(r, "metadata")?;
        let m = |p: &str| at(&meta, p).map(super::value::value_to_text);
        let gateway = text(r, "custom_llm_provider");
        let raw_model = text(r, "model").unwrap_or_default();
        // `bedrock/anthropic.claude-...`: the prefix names LiteLLM's route, not the model.
        let (prefix, model) = match raw_model.split_once('/') {
            Some((p, m)) if is_route(p) => (Some(p.to_string()), m.to_string()),
            _ => (None, raw_model.clone()),
        };
        let provider = canonical_provider(gateway.as_deref().or(prefix.as_deref()));
        // A proxy cache hit never reached the provider: no provider tokens were used.
        let cache_hit = text(r, "cache_hit").is_some_and(|c| c.eq_ignore_ascii_case("true"));
        let usage = |v: i64| Some(if cache_hit { 0 } else { v });
        let cached = int(
            &meta,
            "additional_usage_values/prompt_tokens_details/cached_tokens",
        )?
        .or(int(
            &meta,
            "additional_usage_values/cache_read_input_tokens",
        )?)
        .unwrap_or(0);
        let cache_write = int0(&meta, "additional_usage_values/cache_creation_input_tokens")?;
        let failed = text(r, "status").is_some_and(|s| s.eq_ignore_ascii_case("failure"));
        let mut labels = serde_json::Map::new();
        if let Value::Array(t) = json_cell(r, "request_tags")?
            && !t.is_empty()
        {
            labels.insert("request_tags".into(), Value::Array(t));
        }
        if let Some(Value::Object(extra)) = at(&meta, "spend_logs_metadata") {
            labels.extend(extra.clone());
        }
        if cache_hit {
            labels.insert("cache_hit".into(), json!(true));
        }
        Ok(Some(CanonicalRow {
            event_id: need_text(r, "request_id")?,
            ts: need_time(r, "starttime")?,
            provider,
            model: if model.is_empty() {
                UNKNOWN_MODEL.into()
            } else {
                model
            },
            team: text(r, "team_id").or_else(|| m("user_api_key_team_id")),
            feature: m("spend_logs_metadata/feature"),
            user_id: text(r, "user")
                .or_else(|| text(r, "end_user"))
                .or_else(|| m("user_api_key_user_id")),
            // Already a SHA-256 hash of the virtual key, never the key itself.
            api_key_id: text(r, "api_key"),
            project: m("project_id"),
            // LiteLLM reports usage in the OpenAI shape: prompt tokens include cached ones.
            input_tokens: usage(int0(r, "prompt_tokens")?),
            cached_input_tokens: usage(cached),
            cache_write_tokens: usage(cache_write),
            output_tokens: usage(int0(r, "completion_tokens")?),
            requests: Some(1),
            latency_ms: int(r, "request_duration_ms")?,
            status: Some(if failed { "error" } else { "ok" }.into()),
            reported_cost: spend,
            tags: (!labels.is_empty()).then(|| Value::Object(labels).to_string()),
            source: NAME.into(),
            ..Default::default()
        }))
    }
}

/// A JSON text cell parsed, `Null` when empty.
fn json_cell(r: &Value, path: &str) -> Result<Value, String> {
    match text(r, path) {
        None => Ok(Value::Null),
        Some(s) => serde_json::from_str(&s).map_err(|e| format!("`{path}` is not JSON: {e}")),
    }
}

fn is_route(prefix: &str) -> bool {
    matches!(
        prefix,
        "openai"
            | "azure"
            | "azure_ai"
            | "bedrock"
            | "vertex_ai"
            | "vertex_ai_beta"
            | "gemini"
            | "anthropic"
            | "openrouter"
            | "groq"
            | "mistral"
            | "cohere"
            | "deepseek"
            | "xai"
    )
}

/// LiteLLM's `custom_llm_provider` → canonical provider names.
fn canonical_provider(raw: Option<&str>) -> String {
    match raw.unwrap_or("unknown") {
        "azure" | "azure_ai" => "azure_openai",
        "bedrock" => "aws_bedrock",
        "vertex_ai" | "vertex_ai_beta" => "gcp_vertex",
        "gemini" => "google_gemini",
        other => other,
    }
    .into()
}
