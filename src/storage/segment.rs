//! Segments: immutable Parquet files holding a table's flushed rows (`data/<id:020>.parquet`), sorted
//! by `ts` when the table has one, plus the usage tables' key index beside each.
//!
//! Files are plain Parquet (ZSTD on the columns it shrinks, row groups of 128Ki rows, page
//! statistics, the Arrow schema embedded), so any engine can read them and time filters prune row
//! groups and pages.
//!
//! It owns writing and reading segment files. It must not decide which segments are live (that is
//! the manifest) nor when to write them.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use datafusion::error::DataFusionError;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

use super::backend::Backend;
use super::constants::{self, ConstantTracker, Constants};
use super::keys;
use super::manifest::SegmentMeta;
use crate::error::{Error, Result};

/// Name of the time column segments are sorted and pruned by.
pub(crate) const TS: &str = "ts";
/// The usage column holding the hash of the prompt, which repeats only for redundant prompts.
const PROMPT_HASH: &str = "prompt_hash";
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
    // Exports and gateways mostly send rows in time order: then there is nothing to move.
    if ts.null_count() == 0
        && let Some(values) =
            ts.as_primitive_opt::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
        && values.values().windows(2).all(|w| w[0] <= w[1])
    {
        return Ok(batch);
    }
    let indices = sort_to_indices(ts, None, None).map_err(DataFusionError::from)?;
    Ok(take_record_batch(&batch, &indices).map_err(DataFusionError::from)?)
}

