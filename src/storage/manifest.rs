//! Manifests: the catalog of durable tables and, per table, the list of live segments. Both are JSON
//! objects under versioned names (`<dir>/<version:020>.json`) written with create-if-absent, so
//! writing version `n + 1` is the single atomic commit point and a reader takes the highest version.
//!
//! It owns the on-disk shape of manifests and how versions are read, committed and trimmed. It must
//! not read or write data files or the WAL.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::TableOptions;
use super::backend::Backend;
use super::constants::Constants;
use crate::error::{Error, Result};

/// How many committed versions to keep behind the newest, for post-mortems.
const KEEP_OLD_VERSIONS: u64 = 2;

/// The catalog: every durable table of the data directory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Catalog {
    /// Version of this catalog (its object name).
    pub(crate) version: u64,
    /// The tables.
    pub(crate) tables: Vec<CatalogEntry>,
}

/// One durable table in the catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CatalogEntry {
    /// SQL schema (namespace) name.
    pub(crate) schema: String,
    /// Table name.
    pub(crate) name: String,
    /// Directory of the table under `tables/`; unique per creation so a re-created table never
    /// sees a dropped one's leftovers.
    pub(crate) id: String,
    /// Columns.
    pub(crate) columns: Vec<ColumnEntry>,
    /// Kind, constraints and defaults.
    pub(crate) options: TableOptions,
}

/// A column as stored in the catalog.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ColumnEntry {
    name: String,
    /// Arrow's own text form of the type, e.g. `Timestamp(µs, "UTC")`.
    data_type: String,
    nullable: bool,
}

impl CatalogEntry {
    /// Columns of an Arrow schema, in catalog form.
    pub(crate) fn columns_of(schema: &Schema) -> Vec<ColumnEntry> {
        schema
            .fields()
            .iter()
            .map(|f| ColumnEntry {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
                nullable: f.is_nullable(),
            })
            .collect()
    }

    /// The Arrow schema of this table.
    pub(crate) fn arrow_schema(&self) -> Result<SchemaRef> {
        let fields = self
            .columns
            .iter()
            .map(|c| {
                let data_type: DataType = c.data_type.parse().map_err(|e| Error::Corrupt {
                    location: format!("catalog entry {}.{}", self.schema, self.name),
                    message: format!("column {} has unreadable type {}: {e}", c.name, c.data_type),
                })?;
                Ok(Field::new(&c.name, data_type, c.nullable))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }
}

/// The live state of one table: which segment files hold its rows, and how far the WAL has been
/// folded into them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TableManifest {
    /// Version of this manifest (its object name).
    pub(crate) version: u64,
    /// Live segments, oldest first.
    pub(crate) segments: Vec<SegmentMeta>,
    /// WAL files with a sequence number up to this one are fully contained in `segments`.
    pub(crate) wal_flushed_through: u64,
    /// Next segment id to hand out; ids are never reused, so a name always means one content.
    pub(crate) next_segment: u64,
}

/// One immutable Parquet segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SegmentMeta {
    /// Segment id: the file is `data/<id:020>.parquet`.
    pub(crate) id: u64,
    /// Rows in the file.
    pub(crate) rows: u64,
    /// Size of the file in bytes.
    pub(crate) bytes: u64,
    /// Smallest `ts` (microseconds since the epoch), when the table has a `ts` column.
    pub(crate) min_ts: Option<i64>,
    /// Largest `ts`.
    pub(crate) max_ts: Option<i64>,
    /// Columns holding one value in every row (absent in segments written before they were
    /// recorded, which are then read as stored).
    #[serde(default, skip_serializing_if = "Constants::is_empty")]
    pub(crate) constants: Constants,
}

/// The object name of `version` under `dir`.
fn version_path(dir: &Path, version: u64) -> Path {
    dir.clone().join(format!("{version:020}.json"))
}

/// Versions present under `dir`, highest first. Names that do not parse (staging files of an
/// interrupted write) are not versions.
async fn versions(backend: &Backend, dir: &Path) -> Result<Vec<u64>> {
    let mut found: Vec<u64> = backend
        .list(dir)
        .await?
        .iter()
        .filter_map(|meta| {
            let name = meta.location.filename()?;
            name.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    found.sort_unstable_by(|a, b| b.cmp(a));
    Ok(found)
}

/// Read the newest version of a manifest under `dir`, or `None` when there is none.
pub(crate) async fn read_latest<T: for<'de> Deserialize<'de>>(
    backend: &Backend,
    dir: &Path,
) -> Result<Option<T>> {
    let Some(&newest) = versions(backend, dir).await?.first() else {
        return Ok(None);
    };
    let path = version_path(dir, newest);
    let bytes = backend.get(&path).await?;
    // A committed version is whole (create-if-absent of a fully staged object), so a parse failure
    // is corruption to report, not a torn write to skip.
    let value = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        location: path.to_string(),
        message: e.to_string(),
    })?;
    Ok(Some(value))
}

/// Commit `value` as `version` under `dir`; fails if that version already exists (someone else
/// committed it), then trims versions older than the kept window.
pub(crate) async fn commit<T: Serialize>(
    backend: &Backend,
    dir: &Path,
    version: u64,
    value: &T,
) -> Result<()> {
    let path = version_path(dir, version);
    let json = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Internal(format!("cannot serialize manifest: {e}")))?;
    if !backend.put_new(&path, Bytes::from(json)).await? {
        return Err(Error::Corrupt {
            location: path.to_string(),
            message: "manifest version already exists: another process writes this data directory"
                .into(),
        });
    }
    for old in versions(backend, dir).await? {
        if old + KEEP_OLD_VERSIONS < version {
            // Trimming is housekeeping: a failure leaves an extra old version, nothing worse.
            if let Err(e) = backend.delete(&version_path(dir, old)).await {
                log::warn!("cannot trim old manifest version {old} under {dir}: {e}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::usage_events_schema;

    #[test]
    fn usage_schema_round_trips_through_catalog_text() {
        let schema = usage_events_schema();
        let entry = CatalogEntry {
            schema: "finops".into(),
            name: "usage_events".into(),
            id: "x".into(),
            columns: CatalogEntry::columns_of(&schema),
            options: TableOptions::default(),
        };
        let json = serde_json::to_string(&entry).expect("serialize");
        let back: CatalogEntry = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(
            back.arrow_schema().expect("schema").as_ref(),
            schema.as_ref()
        );
    }
}
