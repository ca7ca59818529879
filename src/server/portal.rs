//! Execution of plain queries on one plan: a prepared query's portal (the plan made at Parse
//! with its parameters bound) and a simple-protocol query, each run by the session on the copy
//! of its state its previous query ran on ([`Session::planning_state`]), with one optimization
//! and one physical plan.
//!
//! The generic service parses a simple query again, plans it on a copy of the session state,
//! then hands it to a `DataFrame` that copies the state (settings and a registry of several
//! hundred functions) and optimizes it again; a portal's plan likewise. For the short queries
//! gateways and dashboards repeat (a cap lookup, a reservation, `SELECT 1`) that overhead was
//! most of a call. Here a prepared statement is also analyzed and optimized only once per
//! connection ([`PlanCache`]), one that reads only live tables is physically planned once per
//! parameter values, and a one-row projection without `FROM` is evaluated without a physical
//! plan. This module owns only plain queries (and, for portals, fully typed
//! parameters); everything else (commands, statements a hook answers, parameters whose type the
//! service infers from casts, anything in a failed transaction block) is left to the service,
//! unchanged.

use std::sync::{Arc, Weak};

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::metadata::ScalarAndMetadata;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, ParamValues, ScalarValue};
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::Parser;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use futures::{StreamExt, stream};
use pgwire::api::ClientInfo;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{QueryResponse, Response};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::response::TransactionStatus;
use pgwire::types::format::FormatOptions;

use crate::engine::{PlanningState, Session};

/// The statement type of a portal, as the generic service's parser makes it.
pub type PortalStatement = (String, Option<(Statement, LogicalPlan)>);

fn api_error(e: datafusion::error::DataFusionError) -> PgWireError {
    PgWireError::ApiError(Box::new(e))
}

