//! Shared bench plumbing: deterministic inputs and a direct `invoke_with_args` call, so the
//! timed loop measures the function and not SQL planning.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput};
use datafusion::arrow::array::{
    ArrayRef, Int64Array, StringArray, StringViewBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF};
use finops_udfs::{PriceBookHandle, all_udfs};

/// Batch sizes every function is measured at.
pub const SIZES: [usize; 2] = [1024, 8192];

/// (provider, model) pairs as reported by providers: ~30 distinct ids across providers.
pub const MODELS: &[(&str, &str)] = &[
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-2024-08-06"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("openai", "gpt-4.1-mini"),
    ("openai", "gpt-5"),
    ("openai", "gpt-5-mini"),
    ("openai", "o3"),
    ("openai", "o3-mini-2025-01-31"),
    ("openai", "o4-mini"),
    ("openai", "text-embedding-3-small"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("anthropic", "claude-opus-4-1"),
    ("anthropic", "claude-3-5-sonnet-20241022"),
    (
        "aws_bedrock",
        "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
    ),
    ("aws_bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
    ("aws_bedrock", "amazon.nova-lite-v1:0"),
    ("aws_bedrock", "meta.llama3-1-70b-instruct-v1:0"),
    ("gcp_vertex", "claude-3-5-sonnet@20240620"),
    ("gcp_vertex", "gemini-2.5-pro"),
    ("google_gemini", "gemini-2.5-flash"),
    ("google_gemini", "gemini-2.0-flash-001"),
    ("azure_openai", "gpt-4o-2024-08-06"),
    ("azure_openai", "gpt-4o 0806 Inp glbl Tokens"),
    ("mistral", "mistral-large-latest"),
    ("deepseek", "deepseek-chat"),
    ("xai", "grok-3"),
    ("openrouter", "openai/gpt-4o"),
];

/// Deterministic pseudo-random sequence (64-bit LCG), so runs compare.
pub struct Lcg(pub u64);

impl Lcg {
    /// Next value below `bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound.max(1)
    }
}

/// The registered UDF named `name`, over the bundled price book.
pub fn udf(name: &str) -> ScalarUDF {
    let book = PriceBookHandle::bundled().expect("bundled price book");
    all_udfs(book)
        .into_iter()
        .find(|u| u.name() == name)
        .expect("udf exists")
}

/// Provider and model columns of `n` rows drawn from [`MODELS`].
pub fn model_columns(n: usize, seed: u64) -> (ArrayRef, ArrayRef) {
    let mut rng = Lcg(seed);
    let picks: Vec<(&str, &str)> = (0..n)
        .map(|_| MODELS[rng.below(MODELS.len() as u64) as usize])
        .collect();
    let providers = StringArray::from_iter_values(picks.iter().map(|p| p.0));
    let models = StringArray::from_iter_values(picks.iter().map(|p| p.1));
    (Arc::new(providers), Arc::new(models))
}

/// [`model_columns`] as a Parquet scan gives them: `Utf8View` arrays whose rows all carry the
/// view of their entry in one dictionary block.
pub fn model_view_columns(n: usize, seed: u64) -> (ArrayRef, ArrayRef) {
    let mut rng = Lcg(seed);
    let picks: Vec<usize> = (0..n)
        .map(|_| rng.below(MODELS.len() as u64) as usize)
        .collect();
    let dictionary = |name: fn(&(&'static str, &'static str)) -> &'static str| -> ArrayRef {
        let mut block = Vec::new();
        let entries: Vec<(u32, u32)> = MODELS
            .iter()
            .map(|m| {
                let start = block.len() as u32;
                block.extend_from_slice(name(m).as_bytes());
                (start, name(m).len() as u32)
            })
            .collect();
        let mut builder = StringViewBuilder::with_capacity(n);
        let id = builder.append_block(Buffer::from_vec(block));
        for &pick in &picks {
            let (start, len) = entries[pick];
            builder
                .try_append_view(id, start, len)
                .expect("view in the block");
        }
        Arc::new(builder.finish())
    };
    (dictionary(|m| m.0), dictionary(|m| m.1))
}

