//! In-process sqllogictest harness: runs every `tests/slt/udfs/*.slt` file against a bare
//! `SessionContext` with the FinOps UDFs registered over the bundled price book.
//!
//! `cargo test -p finops-udfs --test sqllogictest` runs them all; `SLT_FILTER=token_cost`
//! runs matching files only; `SLT_COMPLETE=1` rewrites the expected results in place.

use std::path::PathBuf;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use finops_udfs::{PriceBookHandle, register_all};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

struct UdfDb {
    ctx: SessionContext,
}

impl UdfDb {
    fn new() -> Self {
        let ctx = SessionContext::new();
        register_all(
            &ctx,
            PriceBookHandle::bundled().expect("bundled price book"),
        );
        Self { ctx }
    }
}

#[async_trait]
impl AsyncDB for UdfDb {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>> {
        let df = self.ctx.sql(sql).await?;
        let schema = df.schema().clone();
        let batches = df.collect().await?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let mut rows = Vec::new();
        for batch in &batches {
            rows.extend(row_strings(batch)?);
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}
}

fn column_type(dt: &DataType) -> DefaultColumnType {
    if dt.is_integer() {
        DefaultColumnType::Integer
    } else if dt.is_floating() || matches!(dt, DataType::Decimal128(..)) {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

fn row_strings(batch: &RecordBatch) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default();
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|row| {
            (0..batch.num_columns())
                .map(|col| {
                    if batch.column(col).is_null(row) {
                        "NULL".to_string()
                    } else {
                        let mut text = formatters[col].value(row).to_string();
                        // Booleans as Postgres sends them, so the same files pass over the wire.
                        if batch.column(col).data_type() == &DataType::Boolean {
                            text = if text == "true" { "t" } else { "f" }.to_string();
                        }
                        if text.is_empty() {
                            "(empty)".to_string()
                        } else {
                            text
                        }
                    }
                })
                .collect()
        })
        .collect())
}

fn slt_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/slt/udfs");
    let filter = std::env::var("SLT_FILTER").unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt/udfs exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .filter(|p| p.to_string_lossy().contains(&filter))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udf_slt_files_pass() {
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files found");
    let complete = std::env::var("SLT_COMPLETE").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for file in &files {
        let mut runner = sqllogictest::Runner::new(|| async { Ok(UdfDb::new()) });
        if complete {
            runner
                .update_test_file(
                    file,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .unwrap_or_else(|e| panic!("completing {}: {e}", file.display()));
        } else if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} file(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
