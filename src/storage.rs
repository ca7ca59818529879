//! Durable storage: tables whose acknowledged writes survive `kill -9`, kept as open Parquet on any
//! `object_store` (a local directory by default; `file://`, `s3://`, `gs://`, `az://`).
//!
//! # Layout of a data directory
//! ```text
//! catalog/<version:020>.json               the tables: name, id, columns, options
//! tables/<id>/manifest/<version:020>.json  live segments + how far the WAL is folded in
//! tables/<id>/wal/<seq:020>.wal            write-ahead log (checksummed Arrow IPC records)
//! tables/<id>/data/<seg:020>.parquet       immutable segments (usage: sorted by ts)
//! tables/<id>/data/<seg:020>.keys          usage tables: event-id hashes of the segment
//! ```
//! `<id>` is new for every CREATE, so a re-created table never sees a dropped one's files.
//!
//! # Write path (one writer per table, a `tokio` mutex)
//! 1. Rows are cast to the table's types; NOT NULL is checked (the whole statement fails, naming the
//!    column and row); usage tables fill NULLs in defaulted columns and drop rows whose `event_id`
//!    is stored already or repeated in the statement.
//! 2. The statement's rows become one WAL record, fsynced (when `sync`) before anything is visible.
//!    Any failure here fails the statement and leaves nothing behind.
//! 3. The rows are published in a new snapshot (`Arc` swap): readers see all of the statement or
//!    none of it, and a reader keeps the snapshot it started with.
//! 4. At `flush_rows` rows (or `flush_statements` statements, or on the background interval) the
//!    unflushed rows become a Parquet segment; a new manifest version (create-if-absent: the atomic
//!    commit point) lists it and marks the WAL files folded in, which are then deleted.
//!
//! A crash at any point leaves either the old manifest plus a WAL that replays the rows, or the new
//! manifest; files no manifest references are deleted at open, and a torn WAL tail is dropped.
//!
//! # Bulk appends (COPY FROM STDIN)
//! A statement whose rows arrive over time is not held whole: every `stage_rows` rows are
//! deduplicated, sorted and written as the next rows of a segment file that no manifest lists
//! yet (invisible to readers, an orphan after a crash), and the memory is released. Chunks in time
//! order share a file up to `compaction_target_rows`. At the end one manifest version lists all of
//! the statement's files: its single commit point, after which it is visible and durable. A failed
//! statement deletes its staged files. Memory is bounded by two chunks and a file's unsent bytes
//! plus 8 bytes per row for the statement's event-id hashes. A statement that never fills a chunk
//! takes the WAL path above. See `stage.rs`.
//! Steps 2–4 run in their own task, so a cancelled statement cannot stop a write halfway (durable
//! but unpublished); like any cancel racing a commit, the statement may still have committed.
//!
//! On an object store (no append) each WAL record is its own object, and create-if-absent is the
//! store's conditional put (S3 `If-None-Match`, GCS generation match, Azure `If-None-Match`).
//!
//! One process owns a data directory: a local one is locked with an OS file lock (released when the
//! process dies); on an object store a second writer is detected when its manifest commit collides.
//!
//! # Idempotency of usage tables
//! A hash set of 64-bit XXH3 hashes of every stored `event_id` (about 12 bytes per row in memory,
//! ~1.2 GB at 100M rows), rebuilt at open from per-segment `.keys` files and the WAL. See `keys.rs`.
//!
//! # DELETE / UPDATE / TRUNCATE and compaction
//! Copy-on-write of only the segments that hold matching rows (segments are first pruned by their
//! `ts` range), committed as one manifest version. UPDATE is for config tables; usage events are
//! append-only. Background compaction merges small segments in size tiers (see `compaction.rs`)
//! without blocking readers or writers. Replaced files are deleted `gc_grace` after they leave the
//! manifest, so queries still reading an older snapshot finish.
//!
//! # Reads
//! A scan takes the current snapshot: a Parquet scan of the segments whose `ts` range can match the
//! filters (DataFusion's own pruning over per-segment min/max, then row-group and page pruning inside
//! each file), unioned with the unflushed rows held in memory.
//!
//! This module owns the catalog of durable tables and the background work. It must not parse SQL or
//! know about the wire protocol; the engine registers [`DurableTable`]s as DataFusion tables.

mod backend;
mod changes;
mod compaction;
mod constants;
mod exec;
mod keys;
mod manifest;
mod mutate;
mod options;
mod provider;
mod segment;
mod stage;
mod table;
#[cfg(test)]
mod tests;
mod wal;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::object_store::ObjectStoreUrl;
use object_store::path::Path;

#[cfg(test)]
pub(crate) use changes::ChangeLog;
pub use changes::{ChangePosition, Changes};
pub use options::{ColumnDefault, TableKind, TableOptions};
pub use provider::{DurableTable, TableStats};
pub use stage::BulkAppend;
pub use table::AppendObserver;