/// `batches` in `ts` order, for one chunk of a file: unchanged when each is sorted and each starts
/// no earlier than the one before ends (rows that arrive in time order are not copied), else
/// concatenated and sorted into one batch; the flag says whether rows moved.
pub(crate) fn sort_chunk(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(Vec<RecordBatch>, bool)> {
    let mut last = i64::MIN;
    let in_order = batches.iter().all(|batch| {
        let Some(values) = batch
            .column_by_name(TS)
            .filter(|ts| ts.null_count() == 0)
            .and_then(|ts| {
                ts.as_primitive_opt::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
            })
        else {
            return false;
        };
        let values = values.values();
        let sorted = values.first().is_none_or(|first| *first >= last)
            && values.windows(2).all(|w| w[0] <= w[1]);
        if let Some(end) = values.last() {
            last = *end;
        }
        sorted
    });
    if in_order || batches.is_empty() {
        return Ok((batches, false));
    }
    Ok((vec![sort_by_ts(concat(schema, &batches)?)?], true))
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

/// The usage columns whose values are mostly distinct text: the only ones ZSTD shrinks by much.
const COMPRESSED_USAGE_COLUMNS: [&str; 4] = [keys::EVENT_ID, PROMPT_HASH, "user_id", "tags"];

/// The usage text columns that keep min/max statistics: the ones a segment may hold few values
/// of (a provider's export, one model, one team's backfill), so that a filter on them can skip
/// row groups. The other text columns are unique or vary within every row group of a stream
/// sorted by `ts`, where statistics never skip anything; computing them compares every value
/// twice.
const USAGE_TEXT_COLUMNS_WITH_STATISTICS: [&str; 3] = ["provider", "model", "team"];

/// How segment files are encoded. Columns whose values are (nearly) all distinct get no
/// dictionary: `event_id` is unique and `prompt_hash` mostly is, so a dictionary for them would be
/// built per page only to be thrown away, and `ts` (sorted) is stored as deltas. Measured on 1M
/// generated usage rows: encoding 24% faster and files 8% smaller than with dictionaries on every
/// column.
///
/// Pages are ZSTD-compressed, except, in usage tables (`with_keys`), the columns outside
/// [`COMPRESSED_USAGE_COLUMNS`]: dimensions, token counts and times, which their dictionary, RLE
/// and delta encodings already make small. Those are what FinOps queries group and sum by, and
/// a scan then reads them without decompressing. Measured on 10M generated usage rows: files 7%
/// larger (44.6 against 41.5 bytes per row), `SUM(input_tokens) GROUP BY team` 9–12% and a
/// five-column aggregate 15–20% faster. Text columns outside
/// [`USAGE_TEXT_COLUMNS_WITH_STATISTICS`] have no statistics in usage tables.
fn properties(with_keys: bool, schema: &Schema) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
    for column in [keys::EVENT_ID, TS, PROMPT_HASH] {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    if with_keys {
        for field in schema.fields() {
            let name = field.name().as_str();
            if !COMPRESSED_USAGE_COLUMNS.contains(&name) {
                builder = builder
                    .set_column_compression(ColumnPath::from(name), Compression::UNCOMPRESSED);
            }
            if field.data_type() == &DataType::Utf8
                && !USAGE_TEXT_COLUMNS_WITH_STATISTICS.contains(&name)
            {
                builder = builder
                    .set_column_statistics_enabled(ColumnPath::from(name), EnabledStatistics::None);
            }
        }
    }
    builder
        .set_column_encoding(ColumnPath::from(TS), Encoding::DELTA_BINARY_PACKED)
        .build()
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
    constants: Constants,
}

/// Encode `batch` as a segment file (and its key index when `with_keys`): the CPU part of
/// [`write`], which callers with large batches run off the async threads.
pub(crate) fn encode(batch: &RecordBatch, with_keys: bool) -> Result<Encoded> {
    let keys = if with_keys {
        Some(keys::encode(&keys::event_id_hashes(batch)?))
    } else {
        None
    };
    let mut parquet = Vec::new();
    {
        let mut writer = ArrowWriter::try_new(
            &mut parquet,
            batch.schema(),
            Some(properties(with_keys, &batch.schema())),
        )
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
        constants: constants::of_batch(batch),
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
        constants: encoded.constants,
    })
}

/// Bytes of a segment file held before its upload turns into a multipart one (parts of this size).
const UPLOAD_PART_BYTES: usize = 16 << 20;

/// A segment file written a chunk at a time, for rows that arrive over time (a bulk append):
/// each chunk becomes row groups that are uploaded as soon as they are encoded, so a file of many
/// chunks never sits whole in memory and is never rewritten by compaction just to be merged.
///
/// The file appears under its name only when [`SegmentWriter::finish`] completes it, together with
/// its key index; until then it is at most an unfinished upload (on a local disk, a staging file),
/// which [`SegmentWriter::abort`] (or the next open of the table, after a crash) removes.
pub(crate) struct SegmentWriter {
    id: u64,
    path: Path,
    parquet: ArrowWriter<Vec<u8>>,
    upload: Upload,
    hashes: Option<Vec<u64>>,
    rows: u64,
    min_ts: Option<i64>,
    max_ts: Option<i64>,
    constants: ConstantTracker,
}

impl std::fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter")
            .field("id", &self.id)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl SegmentWriter {
    /// Start segment `id` of `schema` (with a key index when `with_keys`).
    pub(crate) fn new(
        backend: &Backend,
        table_dir: &Path,
        id: u64,
        schema: SchemaRef,
        with_keys: bool,
    ) -> Result<Self> {
        let path = data_path(table_dir, id);
        let properties = properties(with_keys, &schema);
        let parquet = ArrowWriter::try_new(Vec::new(), schema, Some(properties))
            .map_err(DataFusionError::from)?;
        let upload = match backend.local_path(&path) {
            Some(target) => Upload::Local(LocalUpload::new(target, backend.sync)),
            // At most two parts in flight: memory stays bounded by a few parts per file.
            None => Upload::Store(
                BufWriter::with_capacity(
                    Arc::clone(&backend.store),
                    path.clone(),
                    UPLOAD_PART_BYTES,
                )
                .with_max_concurrency(2),
            ),
        };
        Ok(Self {
            id,
            path,
            parquet,
            upload,
            hashes: with_keys.then(Vec::new),
            rows: 0,
            min_ts: None,
            max_ts: None,
            constants: ConstantTracker::default(),
        })
    }

    /// Rows written so far.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// The largest `ts` written so far, if any.
    pub(crate) fn max_ts(&self) -> Option<i64> {
        self.max_ts
    }

    /// Encode `batches` (sorted as wanted, one after the other) as the next rows of the file and
    /// return the bytes of the row groups they completed (row groups have [`ROW_GROUP_ROWS`]
    /// rows, the last one what is left), for [`SegmentWriter::upload`]. `hashes` are their
    /// event-id hashes in row order when the caller has them. The CPU part: callers run it off the
    /// async threads.
    pub(crate) fn encode(
        &mut self,
        batches: &[RecordBatch],
        hashes: Option<Vec<u64>>,
    ) -> Result<Bytes> {
        if let (Some(all), Some(given)) = (self.hashes.as_mut(), hashes.as_ref()) {
            all.extend_from_slice(given);
        }
        for batch in batches {
            if let (Some(all), None) = (self.hashes.as_mut(), hashes.as_ref()) {
                all.extend(keys::event_id_hashes(batch)?);
            }
            self.parquet.write(batch).map_err(DataFusionError::from)?;
            let (min, max) = ts_range(batch);
            self.min_ts = match (self.min_ts, min) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.max_ts = self.max_ts.max(max);
            self.constants.observe(batch);
            self.rows += batch.num_rows() as u64;
        }
        Ok(Bytes::from(std::mem::take(self.parquet.inner_mut())))
    }

    /// Send encoded bytes on to the file.
    pub(crate) async fn upload(&mut self, bytes: Bytes) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        match &mut self.upload {
            Upload::Store(upload) => upload
                .put(bytes)
                .await
                .map_err(|e| Error::object_store(self.path.as_ref(), e)),
            Upload::Local(upload) => upload.write(bytes).await,
        }
    }

    /// Write the footer and the key index, complete the file and make both durable; returns the
    /// segment's metadata. On failure nothing of the segment is left.
    pub(crate) async fn finish(
        mut self,
        backend: &Backend,
        table_dir: &Path,
    ) -> Result<SegmentMeta> {
        let id = self.id;
        match self.complete(backend, table_dir).await {
            Ok(meta) => Ok(meta),
            Err(e) => {
                self.upload.abort().await;
                let _ = delete(backend, table_dir, id).await;
                Err(e)
            }
        }
    }

    async fn complete(&mut self, backend: &Backend, table_dir: &Path) -> Result<SegmentMeta> {
        self.parquet.finish().map_err(DataFusionError::from)?;
        let footer = Bytes::from(std::mem::take(self.parquet.inner_mut()));
        self.upload(footer).await?;
        // The key index and the file are made durable at the same time: neither is referenced
        // before the manifest that lists the segment is committed, after both.
        let write_keys = async {
            match self.hashes.take() {
                Some(hashes) => {
                    backend
                        .put(
                            &keys_path(table_dir, self.id),
                            Bytes::from(keys::encode(&hashes)),
                        )
                        .await
                }
                None => Ok(()),
            }
        };
        let complete_file = async {
            match &mut self.upload {
                Upload::Store(upload) => {
                    upload
                        .shutdown()
                        .await
                        .map_err(|e| Error::io(self.path.to_string(), e))?;
                    backend.fsync(&self.path).await
                }
                Upload::Local(upload) => upload.complete().await,
            }
        };
        tokio::try_join!(write_keys, complete_file)?;
        Ok(SegmentMeta {
            id: self.id,
            rows: self.rows,
            bytes: self.parquet.bytes_written() as u64,
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            constants: std::mem::take(&mut self.constants).finish(),
        })
    }

    /// Give the segment up: drop the unfinished upload and anything already under its names.
    pub(crate) async fn abort(mut self, backend: &Backend, table_dir: &Path) {
        self.upload.abort().await;
        let _ = delete(backend, table_dir, self.id).await;
    }
}

