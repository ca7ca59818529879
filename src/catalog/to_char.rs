//! `to_char(timestamp or date, pattern)` with Postgres' template patterns (`YYYY-MM`, `Mon DD`,
//! `HH24:MI:SS`, `FMMonth`, `IYYY-"W"IW`, `Q`, ...), where DataFusion's `to_char` reads chrono's
//! `%Y-%m` and prints a Postgres pattern as it is (`to_char(day, 'YYYY-MM')` gave `YYYY-MM`).
//! `to_char(number, pattern)` takes Postgres' number patterns (`FM$999,990.00`; see [`number`]).
//! Times of day and durations keep DataFusion's function; `date_format` stays chrono's.
//!
//! Values are formatted in UTC, as finops-db computes (`TZ` prints the column's zone or `UTC`).
//! Names are English, as with Postgres' default `lc_time`.
//!
//! It owns only this function.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Decimal256Type, Float64Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, UInt64Type,
};
use datafusion::common::types::logical_string;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::functions::datetime::to_char::ToCharFunc;
use datafusion::logical_expr::{
    Coercion, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignature, TypeSignatureClass,
};
use datafusion::prelude::SessionContext;

mod number;

pub fn register(ctx: &SessionContext) {
    // DataFusion's function is also registered as `date_format`: both names go, so that no copy
    // of it is left to take `to_char` back when the state is rebuilt from its functions.
    ctx.deregister_udf("to_char");
    let inner = ToCharFunc::new();
    // DataFusion's signature (times, dates, durations), and any number with a text pattern.
    let mut variants = match &inner.signature().type_signature {
        TypeSignature::OneOf(variants) => variants.clone(),
        other => vec![other.clone()],
    };
    variants.push(TypeSignature::Coercible(vec![
        Coercion::new_exact(TypeSignatureClass::Numeric),
        Coercion::new_exact(TypeSignatureClass::Native(logical_string())),
    ]));
    ctx.register_udf(ScalarUDF::from(ToChar {
        signature: Signature::one_of(variants, inner.signature().volatility),
        inner,
    }));
    ctx.register_udf(ScalarUDF::from(DateFormat {
        inner: ToCharFunc::new(),
    }));
}

/// DataFusion's `to_char`, with chrono's patterns, under its other name.
#[derive(Debug, PartialEq, Eq, Hash)]
struct DateFormat {
    inner: ToCharFunc,
}

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.inner.invoke_with_args(args)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToChar {
    signature: Signature,
    inner: ToCharFunc,
}

