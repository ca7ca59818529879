//! `finops-db serve --demo`: load the demo data set into an opened engine, so that every view
//! has something to show the moment a client connects.
//!
//! Owns the order of loading. It goes through the same paths as a user would (appends that
//! are statements, the price book's validation, provider tables registered by SQL), so the demo
//! exercises the product rather than bypassing it.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};

use super::{CONFIG_TABLES, PRICE_CHANGE_MODEL, generate, write_exports};
use crate::engine::{ConfigTable, Engine, Identity};
use crate::error::{Error, Result};

/// What [`load`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// The demo was loaded: usage rows, and the provider tables registered.
    Loaded {
        /// Rows appended to `finops.usage_events`.
        usage_rows: u64,
        /// `providers.*` tables registered over the demo export folders.
        provider_tables: Vec<String>,
    },
    /// `finops.usage_events` already had rows: nothing was changed.
    AlreadyHasData,
}

/// Load the demo (90 days ending on `as_of`, about `rows_per_day` rows a day) into `engine`,
/// unless `finops.usage_events` already holds rows. Export folders are written under
/// `exports_dir` (a local folder) and registered as provider tables.
pub async fn load(
    engine: &Arc<Engine>,
    as_of: NaiveDate,
    rows_per_day: usize,
    exports_dir: Option<PathBuf>,
) -> Result<Loaded> {
    let session = engine.session(Identity::local_admin())?;
    let existing = session
        .query("SELECT COUNT(*) AS n FROM finops.usage_events")
        .await?;
    let count = existing
        .first()
        .map(|b| b.column(0).as_primitive::<Int64Type>().value(0))
        .unwrap_or(0);
    if count > 0 {
        return Ok(Loaded::AlreadyHasData);
    }
    let data = generate(as_of, rows_per_day);
    // The price cut replaces the catalog's rows for that model with the demo's two dated rows.
    let (provider, model) = PRICE_CHANGE_MODEL;
    session
        .sql(&format!(
            "DELETE FROM finops.model_prices WHERE provider = '{provider}' AND model = '{model}'"
        ))
        .await?;
    for (table, batch) in CONFIG_TABLES.iter().zip(data.config_batches()) {
        let batch = conform(batch, engine, table).await?;
        session.append(table, vec![batch]).await?;
    }
    engine.reload_prices(&session).await?;
    for table in ConfigTable::ALL {
        engine.reload_config(&session, table).await?;
    }
    // The last day is today: its rows after this instant have not happened yet.
    let now = chrono::Utc::now().timestamp_micros();
    let usage = data
        .usage
        .iter()
        .map(|batch| until(batch, now))
        .collect::<Result<Vec<_>>>()?;
    let usage_rows = session.append("finops.usage_events", usage).await?;
    let mut provider_tables = Vec::new();
    if let Some(dir) = exports_dir {
        for export in write_exports(&dir, as_of)? {
            session.sql(&export.create_statement()).await?;
            provider_tables.push(format!("providers.{}", export.table));
        }
    }
    let views = engine.views()?;
    for name in views.names() {
        views.refresh(session.context(), &name).await?;
    }
    Ok(Loaded::Loaded {
        usage_rows,
        provider_tables,
    })
}

/// The rows of a usage batch with `ts <= now` (microseconds).
fn until(batch: &RecordBatch, now: i64) -> Result<RecordBatch> {
    let ts = batch
        .column_by_name("ts")
        .ok_or_else(|| Error::Internal("demo usage without ts".into()))?
        .as_primitive::<TimestampMicrosecondType>();
    let keep: BooleanArray = ts
        .iter()
        .map(|t| Some(t.is_some_and(|t| t <= now)))
        .collect();
    filter_record_batch(batch, &keep).map_err(crate::error::arrow_error)
}

/// `batch` with the columns of `table` as the engine defines them (names and types; the demo's
/// schemas may be narrower or ordered differently).
async fn conform(batch: &RecordBatch, engine: &Arc<Engine>, table: &str) -> Result<RecordBatch> {
    let session = engine.session(Identity::local_admin())?;
    let provider = session
        .context()
        .table_provider(table)
        .await
        .map_err(|_| Error::TableNotFound(table.to_string()))?;
    let target = provider.schema();
    let columns = target
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) => datafusion::arrow::compute::cast(column, field.data_type())
                .map_err(crate::error::arrow_error),
            None => Ok(datafusion::arrow::array::new_null_array(
                field.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(target, columns).map_err(crate::error::arrow_error)
}
