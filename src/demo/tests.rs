//! Behaviour of the demo data set: deterministic, canonical, realistic in the ways the KPI
//! views rely on, and readable by the provider formats it imitates.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Decimal128Type, Int64Type, TimestampMicrosecondType};

use super::*;
use crate::providers::{FileContext, OnError, parse_file};
use crate::schema::usage_events_schema;

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 15).expect("date")
}

fn text<'a>(b: &'a RecordBatch, name: &str) -> &'a datafusion::arrow::array::StringArray {
    b.column_by_name(name).expect("column").as_string::<i32>()
}

fn count(b: &RecordBatch, name: &str, i: usize) -> i64 {
    b.column_by_name(name)
        .expect("column")
        .as_primitive::<Int64Type>()
        .value(i)
}

#[test]
fn same_inputs_give_identical_batches() {
    let a = usage(as_of(), 40);
    let b = usage(as_of(), 40);
    assert_eq!(a, b);
    let other = usage(as_of().succ_opt().expect("date"), 40);
    assert_ne!(a, other);
}

#[test]
fn usage_is_90_days_of_canonical_rows_ending_on_as_of() {
    let batches = usage(as_of(), 100);
    assert_eq!(batches.len(), DAYS as usize);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert!((8_000..=10_500).contains(&rows), "{rows} rows");
    let mut ids = HashSet::new();
    let first = NaiveDate::from_ymd_opt(2026, 3, 18).expect("date");
    for b in &batches {
        assert_eq!(b.schema(), usage_events_schema());
        let ts = b.column(1).as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let day = chrono::DateTime::from_timestamp_micros(ts.value(i))
                .expect("ts")
                .date_naive();
            assert!(day >= first && day <= as_of(), "{day}");
            assert!(ids.insert(text(b, "event_id").value(i).to_string()));
        }
    }
    assert!(ids.contains("demo-20260615-000001"));
}

#[test]
fn token_columns_keep_the_canonical_subset_rules() {
    let mut reasoning_models = BTreeSet::new();
    let mut tiers = BTreeMap::<String, usize>::new();
    let mut statuses = BTreeMap::<String, usize>::new();
    for b in usage(as_of(), 100) {
        for i in 0..b.num_rows() {
            let input = count(&b, "input_tokens", i);
            let cached = count(&b, "cached_input_tokens", i);
            let write = count(&b, "cache_write_tokens", i);
            assert!(cached >= 0 && write >= 0 && cached + write <= input);
            let output = count(&b, "output_tokens", i);
            let reasoning = count(&b, "reasoning_tokens", i);
            assert!(reasoning >= 0 && reasoning <= output);
            if reasoning > 0 {
                reasoning_models.insert(text(&b, "model").value(i).to_string());
            }
            if write > 0 {
                let provider = text(&b, "provider").value(i);
                assert!(provider == "anthropic" || provider == "aws_bedrock");
            }
            assert_eq!(count(&b, "requests", i), 1);
            assert_eq!(text(&b, "source").value(i), "demo");
            assert!(b.column_by_name("reported_cost").expect("col").is_null(i));
            let tags: serde_json::Value =
                serde_json::from_str(text(&b, "tags").value(i)).expect("tags are JSON");
            assert!(tags.is_object());
            *tiers
                .entry(text(&b, "service_tier").value(i).into())
                .or_default() += 1;
            *statuses
                .entry(text(&b, "status").value(i).into())
                .or_default() += 1;
        }
    }
    assert!(reasoning_models.contains("o3-mini-2025-01-31"));
    assert!(!reasoning_models.contains("gpt-4o-2024-08-06"));
    assert!(tiers["batch"] * 100 / tiers["standard"] < 15, "{tiers:?}");
    assert!(statuses["error"] * 100 / statuses["ok"] < 5, "{statuses:?}");
}

#[test]
fn five_providers_and_about_25_models_including_one_unpriced() {
    let mut providers = BTreeSet::new();
    let mut models = BTreeSet::new();
    let mut teams = BTreeSet::new();
    for b in usage(as_of(), 60) {
        for i in 0..b.num_rows() {
            providers.insert(text(&b, "provider").value(i).to_string());
            models.insert(text(&b, "model").value(i).to_string());
            if let Some(t) = text(&b, "team").iter().nth(i).flatten() {
                teams.insert(t.to_string());
            }
        }
    }
    let expected = [
        "anthropic",
        "aws_bedrock",
        "azure_openai",
        "google_gemini",
        "openai",
    ];
    assert_eq!(
        providers.iter().map(String::as_str).collect::<Vec<_>>(),
        expected
    );
    assert!(models.len() >= 25, "{models:?}");
    assert!(models.contains(UNPRICED_MODEL));
    assert!(models.contains("us.anthropic.claude-3-5-haiku-20241022-v1:0"));
    assert_eq!(teams.len(), 12);
}

#[test]
fn about_15pct_of_requests_repeat_a_prompt_of_the_same_day() {
    let (mut repeats, mut total) = (0, 0);
    for b in usage(as_of(), 200) {
        let mut seen = HashSet::new();
        for i in 0..b.num_rows() {
            let key = (text(&b, "prompt_hash").value(i), text(&b, "model").value(i));
            total += 1;
            if !seen.insert(key) {
                repeats += 1;
            }
        }
    }
    let pct = 100.0 * f64::from(repeats) / f64::from(total);
    assert!((10.0..=18.0).contains(&pct), "{pct}%");
}

