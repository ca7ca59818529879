//! Typed reads out of one parsed record (a `serde_json::Value`): integers, exact decimals,
//! timestamps in every textual form the provider exports use, and the stable hash behind
//! `event_id`.
//!
//! Owns value conversion only; it must not know any provider's field names.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::schema::MONEY_SCALE;

/// Why a value could not be read; becomes the message of a record error.
pub type ValueResult<T> = std::result::Result<T, String>;

/// The value at `path` (segments separated by `/`, so that OTel keys with dots stay whole).
pub fn at<'a>(record: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = record;
    for seg in path.split('/') {
        cur = match cur {
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => cur.get(seg)?,
        };
    }
    // Empty CSV cells and JSON nulls both mean "not reported".
    match cur {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        v => Some(v),
    }
}

/// Text at `path`; numbers and booleans are rendered, objects and arrays become JSON text.
pub fn text(record: &Value, path: &str) -> Option<String> {
    at(record, path).map(value_to_text)
}

/// Render any JSON value as text (strings without quotes).
pub fn value_to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Text at `path`, or an error naming the missing field.
pub fn need_text(record: &Value, path: &str) -> ValueResult<String> {
    text(record, path).ok_or_else(|| format!("missing `{path}`"))
}

/// Timestamp at `path` (see [`time`]), or an error naming the missing field.
pub fn need_time(record: &Value, path: &str) -> ValueResult<i64> {
    time(record, path)?.ok_or_else(|| format!("missing `{path}`"))
}

/// Integer at `path`; accepts JSON integers, integral floats and decimal strings (OTLP int64).
pub fn int(record: &Value, path: &str) -> ValueResult<Option<i64>> {
    at(record, path).map(|v| value_to_int(v, path)).transpose()
}

/// Integer at `path`, 0 when absent (for token counts a format always reports when non-zero).
pub fn int0(record: &Value, path: &str) -> ValueResult<i64> {
    Ok(int(record, path)?.unwrap_or(0))
}

fn value_to_int(v: &Value, path: &str) -> ValueResult<i64> {
    let bad = || format!("`{path}`: expected an integer, got {v}");
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(i),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
            _ => Err(bad()),
        },
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().or_else(|_| {
                // CSV exports write integral floats such as `0.0` for counts.
                let scaled = parse_decimal(s, 0).ok_or_else(bad)?;
                let unit = 10i128.pow(MONEY_SCALE as u32);
                if scaled % unit == 0 {
                    i64::try_from(scaled / unit).map_err(|_| bad())
                } else {
                    Err(bad())
                }
            })
        }
        _ => Err(bad()),
    }
}