use backend::Backend;
pub(crate) use backend::store_for;
use manifest::{Catalog, CatalogEntry};
use table::TableCore;

use crate::error::{Error, Result};

/// How storage behaves; [`Default`] is what `finops-db serve` uses.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// fsync every acknowledged write (`--sync=on`). Off trades power-loss durability for speed;
    /// a process crash still loses nothing acknowledged.
    pub sync: bool,
    /// Unflushed rows at which a table writes a segment.
    pub flush_rows: usize,
    /// Unflushed statements at which a table writes a segment.
    pub flush_statements: usize,
    /// Rows of a bulk append (COPY FROM STDIN) held in memory before they are staged as a segment
    /// file; see `stage.rs`.
    pub stage_rows: usize,
    /// Segments smaller than this are merged, up to about this size.
    pub compaction_target_rows: usize,
    /// How often background work flushes, compacts and deletes retired files; `None` disables it.
    pub background_interval: Option<Duration>,
    /// How long a file stays after it leaves the manifest, for queries still reading it.
    pub gc_grace: Duration,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            sync: true,
            flush_rows: 256 * 1024,
            flush_statements: 1024,
            stage_rows: 32 * 1024,
            compaction_target_rows: 1024 * 1024,
            background_interval: Some(Duration::from_secs(10)),
            gc_grace: Duration::from_secs(600),
        }
    }
}

/// Distinguishes data directories opened in one process, for object store registration.
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

/// An opened data directory and its durable tables.
#[derive(Debug)]
pub struct Storage {
    backend: Arc<Backend>,
    options: StorageOptions,
    store_url: ObjectStoreUrl,
    /// Serializes DDL and holds the committed catalog.
    catalog: tokio::sync::Mutex<Catalog>,
    tables: RwLock<BTreeMap<(String, String), DurableTable>>,
}

impl Storage {
    /// Open (creating if needed) the data directory at `url_or_path` and every table in it,
    /// replaying WALs. Starts background flush/compaction when a tokio runtime is running and
    /// `options.background_interval` is set.
    pub async fn open(url_or_path: &str, options: StorageOptions) -> Result<Arc<Self>> {
        let backend = Arc::new(Backend::open(url_or_path, options.sync)?);
        let instance = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        let store_url = ObjectStoreUrl::parse(format!("finopsdb://data-{instance}"))?;
        let catalog: Catalog = manifest::read_latest(&backend, &Path::from("catalog"))
            .await?
            .unwrap_or_default();
        let mut tables = BTreeMap::new();
        for entry in &catalog.tables {
            let table = open_table(&backend, &options, &store_url, entry).await?;
            tables.insert((entry.schema.clone(), entry.name.clone()), table);
        }
        delete_dropped(&backend, &catalog).await?;
        let storage = Arc::new(Self {
            backend,
            options,
            store_url,
            catalog: tokio::sync::Mutex::new(catalog),
            tables: RwLock::new(tables),
        });
        if let (Some(interval), Ok(runtime)) = (
            storage.options.background_interval,
            tokio::runtime::Handle::try_current(),
        ) {
            runtime.spawn(background(Arc::downgrade(&storage), interval));
        }
        Ok(storage)
    }

    /// The data directory as it was given (path or URL).
    pub fn location(&self) -> &str {
        &self.backend.display
    }

    /// The object store of the data directory (for derived files kept beside the tables).
    pub fn object_store(&self) -> Arc<dyn object_store::ObjectStore> {
        Arc::clone(&self.backend.store)
    }

