//! `COPY ... FROM STDIN` and `COPY ... TO STDOUT` data: options from the statement, the Postgres
//! text and CSV formats parsed into Arrow batches of a table's schema (with line numbers in every
//! error), and rows rendered back to text or CSV.
//!
//! The parser hands out batches as they complete ([`CopyParser::take_batches`]), so a large COPY
//! never has to be held whole: the session streams them into storage while data still arrives.
//!
//! It must not know about the wire protocol (the server feeds it bytes) nor about storage (the
//! session appends the batches it produces).

use std::sync::Arc;

use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{
    Array, ArrayRef, Int64Builder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondBuilder, new_null_array,
};
use datafusion::arrow::compute::kernels::cast_utils::{Parser, string_to_datetime};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{
    ArrowTimestampType, DataType, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use pgwire::api::portal::Format;

use crate::error::{Error, Result};

/// Longest line accepted (Postgres rejects lines past 1 GB; a bound keeps memory in check).
pub const MAX_LINE_BYTES: usize = 16 << 20;
/// Rows per batch produced by the parser.
const BATCH_ROWS: usize = 8192;

/// Text or CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// Postgres text format: tab-separated, `\N` for NULL, backslash escapes.
    Text,
    /// CSV: quoted fields, empty unquoted field for NULL.
    Csv,
}

/// The options of one COPY statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    /// Format.
    pub format: CopyFormat,
    /// Field delimiter.
    pub delimiter: char,
    /// How NULL is written.
    pub null: String,
    /// Whether the first line is a header (CSV only).
    pub header: bool,
    /// Quote character (CSV).
    pub quote: char,
    /// Escape character inside quotes (CSV).
    pub escape: char,
}