/// `n` integers below `bound`.
pub fn int_column(n: usize, bound: u64, seed: u64) -> ArrayRef {
    let mut rng = Lcg(seed);
    Arc::new(Int64Array::from_iter_values(
        (0..n).map(|_| rng.below(bound) as i64),
    ))
}

/// `n` timestamps within 2025.
pub fn ts_column(n: usize, seed: u64) -> ArrayRef {
    let mut rng = Lcg(seed);
    let start = 1_735_689_600_000_000i64; // 2025-01-01T00:00:00Z
    let year = 365 * 86_400_000_000u64;
    Arc::new(TimestampMicrosecondArray::from_iter_values(
        (0..n).map(|_| start + rng.below(year) as i64),
    ))
}

/// Calls `udf` on `args` the way DataFusion's executor does.
pub fn invoke(udf: &ScalarUDF, args: &[ColumnarValue], n: usize) -> ColumnarValue {
    let types: Vec<DataType> = args.iter().map(|a| a.data_type()).collect();
    let arg_fields = types
        .iter()
        .map(|t| Arc::new(Field::new("a", t.clone(), true)))
        .collect();
    let return_type = udf.return_type(&types).expect("return type");
    udf.invoke_with_args(ScalarFunctionArgs {
        args: args.to_vec(),
        arg_fields,
        number_rows: n,
        return_field: Arc::new(Field::new("r", return_type, true)),
        config_options: Arc::new(ConfigOptions::default()),
    })
    .expect("invoke")
}

/// Registers one array benchmark per size, built by `make_args(n)`; throughput in rows.
pub fn bench_sizes(
    c: &mut Criterion,
    group: &str,
    name: &str,
    make_args: impl Fn(usize) -> Vec<ColumnarValue>,
) {
    bench_sizes_with(c, group, name, make_args, |_, n| {
        Throughput::Elements(n as u64)
    });
}

/// [`bench_sizes`] with the throughput of each input given by `throughput(args, n)`.
pub fn bench_sizes_with(
    c: &mut Criterion,
    group: &str,
    name: &str,
    make_args: impl Fn(usize) -> Vec<ColumnarValue>,
    throughput: impl Fn(&[ColumnarValue], usize) -> Throughput,
) {
    let udf = udf(name);
    let mut g = c.benchmark_group(group);
    for n in SIZES {
        let args = make_args(n);
        g.throughput(throughput(&args, n));
        g.bench_with_input(BenchmarkId::from_parameter(n), &args, |b, args| {
            b.iter(|| invoke(&udf, args, n))
        });
    }
    g.finish();
}

/// Wraps arrays as arguments.
pub fn arrays(columns: Vec<ArrayRef>) -> Vec<ColumnarValue> {
    columns.into_iter().map(ColumnarValue::Array).collect()
}

/// `n` prompt-like texts of ~60 words with ids and numbers that vary per row.
pub fn prompts(n: usize) -> ArrayRef {
    let mut rng = Lcg(11);
    let words = [
        "summarise",
        "the",
        "following",
        "support",
        "ticket",
        "for",
        "customer",
        "order",
        "delivery",
        "refund",
        "please",
        "answer",
        "in",
        "json",
        "with",
        "fields",
        "status",
        "reason",
        "and",
        "next",
        "steps",
        "using",
        "a",
        "friendly",
        "tone",
    ];
    Arc::new(StringArray::from_iter_values((0..n).map(|i| {
        let mut text = format!(
            "Ticket {i} for user {:08x}-1111-2222-3333-444455556666: ",
            i
        );
        for _ in 0..60 {
            text.push_str(words[rng.below(words.len() as u64) as usize]);
            text.push(' ');
        }
        text
    })))
}
