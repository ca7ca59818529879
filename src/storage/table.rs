//! A durable table: its options, its published snapshot, and the serialized write path (validate,
//! deduplicate, log, publish, flush).
//!
//! It owns the order of operations that makes a statement atomic and durable: a statement becomes
//! visible only after its WAL record is durable, in one snapshot swap. It must not plan SQL (that is
//! `provider.rs`) nor rewrite segments (that is `mutate.rs` and `compaction.rs`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::compute::{
    CastOptions, cast_with_options, filter_record_batch, is_not_null,
};
use datafusion::arrow::datatypes::{SchemaRef, TimestampMicrosecondType};
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Expr, lit};
use object_store::path::Path;

use super::StorageOptions;
use super::backend::Backend;
use super::changes::ChangeLog;
use super::keys::{self, KeySet};
use super::manifest::{self, SegmentMeta, TableManifest};
use super::options::{TableKind, TableOptions};
use super::segment;
use super::wal::Wal;
use crate::error::{Error, Result};

/// Casting that fails on a value that does not convert, instead of storing NULL in its place.
pub(crate) const STRICT_CAST: CastOptions<'static> = CastOptions {
    safe: false,
    format_options: datafusion::arrow::util::display::FormatOptions::new(),
};

/// Run a write to completion even if the statement that started it is cancelled: a write dropped
/// halfway (WAL record durable but not published, manifest committed but not adopted) would leave
/// memory and storage disagreeing.
pub(crate) async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(work)
        .await
        .map_err(|e| Error::Internal(format!("storage write task failed: {e}")))?
}

/// What readers see: immutable, swapped whole on every commit.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Live segments.
    pub(crate) segments: Vec<SegmentMeta>,
    /// Rows in the WAL not yet flushed to a segment, one batch per statement.
    pub(crate) mem: Vec<RecordBatch>,
}

impl Snapshot {
    pub(crate) fn mem_rows(&self) -> usize {
        self.mem.iter().map(RecordBatch::num_rows).sum()
    }
}

/// State only the (single) writer touches.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) manifest: TableManifest,
    pub(crate) wal: Wal,
    /// Event-id hashes of every stored row, for usage tables.
    pub(crate) keys: Option<KeySet>,
    /// Bumped whenever hashes are added to `keys`, so a staged append can tell whether its checks
    /// against stored keys still hold at commit (see `stage.rs`).
    pub(crate) keys_added: u64,
    /// Bumped whenever hashes are removed from `keys` (DELETE, TRUNCATE).
    pub(crate) keys_removed: u64,
}

/// Everything a durable table is; shared by the provider, plans and background work.
#[derive(Debug)]
pub(crate) struct TableCore {
    pub(crate) schema_name: String,
    pub(crate) name: String,
    pub(crate) schema: SchemaRef,
    /// The schema scans produce: usage tables read text as `Utf8View`
    /// ([`crate::schema::view_types`]); other tables read what they store.
    pub(crate) scan_schema: SchemaRef,
    pub(crate) options: TableOptions,
    pub(crate) backend: Arc<Backend>,
    pub(crate) settings: StorageOptions,
    /// `tables/<id>` under the data directory.
    pub(crate) dir: Path,
    /// The URL this data directory is registered under in a session's object store registry.
    pub(crate) store_url: ObjectStoreUrl,
    pub(crate) column_defaults: HashMap<String, Expr>,
    snapshot: RwLock<Arc<Snapshot>>,
    pub(crate) writer: tokio::sync::Mutex<Writer>,
    /// Segments no manifest references any more, kept for readers of older snapshots until
    /// `gc_grace` has passed.
    retired: std::sync::Mutex<Vec<(Instant, u64)>>,
    /// Told of every appended statement's inserted rows once they are durable and visible.
    pub(crate) observer: std::sync::RwLock<Option<AppendObserver>>,
    /// What changed since when; recorded after each change is published.
    pub(crate) changes: std::sync::Mutex<ChangeLog>,
}

/// A callback given the rows a statement inserted (after idempotency), once they are durable
/// and visible to readers, or `None` when rows were appended without being held in memory (a
/// bulk append). It runs inside the append and must be quick and must not block.
#[derive(Clone)]
pub struct AppendObserver(pub Arc<ObserverFn>);

/// What an [`AppendObserver`] calls.
pub type ObserverFn = dyn Fn(Option<&RecordBatch>) + Send + Sync;

impl std::fmt::Debug for AppendObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppendObserver")
    }
}