/// Float at `path` (quantities that are not money, e.g. CUR usage amounts in native views).
pub fn float(record: &Value, path: &str) -> ValueResult<Option<f64>> {
    let Some(v) = at(record, path) else {
        return Ok(None);
    };
    let bad = || format!("`{path}`: expected a number, got {v}");
    match v {
        Value::Number(n) => n.as_f64().map(Some).ok_or_else(bad),
        Value::String(s) => s.trim().parse::<f64>().map(Some).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Boolean at `path`; accepts JSON booleans and `true`/`false` text in any case.
pub fn boolean(record: &Value, path: &str) -> ValueResult<Option<bool>> {
    let Some(v) = at(record, path) else {
        return Ok(None);
    };
    match v {
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        _ => Err(format!("`{path}`: expected a boolean, got {v}")),
    }
}

/// Exact money at `path`, scaled by `10^(MONEY_SCALE + shift)`: `shift = -2` reads cents as dollars.
///
/// JSON numbers are read through their shortest round-trip text, which is the literal the
/// provider wrote for every value of up to 15 significant digits; no float arithmetic happens.
pub fn money(record: &Value, path: &str, shift: i32) -> ValueResult<Option<i128>> {
    let Some(v) = at(record, path) else {
        return Ok(None);
    };
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return Err(format!("`{path}`: expected a decimal, got {v}")),
    };
    parse_decimal(&text, shift)
        .map(Some)
        .ok_or_else(|| format!("`{path}`: expected a decimal, got {v}"))
}

/// Parse decimal text (`-12.5`, `1e-7`, `+3`) into an integer scaled by `10^(MONEY_SCALE + shift)`,
/// rounding half away from zero beyond that scale. `None` if it is not a number or overflows.
pub fn parse_decimal(text: &str, shift: i32) -> Option<i128> {
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (negative, digits) = match mantissa.as_bytes().first()? {
        b'-' => (true, &mantissa[1..]),
        b'+' => (false, &mantissa[1..]),
        _ => (false, mantissa),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .bytes()
        .chain(frac_part.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut value: i128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        value = value.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    // value * 10^(exp - frac_len) is the number; we want it * 10^(scale + shift).
    let power = exp - frac_part.len() as i32 + i32::from(MONEY_SCALE) + shift;
    let scaled = if power >= 0 {
        value.checked_mul(10i128.checked_pow(power as u32)?)?
    } else {
        let div = 10i128.checked_pow((-power) as u32).unwrap_or(i128::MAX);
        let (q, r) = (value / div, value % div);
        if r.checked_mul(2)? >= div { q + 1 } else { q }
    };
    Some(if negative { -scaled } else { scaled })
}

/// Scale an exact quantity (as parsed by [`parse_decimal`] with shift 0) by `factor` and round
/// to a whole token count: `241.219` thousand tokens → `241219`.
pub fn scaled_count(quantity: i128, factor: i128) -> Option<i64> {
    let unit = 10i128.pow(MONEY_SCALE as u32);
    let total = quantity.checked_mul(factor)?;
    let (q, r) = (total / unit, total % unit);
    let rounded = if r.abs() * 2 >= unit {
        q + total.signum()
    } else {
        q
    };
    i64::try_from(rounded).ok()
}

/// Timestamp at `path` in microseconds since the epoch (UTC).
///
/// Accepts RFC 3339, `YYYY-MM-DD HH:MM:SS[.f][ UTC]` (BigQuery, LiteLLM), `MM/DD/YYYY` (Azure EA),
/// `YYYY-MM-DD`, and JSON integers as Unix seconds (OpenAI buckets).
pub fn time(record: &Value, path: &str) -> ValueResult<Option<i64>> {
    let Some(v) = at(record, path) else {
        return Ok(None);
    };
    match v {
        Value::Number(n) => n
            .as_i64()
            .and_then(|s| s.checked_mul(1_000_000))
            .map(Some)
            .ok_or_else(|| format!("`{path}`: bad Unix time {n}")),
        Value::String(s) => parse_time_text(s)
            .map(Some)
            .ok_or_else(|| format!("`{path}`: unrecognised timestamp {s:?}")),
        _ => Err(format!("`{path}`: expected a timestamp, got {v}")),
    }
}

/// Timestamp at `path` given as Unix nanoseconds (OTLP `*TimeUnixNano`, a decimal string).
pub fn time_nanos(record: &Value, path: &str) -> ValueResult<Option<i64>> {
    Ok(int(record, path)?.map(|ns| ns.div_euclid(1000)))
}

/// Parse the textual timestamp forms listed on [`time`].
pub fn parse_time_text(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    let naive = s.strip_suffix(" UTC").unwrap_or(s);
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    for fmt in ["%m/%d/%Y", "%Y-%m-%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(naive, fmt) {
            return d
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_micros());
        }
    }
    None
}

/// A stable id from the fields that identify a record, independent of the file it came from,
/// so the same record read from two overlapping exports gets the same `event_id`.
pub fn stable_id(source: &str, parts: &[Option<&str>]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(source.as_bytes());
    for part in parts {
        // A separator byte that never occurs in text keeps ("ab","c") apart from ("a","bc"),
        // and a distinct marker keeps NULL apart from the empty string.
        hasher.update([0x1f]);
        match part {
            Some(p) => hasher.update(p.as_bytes()),
            None => hasher.update([0x00]),
        }
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}:{hex}", source.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decimals_are_exact() {
        let unit = 10i128.pow(12);
        assert_eq!(parse_decimal("4.84775", 0), Some(4_847_750_000_000));
        assert_eq!(parse_decimal("-25.0", 0), Some(-25 * unit));
        assert_eq!(parse_decimal("123.45", -2), Some(1_234_500_000_000));
        assert_eq!(parse_decimal("1e-7", 0), Some(100_000));
        assert_eq!(parse_decimal("0.0000000000005", 0), Some(1));
        assert_eq!(parse_decimal("abc", 0), None);
        assert_eq!(parse_decimal("", 0), None);
        let v = json!({"a": {"value": 12.3456789}});
        assert_eq!(money(&v, "a/value", 0), Ok(Some(12_345_678_900_000)));
    }

    #[test]
    fn counts_scale_without_float_error() {
        let q = parse_decimal("241.219", 0).expect("decimal");
        assert_eq!(scaled_count(q, 1000), Some(241_219));
        let q = parse_decimal("0.0015", 0).expect("decimal");
        assert_eq!(scaled_count(q, 1000), Some(2));
    }

    #[test]
    fn timestamps_in_every_export_form() {
        let t = 1_756_684_800_000_000; // 2025-09-01T00:00:00Z
        for s in [
            "2025-09-01T00:00:00Z",
            "2025-09-01 00:00:00 UTC",
            "2025-09-01 00:00:00.000000",
            "09/01/2025",
            "2025-09-01",
        ] {
            assert_eq!(parse_time_text(s), Some(t), "{s}");
        }
        assert_eq!(time(&json!({"t": 1756684800}), "t"), Ok(Some(t)));
        let nanos = json!({"t": "1756684800527789522"});
        assert_eq!(time_nanos(&nanos, "t"), Ok(Some(t + 527_789)));
    }

    #[test]
    fn ints_accept_otlp_strings_and_reject_text() {
        let v = json!({"a": "18294", "b": 36183890.0, "c": "x", "d": ""});
        assert_eq!(int(&v, "a"), Ok(Some(18294)));
        assert_eq!(int(&v, "b"), Ok(Some(36_183_890)));
        assert!(int(&v, "c").is_err());
        assert_eq!(int(&v, "d"), Ok(None));
    }

    #[test]
    fn stable_ids_separate_null_from_empty() {
        assert_ne!(stable_id("X", &[None]), stable_id("X", &[Some("")]));
        assert_ne!(
            stable_id("X", &[Some("ab"), Some("c")]),
            stable_id("X", &[Some("a"), Some("bc")])
        );
        assert_eq!(stable_id("X", &[Some("a")]), stable_id("X", &[Some("a")]));
    }
}
