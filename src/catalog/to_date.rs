//! `to_date(text, pattern)` and `to_timestamp(text, pattern)` with Postgres' template patterns
//! (`to_date('2026-01-02', 'YYYY-MM-DD')`), where DataFusion's functions read chrono's `%Y-%m-%d`
//! and fail on a Postgres pattern. A pattern without `%` is read as Postgres' and translated to
//! chrono's, field by field, before DataFusion's function runs; a pattern with `%` is chrono's,
//! as before. Fields chrono cannot read back (`Q`, `WW`, `J`, `TZ`, `TH`, ...) are an error that
//! names them.
//!
//! It owns only the translation of those two functions' patterns.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{ScalarValue, not_impl_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use datafusion::prelude::SessionContext;

use super::to_char::{Piece, compile};

pub fn register(ctx: &SessionContext) {
    let state = ctx.state();
    for name in ["to_date", "to_timestamp"] {
        if let Some(inner) = state.scalar_functions().get(name) {
            let inner = inner.as_ref().clone();
            ctx.register_udf(ScalarUDF::from(PostgresPatterns { inner }));
        }
    }
}

/// DataFusion's function, reading Postgres' patterns too.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PostgresPatterns {
    inner: ScalarUDF,
}

impl ScalarUDFImpl for PostgresPatterns {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.inner.return_type(args)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        // `to_timestamp` takes the session's time zone from the configuration.
        let inner = self.inner.inner().with_updated_config(config)?;
        Some(ScalarUDF::from(PostgresPatterns { inner }))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let function = self.inner.name();
        // One Postgres pattern without a month or a day: Postgres takes the first (`YYYY-MM` is
        // the month's first day), chrono wants them, so they are added to text and pattern.
        let defaults = match args.args.as_slice() {
            [
                _,
                ColumnarValue::Scalar(
                    ScalarValue::Utf8(Some(pattern))
                    | ScalarValue::LargeUtf8(Some(pattern))
                    | ScalarValue::Utf8View(Some(pattern)),
                ),
            ] if !pattern.contains('%') => {
                let chrono = chrono_pattern(pattern, function)?;
                missing_date_fields(&chrono).map(|(fields, values)| (chrono + fields, values))
            }
            _ => None,
        };
        if let Some((pattern, values)) = defaults {
            args.args[0] = with_suffix(&args.args[0], values)?;
            args.args[1] = ColumnarValue::Scalar(ScalarValue::Utf8(Some(pattern)));
        } else {
            for arg in args.args.iter_mut().skip(1) {
                *arg = translated(arg, function)?;
            }
        }
        self.inner.invoke_with_args(args)
    }
}

/// The fields a chrono pattern with a year lacks for a whole date, and their values (month
/// and day 1), each after a separator no date text holds (U+001F); `None` when it has them (or
/// is an ISO week or day-of-year pattern, or has no year, which chrono refuses as before).
fn missing_date_fields(chrono: &str) -> Option<(&'static str, &'static str)> {
    let has = |specs: &[&str]| specs.iter().any(|spec| chrono.contains(spec));
    if !has(&["%Y", "%y"]) || has(&["%j", "%G", "%V", "%u"]) {
        return None;
    }
    match (has(&["%m", "%b", "%B"]), has(&["%d"])) {
        (true, true) => None,
        (true, false) => Some(("\u{1f}%d", "\u{1f}1")),
        (false, true) => Some(("\u{1f}%m", "\u{1f}1")),
        (false, false) => Some(("\u{1f}%m\u{1f}%d", "\u{1f}1\u{1f}1")),
    }
}

/// Text values with `suffix` appended (other values as they are: the function reads them).
fn with_suffix(arg: &ColumnarValue, suffix: &str) -> Result<ColumnarValue> {
    Ok(match arg {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v),
        ) => ColumnarValue::Scalar(ScalarValue::Utf8(
            v.as_ref().map(|v| format!("{v}{suffix}")),
        )),
        ColumnarValue::Array(array)
            if matches!(
                array.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) =>
        {
            let values = cast(array, &DataType::Utf8)?;
            let values = values.as_string::<i32>();
            let mut out = StringBuilder::with_capacity(values.len(), values.len() * 16);
            for value in values.iter() {
                match value {
                    Some(v) => out.append_value(format!("{v}{suffix}")),
                    None => out.append_null(),
                }
            }
            ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef)
        }
        other => other.clone(),
    })
}

