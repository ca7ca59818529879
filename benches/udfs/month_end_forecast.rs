//! `month_end_forecast` benches over decimal spend and 2025 timestamps.

use std::sync::Arc;

use criterion::Criterion;
use datafusion::arrow::array::Decimal128Array;
use finops_udfs::{MONEY_PRECISION, MONEY_SCALE};

use super::harness::{Lcg, arrays, bench_sizes, ts_column};

/// Registers the `month_end_forecast` benches.
pub fn bench(c: &mut Criterion) {
    bench_sizes(c, "month_end_forecast", "month_end_forecast", |n| {
        let mut rng = Lcg(3);
        let spend = Decimal128Array::from_iter_values(
            (0..n).map(|_| i128::from(rng.below(1 << 40)) * 1_000_000),
        )
        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
        .expect("money type");
        arrays(vec![Arc::new(spend), ts_column(n, 6)])
    });
}
