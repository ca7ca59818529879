//! `INSERT ... RETURNING`, which DataFusion does not plan.
//!
//! The statement is planned as its RETURNING list over an [`InsertedRows`] node whose one input
//! is the INSERT without RETURNING, so that a prepared statement describes the columns it
//! returns and binds its parameters as any plan. To run it, the rows the INSERT would write are
//! computed once (defaults filled, volatile ones such as `gen_random_uuid()` evaluated once),
//! written by the INSERT as they are, and the RETURNING list is evaluated over those same rows.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, TableReference};
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{
    DmlStatement, Expr, Extension, LogicalPlan, LogicalPlanBuilder, UserDefinedLogicalNodeCore,
};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Insert, SetExpr, Statement, TableObject};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, Result};

/// The rows an INSERT writes, as the relation its RETURNING list reads. Its one input is the
/// INSERT (a DML plan); its schema is the target table's, under the name or alias the
/// statement gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InsertedRows {
    insert: LogicalPlan,
    schema: DFSchemaRef,
}

impl PartialOrd for InsertedRows {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.insert.partial_cmp(&other.insert)
    }
}

impl UserDefinedLogicalNodeCore for InsertedRows {
    fn name(&self) -> &str {
        "InsertedRows"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.insert]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "InsertedRows")
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> datafusion::error::Result<Self> {
        let insert = inputs.pop().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal("InsertedRows without its INSERT".into())
        })?;
        Ok(InsertedRows {
            insert,
            schema: Arc::clone(&self.schema),
        })
    }
}

/// The INSERT of `statement`, if it has a RETURNING list.
pub fn insert_returning(statement: &Statement) -> Option<&Insert> {
    match statement {
        Statement::Insert(insert) if insert.returning.is_some() => Some(insert),
        _ => None,
    }
}

/// Plan `insert` (which has a RETURNING list) as its RETURNING list over [`InsertedRows`].
pub async fn plan(state: &SessionState, insert: &Insert) -> Result<LogicalPlan> {
    let Some(items) = insert.returning.clone() else {
        return Err(Error::Internal("INSERT without RETURNING".into()));
    };
    let TableObject::TableName(table) = &insert.table else {
        return Err(Error::Unsupported(
            "INSERT ... RETURNING into a table function".into(),
        ));
    };
    // The alias only names the table in RETURNING (DataFusion's INSERT takes none).
    let mut bare = insert.clone();
    bare.returning = None;
    bare.table_alias = None;
    let dml = state
        .statement_to_plan(DFStatement::Statement(Box::new(Statement::Insert(bare))))
        .await?;
    // The RETURNING list planned as a query of the table (under its alias, if any), whose scan
    // is then replaced by the inserted rows.
    let alias = match &insert.table_alias {
        Some(alias) => format!(" AS {}", alias.alias),
        None => String::new(),
    };
    let mut select = Parser::parse_sql(
        &PostgreSqlDialect {},
        &format!("SELECT 1 FROM {table}{alias}"),
    )
    .map_err(|e| Error::Internal(format!("RETURNING of {table}: {e}")))?;
    let Some(Statement::Query(mut query)) = select.pop() else {
        return Err(Error::Internal(format!("RETURNING of {table}")));
    };
    let SetExpr::Select(body) = query.body.as_mut() else {
        return Err(Error::Internal(format!("RETURNING of {table}")));
    };
    body.projection = items;
    let query = Statement::Query(query);
    let returning = state
        .statement_to_plan(DFStatement::Statement(Box::new(query.clone())))
        .await?;
    // Columns named as Postgres names them (`?column?`, `upper`).
    let returning = super::relabel(&query, returning)?;
    // A subquery in RETURNING would read its tables after the INSERT, not as of its start as
    // in Postgres.
    let mut scans = 0;
    returning.apply_with_subqueries(|node| {
        scans += usize::from(matches!(node, LogicalPlan::TableScan(_)));
        Ok(TreeNodeRecursion::Continue)
    })?;
    if scans != 1 {
        return Err(Error::Unsupported(
            "a subquery in an INSERT's RETURNING list".into(),
        ));
    }
    let planned = returning
        .transform_up(|node| match node {
            LogicalPlan::TableScan(scan) => {
                Ok(Transformed::yes(LogicalPlan::Extension(Extension {
                    node: Arc::new(InsertedRows {
                        insert: dml.clone(),
                        schema: Arc::clone(&scan.projected_schema),
                    }),
                })))
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    Ok(planned)
}

/// The INSERT inside `plan`, if `plan` is an INSERT ... RETURNING planned by [`plan`].
pub fn insert_of(plan: &LogicalPlan) -> Option<&LogicalPlan> {
    let mut found = None;
    plan.apply(|node| {
        if let LogicalPlan::Extension(ext) = node
            && let Some(rows) = ext.node.as_any().downcast_ref::<InsertedRows>()
        {
            found = Some(&rows.insert);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .ok()?;
    found
}

/// `insert` (a DML plan) writing `rows` instead of computing them.
pub fn writing(insert: &DmlStatement, rows: Vec<RecordBatch>) -> Result<LogicalPlan> {
    let mut dml = insert.clone();
    dml.input = Arc::new(scan_of(
        dml.input.schema().inner().clone(),
        rows,
        "inserted",
    )?);
    Ok(LogicalPlan::Dml(dml))
}

/// `plan`'s RETURNING list over `rows`, the rows its INSERT wrote.
pub fn over(plan: LogicalPlan, rows: &[RecordBatch]) -> Result<LogicalPlan> {
    Ok(plan
        .transform_up(|node| match node {
            LogicalPlan::Extension(ext) => {
                let Some(inserted) = ext.node.as_any().downcast_ref::<InsertedRows>() else {
                    return Ok(Transformed::no(LogicalPlan::Extension(ext)));
                };
                let name = inserted
                    .schema
                    .iter()
                    .next()
                    .and_then(|(qualifier, _)| qualifier.cloned())
                    .unwrap_or_else(|| TableReference::bare("inserted"));
                let scan = scan_of(inserted.schema.inner().clone(), rows.to_vec(), name)
                    .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
                Ok(Transformed::yes(scan))
            }
            other => other.recompute_schema().map(Transformed::yes),
        })?
        .data)
}

/// A scan of `rows` as a table called `name` with `schema`'s columns (the rows' own types).
fn scan_of(
    schema: datafusion::arrow::datatypes::SchemaRef,
    rows: Vec<RecordBatch>,
    name: impl Into<TableReference>,
) -> Result<LogicalPlan> {
    let schema = match rows.first() {
        Some(batch) => batch.schema(),
        None => schema,
    };
    let table = MemTable::try_new(schema, vec![rows])?;
    Ok(LogicalPlanBuilder::scan(name, provider_as_source(Arc::new(table)), None)?.build()?)
}
