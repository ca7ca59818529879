//! Execution of plain queries on one plan: a prepared query's portal (the plan made at Parse
//! with its parameters bound) and a simple-protocol query, each run by the session with one
//! copy of its state ([`Session::state`]), one optimization and one physical plan.
//!
//! The generic service parses a simple query again, plans it on a copy of the session state,
//! then hands it to a `DataFrame` that copies the state (settings and a registry of several
//! hundred functions) and optimizes it again; a portal's plan likewise. For the short queries
//! gateways and dashboards repeat (a cap lookup, a reservation, `SELECT 1`) that overhead was
//! most of a call. This module owns only plain queries (and, for portals, fully typed
//! parameters); everything else (commands, statements a hook answers, parameters whose type the
//! service infers from casts, anything in a failed transaction block) is left to the service,
//! unchanged.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::Schema;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::execute_stream;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::Parser;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch};
use futures::{StreamExt, stream};
use pgwire::api::ClientInfo;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{QueryResponse, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::messages::response::TransactionStatus;
use pgwire::types::format::FormatOptions;

use crate::engine::Session;

/// The statement type of a portal, as the generic service's parser makes it.
pub type PortalStatement = (String, Option<(Statement, LogicalPlan)>);

fn api_error(e: datafusion::error::DataFusionError) -> PgWireError {
    PgWireError::ApiError(Box::new(e))
}

/// Runs `portal` if it is a plain query this module owns, else `None` (the caller hands it to
/// the generic service).
pub async fn run_query<C>(
    session: &Session,
    parser: &Parser,
    client: &C,
    portal: &Portal<PortalStatement>,
) -> Option<PgWireResult<Response>>
where
    C: ClientInfo,
{
    let (_, Some((Statement::Query(_), plan))) = &portal.statement.statement else {
        return None;
    };
    // A failed transaction block answers every statement with an error: the service's
    // transaction hook does that.
    if client.transaction_status() == TransactionStatus::Error || !plain(plan) {
        return None;
    }
    let types = match plan.get_parameter_types() {
        Ok(types) => types,
        Err(e) => return Some(Err(api_error(e))),
    };
    // An untyped parameter gets its type from a cast around it, which the service works out.
    if types.values().any(Option::is_none) {
        return None;
    }
    Some(execute(session, parser, client, portal, plan, types).await)
}

/// Whether `plan` only reads (no command the engine or a hook runs).
fn plain(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
    )
}

/// Runs the simple-protocol `statement` (parsed and rewritten by [`crate::statements::parse`])
/// if it is a plain query, else `None` (the caller hands it to the generic service).
pub async fn run_simple_query<C>(
    session: &Session,
    client: &C,
    statement: &Statement,
) -> Option<PgWireResult<Response>>
where
    C: ClientInfo,
{
    if !matches!(statement, Statement::Query(_))
        || client.transaction_status() == TransactionStatus::Error
    {
        return None;
    }
    let planning = session.planning_state();
    let plan = planning
        .state
        .statement_to_plan(DFStatement::Statement(Box::new(statement.clone())))
        .await;
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            session.keep_state(planning);
            return Some(Err(api_error(e)));
        }
    };
    // `SELECT ... INTO` plans as a table creation, which the engine runs.
    if !plain(&plan) {
        session.keep_state(planning);
        return None;
    }
    let response = respond(&planning.state, client, &plan, &Format::UnifiedText).await;
    session.keep_state(planning);
    Some(response)
}