impl ScalarUDFImpl for ToChar {
    fn name(&self) -> &str {
        "to_char"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let zone = match args.args[0].data_type() {
            DataType::Timestamp(_, zone) => Some(zone.as_deref().unwrap_or("").to_string()),
            DataType::Date32 | DataType::Date64 => Some(String::new()),
            _ => None,
        };
        let Some(zone) = zone else {
            if args.args[0].data_type().is_numeric() {
                return numbers(&args);
            }
            return self.inner.invoke_with_args(args);
        };
        let rows = args.number_rows;
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        // Every value as UTC microseconds (a date is its midnight).
        let values = cast(
            &arrays[0],
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let values = values.as_primitive::<TimestampMicrosecondType>();
        let patterns = cast(&arrays[1], &DataType::Utf8)?;
        let patterns = patterns.as_string::<i32>();
        let zone = if zone.is_empty() || zone == "+00:00" {
            "UTC".to_string()
        } else {
            zone
        };
        let mut out = StringBuilder::with_capacity(rows, rows * 16);
        let mut text = String::new();
        // The pattern is compiled again only when it changes (it is most often one constant).
        let mut compiled: Option<(&str, Vec<Piece>)> = None;
        for row in 0..values.len() {
            let pattern_row = if patterns.len() == 1 { 0 } else { row };
            if values.is_null(row) || patterns.is_null(pattern_row) {
                out.append_null();
                continue;
            }
            let Some(at) = DateTime::from_timestamp_micros(values.value(row)) else {
                return exec_err!("to_char: timestamp out of range");
            };
            let pattern = patterns.value(pattern_row);
            if compiled.as_ref().is_none_or(|(p, _)| *p != pattern) {
                compiled = Some((pattern, compile(pattern)));
            }
            let pieces = compiled.as_ref().map_or(&[][..], |(_, pieces)| pieces);
            text.clear();
            render(&at.naive_utc(), pieces, &zone, &mut text);
            out.append_value(&text);
        }
        finish(out, scalar)
    }
}

/// The built strings as the function's result: one value when every argument was one.
fn finish(mut out: StringBuilder, scalar: bool) -> Result<ColumnarValue> {
    let array = Arc::new(out.finish()) as ArrayRef;
    Ok(if scalar {
        ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
    } else {
        ColumnarValue::Array(array)
    })
}

/// `to_char(number, pattern)`: each value as its sign and decimal digits, written by the
/// compiled [`number::Pattern`].
fn numbers(args: &ScalarFunctionArgs) -> Result<ColumnarValue> {
    let rows = args.number_rows;
    let scalar = args
        .args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let arrays = ColumnarValue::values_to_arrays(&args.args)?;
    let patterns = cast(&arrays[1], &DataType::Utf8)?;
    let patterns = patterns.as_string::<i32>();
    let values = &arrays[0];
    let ints = match values.data_type() {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            Some(cast(values, &DataType::Int64)?)
        }
        _ => None,
    };
    let uints = match values.data_type() {
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            Some(cast(values, &DataType::UInt64)?)
        }
        _ => None,
    };
    let floats = match values.data_type() {
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            Some(cast(values, &DataType::Float64)?)
        }
        _ => None,
    };
    let mut out = StringBuilder::with_capacity(rows, rows * 12);
    let mut text = String::new();
    let mut compiled: Option<(&str, number::Pattern)> = None;
    for row in 0..values.len() {
        let pattern_row = if patterns.len() == 1 { 0 } else { row };
        if values.is_null(row) || patterns.is_null(pattern_row) {
            out.append_null();
            continue;
        }
        let pattern = patterns.value(pattern_row);
        if compiled.as_ref().is_none_or(|(p, _)| *p != pattern) {
            compiled = Some((pattern, number::Pattern::compile(pattern)?));
        }
        let Some((_, pattern)) = compiled.as_ref() else {
            continue;
        };
        let value = if let Some(ints) = &ints {
            let v = ints.as_primitive::<Int64Type>().value(row);
            number::Value {
                negative: v < 0,
                digits: v.unsigned_abs().to_string(),
                scale: 0,
            }
        } else if let Some(uints) = &uints {
            number::Value {
                negative: false,
                digits: uints.as_primitive::<UInt64Type>().value(row).to_string(),
                scale: 0,
            }
        } else if let Some(floats) = &floats {
            float_value(floats.as_primitive::<Float64Type>().value(row), pattern)
        } else {
            match values.data_type() {
                DataType::Decimal128(_, scale) => {
                    let v = values.as_primitive::<Decimal128Type>().value(row);
                    number::Value {
                        negative: v < 0,
                        digits: v.unsigned_abs().to_string(),
                        scale: i32::from(*scale),
                    }
                }
                DataType::Decimal256(_, scale) => {
                    let v = values
                        .as_primitive::<Decimal256Type>()
                        .value(row)
                        .to_string();
                    number::Value {
                        negative: v.starts_with('-'),
                        digits: v.trim_start_matches('-').to_string(),
                        scale: i32::from(*scale),
                    }
                }
                other => return exec_err!("to_char does not format {other} values"),
            }
        };
        text.clear();
        pattern.write(&value, &mut text);
        out.append_value(&text);
    }
    finish(out, scalar)
}

