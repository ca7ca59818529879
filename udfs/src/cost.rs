//! Cost functions: `token_cost`, `model_price`, `price_version`, and the pure cost
//! semantics they share.

mod model_price;
mod price_version;
pub mod semantics;
mod token_cost;

pub use model_price::ModelPriceFunc;
pub use price_version::PriceVersionFunc;
pub use semantics::{Rates, RowRates, ServiceTier, TokenUsage, row_cost};
pub use token_cost::TokenCostFunc;

/// Current time in UTC microseconds: the price instant when no `ts` argument is given.
pub(crate) fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod token_cost_tests;