/// Where the bytes of a [`SegmentWriter`] go.
enum Upload {
    /// A multipart upload to the object store.
    Store(BufWriter),
    /// A file in the local data directory.
    Local(LocalUpload),
}

impl Upload {
    /// Drop what was written so far.
    async fn abort(&mut self) {
        match self {
            Upload::Store(upload) => {
                let _ = upload.abort().await;
            }
            Upload::Local(upload) => upload.abort().await,
        }
    }
}

/// Bytes written to a local segment file between two flushes of its pages to disk.
const LOCAL_FLUSH_BYTES: u64 = 8 << 20;

/// A segment file written in the local data directory: under a staging name (`<name>#w`, which
/// the table's open removes after a crash) until [`LocalUpload::complete`] renames it into place.
/// With `sync`, written pages are flushed to disk in the background while the file grows, so that
/// completing it has only the last few megabytes left to sync.
struct LocalUpload {
    target: std::path::PathBuf,
    staging: std::path::PathBuf,
    sync: bool,
    /// Created by the first write.
    file: Option<Arc<std::fs::File>>,
    /// Bytes written since the last flush started.
    unflushed: u64,
    /// The flush running in the background, if any.
    flushing: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl LocalUpload {
    fn new(target: std::path::PathBuf, sync: bool) -> Self {
        let mut staging = target.clone().into_os_string();
        staging.push("#w");
        Self {
            target,
            staging: staging.into(),
            sync,
            file: None,
            unflushed: 0,
            flushing: None,
        }
    }

    fn io_error(&self, e: std::io::Error) -> Error {
        Error::io(self.staging.display().to_string(), e)
    }

    /// Append `bytes` to the file.
    async fn write(&mut self, bytes: Bytes) -> Result<()> {
        use std::io::Write;
        let file = self.file.clone();
        let staging = self.staging.clone();
        let len = bytes.len() as u64;
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<Arc<std::fs::File>> {
            let file = match file {
                Some(file) => file,
                None => Arc::new(create_file(&staging)?),
            };
            (&*file).write_all(&bytes)?;
            Ok(file)
        })
        .await
        .map_err(|e| Error::Internal(format!("segment write task failed: {e}")))?
        .map_err(|e| self.io_error(e))?;
        self.unflushed += len;
        if self.sync
            && self.unflushed >= LOCAL_FLUSH_BYTES
            && self.flushing.as_ref().is_none_or(|f| f.is_finished())
        {
            self.await_flush().await?;
            let file = Arc::clone(&file);
            self.flushing = Some(tokio::task::spawn_blocking(move || file.sync_data()));
            self.unflushed = 0;
        }
        self.file = Some(file);
        Ok(())
    }

