//! Cost of one usage row (SPEC 3.4), as a pure function over exact decimals.
//!
//! `uncached = input - cached - cache_write - cache_write_1h`;
//! `cost = (uncached*input_price + cached*cache_read_price + cache_write*cache_write_price
//!          + cache_write_1h*cache_write_1h_price + output*output_price) / 1e6`.
//! Prices are `i128` at scale 12 per million tokens, so every product is exact and the only
//! rounding is the final division by 10^6, half away from zero, to scale 12 (a millionth of
//! a micro-dollar; well below any invoice precision). Prices above [`MAX_PRICE`] leave a row
//! unpriced, which is what makes the arithmetic overflow-free.
//!
//! Price fallbacks, applied once when the book is built ([`RowRates::from_row`]):
//! - no `cache_read` / `cache_write` price → the input price (no discount is invented);
//! - no `cache_write_1h` price → the 5-minute `cache_write` price (then the input price);
//! - long context (`input_tokens > tier_threshold_tokens`): tier prices for the whole
//!   request; a missing tier output price keeps the standard one, missing tier cache prices
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
    Some(Rates {
        input: fit(rates.input)?,
        output: match rates.output {
            Some(price) => Some(fit(price)?),
            None => None,
        },
        cache_read: fit(rates.cache_read)?,
        cache_write: fit(rates.cache_write)?,
        cache_write_1h: fit(rates.cache_write_1h)?,
    })
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
    } = *usage;
    // The OR of the counts is negative exactly when one of them is.
    if (input | output | cached | cache_write | cache_write_1h) < 0 {
        return None;
    }
    let uncached = i128::from(input)
        - i128::from(cached)
        - i128::from(cache_write)
        - i128::from(cache_write_1h);
    // Negative when cached + cache writes exceed input; otherwise at most `input`.
    let uncached = i64::try_from(uncached).ok().filter(|u| *u >= 0)?;
    let r = &rates.cases[tier as usize][usize::from(input > rates.threshold)];
    let output_price = match r.output {
        Some(price) => price,
        None if output == 0 => 0,
        None => return None,
    };
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