    /// The options this storage was opened with.
    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// Create a durable table. Fails with [`Error::TableExists`] if `schema.name` exists.
    pub async fn create_table(
        &self,
        schema_name: &str,
        table_name: &str,
        arrow_schema: SchemaRef,
        options: TableOptions,
    ) -> Result<DurableTable> {
        let mut catalog = self.catalog.lock().await;
        let key = (schema_name.to_string(), table_name.to_string());
        if catalog
            .tables
            .iter()
            .any(|t| t.schema == key.0 && t.name == key.1)
        {
            return Err(Error::TableExists(format!("{schema_name}.{table_name}")));
        }
        if options.kind == TableKind::Usage
            && (arrow_schema.index_of(keys::EVENT_ID).is_err()
                || arrow_schema.index_of(segment::TS).is_err())
        {
            return Err(Error::InvalidParameter(format!(
                "usage table {schema_name}.{table_name} needs event_id and ts columns"
            )));
        }
        let entry = CatalogEntry {
            schema: key.0.clone(),
            name: key.1.clone(),
            id: format!(
                "{}.{}-{:016x}",
                sanitize(schema_name),
                sanitize(table_name),
                rand::random::<u64>()
            ),
            columns: CatalogEntry::columns_of(&arrow_schema),
            options,
        };
        let table = open_table(&self.backend, &self.options, &self.store_url, &entry).await?;
        let mut next = catalog.clone();
        next.version += 1;
        next.tables.push(entry);
        manifest::commit(&self.backend, &Path::from("catalog"), next.version, &next).await?;
        *catalog = next;
        self.tables
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, table.clone());
        Ok(table)
    }

    /// The table `schema.name`, created with `arrow_schema` and `options` if it does not exist.
    /// An existing table must have the same columns; otherwise [`Error::InvalidParameter`].
    pub async fn ensure_table(
        &self,
        schema_name: &str,
        table_name: &str,
        arrow_schema: SchemaRef,
        options: TableOptions,
    ) -> Result<DurableTable> {
        if let Some(table) = self.table(schema_name, table_name) {
            let existing = table.core.schema.fields();
            let same = existing.len() == arrow_schema.fields().len()
                && existing.iter().zip(arrow_schema.fields()).all(|(a, b)| {
                    a.name() == b.name()
                        && a.data_type() == b.data_type()
                        && a.is_nullable() == b.is_nullable()
                });
            if !same {
                return Err(Error::InvalidParameter(format!(
                    "stored table {schema_name}.{table_name} has different columns than expected"
                )));
            }
            return Ok(table);
        }
        self.create_table(schema_name, table_name, arrow_schema, options)
            .await
    }

    /// Flush every table's WAL into segments, so the next open replays nothing. Not needed for
    /// durability; makes restarts fast after a clean shutdown.
    pub async fn close(&self) -> Result<()> {
        for (_, _, table) in self.tables() {
            table.flush().await?;
        }
        Ok(())
    }

    /// Drop a durable table and delete its files. Fails with [`Error::TableNotFound`].
    pub async fn drop_table(&self, schema_name: &str, table_name: &str) -> Result<()> {
        let mut catalog = self.catalog.lock().await;
        let mut next = catalog.clone();
        next.version += 1;
        let before = next.tables.len();
        next.tables
            .retain(|t| !(t.schema == schema_name && t.name == table_name));
        if next.tables.len() == before {
            return Err(Error::TableNotFound(format!("{schema_name}.{table_name}")));
        }
        manifest::commit(&self.backend, &Path::from("catalog"), next.version, &next).await?;
        *catalog = next;
        self.tables
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(schema_name.to_string(), table_name.to_string()));
        // Files of a dropped table are garbage from now on; a failure here is retried at next open.
        if let Err(e) = delete_dropped(&self.backend, &catalog).await {
            log::warn!("cannot delete files of dropped table {schema_name}.{table_name}: {e}");
        }
        Ok(())
    }

    /// A table by schema and name.
    pub fn table(&self, schema_name: &str, table_name: &str) -> Option<DurableTable> {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(schema_name.to_string(), table_name.to_string()))
            .cloned()
    }

    /// Every table as `(schema, name, table)`, ordered by schema then name.
    pub fn tables(&self) -> Vec<(String, String, DurableTable)> {
        self.tables
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|((s, n), t)| (s.clone(), n.clone(), t.clone()))
            .collect()
    }

    /// Flush, compact and collect garbage on every table now (what the background task does).
    pub async fn maintain(&self) -> Result<()> {
        for (_, _, table) in self.tables() {
            table.flush().await?;
            table.compact().await?;
            table.core.collect_garbage(false).await?;
        }
        Ok(())
    }
}

/// Open one catalog entry as a table.
async fn open_table(
    backend: &Arc<Backend>,
    options: &StorageOptions,
    store_url: &ObjectStoreUrl,
    entry: &CatalogEntry,
) -> Result<DurableTable> {
    let core = TableCore::open(
        entry.schema.clone(),
        entry.name.clone(),
        entry.arrow_schema()?,
        entry.options.clone(),
        Arc::clone(backend),
        options.clone(),
        Path::from("tables").join(entry.id.as_str()),
        store_url.clone(),
    )
    .await?;
    Ok(DurableTable {
        core: Arc::new(core),
    })
}

/// Delete every table directory the catalog does not list (dropped tables, aborted creates).
async fn delete_dropped(backend: &Backend, catalog: &Catalog) -> Result<()> {
    let mut unlisted = std::collections::BTreeSet::new();
    for meta in backend.list(&Path::from("tables")).await? {
        if let Some(id) = meta.location.parts().nth(1)
            && !catalog.tables.iter().any(|t| t.id == id.as_ref())
        {
            unlisted.insert(id.as_ref().to_string());
        }
    }
    for id in unlisted {
        backend
            .delete_prefix(&Path::from("tables").join(id.as_str()))
            .await?;
    }
    Ok(())
}

/// Keep a name readable in a path while making it safe for every object store.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Periodic flush, compaction and garbage collection, until the storage is dropped.
async fn background(storage: Weak<Storage>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(storage) = storage.upgrade() else {
            return;
        };
        if let Err(e) = storage.maintain().await {
            log::warn!("background storage maintenance failed, will retry: {e}");
        }
    }
}
