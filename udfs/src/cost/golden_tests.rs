//! Golden cost tests: every semantic of SPEC 3.4 against the bundled catalog, with the
//! expected value worked out by hand from the catalog row named in each case.

use super::semantics::{ServiceTier, TokenUsage, row_cost};
use crate::money::parse_money;
use crate::pricing::{PriceBook, PriceRow, parse_instant_for_tests as at};

fn cost(
    book: &PriceBook,
    provider: &str,
    model: &str,
    usage: TokenUsage,
    tier: ServiceTier,
    ts: &str,
) -> Option<i128> {
    let resolved = book.resolve(provider, model)?;
    let row = book.row_index_at(resolved.entry, at(ts))?;
    row_cost(book.rates(row)?, &usage, tier)
}

fn usage(
    input: i64,
    output: i64,
    cached: i64,
    cache_write: i64,
    cache_write_1h: i64,
) -> TokenUsage {
    TokenUsage {
        input,
        output,
        cached,
        cache_write,
        cache_write_1h,
        context: input,
    }
}

/// (name, provider, model, usage, tier, ts, expected USD)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    TokenUsage,
    ServiceTier,
    &'static str,
    Option<&'static str>,
);

const TS: &str = "2025-09-01T12:00:00Z";
use ServiceTier::{Batch, Flex, Priority, Standard};

