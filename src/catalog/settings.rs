//! `pg_catalog.pg_settings`: a row per run-time parameter with the value the reading session
//! has (what `SHOW` gives), the read-only limits drivers look up (JDBC reads `max_index_keys`
//! for `getImportedKeys`), and the session options `SHOW ALL` lists (`datafusion.*`,
//! `finops.*`).
//!
//! It owns only this table. The parameters' values are the server's parameter hook's.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::engine::PgParameters;

/// Limits Postgres compiles in, which no session changes.
const INTERNAL: &[(&str, &str)] = &[
    ("block_size", "8192"),
    ("max_function_args", "100"),
    ("max_identifier_length", "63"),
    ("max_index_keys", "32"),
];

/// `pg_settings` with the columns of the catalog's own (whose rows it replaces).
#[derive(Debug)]
pub struct PgSettings {
    schema: SchemaRef,
}

impl PgSettings {
    pub fn new(schema: SchemaRef) -> Self {
        PgSettings { schema }
    }

    fn rows(&self, state: &dyn Session) -> Result<RecordBatch> {
        let options = state.config_options();
        // (name, setting, context)
        let mut rows: Vec<(String, String, &str)> = Vec::new();
        if let Some(parameters) = options.extensions.get::<PgParameters>() {
            for (name, value) in parameters.iter() {
                rows.push((name.to_string(), value.to_string(), "user"));
            }
        }
        for (name, value) in INTERNAL {
            if !rows.iter().any(|(n, _, _)| n.eq_ignore_ascii_case(name)) {
                rows.push((name.to_string(), value.to_string(), "internal"));
            }
        }
        for (name, value) in crate::engine::settings(options) {
            rows.push((name, value, "user"));
        }
        rows.sort_by_key(|row| row.0.to_ascii_lowercase());
        let count = rows.len();
        let columns: Vec<ArrayRef> = self
            .schema
            .fields()
            .iter()
            .map(|field| -> ArrayRef {
                match field.name().as_str() {
                    "name" => Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|(n, _, _)| n.as_str()),
                    )),
                    "setting" | "reset_val" => Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|(_, v, _)| v.as_str()),
                    )),
                    "context" => Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|(_, _, c)| *c),
                    )),
                    "source" => Arc::new(StringArray::from_iter_values(
                        rows.iter().map(|_| "session"),
                    )),
                    _ => new_null_array(field.data_type(), count),
                }
            })
            .collect();
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

#[async_trait]
impl TableProvider for PgSettings {
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
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = vec![self.rows(state)?];
        super::scan_rows(self.schema(), rows, state, projection, filters, limit).await
    }
}