impl TableCore {
    /// Open a table: read its manifest, rebuild the key set, replay the WAL, delete orphans.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn open(
        schema_name: String,
        name: String,
        schema: SchemaRef,
        options: TableOptions,
        backend: Arc<Backend>,
        settings: StorageOptions,
        dir: Path,
        store_url: ObjectStoreUrl,
    ) -> Result<Self> {
        let manifest: TableManifest =
            manifest::read_latest(&backend, &dir.clone().join("manifest"))
                .await?
                .unwrap_or_default();
        let usage = options.kind == TableKind::Usage;
        let mut key_set = usage.then(KeySet::default);
        if let Some(set) = key_set.as_mut() {
            // One allocation up front: growing by doubling would briefly need 1.5x the memory.
            set.reserve(manifest.segments.iter().map(|s| s.rows as usize).sum());
            for seg in &manifest.segments {
                set.extend(segment::read_keys(&backend, &dir, &schema, seg).await?);
            }
        }
        let replay = super::wal::replay(
            &backend,
            &dir.clone().join("wal"),
            manifest.wal_flushed_through,
        )
        .await?;
        let mut mem = Vec::new();
        for statement in replay.statements {
            for batch in statement {
                let batch = RecordBatch::try_new(Arc::clone(&schema), batch.columns().to_vec())
                    .map_err(|e| Error::Corrupt {
                        location: format!("{dir}/wal"),
                        message: format!("WAL rows do not fit the table: {e}"),
                    })?;
                if let Some(set) = key_set.as_mut() {
                    set.extend(keys::event_id_hashes(&batch)?);
                }
                mem.push(batch.clone());
            }
        }
        delete_orphans(&backend, &dir, &manifest).await?;
        let column_defaults = options
            .defaults
            .iter()
            .map(|(column, default)| (column.clone(), lit(default.scalar())))
            .collect();
        let wal = Wal::new(
            Arc::clone(&backend),
            dir.clone().join("wal"),
            replay.max_seq + 1,
        );
        let snapshot = Snapshot {
            segments: manifest.segments.clone(),
            mem,
        };
        let scan_schema = if usage {
            crate::schema::view_types(&schema)
        } else {
            Arc::clone(&schema)
        };
        Ok(Self {
            schema_name,
            name,
            schema,
            scan_schema,
            options,
            backend,
            settings,
            dir,
            store_url,
            column_defaults,
            snapshot: RwLock::new(Arc::new(snapshot)),
            writer: tokio::sync::Mutex::new(Writer {
                manifest,
                wal,
                keys: key_set,
                keys_added: 0,
                keys_removed: 0,
            }),
            retired: std::sync::Mutex::new(Vec::new()),
            observer: std::sync::RwLock::new(None),
            changes: std::sync::Mutex::new(ChangeLog::default()),
        })
    }

    /// The current snapshot.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Make `next` what readers see.
    pub(crate) fn publish(&self, next: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
    }

    /// `schema.table`, for messages.
    pub(crate) fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema_name, self.name)
    }

    /// Append one statement's rows; returns how many were inserted (after idempotency).
    pub(crate) async fn append(&self, batches: Vec<RecordBatch>) -> Result<u64> {
        let batches = self.prepare(batches)?;
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(0);
        }
        let batch = segment::concat(&self.schema, &batches)?;
        // Hashing is the costly part of idempotency; do it before taking the writer lock.
        let hashes = match self.options.kind {
            TableKind::Usage => Some(keys::event_id_hashes(&batch)?),
            TableKind::Config => None,
        };
        let mut writer = self.writer.lock().await;
        let (batch, hashes) = match (writer.keys.as_ref(), hashes) {
            (Some(stored), Some(hashes)) => {
                let mut seen = KeySet::with_capacity_and_hasher(hashes.len(), Default::default());
                let keep: BooleanArray = hashes
                    .iter()
                    .map(|h| Some(!stored.contains(h) && seen.insert(*h)))
                    .collect();
                let kept = filter_record_batch(&batch, &keep).map_err(DataFusionError::from)?;
                let kept_hashes: Vec<u64> = hashes
                    .iter()
                    .zip(keep.values().iter())
                    .filter_map(|(h, k)| k.then_some(*h))
                    .collect();
                (kept, kept_hashes)
            }
            _ => (batch, Vec::new()),
        };
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(0);
        }
        writer
            .wal
            .append(&self.schema, std::slice::from_ref(&batch))
            .await?;
        // Durable from here on: publish, and never fail the statement after this point.
        if let Some(stored) = writer.keys.as_mut() {
            stored.extend(hashes);
            writer.keys_added += 1;
        }
        let current = self.snapshot();
        let mut mem = current.mem.clone();
        mem.push(batch.clone());
        let mem_rows = current.mem_rows() + rows;
        let mem_batches = mem.len();
        self.publish(Snapshot {
            segments: current.segments.clone(),
            mem,
        });
        self.record_append(segment::ts_range(&batch).0);
        self.notify_appended(Some(&batch));
        let due =
            mem_rows >= self.settings.flush_rows || mem_batches >= self.settings.flush_statements;
        if due && let Err(e) = self.flush_locked(&mut writer).await {
            log::warn!(
                "flush of {} failed, rows stay in the WAL: {e}",
                self.qualified_name()
            );
        }
        Ok(rows as u64)
    }

    /// Record a published append whose smallest `ts` is `min_ts` (`None`: unknown).
    pub(crate) fn record_append(&self, min_ts: Option<i64>) {
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .appended(min_ts);
    }

    /// Record a published change of rows in place (DELETE, UPDATE, TRUNCATE, replacement).
    pub(crate) fn record_rewrite(&self) {
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rewritten();
    }

    /// Tell the append observer, if any, of a statement's inserted rows (`None`: not in memory).
    pub(crate) fn notify_appended(&self, batch: Option<&RecordBatch>) {
        if let Ok(observer) = self.observer.read()
            && let Some(observer) = observer.as_ref()
        {
            (observer.0)(batch);
        }
    }

    /// Conform a statement's batches to the table: cast columns, check NOT NULL (naming the column
    /// and the 1-based row of the statement), fill defaults for NULLs in usage tables.
    pub(crate) fn prepare(&self, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        self.prepare_from(batches, 0)
    }

    /// [`Self::prepare`] for batches whose first row is row `row_offset + 1` of the statement.
    pub(crate) fn prepare_from(
        &self,
        batches: Vec<RecordBatch>,
        mut row_offset: usize,
    ) -> Result<Vec<RecordBatch>> {
        let fields = self.schema.fields();
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            if batch.num_columns() != fields.len() {
                return Err(Error::InvalidValue {
                    message: format!(
                        "{} has {} columns, the rows have {}",
                        self.qualified_name(),
                        fields.len(),
                        batch.num_columns()
                    ),
                });
            }
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.len());
            for (field, column) in fields.iter().zip(batch.columns()) {
                let mut column = if column.data_type() == field.data_type() {
                    Arc::clone(column)
                } else {
                    cast_with_options(column, field.data_type(), &STRICT_CAST).map_err(|e| {
                        Error::InvalidValue {
                            message: format!("column \"{}\": {e}", field.name()),
                        }
                    })?
                };
                if column.null_count() > 0
                    && self.options.kind == TableKind::Usage
                    && let Some((_, default)) = self
                        .options
                        .defaults
                        .iter()
                        .find(|(c, _)| c == field.name())
                {
                    let value = default.scalar().cast_to(field.data_type())?.to_scalar()?;
                    let present = is_not_null(&column).map_err(DataFusionError::from)?;
                    column = zip(&present, &column, &value).map_err(DataFusionError::from)?;
                }
                let required = !field.is_nullable() || self.options.not_null.contains(field.name());
                if required && column.null_count() > 0 {
                    let first = (0..column.len()).find(|&i| column.is_null(i)).unwrap_or(0);
                    return Err(Error::NotNullViolation {
                        message: format!(
                            "null value in column \"{}\" of relation \"{}\" violates not-null constraint (row {})",
                            field.name(),
                            self.qualified_name(),
                            row_offset + first + 1
                        ),
                    });
                }
                columns.push(column);
            }
            if self.options.kind == TableKind::Usage
                && let Some(ts) = self.schema.index_of(segment::TS).ok().map(|i| &columns[i])
            {
                self.check_time_range(ts, row_offset)?;
            }
            row_offset += batch.num_rows();
            out.push(
                RecordBatch::try_new(Arc::clone(&self.schema), columns)
                    .map_err(DataFusionError::from)?,
            );
        }
        Ok(out)
    }

    /// Usage times must lie where every query can compute with them: date and time functions
    /// work in nanoseconds, whose 64 bits span the years 1677 to 2262, so one row outside would
    /// fail every later query over its period (weekly and monthly buckets, FOCUS export).
    fn check_time_range(&self, ts: &ArrayRef, row_offset: usize) -> Result<()> {
        let Some(values) = ts.as_primitive_opt::<TimestampMicrosecondType>() else {
            return Ok(());
        };
        let (low, high) = (i64::MIN / 1000, i64::MAX / 1000);
        let Some((row, value)) = values
            .iter()
            .enumerate()
            .find_map(|(i, v)| v.filter(|v| *v < low || *v > high).map(|v| (i, v)))
        else {
            return Ok(());
        };
        let shown = chrono::DateTime::from_timestamp_micros(value)
            .map_or_else(|| format!("{value} µs"), |t| t.to_rfc3339());
        Err(Error::DatetimeOutOfRange {
            message: format!(
                "timestamp out of range in column \"{}\" of relation \"{}\": {shown} (row {}); \
                 usage times must lie between 1677-09-22 and 2262-04-11",
                segment::TS,
                self.qualified_name(),
                row_offset + row + 1
            ),
        })
    }

    /// Fold the WAL's rows into a new segment. Caller holds the writer lock.
    pub(crate) async fn flush_locked(&self, writer: &mut Writer) -> Result<()> {
        let current = self.snapshot();
        if current.mem.is_empty() {
            return Ok(());
        }
        let through = writer.wal.rotate();
        let batch = segment::concat(&self.schema, &current.mem)?;
        let batch = if self.options.kind == TableKind::Usage {
            segment::sort_by_ts(batch)?
        } else {
            batch
        };
        let mut next = writer.manifest.clone();
        let id = next.next_segment;
        next.next_segment += 1;
        let meta =
            segment::write(&self.backend, &self.dir, id, &batch, writer.keys.is_some()).await?;
        next.segments.push(meta);
        next.wal_flushed_through = through;
        self.commit(writer, next, Vec::new(), &[]).await?;
        if let Err(e) = writer.wal.delete_through(through).await {
            log::warn!(
                "cannot delete flushed WAL files of {}: {e}",
                self.qualified_name()
            );
        }
        Ok(())
    }

    /// Commit `next` as the new manifest, publish it with `mem` as the unflushed rows, and retire
    /// `replaced` segments. If the commit fails, segments of `next` that were new are deleted and
    /// nothing changes. Caller holds the writer lock.
    pub(crate) async fn commit(
        &self,
        writer: &mut Writer,
        mut next: TableManifest,
        mem: Vec<RecordBatch>,
        replaced: &[u64],
    ) -> Result<()> {
        next.version = writer.manifest.version + 1;
        let manifest_dir = self.dir.clone().join("manifest");
        if let Err(e) = manifest::commit(&self.backend, &manifest_dir, next.version, &next).await {
            for seg in &next.segments {
                if !writer.manifest.segments.iter().any(|s| s.id == seg.id) {
                    let _ = segment::delete(&self.backend, &self.dir, seg.id).await;
                }
            }
            return Err(e);
        }
        self.publish(Snapshot {
            segments: next.segments.clone(),
            mem,
        });
        writer.manifest = next;
        let now = Instant::now();
        self.retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(replaced.iter().map(|id| (now, *id)));
        Ok(())
    }

    /// Delete retired segments older than the grace period (all of them with `force`).
    pub(crate) async fn collect_garbage(&self, force: bool) -> Result<()> {
        let due: Vec<u64> = {
            let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
            let grace = self.settings.gc_grace;
            let (due, keep): (Vec<_>, Vec<_>) = retired
                .drain(..)
                .partition(|(when, _)| force || when.elapsed() >= grace);
            *retired = keep;
            due.into_iter().map(|(_, id)| id).collect()
        };
        for id in due {
            segment::delete(&self.backend, &self.dir, id).await?;
        }
        Ok(())
    }
}

