//! The demo's provider export folders: an OpenAI Admin Usage API page and Bedrock model
//! invocation logs for the last 7 days, laid out exactly as the providers deliver them.
//!
//! Owns the content and layout of these files. It must not parse them or register tables: the
//! engine registers each folder with `CREATE EXTERNAL TABLE providers.<name> STORED AS <format>
//! LOCATION '<dir>'`. The traffic here is direct API use that bypasses the gateway, so it adds
//! to the native rows rather than duplicating them.

use std::path::{Path, PathBuf};

use chrono::{Days, NaiveDate};
use serde_json::{Value, json};

use super::catalog::{MODELS, TEAMS, project_id};
use super::rng::{SplitMix64, cumulative, hash_str};
use crate::error::{Error, Result};

/// Days of provider exports, ending the day before `as_of` (exports lag a day).
pub const EXPORT_DAYS: u64 = 7;
const SEED: u64 = 0x0E4B_0A7D_5EED_0001;

/// One export folder written for the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoExport {
    /// Table name to register it as, in schema `providers`.
    pub table: &'static str,
    /// `STORED AS` format.
    pub format: &'static str,
    /// The folder holding the files.
    pub path: PathBuf,
}

impl DemoExport {
    /// The statement that registers this folder.
    pub fn create_statement(&self) -> String {
        format!(
            "CREATE EXTERNAL TABLE providers.{} STORED AS {} LOCATION '{}';",
            self.table,
            self.format,
            self.path.display().to_string().replace('\'', "''")
        )
    }
}

/// Write the export folders under `dir` (`dir/openai_usage/`, `dir/bedrock_invocations/`).
pub fn write_exports(dir: &Path, as_of: NaiveDate) -> Result<Vec<DemoExport>> {
    let openai = dir.join("openai_usage");
    let bedrock = dir.join("bedrock_invocations");
    for d in [&openai, &bedrock] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d.display().to_string(), e))?;
    }
    let page = openai_usage_page(as_of);
    let text = serde_json::to_string_pretty(&page)
        .map_err(|e| Error::Internal(format!("demo OpenAI page: {e}")))?;
    write(&openai.join("usage_completions.json"), text + "\n")?;
    let mut lines = String::new();
    for record in bedrock_invocations(as_of) {
        lines.push_str(&record.to_string());
        lines.push('\n');
    }
    write(&bedrock.join("invocation_logs.jsonl"), lines)?;
    Ok(vec![
        DemoExport {
            table: "openai_usage",
            format: "OPENAI_USAGE",
            path: openai,
        },
        DemoExport {
            table: "bedrock_invocations",
            format: "BEDROCK_INVOCATIONS",
            path: bedrock,
        },
    ])
}

fn write(path: &Path, content: String) -> Result<()> {
    std::fs::write(path, content).map_err(|e| Error::io(path.display().to_string(), e))
}

fn export_days(as_of: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    (1..=EXPORT_DAYS)
        .rev()
        .filter_map(move |k| as_of.checked_sub_days(Days::new(k)))
}

fn midnight(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp())
        .unwrap_or_default()
}

/// Teams that also call OpenAI directly (notebooks, scripts) with their own project keys.
const OPENAI_DIRECT: [(usize, &str, f64); 3] = [
    (4, "gpt-4o-2024-08-06", 1.0),
    (4, "o3-mini-2025-01-31", 0.6),
    (3, "gpt-4o-mini-2024-07-18", 1.4),
];

/// One `/v1/organization/usage/completions` page, `bucket_width=1d`, grouped by project, key,
/// model and batch: the shape of `shared/fixtures/openai/usage_completions.json`.
pub fn openai_usage_page(as_of: NaiveDate) -> Value {
    let mut rng = SplitMix64::derive(SEED, 1);
    let buckets: Vec<Value> = export_days(as_of)
        .map(|day| {
            let start = midnight(day);
            let mut results = Vec::new();
            for (team, model, scale) in OPENAI_DIRECT {
                let team = TEAMS[team].name;
                for batch in [false, true] {
                    if batch && !model.starts_with("gpt-4o-mini") {
                        continue;
                    }
                    let requests = (rng.lognormal(180.0 * scale, 0.3).round() as i64).max(1);
                    let input = requests * rng.lognormal(1800.0, 0.2).round() as i64;
                    let output = requests * rng.lognormal(350.0, 0.2).round() as i64;
                    let cached = if batch {
                        0
                    } else {
                        (input as f64 * rng.range(0.1, 0.4)) as i64 / 128 * 128
                    };
                    let key = format!("key_{:012x}", hash_str(&format!("direct/{team}")) >> 16);
                    results.push(json!({
                        "object": "organization.usage.completions.result",
                        "input_tokens": input,
                        "output_tokens": output,
                        "input_cached_tokens": cached,
                        "input_audio_tokens": 0,
                        "output_audio_tokens": 0,
                        "num_model_requests": requests,
                        "project_id": project_id("openai", team),
                        "user_id": null,
                        "api_key_id": key,
                        "model": model,
                        "batch": batch,
                        "service_tier": if batch { "batch" } else { "default" },
                        "input_cache_write_tokens": 0,
                        "input_uncached_tokens": input - cached,
                        "input_text_tokens": input - cached,
                        "input_cached_text_tokens": cached,
                        "input_cached_audio_tokens": 0,
                        "input_image_tokens": 0,
                        "input_cached_image_tokens": 0,
                        "output_text_tokens": output,
                        "output_image_tokens": 0
                    }));
                }
            }
            json!({
                "object": "bucket",
                "start_time": start,
                "end_time": start + 86_400,
                "results": results
            })
        })
        .collect();
    json!({
        "object": "page",
        "data": buckets,
        "has_more": false,
        "next_page": null
    })
}

