//! `prompt_fingerprint` benches over prompt-sized texts (~60 words).

use criterion::Criterion;

use super::harness::{arrays, bench_sizes, prompts};

/// Registers the `prompt_fingerprint` benches.
pub fn bench(c: &mut Criterion) {
    bench_sizes(c, "prompt_fingerprint", "prompt_fingerprint", |n| {
        arrays(vec![prompts(n)])
    });
}
