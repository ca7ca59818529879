//! Postgres' `format(formatstr, ...)`, `quote_ident`, `quote_literal` and `quote_nullable`,
//! which scripts and check queries use to build messages and SQL text.
//!
//! Arguments are formatted as the Postgres text a client would receive for them (`t` for true,
//! `2026-03-01 00:00:00+00` for a timestamp, a decimal's exact digits), through the server's own
//! row encoder, so `format('%s', x)` and `x::text` as psql shows it agree.
//!
//! It owns these four functions; it must not change how other functions are planned.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::Error;

/// Register `format`, `quote_ident`, `quote_literal` and `quote_nullable`.
pub fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::from(FormatFunc {
        signature: Signature::variadic_any(Volatility::Stable),
    }));
    for quote in [Quote::Ident, Quote::Literal, Quote::Nullable] {
        ctx.register_udf(ScalarUDF::from(QuoteFunc {
            quote,
            signature: Signature::any(1, Volatility::Stable),
        }));
    }
}

/// The error for a bad format string or argument list (SQLSTATE 22023, as in Postgres).
fn invalid(message: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(Error::InvalidParameter(message.into())))
}

/// Keywords Postgres 16 quotes in `quote_ident` (every category but the unreserved one).
const QUOTED_KEYWORDS: &[&str] = &[
    // reserved
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "system_user",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
    // type or function names
    "authorization",
    "binary",
    "collation",
    "concurrently",
    "cross",
    "current_schema",
    "freeze",
    "full",
    "ilike",
    "inner",
    "is",
    "isnull",
    "join",
    "left",
    "like",
    "natural",
    "notnull",
    "outer",
    "overlaps",
    "right",
    "similar",
    "tablesample",
    "verbose",
    // column names
    "between",
    "bigint",
    "bit",
    "boolean",
    "char",
    "character",
    "coalesce",
    "dec",
    "decimal",
    "exists",
    "extract",
    "float",
    "greatest",
    "grouping",
    "inout",
    "int",
    "integer",
    "interval",
    "json",
    "json_array",
    "json_arrayagg",
    "json_object",
    "json_objectagg",
    "least",
    "national",
    "nchar",
    "none",
    "normalize",
    "nullif",
    "numeric",
    "out",
    "overlay",
    "position",
    "precision",
    "real",
    "row",
    "setof",
    "smallint",
    "substring",
    "time",
    "timestamp",
    "treat",
    "trim",
    "values",
    "varchar",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// `name` as an SQL identifier: unchanged when it is a lower-case name that is not a keyword,
/// else in double quotes with quotes doubled.
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !QUOTED_KEYWORDS.contains(&name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `value` as an SQL string literal: quotes doubled, and backslashes doubled with an `E` prefix
/// when there are any, as Postgres writes it.
pub fn quote_literal(value: &str) -> String {
    let escape = value.contains('\\');
    let mut out = String::with_capacity(value.len() + 3);
    if escape {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Apply Postgres' `format` string `template` to `args` (each already its text form, NULL as
/// `None`): `%s` text (NULL as nothing), `%I` an identifier, `%L` a literal (NULL as `NULL`),
/// `%%` a percent sign; each with an optional `n$` argument position, `-` flag and width (a
/// number, `*` or `*n$`, from the next or the n-th argument; negative means left-justified).
pub fn apply(template: &str, args: &[Option<&str>]) -> DfResult<String> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    // The last argument used (1-based; 0 before the first): a specifier without a position
    // takes the one after it, as does a value after a width taken from an argument.
    let mut last = 0usize;
    let unterminated = || invalid("unterminated format() type specifier");
    let argument = |n: usize| -> DfResult<Option<&str>> {
        n.checked_sub(1)
            .and_then(|i| args.get(i))
            .copied()
            .ok_or_else(|| invalid("too few arguments for format()"))
    };
    // A number at the cursor, if there is one.
    fn number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> DfResult<Option<usize>> {
        let mut value: Option<usize> = None;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            chars.next();
            value = Some(
                value
                    .unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(d as usize))
                    .filter(|v| *v <= i32::MAX as usize)
                    .ok_or_else(|| invalid("number is out of range"))?,
            );
        }
        Ok(value)
    }
    fn position(n: usize) -> DfResult<usize> {
        if n == 0 {
            return Err(invalid(
                "format specifies argument 0, but arguments are numbered from 1",
            ));
        }
        Ok(n)
    }
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        // `n$`: the argument's position; digits without `$` are the width.
        let mut value_position: Option<usize> = None;
        let mut width: Option<i64> = None;
        let mut left = false;
        match number(&mut chars)? {
            Some(n) if chars.peek() == Some(&'$') => {
                chars.next();
                value_position = Some(position(n)?);
            }
            Some(n) => width = Some(n as i64),
            None => {}
        }
        if width.is_none() {
            while chars.peek() == Some(&'-') {
                chars.next();
                left = true;
            }
            if chars.peek() == Some(&'*') {
                chars.next();
                last = match number(&mut chars)? {
                    Some(n) => {
                        if chars.next() != Some('$') {
                            return Err(unterminated());
                        }
                        position(n)?
                    }
                    None => last + 1,
                };
                width = Some(match argument(last)? {
                    None => 0,
                    Some(text) => text.trim().parse::<i64>().map_err(|_| {
                        invalid(format!(
                            "invalid input syntax for type integer: \"{text}\" (format() width)"
                        ))
                    })?,
                });
            } else {
                width = number(&mut chars)?.map(|n| n as i64);
            }
        }
        let kind = chars.next().ok_or_else(unterminated)?;
        last = value_position.unwrap_or(last + 1);
        let formatted =
            match kind {
                's' => argument(last)?.unwrap_or_default().to_string(),
                'I' => quote_ident(argument(last)?.ok_or_else(|| {
                    invalid("null values cannot be formatted as an SQL identifier")
                })?),
                'L' => argument(last)?.map_or_else(|| "NULL".to_string(), quote_literal),
                other => {
                    return Err(invalid(format!(
                        "unrecognized format() type specifier \"{other}\" (only %s, %I and %L)"
                    )));
                }
            };
        let width = width.unwrap_or(0);
        let left = left || width < 0;
        let pad = (width.unsigned_abs() as usize).saturating_sub(formatted.chars().count());
        if left {
            out.push_str(&formatted);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&formatted);
        }
    }
    Ok(out)
}