/// Runs `portal` if it is a plain query this module owns, else `None` (the caller hands it to
/// the generic service).
pub async fn run_query<C>(
    session: &Session,
    plans: &PlanCache,
    parser: &Parser,
    client: &C,
    portal: &Portal<PortalStatement>,
) -> Option<PgWireResult<Response>>
where
    C: ClientInfo,
{
    if let (_, Some((statement, plan))) = &portal.statement.statement
        && crate::statements::insert_returning(statement)
        && client.transaction_status() != TransactionStatus::Error
    {
        return Some(insert_returning(session, parser, client, portal, plan).await);
    }
    let (_, Some((statement @ Statement::Query(_), plan))) = &portal.statement.statement else {
        return None;
    };
    if crate::server::hooks::parameters::is_set_config(statement) {
        return None;
    }
    // A failed transaction block answers every statement with an error: the service's
    // transaction hook does that.
    if client.transaction_status() == TransactionStatus::Error
        || !crate::statements::reads_only(plan)
    {
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
    Some(execute(session, plans, parser, client, portal, plan, types).await)
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
        || crate::server::hooks::parameters::is_set_config(statement)
    {
        return None;
    }
    let planning = session.planning_state();
    let plan = planning
        .state
        .statement_to_plan(DFStatement::Statement(Box::new(statement.clone())))
        .await;
    let plan = match plan.and_then(|plan| crate::statements::relabel(statement, plan)) {
        Ok(plan) => plan,
        Err(e) => {
            session.keep_state(planning);
            return Some(Err(api_error(e)));
        }
    };
    // `SELECT ... INTO` plans as a table creation, which the engine runs.
    if !crate::statements::reads_only(&plan) {
        session.keep_state(planning);
        return None;
    }
    let response = respond(&planning, client, &plan, &Format::UnifiedText).await;
    session.keep_state(planning);
    Some(response)
}

async fn execute<C>(
    session: &Session,
    plans: &PlanCache,
    parser: &Parser,
    client: &C,
    portal: &Portal<PortalStatement>,
    plan: &LogicalPlan,
    types: std::collections::HashMap<String, Option<datafusion::arrow::datatypes::DataType>>,
) -> PgWireResult<Response>
where
    C: ClientInfo,
{
    let values = bound_values(parser, portal, types)?;
    let planning = session.planning_state();
    let response = async {
        let state = &planning.state;
        let planning = &planning;
        let optimized = match plans.get(&portal.statement, planning.generation()) {
            Some(optimized) => optimized,
            None => {
                // A plan the optimizer cannot take with its parameters unbound is optimized
                // with their values below, which reports any error the query really has.
                match optimize_once(state, plan).ok().flatten() {
                    Some(optimized) => {
                        plans.insert(&portal.statement, planning.generation(), &optimized);
                        optimized
                    }
                    // Optimized with its parameters' values, as any query.
                    None => {
                        let plan = match &values {
                            Some(values) => plan.clone().replace_params_with_values(values),
                            None => Ok(plan.clone()),
                        };
                        let plan = plan.map_err(api_error)?;
                        let optimized = state.optimize(&plan).map_err(api_error)?;
                        return run(planning, client, &optimized, plan.schema(), format(portal))
                            .await;
                    }
                }
            }
        };
        let key = physical_key(values.as_ref());
        if let Some(physical) = key
            .as_ref()
            .and_then(|key| plans.physical(&portal.statement, planning.generation(), key))
        {
            let physical = reset_plan_states(physical).map_err(api_error)?;
            return send(
                planning,
                client,
                Rows::Live(physical),
                plan.schema(),
                format(portal),
            );
        }
        let optimized = match &values {
            Some(values) => optimized
                .replace_params_with_values(values)
                .map_err(api_error)?,
            None => optimized,
        };
        let mut rows = plan_rows(state, &optimized).await.map_err(api_error)?;
        if let (Rows::Plan(physical), Some(key)) = (&rows, key)
            && crate::live::reusable(physical)
        {
            let physical =
                crate::live::without_round_robin(Arc::clone(physical)).map_err(api_error)?;
            plans.insert_physical(
                &portal.statement,
                planning.generation(),
                key,
                Arc::clone(&physical),
            );
            rows = Rows::Live(physical);
        }
        send(planning, client, rows, plan.schema(), format(portal))
    }
    .await;
    session.keep_state(planning);
    response
}

/// The values bound to `portal`'s parameters, of the `types` its plan infers, or `None` for a
/// statement without parameters.
fn bound_values(
    parser: &Parser,
    portal: &Portal<PortalStatement>,
    types: std::collections::HashMap<String, Option<datafusion::arrow::datatypes::DataType>>,
) -> PgWireResult<Option<ParamValues>> {
    if types.is_empty() {
        return Ok(None);
    }
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
    Ok(Some(
        text_as_inferred(values, &inferred).map_err(api_error)?,
    ))
}

/// Run the `INSERT ... RETURNING` of `portal` (planned as `plan`), its rows in the portal's
/// result formats. (The engine's hook, which runs other DML, answers in text only.)
async fn insert_returning<C>(
    session: &Session,
    parser: &Parser,
    client: &C,
    portal: &Portal<PortalStatement>,
    plan: &LogicalPlan,
) -> PgWireResult<Response>
where
    C: ClientInfo,
{
    let types = plan.get_parameter_types().map_err(api_error)?;
    let values = bound_values(parser, portal, types)?;
    let output =
        crate::statements::execute_plan(session, Some("INSERT"), plan.clone(), values.as_ref())
            .await
            .map_err(crate::server::hooks::to_pgwire)?;
    let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    crate::server::hooks::respond(session, output, format(portal), options).await
}

fn format(portal: &Portal<PortalStatement>) -> &Format {
    &portal.result_column_format
}

/// `plan` (of a prepared statement, with its parameters unbound) analyzed and optimized once
/// for every execution, or `None` if that would fix what must be evaluated at each execution:
/// a stable function (`now()`, `current_setting`) or a session variable is folded into a
/// constant by the optimizer, so a plan with one is optimized again each time.
fn optimize_once(
    state: &datafusion::execution::SessionState,
    plan: &LogicalPlan,
) -> datafusion::error::Result<Option<LogicalPlan>> {
    let analyzed =
        state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {})?;
    let mut folds = false;
    analyzed.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                folds |= match e {
                    Expr::ScalarFunction(f) => f.func.signature().volatility == Volatility::Stable,
                    Expr::ScalarVariable(..) => true,
                    _ => false,
                };
                Ok(if folds {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            })
        })
    })?;
    if folds {
        return Ok(None);
    }
    Ok(Some(state.optimizer().optimize(
        analyzed,
        state,
        |_, _| {},
    )?))
}

