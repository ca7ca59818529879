//! `finops-db demo --out DIR`: the demo data set as files another tool can read.
//!
//! Owns the folder layout (Parquet usage, config as CSV and SQL, provider exports, README).
//! It must not start an engine or register anything.

use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::WriterBuilder;
use datafusion::error::DataFusionError;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use super::exports::{DemoExport, write_exports};
use super::{CONFIG_TABLES, DemoData, generate};
use crate::error::{Error, Result};

/// What [`write_demo`] wrote.
#[derive(Debug, Clone)]
pub struct DemoManifest {
    /// The last day of the data.
    pub as_of: NaiveDate,
    /// `usage_events.parquet`.
    pub usage_path: PathBuf,
    /// Rows in it.
    pub usage_rows: usize,
    /// `config.sql`: every config row as `INSERT` statements.
    pub config_sql_path: PathBuf,
    /// One CSV per config table, as (`schema.table`, path).
    pub config_csv: Vec<(String, PathBuf)>,
    /// The provider export folders.
    pub exports: Vec<DemoExport>,
    /// `README.md` describing all of it.
    pub readme_path: PathBuf,
}

/// Write the demo data set (default size) ending on `as_of` into `dir`, creating it.
pub fn write_demo(dir: &Path, as_of: NaiveDate) -> Result<DemoManifest> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let data = generate(as_of, super::DEFAULT_ROWS_PER_DAY);
    let usage_path = dir.join("usage_events.parquet");
    write_parquet(&usage_path, &data.usage)?;
    let config_sql_path = dir.join("config.sql");
    std::fs::write(&config_sql_path, data.config_sql()?)
        .map_err(|e| Error::io(config_sql_path.display().to_string(), e))?;
    let mut config_csv = Vec::new();
    for (table, batch) in CONFIG_TABLES.iter().zip(data.config_batches()) {
        let path = dir.join(format!("{}.csv", table.trim_start_matches("finops.")));
        write_csv(&path, batch)?;
        config_csv.push((table.to_string(), path));
    }
    let exports = write_exports(&dir.join("exports"), as_of)?;
    let readme_path = dir.join("README.md");
    let manifest = DemoManifest {
        as_of,
        usage_path,
        usage_rows: data.usage.iter().map(RecordBatch::num_rows).sum(),
        config_sql_path,
        config_csv,
        exports,
        readme_path,
    };
    std::fs::write(&manifest.readme_path, readme(&manifest, &data))
        .map_err(|e| Error::io(manifest.readme_path.display().to_string(), e))?;
    Ok(manifest)
}

fn write_parquet(path: &Path, batches: &[RecordBatch]) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let schema = crate::schema::usage_events_schema();
    let mut writer =
        ArrowWriter::try_new(file, schema, Some(props)).map_err(DataFusionError::from)?;
    for batch in batches {
        writer.write(batch).map_err(DataFusionError::from)?;
    }
    writer.close().map_err(DataFusionError::from)?;
    Ok(())
}

fn write_csv(path: &Path, batch: &RecordBatch) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    let mut writer = WriterBuilder::new().with_header(true).build(file);
    writer.write(batch).map_err(DataFusionError::from)?;
    Ok(())
}

fn readme(m: &DemoManifest, data: &DemoData) -> String {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut s = format!(
        "# finops-db demo data set\n\n\
         Deterministic: the same `as_of` always gives the same files. Window: the 90 days \
         ending {as_of} (UTC).\n\n\
         | file | what |\n|---|---|\n\
         | `{usage}` | {rows} rows of `finops.usage_events` (Parquet, zstd) |\n\
         | `{sql}` | every config row below as `INSERT` statements (psql or finops-db) |\n",
        as_of = m.as_of,
        usage = name(&m.usage_path),
        rows = m.usage_rows,
        sql = name(&m.config_sql_path),
    );
    for ((table, path), batch) in m.config_csv.iter().zip(data.config_batches()) {
        s.push_str(&format!(
            "| `{}` | {} rows of `{table}` (CSV with header) |\n",
            name(path),
            batch.num_rows()
        ));
    }
    for e in &m.exports {
        s.push_str(&format!(
            "| `exports/{}/` | `{}` export, last 7 days before {} |\n",
            name(&e.path),
            e.format,
            m.as_of
        ));
    }
    s.push_str(
        "\nLoad it into a running server:\n\n```sql\n\
         CREATE EXTERNAL TABLE demo_usage STORED AS PARQUET LOCATION '<dir>/usage_events.parquet';\n\
         INSERT INTO finops.usage_events SELECT * FROM demo_usage;\n\\i <dir>/config.sql\n",
    );
    for e in &m.exports {
        s.push_str(&e.create_statement());
        s.push('\n');
    }
    s.push_str(
        "```\n\nWhat to look for: frontier models answering one-word questions \
         (`kpi.model_fit`), ~15% repeated prompts (`kpi.redundancy`), four team spend spikes \
         (`kpi.anomalies`), a price cut for `gpt-4o-2024-08-06` half-way through \
         (`config.sql`), rows on `acme-internal-llm-v2` that no price book knows \
         (`finops.unpriced_usage`), rows with no team (`finops.unowned_spend`), and budgets \
         that are fine, warning, projected to exceed and exceeded (`finops.budget_status`).\n",
    );
    s
}
