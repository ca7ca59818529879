//! Postgres' text form of `real` and `double precision` values (`float4out`, `float8out`).
//!
//! With `extra_float_digits` above 0 (the default, 1, and what drivers set) a value is written as
//! the shortest text that reads back as the same value, in fixed notation for decimal exponents
//! from -4 up to 14 (`real`: 5) and as `1.5e+20` beyond; with 0 or less it is rounded to 15
//! (`real`: 6) plus `extra_float_digits` significant digits, as C's `%g` does. Special values are
//! `NaN`, `Infinity` and `-Infinity`, and negative zero is `-0`. (`pgwire`'s own text form writes
//! `inf`, `1e20` and `200.0`, which JDBC and psql users do not expect from Postgres.)
//!
//! The text is built on the stack (a result column writes one per row), never on the heap.
//!
//! It owns only the formatting. It must not know about columns or the protocol.

use std::fmt::Write;

/// `value` as Postgres writes a `double precision` in text.
pub(crate) fn float8_text(value: f64, extra_float_digits: i32) -> FloatText {
    float_text(value, extra_float_digits, 15, |out| {
        write!(out, "{value:e}")
    })
}

/// `value` as Postgres writes a `real` in text.
pub(crate) fn float4_text(value: f32, extra_float_digits: i32) -> FloatText {
    // Rust's shortest digits of an f32 are those that read back as that f32.
    float_text(f64::from(value), extra_float_digits, 6, |out| {
        write!(out, "{value:e}")
    })
}

/// The text of one float, on the stack: 48 bytes hold the longest form (a sign, 18 significant
/// digits, a point, and either four leading zeros or a three-digit exponent).
pub(crate) struct FloatText {
    bytes: [u8; 48],
    len: usize,
}