/// `values` with text parameters in the string type their placeholder was inferred as. A text
/// parameter compared with a text column arrives as `Utf8`, while the column (and so the
/// placeholder) is `Utf8View`, which the comparison kernels refuse to mix.
fn text_as_inferred(
    values: ParamValues,
    inferred: &[Option<&DataType>],
) -> datafusion::error::Result<ParamValues> {
    let ParamValues::List(values) = values else {
        return Ok(values);
    };
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8);
    let values = values
        .into_iter()
        .zip(inferred.iter().copied().chain(std::iter::repeat(None)))
        .map(|(param, target)| match target {
            Some(target) if text(target) && text(&param.value.data_type()) => {
                let value = param.value.cast_to(target)?;
                Ok(ScalarAndMetadata::new(value, param.metadata))
            }
            _ => Ok(param),
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    Ok(ParamValues::List(values))
}

/// The parameter values a kept physical plan was made with (none for a statement without
/// parameters), or `None` for named parameters, whose plans are not kept.
fn physical_key(values: Option<&ParamValues>) -> Option<Vec<ScalarValue>> {
    match values {
        None => Some(Vec::new()),
        Some(ParamValues::List(values)) => Some(values.iter().map(|v| v.value.clone()).collect()),
        Some(ParamValues::Map(_)) => None,
    }
}

/// The optimized plans of one connection's prepared statements, each valid while its statement
/// exists and the session's settings are the ones it was optimized with.
///
/// A statement whose physical plan reads only live tables ([`crate::live::reusable`]: a point
/// query on `finops.cap_status`, which is what a gateway asks before every call) also keeps that
/// plan for each of its last few parameter values, and runs it again (its state reset) instead
/// of planning anew: such a plan reads current rows whenever it runs.
#[derive(Default)]
pub struct PlanCache {
    entries: std::sync::Mutex<Vec<CachedPlan>>,
}

struct CachedPlan {
    /// The statement, held weakly: a statement that was closed or replaced cannot match, and
    /// its entry goes at the next insertion.
    statement: Weak<StoredStatement<PortalStatement>>,
    generation: u64,
    plan: LogicalPlan,
    /// Physical plans by parameter values, most recent last.
    physical: Vec<(Vec<ScalarValue>, Arc<dyn ExecutionPlan>)>,
}

/// Entries past this many (live statements) drop the oldest.
const PLAN_CACHE_ENTRIES: usize = 64;

/// Physical plans kept per statement (for its most recent parameter values).
const PHYSICAL_PLANS_PER_STATEMENT: usize = 16;

impl PlanCache {
    fn get(
        &self,
        statement: &Arc<StoredStatement<PortalStatement>>,
        generation: u64,
    ) -> Option<LogicalPlan> {
        let entries = crate::lock(&self.entries);
        entries
            .iter()
            .find(|e| {
                e.generation == generation
                    && std::ptr::eq(e.statement.as_ptr(), Arc::as_ptr(statement))
            })
            .map(|e| e.plan.clone())
    }

    fn insert(
        &self,
        statement: &Arc<StoredStatement<PortalStatement>>,
        generation: u64,
        plan: &LogicalPlan,
    ) {
        let mut entries = crate::lock(&self.entries);
        entries.retain(|e| {
            e.generation == generation
                && e.statement.strong_count() > 0
                && !std::ptr::eq(e.statement.as_ptr(), Arc::as_ptr(statement))
        });
        if entries.len() >= PLAN_CACHE_ENTRIES {
            entries.remove(0);
        }
        entries.push(CachedPlan {
            statement: Arc::downgrade(statement),
            generation,
            plan: plan.clone(),
            physical: Vec::new(),
        });
    }

    fn physical(
        &self,
        statement: &Arc<StoredStatement<PortalStatement>>,
        generation: u64,
        key: &[ScalarValue],
    ) -> Option<Arc<dyn ExecutionPlan>> {
        let entries = crate::lock(&self.entries);
        let entry = entries.iter().find(|e| {
            e.generation == generation && std::ptr::eq(e.statement.as_ptr(), Arc::as_ptr(statement))
        })?;
        entry
            .physical
            .iter()
            .find(|(values, _)| values.as_slice() == key)
            .map(|(_, plan)| Arc::clone(plan))
    }

    /// Keep `physical` for `statement`'s `key`, if the statement's optimized plan is kept.
    fn insert_physical(
        &self,
        statement: &Arc<StoredStatement<PortalStatement>>,
        generation: u64,
        key: Vec<ScalarValue>,
        physical: Arc<dyn ExecutionPlan>,
    ) {
        let mut entries = crate::lock(&self.entries);
        let Some(entry) = entries.iter_mut().find(|e| {
            e.generation == generation && std::ptr::eq(e.statement.as_ptr(), Arc::as_ptr(statement))
        }) else {
            return;
        };
        entry.physical.retain(|(values, _)| *values != key);
        if entry.physical.len() >= PHYSICAL_PLANS_PER_STATEMENT {
            entry.physical.remove(0);
        }
        entry.physical.push((key, physical));
    }
}

/// Run `plan` on `state` (one optimization, one physical plan) and encode its rows in `format`.
async fn respond<C>(
    planning: &PlanningState,
    client: &C,
    plan: &LogicalPlan,
    format: &Format,
) -> PgWireResult<Response>
where
    C: ClientInfo,
{
    let optimized = planning.state.optimize(plan).map_err(api_error)?;
    run(planning, client, &optimized, plan.schema(), format).await
}

/// Run the optimized `plan` on `state` and encode its rows, described by `schema`, in `format`.
async fn run<C>(
    planning: &PlanningState,
    client: &C,
    optimized: &LogicalPlan,
    schema: &DFSchemaRef,
    format: &Format,
) -> PgWireResult<Response>
where
    C: ClientInfo,
{
    let rows = plan_rows(&planning.state, optimized)
        .await
        .map_err(api_error)?;
    send(planning, client, rows, schema, format)
}

/// How the rows of a query are made.
enum Rows {
    /// Computed while planning.
    One(RecordBatch),
    /// By running this physical plan.
    Plan(Arc<dyn ExecutionPlan>),
    /// By running this physical plan, which reads only live tables ([`crate::live::reusable`]):
    /// a few rows from memory, computed right here. Handing such a plan to the executor's
    /// runtime and its batches back would cost two wake-ups across threads, more than the plan.
    Live(Arc<dyn ExecutionPlan>),
}

/// The rows of the optimized `plan`. A plan that computes one row without reading anything
/// (`SELECT 1`, `SELECT finops.reserve(...)`) is evaluated directly, without a physical plan.
async fn plan_rows(
    state: &datafusion::execution::SessionState,
    optimized: &LogicalPlan,
) -> datafusion::error::Result<Rows> {
    if let Some(batch) = one_row(state, optimized)? {
        return Ok(Rows::One(batch));
    }
    let physical = state
        .query_planner()
        .create_physical_plan(optimized, state)
        .await?;
    Ok(Rows::Plan(physical))
}

/// Encode `rows`, described by `schema`, in `format`.
fn send<C>(
    planning: &PlanningState,
    client: &C,
    rows: Rows,
    schema: &DFSchemaRef,
    format: &Format,
) -> PgWireResult<Response>
where
    C: ClientInfo,
{
    let batches = match rows {
        Rows::One(batch) => stream::once(async move { Ok(batch) }).boxed(),
        Rows::Plan(physical) => planning
            .execute(physical)
            .map_err(crate::server::hooks::to_pgwire)?
            .boxed(),
        Rows::Live(physical) => execute_stream(physical, planning.task_ctx())
            .map_err(api_error)?
            .boxed(),
    };
    let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    let fields = Arc::new(super::rows::pg_fields(
        schema.as_arrow(),
        format,
        Some(options),
    )?);
    let rows = super::rows::stream_rows(Arc::clone(&fields), batches);
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
