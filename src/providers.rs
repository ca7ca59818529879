//! Provider usage exports as virtual tables (SPEC 3.2): the registry of formats, the parse of one
//! file into its native and canonical batches, and the DataFusion table factory.
//!
//! Each format lives in its own file under `providers/` and only turns records into Arrow rows:
//! parse → Arrow in canonical shape, no SQL. Caching, listing and scanning live in `table` and
//! `cache`; shared builders in `native`, `canonical`, `records` and `value`.
//!
//! Use from the engine: [`register_factories`] (or [`register_factories_in`] / [`with_factories`])
//! with one [`ProviderTableFactory`]; `CREATE EXTERNAL TABLE t STORED AS <FORMAT> LOCATION '...'
//! [OPTIONS ('on_error' 'skip')]` then yields a [`ProviderTable`] with the native columns;
//! [`ProviderTable::canonical`] gives the same files as `finops.usage_events` rows, and
//! [`ProviderTable::skipped`] / [`skipped_batch`] the records skipped (for `finops.ingest_errors`).
//! A bill format ([`BILL_FORMATS`]) also takes `OPTIONS ('source_of_truth' 'true')`, which puts
//! its rows in `finops.usage` at their billed cost.
//! [`parse_file`] parses bytes directly (for `finops-db ingest`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::session_state::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use serde_json::Value;

use crate::error::{Error, Result};

pub mod anthropic_costs;
pub mod anthropic_messages;
pub mod anthropic_usage;
pub mod aws_cur;
pub mod azure_costs;
pub mod bedrock_invocations;
pub mod cache;
pub mod canonical;
pub mod focus;
pub mod gcp_billing;
pub mod gemini_usage;
pub mod litellm_spend;
pub mod native;
pub mod openai_costs;
pub mod openai_requests;
pub mod openai_usage;
pub mod otel_genai;
pub mod records;
pub mod table;
pub mod value;

pub use cache::{DEFAULT_BUDGET_BYTES as DEFAULT_CACHE_BYTES, ParseCache};
pub use canonical::CanonicalRow;
pub use table::{ProviderTable, ProviderTableFactory};

use canonical::roll_up;
use native::{Col, NativeBuilder};
use records::{FileProblem, Layout, RawRecord};

/// What a file is being read for, beyond its bytes.
#[derive(Debug, Clone, Copy)]
pub struct FileContext<'a> {
    /// The file's location, for messages and `_file`.
    pub file: &'a str,
    /// Last-modified time (µs since the epoch): the request time of formats whose records carry
    /// none (Anthropic message usage, Gemini API responses without `createTime`).
    pub modified: Option<i64>,
}

/// One provider export format: how its records are laid out, its native columns, and how a record
/// becomes a canonical row.
pub trait Format: Send + Sync {
    /// The `STORED AS` name, upper case.
    fn name(&self) -> &'static str;
    /// How records are laid out in a file.
    fn layout(&self) -> Layout;
    /// The native columns.
    fn columns(&self) -> &'static [Col];
    /// Keys every record of this format has (possibly null); a record without them is reported
    /// as "not a `<FORMAT>` record", which is how a file of the wrong format is caught.
    fn required(&self) -> &'static [&'static str];
    /// Split one file record into the records the native view shows (OTLP lines hold spans).
    fn expand(&self, record: Value) -> std::result::Result<Vec<Value>, String> {
        Ok(vec![record])
    }
    /// The canonical row of a record, `None` for records that carry no usage or cost.
    fn canonical(
        &self,
        record: &Value,
        ctx: &FileContext<'_>,
    ) -> std::result::Result<Option<CanonicalRow>, String>;
    /// Whether canonical rows are billing lines to roll up by `event_id` (see `canonical::roll_up`).
    fn rolls_up(&self) -> bool {
        false
    }
}

static FORMATS: [&dyn Format; 14] = [
    &openai_usage::OpenAiUsage,
    &openai_costs::OpenAiCosts,
    &openai_requests::OpenAiRequests,
    &anthropic_usage::AnthropicUsage,
    &anthropic_costs::AnthropicCosts,
    &anthropic_messages::AnthropicMessages,
    &bedrock_invocations::BedrockInvocations,
    &aws_cur::AwsCur,
    &gcp_billing::GcpBilling,
    &gemini_usage::GeminiUsage,
    &azure_costs::AzureCosts,
    &focus::Focus,
    &otel_genai::OtelGenai,
    &litellm_spend::LitellmSpend,
];

