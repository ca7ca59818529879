//! `finops-db ingest`: load usage files (CSV, Parquet, JSON Lines) or provider exports from a local
//! path or an object-store URL (one file or a folder) into `finops.usage_events`.
//!
//! Each file is one statement through [`Session::append`], the path `INSERT` and `COPY` take: it is
//! atomic (a bad row rejects the whole file, naming the file and the line) and idempotent by
//! `event_id` (re-ingesting a file inserts nothing). Owns listing a location and turning one file
//! into the table's columns; it must not know about the CLI or the wire protocol.

use std::io::{Cursor, Read};
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::compute::{CastOptions, cast_with_options, is_not_null, kernels::zip::zip};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::TryStreamExt;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde_json::Value;

use crate::engine::Session;
use crate::error::{Error, Result};
use crate::providers::{FileContext, OnError};
use crate::schema::{USAGE_EVENTS, usage_events_schema};

/// Rows per batch read from a file.
const BATCH_ROWS: usize = 8192;

/// What a location holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestKind {
    /// Rows in the columns of `finops.usage_events` (SPEC 3.1), as CSV, Parquet or JSON Lines.
    Usage,
    /// A provider export format (`OPENAI_USAGE`, ...), converted to canonical rows.
    Provider(&'static str),
}

impl IngestKind {
    /// `usage` or a provider format name (case-insensitive).
    pub fn parse(name: &str) -> Result<Self> {
        if name.eq_ignore_ascii_case("usage") {
            return Ok(IngestKind::Usage);
        }
        crate::providers::format(name)
            .map(|f| IngestKind::Provider(f.name()))
            .ok_or_else(|| {
                Error::InvalidParameter(format!(
                    "unknown ingest kind '{name}': expected usage or one of {}",
                    crate::providers::formats()
                        .iter()
                        .map(|f| f.to_ascii_lowercase())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

/// What one file contributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    /// Rows read from the file.
    pub rows: u64,
    /// Rows stored; the others carried an `event_id` already stored (or repeated in the file).
    pub inserted: u64,
}

impl Ingested {
    /// Rows skipped as duplicates.
    pub fn duplicates(&self) -> u64 {
        self.rows - self.inserted
    }
}

/// One file of a location and what became of it.
#[derive(Debug)]
pub struct FileOutcome {
    /// The file, as a path for local files and as a URL otherwise.
    pub file: String,
    /// Its rows, or why none of them were stored.
    pub result: Result<Ingested>,
}

/// Ingest every file at `location` (a file, or a folder listed recursively in path order), each
/// as its own statement. A file that fails leaves nothing behind and does not stop the others; an
/// error here means the location itself could not be listed.
pub async fn ingest(
    session: &Session,
    kind: IngestKind,
    location: &str,
) -> Result<Vec<FileOutcome>> {
    let (store, files) = list(session, kind, location).await?;
    let mut outcomes = Vec::with_capacity(files.len());
    for file in files {
        let result = ingest_file(session, kind, &store, &file).await;
        outcomes.push(FileOutcome {
            file: file.display,
            result,
        });
    }
    Ok(outcomes)
}

struct ListedFile {
    meta: ObjectMeta,
    display: String,
}

async fn list(
    session: &Session,
    kind: IngestKind,
    location: &str,
) -> Result<(Arc<dyn ObjectStore>, Vec<ListedFile>)> {
    let url = ListingTableUrl::parse(location)?;
    let store = crate::storage::store_for(&session.context().runtime_env(), &url)?;
    let prefix = url.prefix();
    let display = |meta: &ObjectMeta| -> String {
        if url.scheme() == "file" {
            format!("/{}", meta.location)
        } else {
            format!("{}{}", url.object_store().as_str(), meta.location)
        }
    };
    if !url.is_collection() {
        match store.head(prefix).await {
            Ok(meta) => {
                let display = display(&meta);
                return Ok((store, vec![ListedFile { meta, display }]));
            }
            // Not an object: read it as a folder (object stores have no directories).
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(Error::object_store(location, e)),
        }
    }
    let mut metas: Vec<ObjectMeta> = store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|e| Error::object_store(location, e))?;
    metas.retain(|m| wanted(kind, m));
    if metas.is_empty() {
        return Err(Error::InvalidParameter(format!(
            "no file to ingest at {location}"
        )));
    }
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    let files = metas
        .into_iter()
        .map(|meta| ListedFile {
            display: display(&meta),
            meta,
        })
        .collect();
    Ok((store, files))
}

fn wanted(kind: IngestKind, meta: &ObjectMeta) -> bool {
    let Some(name) = meta.location.filename() else {
        return false;
    };
    if name.starts_with('.') || name.starts_with('_') {
        return false;
    }
    match kind {
        IngestKind::Usage => FileFormat::of(name).is_some(),
        IngestKind::Provider(format) => crate::providers::wanted(format, meta),
    }
}

/// How a usage file is written, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileFormat {
    Csv,
    Parquet,
    JsonLines,
}

impl FileFormat {
    fn of(name: &str) -> Option<FileFormat> {
        let name = name.to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let ext = name.rsplit_once('.').map(|(_, e)| e)?;
        match ext {
            "csv" => Some(FileFormat::Csv),
            "parquet" | "pq" => Some(FileFormat::Parquet),
            "jsonl" | "ndjson" | "json" => Some(FileFormat::JsonLines),
            _ => None,
        }
    }
}

async fn ingest_file(
    session: &Session,
    kind: IngestKind,
    store: &Arc<dyn ObjectStore>,
    file: &ListedFile,
) -> Result<Ingested> {
    let name = file.display.clone();
    let bytes = store
        .get(&file.meta.location)
        .await
        .map_err(|e| Error::object_store(name.clone(), e))?
        .bytes()
        .await
        .map_err(|e| Error::object_store(name.clone(), e))?;
    let modified = file.meta.last_modified.timestamp_micros();
    // Parsing is CPU work; keep it off the async workers.
    let batches = tokio::task::spawn_blocking(move || match kind {
        IngestKind::Usage => read_usage(&name, bytes),
        IngestKind::Provider(format) => {
            let ctx = FileContext {
                file: &name,
                modified: Some(modified),
            };
            let parsed = crate::providers::parse_file(format, &ctx, &bytes, OnError::Fail)?;
            Ok(vec![parsed.canonical])
        }
    })
    .await
    .map_err(|e| Error::Internal(format!("reading {}: {e}", file.display)))??;
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    let inserted = session
        .append(&format!("finops.{USAGE_EVENTS}"), batches)
        .await?;
    Ok(Ingested { rows, inserted })
}

/// Read a usage file into batches of `finops.usage_events`, all or nothing.
pub fn read_usage(file: &str, bytes: Bytes) -> Result<Vec<RecordBatch>> {
    let format = FileFormat::of(file).ok_or_else(|| Error::BadCopyData {
        message: format!(
            "{file}: cannot tell the format from the name; expected .csv, .parquet or .jsonl (optionally .gz)"
        ),
    })?;
    let bytes = if file.to_ascii_lowercase().ends_with(".gz") {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes.as_ref())
            .read_to_end(&mut out)
            .map_err(|e| Error::BadCopyData {
                message: format!("{file}: cannot decompress: {e}"),
            })?;
        Bytes::from(out)
    } else {
        bytes
    };
    match format {
        FileFormat::Csv => read_csv(file, bytes),
        FileFormat::Parquet => read_parquet(file, bytes),
        FileFormat::JsonLines => read_json_lines(file, &bytes),
    }
}

/// Where a row sits in its file, for messages.
#[derive(Debug, Clone, Copy)]
enum Position<'a> {
    /// Line `first + i` (CSV: the header is line 1, one record per line).
    Lines(usize),
    /// The given line of each row (JSON Lines, which may hold blank lines).
    LineOf(&'a [usize]),
    /// Row `first + i`, 1-based (Parquet).
    Rows(usize),
}

impl Position<'_> {
    fn describe(self, row: usize) -> String {
        match self {
            Position::Lines(first) => format!("line {}", first + row),
            Position::LineOf(lines) => format!("line {}", lines.get(row).copied().unwrap_or(0)),
            Position::Rows(first) => format!("row {}", first + row),
        }
    }
}

fn read_csv(file: &str, bytes: Bytes) -> Result<Vec<RecordBatch>> {
    use datafusion::arrow::csv::{ReaderBuilder, reader::Format};
    let bad = |e: datafusion::arrow::error::ArrowError| Error::BadCopyData {
        message: format!("{file}: {e}"),
    };
    let (header, _) = Format::default()
        .with_header(true)
        .infer_schema(Cursor::new(&bytes), Some(0))
        .map_err(bad)?;
    // Every field is read as text and converted below with the table's rules, so a bad value is
    // reported with its column and line, and an empty field is NULL.
    let schema = Arc::new(Schema::new(
        header
            .fields()
            .iter()
            .map(|f| Field::new(f.name().trim(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    check_columns(file, &schema)?;
    let reader = ReaderBuilder::new(Arc::clone(&schema))
        .with_header(true)
        .with_batch_size(BATCH_ROWS)
        .build(Cursor::new(bytes))
        .map_err(bad)?;
    let mut out = Vec::new();
    let mut first_line = 2;
    for batch in reader {
        let batch = batch.map_err(bad)?;
        let rows = batch.num_rows();
        out.push(conform(file, &batch, Position::Lines(first_line))?);
        first_line += rows;
    }
    Ok(out)
}

fn read_parquet(file: &str, bytes: Bytes) -> Result<Vec<RecordBatch>> {
    let bad = |e: datafusion::parquet::errors::ParquetError| Error::BadCopyData {
        message: format!("{file}: not a readable Parquet file: {e}"),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(bad)?;
    check_columns(file, builder.schema())?;
    let reader = builder.with_batch_size(BATCH_ROWS).build().map_err(bad)?;
    let mut out = Vec::new();
    let mut first_row = 1;
    for batch in reader {
        let batch = batch.map_err(|e| Error::BadCopyData {
            message: format!("{file}: {e}"),
        })?;
        let rows = batch.num_rows();
        out.push(conform(file, &batch, Position::Rows(first_row))?);
        first_row += rows;
    }
    Ok(out)
}

/// JSON Lines through `serde_json`, one object per line: arrow's JSON reader reports no line
/// numbers and rejects `tags` given as a JSON object, which is the natural way to write it.
fn read_json_lines(file: &str, bytes: &[u8]) -> Result<Vec<RecordBatch>> {
    let schema = usage_events_schema();
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        Error::BadCopyData {
            message: format!("{file}, line {line}: invalid UTF-8"),
        }
    })?;
    let mut columns: Vec<Option<Vec<Option<String>>>> = vec![None; schema.fields().len()];
    let mut lines: Vec<usize> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| Error::BadCopyData {
            message: format!("{file}, line {line_no}: {message}"),
        };
        let value: Value = serde_json::from_str(line).map_err(|e| bad(format!("{e}")))?;
        let Value::Object(object) = value else {
            return Err(bad("expected a JSON object".into()));
        };
        let row = lines.len();
        lines.push(line_no);
        for (key, value) in object {
            let Ok(index) = schema.index_of(&key) else {
                return Err(bad(unknown_column(&key)));
            };
            let text = match value {
                Value::Null => None,
                Value::String(s) => Some(s),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                v @ (Value::Object(_) | Value::Array(_)) if key == "tags" => Some(v.to_string()),
                _ => return Err(bad(format!("column \"{key}\" must be a scalar"))),
            };
            let column = columns[index].get_or_insert_with(Vec::new);
            column.resize(row, None);
            column.push(text);
        }
    }
    let present: Vec<(usize, ArrayRef)> = columns
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| c.map(|c| (i, c)))
        .map(|(i, mut values)| {
            values.resize(lines.len(), None);
            (i, Arc::new(StringArray::from(values)) as ArrayRef)
        })
        .collect();
    let fields: Vec<Field> = present
        .iter()
        .map(|(i, _)| Field::new(schema.field(*i).name(), DataType::Utf8, true))
        .collect();
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        present.into_iter().map(|(_, a)| a).collect(),
        &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(lines.len())),
    )
    .map_err(|e| Error::Internal(format!("{file}: {e}")))?;
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    Ok(vec![conform(file, &batch, Position::LineOf(&lines))?])
}

fn unknown_column(name: &str) -> String {
    format!("column \"{name}\" does not exist in finops.{USAGE_EVENTS}")
}

/// A file's columns must be columns of the table, and the NOT NULL ones must be there.
fn check_columns(file: &str, columns: &SchemaRef) -> Result<()> {
    let schema = usage_events_schema();
    let mut seen = std::collections::HashSet::new();
    for field in columns.fields() {
        if schema.index_of(field.name()).is_err() {
            return Err(Error::BadCopyData {
                message: format!("{file}: {}", unknown_column(field.name())),
            });
        }
        if !seen.insert(field.name().as_str()) {
            return Err(Error::BadCopyData {
                message: format!("{file}: column \"{}\" appears twice", field.name()),
            });
        }
    }
    let missing: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| !f.is_nullable() && columns.index_of(f.name()).is_err())
        .map(|f| f.name().as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Error::NotNullViolation {
            message: format!(
                "{file}: missing required column{} {}",
                if missing.len() > 1 { "s" } else { "" },
                missing.join(", ")
            ),
        });
    }
    Ok(())
}

