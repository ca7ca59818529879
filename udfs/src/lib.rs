//! FinOps scalar functions for Apache DataFusion: the price book, token cost, model
//! prices and ids, token counting, prompt fingerprints and forecasts.
//!
//! This crate depends on DataFusion only. It owns no storage and no I/O: the root crate
//! hands it a [`PriceBookHandle`] and swaps the book inside when `finops.model_prices`
//! changes; every function reads the book current at the start of each batch.
#![warn(missing_docs)]

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

mod args;
pub mod cost;
pub mod forecast;
pub mod model;
pub mod money;
pub mod pricing;
pub mod text;

pub use args::FINOPS_SECTION;
pub use money::{MONEY_PRECISION, MONEY_SCALE};
pub use pricing::{MatchKind, PriceBook, PriceBookHandle, PriceKind, PriceRow};

/// Every FinOps UDF, reading prices from `book`.
pub fn all_udfs(book: PriceBookHandle) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(cost::TokenCostFunc::new(book.clone())),
        ScalarUDF::from(cost::ModelPriceFunc::new(book.clone())),
        ScalarUDF::from(cost::PriceVersionFunc::new(book.clone())),
        ScalarUDF::from(model::CanonicalModelFunc::new(book.clone())),
        ScalarUDF::from(model::ModelTierFunc::new(book.clone())),
        ScalarUDF::from(model::CheaperAlternativeFunc::new(book)),
        ScalarUDF::from(text::CountTokensFunc::new()),
        ScalarUDF::from(text::PromptFingerprintFunc::new()),
        ScalarUDF::from(text::SimhashFunc::new()),
        ScalarUDF::from(text::HammingDistanceFunc::new()),
        ScalarUDF::from(forecast::MonthEndForecastFunc::new()),
    ]
}

/// Registers [`all_udfs`] in `ctx`; a later call with another handle replaces them.
pub fn register_all(ctx: &SessionContext, book: PriceBookHandle) {
    for udf in all_udfs(book) {
        ctx.register_udf(udf);
    }
}