/// The Postgres text form of every value of `arrays` (all of one length), one row per index.
pub(crate) fn text_values(arrays: &[ArrayRef], rows: usize) -> DfResult<Vec<Vec<Option<String>>>> {
    if arrays.is_empty() {
        return Ok(vec![Vec::new(); rows]);
    }
    let mut fields = Vec::with_capacity(arrays.len());
    let mut columns = Vec::with_capacity(arrays.len());
    for (i, array) in arrays.iter().enumerate() {
        // A bare NULL has no text encoding of its own: it is a NULL text.
        let array = if array.data_type() == &DataType::Null {
            cast(array, &DataType::Utf8)?
        } else {
            Arc::clone(array)
        };
        fields.push(Field::new(format!("a{i}"), array.data_type().clone(), true));
        columns.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    crate::copy::text_rows(&[batch]).map_err(|e| DataFusionError::External(Box::new(e)))
}

/// The arguments as arrays of `rows` values, and whether all were constants (then `rows` is 1).
pub(crate) fn arguments(args: &ScalarFunctionArgs) -> DfResult<(Vec<ArrayRef>, usize, bool)> {
    let constant = args
        .args
        .iter()
        .all(|a| matches!(a, ColumnarValue::Scalar(_)));
    let rows = if constant { 1 } else { args.number_rows };
    let arrays = args
        .args
        .iter()
        .map(|a| a.to_array(rows))
        .collect::<DfResult<Vec<_>>>()?;
    Ok((arrays, rows, constant))
}

fn output(values: Vec<Option<String>>, constant: bool) -> ColumnarValue {
    if constant {
        ColumnarValue::Scalar(ScalarValue::Utf8(values.into_iter().next().flatten()))
    } else {
        ColumnarValue::Array(Arc::new(StringArray::from(values)))
    }
}

/// `format(formatstr text [, formatarg "any" [, ...]])`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FormatFunc {
    signature: Signature,
}

