//! The price book as a table: `finops.model_prices` seeded from the bundled catalog at first
//! start, loaded into the UDFs' in-memory index, validated before an INSERT is stored, and
//! reloaded after every change so history re-prices on the next query.
//!
//! It must not compute costs (the `finops-udfs` crate does) nor parse SQL.

pub mod import;

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use finops_udfs::pricing::{
    PriceBook, PriceBookHandle, PriceKind, PriceRow, price_rows_from_batch, price_rows_schema,
    price_rows_to_batch,
};

use crate::error::{Error, Result};
use crate::storage::{DurableTable, Storage, TableOptions};

/// `(schema, table)` of the price book.
pub const MODEL_PRICES: (&str, &str) = ("finops", "model_prices");

/// Create `finops.model_prices` (seeded from the bundled catalog) if missing, and return the
/// handle the UDFs read, loaded from the table.
pub async fn open(storage: &Arc<Storage>) -> Result<(DurableTable, PriceBookHandle)> {
    let fresh = storage.table(MODEL_PRICES.0, MODEL_PRICES.1).is_none();
    let table = storage
        .ensure_table(
            MODEL_PRICES.0,
            MODEL_PRICES.1,
            price_rows_schema(),
            TableOptions::config(),
        )
        .await?;
    if fresh {
        let bundled = PriceBook::bundled().map_err(Error::DataFusion)?;
        let batch = price_rows_to_batch(bundled.rows()).map_err(Error::DataFusion)?;
        table.append(vec![batch]).await?;
    }
    let handle = PriceBookHandle::new(PriceBook::from_rows(Vec::new()).map_err(Error::DataFusion)?);
    Ok((table, handle))
}

/// Rows of a set of batches of the price-book schema; a value the price book cannot hold (an
/// unknown `match` kind) breaks the table's constraint (SQLSTATE 23514).
pub fn rows_of(batches: &[RecordBatch]) -> Result<Vec<PriceRow>> {
    let mut rows = Vec::new();
    for batch in batches {
        rows.extend(
            price_rows_from_batch(batch).map_err(|e| Error::CheckViolation {
                message: format!(
                    "finops.model_prices: {}",
                    crate::server::sqlstate::datafusion_info(&e).message
                ),
            })?,
        );
    }
    Ok(rows)
}

/// A book from `rows`, or the reason the rows are not a valid price book (SQLSTATE 23514).
pub fn validate(rows: Vec<PriceRow>) -> Result<PriceBook> {
    for row in &rows {
        if let Some(kind) = PriceKind::ALL
            .into_iter()
            .find(|k| row.price(*k).is_some_and(|p| p < 0))
        {
            return Err(Error::CheckViolation {
                message: format!("price row {} has a negative {kind} price", row.version()),
            });
        }
        if row.tier_threshold_tokens.is_some_and(|t| t < 0) {
            return Err(Error::CheckViolation {
                message: format!(
                    "price row {} has a negative tier_threshold_tokens",
                    row.version()
                ),
            });
        }
        if let (Some(from), Some(to)) = (row.valid_from, row.valid_to)
            && to <= from
        {
            return Err(Error::CheckViolation {
                message: format!("price row {} has valid_to <= valid_from", row.version()),
            });
        }
    }
    PriceBook::from_rows(rows).map_err(|e| Error::CheckViolation {
        message: format!(
            "finops.model_prices: {}",
            crate::server::sqlstate::datafusion_info(&e).message
        ),
    })
}
