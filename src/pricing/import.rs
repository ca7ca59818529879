//! `finops-db prices import`: the two upstream catalog formats (genai-prices `data.json`, a list of
//! providers with match rules and dated prices in USD per million tokens; litellm's
//! `model_prices_and_context_window.json`, an object keyed by model id with USD per token) turned
//! into price-book rows by the rules of `udfs/data/gen_catalog.py`, and merged into
//! `finops.model_prices`.
//!
//! Owns the conversion and the merge; the table write is one atomic replace, validated like an
//! INSERT (SQLSTATE 23514, nothing changes on failure).

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate};
use finops_udfs::pricing::{MatchKind, PriceKind, PriceRow, price_rows_to_batch};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Value};

use crate::engine::Session;
use crate::error::{Error, Result};

/// Which upstream catalog a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogFormat {
    /// pydantic/genai-prices `data.json` (a JSON array of providers).
    GenaiPrices,
    /// BerriAI/litellm `model_prices_and_context_window.json` (a JSON object keyed by model).
    LitellmModelPrices,
}

impl std::fmt::Display for CatalogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CatalogFormat::GenaiPrices => "genai-prices",
            CatalogFormat::LitellmModelPrices => "litellm model prices",
        })
    }
}

/// What an import did to `finops.model_prices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    /// The file's format.
    pub format: CatalogFormat,
    /// Price rows the file yields.
    pub rows: usize,
    /// Rows whose (provider, model, match, valid_from) was not in the table.
    pub inserted: usize,
    /// Rows that replaced a row with the same key and different prices or validity.
    pub replaced: usize,
    /// Rows identical to the row already there.
    pub unchanged: usize,
    /// Other rows of an imported (provider, model, match) whose validity overlapped an imported
    /// row, removed so the imported prices are the ones in force. (An undated imported price
    /// takes the `valid_from` of the model's range in force, so dated history is kept.)
    pub superseded: usize,
}

/// genai-prices provider id → canonical provider names (as `gen_catalog.py`).
const GENAI_PROVIDERS: &[(&str, &[&str])] = &[
    ("openai", &["openai"]),
    ("anthropic", &["anthropic"]),
    ("aws", &["aws_bedrock"]),
    ("google", &["google_gemini", "gcp_vertex"]),
    ("azure", &["azure_openai"]),
    ("openrouter", &["openrouter"]),
    ("mistral", &["mistral"]),
    ("groq", &["groq"]),
    ("deepseek", &["deepseek"]),
    ("x-ai", &["xai"]),
    ("cohere", &["cohere"]),
    ("together", &["together_ai"]),
    ("fireworks", &["fireworks_ai"]),
    ("perplexity", &["perplexity"]),
];

/// litellm `litellm_provider` → canonical provider name.
const LITELLM_PROVIDERS: &[(&str, &str)] = &[
    ("openai", "openai"),
    ("text-completion-openai", "openai"),
    ("anthropic", "anthropic"),
    ("bedrock", "aws_bedrock"),
    ("bedrock_converse", "aws_bedrock"),
    ("vertex_ai-language-models", "gcp_vertex"),
    ("vertex_ai-anthropic_models", "gcp_vertex"),
    ("vertex_ai-mistral_models", "gcp_vertex"),
    ("vertex_ai-llama_models", "gcp_vertex"),
    ("vertex_ai-embedding-models", "gcp_vertex"),
    ("vertex_ai-text-models", "gcp_vertex"),
    ("vertex_ai-chat-models", "gcp_vertex"),
    ("gemini", "google_gemini"),
    ("azure", "azure_openai"),
    ("openrouter", "openrouter"),
    ("mistral", "mistral"),
    ("groq", "groq"),
    ("deepseek", "deepseek"),
    ("xai", "xai"),
    ("cohere", "cohere"),
    ("cohere_chat", "cohere"),
    ("together_ai", "together_ai"),
    ("fireworks_ai", "fireworks_ai"),
    ("perplexity", "perplexity"),
];
const LITELLM_MODES: &[&str] = &["chat", "completion", "responses", "embedding"];
/// litellm key prefixes that only name the provider; other slashes are part of the model id.
const LITELLM_KEY_PREFIXES: &[&str] = &[
    "azure/",
    "gemini/",
    "vertex_ai/",
    "xai/",
    "groq/",
    "mistral/",
    "deepseek/",
    "openrouter/",
    "bedrock/",
    "anthropic/",
    "openai/",
    "cohere/",
    "together_ai/",
    "fireworks_ai/",
    "perplexity/",
];
/// Long-context thresholds in litellm field names, lowest first.
const LITELLM_TIERS: &[i64] = &[128_000, 200_000, 256_000, 272_000, 512_000];
/// Scale of stored prices (`Decimal128(38, 12)`).
const PRICE_SCALE: u32 = 12;

