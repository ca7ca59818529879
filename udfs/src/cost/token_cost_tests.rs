//! `token_cost` over whole batches against the row-at-a-time definition: every row of a
//! batch must cost exactly what resolving its model and price row alone gives, whatever the
//! other rows of the batch are (the per-batch interning and price windows are a cache).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, LargeStringArray, StringArray, StringViewArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field};
use datafusion::common::ScalarValue;
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl};

use super::TokenCostFunc;
use super::semantics::{ServiceTier, TokenUsage, row_cost};
use crate::money::parse_money;
use crate::pricing::{PriceBook, PriceBookHandle, PriceRow, parse_instant_for_tests as at};

/// One usage row; `None` fields are SQL NULLs.
#[derive(Clone, Debug, Default)]
struct Row {
    provider: Option<String>,
    model: Option<String>,
    input: Option<i64>,
    output: Option<i64>,
    cached: Option<i64>,
    cache_write: Option<i64>,
    ts: Option<i64>,
    tier: Option<String>,
    cache_write_1h: Option<i64>,
    context: Option<i64>,
}

/// The cost of one row computed alone, straight from the book (the reference).
fn expected(book: &PriceBook, row: &Row, arity: usize) -> Option<i128> {
    let count = |value: Option<i64>, index: usize| if arity > index { value } else { Some(0) };
    let usage = TokenUsage {
        input: row.input?,
        output: row.output?,
        cached: count(row.cached, 4)?,
        cache_write: count(row.cache_write, 5)?,
        cache_write_1h: count(row.cache_write_1h, 8)?,
        context: match (row.context, arity > 9) {
            (Some(context), true) => context,
            _ => row.input?,
        },
    };
    let ts = if arity > 6 {
        row.ts?
    } else {
        chrono::Utc::now().timestamp_micros()
    };
    let tier = match (&row.tier, arity > 7) {
        (Some(t), true) => ServiceTier::parse(t),
        _ => ServiceTier::Standard,
    };
    let resolved = book.resolve(row.provider.as_deref()?, row.model.as_deref()?)?;
    let price_row = book.row_index_at(resolved.entry, ts)?;
    row_cost(book.rates(price_row)?, &usage, tier)
}

#[derive(Clone, Copy)]
enum Strings {
    Utf8,
    Large,
    View,
}

fn text(values: Vec<Option<&str>>, kind: Strings) -> ArrayRef {
    match kind {
        Strings::Utf8 => Arc::new(StringArray::from(values)),
        Strings::Large => Arc::new(LargeStringArray::from(values)),
        Strings::View => Arc::new(StringViewArray::from(values)),
    }
}

/// The first `arity` argument columns of `rows`.
fn columns(rows: &[Row], arity: usize, kind: Strings) -> Vec<ColumnarValue> {
    let ints = |f: fn(&Row) -> Option<i64>| -> ArrayRef {
        Arc::new(Int64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let all: Vec<ArrayRef> = vec![
        text(rows.iter().map(|r| r.provider.as_deref()).collect(), kind),
        text(rows.iter().map(|r| r.model.as_deref()).collect(), kind),
        ints(|r| r.input),
        ints(|r| r.output),
        ints(|r| r.cached),
        ints(|r| r.cache_write),
        Arc::new(TimestampMicrosecondArray::from(
            rows.iter().map(|r| r.ts).collect::<Vec<_>>(),
        )),
        text(rows.iter().map(|r| r.tier.as_deref()).collect(), kind),
        ints(|r| r.cache_write_1h),
        ints(|r| r.context),
    ];
    all.into_iter()
        .take(arity)
        .map(ColumnarValue::Array)
        .collect()
}

fn invoke(book: &PriceBook, args: Vec<ColumnarValue>, n: usize) -> Vec<Option<i128>> {
    let func = TokenCostFunc::new(PriceBookHandle::new(
        PriceBook::from_rows(book.rows().to_vec()).expect("book"),
    ));
    let arg_fields = args
        .iter()
        .map(|a| Arc::new(Field::new("a", a.data_type(), true)))
        .collect();
    let result = func
        .invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: n,
            return_field: Arc::new(Field::new("r", DataType::Decimal128(38, 12), true)),
            config_options: Arc::new(ConfigOptions::default()),
        })
        .expect("invoke");
    let array = result.to_array(n).expect("array");
    let costs = array.as_primitive::<Decimal128Type>();
    (0..n)
        .map(|i| costs.is_valid(i).then(|| costs.value(i)))
        .collect()
}

/// Checks every row of `rows`, as one batch, against [`expected`] at every arity.
fn check(book: &PriceBook, rows: &[Row]) {
    for arity in 4..=10 {
        for kind in [Strings::Utf8, Strings::Large, Strings::View] {
            let got = invoke(book, columns(rows, arity, kind), rows.len());
            for (i, row) in rows.iter().enumerate() {
                assert_eq!(
                    got[i],
                    expected(book, row, arity),
                    "arity {arity}, row {i}: {row:?}"
                );
            }
        }
    }
}

