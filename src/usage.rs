//! `finops.usage_all`: every usage row in the canonical shape — `finops.usage_events` plus each
//! provider table registered in the `providers` schema, read through its canonical view — as one
//! table that follows `CREATE`/`DROP` of provider tables without being redefined.
//!
//! Bills (cost exports) are left out: they feed reconciliation, not usage, so that a request-level
//! feed and the bill for the same requests are not counted twice. Pricing and attribution are
//! SQL on top of this table (`sql/finops/usage.sql`).

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

/// Formats that are bills rather than usage.
pub const BILL_FORMATS: [&str; 6] = [
    "OPENAI_COSTS",
    "ANTHROPIC_COSTS",
    "AWS_CUR",
    "GCP_BILLING",
    "AZURE_COSTS",
    "FOCUS",
];

/// Name of the union table in the `finops` schema.
pub const USAGE_ALL: &str = "usage_all";

/// The union of all usage sources, resolved at each scan.
#[derive(Debug)]
pub struct UsageAll {
    catalog: Weak<dyn CatalogProvider>,
}

impl UsageAll {
    /// The union over the tables of `catalog`.
    pub fn new(catalog: &Arc<dyn CatalogProvider>) -> Self {
        UsageAll {
            catalog: Arc::downgrade(catalog),
        }
    }

    async fn sources(&self) -> DfResult<Vec<Arc<dyn TableProvider>>> {
        let Some(catalog) = self.catalog.upgrade() else {
            return Ok(Vec::new());
        };
        let mut sources = Vec::new();
        if let Some(finops) = catalog.schema("finops")
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
                    && !BILL_FORMATS.contains(&provider.format())
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