/// Read either catalog format from `text` (the format is told by the JSON's shape).
pub fn rows_from_json(file: &str, text: &str) -> Result<(CatalogFormat, Vec<PriceRow>)> {
    let value: Value = serde_json::from_str(text).map_err(|e| Error::BadCopyData {
        message: format!("{file}: not JSON: {e}"),
    })?;
    match value {
        Value::Array(providers) => Ok((CatalogFormat::GenaiPrices, genai_rows(file, &providers)?)),
        Value::Object(models) => Ok((
            CatalogFormat::LitellmModelPrices,
            litellm_rows(file, &models)?,
        )),
        _ => Err(Error::BadCopyData {
            message: format!(
                "{file}: expected a genai-prices array of providers or a litellm object of models"
            ),
        }),
    }
}

fn bad(file: &str, at: &str, message: impl std::fmt::Display) -> Error {
    Error::BadCopyData {
        message: format!("{file}, {at}: {message}"),
    }
}

/// Exact decimal of a JSON number, scaled by `factor`, at the price scale (half-even), as the
/// scaled integer the price book stores. JSON numbers keep their text through `to_string`.
fn price(value: &Value, factor: i64) -> std::result::Result<Option<i128>, String> {
    let Value::Number(n) = value else {
        return Ok(None);
    };
    let text = n.to_string();
    let d = Decimal::from_scientific(&text)
        .or_else(|_| text.parse::<Decimal>())
        .map_err(|e| format!("price {text}: {e}"))?;
    let d = d
        .checked_mul(Decimal::from(factor))
        .ok_or_else(|| format!("price {text} out of range"))?
        .round_dp_with_strategy(PRICE_SCALE, RoundingStrategy::MidpointNearestEven);
    let mut d = d;
    d.rescale(PRICE_SCALE);
    Ok(Some(d.mantissa()))
}

fn date(text: &str) -> std::result::Result<i64, String> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return day
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_micros())
            .ok_or_else(|| format!("bad date {text}"));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|e| format!("bad date {text}: {e}"))
}

// ---- genai-prices ----

/// Regex-escape only real metacharacters, as the bundled catalog does, so patterns stay readable
/// and an import of the same rule finds the same row.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if ".^$|?*+()[]{}\\".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `(match kind, pattern)` alternatives of a genai-prices rule; `and` has no single-row form.
fn flatten_match(rule: &Value) -> Vec<(MatchKind, String)> {
    let text = |key: &str| rule.get(key).and_then(Value::as_str).map(str::to_string);
    if let Some(alternatives) = rule.get("or").and_then(Value::as_array) {
        return alternatives.iter().flat_map(flatten_match).collect();
    }
    if let Some(v) = text("equals") {
        return vec![(MatchKind::Exact, v)];
    }
    if let Some(v) = text("starts_with") {
        return vec![(MatchKind::Prefix, v)];
    }
    if let Some(v) = text("contains") {
        return vec![(MatchKind::Regex, escape(&v))];
    }
    if let Some(v) = text("ends_with") {
        return vec![(MatchKind::Regex, format!("{}$", escape(&v)))];
    }
    if let Some(v) = text("regex") {
        return vec![(MatchKind::Regex, v)];
    }
    Vec::new()
}

