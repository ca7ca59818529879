//! What each SQL statement does in the engine: parsing with the Postgres-compatible parser,
//! command tags, and running a statement (or an already planned one) in a [`Session`].
//!
//! It must not know about the wire protocol; the server turns [`Output`] into messages.

mod rewrite;

pub use rewrite::rewrite;

use datafusion::arrow::array::{Array, UInt64Array};
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{ObjectType, Statement};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use crate::engine::{Output, Session};
use crate::error::{Error, Result};

/// Parse `sql` into statements with the Postgres-compatible parser (the same the server uses).
pub fn parse(sql: &str) -> Result<Vec<Statement>> {
    let statements = PostgresCompatibilityParser::new()
        .parse(sql)
        .map_err(|e| Error::DataFusion(datafusion::error::DataFusionError::SQL(Box::new(e), None)))?;
    Ok(statements
        .into_iter()
        .map(|s| rewrite(&s).unwrap_or(s))
        .collect())
}

/// Whether the engine runs `statement` itself (its own DDL and DML, with exact command tags)
/// rather than leaving it to the generic query path.
pub fn intercepts(statement: &Statement) -> bool {
    command_tag(statement).is_some()
}

/// The command tag Postgres sends for `statement`, or `None` for row-returning statements.
pub fn command_tag(statement: &Statement) -> Option<&'static str> {
    Some(match statement {
        Statement::Insert(_) => "INSERT",
        Statement::Update { .. } => "UPDATE",
        Statement::Delete(_) => "DELETE",
        Statement::Truncate { .. } => "TRUNCATE TABLE",
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::CreateView(v) if v.materialized => "CREATE MATERIALIZED VIEW",
        Statement::CreateView(_) => "CREATE VIEW",
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        Statement::CreateDatabase { .. } => "CREATE DATABASE",
        Statement::CreateFunction(_) => "CREATE FUNCTION",
        Statement::Drop { object_type, .. } => match object_type {
            ObjectType::Table => "DROP TABLE",
            ObjectType::View => "DROP VIEW",
            ObjectType::MaterializedView => "DROP MATERIALIZED VIEW",
            ObjectType::Schema => "DROP SCHEMA",
            _ => "DROP",
        },
        Statement::DropFunction(_) => "DROP FUNCTION",
        _ => return None,
    })
}

/// Run one statement in `session`.
pub async fn execute(session: &Session, statement: Statement) -> Result<Output> {
    execute_with_params(session, statement, None).await
}

/// Plan and run one statement, binding `params` (`$1`, `$2`, ...) when given.
pub async fn execute_with_params(
    session: &Session,
    statement: Statement,
    params: Option<&ParamValues>,
) -> Result<Output> {
    let tag = command_tag(&statement);
    let plan = plan(session, statement).await?;
    execute_plan(session, tag, plan, params).await
}

/// Plan one statement in `session` without running it.
pub async fn plan(session: &Session, statement: Statement) -> Result<LogicalPlan> {
    let state = session.context().state();
    Ok(state
        .statement_to_plan(DFStatement::Statement(Box::new(statement)))
        .await?)
}

/// Run an already planned statement, binding `params` first when given.
pub async fn execute_plan(
    session: &Session,
    tag: Option<&'static str>,
    plan: LogicalPlan,
    params: Option<&ParamValues>,
) -> Result<Output> {
    let plan = match params {
        Some(p) => plan.replace_params_with_values(p)?,
        None => plan,
    };
    let df = session.context().execute_logical_plan(plan).await?;
    let Some(tag) = tag else {
        return Ok(Output::Rows(df));
    };
    let batches = df.collect().await?;
    let rows = match tag {
        "INSERT" | "UPDATE" | "DELETE" | "TRUNCATE TABLE" => Some(count_rows(&batches)),
        _ => None,
    };
    Ok(Output::Command {
        tag: tag.to_string(),
        rows,
    })
}

/// DataFusion DML returns one `count` row; sum it.
fn count_rows(batches: &[datafusion::arrow::array::RecordBatch]) -> usize {
    batches
        .iter()
        .filter(|b| b.num_columns() > 0)
        .filter_map(|b| b.column(0).as_any().downcast_ref::<UInt64Array>())
        .flat_map(|a| (0..a.len()).filter(|i| a.is_valid(*i)).map(|i| a.value(i)))
        .sum::<u64>() as usize
}