/// A float as the decimal digits the pattern needs, rounded once where the pattern rounds.
/// Infinity and NaN have more digits than any pattern's places, so they are written as `#`s.
fn float_value(v: f64, pattern: &number::Pattern) -> number::Value {
    if !v.is_finite() {
        return number::Value {
            negative: v.is_sign_negative() && !v.is_nan(),
            digits: "9".repeat(400),
            scale: 0,
        };
    }
    let text = if pattern.exponent() {
        // d.ddde±x: the digits, and a scale that puts the point back.
        let text = format!("{:.*e}", pattern.post(), v.abs());
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let digits = mantissa.replace('.', "");
        let scale = pattern.post() as i32 - exponent;
        return number::Value {
            negative: v < 0.0,
            digits,
            scale,
        };
    } else {
        format!("{:.*}", pattern.post() + pattern.shift(), v.abs())
    };
    let scale = text
        .split_once('.')
        .map_or(0, |(_, frac)| frac.len() as i32);
    number::Value {
        negative: v < 0.0,
        digits: text.replace('.', ""),
        scale,
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// How a name is written: as the pattern's case says (`MONTH`, `Month`, `month`).
#[derive(Clone, Copy)]
enum Case {
    Upper,
    Capitalized,
    Lower,
}

fn cased(name: &str, case: Case) -> String {
    match case {
        Case::Upper => name.to_ascii_uppercase(),
        Case::Capitalized => name.to_string(),
        Case::Lower => name.to_ascii_lowercase(),
    }
}

/// The case of a name pattern from its first two letters (`MOnth` is upper, as in Postgres).
fn case_of(token: &str) -> Case {
    let bytes = token.as_bytes();
    if bytes[0].is_ascii_lowercase() {
        Case::Lower
    } else if bytes.len() > 1 && bytes[1].is_ascii_uppercase() {
        Case::Upper
    } else {
        Case::Capitalized
    }
}

/// Postgres' patterns, longest first; names are matched in any case, their output follows it.
const PATTERNS: &[&str] = &[
    "HH24", "HH12", "IYYY", "YYYY", "MONTH", "SSSSS", "SSSS", "A.M.", "P.M.", "IDDD", "YYY", "MON",
    "DAY", "DDD", "HH", "MI", "SS", "MS", "US", "AM", "PM", "IW", "ID", "YY", "MM", "DY", "DD",
    "WW", "CC", "TZ", "OF", "Y", "Q", "D", "W", "J",
];

/// One part of a compiled pattern.
#[derive(Debug, PartialEq)]
pub(super) enum Piece<'a> {
    /// Written as it is.
    Text(String),
    /// A pattern (`PATTERNS`), as the template spells it, with fill mode (`FM`) and an
    /// ordinal suffix after it (`TH` or `th`).
    Field {
        token: &'static str,
        written: &'a str,
        fill: bool,
        suffix: Option<bool>,
    },
}

/// Whether `token` writes a number (which `TH` may follow).
fn numeric(token: &str) -> bool {
    !matches!(
        token,
        "MONTH" | "MON" | "DAY" | "DY" | "AM" | "PM" | "A.M." | "P.M." | "TZ" | "OF"
    )
}

/// The quoted text `rest` starts with (at its `"`), written as it is into `text` (`\"` is a
/// quote inside it); how many bytes it takes, the closing quote included.
pub(super) fn quoted(rest: &str, text: &mut String) -> usize {
    let mut chars = rest[1..].char_indices();
    while let Some((i, ch)) = chars.next() {
        match ch {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    text.push(escaped);
                }
            }
            '"' => return i + 2,
            other => text.push(other),
        }
    }
    rest.len()
}

