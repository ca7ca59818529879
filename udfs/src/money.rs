//! Exact money arithmetic: `Decimal128(38, 12)` values held as `i128` at scale 12.
//!
//! Prices are USD per million tokens at [`MONEY_SCALE`]; nothing here uses floats.

/// Precision of every money column (`Decimal128(38, 12)`).
pub const MONEY_PRECISION: u8 = 38;
/// Scale of every money column: 12 decimal places, enough for per-token prices.
pub const MONEY_SCALE: i8 = 12;
/// `10^MONEY_SCALE`.
pub const MONEY_ONE: i128 = 1_000_000_000_000;

/// Parses a plain decimal (`"2.5"`, `"-0.0003"`, `"15"`) into an `i128` at scale 12.
///
/// Returns `None` for malformed text or for more than 12 fractional digits, so a catalog
/// price is never silently rounded.
pub fn parse_money(text: &str) -> Option<i128> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let frac_part = frac_part.trim_end_matches('0');
    if frac_part.len() > MONEY_SCALE as usize
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int_value: i128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let mut frac_value: i128 = if frac_part.is_empty() {
        0
    } else {
        frac_part.parse().ok()?
    };
    for _ in frac_part.len()..MONEY_SCALE as usize {
        frac_value *= 10;
    }
    let value = int_value.checked_mul(MONEY_ONE)?.checked_add(frac_value)?;
    Some(if negative { -value } else { value })
}

/// Formats a scale-12 value as plain decimal text without trailing zeros (`2.5`, `0`).
pub fn format_money(value: i128) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.unsigned_abs();
    let one = MONEY_ONE as u128;
    let int_part = abs / one;
    let frac_part = abs % one;
    if frac_part == 0 {
        return format!("{sign}{int_part}");
    }
    let frac = format!("{frac_part:012}");
    format!("{sign}{int_part}.{}", frac.trim_end_matches('0'))
}

/// `numerator / denominator` rounded half away from zero (the rounding of SQL `ROUND`);
/// `None` when `denominator` is zero.
pub fn div_round(numerator: i128, denominator: i128) -> Option<i128> {
    if denominator == 0 {
        return None;
    }
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    if remainder.unsigned_abs() * 2 >= denominator.unsigned_abs() {
        let away = if (numerator < 0) == (denominator < 0) {
            1
        } else {
            -1
        };
        Some(quotient + away)
    } else {
        Some(quotient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_exact_decimals() {
        let cases = [
            ("2.5", Some(2_500_000_000_000), "2.5"),
            ("15", Some(15 * MONEY_ONE), "15"),
            ("0.00875", Some(8_750_000_000), "0.00875"),
            ("-0.3", Some(-300_000_000_000), "-0.3"),
            ("0.000000000001", Some(1), "0.000000000001"),
            ("1.2500", Some(1_250_000_000_000), "1.25"),
        ];
        for (text, expected, formatted) in cases {
            assert_eq!(parse_money(text), expected, "{text}");
            assert_eq!(format_money(expected.unwrap_or_default()), formatted);
        }
    }

    #[test]
    fn rejects_malformed_or_too_precise_text() {
        for text in ["", ".", "abc", "1.2.3", "0.0000000000001", "1e-6"] {
            assert_eq!(parse_money(text), None, "{text}");
        }
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(div_round(15, 10), Some(2));
        assert_eq!(div_round(14, 10), Some(1));
        assert_eq!(div_round(-15, 10), Some(-2));
        assert_eq!(div_round(-14, 10), Some(-1));
        assert_eq!(div_round(1, 0), None);
    }
}
