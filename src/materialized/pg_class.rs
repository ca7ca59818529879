//! Materialized views in `pg_catalog`, so that psql's `\dm` lists them: `pg_class.relkind` is `m`
//! for them and `pg_matviews` has a row each.
//!
//! datafusion-pg-catalog derives `relkind` from `TableType`, which has no kind for materialized
//! views, so this overlays its `pg_catalog` schema: every table passes through unchanged except
//! `pg_class` (rewritten on scan), `pg_matviews` (built from the registry) and `pg_views` (the
//! catalog crate's is empty; this one lists the plain views with their definitions, which
//! `pg_get_viewdef` reads). The same overlay puts `pg_settings` in its place (see
//! `catalog::settings`) and gives `pg_constraint` its `int2[]` columns
//! (`catalog::int2_arrays`), and adds `pg_stat_activity` (see `activity`). It must not change
//! anything else in `pg_catalog`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use super::MaterializedViews;
use crate::catalog::{scan_all, schema_oids};
use crate::error::{Error, Result};

/// Put the overlay over the `pg_catalog` schema of `catalog` in `ctx`. Call after
/// `setup_pg_catalog` and [`MaterializedViews::open`].
pub fn register_pg_catalog_overlay(
    ctx: &SessionContext,
    catalog: &str,
    views: &Arc<MaterializedViews>,
    activity: &Arc<crate::activity::Activity>,
) -> Result<()> {
    let catalog_name = catalog;
    let catalog = ctx
        .catalog(catalog)
        .ok_or_else(|| Error::Internal(format!("catalog {catalog} missing")))?;
    let inner = catalog
        .schema("pg_catalog")
        .ok_or_else(|| Error::Internal("pg_catalog is not set up".into()))?;
    if inner.as_ref().is::<PgCatalogOverlay>() {
        return Ok(());
    }
    let overlay = PgCatalogOverlay {
        inner,
        catalog: catalog_name.to_string(),
        views: Arc::downgrade(views),
        activity: Arc::downgrade(activity),
    };
    catalog.register_schema("pg_catalog", Arc::new(overlay))?;
    Ok(())
}

#[derive(Debug)]
struct PgCatalogOverlay {
    inner: Arc<dyn SchemaProvider>,
    /// The database whose views `pg_views` lists.
    catalog: String,
    views: Weak<MaterializedViews>,
    activity: Weak<crate::activity::Activity>,
}

/// The catalog table the overlay adds (datafusion-pg-catalog has none by that name).
const PG_STAT_ACTIVITY: &str = "pg_stat_activity";

#[async_trait]
impl SchemaProvider for PgCatalogOverlay {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.push(PG_STAT_ACTIVITY.to_string());
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if name.eq_ignore_ascii_case(PG_STAT_ACTIVITY) {
            return Ok(Some(Arc::new(crate::activity::PgStatActivity::new(
                self.activity.clone(),
                self.inner.table("pg_database").await?,
            ))));
        }
        let table = self.inner.table(name).await?;
        Ok(match (name.to_ascii_lowercase().as_str(), table) {
            ("pg_class", Some(pg_class)) => {
                let pg_namespace = self.inner.table("pg_namespace").await?;
                Some(Arc::new(PgClass {
                    pg_class,
                    pg_namespace,
                    views: self.views.clone(),
                }))
            }
            ("pg_matviews", Some(matviews)) => Some(Arc::new(PgMatviews {
                schema: matviews.schema(),
                views: self.views.clone(),
            })),
            ("pg_views", Some(pg_views)) => Some(Arc::new(PgViews {
                schema: pg_views.schema(),
                catalog: self.catalog.clone(),
                views: self.views.clone(),
            })),
            ("pg_constraint", Some(pg_constraint)) => Some(Arc::new(
                crate::catalog::int2_arrays::Int2Arrays::new(pg_constraint, &["conkey", "confkey"]),
            )),
            ("pg_settings", Some(pg_settings)) => Some(Arc::new(
                crate::catalog::settings::PgSettings::new(pg_settings.schema()),
            )),
            (_, table) => table,
        })
    }

    fn table_exist(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(PG_STAT_ACTIVITY) || self.inner.table_exist(name)
    }
}

/// `pg_class` with `relkind = 'm'` for materialized views.
#[derive(Debug)]
struct PgClass {
    pg_class: Arc<dyn TableProvider>,
    pg_namespace: Option<Arc<dyn TableProvider>>,
    views: Weak<MaterializedViews>,
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> DfResult<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("pg_catalog column {name} missing")))
}

fn oids(array: &ArrayRef) -> DfResult<Vec<Option<i64>>> {
    let array = cast(array, &DataType::Int64)?;
    let array = array.as_primitive::<Int64Type>();
    Ok((0..array.len())
        .map(|i| array.is_valid(i).then(|| array.value(i)))
        .collect())
}

