//! Materialized views: `CREATE MATERIALIZED VIEW`, `REFRESH MATERIALIZED VIEW`,
//! `DROP MATERIALIZED VIEW`, their results stored as Parquet under a prefix of the data
//! directory's object store, restored at open, refreshed incrementally where the definition allows,
//! automatically after appends (`refresh = 'auto'`) or on an interval, and listed by
//! `finops.materialized_views`.
//!
//! The engine owns one [`MaterializedViews`] and calls it:
//! - at open: [`MaterializedViews::open`] (registers every view and `finops.materialized_views`);
//! - for a statement: [`recognise`] on the parsed AST (CREATE/DROP) or [`parse_refresh`] on the SQL
//!   text (REFRESH, which sqlparser cannot parse), then [`MaterializedViews::execute`], whose tag
//!   goes back to the client;
//! - after a committed append to a table: [`MaterializedViews::notify_appended`];
//! - after prices, adjustments or attribution rules change: [`MaterializedViews::mark_stale`].
//!
//! - after `setup_pg_catalog` and `open`: [`register_pg_catalog_overlay`], for psql's `\dm`.
//!
//! psql's `\dm` reads `pg_class.relkind = 'm'`; datafusion-pg-catalog 0.19 derives `relkind` from
//! `TableType` (`Base`/`Temporary` → `r`, `View` → `v`) and has no kind for `m`, so a table provider
//! alone cannot produce it: views are `TableType::View`, and the overlay rewrites their `relkind`
//! to `m` and fills `pg_matviews`.
//!
//! This module must not know about the wire protocol, nor parse SQL text other than REFRESH.

mod incremental;
mod manifest;
mod pg_class;
mod refresh;
mod schedule;
mod statement;
mod table;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::{ResolvedTableReference, TableReference};
use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use object_store::path::Path;

pub use pg_class::register_pg_catalog_overlay;
pub use schedule::MAX_DEFERRALS;
pub use statement::{CreateRequest, MvStatement, RefreshMode, parse_refresh, recognise};
pub use table::{MaterializedTable, StatusTable, status_schema};

use crate::error::{Error, Result};
use crate::storage::{ChangePosition, Changes};
use manifest::Manifest;

/// Name of the status table, in schema `finops`.
pub const STATUS_TABLE: &str = "materialized_views";

/// What `finops.materialized_views` shows about one view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewInfo {
    /// `schema.view`.
    pub name: String,
    /// The defining query.
    pub definition: String,
    /// When it is refreshed.
    pub refresh: RefreshMode,
    /// Whether a refresh recomputes only the time buckets that changed.
    pub incremental: bool,
    /// When the stored result was last brought up to date.
    pub last_refresh: Option<DateTime<Utc>>,
    /// How long that took.
    pub refresh_ms: u64,
    /// Rows in the stored result.
    pub rows: u64,
    /// Size of the stored result file.
    pub bytes: u64,
    /// A table it reads changed since.
    pub stale: bool,
}

/// How a refresh went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshKind {
    /// The whole query ran again.
    Full,
    /// Only the buckets from the earliest changed one on were recomputed.
    Incremental,
    /// The input had not changed: nothing was recomputed.
    Unchanged,
}

/// The outcome of one refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshStats {
    /// What was recomputed.
    pub kind: RefreshKind,
    /// Rows in the result afterwards.
    pub rows: u64,
    /// Rows the query produced in this refresh (all of them for a full one).
    pub rows_recomputed: u64,
    /// Size of the stored result.
    pub bytes: u64,
    /// Wall time.
    pub refresh_ms: u64,
}

/// One view in memory.
struct View {
    reference: ResolvedTableReference,
    dir: Path,
    mode: RefreshMode,
    manifest: Mutex<Manifest>,
    table: RwLock<Arc<MaterializedTable>>,
    /// Serialises refreshes and drop of this view.
    refresh_lock: tokio::sync::Mutex<()>,
    dropped: AtomicBool,
    /// A debounced refresh is scheduled (auto views).
    pending: AtomicBool,
    last_notified: Mutex<std::time::Instant>,
}

impl View {
    fn manifest(&self) -> Manifest {
        lock(&self.manifest).clone()
    }