/// `pattern` split into its pieces, once for all the rows it formats.
pub(super) fn compile(pattern: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = pattern;
    let mut fill = false;
    while let Some(c) = rest.chars().next() {
        if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("FM") {
            fill = true;
            rest = &rest[2..];
            continue;
        }
        if c == '"' {
            rest = &rest[quoted(rest, &mut text)..];
            continue;
        }
        // Outside quotes only `\"` is an escape (a quote); other backslashes are text.
        if rest.starts_with("\\\"") {
            text.push('"');
            rest = &rest[2..];
            continue;
        }
        let Some(token) = PATTERNS.iter().find(|p| {
            rest.len() >= p.len()
                && rest.is_char_boundary(p.len())
                && rest[..p.len()].eq_ignore_ascii_case(p)
        }) else {
            text.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        let written = &rest[..token.len()];
        rest = &rest[token.len()..];
        // `TH`/`th` after a number: its ordinal suffix.
        let suffix = (numeric(token) && rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("TH"))
            .then(|| rest.as_bytes()[0] == b'T');
        if suffix.is_some() {
            rest = &rest[2..];
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Field {
            token,
            written,
            fill,
            suffix,
        });
        fill = false;
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

/// `at` written with the compiled pattern `pieces` into `out`.
fn render(at: &NaiveDateTime, pieces: &[Piece], zone: &str, out: &mut String) {
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Field {
                token,
                written,
                fill,
                suffix,
            } => {
                let number = field(at, token, written, zone, *fill, out);
                if let (Some(n), Some(upper)) = (number, suffix) {
                    let suffix = ordinal(n);
                    out.push_str(&if *upper {
                        suffix.to_ascii_uppercase()
                    } else {
                        suffix.to_string()
                    });
                }
            }
        }
    }
}

fn ordinal(n: i64) -> &'static str {
    match (n % 100, n % 10) {
        (11..=13, _) => "th",
        (_, 1) => "st",
        (_, 2) => "nd",
        (_, 3) => "rd",
        _ => "th",
    }
}

