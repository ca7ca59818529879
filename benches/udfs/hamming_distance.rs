//! `hamming_distance` benches over random 64-bit hashes.

use criterion::Criterion;

use super::harness::{arrays, bench_sizes, int_column};

/// Registers the `hamming_distance` benches.
pub fn bench(c: &mut Criterion) {
    bench_sizes(c, "hamming_distance", "hamming_distance", |n| {
        arrays(vec![
            int_column(n, u64::MAX >> 1, 1),
            int_column(n, u64::MAX >> 1, 2),
        ])
    });
}
