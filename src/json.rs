//! JSON in SQL, as Postgres writes it: `tags ->> 'team'`, `tags -> 'limits' ->> 'daily'`,
//! `tags #>> '{a,b}'`, `tags ? 'team'`, `x::json`, `x::jsonb`, `json_build_object`, `to_json`,
//! `json_typeof`, `json_extract_path_text`, the aggregate `json_agg` and their `jsonb_` twins.
//!
//! There is no JSON column type: JSON is text (the `tags` column of usage is a JSON object in
//! text), and a value that is known to be JSON (the result of `::json`, `->`, `to_json`, ...)
//! carries Arrow's `arrow.json` extension name in its field, so that `json_build_object` embeds
//! it as JSON instead of as a string. Text read as JSON must be valid JSON, or the query fails
//! with 22P02, as a cast to `json` does in Postgres. A `json` value keeps its text; `jsonb` is
//! normalized as Postgres prints it (keys ordered and unique, `": "` and `", "`).
//!
//! It owns these operators and functions; it must not change how other expressions are planned.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, GenericListArray, OffsetSizeTrait, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr, TypePlanner};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{BinaryOperator, DataType as SqlType};

use crate::error::Error;

mod agg;

/// The extension name Arrow gives JSON text.
const JSON_EXTENSION: &str = "arrow.json";
const EXTENSION_KEY: &str = "ARROW:extension:name";

/// Register the JSON functions in `ctx`, and the `json` and `jsonb` types in front of its type
/// planner (the operators are planned by [`JsonOperators`]).
pub fn register(ctx: &SessionContext) {
    {
        let state = ctx.state_ref();
        let existing = state.read().clone();
        let mut builder = SessionStateBuilder::new_from_existing(existing);
        let next = builder.type_planner().clone();
        *state.write() = builder
            .with_type_planner(Arc::new(JsonTypes { next }))
            .build();
    }
    agg::register(ctx);
    for (name, kind) in [
        ("json_in", Kind::Parse { normalize: false }),
        ("jsonb_in", Kind::Parse { normalize: true }),
        ("to_json", Kind::ToJson { normalize: false }),
        ("to_jsonb", Kind::ToJson { normalize: true }),
        ("json_build_object", Kind::BuildObject { normalize: false }),
        ("jsonb_build_object", Kind::BuildObject { normalize: true }),
        ("json_typeof", Kind::TypeOf),
        ("jsonb_typeof", Kind::TypeOf),
        ("json_object_field", Kind::Get(Get::Field, false)),
        ("json_object_field_text", Kind::Get(Get::Field, true)),
        ("json_array_element", Kind::Get(Get::Element, false)),
        ("json_array_element_text", Kind::Get(Get::Element, true)),
        ("json_extract_path", Kind::Get(Get::Path, false)),
        ("json_extract_path_text", Kind::Get(Get::Path, true)),
        ("jsonb_extract_path", Kind::Get(Get::Path, false)),
        ("jsonb_extract_path_text", Kind::Get(Get::Path, true)),
        ("jsonb_exists", Kind::Exists),
    ] {
        ctx.register_udf(ScalarUDF::from(JsonFunc {
            name,
            kind,
            signature: Signature::variadic_any(Volatility::Stable),
        }));
    }
}

/// Plans `->`, `->>`, `#>`, `#>>` and `?` when the left side is text.
#[derive(Debug, Default)]
pub struct JsonOperators;

