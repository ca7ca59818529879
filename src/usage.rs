//! `finops.usage_all`: every usage row in the canonical shape — `finops.usage_events` plus each
//! provider table registered in the `providers` schema, read through its canonical view — as one
//! table that follows `CREATE`/`DROP` of provider tables without being redefined; and
//! `finops.bills_all`, the same over the bills (cost exports).
//!
//! Bills are left out of `usage_all`: they feed reconciliation (`kpi.reconciliation` reads
//! `bills_all`), not usage, so that a request-level feed and the bill for the same requests are
//! not counted twice — unless a bill is marked `OPTIONS ('source_of_truth' 'true')`, which puts
//! it in both. Pricing and attribution are SQL on top (`sql/finops/usage.sql`).

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, Session as DfSession, TableProvider};
use datafusion::common::Result as DfResult;
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;

use crate::providers::ProviderTable;
use crate::schema::{USAGE_EVENTS, usage_events_schema};

pub use crate::providers::BILL_FORMATS;

/// Name of the union table in the `finops` schema.
pub const USAGE_ALL: &str = "usage_all";

/// Name of the bills union in the `finops` schema.
pub const BILLS_ALL: &str = "bills_all";

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
        usage_events_schema()
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
        for source in self.sources().await? {
            plans.push(source.scan(state, projection, filters, limit).await?);
        }
        if plans.is_empty() {
            let schema = match projection {
                Some(p) => Arc::new(usage_events_schema().project(p)?),
                None => usage_events_schema(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        UnionExec::try_new(plans)
    }
}

/// `finops.usage` over just `rows` (in the shape of `finops.usage_all`) instead of every usage
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
    let source = provider_as_source(Arc::new(MemTable::try_new(
        usage_events_schema(),
        vec![rows],
    )?));
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
