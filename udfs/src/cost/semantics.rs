//! Cost of one usage row (SPEC 3.4), as a pure function over exact decimals.
//!
//! `uncached = input - cached - cache_write - cache_write_1h`;
//! `cost = (uncached*input_price + cached*cache_read_price + cache_write*cache_write_price
//!          + cache_write_1h*cache_write_1h_price + output*output_price) / 1e6`.
//! Prices are `i128` at scale 12 per million tokens, so every product is exact and the only
//! rounding is the final division by 10^6, half away from zero, to scale 12 (a millionth of
//! a micro-dollar; well below any invoice precision). Prices above [`MAX_PRICE`] leave a row
//! unpriced, which is what makes the arithmetic overflow-free. Where a case's prices are whole
//! 10^-12 USD per token (at most six decimals per million, as list prices are) and counts fit
//! 32 bits, the same cost is a sum of `u64` products ([`PerToken`]), with nothing to round.
//!
//! Price fallbacks, applied once when the book is built ([`RowRates::from_row`]):
//! - no `cache_read` / `cache_write` price → the input price (no discount is invented);
//! - no `cache_write_1h` price → the 5-minute `cache_write` price (then the input price);
//! - long context (`context > tier_threshold_tokens`, where `context` is the input of one
//!   request: `input_tokens` unless the row sums many): tier prices for the whole request; a missing tier output price keeps the standard one, missing tier cache prices
//!   scale the standard ones by `tier_input / input`;
//! - `batch` without batch prices → half the standard price; `priority` / `flex` without
//!   their prices → the standard price. Cache prices follow the input price's ratio
//!   (`batch_input / input`, ...), which is how providers discount them.
//! - no output price: fine while `output_tokens = 0` (embeddings), NULL otherwise.

use crate::money::div_round;
use crate::pricing::PriceRow;

/// Service tiers with their own prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceTier {
    /// `standard`, `default`, `auto`, NULL and anything unknown.
    Standard = 0,
    /// `batch`: asynchronous batch API.
    Batch = 1,
    /// `priority`.
    Priority = 2,
    /// `flex`.
    Flex = 3,
}

impl ServiceTier {
    /// Parses a `service_tier` value; unknown values are the standard tier.
    #[inline]
    pub fn parse(text: &str) -> Self {
        // The spellings feeds use, without the trimming and case folding below.
        match text.as_bytes() {
            b"standard" | b"default" | b"auto" => return Self::Standard,
            b"batch" => return Self::Batch,
            b"priority" => return Self::Priority,
            b"flex" => return Self::Flex,
            _ => {}
        }
        let text = text.trim();
        if text.eq_ignore_ascii_case("batch") {
            Self::Batch
        } else if text.eq_ignore_ascii_case("priority") {
            Self::Priority
        } else if text.eq_ignore_ascii_case("flex") {
            Self::Flex
        } else {
            Self::Standard
        }
    }
}

/// Token counts of one row, in the canonical convention (SPEC 3.1): `input` includes
/// cached reads and cache writes; `output` includes reasoning tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// All input tokens.
    pub input: i64,
    /// All output tokens, reasoning included.
    pub output: i64,
    /// Cache-read tokens (subset of `input`).
    pub cached: i64,
    /// 5-minute cache-write tokens (subset of `input`).
    pub cache_write: i64,
    /// 1-hour cache-write tokens (subset of `input`).
    pub cache_write_1h: i64,
    /// The input tokens that decide the long-context tier: `input` for one request; for a
    /// row that sums many, a request's (their average, or the context-window bucket the
    /// provider reports).
    pub context: i64,
}