impl ExprPlanner for JsonOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> DfResult<PlannerResult<RawBinaryExpr>> {
        let (function, kind) = match &expr.op {
            BinaryOperator::Arrow | BinaryOperator::LongArrow => {
                let text = expr.op == BinaryOperator::LongArrow;
                match (expr.right.get_type(schema)?.is_integer(), text) {
                    (false, false) => ("json_object_field", Kind::Get(Get::Field, false)),
                    (false, true) => ("json_object_field_text", Kind::Get(Get::Field, true)),
                    (true, false) => ("json_array_element", Kind::Get(Get::Element, false)),
                    (true, true) => ("json_array_element_text", Kind::Get(Get::Element, true)),
                }
            }
            BinaryOperator::HashArrow => ("json_extract_path", Kind::Get(Get::PathArray, false)),
            BinaryOperator::HashLongArrow => {
                ("json_extract_path_text", Kind::Get(Get::PathArray, true))
            }
            BinaryOperator::Question => ("jsonb_exists", Kind::Exists),
            _ => return Ok(PlannerResult::Original(expr)),
        };
        if !is_text(&expr.left.get_type(schema)?) {
            return Ok(PlannerResult::Original(expr));
        }
        let udf = Arc::new(ScalarUDF::from(JsonFunc {
            name: function,
            kind,
            signature: Signature::variadic_any(Volatility::Stable),
        }));
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            datafusion::logical_expr::expr::ScalarFunction::new_udf(
                udf,
                vec![expr.left, expr.right],
            ),
        )))
    }
}

/// `json` and `jsonb` columns are text; other types are for the planner before it.
#[derive(Debug)]
struct JsonTypes {
    next: Option<Arc<dyn TypePlanner>>,
}

impl TypePlanner for JsonTypes {
    fn plan_type_field(&self, sql_type: &SqlType) -> DfResult<Option<FieldRef>> {
        match (sql_type, &self.next) {
            (SqlType::JSON | SqlType::JSONB, _) => {
                Ok(Some(Arc::new(Field::new("json", DataType::Utf8, true))))
            }
            (_, Some(next)) => next.plan_type_field(sql_type),
            (_, None) => Ok(None),
        }
    }
}

fn is_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null
    )
}

fn json_field(name: &str) -> FieldRef {
    Arc::new(
        Field::new(name, DataType::Utf8, true).with_metadata(HashMap::from([(
            EXTENSION_KEY.to_string(),
            JSON_EXTENSION.to_string(),
        )])),
    )
}

/// Whether `field` holds JSON values (text marked with Arrow's `arrow.json` extension name).
pub(crate) fn is_json(field: &Field) -> bool {
    field.metadata().get(EXTENSION_KEY).map(String::as_str) == Some(JSON_EXTENSION)
}

/// The 22P02 error for text that is not JSON.
fn invalid_json(text: &str, e: &serde_json::Error) -> DataFusionError {
    let shown: String = text.chars().take(60).collect();
    let more = if shown.len() < text.len() { "..." } else { "" };
    DataFusionError::External(Box::new(Error::InvalidValue {
        message: format!("invalid input syntax for type json: \"{shown}{more}\" ({e})"),
    }))
}

fn invalid(message: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(Error::InvalidParameter(message.into())))
}

/// `text` checked to be one JSON value.
fn validated(text: &str) -> DfResult<&str> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| invalid_json(text, &e))?;
    Ok(text.trim_matches(|c: char| c.is_ascii_whitespace()))
}

