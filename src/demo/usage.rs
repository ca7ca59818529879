//! The demo's `finops.usage_events` rows: 90 days of requests drawn from the fixed world in
//! [`super::catalog`], in the canonical schema.
//!
//! Owns the traffic model (seasonality, growth, token sizes, caching, redundancy, spikes,
//! errors). It must not price rows with the price book or write files; it only keeps a rough
//! list-price tally per team so the demo budgets can be sized against the data.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate, Weekday};
use datafusion::arrow::array::{
    ArrayRef, Decimal128Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};

use super::catalog::{
    CacheStyle, FEATURES, Feature, LEGACY_PROJECT, MODELS, ORPHAN_PROJECT, SPIKES, TEAMS,
    azure_deployment, project_id,
};
use super::rng::{SplitMix64, cumulative};
use crate::schema::{MONEY_PRECISION, MONEY_SCALE, usage_events_schema};

/// Seed of the whole data set; changing it changes every row.
const SEED: u64 = 0x00F1_0B5D_E30D_A7A5;
/// Share of requests that repeat a prompt already sent the same day by the same feature.
const REPEAT_SHARE: f64 = 0.15;

/// The generated rows and what the config builders need to know about them.
#[derive(Debug, Clone)]
pub struct Generated {
    /// One batch per day, oldest first, in [`usage_events_schema`].
    pub batches: Vec<RecordBatch>,
    /// Approximate list spend per team (and `None` for unowned rows) since the first of
    /// `as_of`'s month, in USD.
    pub month_to_date: BTreeMap<Option<&'static str>, f64>,
}

/// First day of the 90-day window ending on (and including) `as_of`.
pub fn first_day(as_of: NaiveDate, days: u32) -> NaiveDate {
    as_of
        .checked_sub_days(Days::new(u64::from(days.saturating_sub(1))))
        .unwrap_or(as_of)
}

/// Generate `days` days ending on `as_of`, about `rows_per_day` rows per day on average.
pub fn generate(as_of: NaiveDate, days: u32, rows_per_day: usize) -> Generated {
    let start = first_day(as_of, days);
    let month_start = as_of.with_day(1).unwrap_or(as_of);
    let feature_table = cumulative(FEATURES.iter().map(|f| f.volume));
    let model_tables: Vec<Vec<f64>> = FEATURES
        .iter()
        .map(|f| cumulative(f.models.iter().map(|(_, w)| *w)))
        .collect();
    let hour_table = cumulative((0..24).map(|h| {
        let h = f64::from(h);
        0.25 + (-((h - 15.0) / 4.5).powi(2)).exp() + 0.35 * (-((h - 3.0) / 3.0).powi(2)).exp()
    }));
    let mut month_to_date = BTreeMap::new();
    let mut batches = Vec::with_capacity(days as usize);
    for d in 0..days {
        let Some(day) = start.checked_add_days(Days::new(u64::from(d))) else {
            break;
        };
        let mut rng = SplitMix64::derive(SEED, u64::from(day.num_days_from_ce() as u32));
        // Weekends are quiet; usage grows ~50% over the window; days wobble by ~5%.
        let weekend = match day.weekday() {
            Weekday::Sat => 0.45,
            Weekday::Sun => 0.4,
            _ => 1.0,
        };
        let growth = 0.8 + 0.4 * f64::from(d) / f64::from(days.max(2) - 1);
        // 0.843 is the mean weekday factor, so `rows_per_day` is the mean over a week.
        let factor = weekend * growth * (1.0 + 0.05 * rng.normal()) / 0.843;
        let n = (rows_per_day as f64 * factor).round().max(1.0) as usize;
        let spike = SPIKES
            .iter()
            .find(|s| as_of.checked_sub_days(Days::new(s.days_before as u64)) == Some(day));
        let mut plan = Vec::with_capacity(n + n / 10);
        for _ in 0..n {
            let feature = rng.pick_cumulative(&feature_table);
            let hour = if FEATURES[feature].batch {
                1 + rng.below(4) as i64
            } else {
                rng.pick_cumulative(&hour_table) as i64
            };
            let micros = hour * 3_600_000_000 + rng.below(3_600_000_000) as i64;
            plan.push((micros, feature, None));
        }
        if let Some(s) = spike {
            // A retry loop replays the feature's traffic twice more in the afternoon, on a
            // dearer model and with the retries' context appended.
            let share = FEATURES[s.feature].volume / feature_table.last().copied().unwrap_or(1.0);
            let extra = ((n as f64 * share * 2.0).round() as usize).max(5);
            for _ in 0..extra {
                let micros = 13 * 3_600_000_000 + rng.below(5 * 3_600_000_000) as i64;
                plan.push((micros, s.feature, Some(s.model)));
            }
        }
        plan.sort_unstable();
        let day_micros = day
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_micros())
            .unwrap_or_default();
        let mut out = DayBuilder::new(plan.len());
        let mut seen: Vec<Vec<Prompt>> = vec![Vec::new(); FEATURES.len()];
        let in_month = day >= month_start;
        for (i, (micros, feature, forced)) in plan.into_iter().enumerate() {
            let row = draw_row(&mut rng, feature, forced, &model_tables[feature], &mut seen);
            if in_month {
                *month_to_date.entry(row.team).or_insert(0.0) += row.list_cost();
            }
            let event_id = format!("demo-{}-{:06}", day.format("%Y%m%d"), i + 1);
            out.push(&event_id, day_micros + micros, &row, &mut rng);
        }
        batches.push(out.finish());
    }
    Generated {
        batches,
        month_to_date,
    }
}

