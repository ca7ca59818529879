//! `canonical_model` benches over ~30 reported model ids.

use criterion::Criterion;

use super::harness::{arrays, bench_sizes, model_columns};

/// Registers the `canonical_model` benches.
pub fn bench(c: &mut Criterion) {
    bench_sizes(c, "canonical_model", "canonical_model", |n| {
        let (p, m) = model_columns(n, 1);
        arrays(vec![p, m])
    });
}