// ---- reading valid JSON text in place ----

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end of the value that starts at `i` in valid JSON `s`.
fn value_end(s: &[u8], i: usize) -> usize {
    match s[i] {
        b'"' => string_end(s, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < s.len() {
                match s[j] {
                    b'"' => {
                        j = string_end(s, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            s.len()
        }
        _ => {
            let mut j = i;
            while j < s.len() && !matches!(s[j], b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            j
        }
    }
}

fn string_end(s: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
    s.len()
}

/// The members of a valid JSON object, in order, keys decoded; `None` if `json` is no object.
fn members(json: &str) -> Option<Vec<(String, &str)>> {
    let s = json.as_bytes();
    let mut i = skip_ws(s, 0);
    if s.get(i) != Some(&b'{') {
        return None;
    }
    let mut out = Vec::new();
    i = skip_ws(s, i + 1);
    while i < s.len() && s[i] != b'}' {
        let key_end = string_end(s, i);
        let key: String = serde_json::from_str(&json[i..key_end]).ok()?;
        i = skip_ws(s, key_end) + 1; // the colon
        i = skip_ws(s, i);
        let end = value_end(s, i);
        out.push((key, &json[i..end]));
        i = skip_ws(s, end);
        if s.get(i) == Some(&b',') {
            i = skip_ws(s, i + 1);
        }
    }
    Some(out)
}

/// The elements of a valid JSON array; `None` if `json` is no array.
fn elements(json: &str) -> Option<Vec<&str>> {
    let s = json.as_bytes();
    let mut i = skip_ws(s, 0);
    if s.get(i) != Some(&b'[') {
        return None;
    }
    let mut out = Vec::new();
    i = skip_ws(s, i + 1);
    while i < s.len() && s[i] != b']' {
        let end = value_end(s, i);
        out.push(&json[i..end]);
        i = skip_ws(s, end);
        if s.get(i) == Some(&b',') {
            i = skip_ws(s, i + 1);
        }
    }
    Some(out)
}

/// The member `key` of an object (the last one when a key repeats, as Postgres reads `json`).
fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    members(json)?
        .into_iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// The element `index` of an array, counting from the end when negative.
fn element(json: &str, index: i64) -> Option<&str> {
    let items = elements(json)?;
    let at = if index < 0 {
        items.len().checked_sub(index.unsigned_abs() as usize)?
    } else {
        index as usize
    };
    items.get(at).copied()
}

/// A path step: an object key, or an array index given as text.
fn step<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    match json.as_bytes().first() {
        Some(b'{') => field(json, key),
        Some(b'[') => element(json, key.trim().parse().ok()?),
        _ => None,
    }
}

fn type_of(json: &str) -> &'static str {
    match json.as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

/// A JSON value as text the way `->>` gives it: a string unquoted, `null` as NULL.
fn as_text(json: &str) -> Option<String> {
    match json.as_bytes().first() {
        Some(b'"') => serde_json::from_str(json).ok(),
        Some(b'n') => None,
        _ => Some(json.to_string()),
    }
}

/// Valid JSON as `jsonb` prints it: object keys unique (the last wins) and ordered by length,
/// then bytes; `": "` after keys and `", "` between items; strings re-escaped; numbers as given.
fn normalize(json: &str, out: &mut String) {
    match json.as_bytes().first() {
        Some(b'{') => {
            let mut members = members(json).unwrap_or_default();
            // Stable sort, then keep the last of equal keys.
            members.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then_with(|| a.0.cmp(&b.0)));
            let mut unique: Vec<(String, &str)> = Vec::with_capacity(members.len());
            for member in members {
                match unique.last_mut() {
                    Some(last) if last.0 == member.0 => *last = member,
                    _ => unique.push(member),
                }
            }
            out.push('{');
            for (i, (key, value)) in unique.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&quote(key));
                out.push_str(": ");
                normalize(value, out);
            }
            out.push('}');
        }
        Some(b'[') => {
            out.push('[');
            for (i, item) in elements(json).unwrap_or_default().iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                normalize(item, out);
            }
            out.push(']');
        }
        Some(b'"') => {
            let text: String = serde_json::from_str(json).unwrap_or_default();
            out.push_str(&quote(&text));
        }
        _ => out.push_str(json),
    }
}

fn normalized(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    normalize(json, &mut out);
    out
}