impl CopyOptions {
    /// Options from a COPY statement's `WITH (...)` and legacy options.
    pub fn from_statement(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<Self> {
        let mut format = CopyFormat::Text;
        let mut delimiter = None;
        let mut null = None;
        let mut header = false;
        let mut quote = '"';
        let mut escape = None;
        for option in options {
            match option {
                CopyOption::Format(name) => {
                    format = match name.value.to_ascii_lowercase().as_str() {
                        "text" => CopyFormat::Text,
                        "csv" => CopyFormat::Csv,
                        other => {
                            return Err(Error::Unsupported(format!("COPY format {other}")));
                        }
                    }
                }
                CopyOption::Delimiter(c) => delimiter = Some(*c),
                CopyOption::Null(s) => null = Some(s.clone()),
                CopyOption::Header(h) => header = *h,
                CopyOption::Quote(c) => quote = *c,
                CopyOption::Escape(c) => escape = Some(*c),
                CopyOption::Encoding(e)
                    if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                CopyOption::Freeze(_) => {}
                other => return Err(Error::Unsupported(format!("COPY option {other}"))),
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Csv(csv) => {
                    format = CopyFormat::Csv;
                    for o in csv {
                        match o {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(c) => quote = *c,
                            CopyLegacyCsvOption::Escape(c) => escape = Some(*c),
                            other => {
                                return Err(Error::Unsupported(format!("COPY option {other}")));
                            }
                        }
                    }
                }
                CopyLegacyOption::Header => header = true,
                CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
                CopyLegacyOption::Null(s) => null = Some(s.clone()),
                other => return Err(Error::Unsupported(format!("COPY option {other}"))),
            }
        }
        if header && format == CopyFormat::Text {
            return Err(Error::InvalidParameter(
                "COPY HEADER is only available in CSV mode".into(),
            ));
        }
        let delimiter = delimiter.unwrap_or(match format {
            CopyFormat::Text => '\t',
            CopyFormat::Csv => ',',
        });
        let escape = escape.unwrap_or(quote);
        // As in Postgres: the parser works on bytes, so these must each be one byte.
        for (what, c) in [
            ("delimiter", delimiter),
            ("quote", quote),
            ("escape", escape),
        ] {
            if !c.is_ascii() {
                return Err(Error::Unsupported(format!(
                    "COPY {what} must be a single one-byte character"
                )));
            }
        }
        if matches!(delimiter, '\n' | '\r' | '\\') {
            return Err(Error::InvalidParameter(format!(
                "COPY delimiter cannot be {delimiter:?}"
            )));
        }
        if format == CopyFormat::Csv && delimiter == quote {
            return Err(Error::InvalidParameter(
                "COPY delimiter and quote must be different".into(),
            ));
        }
        Ok(CopyOptions {
            format,
            delimiter,
            null: null.unwrap_or_else(|| match format {
                CopyFormat::Text => "\\N".to_string(),
                CopyFormat::Csv => String::new(),
            }),
            header,
            quote,
            escape,
        })
    }
}

/// Parses COPY data pushed in arbitrary chunks into batches of `schema`.
///
/// Fields go straight into one builder per input column (no allocation per value): integers and
/// timestamps are parsed as they arrive, with the parsers a cast from text uses; other columns are
/// kept as text and a block of [`BATCH_ROWS`] rows is converted to the table's types column by
/// column. After an error the parser must not be used again.
pub struct CopyParser {
    schema: SchemaRef,
    /// For each input field, the index of its column in `schema`.
    targets: Vec<usize>,
    options: CopyOptions,
    pending: Vec<u8>,
    /// Lines consumed so far.
    line: usize,
    header_pending: bool,
    /// The current block, one builder per input field.
    columns: Vec<ColumnBuilder>,
    /// The line each row of the current block starts on.
    row_lines: Vec<usize>,
    /// The fields of the record being split, and the unescaped text some of them point into.
    fields: Vec<Span>,
    scratch: Vec<u8>,
    batches: Vec<RecordBatch>,
    /// Rows of batches already handed out by [`CopyParser::take_batches`].
    taken: usize,
    finished: bool,
}

/// The values of one input field in the current block.
enum ColumnBuilder {
    /// Text, converted to the column's type when the block is complete (or kept as text).
    Text(StringBuilder),
    /// `bigint` values, parsed as they arrive.
    Int64(Int64Builder),
    /// `timestamptz` values in microseconds, parsed as they arrive; text without an offset is read
    /// in the column's time zone, as a cast does.
    TimestampMicros(TimestampMicrosecondBuilder, Tz),
}

impl ColumnBuilder {
    /// An empty builder for values of type `to`, with room for `bytes` bytes of text.
    fn new(to: &DataType, bytes: usize) -> Self {
        match to {
            DataType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(BATCH_ROWS)),
            DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) => match tz.parse::<Tz>() {
                Ok(tz) => ColumnBuilder::TimestampMicros(
                    TimestampMicrosecondBuilder::with_capacity(BATCH_ROWS),
                    tz,
                ),
                Err(_) => ColumnBuilder::Text(StringBuilder::with_capacity(BATCH_ROWS, bytes)),
            },
            _ => ColumnBuilder::Text(StringBuilder::with_capacity(BATCH_ROWS, bytes)),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Text(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::TimestampMicros(b, _) => b.append_null(),
        }
    }

    /// Append `value`; `false` when it is not a valid value of the column's type.
    fn append(&mut self, value: &str) -> bool {
        match self {
            ColumnBuilder::Text(b) => b.append_value(value),
            ColumnBuilder::Int64(b) => match Int64Type::parse(value) {
                Some(v) => b.append_value(v),
                None => return false,
            },
            ColumnBuilder::TimestampMicros(b, tz) => {
                match string_to_datetime(tz, value).ok().and_then(|t| {
                    TimestampMicrosecondType::from_naive_datetime(t.naive_utc(), None)
                }) {
                    Some(v) => b.append_value(v),
                    None => return false,
                }
            }
        }
        true
    }

    /// Bytes of text held, to size the next block's builder.
    fn text_bytes(&self) -> usize {
        match self {
            ColumnBuilder::Text(b) => b.values_slice().len(),
            _ => 0,
        }
    }
}

/// One field of a record: NULL, or a byte range of the record or of the scratch buffer.
#[derive(Debug, Clone, Copy)]
enum Span {
    Null,
    Raw(usize, usize),
    Unescaped(usize, usize),
}

