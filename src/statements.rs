//! What each SQL statement does in the engine: parsing with the Postgres-compatible parser,
//! command tags, and running a statement (or an already planned one) in a [`Session`].
//!
//! It must not know about the wire protocol; the server turns [`Output`] into messages.

mod ddl;
mod labels;
mod returning;
mod rewrite;

pub use ddl::{
    PROVIDER_TABLES, VIEW_DEFINITIONS, provider_tables_schema, restore_provider_tables,
    restore_views, view_definitions_schema,
};

pub use labels::relabel;
pub use rewrite::{cast_parameters, rewrite};

use std::sync::LazyLock;

use datafusion::arrow::array::{Array, UInt64Array};
use datafusion::common::ParamValues;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, Statement as PlanStatement, WriteOp};
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{ObjectType, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

use crate::engine::{Output, Session};
use crate::error::{Error, Result};

/// Parse `sql` into statements with the Postgres-compatible parser (the same the server uses),
/// falling back to DataFusion's parser for its own statements (`CREATE EXTERNAL TABLE`).
pub fn parse(sql: &str) -> Result<Vec<DFStatement>> {
    // Building the parser tokenizes its table of client-query replacements: do it once.
    static PARSER: LazyLock<PostgresCompatibilityParser> =
        LazyLock::new(PostgresCompatibilityParser::new);
    match PARSER.parse(sql) {
        // `CREATE EXTERNAL TABLE ... STORED AS PARQUET` also parses as Hive DDL, which
        // DataFusion does not plan: it is DataFusion's own statement.
        Ok(statements)
            if statements
                .iter()
                .any(|s| matches!(s, Statement::CreateTable(create) if create.external)) =>
        {
            Ok(
                DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})?
                    .into_iter()
                    .collect(),
            )
        }
        Ok(statements) => Ok(statements
            .into_iter()
            .map(|s| DFStatement::Statement(Box::new(rewrite(&s).unwrap_or(s))))
            .collect()),
        Err(postgres_error) => match DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {}) {
            Ok(statements)
                if statements
                    .iter()
                    .any(|s| !matches!(s, DFStatement::Statement(_))) =>
            {
                Ok(statements.into_iter().collect())
            }
            _ => Err(Error::DataFusion(datafusion::error::DataFusionError::SQL(
                Box::new(postgres_error),
                None,
            ))),
        },
    }
}

/// The command tag of a parsed statement (`None` for row-returning statements).
pub fn df_command_tag(statement: &DFStatement) -> Option<&'static str> {
    match statement {
        DFStatement::Statement(s) => command_tag(s),
        DFStatement::CreateExternalTable(_) => Some("CREATE EXTERNAL TABLE"),
        DFStatement::CopyTo(_) => Some("COPY"),
        _ => None,
    }
}

/// Whether `statement` is an `INSERT ... RETURNING`, which the engine plans itself.
pub fn insert_returning(statement: &Statement) -> bool {
    returning::insert_returning(statement).is_some()
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
        Statement::Prepare { .. } => "PREPARE",
        Statement::Deallocate { .. } => "DEALLOCATE",
        _ => return None,
    })
}

/// Run one statement in `session`.
pub async fn execute(session: &Session, statement: DFStatement) -> Result<Output> {
    if let DFStatement::Statement(s) = &statement
        && let Some(mv) = crate::materialized::recognise(s)
    {
        return materialized_view(session, mv?).await;
    }
    let tag = df_command_tag(&statement);
    let state = session.context().state();
    let plan = match statement {
        DFStatement::Statement(s) if returning::insert_returning(&s).is_some() => {
            plan(session, *s).await?
        }
        DFStatement::Statement(s) => {
            let plan = state
                .statement_to_plan(DFStatement::Statement(s.clone()))
                .await?;
            relabel(&s, plan)?
        }
        other => state.statement_to_plan(other).await?,
    };
    execute_plan(session, tag, plan, None).await
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

/// Run `CREATE`/`REFRESH`/`DROP MATERIALIZED VIEW`.
pub async fn materialized_view(
    session: &Session,
    statement: crate::materialized::MvStatement,
) -> Result<Output> {
    let views = session.engine().views()?;
    let tag = match statement {
        refresh @ crate::materialized::MvStatement::Refresh(_) => {
            // Any user may bring a view up to date; it is computed as the engine, for everyone.
            views
                .execute(session.engine().base_context(), refresh)
                .await?
        }
        other => {
            crate::access::authorize_ddl(session.identity(), other.command_tag())?;
            views.execute(session.context(), other).await?
        }
    };
    Ok(Output::command(tag))
}

/// `REFRESH MATERIALIZED VIEW name` (which the SQL parser does not know), if `sql` is one.
pub fn refresh_statement(sql: &str) -> Option<Result<crate::materialized::MvStatement>> {
    crate::materialized::parse_refresh(sql)
        .map(|name| name.map(crate::materialized::MvStatement::Refresh))
}

/// Whether `plan` only reads (no command the engine or a hook runs).
pub fn reads_only(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Explain(_)
    )
}