static NAMES: [&str; 14] = [
    "OPENAI_USAGE",
    "OPENAI_COSTS",
    "OPENAI_REQUESTS",
    "ANTHROPIC_USAGE",
    "ANTHROPIC_COSTS",
    "ANTHROPIC_MESSAGES",
    "BEDROCK_INVOCATIONS",
    "AWS_CUR",
    "GCP_BILLING",
    "GEMINI_USAGE",
    "AZURE_COSTS",
    "FOCUS",
    "OTEL_GENAI",
    "LITELLM_SPEND",
];

/// Formats that are bills (cost exports) rather than usage: their rows carry the billed
/// `reported_cost` and feed reconciliation, not `finops.usage`, unless the table is marked
/// `OPTIONS ('source_of_truth' 'true')`.
pub const BILL_FORMATS: [&str; 6] = [
    "OPENAI_COSTS",
    "ANTHROPIC_COSTS",
    "AWS_CUR",
    "GCP_BILLING",
    "AZURE_COSTS",
    "FOCUS",
];

/// Whether format `name` is a bill.
pub fn is_bill(name: &str) -> bool {
    BILL_FORMATS.iter().any(|b| b.eq_ignore_ascii_case(name))
}

/// The `STORED AS` names of every provider format.
pub fn formats() -> &'static [&'static str] {
    &NAMES
}

/// The format registered under `name` (case-insensitive).
pub fn format(name: &str) -> Option<&'static dyn Format> {
    FORMATS
        .iter()
        .copied()
        .find(|f| f.name().eq_ignore_ascii_case(name))
}

/// Whether a listed file is named like an export of format `format_name` (hidden files and other
/// extensions are left out of folder listings).
pub fn wanted(format_name: &str, meta: &object_store::ObjectMeta) -> bool {
    table::wanted(meta, format(format_name).map(|f| f.layout()))
}

/// The native schema of format `name`.
pub fn native_schema(name: &str) -> Option<SchemaRef> {
    format(name).map(|f| native::native_schema(f.columns()))
}

/// Register one [`ProviderTableFactory`] under every format name, so that
/// `CREATE EXTERNAL TABLE ... STORED AS OPENAI_USAGE` works. DataFusion upper-cases the
/// `STORED AS` word before looking the factory up, hence the upper-case keys.
pub fn register_factories(state: &mut SessionState, factory: Arc<ProviderTableFactory>) {
    for name in formats() {
        state
            .table_factories_mut()
            .insert((*name).to_string(), Arc::clone(&factory) as _);
    }
}

/// Same as [`register_factories`] for the state inside a live `SessionContext`.
pub fn register_factories_in(ctx: &SessionContext, factory: Arc<ProviderTableFactory>) {
    register_factories(&mut ctx.state_ref().write(), factory);
}

/// Same as [`register_factories`] for a state still being built.
pub fn with_factories(
    mut builder: SessionStateBuilder,
    factory: Arc<ProviderTableFactory>,
) -> SessionStateBuilder {
    for name in formats() {
        builder = builder.with_table_factory((*name).to_string(), Arc::clone(&factory) as _);
    }
    builder
}

/// What to do with a record that cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnError {
    /// Fail the scan, naming the file and record (the default).
    #[default]
    Fail,
    /// Skip the record (or the unreadable file) and keep it in [`ParsedFile::skipped`].
    Skip,
}

/// Read a boolean table option (`'true'`/`'false'`, also `on`/`off`, `yes`/`no`, `1`/`0`).
pub fn parse_flag(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        other => Err(Error::InvalidParameter(format!(
            "{key} must be 'true' or 'false', not '{other}'"
        ))),
    }
}

impl OnError {
    /// Read the `on_error` table option (`'skip'` or `'error'`).
    pub fn parse(value: &str) -> Result<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "skip" => Ok(OnError::Skip),
            "error" | "fail" | "abort" => Ok(OnError::Fail),
            other => Err(Error::InvalidParameter(format!(
                "on_error must be 'skip' or 'error', not '{other}'"
            ))),
        }
    }
}

/// A record left out under `on_error 'skip'` (the rows of `finops.ingest_errors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRecord {
    /// The format.
    pub format: String,
    /// The file.
    pub file: String,
    /// 1-based line, for line-oriented layouts.
    pub line: Option<u64>,
    /// Human position (`line 12`, `bucket 2, result 3`).
    pub location: String,
    /// What is wrong.
    pub message: String,
    /// When the parse that found it ran (µs since the epoch).
    pub seen_at: i64,
}

/// The schema of [`skipped_batch`]: `format`, `file`, `line`, `location`, `message`.
pub fn skipped_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("format", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, true),
        Field::new("location", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
    ]))
}

