//! Record batches to `DataRow` messages: the path every result row takes to the client.
//!
//! A batch is encoded a row at a time into one buffer that its rows then share. Each column is
//! looked at once per batch: the common types in the format the client asked for (integers,
//! booleans, text, numeric and floats in both formats; timestamps and dates in binary, and in
//! text in the ISO `DateStyle` when they have no zone or UTC's) are written directly from the
//! Arrow arrays, everything else value by value through `arrow-pg`. The direct path gives the
//! bytes `arrow-pg` gives, except for binary numerics, which are written from their 128-bit value
//! as Postgres sends them (no trailing zero digits, the column's scale even for zero), so all 38
//! digits go out exactly where `arrow-pg` stops at 28, and text floats, which are written as
//! Postgres writes them (`Infinity`, `1e+20`, `200`; see `float_text`).
//!
//! It owns the encoding of result values. It must not plan or run queries.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, GenericStringArray, PrimitiveArray,
    RecordBatch, StringViewArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Schema,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::dataframe::DataFrame;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::arrow_pg::encoder::{Encoder, encode_value};
use futures::{Stream, StreamExt, stream};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldFormat, FieldInfo, QueryResponse};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use pgwire::types::format::date_style::DateStyle;
use postgres_types::{IsNull, ToSql};

use super::float_text::{float4_text, float8_text};
use super::sqlstate;
use crate::engine::Engine;

/// Microseconds from 1970-01-01 to 2000-01-01, the epoch of Postgres' binary timestamps.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01, the epoch of Postgres' binary dates.
const PG_EPOCH_DAYS: i32 = 10_957;

/// The row description of `schema` in `format`: `arrow-pg`'s, with JSON values (fields that
/// carry Arrow's `arrow.json` extension name, see `crate::json`) typed `json` instead of `text`,
/// so that clients that decode JSON (psycopg, node-postgres, JDBC's `PGobject`) do. Their bytes
/// are the text either way, in both formats.
pub(crate) fn pg_fields(
    schema: &Schema,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<Vec<FieldInfo>> {
    let fields = arrow_schema_to_pg_fields(schema, format, options)?;
    Ok(json_typed(fields, schema))
}

/// `fields`, which describe `schema`, with its JSON values typed `json`.
pub(crate) fn json_typed(fields: Vec<FieldInfo>, schema: &Schema) -> Vec<FieldInfo> {
    if fields.len() != schema.fields().len() {
        return fields;
    }
    fields
        .into_iter()
        .zip(schema.fields())
        .map(|(info, field)| {
            if *info.datatype() == Type::TEXT && crate::json::is_json(field) {
                FieldInfo::new(
                    info.name().to_string(),
                    info.table_id(),
                    info.column_id(),
                    Type::JSON,
                    info.format(),
                )
                .with_format_options(Arc::clone(info.format_options()))
            } else {
                info
            }
        })
        .collect()
}

/// Run `df` on `engine`'s executor and answer with its rows in `format`.
pub(crate) async fn dataframe_response(
    engine: &Engine,
    df: DataFrame,
    format: &Format,
    options: Arc<FormatOptions>,
) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(pg_fields(df.schema().as_arrow(), format, Some(options))?);
    let batches = engine
        .execute_stream(df)
        .await
        .map_err(super::hooks::to_pgwire)?;
    Ok(QueryResponse::new(
        Arc::clone(&fields),
        stream_rows(fields, batches),
    ))
}

/// The rows of a stream of batches described by `fields`.
pub(crate) fn stream_rows(
    fields: Arc<Vec<FieldInfo>>,
    batches: impl Stream<Item = datafusion::error::Result<RecordBatch>> + Send + 'static,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    batches
        .map(move |batch| {
            let rows = match batch {
                Ok(batch) => encode_batch(&fields, &batch),
                Err(e) => Err(PgWireError::ApiError(Box::new(e))),
            };
            let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send> = match rows {
                Ok(rows) => Box::new(rows.into_iter().map(Ok)),
                Err(e) => Box::new(std::iter::once(Err(e))),
            };
            stream::iter(rows)
        })
        .flatten()
}

/// The rows of `batch`, whose columns `fields` describe (names, Postgres types, formats).
pub(crate) fn encode_batch(
    fields: &[FieldInfo],
    batch: &RecordBatch,
) -> PgWireResult<Vec<DataRow>> {
    if fields.len() != batch.num_columns() {
        return Err(PgWireError::ApiError(
            format!(
                "result has {} columns but {} were described",
                batch.num_columns(),
                fields.len()
            )
            .into(),
        ));
    }
    let count = i16::try_from(fields.len())
        .map_err(|_| PgWireError::ApiError("more than 32767 result columns".into()))?;
    let schema = batch.schema();
    let columns: Vec<Column<'_>> = batch
        .columns()
        .iter()
        .zip(schema.fields().iter())
        .zip(fields)
        .map(|((array, arrow_field), field)| Column::new(array, arrow_field, field))
        .collect();
    let rows = batch.num_rows();
    // A first guess at the size: 8 bytes of value and a 4-byte length per field.
    let mut buffer = BytesMut::with_capacity(rows * fields.len() * 12);
    let mut ends = Vec::with_capacity(rows);
    for row in 0..rows {
        for column in &columns {
            column.write(&mut buffer, row)?;
        }
        ends.push(buffer.len());
    }
    let mut out = Vec::with_capacity(rows);
    let mut start = 0;
    for end in ends {
        out.push(DataRow::new(buffer.split_to(end - start), count));
        start = end;
    }
    Ok(out)
}