/// Plan one statement in `session` without running it.
pub async fn plan(session: &Session, statement: Statement) -> Result<LogicalPlan> {
    let state = session.context().state();
    if let Some(insert) = returning::insert_returning(&statement) {
        return returning::plan(&state, insert).await;
    }
    let plan = state
        .statement_to_plan(DFStatement::Statement(Box::new(statement.clone())))
        .await?;
    Ok(relabel(&statement, plan)?)
}

/// Run an already planned statement, binding `params` first when given.
pub async fn execute_plan(
    session: &Session,
    tag: Option<&'static str>,
    plan: LogicalPlan,
    params: Option<&ParamValues>,
) -> Result<Output> {
    let plan = match params {
        // A PREPARE's parameters are its statement's, bound by each EXECUTE.
        Some(p) if !matches!(plan, LogicalPlan::Statement(PlanStatement::Prepare(_))) => {
            plan.replace_params_with_values(p)?
        }
        _ => plan,
    };
    if let Some(insert) = returning::insert_of(&plan) {
        return run_insert_returning(session, tag, insert.clone(), plan).await;
    }
    let plan = nullable_insert_values(plan)?;
    crate::access::authorize(session.identity(), &plan)?;
    let touches_prices = match &plan {
        LogicalPlan::Dml(dml) => {
            let (schema, table) = crate::pricing::MODEL_PRICES;
            dml.table_name.table() == table && dml.table_name.schema().is_none_or(|s| s == schema)
        }
        _ => false,
    };
    if touches_prices {
        return price_book_dml(session, tag, plan).await;
    }
    if let LogicalPlan::Dml(dml) = &plan
        && let Some(table) =
            crate::engine::ConfigTable::of(dml.table_name.schema(), dml.table_name.table())
    {
        return config_table_dml(session, tag, plan, table).await;
    }
    match plan {
        LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
            return ddl::create_table(session, create).await;
        }
        LogicalPlan::Ddl(DdlStatement::CreateExternalTable(ref create)) => {
            let create = create.as_ref().clone();
            return ddl::create_external_table(session, create, plan).await;
        }
        LogicalPlan::Ddl(DdlStatement::CreateView(ref create)) => {
            let create = create.clone();
            return ddl::create_view(session, &create, plan).await;
        }
        LogicalPlan::Ddl(DdlStatement::DropView(ref drop)) => {
            let drop = drop.clone();
            return ddl::drop_view(session, &drop, plan).await;
        }
        LogicalPlan::Ddl(DdlStatement::DropTable(ref drop)) => {
            if let Some(output) = ddl::drop_table(session, drop).await? {
                return Ok(output);
            }
        }
        _ => {}
    }
    let changed = match &plan {
        LogicalPlan::Dml(dml) => Some((
            dml.table_name.to_string(),
            matches!(dml.op, datafusion::logical_expr::WriteOp::Insert(_)),
        )),
        _ => None,
    };
    // `DEALLOCATE ALL` (unless a statement is called "all").
    if let LogicalPlan::Statement(PlanStatement::Deallocate(d)) = &plan
        && d.name.eq_ignore_ascii_case("all")
        && !session.is_prepared(&d.name)
    {
        session.deallocate_all().await;
        return Ok(Output::command("DEALLOCATE ALL"));
    }
    let prepared = match &plan {
        LogicalPlan::Statement(PlanStatement::Prepare(p)) => Some((p.name.clone(), true)),
        LogicalPlan::Statement(PlanStatement::Deallocate(d)) => Some((d.name.clone(), false)),
        _ => None,
    };
    let df = session.context().execute_logical_plan(plan).await?;
    if let Some((name, made)) = prepared {
        session.note_prepared(&name, made);
    }
    let Some(tag) = tag else {
        return Ok(Output::Rows(df));
    };
    let batches = df.collect().await?;
    let rows = match tag {
        "INSERT" | "UPDATE" | "DELETE" | "TRUNCATE TABLE" => Some(count_rows(&batches)),
        _ => None,
    };
    if let Some((table, appended)) = changed
        && rows != Some(0)
    {
        session.engine().data_changed(&table, appended).await;
    }
    Ok(Output::Command {
        tag: tag.to_string(),
        rows,
    })
}

