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

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
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
        Ok(CopyOptions {
            format,
            delimiter: delimiter.unwrap_or(match format {
                CopyFormat::Text => '\t',
                CopyFormat::Csv => ',',
            }),
            null: null.unwrap_or_else(|| match format {
                CopyFormat::Text => "\\N".to_string(),
                CopyFormat::Csv => String::new(),
            }),
            header,
            quote,
            escape: escape.unwrap_or(quote),
        })
    }
}

/// Parses COPY data pushed in arbitrary chunks into batches of `schema`.
pub struct CopyParser {
    schema: SchemaRef,
    /// For each input field, the index of its column in `schema`.
    targets: Vec<usize>,
    options: CopyOptions,
    pending: Vec<u8>,
    line: usize,
    header_pending: bool,
    rows: Vec<Vec<Option<String>>>,
    first_line_of_rows: usize,
    batches: Vec<RecordBatch>,
    /// Rows of batches already handed out by [`CopyParser::take_batches`].
    taken: usize,
    finished: bool,
}

impl CopyParser {
    /// A parser for `schema`, whose input has the columns `targets` (indexes into `schema`).
    pub fn new(schema: SchemaRef, targets: Vec<usize>, options: CopyOptions) -> Self {
        let header_pending = options.header;
        CopyParser {
            schema,
            targets,
            options,
            pending: Vec::new(),
            line: 0,
            header_pending,
            rows: Vec::new(),
            first_line_of_rows: 1,
            batches: Vec::new(),
            taken: 0,
            finished: false,
        }
    }

    /// The number of rows parsed so far.
    pub fn rows_parsed(&self) -> usize {
        self.taken + self.batches.iter().map(|b| b.num_rows()).sum::<usize>() + self.rows.len()
    }

    /// Feed bytes; complete lines are parsed at once.
    pub fn push(&mut self, data: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(end) = self.record_end(start) {
            let record = self.pending[start..end].to_vec();
            start = end + 1;
            self.line += 1 + record.iter().filter(|b| **b == b'\n').count();
            self.take_record(&record)?;
            if self.finished {
                break;
            }
        }
        self.pending.drain(..start);
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
            self.take_record(&record)?;
        }
        self.flush()?;
        Ok(self.batches)
    }

    /// Index of the newline ending the record that starts at `start` (quotes respected in CSV).
    fn record_end(&self, start: usize) -> Option<usize> {
        let bytes = &self.pending[start..];
        if self.options.format == CopyFormat::Text {
            return bytes.iter().position(|b| *b == b'\n').map(|p| start + p);
        }
        let quote = self.options.quote as u8;
        let escape = self.options.escape as u8;
        let mut in_quotes = false;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if in_quotes {
                if b == escape && escape != quote && bytes.get(i + 1).is_some() {
                    i += 2;
                    continue;
                }
                if b == quote {
                    if escape == quote && bytes.get(i + 1) == Some(&quote) {
                        i += 2;
                        continue;
                    }
                    in_quotes = false;
                }
            } else if b == quote {
                in_quotes = true;
            } else if b == b'\n' {
                return Some(start + i);
            }
            i += 1;
        }
        None
    }

    fn take_record(&mut self, record: &[u8]) -> Result<()> {
        let record = record.strip_suffix(b"\r").unwrap_or(record);
        let line = self.line;
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
        let fields = match self.options.format {
            CopyFormat::Text => split_text(text, self.options.delimiter, &self.options.null, line)?,
            CopyFormat::Csv => split_csv(text, &self.options, line)?,
        };
        if fields.len() != self.targets.len() {
            return Err(Error::BadCopyData {
                message: format!(
                    "COPY line {line}: expected {} fields, found {}",
                    self.targets.len(),
                    fields.len()
                ),
            });
        }
        if self.rows.is_empty() {
            self.first_line_of_rows = line;
        }
        self.rows.push(fields);
        if self.rows.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let mut columns: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), rows.len()))
            .collect();
        for (input, &target) in self.targets.iter().enumerate() {
            let field = self.schema.field(target);
            let values: StringArray = rows.iter().map(|r| r[input].as_deref()).collect();
            let converted = convert(&values, field.data_type()).map_err(|bad| {
                let value = values.value(bad);
                Error::InvalidValue {
                    message: format!(
                        "invalid input syntax for type {} in column \"{}\": \"{value}\" (COPY line {})",
                        pg_type_name(field.data_type()),
                        field.name(),
                        self.line_of(&rows, bad)
                    ),
                }
            })?;
            if !field.is_nullable()
                && let Some(row) = (0..rows.len()).find(|i| rows[*i][input].is_none())
            {
                return Err(Error::NotNullViolation {
                    message: format!(
                        "null value in column \"{}\" violates not-null constraint (COPY line {})",
                        field.name(),
                        self.line_of(&rows, row)
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
                        self.first_line_of_rows
                    ),
                });
            }
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| Error::Internal(format!("COPY batch: {e}")))?;
        self.batches.push(batch);
        Ok(())
    }

    /// The line of row `index` of the current block (records are one line each unless quoted
    /// newlines are present, in which case this is the line the block started at plus `index`).
    fn line_of(&self, _rows: &[Vec<Option<String>>], index: usize) -> usize {
        self.first_line_of_rows + index
    }
}