impl CopyParser {
    /// A parser for `schema`, whose input has the columns `targets` (indexes into `schema`).
    pub fn new(schema: SchemaRef, targets: Vec<usize>, options: CopyOptions) -> Self {
        let header_pending = options.header;
        let columns = targets
            .iter()
            .map(|&t| ColumnBuilder::new(schema.field(t).data_type(), BATCH_ROWS * 16))
            .collect();
        CopyParser {
            schema,
            targets,
            options,
            pending: Vec::new(),
            line: 0,
            header_pending,
            columns,
            row_lines: Vec::with_capacity(BATCH_ROWS),
            fields: Vec::new(),
            scratch: Vec::new(),
            batches: Vec::new(),
            taken: 0,
            finished: false,
        }
    }

    /// The number of rows parsed so far.
    pub fn rows_parsed(&self) -> usize {
        self.taken + self.batches.iter().map(|b| b.num_rows()).sum::<usize>() + self.row_lines.len()
    }

    /// Feed bytes; complete lines are parsed at once.
    pub fn push(&mut self, mut data: &[u8]) -> Result<()> {
        if !self.pending.is_empty() {
            // Complete the record the last chunk ended in: usually its first line of `data` does,
            // and only that is copied (a CSV line may end inside quotes: then all of it is).
            let mut pending = std::mem::take(&mut self.pending);
            match memchr::memchr(b'\n', data) {
                None => {
                    pending.extend_from_slice(data);
                    data = &[];
                }
                Some(newline) => {
                    pending.extend_from_slice(&data[..=newline]);
                    data = &data[newline + 1..];
                    if record_end(&pending, &self.options).is_none() {
                        pending.extend_from_slice(data);
                        data = &[];
                    }
                }
            }
            let consumed = self.take_records(&pending)?;
            pending.drain(..consumed);
            self.pending = pending;
        }
        if !data.is_empty() && !self.finished {
            if self.pending.is_empty() {
                let consumed = self.take_records(data)?;
                data = &data[consumed..];
            }
            if !self.finished {
                self.pending.extend_from_slice(data);
            }
        }
        if self.pending.len() > MAX_LINE_BYTES {
            return Err(Error::BadCopyData {
                message: format!(
                    "COPY line {} is longer than {MAX_LINE_BYTES} bytes",
                    self.line + 1
                ),
            });
        }
        Ok(())
    }

    /// Parse the complete records at the start of `bytes`; returns the bytes consumed.
    fn take_records(&mut self, bytes: &[u8]) -> Result<usize> {
        let mut start = 0;
        while !self.finished {
            let Some((end, quoted)) = record_end(&bytes[start..], &self.options) else {
                break;
            };
            let record = &bytes[start..start + end];
            start += end + 1;
            let first_line = self.line + 1;
            // Only a quoted CSV field can hold a newline.
            self.line += 1;
            if quoted {
                self.line += memchr::memchr_iter(b'\n', record).count();
            }
            self.take_record(record, first_line)?;
        }
        Ok(start)
    }

    /// Take the batches completed so far (each of up to 8,192 rows), so the caller can pass them on
    /// while more data arrives instead of holding the whole input.
    pub fn take_batches(&mut self) -> Vec<RecordBatch> {
        let batches = std::mem::take(&mut self.batches);
        self.taken += batches.iter().map(|b| b.num_rows()).sum::<usize>();
        batches
    }

    /// End of input: parse what is left and return every batch not taken yet.
    pub fn finish(mut self) -> Result<Vec<RecordBatch>> {
        if !self.pending.is_empty() && !self.finished {
            let record = std::mem::take(&mut self.pending);
            self.line += 1;
            let line = self.line;
            self.take_record(&record, line)?;
        }
        self.flush()?;
        Ok(self.batches)
    }

