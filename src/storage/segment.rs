//! Segments: immutable Parquet files holding a table's flushed rows (`data/<id:020>.parquet`), sorted
//! by `ts` when the table has one, plus the usage tables' key index beside each.
//!
//! Files are plain Parquet (ZSTD, row groups of 128Ki rows, page statistics, the Arrow schema
//! embedded), so any engine can read them and time filters prune row groups and pages.
//!
//! It owns writing and reading segment files. It must not decide which segments are live (that is
//! the manifest) nor when to write them.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::error::DataFusionError;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use object_store::path::Path;

use super::backend::Backend;
use super::keys;
use super::manifest::SegmentMeta;
use crate::error::{Error, Result};

/// Name of the time column segments are sorted and pruned by.
pub(crate) const TS: &str = "ts";
/// Rows per Parquet row group: small enough for time pruning inside a file.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Where a table's segment `id` lives.
pub(crate) fn data_path(table_dir: &Path, id: u64) -> Path {
    table_dir
        .clone()
        .join("data")
        .join(format!("{id:020}.parquet"))
}

/// Where the key index of segment `id` lives.
pub(crate) fn keys_path(table_dir: &Path, id: u64) -> Path {
    table_dir
        .clone()
        .join("data")
        .join(format!("{id:020}.keys"))
}

/// Concatenate `batches` into one batch of `schema`.
pub(crate) fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    Ok(concat_batches(schema, batches).map_err(DataFusionError::from)?)
}

/// `batch` ordered by its `ts` column (stable, so equal times keep insertion order), or unchanged
/// when it has none.
pub(crate) fn sort_by_ts(batch: RecordBatch) -> Result<RecordBatch> {
    let Some(ts) = batch.column_by_name(TS) else {
        return Ok(batch);
    };
    let indices = sort_to_indices(ts, None, None).map_err(DataFusionError::from)?;
    Ok(take_record_batch(&batch, &indices).map_err(DataFusionError::from)?)
}

/// Smallest and largest `ts` of `batch` in microseconds, when it has a microsecond `ts` column.
pub(crate) fn ts_range(batch: &RecordBatch) -> (Option<i64>, Option<i64>) {
    let Some(ts) = batch.column_by_name(TS) else {
        return (None, None);
    };
    if !matches!(
        ts.data_type(),
        DataType::Timestamp(TimeUnit::Microsecond, _)
    ) {
        return (None, None);
    }
    let values = ts.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
    let min = datafusion::arrow::compute::min(values);
    let max = datafusion::arrow::compute::max(values);
    (min, max)
}

/// Write `batch` (already sorted as wanted) as segment `id`, with its key index when
/// `with_keys`, and return its metadata.
pub(crate) async fn write(
    backend: &Backend,
    table_dir: &Path,
    id: u64,
    batch: &RecordBatch,
    with_keys: bool,
) -> Result<SegmentMeta> {
    let encoded = encode(batch, with_keys)?;
    store(backend, table_dir, id, encoded).await
}

/// A segment encoded in memory, ready for [`store`].
#[derive(Debug)]
pub(crate) struct Encoded {
    keys: Option<Vec<u8>>,
    parquet: Vec<u8>,
    rows: u64,
    min_ts: Option<i64>,
    max_ts: Option<i64>,
}

/// Encode `batch` as a segment file (and its key index when `with_keys`): the CPU part of
/// [`write`], which callers with large batches run off the async threads.
pub(crate) fn encode(batch: &RecordBatch, with_keys: bool) -> Result<Encoded> {
    let keys = if with_keys {
        Some(keys::encode(&keys::event_id_hashes(batch)?))
    } else {
        None
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut parquet = Vec::new();
    {
        let mut writer = ArrowWriter::try_new(&mut parquet, batch.schema(), Some(props))
            .map_err(DataFusionError::from)?;
        writer.write(batch).map_err(DataFusionError::from)?;
        writer.close().map_err(DataFusionError::from)?;
    }
    let (min_ts, max_ts) = ts_range(batch);
    Ok(Encoded {
        keys,
        parquet,
        rows: batch.num_rows() as u64,
        min_ts,
        max_ts,
    })
}

/// Store an encoded segment as segment `id` and return its metadata. The key index is written
/// first: a segment file never exists without the index it needs.
pub(crate) async fn store(
    backend: &Backend,
    table_dir: &Path,
    id: u64,
    encoded: Encoded,
) -> Result<SegmentMeta> {
    if let Some(keys) = encoded.keys {
        backend
            .put(&keys_path(table_dir, id), Bytes::from(keys))
            .await?;
    }
    let bytes = encoded.parquet.len() as u64;
    backend
        .put(&data_path(table_dir, id), Bytes::from(encoded.parquet))
        .await?;
    Ok(SegmentMeta {
        id,
        rows: encoded.rows,
        bytes,
        min_ts: encoded.min_ts,
        max_ts: encoded.max_ts,
    })
}

/// Read all rows of a segment as one batch of `schema`.
pub(crate) async fn read(
    backend: &Backend,
    table_dir: &Path,
    schema: &SchemaRef,
    segment: &SegmentMeta,
) -> Result<RecordBatch> {
    let path = data_path(table_dir, segment.id);
    let bytes = backend.get(&path).await?;
    let corrupt = |e: &dyn std::fmt::Display| Error::Corrupt {
        location: path.to_string(),
        message: e.to_string(),
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| corrupt(&e))?
        .build()
        .map_err(|e| corrupt(&e))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| corrupt(&e))?;
    let batches = batches
        .into_iter()
        .map(|b| {
            RecordBatch::try_new(Arc::clone(schema), b.columns().to_vec()).map_err(|e| corrupt(&e))
        })
        .collect::<Result<Vec<_>>>()?;
    concat(schema, &batches)
}

/// The event-id hashes of a segment: from its key index, or, when that is missing or damaged,
/// recomputed from the Parquet file.
pub(crate) async fn read_keys(
    backend: &Backend,
    table_dir: &Path,
    schema: &SchemaRef,
    segment: &SegmentMeta,
) -> Result<Vec<u64>> {
    let path = keys_path(table_dir, segment.id);
    if let Ok(bytes) = backend.get(&path).await
        && let Some(hashes) = keys::decode(&bytes)
        && hashes.len() as u64 == segment.rows
    {
        return Ok(hashes);
    }
    log::warn!("key index {path} is missing or damaged; rebuilding it from the segment");
    let batch = read(backend, table_dir, schema, segment).await?;
    let hashes = keys::event_id_hashes(&batch)?;
    backend
        .put(&path, Bytes::from(keys::encode(&hashes)))
        .await?;
    Ok(hashes)
}

/// Delete a segment file and its key index.
pub(crate) async fn delete(backend: &Backend, table_dir: &Path, id: u64) -> Result<()> {
    backend.delete(&keys_path(table_dir, id)).await?;
    backend.delete(&data_path(table_dir, id)).await
}