/// `text` as a JSON string.
fn quote(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

// ---- SQL values as JSON ----

/// Each value of `array` as JSON (`None` for SQL NULL); `json` when the text is JSON already.
fn to_json_values(array: &ArrayRef, json: bool) -> DfResult<Vec<Option<String>>> {
    let rows = array.len();
    let mut out: Vec<Option<String>> = Vec::with_capacity(rows);
    match array.data_type() {
        DataType::Null => out.resize(rows, None),
        DataType::Boolean => {
            let values = array.as_boolean();
            out.extend(values.iter().map(|v| v.map(|b| b.to_string())));
        }
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
            let text = cast(array, &DataType::Utf8)?;
            for v in text.as_string::<i32>().iter() {
                out.push(match v {
                    None => None,
                    Some(v) if json => Some(validated(v)?.to_string()),
                    Some(v) => Some(quote(v)),
                });
            }
        }
        DataType::List(_) => list_json(array.as_list::<i32>(), &mut out)?,
        DataType::LargeList(_) => list_json(array.as_list::<i64>(), &mut out)?,
        DataType::Struct(fields) => {
            let structs = array.as_struct();
            let columns = fields
                .iter()
                .zip(structs.columns())
                .map(|(f, c)| to_json_values(c, is_json(f)))
                .collect::<DfResult<Vec<_>>>()?;
            for row in 0..rows {
                if structs.is_null(row) {
                    out.push(None);
                    continue;
                }
                let members: Vec<String> = fields
                    .iter()
                    .zip(&columns)
                    .map(|(f, c)| {
                        format!(
                            "{}:{}",
                            quote(f.name()),
                            c[row].as_deref().unwrap_or("null")
                        )
                    })
                    .collect();
                out.push(Some(format!("{{{}}}", members.join(","))));
            }
        }
        t => {
            // Everything else as its Postgres text: numbers as they are (NaN and infinities as
            // strings), other values in a JSON string, times in ISO 8601 with a `T`, as
            // Postgres' `to_json` writes them.
            let time = matches!(t, DataType::Timestamp(..));
            let number = t.is_numeric();
            for text in text_values(array)? {
                out.push(text.map(|text| {
                    if number && text.parse::<f64>().is_ok_and(f64::is_finite) {
                        text
                    } else if time {
                        quote(&iso_time(&text))
                    } else {
                        quote(&text)
                    }
                }));
            }
        }
    }
    Ok(out)
}

fn list_json<O: OffsetSizeTrait>(
    list: &GenericListArray<O>,
    out: &mut Vec<Option<String>>,
) -> DfResult<()> {
    let item_json = match list.data_type() {
        DataType::List(f) | DataType::LargeList(f) => is_json(f),
        _ => false,
    };
    let items = to_json_values(list.values(), item_json)?;
    for row in 0..list.len() {
        if list.is_null(row) {
            out.push(None);
            continue;
        }
        let (start, end) = (
            list.value_offsets()[row].as_usize(),
            list.value_offsets()[row + 1].as_usize(),
        );
        let parts: Vec<&str> = items[start..end]
            .iter()
            .map(|v| v.as_deref().unwrap_or("null"))
            .collect();
        out.push(Some(format!("[{}]", parts.join(","))));
    }
    Ok(())
}

/// Postgres' text of a timestamp (`2026-03-01 10:00:00+00`) as `to_json` writes it
/// (`2026-03-01T10:00:00+00:00`).
fn iso_time(text: &str) -> String {
    let mut out = text.replacen(' ', "T", 1);
    let offset_at = out.rfind(['+', '-']).filter(|at| *at > 10);
    if let Some(at) = offset_at
        && out.len() - at == 3
    {
        out.push_str(":00");
    }
    out
}

// ---- the functions ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Get {
    /// `json -> text`: an object's member.
    Field,
    /// `json -> int`: an array's element.
    Element,
    /// `json_extract_path(json, VARIADIC text)`: keys or indexes.
    Path,
    /// `json #> text[]`: the path as one array (or its `{a,b}` text).
    PathArray,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Parse { normalize: bool },
    ToJson { normalize: bool },
    BuildObject { normalize: bool },
    TypeOf,
    Get(Get, bool),
    Exists,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonFunc {
    name: &'static str,
    kind: Kind,
    signature: Signature,
}

impl JsonFunc {
    fn returns_json(&self) -> bool {
        matches!(
            self.kind,
            Kind::Parse { .. }
                | Kind::ToJson { .. }
                | Kind::BuildObject { .. }
                | Kind::Get(_, false)
        )
    }