    fn take_record(&mut self, record: &[u8], line: usize) -> Result<()> {
        let record = record.strip_suffix(b"\r").unwrap_or(record);
        let text = std::str::from_utf8(record).map_err(|e| Error::BadCopyData {
            message: format!("COPY line {line}: invalid UTF-8: {e}"),
        })?;
        if self.options.format == CopyFormat::Text && text == "\\." {
            self.finished = true;
            return Ok(());
        }
        if self.header_pending {
            self.header_pending = false;
            return Ok(());
        }
        let mut fields = std::mem::take(&mut self.fields);
        fields.clear();
        self.scratch.clear();
        let split = match self.options.format {
            CopyFormat::Text => split_text(record, &self.options, &mut fields, &mut self.scratch),
            CopyFormat::Csv => split_csv(record, &self.options, &mut fields, &mut self.scratch),
        };
        let outcome = split
            .map_err(|problem| Error::BadCopyData {
                message: format!("COPY line {line}: {problem}"),
            })
            .and_then(|()| self.append_row(text, &fields, line));
        self.fields = fields;
        outcome?;
        if self.row_lines.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn append_row(&mut self, text: &str, fields: &[Span], line: usize) -> Result<()> {
        if fields.len() != self.targets.len() {
            return Err(Error::BadCopyData {
                message: format!(
                    "COPY line {line}: expected {} fields, found {}",
                    self.targets.len(),
                    fields.len()
                ),
            });
        }
        // Unescaping can produce bytes that are not UTF-8 (octal and hex escapes).
        let scratch = std::str::from_utf8(&self.scratch).map_err(|e| Error::BadCopyData {
            message: format!("COPY line {line}: invalid UTF-8 after escapes: {e}"),
        })?;
        for (input, (builder, field)) in self.columns.iter_mut().zip(fields).enumerate() {
            let value = match *field {
                Span::Null => {
                    builder.append_null();
                    continue;
                }
                Span::Raw(from, to) => &text[from..to],
                Span::Unescaped(from, to) => &scratch[from..to],
            };
            if !builder.append(value) {
                return Err(invalid_value(
                    self.schema.field(self.targets[input]),
                    value,
                    line,
                ));
            }
        }
        self.row_lines.push(line);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let rows = self.row_lines.len();
        if rows == 0 {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), rows))
            .collect();
        for (input, &target) in self.targets.iter().enumerate() {
            let field = self.schema.field(target);
            let builder = &mut self.columns[input];
            let next = ColumnBuilder::new(field.data_type(), builder.text_bytes().max(BATCH_ROWS));
            let converted: ArrayRef = match std::mem::replace(builder, next) {
                ColumnBuilder::Text(mut b) => {
                    let values = b.finish();
                    convert(&values, field.data_type()).map_err(|bad| {
                        invalid_value(field, values.value(bad), self.row_lines[bad])
                    })?
                }
                ColumnBuilder::Int64(mut b) => Arc::new(b.finish()),
                ColumnBuilder::TimestampMicros(mut b, _) => {
                    Arc::new(b.finish().with_data_type(field.data_type().clone()))
                }
            };
            if !field.is_nullable()
                && converted.null_count() > 0
                && let Some(row) = (0..rows).find(|i| converted.is_null(*i))
            {
                return Err(Error::NotNullViolation {
                    message: format!(
                        "null value in column \"{}\" violates not-null constraint (COPY line {})",
                        field.name(),
                        self.row_lines[row]
                    ),
                });
            }
            columns[target] = converted;
        }
        for (i, field) in self.schema.fields().iter().enumerate() {
            if !field.is_nullable() && !self.targets.contains(&i) {
                return Err(Error::NotNullViolation {
                    message: format!(
                        "null value in column \"{}\" violates not-null constraint (COPY line {})",
                        field.name(),
                        self.row_lines[0]
                    ),
                });
            }
        }
        self.row_lines.clear();
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| Error::Internal(format!("COPY batch: {e}")))?;
        self.batches.push(batch);
        Ok(())
    }
}

/// The error for `value`, which is not valid for `field`, on COPY line `line`.
fn invalid_value(field: &datafusion::arrow::datatypes::Field, value: &str, line: usize) -> Error {
    Error::InvalidValue {
        message: format!(
            "invalid input syntax for type {} in column \"{}\": \"{value}\" (COPY line {line})",
            pg_type_name(field.data_type()),
            field.name(),
        ),
    }
}

/// Render batches as the text a Postgres client receives (NULL as `None`), through the same
/// encoder as the server's result rows.
pub fn text_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<Option<String>>>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let fields = Arc::new(
        arrow_pg::datatypes::arrow_schema_to_pg_fields(&first.schema(), &Format::UnifiedText, None)
            .map_err(|e| Error::Internal(e.to_string()))?,
    );
    let mut rows = Vec::new();
    for batch in batches {
        let encoded = crate::server::rows::encode_batch(&fields, batch)
            .map_err(|e| Error::Internal(e.to_string()))?;
        for row in encoded {
            rows.push(decode_data_row(&row.data, row.field_count as usize)?);
        }
    }
    Ok(rows)
}