    /// Wait for the background flush, if any, and report its failure.
    async fn await_flush(&mut self) -> Result<()> {
        if let Some(flush) = self.flushing.take() {
            flush
                .await
                .map_err(|e| Error::Internal(format!("segment flush task failed: {e}")))?
                .map_err(|e| self.io_error(e))?;
        }
        Ok(())
    }

    /// Make the file durable (with `sync`) and give it its name.
    async fn complete(&mut self) -> Result<()> {
        self.await_flush().await?;
        let file = self.file.take();
        let (staging, target, sync) = (self.staging.clone(), self.target.clone(), self.sync);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let file = match file {
                Some(file) => file,
                None => Arc::new(create_file(&staging)?),
            };
            if sync {
                file.sync_all()?;
            }
            drop(file);
            std::fs::rename(&staging, &target)?;
            if sync && let Some(dir) = target.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Internal(format!("segment write task failed: {e}")))?
        .map_err(|e| self.io_error(e))
    }

    /// Remove the staging file.
    async fn abort(&mut self) {
        if let Some(flush) = self.flushing.take() {
            let _ = flush.await;
        }
        self.file = None;
        let staging = self.staging.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(staging)).await;
    }
}

/// Create (or truncate) the file at `path`, and its directory if missing.
fn create_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    };
    match create() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            create()
        }
        other => other,
    }
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