/// Skipped records as a batch, for `finops.ingest_errors`.
pub fn skipped_batch(records: &[SkippedRecord]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&SkippedRecord) -> &str| -> ArrayRef {
        Arc::new(records.iter().map(|r| Some(f(r))).collect::<StringArray>())
    };
    let lines: Int64Array = records
        .iter()
        .map(|r| r.line.and_then(|l| i64::try_from(l).ok()))
        .collect();
    RecordBatch::try_new(
        skipped_schema(),
        vec![
            text(&|r| &r.format),
            text(&|r| &r.file),
            Arc::new(lines),
            text(&|r| &r.location),
            text(&|r| &r.message),
        ],
    )
    .map_err(|e| Error::Internal(e.to_string()))
}

/// One file, parsed.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    /// The native view's rows, without the `_file` column (see [`native::with_file`]).
    pub native: RecordBatch,
    /// The canonical rows. Records repeated inside the file (retries, re-deliveries) keep their
    /// native rows and share one `event_id` here; billing lines are rolled up per model and period.
    pub canonical: RecordBatch,
    /// Records left out under `on_error 'skip'`.
    pub skipped: Vec<SkippedRecord>,
    /// Smallest and largest canonical `ts`, for skipping files a `ts` filter cannot match.
    pub ts_range: Option<(i64, i64)>,
    /// The file's last-modified time (µs), when known: the newest file wins a repeated `event_id`.
    pub modified: Option<i64>,
    /// The file's location, the native view's `_file`.
    pub file: String,
}

/// Parse the bytes of one file of format `format_name`.
pub fn parse_file(
    format_name: &str,
    ctx: &FileContext<'_>,
    bytes: &[u8],
    on_error: OnError,
) -> Result<ParsedFile> {
    let fmt = format(format_name)
        .ok_or_else(|| Error::InvalidParameter(format!("unknown provider format {format_name}")))?;
    let mut native = NativeBuilder::new(fmt.columns());
    let mut rows: Vec<CanonicalRow> = Vec::new();
    let mut skipped = Vec::new();
    let seen_at = chrono::Utc::now().timestamp_micros();
    let mut fail = |line: Option<u64>, location: &str, message: String| -> Result<()> {
        let err = SkippedRecord {
            format: fmt.name().to_string(),
            file: ctx.file.to_string(),
            line,
            location: location.to_string(),
            message,
            seen_at,
        };
        match on_error {
            OnError::Skip => {
                skipped.push(err);
                Ok(())
            }
            OnError::Fail => Err(Error::ProviderData {
                format: err.format,
                file: err.file,
                line: err.line,
                location: err.location,
                message: err.message,
            }),
        }
    };
    let records =
        records::decompress(ctx.file, bytes).and_then(|b| records::split(fmt.layout(), &b));
    match records {
        Err(FileProblem {
            line,
            location,
            message,
        }) => fail(line, &location, message)?,
        Ok(records) => {
            for RawRecord {
                line,
                location,
                value,
            } in records
            {
                if let Err(message) = read_record(fmt, ctx, value, line, &mut native, &mut rows) {
                    fail(line, &location, message)?;
                }
            }
        }
    }
    if fmt.rolls_up() {
        rows = roll_up(rows);
    }
    let ts_range = rows.iter().map(|r| r.ts).fold(None, |acc, ts| match acc {
        None => Some((ts, ts)),
        Some((lo, hi)) => Some((ts.min(lo), ts.max(hi))),
    });
    Ok(ParsedFile {
        native: native.finish()?,
        canonical: canonical::to_batch(&rows)?,
        skipped,
        ts_range,
        modified: ctx.modified,
        file: ctx.file.to_string(),
    })
}

/// Read one record into both views, all or nothing.
fn read_record(
    fmt: &dyn Format,
    ctx: &FileContext<'_>,
    value: std::result::Result<Value, String>,
    line: Option<u64>,
    native: &mut NativeBuilder,
    rows: &mut Vec<CanonicalRow>,
) -> std::result::Result<(), String> {
    let value = value?;
    let missing: Vec<&str> = fmt
        .required()
        .iter()
        .copied()
        .filter(|k| value.get(k).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "not a {} record: missing {}",
            fmt.name(),
            missing.join(", ")
        ));
    }
    let parts = fmt.expand(value)?;
    // Check every part before appending any, so a bad span does not leave its siblings behind.
    let mut canon = Vec::with_capacity(parts.len());
    for part in &parts {
        canon.push(fmt.canonical(part, ctx)?);
    }
    for part in &parts {
        native.check(part)?;
    }
    for (part, row) in parts.iter().zip(canon) {
        native.push(part, line)?;
        rows.extend(row);
    }
    Ok(())
}

#[cfg(test)]
mod fixture_tests;

#[cfg(test)]
mod scan_tests;
