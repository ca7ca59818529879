//! What a materialized view keeps in the object store: one JSON manifest per view (its definition,
//! refresh state and the name of its current result file) and the result as one Parquet file.
//!
//! Layout: `<prefix>/<schema>/<view>/manifest.json` and `<prefix>/<schema>/<view>/data-<n>.parquet`.
//! A refresh writes a new data file, then the manifest (a single `put`, atomic in every
//! `object_store` backend), then deletes the old file; a crash in between leaves only an orphan that
//! [`remove_orphans`] clears. It must not plan or run queries.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::ChangePosition;

const MANIFEST: &str = "manifest.json";
const FORMAT_VERSION: u32 = 1;

/// The row count of one time bucket of an incremental view's input, as of the last refresh.
/// The bucket is its Arrow value as an integer (days for dates, the unit for timestamps).
pub type BucketCount = (Option<i64>, u64);

/// The persisted state of one materialized view.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Layout version, so that a later release can migrate.
    pub version: u32,
    /// Catalog (database) the view lives in.
    pub catalog: String,
    /// Schema the view lives in.
    pub schema: String,
    /// The view's own name.
    pub table: String,
    /// The defining query.
    pub definition: String,
    /// `manual`, `auto` or an interval, as [`super::RefreshMode`] prints it.
    pub refresh: String,
    /// Whether the definition allows incremental refresh.
    pub incremental: bool,
    /// Schema-qualified tables the query reads, views expanded.
    pub depends_on: Vec<String>,
    /// Current result file, relative to the view's directory; `None` before the first refresh.
    pub data_file: Option<String>,
    /// Bumped on every refresh that writes a new file.
    pub generation: u64,
    /// When the result was last brought up to date, in microseconds since the epoch.
    pub last_refresh_micros: Option<i64>,
    /// How long that refresh took.
    pub refresh_ms: u64,
    /// Rows in the result.
    pub rows: u64,
    /// Size of the result file.
    pub bytes: u64,
    /// A base table changed since the last refresh.
    pub stale: bool,
    /// A base table changed in place (prices, rules): the next refresh must be full.
    pub needs_full: bool,
    /// Row counts per bucket of the input at the last refresh (incremental views only).
    pub bucket_counts: Option<Vec<BucketCount>>,
    /// Where each table of `depends_on` whose changes are tracked was in its change history
    /// when the last refresh read it (see [`super::ChangeFeed`]).
    #[serde(default)]
    pub positions: BTreeMap<String, ChangePosition>,
}

impl Manifest {
    /// A fresh manifest for a view not yet refreshed.
    pub fn new(catalog: &str, schema: &str, table: &str, definition: &str, refresh: &str) -> Self {
        Manifest {
            version: FORMAT_VERSION,
            catalog: catalog.to_string(),
            schema: schema.to_string(),
            table: table.to_string(),
            definition: definition.to_string(),
            refresh: refresh.to_string(),
            incremental: false,
            depends_on: Vec::new(),
            data_file: None,
            generation: 0,
            last_refresh_micros: None,
            refresh_ms: 0,
            rows: 0,
            bytes: 0,
            stale: false,
            needs_full: false,
            bucket_counts: None,
            positions: BTreeMap::new(),
        }
    }

    /// `schema.view`, the name users see.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// The directory of view `schema.table` under `prefix`.
pub fn view_dir(prefix: &Path, schema: &str, table: &str) -> Path {
    prefix.clone().join(schema).join(table)
}

/// Write `manifest` into `dir`, replacing the previous one atomically.
pub async fn write_manifest(
    store: &dyn ObjectStore,
    dir: &Path,
    manifest: &Manifest,
) -> Result<()> {
    let location = dir.clone().join(MANIFEST);
    let json = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::Internal(format!("cannot encode view manifest: {e}")))?;
    store
        .put(&location, PutPayload::from(json))
        .await
        .map_err(|e| Error::object_store(location.to_string(), e))?;
    Ok(())
}

/// Every manifest under `prefix`, with its directory.
pub async fn read_manifests(
    store: &dyn ObjectStore,
    prefix: &Path,
) -> Result<Vec<(Path, Manifest)>> {
    let objects: Vec<_> = store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|e| Error::object_store(prefix.to_string(), e))?;
    let mut manifests = Vec::new();
    for object in objects {
        if object.location.filename() != Some(MANIFEST) {
            continue;
        }
        let bytes = read(store, &object.location).await?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Internal(format!(
                "materialized view manifest {} is unreadable: {e}",
                object.location
            ))
        })?;
        let dir = Path::from_iter(
            object
                .location
                .parts()
                .take(object.location.parts().count() - 1),
        );
        manifests.push((dir, manifest));
    }
    Ok(manifests)
}

/// Delete every object under `prefix` that no manifest references: result files of refreshes
/// that crashed before their manifest was written, and views whose drop was interrupted.
pub async fn remove_orphans(
    store: &dyn ObjectStore,
    prefix: &Path,
    live: &[(Path, Manifest)],
) -> Result<()> {
    let objects: Vec<_> = store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|e| Error::object_store(prefix.to_string(), e))?;
    for object in objects {
        let referenced = live.iter().any(|(dir, m)| {
            object.location == dir.clone().join(MANIFEST)
                || m.data_file
                    .as_deref()
                    .is_some_and(|f| object.location == dir.clone().join(f))
        });
        if !referenced {
            delete(store, &object.location).await?;
        }
    }
    Ok(())
}

/// Delete everything in a view's directory.
pub async fn remove_dir(store: &dyn ObjectStore, dir: &Path) -> Result<()> {
    // The manifest goes first: without it the rest is an orphan that the next open clears.
    delete(store, &dir.clone().join(MANIFEST)).await?;
    let objects: Vec<_> = store
        .list(Some(dir))
        .try_collect()
        .await
        .map_err(|e| Error::object_store(dir.to_string(), e))?;
    for object in objects {
        delete(store, &object.location).await?;
    }
    Ok(())
}

/// Delete one object; a missing object is fine.
pub async fn delete(store: &dyn ObjectStore, location: &Path) -> Result<()> {
    match store.delete(location).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::object_store(location.to_string(), e)),
    }
}

/// Encode `batches` as one Parquet file at `dir/file`; returns its size.
pub async fn write_result(
    store: &dyn ObjectStore,
    dir: &Path,
    file: &str,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<u64> {
    let mut buffer = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buffer, Arc::clone(schema), None)
        .map_err(|e| Error::DataFusion(e.into()))?;
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| Error::DataFusion(e.into()))?;
    }
    writer.close().map_err(|e| Error::DataFusion(e.into()))?;
    let size = buffer.len() as u64;
    let location = dir.clone().join(file);
    store
        .put(&location, PutPayload::from(buffer))
        .await
        .map_err(|e| Error::object_store(location.to_string(), e))?;
    Ok(size)
}

/// Read a result file back: its schema and batches.
pub async fn read_result(
    store: &dyn ObjectStore,
    dir: &Path,
    file: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let location = dir.clone().join(file);
    let bytes = read(store, &location).await?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| Error::DataFusion(e.into()))?;
    let schema = Arc::clone(builder.schema());
    let reader = builder.build().map_err(|e| Error::DataFusion(e.into()))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::DataFusion(e.into()))?;
    Ok((schema, batches))
}

async fn read(store: &dyn ObjectStore, location: &Path) -> Result<Bytes> {
    let result = store
        .get(location)
        .await
        .map_err(|e| Error::object_store(location.to_string(), e))?;
    result
        .bytes()
        .await
        .map_err(|e| Error::object_store(location.to_string(), e))
}