fn decode_data_row(data: &[u8], fields: usize) -> Result<Vec<Option<String>>> {
    let mut values = Vec::with_capacity(fields);
    let mut at = 0;
    for _ in 0..fields {
        let len_bytes: [u8; 4] = data
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::Internal("truncated data row".into()))?;
        at += 4;
        let len = i32::from_be_bytes(len_bytes);
        if len < 0 {
            values.push(None);
            continue;
        }
        let end = at + len as usize;
        let bytes = data
            .get(at..end)
            .ok_or_else(|| Error::Internal("truncated data row".into()))?;
        values.push(Some(String::from_utf8_lossy(bytes).into_owned()));
        at = end;
    }
    Ok(values)
}

/// Render `batch` as COPY output lines in `options`' format, values as Postgres text.
pub fn render(batch: &RecordBatch, options: &CopyOptions, out: &mut Vec<u8>) -> Result<Vec<usize>> {
    let rows = text_rows(std::slice::from_ref(batch))?;
    let mut ends = Vec::with_capacity(rows.len());
    for row in rows {
        for (i, value) in row.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(options.delimiter.to_string().as_bytes());
            }
            match (value, options.format) {
                (None, _) => out.extend_from_slice(options.null.as_bytes()),
                (Some(v), CopyFormat::Text) => {
                    for c in v.chars() {
                        match c {
                            '\\' => out.extend_from_slice(b"\\\\"),
                            '\n' => out.extend_from_slice(b"\\n"),
                            '\r' => out.extend_from_slice(b"\\r"),
                            '\t' => out.extend_from_slice(b"\\t"),
                            c if c == options.delimiter => {
                                out.push(b'\\');
                                out.extend_from_slice(c.to_string().as_bytes());
                            }
                            c => out.extend_from_slice(c.to_string().as_bytes()),
                        }
                    }
                }
                (Some(v), CopyFormat::Csv) => {
                    let needs_quotes = v.is_empty()
                        || v.contains(options.delimiter)
                        || v.contains(options.quote)
                        || v.contains('\n')
                        || v.contains('\r');
                    if needs_quotes {
                        let q = options.quote.to_string();
                        let escaped = v.replace(&q, &format!("{}{q}", options.escape));
                        out.extend_from_slice(format!("{q}{escaped}{q}").as_bytes());
                    } else {
                        out.extend_from_slice(v.as_bytes());
                    }
                }
            }
        }
        out.push(b'\n');
        ends.push(out.len());
    }
    Ok(ends)
}

/// The header line of CSV output.
pub fn render_header(schema: &SchemaRef, options: &CopyOptions) -> Vec<u8> {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut line = names.join(&options.delimiter.to_string()).into_bytes();
    line.push(b'\n');
    line
}

