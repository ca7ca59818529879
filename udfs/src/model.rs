//! Model functions: `canonical_model`, `model_tier`, `cheaper_alternative`, and the price
//! bands that define tiers.

mod canonical_model;
mod cheaper_alternative;
mod model_tier;

pub use canonical_model::CanonicalModelFunc;
pub use cheaper_alternative::CheaperAlternativeFunc;
pub use model_tier::ModelTierFunc;

use crate::money::MONEY_ONE;
use crate::pricing::PriceRow;

/// A model is `frontier` when its standard input + output price is at least this many USD
/// per million tokens (gpt-4o: 2.5 + 10, Claude Sonnet: 3 + 15).
pub const FRONTIER_MIN_USD_PER_MTOK: i128 = 10;
/// A model is `mid` from this price up to the frontier band (Claude Haiku 3.5: 0.8 + 4),
/// `small` below it (gpt-4o-mini: 0.15 + 0.6).
pub const MID_MIN_USD_PER_MTOK: i128 = 1;

/// Model tiers, most expensive first.
pub const TIERS: [&str; 3] = ["frontier", "mid", "small"];

/// The tier of a price row: its explicit `tier` when set, else the price band of
/// `input + output` (see [`FRONTIER_MIN_USD_PER_MTOK`], [`MID_MIN_USD_PER_MTOK`]).
pub fn tier_of(row: &PriceRow) -> Option<&'static str> {
    if let Some(tier) = row.tier.as_deref() {
        return TIERS.iter().copied().find(|t| *t == tier);
    }
    let band = row.input? + row.output.unwrap_or(0);
    Some(if band >= FRONTIER_MIN_USD_PER_MTOK * MONEY_ONE {
        "frontier"
    } else if band >= MID_MIN_USD_PER_MTOK * MONEY_ONE {
        "mid"
    } else {
        "small"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::parse_money;

    fn row(input: &str, output: &str, tier: Option<&str>) -> PriceRow {
        PriceRow {
            input: parse_money(input),
            output: parse_money(output),
            tier: tier.map(str::to_string),
            ..PriceRow::default()
        }
    }

    #[test]
    fn tiers_follow_price_bands_unless_overridden() {
        let cases = [
            (row("2.5", "10", None), "frontier"),
            (row("2", "8", None), "frontier"),
            (row("0.8", "4", None), "mid"),
            (row("0.15", "0.6", None), "small"),
            (row("0.15", "0.6", Some("frontier")), "frontier"),
        ];
        for (row, expected) in cases {
            assert_eq!(tier_of(&row), Some(expected), "{row:?}");
        }
    }
}
