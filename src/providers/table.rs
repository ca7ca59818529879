//! `ProviderTable`: a read-only DataFusion table over the export files of one provider format at a
//! location (one file or a folder listed recursively through `object_store`), in its native or
//! canonical shape; `ProviderTableFactory` creates it from `CREATE EXTERNAL TABLE ... STORED AS`.
//!
//! Owns listing, the parse cache and scanning. It must not parse records (the format files do)
//! nor register anything in a catalog (the engine does).

use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::{HashSet, ScalarValue};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    BinaryExpr, CreateExternalTable, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use super::cache::{FileVersion, ParseCache, ScanMark};
use super::records::Layout;
use super::{FileContext, OnError, ParsedFile, SkippedRecord, format, native, parse_file};
use crate::error::{Error, Result};
use crate::schema::usage_events_schema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Native,
    Canonical,
}

/// A provider export location as a table; see the module docs.
#[derive(Clone)]
pub struct ProviderTable {
    format: &'static str,
    urls: Vec<ListingTableUrl>,
    on_error: OnError,
    cache: Arc<ParseCache>,
    view: View,
    skipped: Arc<Mutex<Vec<SkippedRecord>>>,
    source_of_truth: bool,
}

impl fmt::Debug for ProviderTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderTable")
            .field("format", &self.format)
            .field("locations", &self.locations())
            .field("on_error", &self.on_error)
            .field("view", &self.view)
            .field("source_of_truth", &self.source_of_truth)
            .finish()
    }
}

impl ProviderTable {
    /// A table of format `format_name` over `locations` (paths, `file://` or object store URLs;
    /// a trailing `/` or an existing local directory means a folder, listed recursively).
    pub fn try_new(
        format_name: &str,
        locations: &[impl AsRef<str>],
        on_error: OnError,
        cache: Arc<ParseCache>,
    ) -> Result<Self> {
        let fmt = format(format_name).ok_or_else(|| {
            Error::InvalidParameter(format!("unknown provider format {format_name}"))
        })?;
        Ok(Self {
            format: fmt.name(),
            urls: locations
                .iter()
                .map(ListingTableUrl::parse)
                .collect::<std::result::Result<_, _>>()?,
            on_error,
            cache,
            view: View::Native,
            skipped: Arc::default(),
            source_of_truth: false,
        })
    }

    /// Mark a bill as the source of truth: `finops.usage` then includes its rows, at their
    /// billed cost. Only bill formats ([`super::BILL_FORMATS`]) can be.
    pub fn with_source_of_truth(mut self, source_of_truth: bool) -> Result<Self> {
        if source_of_truth && !super::is_bill(self.format) {
            return Err(Error::InvalidParameter(format!(
                "source_of_truth applies to bills ({}), not {}",
                super::BILL_FORMATS.join(", "),
                self.format
            )));
        }
        self.source_of_truth = source_of_truth;
        Ok(self)
    }

    /// Whether this bill is the source of truth for its rows (see [`Self::with_source_of_truth`]).
    pub fn source_of_truth(&self) -> bool {
        self.source_of_truth
    }

    /// The same files in the canonical `finops.usage_events` shape (what `finops.usage` unions).
    /// Each `event_id` appears once: from the most recently modified file holding it (first row
    /// within a file), so overlapping exports and repeated records are counted once.
    pub fn canonical(&self) -> Arc<dyn TableProvider> {
        Arc::new(Self {
            view: View::Canonical,
            ..self.clone()
        })
    }