    fn table(&self) -> Arc<MaterializedTable> {
        Arc::clone(&self.table.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn info(&self) -> ViewInfo {
        let m = self.manifest();
        ViewInfo {
            name: m.qualified_name(),
            definition: m.definition,
            refresh: self.mode,
            incremental: m.incremental,
            last_refresh: m
                .last_refresh_micros
                .and_then(DateTime::from_timestamp_micros),
            refresh_ms: m.refresh_ms,
            rows: m.rows,
            bytes: m.bytes,
            stale: m.stale || m.needs_full,
        }
    }
}

use crate::lock;

/// Tells a refresh what changed in the tables a view reads since its last refresh, so that after
/// appends it counts the rows of the buckets they reached instead of the whole input, and after
/// no change at all nothing. A table without a position is one whose changes are not tracked: the
/// refresh counts its rows again.
pub trait ChangeFeed: Send + Sync {
    /// Where `table` (`schema.table`, as in a manifest's `depends_on`) is in its change history.
    fn position(&self, table: &str) -> Option<ChangePosition>;
    /// What changed in `table` since `position`; [`Changes::Appended`] bounds its `ts` column.
    fn since(&self, table: &str, position: &ChangePosition) -> Changes;
}

/// Every materialized view of one data directory.
pub struct MaterializedViews {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The engine's context: background refreshes run in it, as an administrator.
    ctx: SessionContext,
    views: RwLock<BTreeMap<String, Arc<View>>>,
    /// Serialises CREATE and DROP, so that two creates of one name cannot both succeed.
    ddl: tokio::sync::Mutex<()>,
    debounce: Mutex<Duration>,
    feed: RwLock<Option<Arc<dyn ChangeFeed>>>,
}

impl std::fmt::Debug for MaterializedViews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaterializedViews")
            .field("prefix", &self.prefix)
            .field("views", &self.names())
            .finish_non_exhaustive()
    }
}