impl ScalarUDFImpl for FormatFunc {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        match arg_types.first() {
            Some(DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null) => {
                Ok(DataType::Utf8)
            }
            Some(other) => Err(DataFusionError::Plan(format!(
                "function format({other}, ...) does not exist: the format string must be text"
            ))),
            None => Err(DataFusionError::Plan(
                "function format() does not exist: it needs a format string".into(),
            )),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let (arrays, rows, constant) = arguments(&args)?;
        let templates = cast(&arrays[0], &DataType::Utf8)?;
        let templates = templates.as_string::<i32>();
        let values = text_values(&arrays[1..], rows)?;
        let mut out = Vec::with_capacity(rows);
        for (row, values) in values.iter().enumerate() {
            if templates.is_null(row) {
                out.push(None);
                continue;
            }
            let values: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
            out.push(Some(apply(templates.value(row), &values)?));
        }
        Ok(output(out, constant))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Quote {
    Ident,
    Literal,
    Nullable,
}

/// `quote_ident(text)`, `quote_literal(anyelement)`, `quote_nullable(anyelement)`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct QuoteFunc {
    quote: Quote,
    signature: Signature,
}

impl ScalarUDFImpl for QuoteFunc {
    fn name(&self) -> &str {
        match self.quote {
            Quote::Ident => "quote_ident",
            Quote::Literal => "quote_literal",
            Quote::Nullable => "quote_nullable",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let (arrays, rows, constant) = arguments(&args)?;
        let values = text_values(&arrays, rows)?;
        let out = values
            .into_iter()
            .map(|row| match (self.quote, row.into_iter().next().flatten()) {
                (Quote::Ident, value) => value.map(|v| quote_ident(&v)),
                (Quote::Literal, value) => value.map(|v| quote_literal(&v)),
                (Quote::Nullable, value) => {
                    Some(value.map_or_else(|| "NULL".to_string(), |v| quote_literal(&v)))
                }
            })
            .collect();
        Ok(output(out, constant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(template: &str, args: &[Option<&str>]) -> String {
        apply(template, args).expect("valid")
    }

    fn error(template: &str, args: &[Option<&str>]) -> String {
        apply(template, args).expect_err("an error").to_string()
    }

    #[test]
    fn specifiers_as_postgres_documents_them() {
        assert_eq!(format("Hello %s", &[Some("World")]), "Hello World");
        assert_eq!(
            format(
                "Testing %s, %s, %s, %%",
                &[Some("one"), Some("two"), Some("three")]
            ),
            "Testing one, two, three, %"
        );
        assert_eq!(
            format(
                "INSERT INTO %I VALUES(%L)",
                &[Some("Foo bar"), Some("O'Reilly")]
            ),
            "INSERT INTO \"Foo bar\" VALUES('O''Reilly')"
        );
        assert_eq!(
            format(
                "INSERT INTO %I VALUES(%L)",
                &[Some("locations"), Some("C:\\Program Files")]
            ),
            "INSERT INTO locations VALUES(E'C:\\\\Program Files')"
        );
        assert_eq!(format("|%10s|", &[Some("foo")]), "|       foo|");
        assert_eq!(format("|%-10s|", &[Some("foo")]), "|foo       |");
        assert_eq!(format("|%*s|", &[Some("10"), Some("foo")]), "|       foo|");
        assert_eq!(format("|%*s|", &[Some("-10"), Some("foo")]), "|foo       |");
        assert_eq!(format("|%-*s|", &[Some("10"), Some("foo")]), "|foo       |");
        assert_eq!(
            format("|%-*s|", &[Some("-10"), Some("foo")]),
            "|foo       |"
        );
        assert_eq!(
            format(
                "Testing %3$s, %2$s, %1$s",
                &[Some("one"), Some("two"), Some("three")]
            ),
            "Testing three, two, one"
        );
        assert_eq!(
            format("|%*2$s|", &[Some("foo"), Some("10"), Some("bar")]),
            "|       bar|"
        );
        assert_eq!(
            format("|%1$*2$s|", &[Some("foo"), Some("10"), Some("bar")]),
            "|       foo|"
        );
        assert_eq!(
            format(
                "Testing %3$s, %2$s, %s",
                &[Some("one"), Some("two"), Some("three")]
            ),
            "Testing three, two, three"
        );
        // Width counts characters, not bytes.
        assert_eq!(format("%4s|", &[Some("€")]), "   €|");
    }

    #[test]
    fn nulls() {
        assert_eq!(format("[%s]", &[None]), "[]");
        assert_eq!(format("%L", &[None]), "NULL");
        assert_eq!(format("|%*s|", &[None, Some("x")]), "|x|");
        assert!(error("%I", &[None]).contains("null values cannot be formatted"));
    }

    #[test]
    fn bad_templates_are_errors() {
        assert!(error("%s %s", &[Some("a")]).contains("too few arguments"));
        assert!(error("%d", &[Some("1")]).contains("unrecognized format() type specifier \"d\""));
        assert!(error("100%", &[]).contains("unterminated"));
        assert!(error("%0$s", &[Some("a")]).contains("numbered from 1"));
        assert!(error("%*s", &[Some("ten"), Some("a")]).contains("integer"));
    }

    #[test]
    fn identifiers_and_literals() {
        assert_eq!(quote_ident("team"), "team");
        assert_eq!(quote_ident("team_2"), "team_2");
        assert_eq!(quote_ident("Team"), "\"Team\"");
        assert_eq!(quote_ident("2team"), "\"2team\"");
        assert_eq!(quote_ident("select"), "\"select\"");
        // An unreserved keyword needs no quotes.
        assert_eq!(quote_ident("budget"), "budget");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident(""), "\"\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
    }
}
