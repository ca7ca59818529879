//! `count_tokens` benches over prompt-sized texts (~60 words).

use criterion::Criterion;

use super::harness::{arrays, bench_sizes, prompts};

/// Registers the `count_tokens` benches.
pub fn bench(c: &mut Criterion) {
    bench_sizes(c, "count_tokens", "count_tokens", |n| {
        arrays(vec![prompts(n)])
    });
}