impl MaterializedViews {
    /// Restore every view stored under `prefix` of `store`, register each in `ctx`'s catalog and
    /// register `finops.materialized_views`. Interval views start their background refresh when a
    /// tokio runtime is running.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        ctx: &SessionContext,
    ) -> Result<Arc<Self>> {
        let views = Arc::new(MaterializedViews {
            store,
            prefix,
            ctx: ctx.clone(),
            views: RwLock::new(BTreeMap::new()),
            ddl: tokio::sync::Mutex::new(()),
            debounce: Mutex::new(Duration::from_secs(1)),
            feed: RwLock::new(None),
        });
        let manifests = manifest::read_manifests(views.store.as_ref(), &views.prefix).await?;
        manifest::remove_orphans(views.store.as_ref(), &views.prefix, &manifests).await?;
        for (dir, m) in manifests {
            let Some(file) = m.data_file.clone() else {
                continue;
            };
            let (schema, batches) =
                manifest::read_result(views.store.as_ref(), &dir, &file).await?;
            let reference = ResolvedTableReference {
                catalog: m.catalog.clone().into(),
                schema: m.schema.clone().into(),
                table: m.table.clone().into(),
            };
            ensure_schema(ctx, &reference)?;
            let table = MaterializedTable::try_new(schema, m.definition.clone(), batches)?;
            let view = views.insert_view(ctx, reference, dir, m, table, true)?;
            views.start_interval(&view);
        }
        let status = Arc::new(StatusTable::new(Arc::downgrade(&views)));
        let status_ref = TableReference::full(default_catalog(ctx), "finops", STATUS_TABLE);
        ensure_schema(ctx, &status_ref.clone().resolve("", ""))?;
        // Reopening over the same catalog replaces what an earlier registry registered.
        ctx.deregister_table(status_ref.clone())?;
        ctx.register_table(status_ref, status)?;
        Ok(views)
    }

    /// Learn what changed in base tables from `feed` (without one, every refresh of an
    /// incremental view counts the rows of its whole input).
    pub fn set_change_feed(&self, feed: Arc<dyn ChangeFeed>) {
        *self.feed.write().unwrap_or_else(|p| p.into_inner()) = Some(feed);
    }

    fn change_feed(&self) -> Option<Arc<dyn ChangeFeed>> {
        self.feed.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Wait this long after the last append before an auto refresh (default 1 s).
    pub fn set_debounce(&self, debounce: Duration) {
        *lock(&self.debounce) = debounce;
    }

    /// Run a recognised statement in `ctx`; returns the command tag.
    pub async fn execute(
        self: &Arc<Self>,
        ctx: &SessionContext,
        statement: MvStatement,
    ) -> Result<&'static str> {
        let tag = statement.command_tag();
        match statement {
            MvStatement::Create(request) => {
                self.create(ctx, &request).await?;
            }
            MvStatement::Refresh(name) => {
                self.refresh(ctx, &name).await?;
            }
            MvStatement::Drop { names, if_exists } => {
                for name in names {
                    self.drop_view(ctx, &name, if_exists).await?;
                }
            }
        }
        Ok(tag)
    }

    /// Create a view: plan and run its query in `ctx`, store the result, register it. Returns
    /// `false` when it existed and `IF NOT EXISTS` was given.
    pub async fn create(
        self: &Arc<Self>,
        ctx: &SessionContext,
        request: &CreateRequest,
    ) -> Result<bool> {
        let reference = resolve(ctx, &request.name);
        let key = key(&reference);
        let _ddl = self.ddl.lock().await;
        if self.get(&key).is_some() || ctx.table_exist(TableReference::from(reference.clone()))? {
            return if request.if_not_exists {
                Ok(false)
            } else {
                Err(Error::TableExists(key))
            };
        }
        let catalog = ctx.catalog(&reference.catalog).ok_or_else(|| {
            Error::InvalidParameter(format!("database \"{}\" does not exist", reference.catalog))
        })?;
        if catalog.schema(&reference.schema).is_none() {
            return Err(Error::InvalidParameter(format!(
                "schema \"{}\" does not exist",
                reference.schema
            )));
        }
        let dir = manifest::view_dir(&self.prefix, &reference.schema, &reference.table);
        let manifest = Manifest::new(
            &reference.catalog,
            &reference.schema,
            &reference.table,
            &request.query,
            &request.refresh.to_string(),
        );
        let (schema, batches, manifest) = refresh::first_result(self, ctx, &dir, manifest).await?;
        let table = MaterializedTable::try_new(schema, request.query.clone(), batches)?;
        let view = self.insert_view(ctx, reference, dir, manifest, table, false)?;
        self.start_interval(&view);
        Ok(true)
    }

    /// Bring view `name` up to date, incrementally where possible. Refreshes of one view run one
    /// at a time; readers keep the result they started with.
    pub async fn refresh(&self, ctx: &SessionContext, name: &str) -> Result<RefreshStats> {
        let reference = resolve(ctx, name);
        let view = self
            .get(&key(&reference))
            .ok_or_else(|| Error::TableNotFound(key(&reference)))?;
        refresh::refresh(self, ctx, &view).await
    }

    /// Drop view `name` and its stored result. Returns `false` when it did not exist and
    /// `if_exists` was given.
    pub async fn drop_view(
        &self,
        ctx: &SessionContext,
        name: &str,
        if_exists: bool,
    ) -> Result<bool> {
        let reference = resolve(ctx, name);
        let key = key(&reference);
        let _ddl = self.ddl.lock().await;
        let Some(view) = self.get(&key) else {
            return if if_exists {
                Ok(false)
            } else {
                Err(Error::TableNotFound(key))
            };
        };
        // Waits for a running refresh, which then cannot write after the drop.
        let _refresh = view.refresh_lock.lock().await;
        view.dropped.store(true, Ordering::SeqCst);
        ctx.deregister_table(TableReference::from(view.reference.clone()))?;
        self.views
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        manifest::remove_dir(self.store.as_ref(), &view.dir).await?;
        Ok(true)
    }

    /// Every view, by name.
    pub fn list(&self) -> Vec<ViewInfo> {
        self.all().iter().map(|v| v.info()).collect()
    }

    /// Schema-qualified names of every view (for the catalog's `relkind = 'm'`).
    pub fn names(&self) -> Vec<String> {
        self.views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Whether `name` (resolved in `ctx`) is a materialized view.
    pub fn contains(&self, ctx: &SessionContext, name: &str) -> bool {
        self.get(&key(&resolve(ctx, name))).is_some()
    }

    fn get(&self, key: &str) -> Option<Arc<View>> {
        self.views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn all(&self) -> Vec<Arc<View>> {
        self.views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn insert_view(
        &self,
        ctx: &SessionContext,
        reference: ResolvedTableReference,
        dir: Path,
        manifest: Manifest,
        table: MaterializedTable,
        replace: bool,
    ) -> Result<Arc<View>> {
        let table = Arc::new(table);
        if replace {
            ctx.deregister_table(TableReference::from(reference.clone()))?;
        }
        ctx.register_table(
            TableReference::from(reference.clone()),
            Arc::clone(&table) as _,
        )?;
        let mode = RefreshMode::parse(&manifest.refresh).unwrap_or(RefreshMode::Manual);
        let view = Arc::new(View {
            reference: reference.clone(),
            dir,
            mode,
            manifest: Mutex::new(manifest),
            table: RwLock::new(table),
            refresh_lock: tokio::sync::Mutex::new(()),
            dropped: AtomicBool::new(false),
            pending: AtomicBool::new(false),
            last_notified: Mutex::new(std::time::Instant::now()),
        });
        self.views
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key(&reference), Arc::clone(&view));
        Ok(view)
    }
}

fn default_catalog(ctx: &SessionContext) -> String {
    ctx.state()
        .config()
        .options()
        .catalog
        .default_catalog
        .clone()
}

/// Resolve a name as written (`kpi.daily`, `"Kpi"."Daily"`, `daily`) against `ctx`'s defaults.
fn resolve(ctx: &SessionContext, name: &str) -> ResolvedTableReference {
    let state = ctx.state();
    let options = &state.config().options().catalog;
    TableReference::from(name).resolve(&options.default_catalog, &options.default_schema)
}

fn key(reference: &ResolvedTableReference) -> String {
    format!("{}.{}", reference.schema, reference.table)
}

/// Views restored from storage come back even when their schema was not recreated.
fn ensure_schema(ctx: &SessionContext, reference: &ResolvedTableReference) -> Result<()> {
    let catalog = ctx.catalog(&reference.catalog).ok_or_else(|| {
        Error::InvalidParameter(format!("database \"{}\" does not exist", reference.catalog))
    })?;
    if catalog.schema(&reference.schema).is_none() {
        catalog.register_schema(&reference.schema, Arc::new(MemorySchemaProvider::new()))?;
    }
    Ok(())
}
