//! Who may do what (SPEC 3.8), enforced on plans, not on SQL text.
//!
//! - `admin` may do everything.
//! - `writer` may read, and append usage (`INSERT` into, `COPY` into `finops.usage_events`).
//! - `reader` may only read. A reader with `teams` sees only those teams' usage: every scan of a
//!   usage table gets a filter on the team the row is attributed to (after
//!   `finops.attribution_rules`, as `finops.usage` shows it), every materialized view is filtered
//!   on its `team` column, and tables that carry other teams' rows with no team to filter on
//!   (raw provider tables, a materialized view without a `team` column) are refused; budget
//!   status, history and caps show the budgets of those teams only.
//!
//! Statements the engine runs itself (DDL, DML, COPY, materialized views) call [`authorize`];
//! everything else, including DML hidden inside `EXPLAIN ANALYZE`, goes through the
//! [`AccessRule`] analyzer rule of a non-admin session.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    Expr, Filter, LogicalPlan, LogicalPlanBuilder, ScalarUDF, TableScan, TableScanBuilder, WriteOp,
    expr::ScalarFunction,
};
use datafusion::optimizer::AnalyzerRule;

use crate::config::Role;
use crate::engine::Identity;
use crate::error::{Error, Result};
use crate::ingest_errors::IngestErrors;
use crate::materialized::MaterializedTable;
use crate::providers::ProviderTable;
use crate::storage::DurableTable;
use crate::usage::UsageAll;

fn denied(identity: &Identity, what: impl std::fmt::Display) -> Error {
    Error::PermissionDenied(format!("user \"{}\" may not {what}", identity.user))
}

/// Whether `identity` may write to `schema.table` with `op`.
fn may_write(identity: &Identity, schema: Option<&str>, table: &str, op: &WriteOp) -> bool {
    match identity.role {
        Role::Admin => true,
        Role::Writer => {
            matches!(op, WriteOp::Insert(InsertOp::Append))
                && table == crate::schema::USAGE_EVENTS
                && schema.is_none_or(|s| s == "finops")
        }
        Role::Reader => false,
    }
}

