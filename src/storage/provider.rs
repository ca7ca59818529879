//! [`DurableTable`] as a DataFusion [`TableProvider`]: scans over one snapshot (Parquet segments
//! pruned by their `ts` range, plus the WAL's unflushed rows), and INSERT / DELETE / UPDATE /
//! TRUNCATE as plans that run the table's own write path when executed.
//!
//! It owns planning against a snapshot. It must not change storage itself: every write goes through
//! `TableCore` so it is logged, atomic and serialized.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, TimestampMicrosecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{Column, DFSchema, ScalarValue, SchemaExt};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileGroup, FileGroupPartitioner, FileScanConfigBuilder, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::{PruningPredicateBuilder, PruningStatistics};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;

use super::constants;
use super::exec::{StorageWriteExec, WriteOp};
use super::manifest::SegmentMeta;
use super::options::{TableKind, TableOptions};
use super::segment::{self, TS};
use super::stage::BulkAppend;
use super::table::{TableCore, detached};

/// A durable table: Parquet segments plus a write-ahead log, readable and writable through
/// DataFusion, and appendable directly (COPY, file ingest) with [`DurableTable::append`].
#[derive(Debug, Clone)]
pub struct DurableTable {
    pub(crate) core: Arc<TableCore>,
}

/// Sizes of a table, for monitoring and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    /// Live Parquet segment files.
    pub segments: usize,
    /// Rows in segments.
    pub segment_rows: u64,
    /// Bytes of segment files.
    pub segment_bytes: u64,
    /// Rows acknowledged but still only in the WAL.
    pub wal_rows: u64,
    /// Paths of the live segment files, relative to the data directory.
    pub segment_paths: Vec<String>,
}

impl DurableTable {
    /// SQL schema the table belongs to.
    pub fn schema_name(&self) -> &str {
        &self.core.schema_name
    }

    /// Table name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The schema rows are stored and appended in ([`TableProvider::schema`] is what scans
    /// produce; the two differ in text types for usage tables).
    pub fn stored_schema(&self) -> SchemaRef {
        Arc::clone(&self.core.schema)
    }

    /// Kind, constraints and defaults.
    pub fn options(&self) -> &TableOptions {
        &self.core.options
    }

    /// Append one statement's rows atomically and durably; returns the rows actually inserted
    /// (usage tables skip rows whose `event_id` is already stored or repeated in the statement).
    /// Columns are matched by position and cast to the table's types. A NULL in a NOT NULL column
    /// rejects the whole statement with [`crate::Error::NotNullViolation`].
    pub async fn append(
        &self,
        batches: Vec<datafusion::arrow::array::RecordBatch>,
    ) -> crate::Result<u64> {
        let core = Arc::clone(&self.core);
        detached(async move { core.append(batches).await }).await
    }

    /// Call `observer` with the rows of every statement appended from now on, once they are
    /// durable and visible (replacing any observer set before).
    pub fn set_append_observer(&self, observer: super::table::AppendObserver) {
        if let Ok(mut slot) = self.core.observer.write() {
            *slot = Some(observer);
        }
    }

    /// Where the table is in its change history now; compare later with [`Self::changes_since`].
    /// Taken before reading, a position never hides a change the read did not see.
    pub fn change_position(&self) -> super::ChangePosition {
        self.core
            .changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .position()
    }

    /// What changed since `position`.
    pub fn changes_since(&self, position: &super::ChangePosition) -> super::Changes {
        self.core
            .changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .since(position)
    }

    /// Start appending one statement whose rows arrive in parts (`COPY ... FROM STDIN`): rows are
    /// staged in files invisible to readers while they arrive, so memory stays bounded, and
    /// [`BulkAppend::commit`] publishes them all at once with the guarantees of [`Self::append`].
    pub fn bulk_append(&self) -> BulkAppend {
        BulkAppend::new(Arc::clone(&self.core))
    }