#[test]
fn weekdays_are_busier_than_weekends_and_usage_grows() {
    let batches = usage(as_of(), 400);
    // 2026-06-15 is a Monday: index 89. Saturdays are at 89 - 2 - 7k.
    let monday = batches[89].num_rows();
    let saturday = batches[87].num_rows();
    assert!(saturday * 3 < monday * 2, "{saturday} vs {monday}");
    let first: usize = batches[..28].iter().map(RecordBatch::num_rows).sum();
    let last: usize = batches[62..].iter().map(RecordBatch::num_rows).sum();
    assert!(last * 10 > first * 12, "{first} -> {last}");
}

#[test]
fn budgets_land_on_every_status() {
    let data = generate(as_of(), 100);
    let generated = usage::generate(as_of(), DAYS, 100);
    let b = &data.budgets;
    let amounts = b.column(4).as_primitive::<Decimal128Type>();
    let ids = text(b, "budget_id");
    let (mut exceeded, mut fine) = (0, 0);
    for i in 0..b.num_rows() {
        let id = ids.value(i);
        let Some(team) = id
            .strip_prefix("team-")
            .and_then(|t| t.strip_suffix("-monthly"))
        else {
            continue;
        };
        let amount = amounts.value(i) as f64 / 1e12;
        assert!(amount >= 1.0);
        let mtd = generated.month_to_date[&Some(team)];
        let teams: Vec<_> = catalog::TEAMS.iter().map(|t| t.name).collect();
        assert!(teams.contains(&team));
        if mtd > amount {
            exceeded += 1;
        } else if mtd / 15.0 * 30.0 < 0.8 * amount {
            fine += 1;
        }
    }
    assert!(
        exceeded >= 1 && fine >= 5,
        "{exceeded} exceeded, {fine} fine"
    );
    assert_eq!(text(b, "thresholds").value(0), "50,80,100");
}

#[test]
fn price_change_closes_the_old_row_where_the_new_one_starts() {
    let prices = price_changes(as_of());
    assert_eq!(prices.schema(), model_prices_schema());
    assert_eq!(prices.num_rows(), 2);
    let valid_to = prices.column(4).as_primitive::<TimestampMicrosecondType>();
    let valid_from = prices.column(3).as_primitive::<TimestampMicrosecondType>();
    assert!(valid_from.is_null(0) && valid_to.is_null(1));
    assert_eq!(valid_to.value(0), valid_from.value(1));
    let input = prices.column(5).as_primitive::<Decimal128Type>();
    assert!(input.value(1) < input.value(0));
    assert_eq!(price_change_date(as_of()).to_string(), "2026-05-01");
}

#[test]
fn config_sql_inserts_every_config_row() {
    let data = generate(as_of(), 20);
    let sql = data.config_sql().expect("sql");
    for table in CONFIG_TABLES {
        assert!(sql.contains(&format!("INSERT INTO {table} (")), "{table}");
    }
    assert!(sql.contains("'2026-05-01 00:00:00+00:00'"));
    assert!(sql.contains("'50,80,100'"));
    let rules = data.attribution_rules.num_rows();
    assert_eq!(rules, 25);
}

#[test]
fn exports_parse_with_the_provider_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exports = write_exports(dir.path(), as_of()).expect("exports");
    assert_eq!(exports.len(), 2);
    for e in &exports {
        let files: Vec<_> = std::fs::read_dir(&e.path)
            .expect("folder")
            .map(|f| f.expect("entry").path())
            .collect();
        assert_eq!(files.len(), 1);
        let bytes = std::fs::read(&files[0]).expect("read");
        let name = files[0].display().to_string();
        let ctx = FileContext {
            file: &name,
            modified: None,
        };
        let parsed = parse_file(e.format, &ctx, &bytes, OnError::Fail).expect("parses");
        assert!(parsed.canonical.num_rows() > 10, "{}", e.format);
        let (lo, hi) = parsed.ts_range.expect("ts range");
        let day = |micros: i64| {
            chrono::DateTime::from_timestamp_micros(micros)
                .expect("ts")
                .date_naive()
        };
        assert_eq!(day(lo), NaiveDate::from_ymd_opt(2026, 6, 8).expect("date"));
        assert_eq!(day(hi), NaiveDate::from_ymd_opt(2026, 6, 14).expect("date"));
        assert!(
            e.create_statement()
                .contains(&format!("STORED AS {}", e.format))
        );
    }
}

#[test]
fn write_demo_writes_parquet_config_exports_and_readme() {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = write_demo(dir.path(), as_of()).expect("write");
    assert!(manifest.usage_rows > 150_000, "{}", manifest.usage_rows);
    let file = std::fs::File::open(&manifest.usage_path).expect("parquet");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("reader");
    assert_eq!(reader.schema().as_ref(), usage_events_schema().as_ref());
    let rows: usize = reader
        .build()
        .expect("build")
        .map(|b| b.expect("batch").num_rows())
        .sum();
    assert_eq!(rows, manifest.usage_rows);
    assert_eq!(manifest.config_csv.len(), CONFIG_TABLES.len());
    for (_, path) in &manifest.config_csv {
        let csv = std::fs::read_to_string(path).expect("csv");
        assert!(csv.lines().count() > 1, "{}", path.display());
    }
    let readme = std::fs::read_to_string(&manifest.readme_path).expect("readme");
    assert!(readme.contains("usage_events.parquet"));
    assert!(readme.contains("STORED AS OPENAI_USAGE"));
    let again = tempfile::tempdir().expect("tempdir");
    write_demo(again.path(), as_of()).expect("write");
    let bytes = |d: &std::path::Path| std::fs::read(d.join("usage_events.parquet")).expect("read");
    assert_eq!(bytes(dir.path()), bytes(again.path()), "not byte-identical");
}