/// A pattern argument with each Postgres pattern replaced by chrono's.
fn translated(arg: &ColumnarValue, function: &str) -> Result<ColumnarValue> {
    match arg {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(pattern))
            | ScalarValue::LargeUtf8(Some(pattern))
            | ScalarValue::Utf8View(Some(pattern)),
        ) => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            chrono_pattern(pattern, function)?,
        )))),
        ColumnarValue::Scalar(_) => Ok(arg.clone()),
        ColumnarValue::Array(array) => {
            let patterns = cast(array, &DataType::Utf8)?;
            let patterns = patterns.as_string::<i32>();
            let mut out = StringBuilder::with_capacity(patterns.len(), patterns.len() * 8);
            for pattern in patterns.iter() {
                match pattern {
                    Some(pattern) => out.append_value(chrono_pattern(pattern, function)?),
                    None => out.append_null(),
                }
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
        }
    }
}

/// `pattern` in chrono's terms: as it is when it has a `%` (it is chrono's already), else read
/// as Postgres' template.
fn chrono_pattern(pattern: &str, function: &str) -> Result<String> {
    if pattern.contains('%') {
        return Ok(pattern.to_string());
    }
    let pieces = compile(pattern);
    // `HH` is the 12-hour clock only beside a meridiem; alone it reads 0–23, as Postgres does.
    let meridiem = pieces.iter().any(|p| {
        matches!(
            p,
            Piece::Field {
                token: "AM" | "PM" | "A.M." | "P.M.",
                ..
            }
        )
    });
    let mut out = String::with_capacity(pattern.len() * 2);
    for piece in &pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Field {
                token,
                written,
                suffix,
                ..
            } => {
                let field = match *token {
                    "YYYY" => "%Y",
                    "YY" => "%y",
                    "MM" => "%m",
                    "DD" => "%d",
                    "DDD" => "%j",
                    "HH24" => "%H",
                    "HH12" | "HH" if meridiem => "%I",
                    "HH12" | "HH" => "%H",
                    "MI" => "%M",
                    "SS" => "%S",
                    "MS" => "%3f",
                    "US" => "%6f",
                    "AM" | "PM" => "%p",
                    "MONTH" => "%B",
                    "MON" => "%b",
                    "DAY" => "%A",
                    "DY" => "%a",
                    "IYYY" => "%G",
                    "IW" => "%V",
                    "ID" => "%u",
                    "OF" => "%#z",
                    _ => {
                        return not_impl_err!(
                            "{function}: the template field {written} of \"{pattern}\" cannot be read; use chrono's %-format for it"
                        );
                    }
                };
                if suffix.is_some() {
                    return not_impl_err!(
                        "{function}: the ordinal suffix after {written} in \"{pattern}\" cannot be read"
                    );
                }
                out.push_str(field);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_patterns_become_chrono_formats() {
        let cases = [
            ("YYYY-MM-DD", "%Y-%m-%d"),
            ("YYYY-MM-DD HH24:MI:SS", "%Y-%m-%d %H:%M:%S"),
            ("DD Mon YYYY HH12:MI AM", "%d %b %Y %I:%M %p"),
            ("YYYY-MM-DD HH:MI:SS.MS", "%Y-%m-%d %H:%M:%S.%3f"),
            ("FMDD/FMMM/YY", "%d/%m/%y"),
            ("IYYY-\"W\"IW-ID", "%G-W%V-%u"),
            ("YYYY-MM-DD\"T\"HH24:MI:SSOF", "%Y-%m-%dT%H:%M:%S%#z"),
            ("%Y-%m-%d", "%Y-%m-%d"),
        ];
        for (pattern, expected) in cases {
            assert_eq!(
                chrono_pattern(pattern, "to_date").expect("pattern"),
                expected,
                "{pattern}"
            );
        }
    }

    #[test]
    fn a_missing_month_or_day_is_the_first() {
        assert_eq!(missing_date_fields("%Y-%m-%d %H:%M"), None);
        assert_eq!(missing_date_fields("%Y-%m"), Some(("\u{1f}%d", "\u{1f}1")));
        assert_eq!(
            missing_date_fields("%Y"),
            Some(("\u{1f}%m\u{1f}%d", "\u{1f}1\u{1f}1"))
        );
        assert_eq!(missing_date_fields("%G-W%V-%u"), None);
        assert_eq!(missing_date_fields("%H:%M"), None);
    }

    #[test]
    fn fields_chrono_cannot_read_are_named() {
        let err = chrono_pattern("YYYY-Q", "to_date").expect_err("Q");
        assert!(err.to_string().contains("field Q"), "{err}");
        let err = chrono_pattern("DDth Month", "to_date").expect_err("TH");
        assert!(err.to_string().contains("ordinal suffix after DD"), "{err}");
    }
}
