//! `cheaper_alternative` benches over ~30 reported model ids.

use criterion::Criterion;

use super::harness::{arrays, bench_sizes, model_columns};

/// Registers the `cheaper_alternative` benches.
pub fn bench(c: &mut Criterion) {
    bench_sizes(c, "cheaper_alternative", "cheaper_alternative", |n| {
        let (p, m) = model_columns(n, 1);
        arrays(vec![p, m])
    });
}
