//! `model_tier` benches over ~30 reported model ids.

use criterion::Criterion;

use super::harness::{arrays, bench_sizes, model_columns};

/// Registers the `model_tier` benches.
pub fn bench(c: &mut Criterion) {
    bench_sizes(c, "model_tier", "model_tier", |n| {
        let (p, m) = model_columns(n, 1);
        arrays(vec![p, m])
    });
}
