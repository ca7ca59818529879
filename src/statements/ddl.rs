//! DDL that must outlive the process: `CREATE TABLE` and `DROP TABLE` of durable tables, and the
//! definitions of provider tables (`CREATE EXTERNAL TABLE`) and of views (`CREATE VIEW`),
//! replayed at start.
//!
//! It must not know about the wire protocol or how storage lays out files.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::{ScalarValue, TableReference};
use datafusion::logical_expr::{
    CreateExternalTable, CreateMemoryTable, CreateView, DropTable, DropView, Expr, LogicalPlan,
};

use crate::engine::{Output, Session};
use crate::error::{Error, Result};
use crate::schema::timestamp_type;
use crate::storage::{ColumnDefault, TableOptions};

/// Where provider table definitions are kept.
pub const PROVIDER_TABLES: (&str, &str) = ("finops", "provider_tables");

/// Columns of `finops.provider_tables`.
pub fn provider_tables_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("location", DataType::Utf8, false),
        Field::new("definition", DataType::Utf8, false),
        Field::new("created_at", timestamp_type(), false),
    ]))
}

/// Where the definitions of views created with `CREATE VIEW` are kept.
pub const VIEW_DEFINITIONS: (&str, &str) = ("finops", "view_definitions");

/// Columns of `finops.view_definitions`: the schema-qualified name and the `CREATE VIEW`
/// statement, replayed in creation order at start.
pub fn view_definitions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("definition", DataType::Utf8, false),
        Field::new("created_at", timestamp_type(), false),
    ]))
}

/// `(schema, table)` of `name` with the session's defaults filled in.
fn qualify(session: &Session, name: &TableReference) -> (String, String) {
    let state = session.context().state();
    let defaults = &state.config_options().catalog;
    match name {
        TableReference::Bare { table } => (defaults.default_schema.clone(), table.to_string()),
        TableReference::Partial { schema, table } | TableReference::Full { schema, table, .. } => {
            (schema.to_string(), table.to_string())
        }
    }
}

fn default_of(expr: &Expr) -> Option<ColumnDefault> {
    match expr {
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => Some(ColumnDefault::Int64(*v)),
        Expr::Literal(ScalarValue::Int32(Some(v)), _) => Some(ColumnDefault::Int64(i64::from(*v))),
        Expr::Literal(ScalarValue::Float64(Some(v)), _) => Some(ColumnDefault::Float64(*v)),
        Expr::Literal(ScalarValue::Boolean(Some(v)), _) => Some(ColumnDefault::Boolean(*v)),
        Expr::Literal(ScalarValue::Utf8(Some(v)), _) => Some(ColumnDefault::Text(v.clone())),
        Expr::Cast(cast) => default_of(&cast.expr),
        _ => None,
    }
}

/// `CREATE TABLE [IF NOT EXISTS] name (...)` and `CREATE TABLE name AS query`: a durable config
/// table in any schema.
pub async fn create_table(session: &Session, create: CreateMemoryTable) -> Result<Output> {
    let (schema_name, table_name) = qualify(session, &create.name);
    let catalog = session.engine().catalog()?;
    let Some(schema) = catalog.schema(&schema_name) else {
        return Err(Error::InvalidParameter(format!(
            "schema \"{schema_name}\" does not exist"
        )));
    };
    if schema.table_exist(&table_name) {
        if create.if_not_exists {
            return Ok(Output::command("CREATE TABLE"));
        }
        return Err(Error::TableExists(format!("{schema_name}.{table_name}")));
    }
    if create.temporary || create.or_replace {
        return Err(Error::Unsupported(
            "CREATE TEMPORARY / OR REPLACE TABLE (tables are durable; DROP it first)".into(),
        ));
    }
    let arrow_schema: SchemaRef = Arc::new(create.input.schema().as_arrow().clone());
    let mut options = TableOptions::config();
    for (column, expr) in &create.column_defaults {
        let default = default_of(expr).ok_or_else(|| {
            Error::Unsupported(format!("DEFAULT of column \"{column}\" must be a constant"))
        })?;
        options.defaults.push((column.clone(), default));
    }
    let storage = session.engine().storage();
    let table = storage
        .create_table(
            &schema_name,
            &table_name,
            Arc::clone(&arrow_schema),
            options,
        )
        .await?;
    schema.register_table(table_name.clone(), Arc::new(table))?;
    if !matches!(create.input.as_ref(), LogicalPlan::EmptyRelation(_)) {
        let rows = session
            .context()
            .execute_logical_plan(create.input.as_ref().clone())
            .await?
            .collect()
            .await?;
        session
            .append(&format!("{schema_name}.{table_name}"), rows)
            .await?;
    }
    Ok(Output::command("CREATE TABLE"))
}

