//! `finops.ingest_errors`: the records each provider table skipped under `OPTIONS ('on_error'
//! 'skip')`, and the tables that cannot be read at all, as one read-only table resolved at each
//! scan from the tables registered in the `providers` schema.
//!
//! Owns the listing only: parsing and its cache stay in `providers::table`, so reading this
//! table parses a file only when it is new or changed.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{CatalogProvider, Session as DfSession, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::providers::{ProviderTable, SkippedRecord};

/// Name of the table in the `finops` schema.
pub const INGEST_ERRORS: &str = "ingest_errors";

/// One row: a skipped record, or a table whose files could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestError {
    /// `providers.<name>`.
    pub table_name: String,
    /// The record's problem as the provider table reported it.
    pub record: SkippedRecord,
}

/// The columns: `table_name`, `format`, `file`, `line`, `record`, `message`, `seen_at`.
pub fn ingest_errors_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, true),
        Field::new("record", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
        Field::new(
            "seen_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// The rows as a batch of [`ingest_errors_schema`].
pub fn ingest_errors_batch(rows: &[IngestError]) -> DfResult<RecordBatch> {
    let text = |f: &dyn Fn(&IngestError) -> &str| -> ArrayRef {
        Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
    };
    let lines: Int64Array = rows
        .iter()
        .map(|r| r.record.line.and_then(|l| i64::try_from(l).ok()))
        .collect();
    let seen: TimestampMicrosecondArray = rows.iter().map(|r| Some(r.record.seen_at)).collect();
    Ok(RecordBatch::try_new(
        ingest_errors_schema(),
        vec![
            text(&|r| &r.table_name),
            text(&|r| &r.record.format),
            text(&|r| &r.record.file),
            Arc::new(lines),
            text(&|r| &r.record.location),
            text(&|r| &r.record.message),
            Arc::new(seen.with_timezone("UTC")),
        ],
    )?)
}

/// The ingest errors of every provider table, resolved at each scan.
#[derive(Debug)]
pub struct IngestErrors {
    catalog: Weak<dyn CatalogProvider>,
}

impl IngestErrors {
    /// The errors of the provider tables of `catalog`.
    pub fn new(catalog: &Arc<dyn CatalogProvider>) -> Self {
        IngestErrors {
            catalog: Arc::downgrade(catalog),
        }
    }

    /// Read every provider table (parsed files come from the cache) and collect what it skipped;
    /// a table that fails to read is one row naming its locations and the error, so one broken
    /// table never hides the others.
    async fn rows(&self, state: &dyn DfSession) -> DfResult<Vec<IngestError>> {
        let Some(providers) = self.catalog.upgrade().and_then(|c| c.schema("providers")) else {
            return Ok(Vec::new());
        };
        let mut names = providers.table_names();
        names.sort();
        let mut rows = Vec::new();
        for name in names {
            let Some(table) = providers.table(&name).await? else {
                continue;
            };
            let Some(provider) = table.downcast_ref::<ProviderTable>() else {
                continue;
            };
            let table_name = format!("providers.{name}");
            match provider.load(state).await {
                Ok(files) => rows.extend(files.iter().flat_map(|f| {
                    f.skipped.iter().map(|record| IngestError {
                        table_name: table_name.clone(),
                        record: record.clone(),
                    })
                })),
                Err(e) => rows.push(IngestError {
                    table_name,
                    record: SkippedRecord {
                        format: provider.format().to_string(),
                        file: provider.locations().join(","),
                        line: None,
                        location: "table".to_string(),
                        message: e.to_string(),
                        seen_at: chrono::Utc::now().timestamp_micros(),
                    },
                }),
            }
        }
        Ok(rows)
    }
}

#[async_trait]
impl TableProvider for IngestErrors {
    fn schema(&self) -> SchemaRef {
        ingest_errors_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = ingest_errors_batch(&self.rows(state).await?)?;
        let exec =
            MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?;
        Ok(exec)
    }
}