/// Effective per-million prices for one (service tier, context length) case, at scale 12.
/// Held as `i64` (at most [`MAX_PRICE`]) so each product is one widening multiply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rates {
    /// Uncached input.
    pub input: i64,
    /// Output; `None` when the catalog has no output price.
    pub output: Option<i64>,
    /// Cache reads.
    pub cache_read: i64,
    /// 5-minute cache writes.
    pub cache_write: i64,
    /// 1-hour cache writes.
    pub cache_write_1h: i64,
    /// The same prices per token, when they make the per-row cost a sum of `u64` products.
    pub per_token: Option<PerToken>,
}

/// Prices of one [`Rates`] per token at scale 12: `[input, output, cache read, cache write,
/// cache write 1h]`. Only present when every price (per million tokens, scale 12) is a
/// multiple of 10^6, so dividing by a million first is exact, and below [`PER_TOKEN_MAX`]
/// per token: with every count below 2^32 the five products then sum below 2^64, and the
/// cost is that sum with no rounding, the same value [`row_cost`] computes in `i128`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerToken(pub [u64; 5]);

/// Largest price per token (scale 12) of a [`PerToken`]: about 537 USD per million tokens.
const PER_TOKEN_MAX: u64 = 1 << 29;

impl PerToken {
    fn of(rates: &Rates) -> Option<PerToken> {
        let each = |price: i64| {
            let price = u64::try_from(price).ok()?;
            (price % 1_000_000 == 0 && price / 1_000_000 < PER_TOKEN_MAX)
                .then_some(price / 1_000_000)
        };
        Some(PerToken([
            each(rates.input)?,
            each(rates.output.unwrap_or(0))?,
            each(rates.cache_read)?,
            each(rates.cache_write)?,
            each(rates.cache_write_1h)?,
        ]))
    }
}

/// Largest price a row may have (2^60 at scale 12, about 1.15 million USD per million
/// tokens). With token counts below 2^63 each product stays below 2^123 and the sum of five
/// below 2^126, so the cost arithmetic cannot overflow `i128`. Rows above it are unpriced.
pub const MAX_PRICE: i128 = 1 << 60;

/// Every price case of one catalog row, precomputed so the per-row cost is five products.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowRates {
    /// Requests with more input tokens than this use the long-context rates.
    pub threshold: i64,
    /// `[service tier][0 = standard context, 1 = long context]`.
    pub cases: [[Rates; 2]; 4],
}

/// [`Rates`] before the range check, as stored in the row.
#[derive(Clone, Copy)]
struct WideRates {
    input: i128,
    output: Option<i128>,
    cache_read: i128,
    cache_write: i128,
    cache_write_1h: i128,
}

/// `rates` as [`Rates`], `None` if any price is outside `0..=MAX_PRICE` in magnitude.
fn narrow(rates: WideRates) -> Option<Rates> {
    let fit = |price: i128| {
        if price.abs() > MAX_PRICE {
            None
        } else {
            i64::try_from(price).ok()
        }
    };
    let mut narrow = Rates {
        input: fit(rates.input)?,
        output: match rates.output {
            Some(price) => Some(fit(price)?),
            None => None,
        },
        cache_read: fit(rates.cache_read)?,
        cache_write: fit(rates.cache_write)?,
        cache_write_1h: fit(rates.cache_write_1h)?,
        per_token: None,
    };
    narrow.per_token = PerToken::of(&narrow);
    Some(narrow)
}

/// A ratio `num / den` applied to a price.
#[derive(Clone, Copy)]
struct Ratio(i128, i128);

impl Ratio {
    const ONE: Ratio = Ratio(1, 1);
    const HALF: Ratio = Ratio(1, 2);

    fn apply(self, price: i128) -> i128 {
        div_round(price * self.0, self.1).unwrap_or(price)
    }

    /// `explicit / base`, or `default` when the tier has no explicit price.
    fn of(explicit: Option<i128>, base: i128, default: Ratio) -> Ratio {
        match explicit {
            Some(price) if base != 0 => Ratio(price, base),
            Some(_) => Ratio::ONE,
            None => default,
        }
    }
}

