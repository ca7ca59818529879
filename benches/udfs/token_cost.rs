//! `token_cost` benches: 4-argument and full 8-argument calls over ~30 models (the latter also
//! with provider and model as a Parquet scan gives them), and a scalar provider/model (one model
//! per batch).

use criterion::Criterion;
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::ColumnarValue;
use std::sync::Arc;

use super::harness::{
    Lcg, arrays, bench_sizes, int_column, model_columns, model_view_columns, ts_column,
};

fn tiers(n: usize) -> ArrayRef {
    let mut rng = Lcg(7);
    let names = ["standard", "batch", "priority", "flex", "default"];
    Arc::new(StringArray::from_iter_values(
        (0..n).map(|_| names[rng.below(5) as usize]),
    ))
}

/// All eight arguments of `n` rows: provider, model, input, output, cached and cache-write
/// counts, ts and service tier.
fn eight_args(
    n: usize,
    provider: ArrayRef,
    model: ArrayRef,
    tiers: ArrayRef,
) -> Vec<ColumnarValue> {
    arrays(vec![
        provider,
        model,
        int_column(n, 300_000, 2),
        int_column(n, 4_000, 3),
        int_column(n, 1_024, 4),
        int_column(n, 512, 5),
        ts_column(n, 6),
        tiers,
    ])
}

/// Registers the `token_cost` benches.
pub fn bench(c: &mut Criterion) {
    bench_sizes(c, "token_cost/4_args", "token_cost", |n| {
        let (p, m) = model_columns(n, 1);
        arrays(vec![
            p,
            m,
            int_column(n, 300_000, 2),
            int_column(n, 4_000, 3),
        ])
    });
    bench_sizes(c, "token_cost/8_args", "token_cost", |n| {
        let (p, m) = model_columns(n, 1);
        eight_args(n, p, m, tiers(n))
    });
    bench_sizes(c, "token_cost/8_args_scan_views", "token_cost", |n| {
        let (p, m) = model_view_columns(n, 1);
        let tiers = cast(&tiers(n), &DataType::Utf8View).expect("views");
        eight_args(n, p, m, tiers)
    });
    bench_sizes(c, "token_cost/scalar_model", "token_cost", |n| {
        let mut args = vec![
            ColumnarValue::Scalar(ScalarValue::Utf8(Some("openai".into()))),
            ColumnarValue::Scalar(ScalarValue::Utf8(Some("gpt-4o".into()))),
        ];
        args.extend(arrays(vec![
            int_column(n, 300_000, 2),
            int_column(n, 4_000, 3),
        ]));
        args
    });
}