/// `DROP TABLE`: a durable table leaves storage; a provider table forgets its definition.
/// `None` when the table is neither (DataFusion drops it).
pub async fn drop_table(session: &Session, drop: &DropTable) -> Result<Option<Output>> {
    let (schema_name, table_name) = qualify(session, &drop.name);
    let storage = session.engine().storage();
    if (schema_name.as_str(), table_name.as_str()) == PROVIDER_TABLES
        || (schema_name.as_str(), table_name.as_str()) == VIEW_DEFINITIONS
        || (schema_name == "finops" && table_name == crate::schema::USAGE_EVENTS)
    {
        return Err(Error::PermissionDenied(format!(
            "{schema_name}.{table_name} is a built-in table"
        )));
    }
    let catalog = session.engine().catalog()?;
    if storage.table(&schema_name, &table_name).is_some() {
        storage.drop_table(&schema_name, &table_name).await?;
        if let Some(schema) = catalog.schema(&schema_name) {
            schema.deregister_table(&table_name)?;
        }
        return Ok(Some(Output::command("DROP TABLE")));
    }
    let qualified = format!("{schema_name}.{table_name}");
    if forget_provider_table(session, &qualified).await? > 0 {
        if let Some(schema) = catalog.schema(&schema_name) {
            schema.deregister_table(&table_name)?;
        }
        session.engine().data_changed(&qualified, false).await;
        return Ok(Some(Output::command("DROP TABLE")));
    }
    Ok(None)
}

async fn forget_provider_table(session: &Session, qualified: &str) -> Result<u64> {
    forget(session, PROVIDER_TABLES, qualified).await
}

/// Delete the row named `qualified` from the definitions table `table`; how many went.
async fn forget(session: &Session, table: (&str, &str), qualified: &str) -> Result<u64> {
    let escaped = qualified.replace('\'', "''");
    let batches = session
        .context()
        .sql(&format!(
            "DELETE FROM {}.{} WHERE name = '{escaped}'",
            table.0, table.1
        ))
        .await?
        .collect()
        .await?;
    Ok(batches
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
        })
        .flat_map(|a| a.values().iter().copied())
        .sum())
}

/// `CREATE EXTERNAL TABLE`: registered by DataFusion (the provider factories), then its
/// definition is stored so it comes back after a restart.
pub async fn create_external_table(
    session: &Session,
    create: CreateExternalTable,
    plan: LogicalPlan,
) -> Result<Output> {
    let (schema_name, table_name) = qualify(session, &create.name);
    let catalog = session.engine().catalog()?;
    if catalog.schema(&schema_name).is_none() {
        catalog.register_schema(&schema_name, Arc::new(MemorySchemaProvider::new()))?;
    }
    session.context().execute_logical_plan(plan).await?;
    let Some(definition) = create.definition.clone() else {
        return Ok(Output::command("CREATE EXTERNAL TABLE"));
    };
    let qualified = format!("{schema_name}.{table_name}");
    forget_provider_table(session, &qualified).await?;
    let now = chrono::Utc::now().timestamp_micros();
    let row = RecordBatch::try_new(
        provider_tables_schema(),
        vec![
            Arc::new(StringArray::from(vec![qualified.clone()])),
            Arc::new(StringArray::from(vec![create.file_type.clone()])),
            Arc::new(StringArray::from(vec![create.locations.join(",")])),
            Arc::new(StringArray::from(vec![definition])),
            Arc::new(TimestampMicrosecondArray::from(vec![now]).with_timezone("UTC")),
        ],
    )
    .map_err(|e| Error::Internal(e.to_string()))?;
    session
        .append(
            &format!("{}.{}", PROVIDER_TABLES.0, PROVIDER_TABLES.1),
            vec![row],
        )
        .await?;
    session.engine().data_changed(&qualified, false).await;
    Ok(Output::command("CREATE EXTERNAL TABLE"))
}

/// Re-create every stored provider table; one that fails (its files are gone) is logged and
/// skipped so the rest keep working.
pub async fn restore_provider_tables(session: &Session) -> Result<()> {
    for (name, definition) in stored_definitions(session, PROVIDER_TABLES).await? {
        if let Err(e) = session.context().sql(&definition).await {
            log::warn!("provider table {name} could not be restored: {e}");
        }
    }
    Ok(())
}