/// Check a statement's plan before the engine runs it: DDL is for administrators, DML for
/// administrators and (appending usage) writers. SQLSTATE 42501 otherwise.
pub fn authorize(identity: &Identity, plan: &LogicalPlan) -> Result<()> {
    if identity.role == Role::Admin {
        return Ok(());
    }
    let mut outcome = Ok(());
    // The closure only records; the traversal itself cannot fail.
    let _ = plan.apply_with_subqueries(|node| {
        let refused = match node {
            LogicalPlan::Ddl(ddl) => Some(denied(identity, format!("run {}", ddl.name()))),
            LogicalPlan::Dml(dml)
                if !may_write(
                    identity,
                    dml.table_name.schema(),
                    dml.table_name.table(),
                    &dml.op,
                ) =>
            {
                Some(denied(identity, format!("{} {}", dml.op, dml.table_name)))
            }
            LogicalPlan::Copy(_) => Some(denied(identity, "write files on the server")),
            _ => None,
        };
        if let Some(e) = refused {
            outcome = Err(e);
            return Ok(datafusion::common::tree_node::TreeNodeRecursion::Stop);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    outcome
}

/// Check that `identity` may run `CREATE`/`DROP MATERIALIZED VIEW` (administrators).
pub fn authorize_ddl(identity: &Identity, what: &str) -> Result<()> {
    if identity.role == Role::Admin {
        Ok(())
    } else {
        Err(denied(identity, format!("run {what}")))
    }
}

/// Check that `identity` may `COPY ... FROM STDIN` into `table`.
pub fn authorize_copy_in(identity: &Identity, table: &str) -> Result<()> {
    let (schema, name) = match table.rsplit_once('.') {
        Some((s, n)) => (Some(s.rsplit('.').next().unwrap_or(s)), n),
        None => (None, table),
    };
    let name = name.trim_matches('"');
    let schema = schema.map(|s| s.trim_matches('"'));
    if may_write(identity, schema, name, &WriteOp::Insert(InsertOp::Append)) {
        Ok(())
    } else {
        Err(denied(identity, format!("COPY into {table}")))
    }
}

/// The analyzer rule of a non-admin session: refuses writes the role does not allow, and for
/// a team-scoped reader filters every usage scan to its teams.
#[derive(Debug)]
pub struct AccessRule {
    identity: Identity,
    attribute: Arc<ScalarUDF>,
}

impl AccessRule {
    /// The rule for `identity`, attributing rows with `attribute` (`attribute_usage`).
    pub fn new(identity: Identity, attribute: Arc<ScalarUDF>) -> Self {
        AccessRule {
            identity,
            attribute,
        }
    }

    /// The reader's teams as literals of `data_type`, the type of the column they are
    /// compared with: this rule runs after type coercion, so it must match types itself.
    fn teams(&self, data_type: &DataType) -> DfResult<Vec<Expr>> {
        self.identity
            .teams
            .iter()
            .map(|t| {
                let value = ScalarValue::Utf8(Some(t.clone())).cast_to(data_type)?;
                Ok(Expr::Literal(value, None))
            })
            .collect()
    }

    /// The filter a scan of `provider` needs, `None` when it needs none.
    fn scope(&self, scan: &TableScan) -> DfResult<Option<Expr>> {
        let provider = source_as_provider(&scan.source)?;
        let column = |name: &str| Expr::Column(Column::new(Some(scan.table_name.clone()), name));
        let usage = provider.downcast_ref::<UsageAll>().is_some()
            || provider.downcast_ref::<DurableTable>().is_some_and(|t| {
                t.schema_name() == "finops" && t.name() == crate::schema::USAGE_EVENTS
            });
        if usage {
            let args = crate::attribution::ARGUMENTS
                .iter()
                .map(|c| column(c))
                .collect();
            let owner =
                Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(&self.attribute), args));
            let team = datafusion::functions::core::expr_fn::get_field(owner, "team");
            let team_type = crate::attribution::team_type();
            return Ok(Some(team.in_list(self.teams(&team_type)?, false)));
        }
        if provider.downcast_ref::<ProviderTable>().is_some()
            || provider.downcast_ref::<IngestErrors>().is_some()
        {
            return Err(denied(
                &self.identity,
                format!("read {} (provider rows of every team)", scan.table_name),
            )
            .into());
        }
        if provider
            .downcast_ref::<crate::budget::status::BudgetTable>()
            .is_some()
            || provider
                .downcast_ref::<crate::budget::cap::CapTable>()
                .is_some()
        {
            // Budgets of the reader's teams only.
            let team_scope = column("scope").eq(Expr::Literal(
                ScalarValue::Utf8(Some("team".to_string())),
                None,
            ));
            let value_type = provider
                .schema()
                .field_with_name("scope_value")?
                .data_type()
                .clone();
            return Ok(Some(team_scope.and(
                column("scope_value").in_list(self.teams(&value_type)?, false),
            )));
        }
        if provider.downcast_ref::<MaterializedTable>().is_some() {
            let schema = provider.schema();
            let Some((_, team)) = schema.column_with_name("team") else {
                return Err(denied(
                    &self.identity,
                    format!("read {} (it has no team column to scope)", scan.table_name),
                )
                .into());
            };
            let teams = self.teams(team.data_type())?;
            return Ok(Some(column("team").in_list(teams, false)));
        }
        Ok(None)
    }

    fn check_writes(&self, plan: &LogicalPlan) -> DfResult<()> {
        authorize(&self.identity, plan).map_err(DataFusionError::from)
    }
}

impl AnalyzerRule for AccessRule {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        self.check_writes(&plan)?;
        if self.identity.role != Role::Reader || self.identity.teams.is_empty() {
            return Ok(plan);
        }
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(scan) = node else {
                return Ok(Transformed::no(node));
            };
            let Some(predicate) = self.scope(&scan)? else {
                return Ok(Transformed::no(LogicalPlan::TableScan(scan)));
            };
            // Filter the full row, then keep the columns the scan kept.
            let projection = scan.projection.clone();
            let full = TableScanBuilder::new(scan.table_name.clone(), Arc::clone(&scan.source))
                .with_filters(scan.filters.clone())
                .with_fetch(scan.fetch)
                .build()?;
            let filtered = LogicalPlan::Filter(Filter::try_new(
                predicate,
                Arc::new(LogicalPlan::TableScan(full)),
            )?);
            let plan = match projection {
                Some(indices) => {
                    let schema = Arc::clone(filtered.schema());
                    let columns = indices
                        .iter()
                        .map(|i| Expr::Column(Column::from(schema.qualified_field(*i))))
                        .collect::<Vec<_>>();
                    LogicalPlanBuilder::from(filtered)
                        .project(columns)?
                        .build()?
                }
                None => filtered,
            };
            Ok(Transformed::yes(plan))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "finops_access"
    }
}