    /// The format name.
    pub fn format(&self) -> &'static str {
        self.format
    }

    /// The locations as URLs.
    pub fn locations(&self) -> Vec<&str> {
        self.urls.iter().map(|u| u.as_str()).collect()
    }

    /// Records skipped under `on_error 'skip'` by the latest scan or [`Self::load`].
    pub fn skipped(&self) -> Vec<SkippedRecord> {
        self.skipped.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// List the location and parse every file (from the cache when unchanged), in path order.
    /// Files are read and parsed concurrently, up to the session's target partitions at a time.
    pub async fn load(&self, state: &dyn Session) -> Result<Vec<Arc<ParsedFile>>> {
        let mut files = Vec::new();
        for url in &self.urls {
            // Cloud URLs get a store from the credential environment on first use.
            let store = crate::storage::store_for(state.runtime_env(), url)?;
            for meta in self.list(url, store.as_ref()).await? {
                files.push((url, Arc::clone(&store), meta));
            }
        }
        let scan = self.cache.begin_scan();
        let parallel = state.config().target_partitions().max(1);
        // Every file is looked up before any is parsed: what this scan finds cached is then
        // marked as its own, and none of its parses can evict it (were a lookup to come after
        // another file's parse was stored, the scan would push out a file it needs).
        let files: Vec<_> = files
            .into_iter()
            .map(|(url, store, meta)| {
                let entry = self.cache_entry(url, &meta);
                let hit = self.cache.lookup(&entry.key, &entry.version);
                (store, meta, entry, hit)
            })
            .collect();
        // Futures made up front (they do nothing until polled): a closure in the stream would
        // need a lifetime the compiler cannot name for `Send`.
        let parses: Vec<_> = files
            .into_iter()
            .map(|(store, meta, entry, hit)| self.parse_cached(store, meta, entry, hit, scan))
            .collect();
        let parsed: Vec<Arc<ParsedFile>> = futures::stream::iter(parses)
            .buffered(parallel)
            .try_collect()
            .await?;
        let skipped: Vec<SkippedRecord> = parsed
            .iter()
            .flat_map(|p| p.skipped.iter().cloned())
            .collect();
        if let Ok(mut s) = self.skipped.lock() {
            *s = skipped;
        }
        Ok(parsed)
    }

    async fn list(
        &self,
        url: &ListingTableUrl,
        store: &dyn ObjectStore,
    ) -> Result<Vec<ObjectMeta>> {
        let prefix = url.prefix();
        let location = url.as_str().to_string();
        if !url.is_collection() {
            match store.head(prefix).await {
                Ok(meta) => return Ok(vec![meta]),
                // Not an object: read it as a folder (object stores have no directories).
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::object_store(location, e)),
            }
        }
        let mut files: Vec<ObjectMeta> = store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| Error::object_store(location.clone(), e))?;
        let layout = format(self.format).map(|f| f.layout());
        files.retain(|m| wanted(m, layout));
        if files.is_empty() && !url.is_collection() {
            return Err(Error::InvalidParameter(format!(
                "no {} export file or folder at {location}",
                self.format
            )));
        }
        files.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(files)
    }

    /// Where the parse of `meta` (listed under `url`) is cached, and the version it is valid for.
    fn cache_entry(&self, url: &ListingTableUrl, meta: &ObjectMeta) -> CacheEntry {
        // The store URL always ends in `/` and object paths never start with one.
        let name = format!("{}{}", url.object_store().as_str(), meta.location);
        CacheEntry {
            key: format!("{}|{:?}|{name}", self.format, self.on_error),
            name,
            version: FileVersion {
                size: meta.size,
                modified: meta.last_modified.timestamp_micros(),
                e_tag: meta.e_tag.clone(),
                version: meta.version.clone(),
            },
        }
    }

    /// `hit` (what the scan's lookup found), or the file parsed and stored.
    async fn parse_cached(
        &self,
        store: Arc<dyn ObjectStore>,
        meta: ObjectMeta,
        entry: CacheEntry,
        hit: Option<Arc<ParsedFile>>,
        scan: ScanMark,
    ) -> Result<Arc<ParsedFile>> {
        if let Some(hit) = hit {
            return Ok(hit);
        }
        let CacheEntry { name, key, version } = entry;
        // One parse of a file at a time: a scan that arrives while another parses the same file
        // (a view refresh and a query after a new table, say) waits for its result.
        let gate = self.cache.gate(&key);
        let _parsing = gate.lock().await;
        if let Some(hit) = self.cache.lookup(&key, &version) {
            return Ok(hit);
        }
        let bytes = store
            .get(&meta.location)
            .await
            .map_err(|e| Error::object_store(name.clone(), e))?
            .bytes()
            .await
            .map_err(|e| Error::object_store(name.clone(), e))?;
        let (format_name, on_error, modified) = (self.format, self.on_error, version.modified);
        let file = name.clone();
        // Parsing is CPU work; keep it off the async workers.
        let parsed = tokio::task::spawn_blocking(move || {
            let ctx = FileContext {
                file: &file,
                modified: Some(modified),
            };
            parse_file(format_name, &ctx, &bytes, on_error)
        })
        .await
        .map_err(|e| Error::Internal(format!("parsing {name}: {e}")))??;
        let parsed = Arc::new(parsed);
        self.cache.store(key, version, Arc::clone(&parsed), scan);
        Ok(parsed)
    }
}