/// One pattern's text; the number it wrote, if any (for `TH`).
fn field(
    at: &NaiveDateTime,
    token: &str,
    written: &str,
    zone: &str,
    fill: bool,
    out: &mut String,
) -> Option<i64> {
    let number = |out: &mut String, value: i64, width: usize| {
        if fill {
            out.push_str(&value.to_string());
        } else if value < 0 {
            out.push_str(&format!("-{:0width$}", -value));
        } else {
            out.push_str(&format!("{value:0width$}"));
        }
        Some(value)
    };
    let name = |out: &mut String, name: &str, width: usize| {
        let text = cased(name, case_of(written));
        if fill {
            out.push_str(&text);
        } else {
            out.push_str(&format!("{text:<width$}"));
        }
        None
    };
    let hour12 = match at.hour() % 12 {
        0 => 12,
        h => h,
    };
    let weekday = at.weekday().num_days_from_sunday() as usize;
    match token {
        "HH24" => number(out, at.hour().into(), 2),
        "HH12" | "HH" => number(out, hour12.into(), 2),
        "MI" => number(out, at.minute().into(), 2),
        "SS" => number(out, at.second().into(), 2),
        "MS" => number(out, (at.nanosecond() / 1_000_000).into(), 3),
        "US" => number(out, (at.nanosecond() / 1_000).into(), 6),
        "SSSS" | "SSSSS" => number(out, at.num_seconds_from_midnight().into(), 1),
        "AM" | "PM" | "A.M." | "P.M." => {
            let pm = at.hour() >= 12;
            let text = match (token.len(), pm) {
                (2, false) => "AM",
                (2, true) => "PM",
                (_, false) => "A.M.",
                (_, true) => "P.M.",
            };
            out.push_str(&if written.as_bytes()[0].is_ascii_lowercase() {
                text.to_ascii_lowercase()
            } else {
                text.to_string()
            });
            None
        }
        "YYYY" => number(out, at.year().into(), 4),
        "YYY" => number(out, (at.year() % 1000).into(), 3),
        "YY" => number(out, (at.year() % 100).into(), 2),
        "Y" => number(out, (at.year() % 10).into(), 1),
        "IYYY" => number(out, at.iso_week().year().into(), 4),
        "IW" => number(out, at.iso_week().week().into(), 2),
        "ID" => number(out, at.weekday().number_from_monday().into(), 1),
        "IDDD" => {
            let week = i64::from(at.iso_week().week());
            let day = i64::from(at.weekday().number_from_monday());
            number(out, (week - 1) * 7 + day, 3)
        }
        "MM" => number(out, at.month().into(), 2),
        "MONTH" => name(out, MONTHS[at.month0() as usize], 9),
        "MON" => name(out, &MONTHS[at.month0() as usize][..3], 3),
        "DAY" => name(out, DAYS[weekday], 9),
        "DY" => name(out, &DAYS[weekday][..3], 3),
        "DDD" => number(out, at.ordinal().into(), 3),
        "DD" => number(out, at.day().into(), 2),
        "D" => number(out, weekday as i64 + 1, 1),
        "W" => number(out, ((at.day() - 1) / 7 + 1).into(), 1),
        "WW" => number(out, ((at.ordinal() - 1) / 7 + 1).into(), 2),
        "Q" => number(out, (at.month0() / 3 + 1).into(), 1),
        "CC" => {
            let year = i64::from(at.year());
            let century = if year > 0 {
                (year + 99) / 100
            } else {
                (year - 99) / 100
            };
            number(out, century, 2)
        }
        "J" => number(out, i64::from(at.date().num_days_from_ce()) + 1_721_425, 1),
        "TZ" => {
            out.push_str(&if written.as_bytes()[0].is_ascii_lowercase() {
                zone.to_ascii_lowercase()
            } else {
                zone.to_string()
            });
            None
        }
        "OF" => {
            out.push_str("+00");
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_char(at: &str, pattern: &str) -> String {
        let at = NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S%.f").expect("time");
        let mut out = String::new();
        render(&at, &compile(pattern), "UTC", &mut out);
        out
    }

    #[test]
    fn patterns_write_what_postgres_writes() {
        // Each expected value is Postgres 16's `to_char` of the same timestamp (UTC).
        let at = "2024-02-29 15:04:05.123456";
        let cases = [
            ("YYYY-MM", "2024-02"),
            ("YYYY-MM-DD HH24:MI:SS", "2024-02-29 15:04:05"),
            ("HH12:MI AM", "03:04 PM"),
            ("hh:mi pm", "03:04 pm"),
            ("MS US", "123 123456"),
            ("Month", "February "),
            ("FMMonth DD", "February 29"),
            ("MONTH", "FEBRUARY "),
            ("Mon mon MON", "Feb feb FEB"),
            ("Day, DD", "Thursday , 29"),
            ("FMDay", "Thursday"),
            ("Dy DY dy", "Thu THU thu"),
            ("DDD D", "060 5"),
            ("IYYY-\"W\"IW-ID", "2024-W09-4"),
            ("\"Q\"Q YYYY", "Q1 2024"),
            ("WW W", "09 5"),
            ("CC YY YYY Y", "21 24 024 4"),
            ("DDth FMDDth", "29th 29th"),
            ("FMMM/FMDD", "2/29"),
            ("SSSS", "54245"),
            ("J", "2460370"),
            ("TZ tz", "UTC utc"),
            ("yyyy-mm-dd", "2024-02-29"),
            ("YYYY\\MM", "2024\\02"),
            ("\\\"YYYY\\\"", "\"2024\""),
        ];
        for (pattern, expected) in cases {
            assert_eq!(to_char(at, pattern), expected, "{pattern}");
        }
        assert_eq!(to_char("2024-01-01 00:00:00", "HH12 AM IDDD"), "12 AM 001");
        assert_eq!(to_char("2023-01-01 00:00:00", "IYYY IW"), "2022 52");
        assert_eq!(to_char("2024-03-01 00:00:00", "FMDDth FMDDTH"), "1st 1ST");
    }
}