fn usage_row(provider: &str, model: &str, ts: &str, input: i64, output: i64) -> Row {
    Row {
        provider: Some(provider.into()),
        model: Some(model.into()),
        input: Some(input),
        output: Some(output),
        cached: Some(0),
        cache_write: Some(0),
        ts: Some(at(ts)),
        tier: Some("standard".into()),
        cache_write_1h: Some(0),
        context: None,
    }
}

fn price(model: &str, from: Option<&str>, to: Option<&str>, input: &str, output: &str) -> PriceRow {
    PriceRow {
        provider: "acme".into(),
        model: model.into(),
        valid_from: from.map(at),
        valid_to: to.map(at),
        input: parse_money(input),
        output: parse_money(output),
        ..PriceRow::default()
    }
}

/// m-1 changes price at 2025-06-10 12:00; m-2 is priced in January only; m-3 always.
fn changing_book() -> PriceBook {
    PriceBook::from_rows(vec![
        price("m-1", None, Some("2025-06-10T12:00:00Z"), "1", "2"),
        price("m-1", Some("2025-06-10T12:00:00Z"), None, "3", "4"),
        price("m-2", Some("2025-01-01"), Some("2025-02-01"), "5", "6"),
        price("m-3", None, None, "0.5", "1.5"),
    ])
    .expect("book")
}

#[test]
fn one_model_on_both_sides_of_a_price_change_in_one_batch() {
    let book = changing_book();
    let m = 1_000_000;
    let rows = vec![
        usage_row("acme", "m-1", "2025-06-10T11:59:59Z", m, m),
        usage_row("acme", "m-1", "2025-06-10T12:00:00Z", m, m),
        usage_row("acme", "m-1", "2025-06-10T11:59:59.999999Z", m, m),
        usage_row("acme", "m-1", "2026-01-01T00:00:00Z", m, m),
        usage_row("acme", "m-1", "2024-01-01T00:00:00Z", m, m),
        usage_row("acme", "m-1", "2025-06-10T12:00:00Z", m, m),
    ];
    let got = invoke(&book, columns(&rows, 7, Strings::Utf8), rows.len());
    let (old, new) = (parse_money("3"), parse_money("7"));
    assert_eq!(got, vec![old, new, old, new, old, new]);
    check(&book, &rows);
}

#[test]
fn unknown_models_gaps_and_nulls_mixed_with_known_ones() {
    let book = changing_book();
    let mut rows = vec![
        usage_row("acme", "m-1", "2025-03-01", 1000, 10),
        usage_row("acme", "nope", "2025-03-01", 1000, 10),
        usage_row("acme", "m-2", "2025-01-15", 1000, 10),
        // m-2 outside its only range: unpriced, and the next row of m-2 is priced again.
        usage_row("acme", "m-2", "2025-03-01", 1000, 10),
        usage_row("acme", "m-2", "2025-01-31T23:59:59Z", 1000, 10),
        usage_row("other", "m-1", "2025-03-01", 1000, 10),
        usage_row("acme", "M-1", "2025-03-01", 1000, 10),
        usage_row("acme", "m-3", "2025-03-01", 1000, 10),
        usage_row("acme", "nope", "2025-03-01", 1000, 10),
        usage_row("acme", "m-1", "2025-09-01", 1000, 10),
    ];
    let nulls: [fn(&mut Row); 9] = [
        |r| r.provider = None,
        |r| r.model = None,
        |r| r.input = None,
        |r| r.output = None,
        |r| r.cached = None,
        |r| r.cache_write = None,
        |r| r.ts = None,
        |r| r.tier = None,
        |r| r.cache_write_1h = None,
    ];
    for set_null in nulls {
        let mut row = usage_row("acme", "m-1", "2025-03-01", 1000, 10);
        row.tier = Some("batch".into());
        set_null(&mut row);
        rows.push(row);
    }
    // Invalid counts for a known model.
    rows.push(usage_row("acme", "m-3", "2025-03-01", -1, 10));
    let mut over = usage_row("acme", "m-3", "2025-03-01", 10, 10);
    over.cached = Some(11);
    rows.push(over);

    let got = invoke(&book, columns(&rows, 7, Strings::Utf8), rows.len());
    assert!(got[0].is_some() && got[2].is_some() && got[4].is_some() && got[6].is_some());
    assert_eq!((got[1], got[3], got[5], got[8]), (None, None, None, None));
    check(&book, &rows);
}

/// Deterministic pseudo-random sequence (64-bit LCG).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound.max(1)
    }
}