/// genai-prices price object (USD per million, maybe tiered) into `row`.
fn genai_prices(prices: &Value, row: &mut PriceRow) -> std::result::Result<(), String> {
    let fields: [(&str, PriceKind, Option<PriceKind>); 5] = [
        ("input_mtok", PriceKind::Input, Some(PriceKind::TierInput)),
        (
            "output_mtok",
            PriceKind::Output,
            Some(PriceKind::TierOutput),
        ),
        (
            "cache_read_mtok",
            PriceKind::CacheRead,
            Some(PriceKind::TierCacheRead),
        ),
        (
            "cache_write_mtok",
            PriceKind::CacheWrite,
            Some(PriceKind::TierCacheWrite),
        ),
        ("cache_write_1h_mtok", PriceKind::CacheWrite1h, None),
    ];
    for (key, kind, tier_kind) in fields {
        let Some(value) = prices.get(key) else {
            continue;
        };
        if let Some(base) = value.get("base") {
            row.set_price(kind, price(base, 1)?);
            // One long-context tier is modelled; the first is the only one upstream uses.
            if let (Some(tier), Some(tier_kind)) = (
                value
                    .get("tiers")
                    .and_then(Value::as_array)
                    .and_then(|t| t.first()),
                tier_kind,
            ) {
                row.tier_threshold_tokens = tier.get("start").and_then(Value::as_i64);
                row.set_price(tier_kind, price(&tier["price"], 1)?);
            }
        } else {
            row.set_price(kind, price(value, 1)?);
        }
    }
    Ok(())
}