/// `(name, definition)` of every row of the definitions table `table`, oldest first.
async fn stored_definitions(
    session: &Session,
    table: (&str, &str),
) -> Result<Vec<(String, String)>> {
    let batches = session
        .context()
        .sql(&format!(
            "SELECT name, definition FROM {}.{} ORDER BY created_at",
            table.0, table.1
        ))
        .await?
        .collect()
        .await?;
    let mut stored = Vec::new();
    for batch in batches {
        let names = batch.column(0).as_any().downcast_ref::<StringArray>();
        let definitions = batch.column(1).as_any().downcast_ref::<StringArray>();
        let (Some(names), Some(definitions)) = (names, definitions) else {
            continue;
        };
        for (name, definition) in names.iter().zip(definitions.iter()) {
            if let (Some(name), Some(definition)) = (name, definition) {
                stored.push((name.to_string(), definition.to_string()));
            }
        }
    }
    Ok(stored)
}

/// Whether `schema.name` is one of the views finops-db creates itself at every start.
fn is_builtin_view(qualified: &str) -> bool {
    qualified == crate::builtin_sql::USAGE_VIEW.0
        || crate::builtin_sql::builtin_sql(qualified).is_some()
}

/// `CREATE [OR REPLACE] VIEW`: registered by DataFusion, then its statement is stored so the view
/// comes back after a restart (built-in views are created from `sql/` at start instead).
pub async fn create_view(
    session: &Session,
    create: &CreateView,
    plan: LogicalPlan,
) -> Result<Output> {
    let (schema_name, table_name) = qualify(session, &create.name);
    let qualified = format!("{schema_name}.{table_name}");
    session.context().execute_logical_plan(plan).await?;
    if is_builtin_view(&qualified) {
        return Ok(Output::command("CREATE VIEW"));
    }
    let Some(definition) = create.definition.clone() else {
        return Ok(Output::command("CREATE VIEW"));
    };
    forget(session, VIEW_DEFINITIONS, &qualified).await?;
    let now = chrono::Utc::now().timestamp_micros();
    let row = RecordBatch::try_new(
        view_definitions_schema(),
        vec![
            Arc::new(StringArray::from(vec![qualified])),
            Arc::new(StringArray::from(vec![definition])),
            Arc::new(TimestampMicrosecondArray::from(vec![now]).with_timezone("UTC")),
        ],
    )
    .map_err(|e| Error::Internal(e.to_string()))?;
    session
        .append(
            &format!("{}.{}", VIEW_DEFINITIONS.0, VIEW_DEFINITIONS.1),
            vec![row],
        )
        .await?;
    Ok(Output::command("CREATE VIEW"))
}

/// `DROP VIEW`: DataFusion forgets the view, and its stored statement goes. Built-in views
/// cannot be dropped (they would come back at the next start).
pub async fn drop_view(session: &Session, drop: &DropView, plan: LogicalPlan) -> Result<Output> {
    let (schema_name, table_name) = qualify(session, &drop.name);
    let qualified = format!("{schema_name}.{table_name}");
    if is_builtin_view(&qualified) {
        return Err(Error::PermissionDenied(format!(
            "{qualified} is a built-in view"
        )));
    }
    session.context().execute_logical_plan(plan).await?;
    forget(session, VIEW_DEFINITIONS, &qualified).await?;
    Ok(Output::command("DROP VIEW"))
}

/// Re-create every stored view. Oldest first, and again for those that failed while others
/// succeed, since a view may read one replaced after it was created; one that never plans (a
/// table it reads is gone) is logged and skipped, and its statement kept.
pub async fn restore_views(session: &Session) -> Result<()> {
    let mut pending = stored_definitions(session, VIEW_DEFINITIONS).await?;
    loop {
        let before = pending.len();
        let mut failed = Vec::new();
        for (name, definition) in pending {
            if let Err(e) = restore_view(session, &definition).await {
                failed.push((name, definition, e));
            }
        }
        if failed.is_empty() || failed.len() == before {
            for (name, _, e) in failed {
                log::warn!("view {name} could not be restored: {e}");
            }
            return Ok(());
        }
        pending = failed.into_iter().map(|(n, d, _)| (n, d)).collect();
    }
}

async fn restore_view(session: &Session, definition: &str) -> Result<()> {
    for statement in super::parse(definition)? {
        let plan = session
            .context()
            .state()
            .statement_to_plan(statement)
            .await?;
        session.context().execute_logical_plan(plan).await?;
    }
    Ok(())
}
