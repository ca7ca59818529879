//! `model_price` benches: input price of ~30 models at random 2025 instants.

use criterion::Criterion;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::ColumnarValue;

use super::harness::{bench_sizes, model_columns, ts_column};

/// Registers the `model_price` benches.
pub fn bench(c: &mut Criterion) {
    bench_sizes(c, "model_price", "model_price", |n| {
        let (p, m) = model_columns(n, 1);
        vec![
            ColumnarValue::Array(p),
            ColumnarValue::Array(m),
            ColumnarValue::Scalar(ScalarValue::Utf8(Some("input".into()))),
            ColumnarValue::Array(ts_column(n, 6)),
        ]
    });
}