/// Delete data files no manifest references: leftovers of a crash between writing a segment and
/// committing it, or of retired segments not yet collected. Only safe while nobody reads the table.
async fn delete_orphans(backend: &Backend, dir: &Path, manifest: &TableManifest) -> Result<()> {
    let data = dir.clone().join("data");
    for meta in backend.list(&data).await? {
        let live = meta
            .location
            .filename()
            .and_then(|name| name.split('.').next())
            .and_then(|stem| stem.parse::<u64>().ok())
            .is_some_and(|id| manifest.segments.iter().any(|s| s.id == id))
            && meta
                .location
                .filename()
                .is_some_and(|n| n.ends_with(".parquet") || n.ends_with(".keys"));
        if !live {
            backend.delete(&meta.location).await?;
        }
    }
    // A segment write cut short by a crash leaves, on a local disk, a staging file
    // (`<name>#w`, or `<name>#<n>` from the store's multipart upload) that the store does not
    // list.
    if let Some(local) = backend.local_path(&data) {
        let entries = match std::fs::read_dir(&local) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(local.display().to_string(), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(local.display().to_string(), e))?;
            if entry.file_name().to_string_lossy().contains('#') {
                let path = entry.path();
                std::fs::remove_file(&path)
                    .map_err(|e| Error::io(path.display().to_string(), e))?;
            }
        }
    }
    Ok(())
}