/// Convert text values to `to`; on failure, the index of the first value that does not convert.
fn convert(values: &StringArray, to: &DataType) -> std::result::Result<ArrayRef, usize> {
    let safe = CastOptions {
        safe: true,
        ..CastOptions::default()
    };
    let input: ArrayRef = Arc::new(values.clone());
    let converted = match to {
        DataType::Boolean => {
            let parsed: datafusion::arrow::array::BooleanArray =
                values.iter().map(|v| v.and_then(parse_bool)).collect();
            Arc::new(parsed) as ArrayRef
        }
        _ => cast_with_options(&input, to, &safe).map_err(|_| 0usize)?,
    };
    // A value that was present but came out NULL did not convert.
    if converted.null_count() == values.null_count() {
        return Ok(converted);
    }
    if let Some(bad) = (0..values.len()).find(|i| values.is_valid(*i) && converted.is_null(*i)) {
        return Err(bad);
    }
    Ok(converted)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The Postgres name of an Arrow type, for messages.
pub fn pg_type_name(t: &DataType) -> String {
    arrow_pg::datatypes::into_pg_type(t)
        .map(|t| t.name().to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// Length of the record at the start of `bytes` (the index of the newline ending it), quotes
/// respected in CSV, and whether it has a quoted part; `None` when the record is not complete yet.
fn record_end(bytes: &[u8], options: &CopyOptions) -> Option<(usize, bool)> {
    if options.format == CopyFormat::Text {
        return memchr::memchr(b'\n', bytes).map(|end| (end, false));
    }
    let quote = options.quote as u8;
    let escape = options.escape as u8;
    let mut i = 0;
    let mut quoted = false;
    loop {
        // Outside quotes only a quote or the newline matter.
        i += memchr::memchr2(b'\n', quote, &bytes[i..])?;
        if bytes[i] == b'\n' {
            return Some((i, quoted));
        }
        quoted = true;
        // Inside quotes: up to the closing quote (a doubled quote, or the escape character and
        // what follows it, stays inside).
        i += 1;
        loop {
            i += memchr::memchr2(quote, escape, bytes.get(i..)?)?;
            let b = bytes[i];
            if b == escape && escape != quote {
                i += 2;
                continue;
            }
            if escape == quote && bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            if b == quote && bytes.get(i + 1).is_none() {
                // The closing quote may be the last byte received: whether a quote follows is
                // not known yet.
                return None;
            }
            i += 1;
            break;
        }
    }
}

/// Split a text-format record at the delimiter; `\N` (or the NULL string) is NULL and backslash
/// escapes are resolved into `scratch`, as Postgres does (`\t`, `\n`, octal `\101`, hex `\x41`).
fn split_text(
    record: &[u8],
    options: &CopyOptions,
    fields: &mut Vec<Span>,
    scratch: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let delimiter = options.delimiter as u8;
    let null = options.null.as_bytes();
    let mut start = 0;
    loop {
        // The field ends at the first delimiter not escaped by a backslash.
        let mut end = start;
        let mut escaped = false;
        loop {
            match memchr::memchr2(delimiter, b'\\', &record[end..]) {
                None => {
                    end = record.len();
                    break;
                }
                Some(p) if record[end + p] == delimiter => {
                    end += p;
                    break;
                }
                Some(p) => {
                    escaped = true;
                    end = (end + p + 2).min(record.len());
                }
            }
        }
        let raw = &record[start..end];
        if raw == null {
            fields.push(Span::Null);
        } else if !escaped {
            fields.push(Span::Raw(start, end));
        } else {
            let from = scratch.len();
            unescape_text(raw, scratch)?;
            fields.push(Span::Unescaped(from, scratch.len()));
        }
        if end == record.len() {
            return Ok(());
        }
        start = end + 1;
    }
}

fn unescape_text(raw: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&c) = raw.get(i) else {
            return Err("trailing backslash".into());
        };
        i += 1;
        match c {
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((value & 0xff) as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut value = 0u32;
                for _ in 0..2 {
                    match raw.get(i).and_then(|d| char::from(*d).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
    Ok(())
}

/// Split a CSV record: quoted parts may hold delimiters, newlines and doubled (or escaped)
/// quotes; only an unquoted field equal to the NULL string is NULL, so `""` is an empty string.
fn split_csv(
    record: &[u8],
    options: &CopyOptions,
    fields: &mut Vec<Span>,
    scratch: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let delimiter = options.delimiter as u8;
    let quote = options.quote as u8;
    let escape = options.escape as u8;
    let null = options.null.as_bytes();
    let mut start = 0;
    loop {
        let stop = memchr::memchr2(delimiter, quote, &record[start..]).map(|p| start + p);
        if stop.is_none_or(|p| record[p] == delimiter) {
            // Unquoted, the common case: a range of the record.
            let end = stop.unwrap_or(record.len());
            let raw = &record[start..end];
            fields.push(if raw == null {
                Span::Null
            } else {
                Span::Raw(start, end)
            });
            match stop {
                Some(p) => start = p + 1,
                None => return Ok(()),
            }
            continue;
        }
        // A field with quoted parts, unquoted into the scratch buffer.
        let from = scratch.len();
        let mut i = start;
        let mut quoted = false;
        let end = loop {
            let Some(&b) = record.get(i) else {
                if quoted {
                    return Err("unterminated CSV quoted field".into());
                }
                break record.len();
            };
            i += 1;
            if quoted {
                if b == escape && escape != quote {
                    if let Some(&next) = record.get(i) {
                        scratch.push(next);
                        i += 1;
                    }
                } else if b == quote {
                    if escape == quote && record.get(i) == Some(&quote) {
                        scratch.push(quote);
                        i += 1;
                    } else {
                        quoted = false;
                    }
                } else {
                    scratch.push(b);
                }
            } else if b == quote {
                quoted = true;
            } else if b == delimiter {
                break i - 1;
            } else {
                scratch.push(b);
            }
        };
        fields.push(Span::Unescaped(from, scratch.len()));
        if end == record.len() {
            return Ok(());
        }
        start = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn csv(header: bool) -> CopyOptions {
        CopyOptions {
            format: CopyFormat::Csv,
            delimiter: ',',
            null: String::new(),
            header,
            quote: '"',
            escape: '"',
        }
    }

    #[test]
    fn csv_with_quotes_nulls_and_split_chunks() {
        let mut p = CopyParser::new(schema(), vec![0, 1], csv(true));
        p.push(b"id,name\n1,\"a, \"\"b\"\"\"\n2,").expect("chunk 1");
        p.push(b"\n3,\"\"\n4,\"multi\nline\"\n").expect("chunk 2");
        let batches = p.finish().expect("parses");
        let b = &batches[0];
        assert_eq!(b.num_rows(), 4);
        let names = b
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text");
        assert_eq!(names.value(0), "a, \"b\"");
        assert!(names.is_null(1), "unquoted empty is NULL");
        assert_eq!(names.value(2), "", "quoted empty is an empty string");
        assert_eq!(names.value(3), "multi\nline");
    }

    #[test]
    fn text_format_escapes_and_null() {
        let options = CopyOptions::from_statement(&[], &[]).expect("defaults");
        let mut p = CopyParser::new(schema(), vec![0, 1], options);
        p.push(b"1\ta\\tb\n2\t\\N\n\\.\n").expect("parses");
        let b = &p.finish().expect("finish")[0];
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("ids");
        assert_eq!(ids.values(), &[1, 2]);
        let names = b
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text");
        assert_eq!(names.value(0), "a\tb");
        assert!(names.is_null(1));
    }

    #[test]
    fn bad_value_names_line_and_column() {
        let mut p = CopyParser::new(schema(), vec![0, 1], csv(false));
        let err = p.push(b"1,a\n2,b\nx,c\n").expect_err("bad bigint");
        assert!(matches!(err, Error::InvalidValue { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("line 3") && text.contains("\"id\""), "{text}");
    }

    #[test]
    fn missing_not_null_and_wrong_field_count_are_rejected() {
        let mut p = CopyParser::new(schema(), vec![0, 1], csv(false));
        p.push(b"1,a\n,b\n").expect("lines");
        let err = p.finish().expect_err("null id");
        assert!(matches!(err, Error::NotNullViolation { .. }), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
        let mut p = CopyParser::new(schema(), vec![0, 1], csv(false));
        let err = p.push(b"1,a,extra\n").expect_err("too many fields");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn integers_and_timestamps_parse_as_a_cast_from_text_does() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let ints = ["5", "+7", "-3", "", "9223372036854775807", "0012"];
        let times = [
            "2025-03-17 00:00:00.656223+00:00",
            "2025-03-17T01:00:00Z",
            "2025-03-17 02:00:00",
            "",
            "2025-03-17 02:00:00+02:00",
            "2024-02-29",
        ];
        let input: String = ints
            .iter()
            .zip(times)
            .map(|(n, t)| format!("{n},{t}\n"))
            .collect();
        let mut p = CopyParser::new(Arc::clone(&schema), vec![0, 1], csv(false));
        p.push(input.as_bytes()).expect("parses");
        let batch = &p.finish().expect("finish")[0];
        let safe = CastOptions {
            safe: false,
            ..CastOptions::default()
        };
        for (i, values) in [ints, times].iter().enumerate() {
            let text: StringArray = values
                .iter()
                .map(|v| (!v.is_empty()).then_some(*v))
                .collect();
            let cast = cast_with_options(&text, schema.field(i).data_type(), &safe)
                .expect("valid values cast");
            assert_eq!(batch.column(i).as_ref(), cast.as_ref(), "column {i}");
        }
        let mut p = CopyParser::new(schema, vec![0, 1], csv(false));
        let err = p
            .push(b"1,2025-03-17\n2,2025-13-01\n")
            .expect_err("month 13");
        let text = err.to_string();
        assert!(
            text.contains("line 2") && text.contains("\"ts\"") && text.contains("2025-13-01"),
            "{text}"
        );
    }

    fn names(batches: &[RecordBatch]) -> Vec<Option<String>> {
        batches
            .iter()
            .flat_map(|b| {
                let names = b
                    .column(1)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("text");
                names
                    .iter()
                    .map(|v| v.map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn any_split_of_the_input_parses_the_same() {
        let inputs: [(&[u8], CopyOptions); 2] = [
            (
                b"id,name\n1,\"a,\"\"b\"\"\"\r\n2,\n3,\"x\ny\"z\n4,\"\"\n5,plain",
                csv(true),
            ),
            (
                b"1\ta\\tb\n2\t\\N\n3\tc\\\td\n4\t\\101\\x42\n",
                CopyOptions::from_statement(&[], &[]).expect("defaults"),
            ),
        ];
        for (input, options) in inputs {
            let mut whole = CopyParser::new(schema(), vec![0, 1], options.clone());
            whole.push(input).expect("whole");
            let expected = names(&whole.finish().expect("whole"));
            for cut in 0..=input.len() {
                for cut2 in cut..=input.len() {
                    let mut p = CopyParser::new(schema(), vec![0, 1], options.clone());
                    p.push(&input[..cut]).expect("part 1");
                    p.push(&input[cut..cut2]).expect("part 2");
                    p.push(&input[cut2..]).expect("part 3");
                    assert_eq!(
                        names(&p.finish().expect("parts")),
                        expected,
                        "cut at {cut}, {cut2}"
                    );
                }
            }
            assert_eq!(
                expected.len(),
                if options.format == CopyFormat::Csv {
                    5
                } else {
                    4
                }
            );
        }
    }

    #[test]
    fn text_escapes_follow_postgres() {
        let options = CopyOptions::from_statement(&[], &[]).expect("defaults");
        let mut p = CopyParser::new(schema(), vec![0, 1], options);
        // An escaped delimiter stays in the field; octal and hex escapes are bytes.
        p.push(b"1\ta\\\tb\\,c\n2\t\\101\\x42\\x4\n3\t\\N\n")
            .expect("parses");
        let got = names(&p.finish().expect("finish"));
        assert_eq!(
            got,
            vec![
                Some("a\tb,c".to_string()),
                Some("AB\u{4}".to_string()),
                None
            ]
        );
        let mut p = CopyParser::new(
            schema(),
            vec![0, 1],
            CopyOptions::from_statement(&[], &[]).expect("defaults"),
        );
        let err = p.push(b"1\t\\377\n").expect_err("not UTF-8");
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn errors_name_the_line_after_multi_line_records() {
        let mut p = CopyParser::new(schema(), vec![0, 1], csv(false));
        let err = p
            .push(b"1,\"two\nlines\"\n2,\"and\nthree\nlines\"\nx,bad\n")
            .expect_err("bad bigint");
        assert!(err.to_string().contains("line 6"), "{err}");
    }

    #[test]
    fn options_must_be_single_bytes() {
        use datafusion::sql::sqlparser::ast::CopyOption;
        let err = CopyOptions::from_statement(&[CopyOption::Delimiter('\u{e9}')], &[])
            .expect_err("two-byte delimiter");
        assert!(err.to_string().contains("one-byte"), "{err}");
        assert!(CopyOptions::from_statement(&[CopyOption::Delimiter('\n')], &[]).is_err());
    }

    #[test]
    fn over_long_line_is_rejected() {
        let mut p = CopyParser::new(schema(), vec![0, 1], csv(false));
        let long = vec![b'a'; MAX_LINE_BYTES + 1];
        assert!(matches!(p.push(&long), Err(Error::BadCopyData { .. })));
    }
}