/// `(valid_from, valid_to, prices)` ranges of one genai-prices model.
fn genai_ranges(model: &Value) -> std::result::Result<Vec<PriceRow>, String> {
    let prices = &model["prices"];
    let one =
        |p: &Value, from: Option<i64>, to: Option<i64>| -> std::result::Result<PriceRow, String> {
            let mut row = PriceRow {
                valid_from: from,
                valid_to: to,
                ..PriceRow::default()
            };
            genai_prices(p, &mut row)?;
            Ok(row)
        };
    let Some(list) = prices.as_array() else {
        return Ok(vec![one(prices, None, None)?]);
    };
    let constraint = |p: &Value, key: &str| {
        p.get("constraint")
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    // Time-of-day price lists keep the constrained (standard-hours) prices for all hours.
    if let Some(timed) = list.iter().find(|p| constraint(p, "start_time").is_some()) {
        return Ok(vec![one(&timed["prices"], None, None)?]);
    }
    let mut dated: Vec<(String, &Value)> = list
        .iter()
        .map(|p| (constraint(p, "start_date").unwrap_or_default(), p))
        .collect();
    dated.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(dated.len());
    for (i, (start, entry)) in dated.iter().enumerate() {
        let from = (!start.is_empty()).then(|| date(start)).transpose()?;
        let to = dated.get(i + 1).map(|(next, _)| date(next)).transpose()?;
        out.push(one(&entry["prices"], from, to)?);
    }
    Ok(out)
}

fn genai_rows(file: &str, providers: &[Value]) -> Result<Vec<PriceRow>> {
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for (p, provider) in providers.iter().enumerate() {
        let id = provider["id"].as_str().ok_or_else(|| {
            bad(
                file,
                &format!("provider {}", p + 1),
                "no `id`: not genai-prices",
            )
        })?;
        let Some((_, canonical)) = GENAI_PROVIDERS.iter().find(|(g, _)| *g == id) else {
            continue;
        };
        let models = provider["models"].as_array().ok_or_else(|| {
            bad(
                file,
                &format!("provider {id}"),
                "no `models` list: not genai-prices",
            )
        })?;
        for model in models {
            let model_id = model["id"].as_str().unwrap_or_default();
            let at = format!("provider {id}, model {model_id}");
            let ranges = genai_ranges(model).map_err(|e| bad(file, &at, e))?;
            for (kind, pattern) in flatten_match(&model["match"]) {
                for name in canonical.iter() {
                    for range in &ranges {
                        let row = PriceRow {
                            provider: (*name).to_string(),
                            model: pattern.clone(),
                            match_kind: Some(kind),
                            source: format!("genai-prices:{id}/{model_id}"),
                            ..range.clone()
                        };
                        push(&mut rows, &mut seen, row);
                    }
                }
            }
        }
    }
    Ok(rows)
}

// ---- litellm ----

fn litellm_rows(file: &str, models: &Map<String, Value>) -> Result<Vec<PriceRow>> {
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    let mut keys: Vec<&String> = models.keys().collect();
    keys.sort();
    for key in keys {
        let entry = &models[key];
        let Some(canonical) = entry
            .get("litellm_provider")
            .and_then(Value::as_str)
            .and_then(|p| LITELLM_PROVIDERS.iter().find(|(l, _)| *l == p))
            .map(|(_, c)| *c)
        else {
            continue;
        };
        if !entry
            .get("mode")
            .and_then(Value::as_str)
            .is_some_and(|m| LITELLM_MODES.contains(&m))
        {
            continue;
        }
        let mut model_id = key.as_str();
        for prefix in LITELLM_KEY_PREFIXES {
            if let Some(rest) = model_id.strip_prefix(prefix)
                && !(canonical == "openrouter" && *prefix != "openrouter/")
            {
                model_id = rest;
                break;
            }
        }
        // Region- or deployment-qualified duplicates (`azure/eu/...`, `bedrock/us-east-1/...`).
        if ["azure_openai", "aws_bedrock", "gcp_vertex", "google_gemini"].contains(&canonical)
            && model_id.contains('/')
        {
            continue;
        }
        let mut row = PriceRow {
            provider: canonical.to_string(),
            model: model_id.to_string(),
            match_kind: Some(MatchKind::Exact),
            source: format!("litellm:{key}"),
            ..PriceRow::default()
        };
        litellm_prices(entry, &mut row).map_err(|e| bad(file, &format!("model {key}"), e))?;
        push(&mut rows, &mut seen, row);
    }
    Ok(rows)
}

fn litellm_prices(entry: &Value, row: &mut PriceRow) -> std::result::Result<(), String> {
    const PER_MILLION: i64 = 1_000_000;
    let simple = [
        (PriceKind::Input, "input_cost_per_token"),
        (PriceKind::Output, "output_cost_per_token"),
        (PriceKind::CacheRead, "cache_read_input_token_cost"),
        (PriceKind::CacheWrite, "cache_creation_input_token_cost"),
        (
            PriceKind::CacheWrite1h,
            "cache_creation_input_token_cost_above_1hr",
        ),
        (PriceKind::BatchInput, "input_cost_per_token_batches"),
        (PriceKind::BatchOutput, "output_cost_per_token_batches"),
        (PriceKind::PriorityInput, "input_cost_per_token_priority"),
        (PriceKind::PriorityOutput, "output_cost_per_token_priority"),
        (PriceKind::FlexInput, "input_cost_per_token_flex"),
        (PriceKind::FlexOutput, "output_cost_per_token_flex"),
    ];
    let get = |key: &str| entry.get(key).unwrap_or(&Value::Null);
    for (kind, key) in simple {
        row.set_price(kind, price(get(key), PER_MILLION)?);
    }
    for threshold in LITELLM_TIERS {
        let suffix = format!("_above_{}k_tokens", threshold / 1000);
        let Some(tier_input) = price(get(&format!("input_cost_per_token{suffix}")), PER_MILLION)?
        else {
            continue;
        };
        row.tier_threshold_tokens = Some(*threshold);
        row.tier_input = Some(tier_input);
        row.tier_output = price(get(&format!("output_cost_per_token{suffix}")), PER_MILLION)?;
        row.tier_cache_read = price(
            get(&format!("cache_read_input_token_cost{suffix}")),
            PER_MILLION,
        )?;
        row.tier_cache_write = price(
            get(&format!("cache_creation_input_token_cost{suffix}")),
            PER_MILLION,
        )?;
        break;
    }
    Ok(())
}

type Key = (String, String, MatchKind, Option<i64>);

fn key(row: &PriceRow) -> Key {
    (
        row.provider.clone(),
        row.model.to_ascii_lowercase(),
        row.match_kind.unwrap_or(MatchKind::Exact),
        row.valid_from,
    )
}

/// Keep a row with an input price, first one per key (as the generator does).
fn push(rows: &mut Vec<PriceRow>, seen: &mut HashSet<Key>, row: PriceRow) {
    if row.input.is_some() && seen.insert(key(&row)) {
        rows.push(row);
    }
}

fn overlaps(a: &PriceRow, b: &PriceRow) -> bool {
    a.valid_from.unwrap_or(i64::MIN) < b.valid_to.unwrap_or(i64::MAX)
        && b.valid_from.unwrap_or(i64::MIN) < a.valid_to.unwrap_or(i64::MAX)
}

/// Keep the prices a source does not list (batch, priority, flex, tiers) from the row it
/// replaces when both agree on the input and output price, as the bundled catalog merges its two
/// sources; so importing one source does not drop what the other contributed.
fn fill_from(row: &mut PriceRow, old: &PriceRow) {
    if row.input != old.input || row.output != old.output {
        return;
    }
    let tiered = row.tier_threshold_tokens.is_some();
    for kind in PriceKind::ALL {
        let tier = matches!(
            kind,
            PriceKind::TierInput
                | PriceKind::TierOutput
                | PriceKind::TierCacheRead
                | PriceKind::TierCacheWrite
        );
        if row.price(kind).is_none() && !(tier && tiered) {
            row.set_price(kind, old.price(kind));
        }
    }
    if !tiered {
        row.tier_threshold_tokens = old.tier_threshold_tokens;
    }
    if row.tier.is_none() {
        row.tier.clone_from(&old.tier);
    }
}

/// The price book after importing `imported` over `current`, and what changed.
pub fn merge(
    format: CatalogFormat,
    current: Vec<PriceRow>,
    imported: Vec<PriceRow>,
) -> (Vec<PriceRow>, ImportReport) {
    let mut report = ImportReport {
        format,
        rows: imported.len(),
        inserted: 0,
        replaced: 0,
        unchanged: 0,
        superseded: 0,
    };
    // An undated price (all of litellm's) is today's price: where the model's prices are dated,
    // it replaces the range in force now and the dated history stays.
    let mut in_force: std::collections::HashMap<(String, String, MatchKind), i64> =
        std::collections::HashMap::new();
    for row in &current {
        if let (Some(from), None) = (row.valid_from, row.valid_to) {
            let (p, m, kind, _) = key(row);
            let slot = in_force.entry((p, m, kind)).or_insert(from);
            *slot = (*slot).max(from);
        }
    }
    let mut imported = imported;
    for row in &mut imported {
        if row.valid_from.is_none() && row.valid_to.is_none() {
            let (p, m, kind, _) = key(row);
            row.valid_from = in_force.get(&(p, m, kind)).copied();
        }
    }
    let imported_keys: HashSet<Key> = imported.iter().map(key).collect();
    let mut kept = Vec::with_capacity(current.len() + imported.len());
    let mut existing: std::collections::HashMap<Key, PriceRow> = std::collections::HashMap::new();
    for row in current {
        let k = key(&row);
        if imported_keys.contains(&k) {
            existing.insert(k, row);
            continue;
        }
        let (p, m, kind, _) = &k;
        let superseded = imported.iter().any(|new| {
            new.provider == *p
                && new.model.eq_ignore_ascii_case(m)
                && new.match_kind.unwrap_or(MatchKind::Exact) == *kind
                && overlaps(new, &row)
        });
        if superseded {
            report.superseded += 1;
        } else {
            kept.push(row);
        }
    }
    for mut row in imported {
        match existing.get(&key(&row)) {
            None => report.inserted += 1,
            Some(old) => {
                fill_from(&mut row, old);
                if *old == row {
                    report.unchanged += 1;
                } else {
                    report.replaced += 1;
                }
            }
        }
        kept.push(row);
    }
    (kept, report)
}

/// Import the catalog in `text` (file name `file`, for messages) into `finops.model_prices`:
/// one atomic replace, validated like an INSERT; the UDFs' index is reloaded after and the
/// materialized views over `finops.usage` are marked for a full refresh.
pub async fn import(session: &Session, file: &str, text: &str) -> Result<ImportReport> {
    let (format, imported) = rows_from_json(file, text)?;
    let (schema, table) = super::MODEL_PRICES;
    let durable = session
        .engine()
        .storage()
        .table(schema, table)
        .ok_or_else(|| Error::TableNotFound(format!("{schema}.{table}")))?;
    let report = durable
        .replace_all(move |current| {
            let current = super::rows_of(std::slice::from_ref(&current))?;
            let (rows, report) = merge(format, current, imported);
            let book = super::validate(rows)?;
            let batch = price_rows_to_batch(book.rows()).map_err(Error::DataFusion)?;
            Ok((batch, report))
        })
        .await?;
    session.engine().reload_prices(session).await?;
    // Rows already stored are priced anew: views over them refresh fully.
    session
        .engine()
        .data_changed(&format!("{schema}.{table}"), false)
        .await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_exact_per_million() {
        let cases = [
            ("2.5e-06", 1_000_000, 2_500_000_000_000i128),
            ("1.25e-07", 1_000_000, 125_000_000_000),
            ("0.08333333333333334", 1, 83_333_333_333),
            ("3", 1, 3_000_000_000_000),
        ];
        for (text, factor, want) in cases {
            let value: Value = serde_json::from_str(text).expect("number");
            assert_eq!(price(&value, factor), Ok(Some(want)), "{text}");
        }
        assert_eq!(price(&Value::Null, 1), Ok(None));
    }

    #[test]
    fn genai_match_rules_flatten() {
        let rule: Value = serde_json::from_str(
            r#"{"or":[{"equals":"a"},{"starts_with":"b"},{"contains":"c.d"},{"ends_with":"e"},{"and":[]}]}"#,
        )
        .expect("json");
        assert_eq!(
            flatten_match(&rule),
            vec![
                (MatchKind::Exact, "a".to_string()),
                (MatchKind::Prefix, "b".to_string()),
                (MatchKind::Regex, "c\\.d".to_string()),
                (MatchKind::Regex, "e$".to_string()),
            ]
        );
    }

    #[test]
    fn merge_replaces_same_key_and_supersedes_overlaps() {
        let row = |model: &str, from: Option<i64>, to: Option<i64>, input: i128| PriceRow {
            provider: "openai".into(),
            model: model.into(),
            match_kind: Some(MatchKind::Exact),
            valid_from: from,
            valid_to: to,
            input: Some(input),
            ..PriceRow::default()
        };
        let current = vec![
            row("a", None, None, 1),
            row("b", None, None, 1),
            row("c", None, Some(10), 1),
            row("c", Some(10), None, 2),
            row("e", Some(10), Some(20), 1),
        ];
        let imported = vec![
            row("a", None, None, 2),
            row("b", None, None, 1),
            row("c", None, None, 3),
            row("d", None, None, 4),
            row("e", None, None, 5),
        ];
        let (rows, report) = merge(CatalogFormat::GenaiPrices, current, imported);
        assert_eq!(
            (
                report.inserted,
                report.replaced,
                report.unchanged,
                report.superseded
            ),
            (2, 2, 1, 1),
            "d and e are new, a and c replaced, b unchanged, e's closed range superseded"
        );
        let c: Vec<(Option<i64>, Option<i128>)> = rows
            .iter()
            .filter(|r| r.model == "c")
            .map(|r| (r.valid_from, r.input))
            .collect();
        assert_eq!(
            c,
            vec![(None, Some(1)), (Some(10), Some(3))],
            "an undated price replaces the range in force and keeps history"
        );
    }
}