#[test]
fn golden_costs_match_hand_computed_values() {
    let book = PriceBook::bundled().expect("bundled book");
    // (name, provider, model, usage, tier, ts, expected USD)
    let cases: Vec<Case> = vec![
        // openai gpt-4o: input 2.5, output 10, cache_read 1.25, batch 1.25/5, priority 4.25/17
        (
            "standard",
            "openai",
            "gpt-4o",
            usage(1_000_000, 1_000_000, 0, 0, 0),
            Standard,
            TS,
            Some("12.5"),
        ),
        // 5904*2.5 + 4096*1.25 + 500*10 = 24880 µ$
        (
            "cache_read_price",
            "openai",
            "gpt-4o",
            usage(10_000, 500, 4096, 0, 0),
            Standard,
            TS,
            Some("0.02488"),
        ),
        // dated id resolves to its own exact row (same prices)
        (
            "dated_id",
            "openai",
            "gpt-4o-2024-08-06",
            usage(1_000_000, 1_000_000, 0, 0, 0),
            Standard,
            TS,
            Some("12.5"),
        ),
        (
            "batch_price",
            "openai",
            "gpt-4o",
            usage(1_000_000, 1_000_000, 0, 0, 0),
            Batch,
            TS,
            Some("6.25"),
        ),
        // batch cache read follows batch_input/input = 1/2: 800000*1.25 + 200000*0.625
        (
            "batch_cache_read",
            "openai",
            "gpt-4o",
            usage(1_000_000, 0, 200_000, 0, 0),
            Batch,
            TS,
            Some("1.125"),
        ),
        (
            "priority",
            "openai",
            "gpt-4o",
            usage(1_000_000, 1_000_000, 0, 0, 0),
            Priority,
            TS,
            Some("21.25"),
        ),
        // priority cache read = 1.25 * 4.25/2.5 = 2.125 (litellm lists 2.125)
        (
            "priority_cache_read",
            "openai",
            "gpt-4o",
            usage(1_000_000, 0, 1_000_000, 0, 0),
            Priority,
            TS,
            Some("2.125"),
        ),
        // gpt-5: flex 0.625/5
        (
            "flex",
            "openai",
            "gpt-5",
            usage(1_000_000, 1_000_000, 0, 0, 0),
            Flex,
            TS,
            Some("5.625"),
        ),
        (
            "unknown_tier_is_standard",
            "openai",
            "gpt-5",
            usage(1_000_000, 1_000_000, 0, 0, 0),
            Standard,
            TS,
            Some("11.25"),
        ),
        // anthropic claude-sonnet-4-5: 3/15, cache_read 0.3, cache_write 3.75, 1h 6,
        // tier > 200000: 6 / 22.5 / 0.6 / 7.5
        // 5000*3 + 3000*0.3 + 2000*3.75 + 1000*15 = 38400 µ$
        (
            "cache_write_5m",
            "anthropic",
            "claude-sonnet-4-5",
            usage(10_000, 1000, 3000, 2000, 0),
            Standard,
            TS,
            Some("0.0384"),
        ),
        // 5000*3 + 3000*0.3 + 2000*6 + 1000*15 = 42900 µ$
        (
            "cache_write_1h",
            "anthropic",
            "claude-sonnet-4-5",
            usage(10_000, 1000, 3000, 0, 2000),
            Standard,
            TS,
            Some("0.0429"),
        ),
        // no batch price in the row: half of 3 and 15: 100000*1.5 + 100000*7.5
        (
            "batch_half_price_fallback",
            "anthropic",
            "claude-sonnet-4-5",
            usage(100_000, 100_000, 0, 0, 0),
            Batch,
            TS,
            Some("0.9"),
        ),
        // batch on a long-context request halves the tier prices: 250000*3 + 1000*11.25
        (
            "batch_long_context",
            "anthropic",
            "claude-sonnet-4-5",
            usage(250_000, 1000, 0, 0, 0),
            Batch,
            TS,
            Some("0.76125"),
        ),
        // 250000*6 + 10000*22.5 = 1725000 µ$
        (
            "long_context_tier",
            "anthropic",
            "claude-sonnet-4-5",
            usage(250_000, 10_000, 0, 0, 0),
            Standard,
            TS,
            Some("1.725"),
        ),
        // exactly at the threshold is not above it: 200000*3 + 10000*15
        (
            "at_threshold_is_standard",
            "anthropic",
            "claude-sonnet-4-5",
            usage(200_000, 10_000, 0, 0, 0),
            Standard,
            TS,
            Some("0.75"),
        ),
        // long context with cache read: 200000*6 + 50000*0.6 + 1000*22.5
        (
            "long_context_cache_read",
            "anthropic",
            "claude-sonnet-4-5",
            usage(250_000, 1000, 50_000, 0, 0),
            Standard,
            TS,
            Some("1.2525"),
        ),
        // o3-mini 1.1/4.4: the 4000 reasoning tokens are inside the 5000 output tokens
        (
            "reasoning_inside_output",
            "openai",
            "o3-mini",
            usage(1000, 5000, 0, 0, 0),
            Standard,
            TS,
            Some("0.0231"),
        ),
        // o3: 10/40 before 2025-06-10, 2/8 from then on
        (
            "price_before_change",
            "openai",
            "o3",
            usage(1_000_000, 1_000_000, 0, 0, 0),
            Standard,
            "2025-06-09T23:59:59Z",
            Some("50"),
        ),
        (
            "price_after_change",
            "openai",
            "o3",
            usage(1_000_000, 1_000_000, 0, 0, 0),
            Standard,
            "2025-06-10T00:00:00Z",
            Some("10"),
        ),
        // embeddings have no output price: fine without output tokens, NULL with
        (
            "embedding",
            "openai",
            "text-embedding-3-small",
            usage(1_000_000, 0, 0, 0, 0),
            Standard,
            TS,
            Some("0.02"),
        ),
        (
            "embedding_with_output_is_null",
            "openai",
            "text-embedding-3-small",
            usage(1000, 10, 0, 0, 0),
            Standard,
            TS,
            None,
        ),
        // Bedrock cross-region profile id: exact row 3/15: 100000*3 + 100000*15
        (
            "bedrock_profile",
            "aws_bedrock",
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            usage(100_000, 100_000, 0, 0, 0),
            Standard,
            TS,
            Some("1.8"),
        ),
        // gpt-4o-mini 0.15: one token is 0.00000015 USD, exact at scale 12
        (
            "one_token",
            "openai",
            "gpt-4o-mini",
            usage(1, 0, 0, 0, 0),
            Standard,
            TS,
            Some("0.00000015"),
        ),
        (
            "unknown_model",
            "openai",
            "no-such-model-xyz",
            usage(1000, 1000, 0, 0, 0),
            Standard,
            TS,
            None,
        ),
        (
            "negative_tokens",
            "openai",
            "gpt-4o",
            usage(-1, 1000, 0, 0, 0),
            Standard,
            TS,
            None,
        ),
        (
            "negative_output",
            "openai",
            "gpt-4o",
            usage(1000, -5, 0, 0, 0),
            Standard,
            TS,
            None,
        ),
        (
            "cached_above_input",
            "openai",
            "gpt-4o",
            usage(1000, 10, 900, 200, 0),
            Standard,
            TS,
            None,
        ),
        (
            "zero_tokens_cost_zero",
            "openai",
            "gpt-4o",
            usage(0, 0, 0, 0, 0),
            Standard,
            TS,
            Some("0"),
        ),
    ];
    for (name, provider, model, usage, tier, ts, expected) in cases {
        let expected = expected.map(|e| parse_money(e).expect("expected value"));
        assert_eq!(
            cost(&book, provider, model, usage, tier, ts),
            expected,
            "{name}"
        );
    }
}