/// A prompt sent earlier the same day, which a redundant request resends.
#[derive(Debug, Clone, Copy)]
struct Prompt {
    hash: u64,
    model: usize,
    input: i64,
}

/// One request before it is written out.
#[derive(Debug)]
struct Row {
    feature: &'static Feature,
    team: Option<&'static str>,
    model: usize,
    hash: u64,
    input: i64,
    cached: i64,
    cache_write: i64,
    output: i64,
    reasoning: i64,
    error: bool,
    spike: bool,
}

impl Row {
    /// Rough list cost with the sizing prices of [`MODELS`].
    fn list_cost(&self) -> f64 {
        let [input, output, read, write] = MODELS[self.model].price;
        let uncached = (self.input - self.cached - self.cache_write) as f64;
        let batch = if self.feature.batch { 0.5 } else { 1.0 };
        batch
            * (uncached * input
                + self.cached as f64 * read
                + self.cache_write as f64 * write
                + self.output as f64 * output)
            / 1e6
    }
}

fn draw_row(
    rng: &mut SplitMix64,
    feature: usize,
    forced: Option<usize>,
    model_table: &[f64],
    seen: &mut [Vec<Prompt>],
) -> Row {
    let spec = &FEATURES[feature];
    let earlier = &seen[feature];
    let repeat = forced.is_none() && !earlier.is_empty() && rng.chance(REPEAT_SHARE);
    let prompt = if repeat {
        earlier[rng.below(earlier.len() as u64) as usize]
    } else {
        let model = forced.unwrap_or_else(|| spec.models[rng.pick_cumulative(model_table)].0);
        let scale = if forced.is_some() { 1.5 } else { 1.0 };
        let input = (rng.lognormal(spec.tokens.0 * scale, 0.55).round() as i64).clamp(8, 180_000);
        Prompt {
            hash: rng.next_u64(),
            model,
            input,
        }
    };
    if !repeat && forced.is_none() {
        seen[feature].push(prompt);
    }
    let model = &MODELS[prompt.model];
    let error = rng.chance(if forced.is_some() { 0.08 } else { 0.015 });
    let mut output = if spec.tokens.1 <= 0.0 || error {
        0
    } else {
        (rng.lognormal(spec.tokens.1, 0.5).round() as i64).clamp(1, 32_000)
    };
    let mut reasoning = 0;
    if model.reasoning && output > 0 {
        // Reasoning models think before answering: the visible answer is the smaller part.
        reasoning = (output as f64 * rng.range(1.0, 4.0)).round() as i64;
        output += reasoning;
    }
    let (mut cached, mut cache_write) = (0, 0);
    if !error {
        let hit = if repeat { 0.75 } else { 0.25 };
        match model.cache {
            CacheStyle::Automatic if prompt.input >= 1024 && rng.chance(hit) => {
                // OpenAI caches in 128-token steps after the first 1024.
                let c = (prompt.input as f64 * rng.range(0.3, 0.9)) as i64;
                cached = (c / 128 * 128).max(1024).min(prompt.input);
            }
            CacheStyle::Explicit if prompt.input >= 1024 => {
                if repeat && rng.chance(0.8) {
                    cached = (prompt.input as f64 * rng.range(0.5, 0.95)) as i64;
                } else if rng.chance(0.2) {
                    cache_write = (prompt.input as f64 * rng.range(0.4, 0.9)) as i64;
                } else if rng.chance(0.3) {
                    cached = (prompt.input as f64 * rng.range(0.3, 0.9)) as i64;
                }
            }
            CacheStyle::Implicit if prompt.input >= 2048 && rng.chance(hit * 0.8) => {
                cached = (prompt.input as f64 * rng.range(0.2, 0.8)) as i64;
            }
            _ => {}
        }
    }
    // A few per cent of the traffic predates team attribution and carries no team.
    let team = if rng.chance(0.03) {
        None
    } else {
        Some(TEAMS[spec.team].name)
    };
    Row {
        feature: spec,
        team,
        model: prompt.model,
        hash: prompt.hash,
        input: prompt.input,
        cached,
        cache_write,
        output,
        reasoning,
        error,
        spike: forced.is_some(),
    }
}