/// Teams that call Bedrock from their own AWS accounts, with the model indices they use.
const BEDROCK_DIRECT: [(usize, &str, &[usize]); 3] = [
    (5, "code-review", &[17, 15, 20]),
    (1, "ticket-triage", &[16, 19]),
    (9, "invoice-parser", &[18, 16]),
];

/// Bedrock model invocation log records (CloudWatch/S3 JSON, one per line), ~12 a day per team.
pub fn bedrock_invocations(as_of: NaiveDate) -> Vec<Value> {
    let mut rng = SplitMix64::derive(SEED, 2);
    let mut records = Vec::new();
    for day in export_days(as_of) {
        let start = midnight(day);
        let mut day_records: Vec<(i64, Value)> = Vec::new();
        for (team, app, models) in BEDROCK_DIRECT {
            let team = TEAMS[team].name;
            let account = project_id("aws_bedrock", team);
            let table = cumulative(models.iter().map(|_| 1.0));
            for _ in 0..(8 + rng.below(8)) {
                let model = &MODELS[models[rng.pick_cumulative(&table)]];
                let ts = start + 8 * 3600 + rng.below(11 * 3600) as i64;
                let claude = model.id.contains("anthropic.claude");
                let uncached = rng.lognormal(2500.0, 0.6).round() as i64;
                let (read, write) = match (claude, rng.below(3)) {
                    (true, 0) => (rng.lognormal(3000.0, 0.3).round() as i64, 0),
                    (true, 1) => (0, rng.lognormal(3000.0, 0.3).round() as i64),
                    _ => (0, 0),
                };
                let error = rng.chance(0.04);
                let output = if error {
                    0
                } else {
                    rng.lognormal(300.0, 0.6).round() as i64
                };
                let latency = (model.latency.0 + model.latency.1 * output as f64) as i64;
                let time = chrono::DateTime::from_timestamp(ts, 0)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default();
                let mut record = json!({
                    "schemaType": "ModelInvocationLog",
                    "schemaVersion": "1.0",
                    "timestamp": time,
                    "accountId": account,
                    "identity": {"arn": format!("arn:aws:sts::{account}:assumed-role/{app}-runtime/{app}")},
                    "region": "us-east-1",
                    "requestId": uuid(&mut rng),
                    "operation": "Converse",
                    "modelId": model.id,
                    "input": {
                        "inputContentType": "application/json",
                        "inputTokenCount": uncached,
                        "cacheReadInputTokenCount": read,
                        "cacheWriteInputTokenCount": write
                    },
                    "output": {
                        "outputContentType": "application/json",
                        "outputTokenCount": output,
                        "outputBodyJson": {
                            "stopReason": if error { "error" } else { "end_turn" },
                            "metrics": {"latencyMs": latency},
                            "usage": {
                                "inputTokens": uncached,
                                "outputTokens": output,
                                "totalTokens": uncached + read + write + output,
                                "cacheReadInputTokens": read,
                                "cacheWriteInputTokens": write
                            }
                        }
                    },
                    "inferenceRegion": if model.id.starts_with("us.") { "us-west-2" } else { "us-east-1" },
                    "requestMetadata": {"team": team, "app": app}
                });
                if error {
                    record["errorCode"] = json!("ThrottlingException");
                }
                day_records.push((ts, record));
            }
        }
        day_records.sort_by_key(|(ts, _)| *ts);
        records.extend(day_records.into_iter().map(|(_, r)| r));
    }
    records
}

/// A random (version 4 layout) UUID from the demo stream, for Bedrock request ids.
fn uuid(rng: &mut SplitMix64) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}