async fn execute<C>(
    session: &Session,
    parser: &Parser,
    client: &C,
    portal: &Portal<PortalStatement>,
    plan: &LogicalPlan,
    types: std::collections::HashMap<String, Option<datafusion::arrow::datatypes::DataType>>,
) -> PgWireResult<Response>
where
    C: ClientInfo,
{
    let plan = if types.is_empty() {
        plan.clone()
    } else {
        // `$1`, `$2`, ... in order, as the client binds them.
        let mut ordered: Vec<_> = types.into_iter().collect();
        ordered.sort_by_key(|(id, _)| {
            id.trim_start_matches('$')
                .parse::<u32>()
                .unwrap_or(u32::MAX)
        });
        let inferred: Vec<_> = ordered.into_iter().map(|(_, t)| t).collect();
        let inferred: Vec<_> = inferred.iter().map(Option::as_ref).collect();
        let wire = parser.get_parameter_types(&portal.statement.statement)?;
        let wire: Vec<_> = wire.iter().map(Some).collect();
        let values = deserialize_parameters_with_server_types(portal, &inferred, &wire)?;
        plan.clone()
            .replace_params_with_values(&values)
            .map_err(api_error)?
    };
    let planning = session.planning_state();
    let response = respond(&planning.state, client, &plan, &portal.result_column_format).await;
    session.keep_state(planning);
    response
}

/// Run `plan` on `state` (one optimization, one physical plan) and encode its rows in `format`.
/// A plan that computes one row without reading anything (`SELECT 1`, `SELECT
/// finops.reserve(...)`) is evaluated directly after its optimization, without a physical plan.
async fn respond<C>(
    state: &datafusion::execution::SessionState,
    client: &C,
    plan: &LogicalPlan,
    format: &Format,
) -> PgWireResult<Response>
where
    C: ClientInfo,
{
    let optimized = state.optimize(plan).map_err(api_error)?;
    let batches = match one_row(state, &optimized).map_err(api_error)? {
        Some(batch) => stream::once(async move { Ok(batch) }).boxed(),
        None => {
            let physical = state
                .query_planner()
                .create_physical_plan(&optimized, state)
                .await
                .map_err(api_error)?;
            execute_stream(physical, state.task_ctx())
                .map_err(api_error)?
                .boxed()
        }
    };
    let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    let fields = Arc::new(arrow_schema_to_pg_fields(
        plan.schema().as_arrow(),
        format,
        Some(options),
    )?);
    let row_fields = Arc::clone(&fields);
    let rows = batches
        .map(move |batch: datafusion::error::Result<RecordBatch>| {
            let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> = match batch {
                Ok(batch) => encode_recordbatch(Arc::clone(&row_fields), batch),
                Err(e) => Box::new(std::iter::once(Err(api_error(e)))),
            };
            stream::iter(rows)
        })
        .flatten();
    Ok(Response::Query(QueryResponse::new(fields, rows)))
}

/// The row of `plan` if it is a projection of one row that reads nothing (an optimized
/// `SELECT <expressions>` without `FROM`), computed directly; else `None`.
fn one_row(
    state: &datafusion::execution::SessionState,
    plan: &LogicalPlan,
) -> datafusion::error::Result<Option<RecordBatch>> {
    let LogicalPlan::Projection(projection) = plan else {
        return Ok(None);
    };
    let LogicalPlan::EmptyRelation(empty) = projection.input.as_ref() else {
        return Ok(None);
    };
    if !empty.produce_one_row || !empty.schema.fields().is_empty() {
        return Ok(None);
    }
    let mut subquery = false;
    for expr in &projection.expr {
        subquery |= expr.exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_)
                    | Expr::Exists(_)
                    | Expr::InSubquery(_)
                    | Expr::OuterReferenceColumn(..)
            ))
        })?;
    }
    if subquery {
        return Ok(None);
    }
    let input = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let schema = Arc::new(projection.schema.as_arrow().clone());
    let mut columns = Vec::with_capacity(projection.expr.len());
    for (expr, field) in projection.expr.iter().zip(schema.fields()) {
        let physical = state.create_physical_expr(expr.clone(), &empty.schema)?;
        let column = physical.evaluate(&input)?.into_array(1)?;
        let column = if column.data_type() == field.data_type() {
            column
        } else {
            cast(&column, field.data_type())?
        };
        columns.push(column);
    }
    Ok(Some(RecordBatch::try_new(schema, columns)?))
}