fn row(from: Option<&str>, to: Option<&str>, input: &str, output: &str) -> PriceRow {
    PriceRow {
        provider: "acme".into(),
        model: "m-1".into(),
        valid_from: from.map(at),
        valid_to: to.map(at),
        input: parse_money(input),
        output: parse_money(output),
        ..PriceRow::default()
    }
}

#[test]
fn mid_day_price_change_uses_the_row_valid_at_ts() {
    let book = PriceBook::from_rows(vec![
        row(None, Some("2025-06-10T12:00:00Z"), "1", "2"),
        row(Some("2025-06-10T12:00:00Z"), None, "3", "4"),
    ])
    .expect("book");
    let u = usage(1_000_000, 1_000_000, 0, 0, 0);
    assert_eq!(
        cost(&book, "acme", "m-1", u, Standard, "2025-06-10T11:59:59Z"),
        parse_money("3")
    );
    assert_eq!(
        cost(&book, "acme", "m-1", u, Standard, "2025-06-10T12:00:00Z"),
        parse_money("7")
    );
}

#[test]
fn gap_between_ranges_is_unpriced() {
    let book = PriceBook::from_rows(vec![row(Some("2025-01-01"), Some("2025-02-01"), "1", "1")])
        .expect("book");
    let u = usage(10, 10, 0, 0, 0);
    assert_eq!(
        cost(&book, "acme", "m-1", u, Standard, "2024-12-31T00:00:00Z"),
        None
    );
    assert_eq!(
        cost(&book, "acme", "m-1", u, Standard, "2025-02-01T00:00:00Z"),
        None
    );
    assert!(cost(&book, "acme", "m-1", u, Standard, "2025-01-15T00:00:00Z").is_some());
}

#[test]
fn final_division_rounds_half_away_from_zero() {
    // 0.0000015 USD/Mtok * 1 token = 1.5e-12 USD -> 0.000000000002
    let book = PriceBook::from_rows(vec![row(None, None, "0.0000015", "0")]).expect("book");
    let got = cost(&book, "acme", "m-1", usage(1, 0, 0, 0, 0), Standard, TS);
    assert_eq!(got, Some(2));
}

#[test]
fn overlapping_ranges_are_refused() {
    let rows = vec![
        row(None, None, "1", "1"),
        row(Some("2025-01-01"), None, "2", "2"),
    ];
    assert!(PriceBook::from_rows(rows).is_err());
}

#[test]
fn extreme_token_counts_do_not_overflow() {
    let book = PriceBook::bundled().expect("bundled book");
    // i64::MAX * 2.5 USD/Mtok: (2^63 - 1) * 2.5e12 / 1e6 at scale 12
    let expected = (i128::from(i64::MAX) * 2_500_000_000_000 + 500_000) / 1_000_000;
    let u = usage(i64::MAX, 0, 0, 0, 0);
    assert_eq!(
        cost(&book, "openai", "gpt-4o", u, Standard, TS),
        Some(expected)
    );
}

#[test]
fn absurd_prices_leave_the_row_unpriced() {
    let book = PriceBook::from_rows(vec![row(None, None, "2000000", "1")]).expect("book");
    assert_eq!(
        cost(&book, "acme", "m-1", usage(1, 1, 0, 0, 0), Standard, TS),
        None
    );
}
