//! `simhash` benches over prompt-sized texts (~60 words).

use criterion::Criterion;

use super::harness::{arrays, bench_sizes, prompts};

/// Registers the `simhash` benches.
pub fn bench(c: &mut Criterion) {
    bench_sizes(c, "simhash", "simhash", |n| arrays(vec![prompts(n)]));
}