impl FloatText {
    fn new() -> Self {
        Self {
            bytes: [0; 48],
            len: 0,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only whole `&str`s are ever written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }

    fn push(&mut self, s: &str) {
        let written = self.write_str(s);
        debug_assert!(written.is_ok(), "float text longer than its buffer");
    }

    fn push_zeros(&mut self, count: usize) {
        for _ in 0..count {
            self.push("0");
        }
    }
}

impl Write for FloatText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let target = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        target.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// `digits` is the type's `DBL_DIG` or `FLT_DIG`, which is also the decimal exponent from which
/// the shortest form switches to scientific notation; `shortest` writes the shortest round-trip
/// digits in Rust's scientific form (`-1.5e-7`).
fn float_text(
    value: f64,
    extra_float_digits: i32,
    digits: i32,
    shortest: impl FnOnce(&mut FloatText) -> std::fmt::Result,
) -> FloatText {
    let mut out = FloatText::new();
    if value.is_nan() {
        out.push("NaN");
        return out;
    }
    if value.is_infinite() {
        out.push(if value > 0.0 { "Infinity" } else { "-Infinity" });
        return out;
    }
    let mut scientific = FloatText::new();
    if extra_float_digits > 0 {
        if value == 0.0 {
            out.push(if value.is_sign_negative() { "-0" } else { "0" });
            return out;
        }
        let written = shortest(&mut scientific);
        debug_assert!(written.is_ok(), "float text longer than its buffer");
        let (negative, mantissa, exponent) = split_scientific(scientific.as_str());
        let digits_only = without_point(mantissa);
        if negative {
            out.push("-");
        }
        if (-4..digits).contains(&exponent) {
            fixed(&mut out, digits_only.as_str(), exponent);
        } else {
            scientific_form(&mut out, digits_only.as_str(), exponent);
        }
        return out;
    }
    // `%.*g` with 15 (6) + extra_float_digits significant digits, at least one.
    let precision = (digits + extra_float_digits).max(1);
    let written = write!(scientific, "{value:.*e}", (precision - 1) as usize);
    debug_assert!(written.is_ok(), "float text longer than its buffer");
    let (negative, mantissa, exponent) = split_scientific(scientific.as_str());
    if exponent < -4 || exponent >= precision {
        let digits_only = without_point(mantissa);
        let trimmed = digits_only.as_str().trim_end_matches('0');
        if negative {
            out.push("-");
        }
        scientific_form(
            &mut out,
            if trimmed.is_empty() { "0" } else { trimmed },
            exponent,
        );
    } else {
        let written = write!(out, "{value:.*}", (precision - 1 - exponent) as usize);
        debug_assert!(written.is_ok(), "float text longer than its buffer");
        if out.as_str().contains('.') {
            out.len = out
                .as_str()
                .trim_end_matches('0')
                .trim_end_matches('.')
                .len();
        }
    }
    out
}

/// The sign, mantissa and decimal exponent of Rust's scientific form (`-1.5e-7`).
fn split_scientific(text: &str) -> (bool, &str, i32) {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = unsigned.split_once('e').unwrap_or((unsigned, "0"));
    (negative, mantissa, exponent.parse().unwrap_or(0))
}

/// The digits of a mantissa (`1.25`) without its point (`125`).
fn without_point(mantissa: &str) -> FloatText {
    let mut digits = FloatText::new();
    for part in mantissa.split('.') {
        digits.push(part);
    }
    digits
}

/// `digits` (the first one before the point) times 10^`exponent`, written without an exponent.
fn fixed(out: &mut FloatText, digits: &str, exponent: i32) {
    if exponent < 0 {
        out.push("0.");
        out.push_zeros(exponent.unsigned_abs() as usize - 1);
        out.push(digits);
        return;
    }
    let whole = exponent as usize + 1;
    if digits.len() <= whole {
        out.push(digits);
        out.push_zeros(whole - digits.len());
    } else {
        out.push(&digits[..whole]);
        out.push(".");
        out.push(&digits[whole..]);
    }
}

/// `digits` times 10^`exponent` as `d.ddde+XX` (at least two exponent digits).
fn scientific_form(out: &mut FloatText, digits: &str, exponent: i32) {
    out.push(&digits[..1]);
    if digits.len() > 1 {
        out.push(".");
        out.push(&digits[1..]);
    }
    out.push(if exponent < 0 { "e-" } else { "e+" });
    let written = write!(out, "{:02}", exponent.unsigned_abs());
    debug_assert!(written.is_ok(), "float text longer than its buffer");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_precision_is_written_as_postgres_writes_it() {
        // Each expectation is PostgreSQL 16's output with the default extra_float_digits = 1.
        for (value, expected) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (200.0, "200"),
            (1.5, "1.5"),
            (-1.5, "-1.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e20, "1e+20"),
            (1e15, "1e+15"),
            (123456789012345.0, "123456789012345"),
            (1234567890123456.0, "1.234567890123456e+15"),
            (1e-7, "1e-07"),
            (0.0001, "0.0001"),
            (0.00001234, "1.234e-05"),
            (1e300, "1e+300"),
            (-2.5e-300, "-2.5e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(float8_text(value, 1).as_str(), expected, "{value:e}");
        }
    }

    #[test]
    fn real_is_written_as_postgres_writes_it() {
        for (value, expected) in [
            (0.0f32, "0"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e-5, "1e-05"),
            (f32::MAX, "3.4028235e+38"),
            (f32::INFINITY, "Infinity"),
        ] {
            assert_eq!(float4_text(value, 1).as_str(), expected, "{value:e}");
        }
    }

    #[test]
    fn extra_float_digits_zero_or_less_rounds_like_printf_g() {
        for (value, extra, expected) in [
            (0.1 + 0.2, 0, "0.3"),
            (200.0, 0, "200"),
            (1e20, 0, "1e+20"),
            (123456789012345678.0, 0, "1.23456789012346e+17"),
            (2.0 / 3.0, 0, "0.666666666666667"),
            (2.0 / 3.0, -10, "0.66667"),
            (2.0 / 3.0, -15, "0.7"),
            (1e-5, 0, "1e-05"),
            (-0.0, 0, "-0"),
            (0.0, 0, "0"),
            (f64::NEG_INFINITY, 0, "-Infinity"),
        ] {
            assert_eq!(
                float8_text(value, extra).as_str(),
                expected,
                "{value:e} {extra}"
            );
        }
        assert_eq!(float4_text(2.0 / 3.0, 0).as_str(), "0.666667");
        assert_eq!(float4_text(1234567.0, 0).as_str(), "1.23457e+06");
    }
}