/// Render batches as the text a Postgres client receives (NULL as `None`).
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
        for row in arrow_pg::datatypes::encode_recordbatch(Arc::clone(&fields), batch.clone()) {
            let row = row.map_err(|e| Error::Internal(e.to_string()))?;
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
pub fn render(batch: &RecordBatch, options: &CopyOptions, out: &mut Vec<u8>) -> Result<()> {
    let rows = text_rows(std::slice::from_ref(batch))?;
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
    }
    Ok(())
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

fn split_text(
    line: &str,
    delimiter: char,
    null: &str,
    line_no: usize,
) -> Result<Vec<Option<String>>> {
    let mut fields = Vec::new();
    for raw in line.split(delimiter) {
        if raw == null {
            fields.push(None);
            continue;
        }
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('b') => out.push('\u{8}'),
                Some('f') => out.push('\u{c}'),
                Some('v') => out.push('\u{b}'),
                Some(other) => out.push(other),
                None => {
                    return Err(Error::BadCopyData {
                        message: format!("COPY line {line_no}: trailing backslash"),
                    });
                }
            }
        }
        fields.push(Some(out));
    }
    Ok(fields)
}

fn split_csv(line: &str, options: &CopyOptions, line_no: usize) -> Result<Vec<Option<String>>> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == options.escape && options.escape != options.quote {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            } else if c == options.quote {
                if options.escape == options.quote && chars.peek() == Some(&options.quote) {
                    chars.next();
                    current.push(options.quote);
                } else {
                    quoted = false;
                }
            } else {
                current.push(c);
            }
        } else if c == options.quote {
            quoted = true;
            was_quoted = true;
        } else if c == options.delimiter {
            fields.push(finish_csv_field(
                &mut current,
                &mut was_quoted,
                &options.null,
            ));
        } else {
            current.push(c);
        }
    }
    if quoted {
        return Err(Error::BadCopyData {
            message: format!("COPY line {line_no}: unterminated CSV quoted field"),
        });
    }
    fields.push(finish_csv_field(
        &mut current,
        &mut was_quoted,
        &options.null,
    ));
    Ok(fields)
}

fn finish_csv_field(current: &mut String, was_quoted: &mut bool, null: &str) -> Option<String> {
    let value = std::mem::take(current);
    let quoted = std::mem::replace(was_quoted, false);
    // Only an unquoted field equal to the NULL string is NULL; `""` is an empty string.
    (quoted || value != null).then_some(value)
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
        p.push(b"1,a\n2,b\nx,c\n").expect("lines");
        let err = p.finish().expect_err("bad bigint");
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
    fn over_long_line_is_rejected() {
        let mut p = CopyParser::new(schema(), vec![0, 1], csv(false));
        let long = vec![b'a'; MAX_LINE_BYTES + 1];
        assert!(matches!(p.push(&long), Err(Error::BadCopyData { .. })));
    }
}