impl RowRates {
    /// Precomputes the rates of `row`; `None` when the row has no input price.
    pub fn from_row(row: &PriceRow) -> Option<RowRates> {
        let input = row.input?;
        let cache_write = row.cache_write.unwrap_or(input);
        let base = WideRates {
            input,
            output: row.output,
            cache_read: row.cache_read.unwrap_or(input),
            cache_write,
            cache_write_1h: row.cache_write_1h.unwrap_or(cache_write),
        };
        let long = match (row.tier_threshold_tokens, row.tier_input) {
            (Some(_), Some(tier_input)) => {
                let ratio = Ratio::of(Some(tier_input), input, Ratio::ONE);
                WideRates {
                    input: tier_input,
                    output: row.tier_output.or(base.output),
                    cache_read: row
                        .tier_cache_read
                        .unwrap_or_else(|| ratio.apply(base.cache_read)),
                    cache_write: row
                        .tier_cache_write
                        .unwrap_or_else(|| ratio.apply(cache_write)),
                    cache_write_1h: ratio.apply(base.cache_write_1h),
                }
            }
            _ => base,
        };
        let threshold = match (row.tier_threshold_tokens, row.tier_input) {
            (Some(threshold), Some(_)) => threshold,
            _ => i64::MAX,
        };
        let output = base.output.unwrap_or(0);
        let tiers = [
            (Ratio::ONE, Ratio::ONE),
            (
                Ratio::of(row.batch_input, input, Ratio::HALF),
                Ratio::of(row.batch_output, output, Ratio::HALF),
            ),
            (
                Ratio::of(row.priority_input, input, Ratio::ONE),
                Ratio::of(row.priority_output, output, Ratio::ONE),
            ),
            (
                Ratio::of(row.flex_input, input, Ratio::ONE),
                Ratio::of(row.flex_output, output, Ratio::ONE),
            ),
        ];
        let scaled = |rates: WideRates, (inp, out): (Ratio, Ratio)| WideRates {
            input: inp.apply(rates.input),
            output: rates.output.map(|p| out.apply(p)),
            cache_read: inp.apply(rates.cache_read),
            cache_write: inp.apply(rates.cache_write),
            cache_write_1h: inp.apply(rates.cache_write_1h),
        };
        let mut cases = [[Rates::default(); 2]; 4];
        for (slot, ratios) in cases.iter_mut().zip(tiers) {
            *slot = [narrow(scaled(base, ratios))?, narrow(scaled(long, ratios))?];
        }
        Some(RowRates { threshold, cases })
    }
}

/// Cost in USD at scale 12 of `usage` under `rates`; `None` (SQL NULL) for negative counts,
/// cached + cache writes above input, or output without an output price.
#[inline]
pub fn row_cost(rates: &RowRates, usage: &TokenUsage, tier: ServiceTier) -> Option<i128> {
    let TokenUsage {
        input,
        output,
        cached,
        cache_write,
        cache_write_1h,
        context,
    } = *usage;
    // The OR of the counts is negative exactly when one of them is.
    if (input | output | cached | cache_write | cache_write_1h) < 0 {
        return None;
    }
    // Negative when cached + cache writes exceed input (a subtraction that leaves `i64` is
    // far below zero); otherwise at most `input`.
    let uncached = input
        .checked_sub(cached)
        .and_then(|u| u.checked_sub(cache_write))
        .and_then(|u| u.checked_sub(cache_write_1h))
        .filter(|u| *u >= 0)?;
    let r = &rates.cases[tier as usize][usize::from(context > rates.threshold)];
    let output_price = match r.output {
        Some(price) => price,
        None if output == 0 => 0,
        None => return None,
    };
    if let Some(PerToken(prices)) = r.per_token
        && (uncached | output | cached | cache_write | cache_write_1h) >> 32 == 0
    {
        // All counts are in 0..2^32 here, so the casts are exact and, by PER_TOKEN_MAX,
        // the sum cannot overflow.
        let counts = [uncached, output, cached, cache_write, cache_write_1h];
        let sum = counts
            .iter()
            .zip(prices)
            .fold(0u64, |sum, (&tokens, price)| sum + tokens as u64 * price);
        return Some(i128::from(sum));
    }
    let wide = |tokens: i64, price: i64| i128::from(tokens) * i128::from(price);
    // No overflow: see MAX_PRICE.
    let sum = wide(uncached, r.input)
        + wide(cached, r.cache_read)
        + wide(cache_write, r.cache_write)
        + wide(cache_write_1h, r.cache_write_1h)
        + wide(output, output_price);
    Some(div_million_round(sum))
}

