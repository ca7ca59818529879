//! The table providers of materialized views: [`MaterializedTable`] serves one view's stored
//! result and swaps in a refreshed one atomically; [`StatusTable`] is `finops.materialized_views`.
//!
//! They must not refresh anything: the registry in `materialized.rs` hands them results.

use std::borrow::Cow;
use std::sync::{Arc, RwLock, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::{MaterializedViews, ViewInfo};

/// One result of a view: the batches and the in-memory table over them.
#[derive(Debug)]
struct Snapshot {
    batches: Arc<Vec<RecordBatch>>,
    table: Arc<MemTable>,
}

/// A materialized view as a table: scans read the result current when they are planned; a
/// refresh replaces it in one step, so a reader sees the old or the new result, never a mix.
#[derive(Debug)]
pub struct MaterializedTable {
    schema: SchemaRef,
    definition: String,
    current: RwLock<Arc<Snapshot>>,
}

impl MaterializedTable {
    /// A view over `batches`, which must all have `schema`.
    pub fn try_new(
        schema: SchemaRef,
        definition: String,
        batches: Vec<RecordBatch>,
    ) -> crate::Result<Self> {
        let snapshot = snapshot(&schema, batches)?;
        Ok(MaterializedTable {
            schema,
            definition,
            current: RwLock::new(Arc::new(snapshot)),
        })
    }

    /// Replace the result. `batches` must have this table's schema.
    pub fn swap(&self, batches: Vec<RecordBatch>) -> crate::Result<()> {
        let next = Arc::new(snapshot(&self.schema, batches)?);
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = next;
        Ok(())
    }

    /// The current result's batches.
    pub fn batches(&self) -> Arc<Vec<RecordBatch>> {
        Arc::clone(&self.current().batches)
    }

    fn current(&self) -> Arc<Snapshot> {
        // A panic while holding the lock cannot leave a half-written snapshot: the write is a
        // single pointer assignment, so a poisoned lock still holds a whole one.
        let guard = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&guard)
    }
}

fn snapshot(schema: &SchemaRef, batches: Vec<RecordBatch>) -> crate::Result<Snapshot> {
    let table = MemTable::try_new(Arc::clone(schema), vec![batches.clone()])?;
    Ok(Snapshot {
        batches: Arc::new(batches),
        table: Arc::new(table),
    })
}

#[async_trait]
impl TableProvider for MaterializedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        // The nearest kind the catalog knows: `\dv` and information_schema.views list it with
        // its definition; see the module docs of `materialized.rs` for `\dm`.
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.definition)
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, datafusion::logical_expr::LogicalPlan>> {
        // The stored result is scanned; the definition must never be inlined and re-run.
        None
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // The plan holds this snapshot's batches; a later swap does not change it.
        let snapshot = self.current();
        snapshot.table.scan(state, projection, filters, limit).await
    }
}

/// `finops.materialized_views`: one row per view.
#[derive(Debug)]
pub struct StatusTable {
    views: Weak<MaterializedViews>,
    schema: SchemaRef,
}

impl StatusTable {
    /// The status table of `views`. It holds a weak reference: the catalog must not keep the
    /// registry (and its background tasks) alive.
    pub fn new(views: Weak<MaterializedViews>) -> Self {
        StatusTable {
            views,
            schema: status_schema(),
        }
    }
}

/// The columns of `finops.materialized_views`.
pub fn status_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("definition", DataType::Utf8, false),
        Field::new("refresh", DataType::Utf8, false),
        Field::new("incremental", DataType::Boolean, false),
        Field::new(
            "last_refresh",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            true,
        ),
        Field::new("refresh_ms", DataType::Int64, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("stale", DataType::Boolean, false),
    ]))
}

/// `infos` as one batch of [`status_schema`].
pub fn status_batch(infos: &[ViewInfo]) -> crate::Result<RecordBatch> {
    let int = |f: fn(&ViewInfo) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            infos
                .iter()
                .map(|i| i64::try_from(f(i)).unwrap_or(i64::MAX)),
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(infos.iter().map(|i| &i.name))),
        Arc::new(StringArray::from_iter_values(
            infos.iter().map(|i| &i.definition),
        )),
        Arc::new(StringArray::from_iter_values(
            infos.iter().map(|i| i.refresh.to_string()),
        )),
        Arc::new(BooleanArray::from_iter(
            infos.iter().map(|i| Some(i.incremental)),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter(
                infos
                    .iter()
                    .map(|i| i.last_refresh.map(|t| t.timestamp_micros())),
            )
            .with_timezone("+00:00"),
        ),
        int(|i| i.refresh_ms),
        int(|i| i.rows),
        int(|i| i.bytes),
        Arc::new(BooleanArray::from_iter(infos.iter().map(|i| Some(i.stale)))),
    ];
    RecordBatch::try_new(status_schema(), columns).map_err(|e| crate::Error::DataFusion(e.into()))
}

#[async_trait]
impl TableProvider for StatusTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let infos = self.views.upgrade().map(|v| v.list()).unwrap_or_default();
        let batch = status_batch(&infos).map_err(DataFusionError::from)?;
        let schema = Arc::clone(&self.schema);
        crate::catalog::scan_rows(schema, vec![batch], state, projection, filters, limit).await
    }
}