/// Turn a batch of a file's columns (named as the table's) into a batch of the table: convert
/// each value with the table's type, fail on the first value that does not convert or on a
/// missing NOT NULL value (naming file, line and column), and record the file as `source` when
/// the file does not say.
fn conform(file: &str, batch: &RecordBatch, position: Position<'_>) -> Result<RecordBatch> {
    let schema = usage_events_schema();
    let rows = batch.num_rows();
    let safe = CastOptions {
        safe: true,
        ..CastOptions::default()
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let Some(input) = batch.column_by_name(field.name()) else {
            if !field.is_nullable() {
                return Err(Error::NotNullViolation {
                    message: format!(
                        "{file}, {}: missing required column \"{}\"",
                        position.describe(0),
                        field.name()
                    ),
                });
            }
            columns.push(if field.name() == "source" {
                Arc::new(StringArray::from(vec![file; rows]))
            } else {
                new_null_array(field.data_type(), rows)
            });
            continue;
        };
        let converted = cast_with_options(input, field.data_type(), &safe).map_err(|e| {
            Error::InvalidValue {
                message: format!("{file}: column \"{}\": {e}", field.name()),
            }
        })?;
        // A value that was present but came out NULL did not convert.
        if let Some(bad) = (0..rows).find(|i| input.is_valid(*i) && converted.is_null(*i)) {
            let value = array_value_to_string(input, bad).unwrap_or_default();
            return Err(Error::InvalidValue {
                message: format!(
                    "{file}, {}: invalid input syntax for type {} in column \"{}\": \"{value}\"",
                    position.describe(bad),
                    crate::copy::pg_type_name(field.data_type()),
                    field.name()
                ),
            });
        }
        if !field.is_nullable()
            && let Some(row) = (0..rows).find(|i| converted.is_null(*i))
        {
            return Err(Error::NotNullViolation {
                message: format!(
                    "{file}, {}: null value in column \"{}\" violates not-null constraint",
                    position.describe(row),
                    field.name()
                ),
            });
        }
        let converted = if field.name() == "source" && converted.null_count() > 0 {
            let present =
                is_not_null(&converted).map_err(datafusion::error::DataFusionError::from)?;
            let fallback = StringArray::new_scalar(file);
            zip(&present, &converted, &fallback)
                .map_err(datafusion::error::DataFusionError::from)?
        } else {
            converted
        };
        columns.push(converted);
    }
    RecordBatch::try_new(schema, columns).map_err(|e| Error::Internal(format!("{file}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(file: &str, text: &str) -> Result<Vec<RecordBatch>> {
        read_usage(file, Bytes::from(text.to_string()))
    }

    #[test]
    fn format_from_name() {
        let cases = [
            ("a.csv", Some(FileFormat::Csv)),
            ("A.CSV.gz", Some(FileFormat::Csv)),
            ("x/y.parquet", Some(FileFormat::Parquet)),
            ("e.jsonl", Some(FileFormat::JsonLines)),
            ("e.ndjson", Some(FileFormat::JsonLines)),
            ("notes.txt", None),
            ("csv", None),
        ];
        for (name, want) in cases {
            assert_eq!(FileFormat::of(name), want, "{name}");
        }
    }

    #[test]
    fn csv_subset_of_columns_with_nulls() {
        let batches = read(
            "u.csv",
            "event_id,ts,provider,model,team,input_tokens,reported_cost\n\
             e1,2025-01-02T03:04:05Z,openai,gpt-4o,,100,0.0125\n\
             e2,2025-01-02 03:04:06,anthropic,claude-3-5-sonnet,core,,\n",
        )
        .expect("reads");
        let b = &batches[0];
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.schema(), usage_events_schema());
        let team = b.column_by_name("team").expect("team");
        assert!(team.is_null(0), "empty field is NULL");
        assert_eq!(array_value_to_string(team, 1).expect("text"), "core");
        let cost = b.column_by_name("reported_cost").expect("cost");
        assert_eq!(
            array_value_to_string(cost, 0).expect("text"),
            "0.012500000000"
        );
        let source = b.column_by_name("source").expect("source");
        assert_eq!(array_value_to_string(source, 1).expect("text"), "u.csv");
    }

    #[test]
    fn csv_bad_value_names_file_line_and_column() {
        let err = read(
            "u.csv",
            "event_id,ts,provider,model,input_tokens\n\
             e1,2025-01-02T03:04:05Z,openai,gpt-4o,1\n\
             e2,2025-01-02T03:04:05Z,openai,gpt-4o,many\n",
        )
        .expect_err("bad bigint");
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidValue { .. }), "{err:?}");
        assert!(
            text.contains("u.csv, line 3") && text.contains("input_tokens"),
            "{text}"
        );
    }

    #[test]
    fn missing_or_unknown_columns_are_rejected() {
        let err = read("u.csv", "event_id,provider,model\ne1,openai,gpt-4o\n").expect_err("no ts");
        assert!(
            err.to_string().contains("missing required column ts"),
            "{err}"
        );
        let err = read("u.csv", "event_id,ts,provider,model,cost\n").expect_err("unknown");
        assert!(err.to_string().contains("\"cost\""), "{err}");
        let err = read(
            "u.jsonl",
            "{\"event_id\":\"e1\",\"ts\":\"2025-01-01T00:00:00Z\",\"provider\":\"openai\"}\n",
        )
        .expect_err("no model");
        assert!(err.to_string().contains("u.jsonl, line 1"), "{err}");
        assert!(matches!(err, Error::NotNullViolation { .. }), "{err:?}");
    }

    #[test]
    fn json_lines_tags_object_numbers_and_bad_line() {
        let batches = read(
            "u.jsonl",
            "{\"event_id\":\"e1\",\"ts\":\"2025-01-01T00:00:00Z\",\"provider\":\"openai\",\"model\":\"gpt-4o\",\"input_tokens\":7,\"reported_cost\":0.5,\"tags\":{\"k\":\"v\"}}\n\
             \n\
             {\"event_id\":\"e2\",\"ts\":\"2025-01-01T00:00:01Z\",\"provider\":\"openai\",\"model\":\"gpt-4o\"}\n",
        )
        .expect("reads");
        let b = &batches[0];
        assert_eq!(b.num_rows(), 2);
        let tags = b.column_by_name("tags").expect("tags");
        assert_eq!(
            array_value_to_string(tags, 0).expect("text"),
            "{\"k\":\"v\"}"
        );
        assert!(tags.is_null(1));
        let err = read(
            "u.jsonl",
            "{\"event_id\":\"e1\",\"ts\":\"2025-01-01T00:00:00Z\",\"provider\":\"openai\",\"model\":\"gpt-4o\"}\n\n{\"event_id\": \n",
        )
        .expect_err("truncated");
        assert!(err.to_string().contains("u.jsonl, line 3"), "{err}");
    }
}