    fn check_arguments(&self, types: &[DataType]) -> DfResult<()> {
        let name = self.name;
        let count_ok = match self.kind {
            Kind::Parse { .. } | Kind::ToJson { .. } | Kind::TypeOf => types.len() == 1,
            Kind::BuildObject { .. } => types.len().is_multiple_of(2),
            Kind::Get(Get::Path, _) => !types.is_empty(),
            Kind::Get(_, _) | Kind::Exists => types.len() == 2,
        };
        if !count_ok {
            return Err(DataFusionError::Plan(format!(
                "function {name} with {} arguments does not exist{}",
                types.len(),
                if matches!(self.kind, Kind::BuildObject { .. }) {
                    ": the argument list must have an even number of elements (keys and values)"
                } else {
                    ""
                }
            )));
        }
        let json_first = !matches!(self.kind, Kind::ToJson { .. } | Kind::BuildObject { .. });
        if json_first && !is_text(&types[0]) {
            return Err(DataFusionError::Plan(format!(
                "function {name}({}) does not exist: JSON is read from text",
                types[0]
            )));
        }
        Ok(())
    }
}

impl ScalarUDFImpl for JsonFunc {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.check_arguments(arg_types)?;
        Ok(match self.kind {
            Kind::Exists => DataType::Boolean,
            _ => DataType::Utf8,
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let types: Vec<DataType> = args
            .arg_fields
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let returns = self.return_type(&types)?;
        Ok(if self.returns_json() {
            json_field(self.name)
        } else {
            Arc::new(Field::new(self.name, returns, true))
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let (arrays, rows, constant) = crate::catalog::format::arguments(&args)?;
        let out: ArrayRef = match self.kind {
            Kind::Exists => {
                let docs = strings(&arrays[0])?;
                let keys = strings(&arrays[1])?;
                let mut out = Vec::with_capacity(rows);
                for (doc, key) in docs.iter().zip(keys.iter()) {
                    out.push(match (doc, key) {
                        (Some(doc), Some(key)) => {
                            let doc = validated(doc)?;
                            Some(exists(doc, key))
                        }
                        _ => None,
                    });
                }
                Arc::new(BooleanArray::from(out))
            }
            Kind::Parse { normalize } => {
                let docs = strings(&arrays[0])?;
                let mut out = Vec::with_capacity(rows);
                for doc in docs.iter() {
                    out.push(match doc {
                        None => None,
                        Some(doc) => {
                            let doc = validated(doc)?;
                            Some(if normalize {
                                normalized(doc)
                            } else {
                                doc.to_string()
                            })
                        }
                    });
                }
                Arc::new(StringArray::from(out))
            }
            Kind::ToJson { normalize } => {
                let values = to_json_values(&arrays[0], is_json(&args.arg_fields[0]))?;
                Arc::new(StringArray::from_iter(
                    values
                        .into_iter()
                        .map(|v| v.map(|v| if normalize { normalized(&v) } else { v })),
                ))
            }
            Kind::BuildObject { normalize } => {
                let mut columns = Vec::with_capacity(arrays.len());
                for (i, (array, field)) in arrays.iter().zip(&args.arg_fields).enumerate() {
                    if i % 2 == 0 {
                        columns.push(text_values(array)?);
                    } else {
                        columns.push(to_json_values(array, is_json(field))?);
                    }
                }
                let mut out = Vec::with_capacity(rows);
                for row in 0..rows {
                    let mut text = String::from("{");
                    for pair in columns.chunks(2) {
                        let key = pair[0][row].as_deref().ok_or_else(|| {
                            invalid(format!(
                                "{}: null value not allowed for object key",
                                self.name
                            ))
                        })?;
                        if text.len() > 1 {
                            text.push_str(", ");
                        }
                        text.push_str(&quote(key));
                        text.push_str(" : ");
                        text.push_str(pair[1][row].as_deref().unwrap_or("null"));
                    }
                    text.push('}');
                    out.push(Some(if normalize { normalized(&text) } else { text }));
                }
                Arc::new(StringArray::from(out))
            }
            Kind::TypeOf => {
                let docs = strings(&arrays[0])?;
                let mut out = Vec::with_capacity(rows);
                for doc in docs.iter() {
                    out.push(match doc {
                        None => None,
                        Some(doc) => Some(type_of(validated(doc)?)),
                    });
                }
                Arc::new(StringArray::from(out))
            }
            Kind::Get(get, text) => {
                let docs = strings(&arrays[0])?;
                let paths = paths(get, &arrays[1..], rows)?;
                let mut out = Vec::with_capacity(rows);
                for (row, doc) in docs.iter().enumerate() {
                    let (Some(doc), Some(path)) = (doc, &paths[row]) else {
                        out.push(None);
                        continue;
                    };
                    let mut at = Some(validated(doc)?);
                    for key in path {
                        at = at.and_then(|json| match (get, key) {
                            (Get::Field, Key::Name(k)) => field(json, k),
                            (Get::Element, Key::Index(i)) => element(json, *i),
                            (_, Key::Name(k)) => step(json, k),
                            (_, Key::Index(i)) => element(json, *i),
                        });
                    }
                    out.push(match at {
                        None => None,
                        Some(json) if text => as_text(json),
                        Some(json) => Some(json.to_string()),
                    });
                }
                Arc::new(StringArray::from(out))
            }
        };
        Ok(if constant {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

/// `json ? key`: a key of an object, or a string element of an array, or the string itself.
fn exists(json: &str, key: &str) -> bool {
    match json.as_bytes().first() {
        Some(b'{') => members(json).is_some_and(|m| m.iter().any(|(k, _)| k == key)),
        Some(b'[') => elements(json).is_some_and(|items| {
            items
                .iter()
                .any(|item| item.starts_with('"') && as_text(item).as_deref() == Some(key))
        }),
        Some(b'"') => as_text(json).as_deref() == Some(key),
        _ => false,
    }
}

fn strings(array: &ArrayRef) -> DfResult<StringArray> {
    Ok(cast(array, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// The Postgres text of each value of `array`.
fn text_values(array: &ArrayRef) -> DfResult<Vec<Option<String>>> {
    Ok(
        crate::catalog::format::text_values(std::slice::from_ref(array), array.len())?
            .into_iter()
            .map(|row| row.into_iter().next().flatten())
            .collect(),
    )
}

#[derive(Debug, Clone, PartialEq)]
enum Key {
    Name(String),
    Index(i64),
}

/// The path of each row (`None` when a step is NULL, which makes the result NULL).
fn paths(get: Get, arrays: &[ArrayRef], rows: usize) -> DfResult<Vec<Option<Vec<Key>>>> {
    let mut out: Vec<Option<Vec<Key>>> = vec![Some(Vec::new()); rows];
    for array in arrays {
        match (get, array.data_type()) {
            (Get::PathArray, DataType::List(_) | DataType::LargeList(_)) => {
                let list = cast(
                    array,
                    &DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
                )?;
                let list = list.as_list::<i32>();
                for (row, path) in out.iter_mut().enumerate() {
                    if list.is_null(row) {
                        *path = None;
                        continue;
                    }
                    let items = list.value(row);
                    let items = items.as_string::<i32>();
                    for item in items.iter() {
                        match (item, path.as_mut()) {
                            (Some(item), Some(p)) => p.push(Key::Name(item.to_string())),
                            _ => *path = None,
                        }
                    }
                }
            }
            (Get::PathArray, t) if is_text(t) => {
                let texts = strings(array)?;
                for (row, path) in out.iter_mut().enumerate() {
                    match (texts.is_valid(row), path.as_mut()) {
                        (true, Some(p)) => {
                            p.extend(text_array(texts.value(row))?.into_iter().map(Key::Name))
                        }
                        _ => *path = None,
                    }
                }
            }
            (_, t) if t.is_integer() => {
                let indexes = cast(array, &DataType::Int64)?;
                let indexes = indexes.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                for (row, path) in out.iter_mut().enumerate() {
                    match (indexes.is_valid(row), path.as_mut()) {
                        (true, Some(p)) => p.push(Key::Index(indexes.value(row))),
                        _ => *path = None,
                    }
                }
            }
            (Get::Element, t) => {
                return Err(DataFusionError::Plan(format!(
                    "operator does not exist: json -> {t} (an array index is an integer)"
                )));
            }
            (_, t) if is_text(t) => {
                let texts = strings(array)?;
                for (row, path) in out.iter_mut().enumerate() {
                    match (texts.is_valid(row), path.as_mut()) {
                        (true, Some(p)) => p.push(Key::Name(texts.value(row).to_string())),
                        _ => *path = None,
                    }
                }
            }
            (_, t) => {
                return Err(DataFusionError::Plan(format!(
                    "a JSON path step is text or an integer, not {t}"
                )));
            }
        }
    }
    Ok(out)
}

/// The items of a Postgres text array literal (`{a,b,"c d"}`).
fn text_array(literal: &str) -> DfResult<Vec<String>> {
    let inner = literal
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| {
            DataFusionError::External(Box::new(Error::InvalidValue {
                message: format!(
                    "malformed array literal: \"{literal}\" (a JSON path is written '{{a,b}}')"
                ),
            }))
        })?;
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = inner.chars();
    let mut any = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ',' if !quoted => {
                items.push(std::mem::take(&mut current).trim().to_string());
                any = false;
            }
            c => {
                current.push(c);
                any = true;
            }
        }
    }
    if any || !items.is_empty() {
        items.push(current.trim().to_string());
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_members_and_elements_in_place() {
        let doc = r#" {"team": "search", "n": 1.50, "a": [1, {"b": "x\"y"}], "team": "ads"} "#;
        let doc = validated(doc).expect("valid");
        assert_eq!(field(doc, "team"), Some("\"ads\""));
        assert_eq!(field(doc, "n"), Some("1.50"));
        assert_eq!(field(doc, "missing"), None);
        let a = field(doc, "a").expect("valid");
        assert_eq!(element(a, 0), Some("1"));
        assert_eq!(element(a, -1), Some(r#"{"b": "x\"y"}"#));
        assert_eq!(element(a, 2), None);
        assert_eq!(
            as_text(field(element(a, 1).expect("valid"), "b").expect("valid")).expect("valid"),
            "x\"y"
        );
        assert_eq!(step(a, "1"), element(a, 1));
        assert_eq!(type_of(a), "array");
        assert!(exists(doc, "n"));
        assert!(!exists(doc, "b"));
    }

    #[test]
    fn jsonb_is_normalized_as_postgres_prints_it() {
        assert_eq!(
            normalized(r#"{"bb":1,"a":{"z" : [1,2,"\u00e9"]},"a":true,"c":null}"#),
            r#"{"a": true, "c": null, "bb": 1}"#
        );
        assert_eq!(normalized(r#"[ {"y":1,"x":2} ]"#), r#"[{"x": 2, "y": 1}]"#);
        assert_eq!(normalized(r#""\u00e9""#), "\"é\"");
    }

    #[test]
    fn invalid_json_is_an_error() {
        let e = validated("{\"a\": }").expect_err("an error").to_string();
        assert!(e.contains("invalid input syntax for type json"), "{e}");
        assert!(validated("[1, 2").is_err());
        assert!(validated("1 2").is_err());
    }

    #[test]
    fn path_literals() {
        assert_eq!(text_array("{a,b}").expect("valid"), vec!["a", "b"]);
        assert_eq!(text_array("{\"a b\",0}").expect("valid"), vec!["a b", "0"]);
        assert!(text_array("{}").expect("valid").is_empty());
        assert!(text_array("a,b").is_err());
    }

    #[test]
    fn times_as_to_json_writes_them() {
        assert_eq!(
            iso_time("2026-03-01 10:00:00+00"),
            "2026-03-01T10:00:00+00:00"
        );
        assert_eq!(
            iso_time("2026-03-01 10:00:00.5+05:30"),
            "2026-03-01T10:00:00.5+05:30"
        );
        assert_eq!(iso_time("2026-03-01 10:00:00"), "2026-03-01T10:00:00");
    }
}
