//! `count_tokens` benches over prompt-sized texts (~60 words of English), with throughput in
//! bytes of text (criterion prints MB/s); texts/s is the batch size over the time.

use criterion::{Criterion, Throughput};
use datafusion::arrow::array::AsArray;
use datafusion::logical_expr::ColumnarValue;

use super::harness::{arrays, bench_sizes_with, prompts};

/// Registers the `count_tokens` benches.
pub fn bench(c: &mut Criterion) {
    bench_sizes_with(
        c,
        "count_tokens",
        "count_tokens",
        |n| arrays(vec![prompts(n)]),
        |args, _| match &args[0] {
            ColumnarValue::Array(texts) => {
                Throughput::BytesDecimal(texts.as_string::<i32>().values().len() as u64)
            }
            ColumnarValue::Scalar(_) => unreachable!("array input"),
        },
    );
}