/// `sum / 10^6` rounded half away from zero. Costs below ~9.2 USD per row fit `u64` at this
/// point, where division by a constant is a multiply; `i128` division is a library call.
#[inline]
fn div_million_round(sum: i128) -> i128 {
    const MILLION: u64 = 1_000_000;
    match u64::try_from(sum) {
        Ok(small) => i128::from(small / MILLION + u64::from(small % MILLION >= MILLION / 2)),
        Err(_) => div_round(sum, i128::from(MILLION)).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prices per million at scale 12 from USD.
    fn usd(price: f64) -> Option<i128> {
        Some((price * 1e6).round() as i128 * 1_000_000)
    }

    /// The `u64` per-token sum agrees with the `i128` sum and rounding on every tier, context
    /// length and count, including counts past 2^32 and prices with more than 6 decimals.
    #[test]
    fn per_token_costs_equal_the_wide_arithmetic() {
        let rows = [
            PriceRow {
                input: usd(2.5),
                output: usd(10.0),
                cache_read: usd(1.25),
                ..PriceRow::default()
            },
            PriceRow {
                input: usd(3.0),
                output: usd(15.0),
                cache_read: usd(0.3),
                cache_write: usd(3.75),
                cache_write_1h: usd(6.0),
                tier_threshold_tokens: Some(200_000),
                tier_input: usd(6.0),
                tier_output: usd(22.5),
                batch_input: usd(1.5),
                ..PriceRow::default()
            },
            // Seven decimals per million: no per-token prices.
            PriceRow {
                input: Some(1_234_567),
                output: usd(0.6),
                ..PriceRow::default()
            },
            // Above the per-token bound.
            PriceRow {
                input: usd(150.0),
                output: usd(600.0),
                ..PriceRow::default()
            },
            PriceRow {
                input: usd(0.02),
                ..PriceRow::default()
            },
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |bound: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) % bound
        };
        let mut fast = 0;
        for row in &rows {
            let rates = RowRates::from_row(row).expect("priced row");
            let mut wide = rates.clone();
            for case in wide.cases.iter_mut().flatten() {
                case.per_token = None;
            }
            for _ in 0..20_000 {
                let scale = [1_000, 300_000, 1 << 33][next(3) as usize];
                let input = next(scale) as i64;
                let usage = TokenUsage {
                    input,
                    output: if next(4) == 0 { 0 } else { next(scale) as i64 },
                    cached: next(input as u64 / 2 + 1) as i64,
                    cache_write: next(input as u64 / 4 + 1) as i64,
                    cache_write_1h: next(input as u64 / 4 + 1) as i64,
                    context: input,
                };
                for tier in [
                    ServiceTier::Standard,
                    ServiceTier::Batch,
                    ServiceTier::Priority,
                    ServiceTier::Flex,
                ] {
                    let got = row_cost(&rates, &usage, tier);
                    assert_eq!(got, row_cost(&wide, &usage, tier), "{row:?} {usage:?}");
                    fast += usize::from(
                        rates.cases[tier as usize][usize::from(input > rates.threshold)]
                            .per_token
                            .is_some(),
                    );
                }
            }
        }
        assert!(fast > 100_000, "the per-token path ran {fast} times");
    }
}