/// Column builders for one day's batch.
struct DayBuilder {
    text: Vec<StringBuilder>,
    ts: TimestampMicrosecondBuilder,
    counts: Vec<Int64Builder>,
    reported_cost: Decimal128Builder,
}

/// Text columns in schema order, before and after the count columns.
const TEXT_BEFORE: usize = 10; // event_id, provider, model, team .. environment (ts is separate)
const COUNTS: usize = 6; // input .. requests
impl DayBuilder {
    fn new(capacity: usize) -> Self {
        Self {
            text: (0..TEXT_BEFORE + 5)
                .map(|_| StringBuilder::with_capacity(capacity, capacity * 16))
                .collect(),
            ts: TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            counts: (0..COUNTS + 1)
                .map(|_| Int64Builder::with_capacity(capacity))
                .collect(),
            reported_cost: Decimal128Builder::with_capacity(capacity),
        }
    }

    fn push(&mut self, event_id: &str, ts: i64, row: &Row, rng: &mut SplitMix64) {
        let model = &MODELS[row.model];
        let spec = row.feature;
        let team = TEAMS[spec.team].name;
        // Unowned rows are scripts in two old projects (one an attribution rule claims, one
        // not) that set no app, feature or user either.
        let owned = row.team.is_some();
        let project = match owned {
            true => project_id(model.provider, team),
            false if rng.chance(0.7) => LEGACY_PROJECT.to_string(),
            false => ORPHAN_PROJECT.to_string(),
        };
        let user = (spec.per_user && owned).then(|| {
            // A few heavy users per team, a long tail of light ones.
            let u = rng.unit();
            format!("user-{team}-{:02}", (u * u * 40.0) as u32 + 1)
        });
        let environment = match rng.below(100) {
            0..=84 => "prod",
            85..=94 => "staging",
            _ => "dev",
        };
        let key_owner = if owned { spec.app } else { project.as_str() };
        let key = format!(
            "key_{:012x}",
            super::rng::hash_str(&format!("{}/{key_owner}/{environment}", model.provider)) >> 16
        );
        let tags = if model.provider == "azure_openai" {
            format!(
                r#"{{"deployment":"{}","region":"eastus2"}}"#,
                azure_deployment(model.id)
            )
        } else if row.spike {
            r#"{"retry":"true","trigger":"queue-replay"}"#.to_string()
        } else {
            format!(r#"{{"cost_center":"{}"}}"#, TEAMS[spec.team].cost_center)
        };
        let base = model.latency.0 + model.latency.1 * row.output as f64 + row.input as f64 / 60.0;
        let latency = if row.error {
            50 + rng.below(30_000) as i64
        } else {
            (base * rng.lognormal(1.0, 0.3)).round() as i64
        };
        let texts: [Option<&str>; TEXT_BEFORE] = [
            Some(event_id),
            Some(model.provider),
            Some(model.id),
            row.team,
            owned.then_some(spec.app),
            owned.then_some(spec.feature),
            user.as_deref(),
            Some(&key),
            Some(&project),
            Some(environment),
        ];
        for (b, v) in self.text.iter_mut().zip(texts) {
            b.append_option(v);
        }
        self.ts.append_value(ts);
        let counts = [
            row.input,
            row.cached,
            row.cache_write,
            row.output,
            row.reasoning,
            1,
            latency,
        ];
        for (b, v) in self.counts.iter_mut().zip(counts) {
            b.append_value(v);
        }
        let hash = format!("{:016x}", row.hash);
        let after: [Option<&str>; 5] = [
            Some(if spec.batch { "batch" } else { "standard" }),
            Some(if row.error { "error" } else { "ok" }),
            Some(&hash),
            Some(&tags),
            Some("demo"),
        ];
        for (b, v) in self.text[TEXT_BEFORE..].iter_mut().zip(after) {
            b.append_option(v);
        }
        self.reported_cost.append_null();
    }

    fn finish(mut self) -> RecordBatch {
        let mut text: Vec<ArrayRef> = self
            .text
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let mut counts: Vec<ArrayRef> = self
            .counts
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let latency = counts.pop().expect("latency builder exists");
        let after = text.split_off(TEXT_BEFORE);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(24);
        columns.push(Arc::clone(&text[0]));
        columns.push(Arc::new(self.ts.finish()));
        columns.extend(text.into_iter().skip(1));
        columns.extend(counts);
        columns.push(Arc::clone(&after[0])); // service_tier
        columns.push(latency);
        columns.extend(after[1..3].iter().cloned()); // status, prompt_hash
        columns.push(Arc::new(
            self.reported_cost
                .finish()
                .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
                .expect("money precision and scale are valid"),
        ));
        columns.extend(after[3..].iter().cloned()); // tags, source
        RecordBatch::try_new(usage_events_schema(), columns)
            .expect("demo columns follow usage_events_schema")
    }
}