/// Run an INSERT ... RETURNING (`plan`, whose INSERT is `insert`; parameters bound): the rows
/// the INSERT writes are computed once, written as they are (through every check an INSERT of
/// the table gets) and read by the RETURNING list.
async fn run_insert_returning(
    session: &Session,
    tag: Option<&'static str>,
    insert: LogicalPlan,
    plan: LogicalPlan,
) -> Result<Output> {
    let insert = nullable_insert_values(insert)?;
    // What the INSERT reads is checked before it is read.
    crate::access::authorize(session.identity(), &insert)?;
    let LogicalPlan::Dml(dml) = &insert else {
        return Err(Error::Internal(
            "INSERT ... RETURNING without an INSERT".into(),
        ));
    };
    // A usage table skips rows whose event_id it has and fills defaults for NULLs as it
    // stores them, so the rows computed here are not those it keeps.
    if let Ok(provider) = datafusion::datasource::source_as_provider(&dml.target)
        && let Some(table) = provider.downcast_ref::<crate::storage::DurableTable>()
        && table.options().kind == crate::storage::TableKind::Usage
    {
        return Err(Error::Unsupported(format!(
            "INSERT ... RETURNING into the usage table {} (it skips rows already stored)",
            dml.table_name
        )));
    }
    let rows = collect(session, dml.input.as_ref().clone()).await?;
    let written = returning::writing(dml, rows.clone())?;
    let tag = tag.unwrap_or("INSERT");
    Box::pin(execute_plan(session, Some(tag), written, None)).await?;
    let returned = returning::over(plan, &rows)?;
    let schema = std::sync::Arc::new(returned.schema().as_arrow().clone());
    let batches = collect(session, returned).await?;
    Ok(Output::Returned {
        tag,
        schema,
        batches,
    })
}

/// The INSERT `plan` with the rows of its `VALUES` nullable. DataFusion plans an INSERT's
/// `VALUES` with the target columns' nullability, so a NULL written into a NOT NULL column
/// failed before reaching the table, as an Arrow error about a `columnN` (SQLSTATE 22023). Let
/// through, the NULL is refused by the table as Postgres refuses it: 23502, naming the column
/// and the row.
fn nullable_insert_values(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::common::DFSchema;
    use datafusion::common::tree_node::{Transformed, TreeNode};
    let LogicalPlan::Dml(mut dml) = plan else {
        return Ok(plan);
    };
    if !matches!(dml.op, WriteOp::Insert(_)) {
        return Ok(LogicalPlan::Dml(dml));
    }
    let input = std::sync::Arc::unwrap_or_clone(dml.input);
    let input = input.transform_up(|node| match node {
        LogicalPlan::Values(mut values)
            if values.schema.fields().iter().any(|f| !f.is_nullable()) =>
        {
            let fields: Vec<_> = values
                .schema
                .iter()
                .map(|(qualifier, field)| {
                    (
                        qualifier.cloned(),
                        std::sync::Arc::new(field.as_ref().clone().with_nullable(true)),
                    )
                })
                .collect();
            values.schema = std::sync::Arc::new(DFSchema::new_with_metadata(
                fields,
                values.schema.metadata().clone(),
            )?);
            Ok(Transformed::yes(LogicalPlan::Values(values)))
        }
        // Above a changed node the schema follows its input.
        other => other.recompute_schema().map(Transformed::yes),
    })?;
    dml.input = std::sync::Arc::new(input.data);
    Ok(LogicalPlan::Dml(dml))
}