/// One column of a batch, ready to write its values in the format asked for.
enum Column<'a> {
    Bool(&'a BooleanArray, FieldFormat),
    Int16(&'a PrimitiveArray<Int16Type>, FieldFormat),
    Int32(&'a PrimitiveArray<Int32Type>, FieldFormat),
    Int64(&'a PrimitiveArray<Int64Type>, FieldFormat),
    Float32(&'a PrimitiveArray<Float32Type>, FloatFormat),
    Float64(&'a PrimitiveArray<Float64Type>, FloatFormat),
    /// Text is the same bytes in both formats.
    Utf8(&'a GenericStringArray<i32>),
    LargeUtf8(&'a GenericStringArray<i64>),
    Utf8View(&'a StringViewArray),
    Decimal(&'a Decimal128Array, u32, FieldFormat),
    /// Binary only (the text form depends on `DateStyle` and `TimeZone`): the values and how many
    /// of their unit make a microsecond, or how many microseconds their unit is.
    Timestamp(PrimitiveArray<Int64Type>, Scale),
    Date32(&'a PrimitiveArray<Date32Type>),
    /// Text in the ISO `DateStyle`, for a column without zone or in UTC (`zoned`: `+00` after
    /// each value); a value outside years 1 to 9999 goes through `arrow-pg` (`other`).
    TimestampText {
        values: PrimitiveArray<Int64Type>,
        scale: Scale,
        zoned: bool,
        other: Box<Column<'a>>,
    },
    /// Text in the ISO `DateStyle`; a value outside years 1 to 9999 goes through `other`.
    Date32Text(&'a PrimitiveArray<Date32Type>, Box<Column<'a>>),
    /// Anything else, value by value through `arrow-pg`.
    Other(&'a ArrayRef, &'a Field, &'a FieldInfo),
}

/// How a float column goes out: binary, or text with the session's `extra_float_digits`.
#[derive(Clone, Copy)]
enum FloatFormat {
    Binary,
    Text(i32),
}

impl FloatFormat {
    fn of(field: &FieldInfo) -> Self {
        match field.format() {
            FieldFormat::Binary => FloatFormat::Binary,
            FieldFormat::Text => {
                FloatFormat::Text(i32::from(field.format_options().extra_float_digits))
            }
        }
    }
}

/// A timestamp unit relative to microseconds.
#[derive(Clone, Copy)]
enum Scale {
    Multiply(i64),
    Divide(i64),
}

impl<'a> Column<'a> {
    fn new(array: &'a ArrayRef, arrow_field: &'a Field, field: &'a FieldInfo) -> Self {
        let format = field.format();
        let binary = format == FieldFormat::Binary;
        let ty = field.datatype();
        match (array.data_type(), ty) {
            (DataType::Boolean, &Type::BOOL) => Column::Bool(array.as_boolean(), format),
            (DataType::Int16, &Type::INT2) => Column::Int16(array.as_primitive(), format),
            (DataType::Int32, &Type::INT4) => Column::Int32(array.as_primitive(), format),
            (DataType::Int64, &Type::INT8) => Column::Int64(array.as_primitive(), format),
            (DataType::Float32, &Type::FLOAT4) => {
                Column::Float32(array.as_primitive(), FloatFormat::of(field))
            }
            (DataType::Float64, &Type::FLOAT8) => {
                Column::Float64(array.as_primitive(), FloatFormat::of(field))
            }
            // `json` is its text in both formats.
            (DataType::Utf8, &Type::TEXT | &Type::VARCHAR | &Type::JSON) => {
                Column::Utf8(array.as_string())
            }
            (DataType::LargeUtf8, &Type::TEXT | &Type::VARCHAR | &Type::JSON) => {
                Column::LargeUtf8(array.as_string())
            }
            (DataType::Utf8View, &Type::TEXT | &Type::VARCHAR | &Type::JSON) => {
                Column::Utf8View(array.as_string_view())
            }
            (DataType::Decimal128(_, scale), &Type::NUMERIC) if *scale >= 0 => {
                Column::Decimal(array.as_primitive(), *scale as u32, format)
            }
            (DataType::Timestamp(unit, tz), ty)
                if binary
                    && ((tz.is_some() && *ty == Type::TIMESTAMPTZ)
                        || (tz.is_none() && *ty == Type::TIMESTAMP)) =>
            {
                let (values, scale) = timestamp_values(array, unit);
                Column::Timestamp(values, scale)
            }
            (DataType::Timestamp(unit, tz), ty)
                if iso_dates(field)
                    && ((tz.as_deref().is_some_and(is_utc) && *ty == Type::TIMESTAMPTZ)
                        || (tz.is_none() && *ty == Type::TIMESTAMP)) =>
            {
                let (values, scale) = timestamp_values(array, unit);
                Column::TimestampText {
                    values,
                    scale,
                    zoned: tz.is_some(),
                    other: Box::new(Column::Other(array, arrow_field, field)),
                }
            }
            (DataType::Date32, &Type::DATE) if binary => Column::Date32(array.as_primitive()),
            (DataType::Date32, &Type::DATE) if iso_dates(field) => Column::Date32Text(
                array.as_primitive(),
                Box::new(Column::Other(array, arrow_field, field)),
            ),
            _ => Column::Other(array, arrow_field, field),
        }
    }
}

/// Whether `field` is text whose dates the session's `DateStyle` writes as ISO (`2024-02-29`).
fn iso_dates(field: &FieldInfo) -> bool {
    field.format() == FieldFormat::Text
        && DateStyle::new(&field.format_options().date_style).date_format_str() == "%Y-%m-%d"
}

/// Zone names whose offset is always zero, written `+00` as `arrow-pg` writes them.
fn is_utc(zone: &str) -> bool {
    matches!(zone, "UTC" | "Etc/UTC" | "+00:00")
}

/// A timestamp array's values as `i64`, and their unit relative to microseconds.
fn timestamp_values(array: &ArrayRef, unit: &TimeUnit) -> (PrimitiveArray<Int64Type>, Scale) {
    // Every timestamp unit is an i64 underneath.
    match unit {
        TimeUnit::Second => (
            array
                .as_primitive::<TimestampSecondType>()
                .reinterpret_cast::<Int64Type>(),
            Scale::Multiply(1_000_000),
        ),
        TimeUnit::Millisecond => (
            array
                .as_primitive::<TimestampMillisecondType>()
                .reinterpret_cast::<Int64Type>(),
            Scale::Multiply(1_000),
        ),
        TimeUnit::Microsecond => (
            array
                .as_primitive::<TimestampMicrosecondType>()
                .reinterpret_cast::<Int64Type>(),
            Scale::Multiply(1),
        ),
        TimeUnit::Nanosecond => (
            array
                .as_primitive::<TimestampNanosecondType>()
                .reinterpret_cast::<Int64Type>(),
            Scale::Divide(1_000),
        ),
    }
}

impl Column<'_> {
    /// Append the value at `row` as one field: its length (-1 for NULL), then its bytes.
    fn write(&self, out: &mut BytesMut, row: usize) -> PgWireResult<()> {
        match self {
            Column::Bool(a, format) => {
                if a.is_null(row) {
                    return null(out);
                }
                let v = a.value(row);
                out.put_i32(1);
                out.put_u8(match (format, v) {
                    (FieldFormat::Binary, v) => u8::from(v),
                    (FieldFormat::Text, true) => b't',
                    (FieldFormat::Text, false) => b'f',
                });
            }
            Column::Int16(a, format) => {
                if a.is_null(row) {
                    return null(out);
                }
                integer(out, *format, a.value(row).to_be_bytes(), a.value(row));
            }
            Column::Int32(a, format) => {
                if a.is_null(row) {
                    return null(out);
                }
                integer(out, *format, a.value(row).to_be_bytes(), a.value(row));
            }
            Column::Int64(a, format) => {
                if a.is_null(row) {
                    return null(out);
                }
                integer(out, *format, a.value(row).to_be_bytes(), a.value(row));
            }
            Column::Float32(a, format) => {
                if a.is_null(row) {
                    return null(out);
                }
                match format {
                    FloatFormat::Binary => {
                        out.put_i32(4);
                        out.put_f32(a.value(row));
                    }
                    FloatFormat::Text(extra) => {
                        text(out, float4_text(a.value(row), *extra).as_str().as_bytes());
                    }
                }
            }
            Column::Float64(a, format) => {
                if a.is_null(row) {
                    return null(out);
                }
                match format {
                    FloatFormat::Binary => {
                        out.put_i32(8);
                        out.put_f64(a.value(row));
                    }
                    FloatFormat::Text(extra) => {
                        text(out, float8_text(a.value(row), *extra).as_str().as_bytes());
                    }
                }
            }
            Column::Utf8(a) => {
                if a.is_null(row) {
                    return null(out);
                }
                text(out, a.value(row).as_bytes());
            }
            Column::LargeUtf8(a) => {
                if a.is_null(row) {
                    return null(out);
                }
                text(out, a.value(row).as_bytes());
            }
            Column::Utf8View(a) => {
                if a.is_null(row) {
                    return null(out);
                }
                text(out, a.value(row).as_bytes());
            }
            Column::Decimal(a, scale, format) => {
                if a.is_null(row) {
                    return null(out);
                }
                match format {
                    FieldFormat::Binary => numeric_binary(out, a.value(row), *scale),
                    FieldFormat::Text => numeric_text(out, a.value(row), *scale),
                }
            }
            Column::Timestamp(a, scale) => {
                if a.is_null(row) {
                    return null(out);
                }
                let value = i128::from(a.value(row));
                let epoch = i128::from(PG_EPOCH_MICROS);
                let micros = match *scale {
                    Scale::Multiply(m) => value * i128::from(m) - epoch,
                    // Toward zero from 2000-01-01, as chrono (behind `arrow-pg`) truncates.
                    Scale::Divide(d) => (value - epoch * i128::from(d)) / i128::from(d),
                };
                let micros =
                    i64::try_from(micros).map_err(|_| out_of_range("timestamp out of range"))?;
                out.put_i32(8);
                out.put_i64(micros);
            }
            Column::Date32(a) => {
                if a.is_null(row) {
                    return null(out);
                }
                let days = a
                    .value(row)
                    .checked_sub(PG_EPOCH_DAYS)
                    .ok_or_else(|| out_of_range("date out of range"))?;
                out.put_i32(4);
                out.put_i32(days);
            }
            Column::TimestampText {
                values,
                scale,
                zoned,
                other,
            } => {
                if values.is_null(row) {
                    return null(out);
                }
                // Down to the microsecond, as chrono's `%.6f` (behind `arrow-pg`) cuts the rest.
                let micros = match *scale {
                    Scale::Multiply(m) => values.value(row).checked_mul(m),
                    Scale::Divide(d) => Some(values.value(row).div_euclid(d)),
                };
                let written = micros.is_some_and(|micros| timestamp_text(out, micros, *zoned));
                if !written {
                    return other.write(out, row);
                }
            }
            Column::Date32Text(a, other) => {
                if a.is_null(row) {
                    return null(out);
                }
                let mut buffer = [0u8; 10];
                if !date_text(&mut buffer, i64::from(a.value(row))) {
                    return other.write(out, row);
                }
                text(out, &buffer);
            }
            Column::Other(array, arrow_field, field) => {
                // `arrow-pg` writes some NULLs as values (an interval as `00:00:00`).
                if array.is_null(row) {
                    return null(out);
                }
                encode_value(&mut Fallback { out }, array, row, arrow_field, field)?;
            }
        }
        Ok(())
    }
}

/// The proleptic Gregorian `(year, month, day)` of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Write `value` into `out` as `out.len()` decimal digits, zero-padded.
fn digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `YYYY-MM-DD` of `days` since 1970-01-01 into the first ten bytes of `out`; false outside years
/// 1 to 9999, which chrono writes differently (a sign, more digits).
fn date_text(out: &mut [u8], days: i64) -> bool {
    let (year, month, day) = civil_from_days(days);
    if !(1..=9999).contains(&year) {
        return false;
    }
    digits(&mut out[0..4], year as u32);
    out[4] = b'-';
    digits(&mut out[5..7], month);
    out[7] = b'-';
    digits(&mut out[8..10], day);
    true
}

/// A field `YYYY-MM-DD HH:MM:SS[.ffffff]` (then `+00` if `zoned`) of `micros` since 1970-01-01
/// UTC; false, writing nothing, outside years 1 to 9999.
fn timestamp_text(out: &mut BytesMut, micros: i64, zoned: bool) -> bool {
    let seconds = micros.div_euclid(1_000_000);
    let fraction = micros.rem_euclid(1_000_000) as u32;
    let of_day = seconds.rem_euclid(86_400) as u32;
    let mut buffer = [0u8; 29];
    let (date, rest) = buffer.split_at_mut(10);
    if !date_text(date, seconds.div_euclid(86_400)) {
        return false;
    }
    rest[0] = b' ';
    digits(&mut rest[1..3], of_day / 3_600);
    rest[3] = b':';
    digits(&mut rest[4..6], of_day / 60 % 60);
    rest[6] = b':';
    digits(&mut rest[7..9], of_day % 60);
    // As Postgres writes it: the fraction without its trailing zeros, none when it is zero.
    let mut len = 19;
    if fraction != 0 {
        rest[9] = b'.';
        digits(&mut rest[10..16], fraction);
        len = 26;
        while buffer[len - 1] == b'0' {
            len -= 1;
        }
    }
    if zoned {
        buffer[len..len + 3].copy_from_slice(b"+00");
        len += 3;
    }
    text(out, &buffer[..len]);
    true
}

fn out_of_range(message: &str) -> PgWireError {
    PgWireError::UserError(Box::new(sqlstate::error(sqlstate::OUT_OF_RANGE, message)))
}

/// A NULL field.
fn null(out: &mut BytesMut) -> PgWireResult<()> {
    out.put_i32(-1);
    Ok(())
}

/// An integer field: its big-endian `bytes` in binary, the decimal digits of `value` in text.
fn integer<const N: usize>(
    out: &mut BytesMut,
    format: FieldFormat,
    bytes: [u8; N],
    value: impl itoa::Integer,
) {
    match format {
        FieldFormat::Binary => text(out, &bytes),
        FieldFormat::Text => text(out, itoa::Buffer::new().format(value).as_bytes()),
    }
}

/// A field of `bytes`.
fn text(out: &mut BytesMut, bytes: &[u8]) {
    out.put_i32(bytes.len() as i32);
    out.put_slice(bytes);
}

/// The decimal digits of `|value|`, at least `scale + 1` of them (leading zeros added), in a
/// buffer that holds the 39 digits of any `i128` plus zeros up to a scale of 38.
struct Digits {
    buffer: [u8; 40],
    len: usize,
}

impl Digits {
    fn new(value: i128, scale: u32) -> Self {
        let abs = value.unsigned_abs();
        let mut formatter = itoa::Buffer::new();
        // 64-bit formatting is several times faster than 128-bit; most values fit.
        let text = match u64::try_from(abs) {
            Ok(small) => formatter.format(small),
            Err(_) => formatter.format(abs),
        }
        .as_bytes();
        let len = text.len().max(scale as usize + 1).min(40);
        let mut buffer = [b'0'; 40];
        buffer[len - text.len()..len].copy_from_slice(text);
        Self { buffer, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

/// `value` × 10^-`scale` as Postgres prints a numeric of that scale: every decimal shown.
fn numeric_text(out: &mut BytesMut, value: i128, scale: u32) {
    let digits = Digits::new(value, scale);
    let digits = digits.as_bytes();
    let point = digits.len() - scale as usize;
    let len = usize::from(value < 0) + digits.len() + usize::from(scale > 0);
    out.put_i32(len as i32);
    if value < 0 {
        out.put_u8(b'-');
    }
    out.put_slice(&digits[..point]);
    if scale > 0 {
        out.put_u8(b'.');
        out.put_slice(&digits[point..]);
    }
}

/// `value` × 10^-`scale` in Postgres' binary numeric form: digit count, weight (of the first
/// base-10,000 digit), sign, display scale, then the base-10,000 digits, without leading or
/// trailing zero digits.
fn numeric_binary(out: &mut BytesMut, value: i128, scale: u32) {
    let digits = Digits::new(value, scale);
    let digits = digits.as_bytes();
    let point = digits.len() - scale as usize;
    // Base-10,000 digits aligned on the decimal point: the integer part padded on the left, the
    // fraction on the right, to multiples of four decimal digits. 40 decimal digits and the two
    // paddings make at most 12 of them.
    let int_pad = (4 - point % 4) % 4;
    let total = int_pad + digits.len();
    let mut groups = [0i16; 12];
    let count = total.div_ceil(4);
    for (i, group) in groups.iter_mut().take(count).enumerate() {
        let mut n = 0i16;
        for position in i * 4..i * 4 + 4 {
            let digit = position
                .checked_sub(int_pad)
                .and_then(|p| digits.get(p))
                .map_or(0, |d| i16::from(d - b'0'));
            n = n * 10 + digit;
        }
        *group = n;
    }
    let groups = &groups[..count];
    let (groups, weight, sign) = match groups.iter().position(|g| *g != 0) {
        None => (&groups[..0], 0i16, 0u16),
        Some(first) => {
            let last = groups.iter().rposition(|g| *g != 0).unwrap_or(first);
            let weight = ((int_pad + point) / 4) as i16 - 1 - first as i16;
            let sign = if value < 0 { 0x4000 } else { 0 };
            (&groups[first..=last], weight, sign)
        }
    };
    out.put_i32(8 + 2 * groups.len() as i32);
    out.put_i16(groups.len() as i16);
    out.put_i16(weight);
    out.put_u16(sign);
    out.put_u16(scale as u16);
    for g in groups {
        out.put_i16(*g);
    }
}

/// `arrow-pg`'s encoder writing one field into our buffer, for the types encoded value by value.
struct Fallback<'b> {
    out: &'b mut BytesMut,
}

impl Encoder for Fallback<'_> {
    type Item = ();

    fn encode_field<T>(&mut self, value: &T, field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText + Sized,
    {
        let start = self.out.len();
        self.out.put_i32(-1);
        let is_null = match field.format() {
            FieldFormat::Text => {
                value.to_sql_text(field.datatype(), self.out, field.format_options())?
            }
            FieldFormat::Binary => value.to_sql(field.datatype(), self.out)?,
        };
        if let IsNull::No = is_null {
            let len = (self.out.len() - start - 4) as i32;
            self.out[start..start + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    fn take_row(&mut self) -> Self::Item {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        BooleanArray, Date32Array, Float32Array, Float64Array, Int16Array, Int32Array, Int64Array,
        LargeStringArray, StringArray, StringViewArray, TimestampMicrosecondArray,
        TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
    };
    use datafusion::arrow::datatypes::Schema;
    use datafusion_postgres::arrow_pg::datatypes::encode_recordbatch;
    use postgres_types::FromSql;
    use rust_decimal::Decimal;

    fn fields(schema: &Schema, format: FieldFormat) -> Arc<Vec<FieldInfo>> {
        let format = match format {
            FieldFormat::Text => Format::UnifiedText,
            FieldFormat::Binary => Format::UnifiedBinary,
        };
        Arc::new(
            arrow_schema_to_pg_fields(schema, &format, Some(Arc::new(FormatOptions::default())))
                .expect("fields"),
        )
    }

    /// A timestamp's text as `arrow-pg` writes it (always six fraction digits) without the
    /// fraction's trailing zeros, as Postgres and [`timestamp_text`] write it.
    fn trimmed_fraction(text: &str) -> String {
        let Some(dot) = text.find('.') else {
            return text.to_string();
        };
        let end = text[dot + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(text.len(), |i| dot + 1 + i);
        let digits = text[dot + 1..end].trim_end_matches('0');
        let head = if digits.is_empty() {
            text[..dot].to_string()
        } else {
            format!("{}.{digits}", &text[..dot])
        };
        format!("{head}{}", &text[end..])
    }

    /// `arrow-pg`'s text rows with the timestamps this module writes itself (UTC or no zone,
    /// years 1 to 9999) as it writes them: without the fraction's trailing zeros.
    fn postgres_fractions(batch: &RecordBatch, rows: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let schema = batch.schema();
        rows.into_iter()
            .map(|row| {
                let mut out = Vec::with_capacity(row.len());
                let mut at = 0;
                for field in schema.fields() {
                    let len = i32::from_be_bytes(row[at..at + 4].try_into().expect("length"));
                    at += 4;
                    if len < 0 {
                        out.extend_from_slice(&len.to_be_bytes());
                        continue;
                    }
                    let bytes = &row[at..at + len as usize];
                    at += len as usize;
                    let text = String::from_utf8_lossy(bytes);
                    let ours = matches!(field.data_type(),
                        DataType::Timestamp(_, tz) if tz.as_deref().is_none_or(is_utc))
                        && text.as_bytes().get(4) == Some(&b'-')
                        && !text.starts_with("0000")
                        && !text.ends_with(" BC");
                    let value = if ours {
                        trimmed_fraction(&text).into_bytes()
                    } else {
                        bytes.to_vec()
                    };
                    out.extend_from_slice(&(value.len() as i32).to_be_bytes());
                    out.extend_from_slice(&value);
                }
                out
            })
            .collect()
    }

    /// Each row's bytes from our encoder and from `arrow-pg`'s.
    fn both(batch: &RecordBatch, format: FieldFormat) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let fields = fields(&batch.schema(), format);
        let ours = encode_batch(&fields, batch)
            .expect("ours")
            .into_iter()
            .map(|r| {
                assert_eq!(r.field_count as usize, batch.num_columns());
                r.data.to_vec()
            })
            .collect();
        let theirs = encode_recordbatch(Arc::clone(&fields), batch.clone())
            .map(|r| r.expect("arrow-pg").data.to_vec())
            .collect();
        match format {
            FieldFormat::Text => (ours, postgres_fractions(batch, theirs)),
            FieldFormat::Binary => (ours, theirs),
        }
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, a)| (n, a, true)))
            .expect("batch")
    }

    #[test]
    fn common_types_encode_as_arrow_pg_does_in_both_formats() {
        let utc: Arc<str> = Arc::from("UTC");
        let offset: Arc<str> = Arc::from("+05:30");
        let batch = batch(vec![
            (
                "b",
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                ])),
            ),
            (
                "i2",
                Arc::new(Int16Array::from(vec![
                    Some(i16::MIN),
                    Some(0),
                    None,
                    Some(-7),
                ])),
            ),
            (
                "i4",
                Arc::new(Int32Array::from(vec![
                    Some(i32::MAX),
                    None,
                    Some(-1),
                    Some(42),
                ])),
            ),
            (
                "i8",
                Arc::new(Int64Array::from(vec![
                    Some(i64::MIN),
                    Some(i64::MAX),
                    None,
                    Some(0),
                ])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![
                    Some("a,b"),
                    Some(""),
                    None,
                    Some("é \"q\""),
                ])),
            ),
            (
                "ls",
                Arc::new(LargeStringArray::from(vec![
                    None,
                    Some("x"),
                    Some("long text value"),
                    Some(""),
                ])),
            ),
            (
                "vs",
                Arc::new(StringViewArray::from(vec![
                    Some("a string longer than twelve bytes"),
                    None,
                    Some("short"),
                    Some(""),
                ])),
            ),
            (
                "ts_s",
                Arc::new(
                    TimestampSecondArray::from(vec![
                        Some(0),
                        Some(-86_400 * 365 * 40),
                        None,
                        Some(1_700_000_000),
                    ])
                    .with_timezone(Arc::clone(&utc)),
                ),
            ),
            (
                "ts_ms",
                Arc::new(
                    TimestampMillisecondArray::from(vec![
                        Some(1_700_000_000_123),
                        None,
                        Some(-1),
                        Some(946_684_800_000),
                    ])
                    .with_timezone(Arc::clone(&offset)),
                ),
            ),
            (
                "ts_us",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        Some(1_700_000_000_123_456),
                        Some(-1),
                        None,
                        Some(0),
                    ])
                    .with_timezone(utc),
                ),
            ),
            (
                "ts_ns",
                Arc::new(TimestampNanosecondArray::from(vec![
                    Some(1_700_000_000_123_456_789),
                    Some(-1_500),
                    Some(946_684_799_999_999_999),
                    None,
                ])),
            ),
            (
                "d",
                Arc::new(Date32Array::from(vec![
                    Some(0),
                    Some(10_957),
                    None,
                    Some(-1),
                ])),
            ),
        ]);
        for format in [FieldFormat::Text, FieldFormat::Binary] {
            let (ours, theirs) = both(&batch, format);
            assert_eq!(ours, theirs, "{format:?}");
        }
    }

    #[test]
    fn floats_go_out_as_postgres_writes_them() {
        let batch = batch(vec![
            (
                "f4",
                Arc::new(Float32Array::from(vec![
                    Some(1.5),
                    None,
                    Some(-0.0),
                    Some(f32::NAN),
                ])) as ArrayRef,
            ),
            (
                "f8",
                Arc::new(Float64Array::from(vec![
                    Some(200.0),
                    Some(1e300),
                    None,
                    Some(f64::INFINITY),
                ])),
            ),
        ]);
        let (ours, theirs) = both(&batch, FieldFormat::Binary);
        assert_eq!(ours, theirs);
        let text = crate::copy::text_rows(std::slice::from_ref(&batch)).expect("text");
        let expected = [
            [Some("1.5"), Some("200")],
            [None, Some("1e+300")],
            [Some("-0"), None],
            [Some("NaN"), Some("Infinity")],
        ];
        for (row, want) in text.iter().zip(expected) {
            let got: Vec<Option<&str>> = row.iter().map(Option::as_deref).collect();
            assert_eq!(got, want);
        }
        assert_eq!(text.len(), 4);
    }

    fn decimals(values: &[Option<i128>], precision: u8, scale: i8) -> RecordBatch {
        let array = Decimal128Array::from(values.to_vec())
            .with_precision_and_scale(precision, scale)
            .expect("decimal");
        batch(vec![("n", Arc::new(array) as ArrayRef)])
    }

    /// The decimal a binary numeric field decodes to, with its scale.
    fn decode(field: &[u8]) -> Option<Decimal> {
        let len = i32::from_be_bytes(field[..4].try_into().expect("length"));
        (len >= 0).then(|| Decimal::from_sql(&Type::NUMERIC, &field[4..]).expect("numeric"))
    }

    #[test]
    fn numerics_keep_value_and_scale_in_both_formats() {
        let values = [
            Some(0),
            Some(1),
            Some(-1),
            Some(10_000),
            Some(123_456_789),
            Some(-100_000_000),
            Some(12_345_678_901_234_123_456),
            None,
            Some(99_990_000),
        ];
        for scale in [0i8, 1, 3, 4, 6, 9, 12] {
            let batch = decimals(&values, 38, scale);
            let (ours, theirs) = both(&batch, FieldFormat::Text);
            assert_eq!(ours, theirs, "text, scale {scale}");
            let (ours, theirs) = both(&batch, FieldFormat::Binary);
            for (o, t) in ours.iter().zip(&theirs) {
                let (o, t) = (decode(o), decode(t));
                assert_eq!(o, t, "binary, scale {scale}");
                // The column's scale, as Postgres sends it (`rust_decimal` drops it for zero).
                if let Some(o) = o {
                    assert_eq!(o.scale(), scale as u32, "binary scale {scale}: {o}");
                }
            }
        }
    }

    #[test]
    fn numerics_beyond_28_digits_go_out_exactly() {
        let max = 10i128.pow(38) - 1;
        let batch = decimals(&[Some(max), Some(-max), Some(10i128.pow(37))], 38, 12);
        let fields = fields(&batch.schema(), FieldFormat::Text);
        let rows = encode_batch(&fields, &batch).expect("text");
        assert_eq!(
            &rows[0].data[4..],
            b"99999999999999999999999999.999999999999"
        );
        assert_eq!(
            &rows[1].data[4..],
            b"-99999999999999999999999999.999999999999"
        );
        assert_eq!(
            &rows[2].data[4..],
            b"10000000000000000000000000.000000000000"
        );
        let fields = self::fields(&batch.schema(), FieldFormat::Binary);
        let rows = encode_batch(&fields, &batch).expect("binary");
        // 10^25: weight 6 (10^24 is the first base-10,000 digit's unit), one digit (10), scale 12.
        let header: Vec<u8> = [1i16, 6, 0, 12, 10]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        assert_eq!(&rows[2].data[4..], header.as_slice());
        // 26 integer digits and 12 decimals: 7 + 3 base-10,000 digits, all 9999, negative.
        let negative = &rows[1].data[4..];
        assert_eq!(&negative[..8], &[0, 10, 0, 6, 0x40, 0, 0, 12]);
        assert_eq!(&negative[8..10], &[0, 99]);
        assert!(negative[10..].chunks(2).all(|d| d == 9999i16.to_be_bytes()));
    }

    #[test]
    fn other_types_go_through_arrow_pg() {
        use datafusion::arrow::array::{ListArray, UInt64Array};
        use datafusion::arrow::datatypes::Int32Type as I32;
        let list = ListArray::from_iter_primitive::<I32, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
            Some(vec![]),
        ]);
        let batch = batch(vec![
            ("l", Arc::new(list) as ArrayRef),
            (
                "u",
                Arc::new(UInt64Array::from(vec![Some(u64::MAX), None, Some(3)])),
            ),
            (
                "ts",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(1), None, Some(-1)])
                        .with_timezone("UTC"),
                ),
            ),
        ]);
        for format in [FieldFormat::Text, FieldFormat::Binary] {
            let (ours, theirs) = both(&batch, format);
            assert_eq!(ours, theirs, "{format:?}");
        }
    }

    #[test]
    fn a_timestamp_beyond_postgres_range_is_an_out_of_range_error_not_a_null() {
        let batch = batch(vec![(
            "ts",
            Arc::new(TimestampSecondArray::from(vec![Some(0), Some(i64::MAX)]).with_timezone("UTC"))
                as ArrayRef,
        )]);
        let fields = fields(&batch.schema(), FieldFormat::Binary);
        match encode_batch(&fields, &batch) {
            Err(PgWireError::UserError(info)) => {
                assert_eq!(info.code, sqlstate::OUT_OF_RANGE);
                assert!(
                    info.message.contains("timestamp out of range"),
                    "{}",
                    info.message
                );
            }
            other => panic!("expected an out-of-range error, got {other:?}"),
        }
    }

    /// Text timestamps and dates, written directly in the ISO style, are `arrow-pg`'s bytes for
    /// random values of every unit, around the ends of years 1 and 9999 and beyond them (where
    /// `arrow-pg` writes them), with and without UTC, and in other zones and styles.
    #[test]
    fn text_timestamps_and_dates_are_arrow_pg_bytes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // 0001-01-01 and 10000-01-01 in seconds since 1970, and a margin of four days.
        let (first, past_last) = (-62_135_596_800i64, 253_402_300_800i64);
        let margin = 4 * 86_400;
        let mut seconds: Vec<Option<i64>> = vec![None, Some(0), Some(-1), Some(951_782_400)];
        for edge in [first, past_last] {
            seconds.extend((-margin..margin).step_by(3_607).map(|d| Some(edge + d)));
        }
        seconds
            .extend((0..2_000).map(|_| Some(rng.random_range(first - margin..past_last + margin))));
        let fraction =
            |rng: &mut rand::rngs::StdRng, per_second: i64| rng.random_range(0..per_second);
        let scaled = |per_second: i64, rng: &mut rand::rngs::StdRng| -> Vec<Option<i64>> {
            seconds
                .iter()
                .map(|s| {
                    s.and_then(|s| {
                        s.checked_mul(per_second)?
                            .checked_add(fraction(rng, per_second))
                    })
                })
                .collect()
        };
        let (ms, us) = (scaled(1_000, &mut rng), scaled(1_000_000, &mut rng));
        // Nanoseconds reach only 1677 to 2262.
        let ns: Vec<Option<i64>> = (0..seconds.len())
            .map(|i| (i % 7 != 0).then(|| rng.random::<i64>()))
            .chain([Some(-1), Some(-1_500), Some(i64::MIN), Some(i64::MAX)])
            .collect();
        let days: Vec<Option<i32>> = seconds
            .iter()
            .map(|s| s.map(|s| s.div_euclid(86_400) as i32))
            .chain([
                Some(i32::MIN),
                Some(i32::MAX),
                Some(-719_162),
                Some(2_932_896),
            ])
            .collect();
        let zones = [
            None,
            Some("UTC"),
            Some("Etc/UTC"),
            Some("+00:00"),
            Some("America/New_York"),
        ];
        for zone in zones {
            let zoned = |array: ArrayRef| -> ArrayRef {
                match zone {
                    Some(zone) => datafusion::arrow::compute::cast(
                        &array,
                        &DataType::Timestamp(
                            match array.data_type() {
                                DataType::Timestamp(unit, _) => *unit,
                                other => panic!("{other}"),
                            },
                            Some(zone.into()),
                        ),
                    )
                    .expect("zone"),
                    None => array,
                }
            };
            for column in [
                zoned(Arc::new(TimestampSecondArray::from(seconds.clone()))),
                zoned(Arc::new(TimestampMillisecondArray::from(ms.clone()))),
                zoned(Arc::new(TimestampMicrosecondArray::from(us.clone()))),
                zoned(Arc::new(TimestampNanosecondArray::from(ns.clone()))),
            ] {
                let batch = batch(vec![("ts", column)]);
                let (ours, theirs) = both(&batch, FieldFormat::Text);
                for (row, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                    assert_eq!(
                        String::from_utf8_lossy(a),
                        String::from_utf8_lossy(b),
                        "{zone:?} {:?} row {row}",
                        batch.column(0).data_type()
                    );
                }
                assert_eq!(ours.len(), theirs.len());
            }
        }
        let dates = batch(vec![("d", Arc::new(Date32Array::from(days)) as ArrayRef)]);
        let (ours, theirs) = both(&dates, FieldFormat::Text);
        assert_eq!(ours, theirs);

        // Other date styles go through `arrow-pg` as they are.
        let mut options = FormatOptions::default();
        options.date_style = "SQL, DMY".into();
        let options = Arc::new(options);
        let batch = batch(vec![
            (
                "ts",
                Arc::new(TimestampSecondArray::from(seconds.clone())) as ArrayRef,
            ),
            ("d", dates.column(0).slice(0, seconds.len())),
        ]);
        let fields = Arc::new(
            arrow_schema_to_pg_fields(&batch.schema(), &Format::UnifiedText, Some(options))
                .expect("fields"),
        );
        let ours: Vec<Vec<u8>> = encode_batch(&fields, &batch)
            .expect("ours")
            .into_iter()
            .map(|r| r.data.to_vec())
            .collect();
        let theirs: Vec<Vec<u8>> = encode_recordbatch(Arc::clone(&fields), batch.clone())
            .map(|r| r.expect("arrow-pg").data.to_vec())
            .collect();
        assert_eq!(ours, theirs);
        assert!(String::from_utf8_lossy(&ours[3]).contains("29/02/2000"));
    }
}