#[test]
fn random_batches_over_the_bundled_book_match_row_at_a_time() {
    let book = PriceBook::bundled().expect("bundled book");
    let models = [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-2024-08-06"),
        ("openai", "o3"),
        ("openai", "o3-2025-04-16"),
        ("openai", "gpt-5"),
        ("openai", "text-embedding-3-small"),
        ("OpenAI", "GPT-4o"),
        ("anthropic", "claude-sonnet-4-5"),
        ("anthropic", "claude-3-5-sonnet-20241022"),
        ("anthropic", "claude-3-7-sonnet-20250219"),
        (
            "aws_bedrock",
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
        ),
        ("bedrock", "amazon.nova-lite-v1:0"),
        ("gcp_vertex", "claude-3-5-sonnet@20240620"),
        ("gcp_vertex", "gemini-2.5-pro"),
        ("azure_openai", "gpt-4o 0806 Inp glbl Tokens"),
        ("openrouter", "openai/gpt-4o"),
        ("acme", "unknown-model"),
        ("openai", "no-such-model-2025-01-01"),
        ("", ""),
    ];
    let tiers = [
        "standard", "batch", " Batch ", "priority", "flex", "FLEX", "auto", "other",
    ];
    let start = at("2024-06-01");
    let span = (at("2026-06-01") - start) as u64;
    let mut rng = Lcg(42);
    for batch in 0..4 {
        let n = [1, 7, 1000, 3000][batch];
        let rows: Vec<Row> = (0..n)
            .map(|_| {
                let (p, m) = models[rng.below(models.len() as u64) as usize];
                let input = rng.below(300_000) as i64;
                let maybe = |v: i64, rng: &mut Lcg| (rng.below(50) != 0).then_some(v);
                Row {
                    provider: maybe(0, &mut rng).map(|_| p.to_string()),
                    model: maybe(0, &mut rng).map(|_| m.to_string()),
                    input: maybe(input, &mut rng),
                    output: maybe(rng.below(4_000) as i64, &mut rng),
                    cached: maybe(rng.below(input as u64 / 2 + 1) as i64, &mut rng),
                    cache_write: maybe(rng.below(input as u64 / 4 + 1) as i64, &mut rng),
                    ts: maybe(start + rng.below(span) as i64, &mut rng),
                    tier: maybe(0, &mut rng)
                        .map(|_| tiers[rng.below(tiers.len() as u64) as usize].to_string()),
                    cache_write_1h: maybe(rng.below(input as u64 / 4 + 1) as i64, &mut rng),
                    context: maybe(rng.below(300_000) as i64, &mut rng),
                }
            })
            .collect();
        check(&book, &rows);
        let priced = invoke(&book, columns(&rows, 9, Strings::Utf8), n)
            .iter()
            .filter(|c| c.is_some())
            .count();
        assert!(
            n < 1000 || priced > n / 4,
            "too few priced rows: {priced}/{n}"
        );
    }
}

#[test]
fn scalar_provider_and_model_cost_like_columns() {
    let book = changing_book();
    let rows: Vec<Row> = ["2024-01-01", "2025-06-10T12:00:00Z", "2025-06-10T11:00:00Z"]
        .iter()
        .map(|ts| usage_row("acme", "m-1", ts, 1000, 10))
        .collect();
    let mut args = columns(&rows, 7, Strings::Utf8);
    let by_column = invoke(&book, args.clone(), rows.len());
    args[0] = ColumnarValue::Scalar(ScalarValue::Utf8(Some("acme".into())));
    args[1] = ColumnarValue::Scalar(ScalarValue::Utf8(Some("m-1".into())));
    assert_eq!(invoke(&book, args.clone(), rows.len()), by_column);
    assert!(by_column.iter().all(Option::is_some));
    args[1] = ColumnarValue::Scalar(ScalarValue::Utf8(None));
    assert_eq!(invoke(&book, args.clone(), rows.len()), vec![None; 3]);
    args[1] = ColumnarValue::Scalar(ScalarValue::Utf8(Some("nope".into())));
    assert_eq!(invoke(&book, args, rows.len()), vec![None; 3]);
}

#[test]
fn the_context_of_one_request_picks_the_long_context_tier() {
    let mut tiered = price("long", None, None, "3", "15");
    tiered.tier_threshold_tokens = Some(200_000);
    tiered.tier_input = parse_money("6");
    tiered.tier_output = parse_money("22.5");
    let book = PriceBook::from_rows(vec![tiered]).expect("book");
    // One day of 40 requests of 25,000 input tokens each, summed into one row.
    let bucket = |context: Option<i64>| Row {
        context,
        ..usage_row("acme", "long", "2025-03-01", 1_000_000, 100_000)
    };
    let rows = vec![
        bucket(Some(25_000)),
        bucket(None),
        bucket(Some(200_000)),
        bucket(Some(200_001)),
    ];
    let got = invoke(&book, columns(&rows, 10, Strings::Utf8), rows.len());
    let (standard, long) = (parse_money("4.5"), parse_money("8.25"));
    assert_eq!(got, vec![standard, long, standard, long]);
    check(&book, &rows);
}