/// A file's place in the parse cache: its display name, cache key and version.
struct CacheEntry {
    name: String,
    key: String,
    version: FileVersion,
}

/// Files a folder listing reads: the format's extensions (optionally `.gz`), no hidden files.
pub(crate) fn wanted(meta: &ObjectMeta, layout: Option<Layout>) -> bool {
    let Some(name) = meta.location.filename() else {
        return false;
    };
    if name.starts_with('.') || name.starts_with('_') {
        return false;
    }
    let name = name.to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    match layout {
        Some(Layout::Csv) => name.ends_with(".csv"),
        Some(Layout::JsonLines | Layout::Pages) => [".json", ".jsonl", ".ndjson"]
            .iter()
            .any(|e| name.ends_with(e)),
        None => false,
    }
}

/// Bounds `[lo, hi]` (µs) on `ts` implied by simple comparisons with timestamp literals.
fn ts_bounds(filters: &[Expr]) -> (Option<i64>, Option<i64>) {
    let mut lo: Option<i64> = None;
    let mut hi: Option<i64> = None;
    let micros = |v: &ScalarValue| -> Option<i64> {
        match v {
            ScalarValue::TimestampSecond(Some(s), _) => s.checked_mul(1_000_000),
            ScalarValue::TimestampMillisecond(Some(s), _) => s.checked_mul(1_000),
            ScalarValue::TimestampMicrosecond(Some(s), _) => Some(*s),
            ScalarValue::TimestampNanosecond(Some(s), _) => Some(s.div_euclid(1_000)),
            _ => None,
        }
    };
    for f in filters {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = f else {
            continue;
        };
        let (op, value) = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) if c.name == "ts" => (*op, micros(v)),
            (Expr::Literal(v, _), Expr::Column(c)) if c.name == "ts" => match op.swap() {
                Some(op) => (op, micros(v)),
                None => continue,
            },
            _ => continue,
        };
        let Some(v) = value else { continue };
        match op {
            Operator::Gt | Operator::GtEq => lo = Some(lo.map_or(v, |l| l.max(v))),
            Operator::Lt | Operator::LtEq => hi = Some(hi.map_or(v, |h| h.min(v))),
            Operator::Eq => {
                lo = Some(lo.map_or(v, |l| l.max(v)));
                hi = Some(hi.map_or(v, |h| h.min(v)));
            }
            _ => {}
        }
    }
    (lo, hi)
}

/// Keep only the first row of each `event_id` across `batches`; a batch without repeats is
/// kept as it is (no copy).
fn first_per_event(batches: &[RecordBatch]) -> DfResult<Vec<RecordBatch>> {
    let ids = batches
        .iter()
        .map(|batch| {
            batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| DataFusionError::Internal("event_id is not text".into()))
        })
        .collect::<DfResult<Vec<_>>>()?;
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let mut seen: HashSet<&str> = HashSet::with_capacity(rows);
    let mut out = Vec::with_capacity(batches.len());
    for (batch, ids) in batches.iter().zip(ids) {
        let keep: Vec<bool> = ids.iter().map(|id| seen.insert(id.unwrap_or(""))).collect();
        if keep.iter().all(|k| *k) {
            out.push(batch.clone());
        } else {
            out.push(filter_record_batch(batch, &BooleanArray::from(keep))?);
        }
    }
    Ok(out)
}

/// `batches` dealt round-robin into up to `partitions` partitions, so that a scan of many files
/// runs on as many cores.
fn spread(batches: Vec<RecordBatch>, partitions: usize) -> Vec<Vec<RecordBatch>> {
    let mut out: Vec<Vec<RecordBatch>> =
        vec![Vec::new(); partitions.clamp(1, batches.len().max(1))];
    let n = out.len();
    for (i, batch) in batches.into_iter().enumerate() {
        out[i % n].push(batch);
    }
    out
}

