//! The price book: catalog rows, the lookup index, model-id resolution and the swappable
//! handle the UDFs read.

mod arrow;
pub(crate) mod batch;
mod book;
mod catalog;
mod handle;
mod resolve;
mod row;

pub use arrow::{price_rows_from_batch, price_rows_schema, price_rows_to_batch};
pub use book::{ModelEntry, PriceBook, Resolved};
pub use catalog::{BUNDLED_CATALOG_CSV, parse_catalog_csv};
pub use handle::PriceBookHandle;
pub use resolve::{canonical_provider, model_candidates};
pub use row::{MatchKind, PriceKind, PriceRow};

/// Parses an instant as the catalog does (`YYYY-MM-DD` or RFC 3339), for tests.
#[cfg(test)]
pub(crate) fn parse_instant_for_tests(text: &str) -> i64 {
    catalog::parse_instant(text).expect("valid instant")
}

#[cfg(test)]
mod resolve_tests;
