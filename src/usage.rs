//! `finops.usage_all`: every usage row in the canonical shape — `finops.usage_events` plus each
//! provider table registered in the `providers` schema, read through its canonical view — as one
//! table that follows `CREATE`/`DROP` of provider tables without being redefined; and
//! `finops.bills_all`, the same over the bills (cost exports).
//!
//! Bills are left out of `usage_all`: they feed reconciliation (`kpi.reconciliation` reads
//! `bills_all`), not usage, so that a request-level feed and the bill for the same requests are
//! not counted twice — unless a bill is marked `OPTIONS ('source_of_truth' 'true')`, which puts
//! it in both. Pricing and attribution are SQL on top (`sql/finops/usage.sql`).
//!
//! Both have the canonical columns with text as `Utf8View`, the type `finops.usage_events` is
//! scanned with, so the bulk of the rows reach pricing and grouping without a copy of each
//! string; a provider table's canonical rows are cast to it.

use std::sync::{Arc, LazyLock, Weak};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, Session as DfSession, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;

use crate::materialized::ChangeFeed;
use crate::providers::ProviderTable;
use crate::schema::{USAGE_EVENTS, usage_events_schema, view_types};
use crate::storage::{ChangePosition, Changes, DurableTable, Storage};

pub use crate::providers::BILL_FORMATS;

/// Name of the union table in the `finops` schema.
pub const USAGE_ALL: &str = "usage_all";

/// Name of the bills union in the `finops` schema.
pub const BILLS_ALL: &str = "bills_all";

/// The schema of `finops.usage_all` and `finops.bills_all`: the canonical usage columns, text
/// as `Utf8View`.
pub fn usage_all_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| view_types(&usage_events_schema()));
    Arc::clone(&SCHEMA)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// `finops.usage_events`, the usage provider tables and the bills marked source of truth.
    Usage,
    /// Every bill provider table.
    Bills,
}

/// The union of all usage (or all bill) sources, resolved at each scan.
#[derive(Debug)]
pub struct UsageAll {
    catalog: Weak<dyn CatalogProvider>,
    feed: Feed,
}

impl UsageAll {
    /// The usage union over the tables of `catalog` (`finops.usage_all`).
    pub fn new(catalog: &Arc<dyn CatalogProvider>) -> Self {
        UsageAll {
            catalog: Arc::downgrade(catalog),
            feed: Feed::Usage,
        }
    }

    /// The bills union over the tables of `catalog` (`finops.bills_all`): the canonical rows of
    /// every bill provider table, with their `reported_cost`.
    pub fn bills(catalog: &Arc<dyn CatalogProvider>) -> Self {
        UsageAll {
            catalog: Arc::downgrade(catalog),
            feed: Feed::Bills,
        }
    }

    fn includes(&self, provider: &ProviderTable) -> bool {
        let bill = crate::providers::is_bill(provider.format());
        match self.feed {
            Feed::Usage => !bill || provider.source_of_truth(),
            Feed::Bills => bill,
        }
    }

    async fn sources(&self) -> DfResult<Vec<Arc<dyn TableProvider>>> {
        let Some(catalog) = self.catalog.upgrade() else {
            return Ok(Vec::new());
        };
        let mut sources = Vec::new();
        if self.feed == Feed::Usage
            && let Some(finops) = catalog.schema("finops")
            && let Some(events) = finops.table(USAGE_EVENTS).await?
        {
            sources.push(events);
        }
        if let Some(providers) = catalog.schema("providers") {
            let mut names = providers.table_names();
            names.sort();
            for name in names {
                let Some(table) = providers.table(&name).await? else {
                    continue;
                };
                if let Some(provider) = table.downcast_ref::<ProviderTable>()
                    && self.includes(provider)
                {
                    sources.push(provider.canonical());
                }
            }
        }
        Ok(sources)
    }
}

#[async_trait]
impl TableProvider for UsageAll {
    fn schema(&self) -> SchemaRef {
        usage_all_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Each source prunes what it can; DataFusion still applies every filter.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut plans = Vec::new();
        let union = usage_all_schema();
        for source in self.sources().await? {
            if source.schema() == union {
                plans.push(source.scan(state, projection, filters, limit).await?);
                continue;
            }
            // A provider table's canonical rows have text as `Utf8`: they are cast to the
            // union's `Utf8View`, and only the filters on `ts` (what prunes a provider's files)
            // are passed down, since the others are typed for the union.
            let on_ts: Vec<Expr> = filters
                .iter()
                .filter(|f| f.column_refs().iter().all(|c| c.name == "ts"))
                .cloned()
                .collect();
            let plan = source.scan(state, projection, &on_ts, limit).await?;
            let target = match projection {
                Some(p) => Arc::new(union.project(p)?),
                None => Arc::clone(&union),
            };
            plans.push(cast_to(plan, &target)?);
        }
        if plans.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(union.project(p)?),
                None => union,
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        UnionExec::try_new(plans)
    }
}