#[async_trait]
impl TableProvider for ProviderTable {
    fn schema(&self) -> SchemaRef {
        match self.view {
            View::Canonical => usage_events_schema(),
            View::Native => format(self.format)
                .map(|f| native::native_schema(f.columns()))
                .unwrap_or_else(usage_events_schema),
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Filters only prune whole files here; DataFusion still applies them to the rows.
        let support = match self.view {
            View::Canonical => TableProviderFilterPushDown::Inexact,
            View::Native => TableProviderFilterPushDown::Unsupported,
        };
        Ok(vec![support; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let files = self.load(state).await.map_err(DataFusionError::from)?;
        let partitions = state.config().target_partitions();
        let schema = self.schema();
        if self.view == View::Native {
            // `_file` is not stored per row (see `native::with_file`): project here.
            let projection: Vec<usize> = match projection {
                Some(p) => p.clone(),
                None => (0..schema.fields().len()).collect(),
            };
            let batches = files
                .iter()
                .map(|f| native::with_file(&f.native, &schema, &projection, &f.file))
                .collect::<Result<Vec<_>>>()
                .map_err(DataFusionError::from)?;
            let projected = Arc::new(schema.project(&projection)?);
            return Ok(MemorySourceConfig::try_new_exec(
                &spread(batches, partitions),
                projected,
                None,
            )?);
        }
        let (lo, hi) = ts_bounds(filters);
        // A later export restates an earlier one (late usage in a partial bucket): the
        // newest file's row is the one kept for a repeated `event_id`.
        let mut files = files;
        files.sort_by_key(|f| std::cmp::Reverse(f.modified));
        let batches = files
            .iter()
            .filter(|f| match f.ts_range {
                Some((min, max)) => lo.is_none_or(|lo| max >= lo) && hi.is_none_or(|hi| min <= hi),
                None => false,
            })
            .map(|f| f.canonical.clone())
            .collect::<Vec<_>>();
        let batches = first_per_event(&batches)?;
        let exec = MemorySourceConfig::try_new_exec(
            &spread(batches, partitions),
            schema,
            projection.cloned(),
        )?;
        Ok(exec)
    }
}

/// Creates [`ProviderTable`]s for `CREATE EXTERNAL TABLE ... STORED AS <FORMAT> LOCATION '...'
/// [OPTIONS ('on_error' 'skip', 'source_of_truth' 'true')]`; every table it makes shares one [`ParseCache`].
#[derive(Debug, Default)]
pub struct ProviderTableFactory {
    cache: Arc<ParseCache>,
}

impl ProviderTableFactory {
    /// A factory with a fresh cache of the default budget.
    pub fn new() -> Self {
        Self::default()
    }

    /// A factory whose cache holds up to `budget` bytes of parsed files.
    pub fn with_cache_budget(budget: usize) -> Self {
        ProviderTableFactory {
            cache: Arc::new(ParseCache::with_budget(budget)),
        }
    }

    /// The cache shared by the tables this factory makes.
    pub fn cache(&self) -> &Arc<ParseCache> {
        &self.cache
    }
}

#[async_trait]
impl TableProviderFactory for ProviderTableFactory {
    async fn create(
        &self,
        _state: &dyn Session,
        cmd: &CreateExternalTable,
    ) -> DfResult<Arc<dyn TableProvider>> {
        if !cmd.schema.fields().is_empty() {
            return Err(Error::InvalidParameter(format!(
                "{} tables take their columns from the format; declare none",
                cmd.file_type
            ))
            .into());
        }
        let mut on_error = OnError::Fail;
        let mut source_of_truth = false;
        for (key, value) in &cmd.options {
            match key.to_ascii_lowercase().as_str() {
                "on_error" | "format.on_error" => on_error = OnError::parse(value)?,
                "source_of_truth" | "format.source_of_truth" => {
                    source_of_truth = super::parse_flag("source_of_truth", value)?;
                }
                other => {
                    return Err(Error::InvalidParameter(format!(
                        "unknown option '{other}' for {} (known: on_error, source_of_truth)",
                        cmd.file_type
                    ))
                    .into());
                }
            }
        }
        let table = ProviderTable::try_new(
            &cmd.file_type,
            &cmd.locations,
            on_error,
            Arc::clone(&self.cache),
        )?
        .with_source_of_truth(source_of_truth)?;
        Ok(Arc::new(table))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::{col, lit};

    use super::*;

    fn at(us: i64) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(
            Some(us),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn ts_filters_bound_the_scan() {
        let filters = [
            col("ts").gt_eq(at(10)),
            at(20).gt(col("ts")),
            col("model").eq(lit("x")),
        ];
        assert_eq!(ts_bounds(&filters), (Some(10), Some(20)));
        assert_eq!(ts_bounds(&[col("ts").eq(at(7))]), (Some(7), Some(7)));
        assert_eq!(ts_bounds(&[col("input_tokens").gt(lit(1))]), (None, None));
    }
}
