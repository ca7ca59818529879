//! Criterion benches of the FinOps UDFs: one module per function under `benches/udfs/`,
//! each at 1024 and 8192 rows with inputs built outside the timed loop, and
//! `token_cost_vs_join`: pricing 1M usage rows by `token_cost` against the SQL range join.
//!
//! `cargo bench -p finops-udfs --bench udfs` (or `cargo bench --bench udfs`);
//! `-- token_cost` runs one function.

use criterion::{criterion_group, criterion_main};

mod udfs {
    pub mod canonical_model;
    pub mod cheaper_alternative;
    pub mod count_tokens;
    pub mod hamming_distance;
    pub mod harness;
    pub mod model_price;
    pub mod model_tier;
    pub mod month_end_forecast;
    pub mod pricing_join;
    pub mod prompt_fingerprint;
    pub mod simhash;
    pub mod token_cost;
}

criterion_group!(
    benches,
    udfs::token_cost::bench,
    udfs::pricing_join::bench,
    udfs::model_price::bench,
    udfs::canonical_model::bench,
    udfs::model_tier::bench,
    udfs::cheaper_alternative::bench,
    udfs::count_tokens::bench,
    udfs::prompt_fingerprint::bench,
    udfs::simhash::bench,
    udfs::hamming_distance::bench,
    udfs::month_end_forecast::bench,
);
criterion_main!(benches);