/// `plan`'s rows with each column cast to `schema`'s type (same columns, by position).
fn cast_to(plan: Arc<dyn ExecutionPlan>, schema: &SchemaRef) -> DfResult<Arc<dyn ExecutionPlan>> {
    use datafusion::physical_expr::expressions::{CastExpr, Column};
    use datafusion::physical_plan::projection::ProjectionExec;
    let input = plan.schema();
    let exprs = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let column: Arc<dyn datafusion::physical_expr::PhysicalExpr> =
                Arc::new(Column::new(field.name(), i));
            let expr = if input.field(i).data_type() == field.data_type() {
                column
            } else {
                Arc::new(CastExpr::new(column, field.data_type().clone(), None))
            };
            (expr, field.name().clone())
        })
        .collect::<Vec<_>>();
    Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
}

/// What changed in the tables materialized views read, for their refreshes: a durable table
/// reports its own changes, and `finops.usage_all` those of `finops.usage_events` while no
/// provider table is registered (a provider's files change without telling anyone, so with one
/// the union's changes are not tracked).
pub struct UsageChanges {
    storage: Arc<Storage>,
    catalog: Weak<dyn CatalogProvider>,
}

impl UsageChanges {
    /// The feed over the durable tables of `storage` and the union of `catalog`.
    pub fn new(storage: Arc<Storage>, catalog: &Arc<dyn CatalogProvider>) -> Self {
        UsageChanges {
            storage,
            catalog: Arc::downgrade(catalog),
        }
    }

    /// The durable table whose changes are those of `name`, if any.
    fn tracked(&self, name: &str) -> Option<DurableTable> {
        let (schema, table) = name.split_once('.')?;
        if schema == "finops" && table == USAGE_ALL {
            let providers = self
                .catalog
                .upgrade()
                .and_then(|c| c.schema("providers"))
                .map(|s| s.table_names());
            return match providers {
                Some(names) if names.is_empty() => self.storage.table("finops", USAGE_EVENTS),
                _ => None,
            };
        }
        self.storage.table(schema, table)
    }
}

impl ChangeFeed for UsageChanges {
    fn position(&self, table: &str) -> Option<ChangePosition> {
        Some(self.tracked(table)?.change_position())
    }

    fn since(&self, table: &str, position: &ChangePosition) -> Changes {
        match self.tracked(table) {
            Some(t) => t.changes_since(position),
            None => Changes::Unknown,
        }
    }
}