    /// Replace every row of a config table with `change(current rows)`, atomically and durably,
    /// returning what `change` reports; if `change` fails nothing changes.
    pub async fn replace_all<T: Send + 'static>(
        &self,
        change: impl FnOnce(
            datafusion::arrow::array::RecordBatch,
        ) -> crate::Result<(datafusion::arrow::array::RecordBatch, T)>
        + Send
        + 'static,
    ) -> crate::Result<T> {
        let core = Arc::clone(&self.core);
        detached(async move { core.replace_all(change).await }).await
    }

    /// Fold rows still in the WAL into a Parquet segment now.
    pub async fn flush(&self) -> crate::Result<()> {
        let core = Arc::clone(&self.core);
        detached(async move {
            let mut writer = core.writer.lock().await;
            core.flush_locked(&mut writer).await
        })
        .await
    }

    /// Merge small segments now; returns how many merges were done.
    pub async fn compact(&self) -> crate::Result<usize> {
        let core = Arc::clone(&self.core);
        detached(async move { core.compact().await }).await
    }

    /// Current sizes.
    pub fn stats(&self) -> TableStats {
        let snapshot = self.core.snapshot();
        TableStats {
            segments: snapshot.segments.len(),
            segment_rows: snapshot.segments.iter().map(|s| s.rows).sum(),
            segment_bytes: snapshot.segments.iter().map(|s| s.bytes).sum(),
            wal_rows: snapshot.mem_rows() as u64,
            segment_paths: snapshot
                .segments
                .iter()
                .map(|s| segment::data_path(&self.core.dir, s.id).to_string())
                .collect(),
        }
    }
}

#[async_trait]
impl TableProvider for DurableTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.core.scan_schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.core.column_defaults.get(column)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Segments and row groups are pruned, but rows are not filtered exactly.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let core = &self.core;
        let schema = &core.scan_schema;
        let snapshot = core.snapshot();
        let predicate = physical_predicate(state, schema, filters)?;
        let keep = match &predicate {
            Some(p) => prune(p, schema, &snapshot.segments),
            None => vec![true; snapshot.segments.len()],
        };
        let files: Vec<PartitionedFile> = snapshot
            .segments
            .iter()
            .zip(keep)
            .filter(|(_, keep)| *keep)
            .map(|(s, _)| {
                let file =
                    PartitionedFile::new(segment::data_path(&core.dir, s.id).to_string(), s.bytes);
                // Constant columns are then read as their value, not decoded.
                match constants::file_statistics(schema, s.rows, &s.constants) {
                    Some(statistics) => file.with_statistics(statistics),
                    None => file,
                }
            })
            .collect();
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !files.is_empty() {
            state
                .runtime_env()
                .register_object_store(core.store_url.as_ref(), Arc::clone(&core.backend.store));
            let options = state.config_options();
            let groups = options.execution.target_partitions.max(1);
            // Byte ranges of even size per partition, as DataFusion splits its own Parquet
            // tables (whole files per partition give one partition more to read when the
            // segment count does not divide evenly). Small segments stay one group; DataFusion
            // repartitions their rows where a plan needs it.
            let files = vec![FileGroup::new(files)];
            let file_groups = FileGroupPartitioner::new()
                .with_target_partitions(groups)
                .with_repartition_file_min_size(options.optimizer.repartition_file_min_size)
                .repartition_file_groups(&files)
                .unwrap_or(files);
            // Segment files never change once written: their footers are read once and kept in
            // the session's metadata cache, as DataFusion's own Parquet tables do.
            let reader = CachedParquetFileReaderFactory::new(
                Arc::clone(&core.backend.store),
                state.runtime_env().cache_manager.get_file_metadata_cache(),
            );
            // Segments store `Utf8`; the reader produces the scan schema's view types directly.
            let mut source = ParquetSource::new(Arc::clone(schema))
                .with_parquet_file_reader_factory(Arc::new(reader));
            if let Some(p) = &predicate {
                source = source.with_predicate(Arc::clone(p));
            }
            let config = FileScanConfigBuilder::new(core.store_url.clone(), Arc::new(source))
                .with_file_groups(file_groups)
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }
        if !snapshot.mem.is_empty() {
            let mem = snapshot
                .mem
                .iter()
                .map(|b| crate::schema::cast_batch(b, schema))
                .collect::<Result<Vec<_>, _>>()?;
            inputs.push(MemorySourceConfig::try_new_exec(
                &[mem],
                Arc::clone(schema),
                projection.cloned(),
            )?);
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => Arc::clone(schema),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(DataFusionError::NotImplemented(format!(
                "{insert_op} into {} is not supported",
                self.core.qualified_name()
            )));
        }
        self.core
            .scan_schema
            .logically_equivalent_names_and_types(&input.schema())?;
        Ok(StorageWriteExec::new_arc(
            Arc::clone(&self.core),
            WriteOp::Insert(input),
        ))
    }

    async fn delete_from(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let predicate = physical_predicate(state, &self.core.scan_schema, &filters)?;
        Ok(StorageWriteExec::new_arc(
            Arc::clone(&self.core),
            WriteOp::Delete(predicate),
        ))
    }

    async fn update(
        &self,
        state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if self.core.options.kind == TableKind::Usage {
            return Err(DataFusionError::NotImplemented(format!(
                "UPDATE of {}: usage events are append-only; DELETE and re-insert instead",
                self.core.qualified_name()
            )));
        }
        let df_schema = DFSchema::try_from(Arc::clone(&self.core.schema))?;
        let mut physical = Vec::with_capacity(assignments.len());
        for (column, expr) in &assignments {
            let index = self.core.schema.index_of(column).map_err(|_| {
                DataFusionError::Plan(format!(
                    "column \"{column}\" of relation \"{}\" does not exist",
                    self.core.qualified_name()
                ))
            })?;
            physical.push((index, state.create_physical_expr(expr.clone(), &df_schema)?));
        }
        let predicate = physical_predicate(state, &self.core.schema, &filters)?;
        Ok(StorageWriteExec::new_arc(
            Arc::clone(&self.core),
            WriteOp::Update(physical, predicate),
        ))
    }

    async fn truncate(&self, _state: &dyn Session) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(StorageWriteExec::new_arc(
            Arc::clone(&self.core),
            WriteOp::Truncate,
        ))
    }
}