impl PgClass {
    async fn rewritten(&self, state: &dyn Session) -> DfResult<Vec<RecordBatch>> {
        let batches = scan_all(&self.pg_class, state).await?;
        let names: HashSet<String> = self
            .views
            .upgrade()
            .map(|v| v.names())
            .unwrap_or_default()
            .into_iter()
            .collect();
        if names.is_empty() {
            return Ok(batches);
        }
        let namespaces: HashMap<i64, String> = schema_oids(self.pg_namespace.as_ref(), state)
            .await?
            .into_iter()
            .collect();
        batches
            .into_iter()
            .map(|batch| {
                let namespace = oids(column(&batch, "relnamespace")?)?;
                let relname = column(&batch, "relname")?.as_string::<i32>();
                let relkind = column(&batch, "relkind")?.as_string::<i32>();
                let kinds: StringArray = (0..batch.num_rows())
                    .map(|i| {
                        let schema = namespace[i].and_then(|oid| namespaces.get(&oid));
                        let is_view = schema
                            .is_some_and(|s| names.contains(&format!("{s}.{}", relname.value(i))));
                        Some(if is_view { "m" } else { relkind.value(i) })
                    })
                    .collect();
                let index = batch.schema().index_of("relkind")?;
                let mut columns = batch.columns().to_vec();
                columns[index] = Arc::new(kinds);
                Ok(RecordBatch::try_new(batch.schema(), columns)?)
            })
            .collect()
    }
}

#[async_trait]
impl TableProvider for PgClass {
    fn schema(&self) -> SchemaRef {
        self.pg_class.schema()
    }

    fn table_type(&self) -> TableType {
        self.pg_class.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batches = self.rewritten(state).await?;
        crate::catalog::scan_rows(self.schema(), batches, state, projection, filters, limit).await
    }
}

/// `pg_matviews`: one row per materialized view.
#[derive(Debug)]
struct PgMatviews {
    schema: SchemaRef,
    views: Weak<MaterializedViews>,
}

#[async_trait]
impl TableProvider for PgMatviews {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let infos = self.views.upgrade().map(|v| v.list()).unwrap_or_default();
        let text = |f: &dyn Fn(&super::ViewInfo) -> Option<String>| -> ArrayRef {
            Arc::new(infos.iter().map(f).collect::<StringArray>())
        };
        let flag = |value: bool| -> ArrayRef {
            Arc::new(BooleanArray::from(vec![Some(value); infos.len()]))
        };
        let columns: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .map(|field| match field.name().as_str() {
                "schemaname" => text(&|i| i.name.split_once('.').map(|(s, _)| s.to_string())),
                "matviewname" => text(&|i| i.name.split_once('.').map(|(_, t)| t.to_string())),
                "matviewowner" => text(&|_| Some(crate::config::DEFAULT_USER.to_string())),
                "definition" => text(&|i| Some(i.definition.clone())),
                "hasindexes" => flag(false),
                "ispopulated" => flag(true),
                _ => datafusion::arrow::array::new_null_array(field.data_type(), infos.len()),
            })
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let schema = Arc::clone(&self.schema);
        crate::catalog::scan_rows(schema, vec![batch], state, projection, filters, limit).await
    }
}

/// `pg_views`: one row per view of the database that is not a materialized view, with the query
/// that defines it, as the session sees the catalog.
#[derive(Debug)]
struct PgViews {
    schema: SchemaRef,
    catalog: String,
    views: Weak<MaterializedViews>,
}

/// The query of a view's definition, which DataFusion keeps as the whole `CREATE VIEW` statement.
fn view_query(definition: &str) -> String {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    match Parser::parse_sql(&PostgreSqlDialect {}, definition).as_deref() {
        Ok([Statement::CreateView(create)]) => create.query.to_string(),
        _ => definition.to_string(),
    }
}

#[async_trait]
impl TableProvider for PgViews {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let materialized: HashSet<String> = self
            .views
            .upgrade()
            .map(|v| v.names())
            .unwrap_or_default()
            .into_iter()
            .collect();
        // (schema, view, definition)
        let mut rows: Vec<(String, String, Option<String>)> = Vec::new();
        let catalog = state
            .as_any()
            .downcast_ref::<datafusion::execution::SessionState>()
            .and_then(|state| state.catalog_list().catalog(&self.catalog));
        if let Some(catalog) = catalog {
            let mut schemas = catalog.schema_names();
            schemas.sort();
            for schema_name in schemas {
                if schema_name == "pg_catalog" || schema_name == "information_schema" {
                    continue;
                }
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                let mut tables = schema.table_names();
                tables.sort();
                for table_name in tables {
                    if materialized.contains(&format!("{schema_name}.{table_name}")) {
                        continue;
                    }
                    if let Some(table) = schema.table(&table_name).await?
                        && table.table_type() == TableType::View
                    {
                        let definition = table.get_table_definition().map(view_query);
                        rows.push((schema_name.clone(), table_name, definition));
                    }
                }
            }
        }
        let columns: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .map(|field| -> ArrayRef {
                match field.name().as_str() {
                    "schemaname" => Arc::new(
                        rows.iter()
                            .map(|r| Some(r.0.as_str()))
                            .collect::<StringArray>(),
                    ),
                    "viewname" => Arc::new(
                        rows.iter()
                            .map(|r| Some(r.1.as_str()))
                            .collect::<StringArray>(),
                    ),
                    "viewowner" => Arc::new(
                        rows.iter()
                            .map(|_| Some(crate::config::DEFAULT_USER))
                            .collect::<StringArray>(),
                    ),
                    "definition" => {
                        Arc::new(rows.iter().map(|r| r.2.as_deref()).collect::<StringArray>())
                    }
                    _ => datafusion::arrow::array::new_null_array(field.data_type(), rows.len()),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let schema = Arc::clone(&self.schema);
        crate::catalog::scan_rows(schema, vec![batch], state, projection, filters, limit).await
    }
}