/// `finops.usage` over just `rows` (the canonical columns) instead of every usage
/// source: the view's own plan with its scan of `usage_all` replaced, so the rows are priced and
/// attributed exactly as the view would.
pub async fn usage_of_rows(
    ctx: &datafusion::prelude::SessionContext,
    rows: Vec<datafusion::arrow::array::RecordBatch>,
) -> crate::error::Result<datafusion::dataframe::DataFrame> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::datasource::{MemTable, provider_as_source};
    use datafusion::logical_expr::{LogicalPlan, TableScanBuilder};

    let view = ctx.table_provider("finops.usage").await?;
    let plan = view
        .get_logical_plan()
        .ok_or_else(|| crate::error::Error::Internal("finops.usage is not a view".into()))?
        .into_owned();
    let schema = usage_all_schema();
    let rows = rows
        .iter()
        .map(|batch| crate::schema::cast_batch(batch, &schema))
        .collect::<Result<Vec<_>, _>>()
        .map_err(datafusion::common::DataFusionError::from)?;
    let source = provider_as_source(Arc::new(MemTable::try_new(schema, vec![rows])?));
    let plan = plan
        .transform_up(|node| match node {
            LogicalPlan::TableScan(scan) if scan.table_name.table() == USAGE_ALL => {
                let scan = TableScanBuilder::new(scan.table_name, Arc::clone(&source))
                    .with_projection(scan.projection)
                    .with_filters(scan.filters)
                    .with_fetch(scan.fetch)
                    .build()?;
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    Ok(datafusion::dataframe::DataFrame::new(ctx.state(), plan))
}

#[cfg(test)]
mod tests {
    use super::BILL_FORMATS;
    use crate::config::Config;
    use crate::engine::{Engine, Identity, Session};
    use crate::materialized::{ChangeFeed, RefreshKind};
    use crate::storage::Changes;

    async fn run(session: &Session, sql: &str) -> String {
        let batches = session
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .expect("format")
            .to_string()
    }

    fn insert(rows: &[(&str, &str, &str)]) -> String {
        let values: Vec<String> = rows
            .iter()
            .map(|(id, ts, team)| {
                format!(
                    "('{id}', TIMESTAMPTZ '{ts}+00', 'openai', 'gpt-4o-mini', '{team}', 100, 10, 'p')"
                )
            })
            .collect();
        format!(
            "INSERT INTO finops.usage_events (event_id, ts, provider, model, team, \
             input_tokens, output_tokens, prompt_hash) VALUES {}",
            values.join(", ")
        )
    }

    /// The union follows the native table's changes while no provider table feeds it, and
    /// `kpi.daily` refreshed from those changes equals its definition run from scratch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn views_over_usage_refresh_from_the_native_tables_changes() {
        let dir = tempfile::tempdir().expect("scratch dir");
        let config = Config {
            data_dir: dir.path().join("data").display().to_string(),
            ..Config::default()
        };
        let engine = Engine::open(config).await.expect("engine opens");
        let session = engine.session(Identity::local_admin()).expect("session");
        let feed = super::UsageChanges::new(
            std::sync::Arc::clone(engine.storage()),
            &engine.catalog().expect("catalog"),
        );
        let views = engine.views().expect("views");
        let ctx = engine.base_context();
        let refresh = || views.refresh(ctx, "kpi.daily");
        let definition = "SELECT * FROM kpi.daily ORDER BY day, team, provider, model";
        views.set_debounce(std::time::Duration::from_secs(3600));
        let fresh = || async {
            let listed = session
                .query("SELECT definition FROM finops.materialized_views WHERE name = 'kpi.daily'")
                .await
                .expect("definition");
            let query = datafusion::arrow::array::AsArray::as_string::<i32>(listed[0].column(0))
                .value(0)
                .to_string();
            run(
                &session,
                &format!("SELECT * FROM ({query}) AS d ORDER BY day, team, provider, model"),
            )
            .await
        };

        run(
            &session,
            &insert(&[
                ("a1", "2026-03-01 10:00:00", "x"),
                ("a2", "2026-03-02 10:00:00", "y"),
            ]),
        )
        .await;
        refresh().await.expect("refresh");
        let start = feed.position("finops.usage_all").expect("tracked");
        assert_eq!(feed.since("finops.usage_all", &start), Changes::None);
        assert_eq!(
            refresh().await.expect("refresh").kind,
            RefreshKind::Unchanged
        );

        // A late row for the first day and a new day: both days from the first are recomputed.
        run(
            &session,
            &insert(&[
                ("b1", "2026-03-03 09:00:00", "x"),
                ("b2", "2026-03-01 23:00:00", "y"),
            ]),
        )
        .await;
        let march_1_23h = chrono::DateTime::parse_from_rfc3339("2026-03-01T23:00:00Z")
            .expect("instant")
            .timestamp_micros();
        assert_eq!(
            feed.since("finops.usage_all", &start),
            Changes::Appended {
                min_ts: march_1_23h
            }
        );
        let stats = refresh().await.expect("refresh");
        assert_eq!(stats.kind, RefreshKind::Incremental, "{stats:?}");
        assert_eq!(stats.rows_recomputed, 4, "{stats:?}");
        assert_eq!(run(&session, definition).await, fresh().await);

        // A price added for a model that had none re-prices rows already there: not an append.
        run(
            &session,
            "INSERT INTO finops.usage_events (event_id, ts, provider, model, team, input_tokens, \
             output_tokens) VALUES ('c1', TIMESTAMPTZ '2026-03-02 12:00:00+00', 'acme', 'flat-1', \
             'x', 1000000, 0)",
        )
        .await;
        refresh().await.expect("refresh");
        let unpriced = "SELECT SUM(unpriced_requests) AS u, SUM(cost) AS c FROM kpi.daily";
        assert!(run(&session, unpriced).await.contains("| 1 "));
        run(
            &session,
            "INSERT INTO finops.model_prices (provider, model, match, input, output) \
             VALUES ('acme', 'flat-1', 'exact', 2, 2)",
        )
        .await;
        let stats = refresh().await.expect("refresh");
        assert_eq!(stats.kind, RefreshKind::Full, "{stats:?}");
        assert!(run(&session, unpriced).await.contains("| 0 "));
        assert_eq!(run(&session, definition).await, fresh().await);

        // A row deleted: the feed cannot describe it, the buckets are counted again.
        let before = feed.position("finops.usage_all").expect("tracked");
        run(
            &session,
            "DELETE FROM finops.usage_events WHERE event_id = 'a2'",
        )
        .await;
        assert_eq!(feed.since("finops.usage_all", &before), Changes::Unknown);
        refresh().await.expect("refresh");
        assert_eq!(run(&session, definition).await, fresh().await);

        // With a provider table the union's changes are not tracked.
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/anthropic/messages_usage.jsonl");
        run(
            &session,
            &format!(
                "CREATE EXTERNAL TABLE providers.claude STORED AS ANTHROPIC_MESSAGES LOCATION '{}'",
                fixture.display()
            ),
        )
        .await;
        assert_eq!(feed.position("finops.usage_all"), None);
        assert!(feed.position("finops.usage_events").is_some());
        refresh().await.expect("refresh");
        assert_eq!(run(&session, definition).await, fresh().await);
    }

    /// `finops.usage` prices a row from a bill by its `source`; a format missing from its list
    /// would be priced from the price book instead of what was billed.
    #[test]
    fn usage_view_knows_every_bill_format() {
        let sql = crate::builtin_sql::USAGE_VIEW.1;
        for format in BILL_FORMATS {
            assert!(sql.contains(&format!("'{format}'")), "{format}");
        }
    }
}