/// The conjunction of `filters` as a physical expression over the table's schema.
fn physical_predicate(
    state: &dyn Session,
    schema: &SchemaRef,
    filters: &[Expr],
) -> DfResult<Option<Arc<dyn PhysicalExpr>>> {
    let Some(expr) = conjunction(filters.iter().cloned()) else {
        return Ok(None);
    };
    let df_schema = DFSchema::try_from(Arc::clone(schema))?;
    Ok(Some(state.create_physical_expr(expr, &df_schema)?))
}

/// For each segment, whether `predicate` may hold for some row of it (by its `ts` range).
pub(crate) fn prune(
    predicate: &Arc<dyn PhysicalExpr>,
    schema: &SchemaRef,
    segments: &[SegmentMeta],
) -> Vec<bool> {
    let all = vec![true; segments.len()];
    let Some(pruning) = PruningPredicateBuilder::new()
        .with_file_schema(Arc::clone(schema))
        .build(Arc::clone(predicate))
    else {
        return all;
    };
    let stats = SegmentStats { schema, segments };
    pruning.prune(&stats).unwrap_or(all)
}

/// Per-segment `ts` bounds and row counts, as DataFusion's pruning wants them.
struct SegmentStats<'a> {
    schema: &'a SchemaRef,
    segments: &'a [SegmentMeta],
}

impl SegmentStats<'_> {
    fn ts_values(
        &self,
        column: &Column,
        pick: fn(&SegmentMeta) -> Option<i64>,
    ) -> Option<ArrayRef> {
        if column.name != TS {
            return None;
        }
        let DataType::Timestamp(TimeUnit::Microsecond, tz) =
            self.schema.field_with_name(TS).ok()?.data_type()
        else {
            return None;
        };
        let values: TimestampMicrosecondArray = self.segments.iter().map(pick).collect();
        Some(Arc::new(values.with_timezone_opt(tz.clone())))
    }
}

impl PruningStatistics for SegmentStats<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.ts_values(column, |s| s.min_ts)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.ts_values(column, |s| s.max_ts)
    }

    fn num_containers(&self) -> usize {
        self.segments.len()
    }

    fn null_counts(&self, _column: &Column) -> Option<ArrayRef> {
        None
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        let rows: UInt64Array = self.segments.iter().map(|s| Some(s.rows)).collect();
        Some(Arc::new(rows))
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}