/// DML on `finops.model_prices`: the price book the statement would leave (INSERT: the rows
/// there plus the new ones; UPDATE: the rows it does not touch plus their updated versions;
/// DELETE: the rows it keeps) is validated before anything is stored, so an invalid change fails
/// with SQLSTATE 23514 and changes nothing; every change reloads the UDFs' price index,
/// re-pricing history.
async fn price_book_dml(
    session: &Session,
    tag: Option<&'static str>,
    plan: LogicalPlan,
) -> Result<Output> {
    let LogicalPlan::Dml(dml) = &plan else {
        return Err(Error::Internal("price-book DML without a DML plan".into()));
    };
    let (schema, table) = crate::pricing::MODEL_PRICES;
    let qualified = format!("{schema}.{table}");
    let rows = match dml.op {
        WriteOp::Insert(InsertOp::Append) => {
            let new_rows = collect(session, dml.input.as_ref().clone()).await?;
            let mut all = session.engine().prices().snapshot().rows().to_vec();
            all.extend(crate::pricing::rows_of(&new_rows)?);
            crate::pricing::validate(all)?;
            session.append(&qualified, new_rows).await?
        }
        WriteOp::Update | WriteOp::Delete => {
            crate::pricing::validate(rows_after(session, dml).await?)?;
            count_rows(&collect(session, plan.clone()).await?) as u64
        }
        _ => count_rows(&collect(session, plan.clone()).await?) as u64,
    };
    session.engine().reload_prices(session).await?;
    session.engine().data_changed(&qualified, false).await;
    Ok(Output::Command {
        tag: tag.unwrap_or("INSERT").to_string(),
        rows: Some(rows as usize),
    })
}

/// DML on a configuration table the FinOps functions index: the table as the statement would
/// leave it is validated first, so a bad statement changes nothing (SQLSTATE 23514); after the
/// change the index is rebuilt, so the next query of `finops.usage` sees it.
async fn config_table_dml(
    session: &Session,
    tag: Option<&'static str>,
    plan: LogicalPlan,
    table: crate::engine::ConfigTable,
) -> Result<Output> {
    let LogicalPlan::Dml(dml) = &plan else {
        return Err(Error::Internal(
            "configuration DML without a DML plan".into(),
        ));
    };
    let (schema, name) = table.name();
    let qualified = format!("{schema}.{name}");
    let rows = match dml.op {
        WriteOp::Insert(InsertOp::Append) => {
            let new_rows = collect(session, dml.input.as_ref().clone()).await?;
            let mut all = session
                .context()
                .sql(&format!("SELECT * FROM {qualified}"))
                .await?
                .collect()
                .await?;
            all.extend(new_rows.iter().cloned());
            table.validate(session, &all).await?;
            session.append(&qualified, new_rows).await?
        }
        WriteOp::Update | WriteOp::Delete => {
            table
                .validate(session, &batches_after(session, dml).await?)
                .await?;
            count_rows(&collect(session, plan.clone()).await?) as u64
        }
        _ => count_rows(&collect(session, plan.clone()).await?) as u64,
    };
    session.engine().reload_config(session, table).await?;
    session.engine().data_changed(&qualified, false).await;
    Ok(Output::Command {
        tag: tag.unwrap_or("INSERT").to_string(),
        rows: Some(rows as usize),
    })
}

/// The rows of the table once an UPDATE or DELETE has run, computed without running it. The
/// planner gives UPDATE as `Projection(Filter(predicate, scan))` and DELETE as
/// `Filter(predicate, scan)` (no `Filter` without WHERE): the rows kept as they are are those for
/// which the predicate is not true, and UPDATE's own input yields the new versions of the others.
async fn batches_after(
    session: &Session,
    dml: &datafusion::logical_expr::DmlStatement,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
    use datafusion::logical_expr::Filter;
    let (source, updated) = match (&dml.op, dml.input.as_ref()) {
        (WriteOp::Update, LogicalPlan::Projection(projection)) => {
            (projection.input.as_ref(), Some(dml.input.as_ref()))
        }
        (WriteOp::Delete, input) => (input, None),
        _ => {
            return Err(Error::Internal(format!(
                "unexpected plan for {} on {}",
                dml.op, dml.table_name
            )));
        }
    };
    let mut batches = Vec::new();
    if let LogicalPlan::Filter(filter) = source {
        let kept = LogicalPlan::Filter(Filter::try_new(
            filter.predicate.clone().is_not_true(),
            std::sync::Arc::clone(&filter.input),
        )?);
        batches.extend(collect(session, kept).await?);
    }
    if let Some(updated) = updated {
        batches.extend(collect(session, updated.clone()).await?);
    }
    Ok(batches)
}

/// [`batches_after`] as price rows.
async fn rows_after(
    session: &Session,
    dml: &datafusion::logical_expr::DmlStatement,
) -> Result<Vec<finops_udfs::pricing::PriceRow>> {
    crate::pricing::rows_of(&batches_after(session, dml).await?)
}

async fn collect(
    session: &Session,
    plan: LogicalPlan,
) -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
    Ok(session
        .context()
        .execute_logical_plan(plan)
        .await?
        .collect()
        .await?)
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
